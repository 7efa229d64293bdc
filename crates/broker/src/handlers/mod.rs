//! One module per Kafka API. `SUPPORTED` is the table of what this broker implements, with
//! the versions each handler really supports; ApiVersions answers from it and `route` refuses
//! anything outside it. An API missing here is simply absent from ApiVersions.

pub(crate) mod api_versions;
mod configs;
mod create_partitions;
mod create_topics;
mod delete_records;
mod delete_topics;
mod describe_cluster;
mod fetch;
mod list_offsets;
mod metadata;
mod produce;

use crate::dispatch::{Pending, respond};
use crate::server::Broker;
use kafka_protocol::messages::ApiKey;
use sluice_protocol::{ProtocolError, RequestFrame};
use std::sync::Arc;

/// Every API this broker serves, with the lowest and highest version it handles.
pub(crate) const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 12),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 7),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 5),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DescribeCluster, 0, 1),
];

pub(crate) fn supports(key: ApiKey, version: i16) -> bool {
    SUPPORTED
        .iter()
        .any(|&(k, min, max)| k == key && (min..=max).contains(&version))
}

/// Hands a request to its handler. Only called for entries of `SUPPORTED`.
pub(crate) fn route(broker: &Arc<Broker>, request: RequestFrame) -> Result<Pending, ProtocolError> {
    let b = broker.clone();
    match request.api_key {
        ApiKey::ApiVersions => respond(request, api_versions::handle),
        ApiKey::Metadata => respond(request, move |r, v| metadata::handle(&b, r, v)),
        ApiKey::Produce => respond(request, move |r, v| produce::handle(&b, r, v)),
        ApiKey::Fetch => respond(request, move |r, v| fetch::handle(b, r, v)),
        ApiKey::ListOffsets => respond(request, move |r, v| list_offsets::handle(&b, r, v)),
        ApiKey::CreateTopics => respond(request, move |r, v| create_topics::handle(&b, r, v)),
        ApiKey::DeleteTopics => respond(request, move |r, v| delete_topics::handle(&b, r, v)),
        ApiKey::DeleteRecords => respond(request, move |r, v| delete_records::handle(&b, r, v)),
        ApiKey::CreatePartitions => {
            respond(request, move |r, v| create_partitions::handle(&b, r, v))
        }
        ApiKey::DescribeConfigs => respond(request, move |r, v| configs::describe(&b, r, v)),
        ApiKey::AlterConfigs => respond(request, move |r, v| configs::alter(&b, r, v)),
        ApiKey::IncrementalAlterConfigs => {
            respond(request, move |r, v| configs::incremental_alter(&b, r, v))
        }
        ApiKey::DescribeCluster => respond(request, move |r, v| describe_cluster::handle(&b, r, v)),
        other => unreachable!("route called for {other:?}, which SUPPORTED does not list"),
    }
}

/// A future that is already done: for handlers that answer at once.
pub(crate) fn now<T>(value: T) -> std::future::Ready<Option<T>> {
    std::future::ready(Some(value))
}
