//! OffsetCommit (v2–v9): commits are checked against the member and its generation, written to
//! `__consumer_offsets` and answered once fsynced.

use crate::error::group_code;
use crate::server::Broker;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};
use sluice_group::{MemberRef, OffsetToCommit};
use std::future::Future;
use std::sync::Arc;

pub(crate) fn handle(
    broker: &Arc<Broker>,
    request: OffsetCommitRequest,
    _version: i16,
) -> impl Future<Output = Option<OffsetCommitResponse>> + Send + 'static + use<> {
    let group_id = request.group_id.0.to_string();
    let who = MemberRef {
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.as_ref().map(|s| s.to_string()),
        generation: request.generation_id_or_member_epoch,
    };
    let offsets: Vec<OffsetToCommit> = request
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| OffsetToCommit {
                topic: t.name.0.to_string(),
                partition: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: p.committed_leader_epoch,
                metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
            })
        })
        .collect();
    let broker = broker.clone();
    async move {
        let result = broker
            .groups()
            .execute(&group_id, |c, now| {
                c.commit_offsets(&group_id, &who, offsets, now)
            })
            .await
            .and_then(|r| r);
        let (group_error, mut per_partition) = match result {
            Ok(results) => (None, results.into_iter()),
            Err(e) => (Some(e), Vec::new().into_iter()),
        };
        let topics = request
            .topics
            .into_iter()
            .map(|t| {
                let partitions = t
                    .partitions
                    .iter()
                    .map(|p| {
                        let error = group_error
                            .clone()
                            .or_else(|| per_partition.next().and_then(Result::err));
                        OffsetCommitResponsePartition::default()
                            .with_partition_index(p.partition_index)
                            .with_error_code(group_code(error.as_ref()))
                    })
                    .collect();
                OffsetCommitResponseTopic::default()
                    .with_name(t.name)
                    .with_partitions(partitions)
            })
            .collect();
        Some(OffsetCommitResponse::default().with_topics(topics))
    }
}
