//! OffsetDelete (v0): deletes a group's committed offsets, refused for topics that members of
//! the group still subscribe to (read from their `consumer` protocol subscriptions).

use crate::error::group_code;
use crate::groups::Groups;
use bytes::Buf;
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{
    ConsumerProtocolSubscription, OffsetDeleteRequest, OffsetDeleteResponse,
};
use kafka_protocol::protocol::Decodable;
use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;

/// Newest ConsumerProtocolSubscription version we decode; newer ones only add fields, so
/// they are read as this one (Kafka's forward-compatibility rule for this schema).
const SUBSCRIPTION_VERSION_MAX: i16 = 3;

pub(crate) fn handle(
    groups: &Arc<Groups>,
    request: OffsetDeleteRequest,
    _version: i16,
) -> impl Future<Output = Option<OffsetDeleteResponse>> + Send + 'static + use<> {
    let group_id = request.group_id.0.to_string();
    let partitions: Vec<(String, i32)> = request
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.0.to_string(), p.partition_index))
        })
        .collect();
    let groups = groups.clone();
    async move {
        let subscribed = groups.read(&group_id, |c| {
            let group = c.describe_group(&group_id);
            if group.protocol_type != "consumer" {
                return HashSet::new();
            }
            group
                .members
                .iter()
                .flat_map(|m| subscribed_topics(&m.metadata))
                .collect::<HashSet<String>>()
        });
        // Not the coordinator here: `execute` below says so.
        let subscribed = subscribed.unwrap_or_default();
        let result = groups
            .execute(&group_id, |c, _now| {
                c.delete_offsets(&group_id, &partitions, &subscribed)
            })
            .await
            .and_then(|r| r);
        let mut response = OffsetDeleteResponse::default();
        let results = match result {
            Err(e) => {
                response.error_code = group_code(Some(&e));
                return Some(response);
            }
            Ok(results) => results,
        };
        let mut results = results.into_iter();
        response.topics = request
            .topics
            .into_iter()
            .map(|t| {
                let partitions = t
                    .partitions
                    .iter()
                    .map(|p| {
                        let error = results.next().and_then(Result::err);
                        OffsetDeleteResponsePartition::default()
                            .with_partition_index(p.partition_index)
                            .with_error_code(group_code(error.as_ref()))
                    })
                    .collect();
                OffsetDeleteResponseTopic::default()
                    .with_name(t.name)
                    .with_partitions(partitions)
            })
            .collect();
        Some(response)
    }
}

fn subscribed_topics(metadata: &bytes::Bytes) -> Vec<String> {
    let mut buf = metadata.clone();
    if buf.remaining() < 2 {
        return Vec::new();
    }
    let version = buf.get_i16().clamp(0, SUBSCRIPTION_VERSION_MAX);
    ConsumerProtocolSubscription::decode(&mut buf, version)
        .map(|s| s.topics.iter().map(|t| t.to_string()).collect())
        .unwrap_or_default()
}
