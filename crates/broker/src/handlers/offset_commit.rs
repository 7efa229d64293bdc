//! OffsetCommit (v2–v9): commits are checked against the member and its generation, written to
//! `__consumer_offsets` and answered once fsynced.

use crate::error::group_code;
use crate::groups::Groups;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use sluice_group::{GroupError, MemberRef, OffsetToCommit};
use std::future::Future;
use std::sync::Arc;

pub(crate) fn handle(
    groups: &Arc<Groups>,
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
            t.partitions.iter().map(|p| {
                offset_to_commit(
                    &t.name,
                    p.partition_index,
                    p.committed_offset,
                    p.committed_leader_epoch,
                    p.committed_metadata.as_ref(),
                )
            })
        })
        .collect();
    let groups = groups.clone();
    async move {
        let result = groups
            .execute(&group_id, |c, now| {
                c.commit_offsets(&group_id, &who, offsets, now)
            })
            .await
            .and_then(|r| r);
        let mut codes = PartitionCodes::new(result);
        let topics = request
            .topics
            .into_iter()
            .map(|t| {
                let partitions = t
                    .partitions
                    .iter()
                    .map(|p| {
                        OffsetCommitResponsePartition::default()
                            .with_partition_index(p.partition_index)
                            .with_error_code(codes.next_code())
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

/// An offset to commit, from a request partition's fields (OffsetCommit and TxnOffsetCommit).
pub(super) fn offset_to_commit(
    topic: &TopicName,
    partition: i32,
    offset: i64,
    leader_epoch: i32,
    metadata: Option<&StrBytes>,
) -> OffsetToCommit {
    OffsetToCommit {
        topic: topic.0.to_string(),
        partition,
        offset,
        leader_epoch,
        metadata: metadata.map(|m| m.to_string()),
    }
}

/// The error code of each partition of a commit, in request order.
pub(super) enum PartitionCodes {
    /// One code for every partition: the whole commit was refused.
    All(i16),
    /// Each partition's own result.
    Each(std::vec::IntoIter<Result<(), GroupError>>),
}

impl PartitionCodes {
    pub(super) fn new(result: Result<Vec<Result<(), GroupError>>, GroupError>) -> PartitionCodes {
        match result {
            Ok(each) => PartitionCodes::Each(each.into_iter()),
            Err(e) => PartitionCodes::All(group_code(Some(&e))),
        }
    }

    pub(super) fn next_code(&mut self) -> i16 {
        match self {
            PartitionCodes::All(code) => *code,
            PartitionCodes::Each(each) => group_code(each.next().and_then(Result::err).as_ref()),
        }
    }
}
