//! The queue over HTTP: share-group members (KIP-932) for services with no Kafka client.
//!
//! - `POST /v1/share-groups/{group}/members` `{"topics": [T, ...]}` (or `{"topic": T}`) joins
//!   `group`; 201 `{"member_id", "group", "assigned"}`.
//! - `GET /v1/share-groups/{group}/members/{id}/records?max=&wait_ms=&value_format=` acquires
//!   about `max` records (the broker completes the last one's batch, as Kafka does) for this
//!   member, each with its `topic`, `partition`, `offset` and
//!   `delivery_count`; they are this member's until acknowledged or until the group's
//!   `share.record.lock.duration.ms` runs out (then another member gets them).
//! - `POST /v1/share-groups/{group}/members/{id}/acks` `{"acks": [{"topic", "partition",
//!   "offset", "type": "accept"|"release"|"reject"}]}` acknowledges records; 200 with how many
//!   were acknowledged and, per partition, any that the broker refused.
//! - `DELETE /v1/share-groups/{group}/members/{id}` closes the member's share sessions
//!   (releasing what it still holds, for other members at once) and leaves; 204.
//!
//! The member lives in the gateway, which speaks ShareGroupHeartbeat, ShareFetch and
//! ShareAcknowledge for it (`sluice_client::share_member`), heartbeats between requests and
//! lets it go after `MEMBER_IDLE` without one, as for consumer-group members (`members`).

use crate::error::{ApiError, ApiResult};
use crate::members::{Held, Slot};
use crate::{AppState, body_json};
use axum::Json;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};
use sluice_client::Client;
use sluice_client::json::record_to_json_as;
use sluice_client::share_member::{Ack, AckKind, ShareReader};
use sluice_types::limits::HTTP_RECORDS_PER_REQUEST_MAX;
use std::sync::Arc;
use tokio::time::Instant;

pub(crate) struct ShareMember {
    group: String,
    client: Client,
    reader: ShareReader,
    last_request: Instant,
    _slot: Slot,
}

impl Held for ShareMember {
    fn last_request(&self) -> Instant {
        self.last_request
    }

    async fn heartbeat(&mut self) {
        if let Err(e) = self.reader.heartbeat(&mut self.client).await {
            tracing::warn!(group = %self.group, error = %e, "heartbeat for an HTTP share member failed");
        }
    }

