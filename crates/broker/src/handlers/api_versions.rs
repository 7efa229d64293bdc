//! ApiVersions (v0–v3), answered from `SUPPORTED`. An unknown (newer) version gets the v0
//! answer with `UNSUPPORTED_VERSION` and the full table, as KIP-511 asks, so the client can
//! retry with a version we know.

use super::{SUPPORTED, now};
use crate::dispatch::Reply;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};

fn table() -> Vec<ApiVersion> {
    SUPPORTED
        .iter()
        .map(|&(key, min, max)| {
            ApiVersion::default()
                .with_api_key(key as i16)
                .with_min_version(min)
                .with_max_version(max)
        })
        .collect()
}

pub(crate) fn handle(
    _request: ApiVersionsRequest,
    _version: i16,
) -> std::future::Ready<Option<ApiVersionsResponse>> {
    now(ApiVersionsResponse::default().with_api_keys(table()))
}

pub(crate) fn unsupported_version_reply(correlation_id: i32) -> Reply {
    let body = ApiVersionsResponse::default()
        .with_error_code(ResponseError::UnsupportedVersion.code())
        .with_api_keys(table());
    match sluice_protocol::encode_response(ApiKey::ApiVersions, 0, correlation_id, &body) {
        Ok(frame) => Reply::Frame(frame),
        Err(_) => Reply::Close,
    }
}