    async fn let_go(&mut self) {
        self.reader.leave().await;
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ShareJoinBody {
    /// The topics to read (or `topic` for one).
    topics: Option<Vec<String>>,
    topic: Option<String>,
}

/// Join a share group as a member that polls for records.
#[utoipa::path(post, path = "/v1/share-groups/{group}/members", operation_id = "join_share_group", tag = "share-groups", params(("group" = String, Path)), request_body = ShareJoinBody, responses((status = 201, description = "joined", body = crate::api::ShareMemberJoined), (status = "4XX", description = "the request was refused", body = crate::api::ErrorBody), (status = "5XX", description = "the broker failed or is unavailable", body = crate::api::ErrorBody)))]
pub async fn join(
    State(state): State<Arc<AppState>>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let Path(group) = path.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let body: ShareJoinBody = body_json(body)?;
    let topics = match (body.topics, body.topic) {
        (Some(topics), None) if !topics.is_empty() => topics,
        (None, Some(topic)) => vec![topic],
        _ => {
            return Err(ApiError::bad_request(
                "name the topics to read: \"topics\": [...] or \"topic\": \"...\" (not both)",
            ));
        }
    };
    let slot = state.share_members.slot()?;
    let mut client = state.pool.connect("sluice-http-share-member").await?;
    for topic in &topics {
        client.partitions(topic, false).await?;
    }
    let reader = ShareReader::join(&mut client, &group, &topics).await?;
    let id = reader.member_id().to_string();
    let assigned = assigned_json(&reader);
    let member = ShareMember {
        group: group.clone(),
        client,
        reader,
        last_request: Instant::now(),
        _slot: slot,
    };
    state.share_members.insert(id.clone(), member);
    Ok((
        StatusCode::CREATED,
        Json(json!({"member_id": id, "group": group, "assigned": assigned})),
    ))
}

fn assigned_json(reader: &ShareReader) -> Vec<Value> {
    reader
        .assigned()
        .into_iter()
        .map(|(topic, partition)| json!({"topic": topic, "partition": partition}))
        .collect()
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SharePollParams {
    /// How values are written: text (default), json (the JSON they hold) or base64.
    value_format: Option<String>,
    /// Records to acquire (default 100); the broker completes the batch of the last one, so a
    /// poll may bring more.
    max: Option<usize>,
    /// How long to wait for a record when none is available (default 0).
    wait_ms: Option<u64>,
}

/// Acquire records for a share-group member.
#[utoipa::path(get, path = "/v1/share-groups/{group}/members/{member}/records", operation_id = "poll_share_records", tag = "share-groups", params(("group" = String, Path), ("member" = String, Path), SharePollParams), responses((status = 200, description = "records acquired for this member until acknowledged or their lock runs out", body = crate::api::ShareRecords), (status = "4XX", description = "the request was refused", body = crate::api::ErrorBody), (status = "5XX", description = "the broker failed or is unavailable", body = crate::api::ErrorBody)))]
pub async fn poll(
    State(state): State<Arc<AppState>>,
    path: Result<Path<(String, String)>, PathRejection>,
    params: Result<Query<SharePollParams>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Path((group, id)) = path.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let Query(params) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let (max, wait) = crate::records::read_limits(params.max, params.wait_ms)?;
    let format = crate::records::value_format(params.value_format.as_deref())?;
    let shared = state.share_members.get(&group, &id)?;
    let mut member = shared.lock().await;
    member.last_request = Instant::now();
    let m = &mut *member;
    let acquired = m.reader.fetch(&mut m.client, max, wait).await?;
    let mut records = Vec::new();
    for part in &acquired {
        part.for_each(|r, delivery_count| {
            let mut record = record_to_json_as(Some(&part.topic), Some(part.partition), r, format);
            record["delivery_count"] = json!(delivery_count);
            records.push(record);
        })?;
    }
    Ok(Json(
        json!({"records": records, "assigned": assigned_json(&m.reader)}),
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AckIn {
    topic: String,
    partition: i32,
    offset: i64,
    /// `accept` (done), `release` (deliver again, after the group's back-off) or `reject`
    /// (never again; to the dead-letter topic when the group names one).
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AcksBody {
    acks: Vec<AckIn>,
}

/// Acknowledge records a share-group member acquired.
#[utoipa::path(post, path = "/v1/share-groups/{group}/members/{member}/acks", operation_id = "acknowledge_share_records", tag = "share-groups", params(("group" = String, Path), ("member" = String, Path)), request_body = AcksBody, responses((status = 200, description = "how many records were acknowledged, and the partitions whose acknowledgements were refused", body = crate::api::ShareAcked), (status = "4XX", description = "the request was refused", body = crate::api::ErrorBody), (status = "5XX", description = "the broker failed or is unavailable", body = crate::api::ErrorBody)))]
pub async fn acknowledge(
    State(state): State<Arc<AppState>>,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let Path((group, id)) = path.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let body: AcksBody = body_json(body)?;
    if body.acks.len() > HTTP_RECORDS_PER_REQUEST_MAX {
        return Err(ApiError::bad_request(format!(
            "at most {HTTP_RECORDS_PER_REQUEST_MAX} acknowledgements in one request"
        )));
    }
    let acks = body
        .acks
        .into_iter()
        .map(|a| {
            let kind = AckKind::parse(&a.kind).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "an acknowledgement's type is accept, release or reject, not {:?}",
                    a.kind
                ))
            })?;
            if a.offset < 0 || a.partition < 0 {
                return Err(ApiError::bad_request(
                    "offsets and partitions are not negative",
                ));
            }
            Ok(Ack {
                topic: a.topic,
                partition: a.partition,
                offset: a.offset,
                kind,
            })
        })
        .collect::<ApiResult<Vec<Ack>>>()?;
    let shared = state.share_members.get(&group, &id)?;
    let mut member = shared.lock().await;
    member.last_request = Instant::now();
    let m = &mut *member;
    let results = m.reader.acknowledge(&mut m.client, &acks).await?;
    let mut acknowledged = 0;
    let mut failed = Vec::new();
    for r in results {
        match r.result {
            Ok(()) => acknowledged += r.records,
            Err(e) => {
                // Kafka's name for a broker's answer, the API's own (BROKER_UNAVAILABLE) for a
                // broker not reached, as any other route says it.
                let message = e.to_string();
                let error_code = ApiError::from(e).error_code;
                failed.push(json!({"topic": r.topic, "partition": r.partition,
                    "records": r.records, "error_code": error_code, "message": message}));
            }
        }
    }
    Ok(Json(
        json!({"acknowledged": acknowledged, "failed": failed}),
    ))
}

/// Leave the share group, releasing what the member still holds.
#[utoipa::path(delete, path = "/v1/share-groups/{group}/members/{member}", operation_id = "leave_share_group", tag = "share-groups", params(("group" = String, Path), ("member" = String, Path)), responses((status = 204, description = "left the group; records it held are available to other members"), (status = "4XX", description = "the request was refused", body = crate::api::ErrorBody), (status = "5XX", description = "the broker failed or is unavailable", body = crate::api::ErrorBody)))]
pub async fn leave(
    State(state): State<Arc<AppState>>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> ApiResult<StatusCode> {
    let Path((group, id)) = path.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let shared = state.share_members.get(&group, &id)?;
    state.share_members.remove(&id);
    shared.lock().await.reader.leave().await;
    Ok(StatusCode::NO_CONTENT)
}
