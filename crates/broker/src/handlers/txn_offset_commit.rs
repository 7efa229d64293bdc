//! TxnOffsetCommit (v0–v3): a consumer group's offsets, committed inside the producer's
//! transaction. The group's `__consumer_offsets` partition must be in the transaction
//! (AddOffsetsToTxn) at the producer's current epoch; the offsets are written as a
//! transactional batch of the producer and take effect at its commit marker (an abort drops
//! them). v3 checks the member and generation, as OffsetCommit does. v4+ (KIP-890) is not
//! offered.

use crate::error::group_code;
use crate::server::Broker;
use crate::transactions::Verified;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};
use sluice_group::{GroupError, MemberRef, OffsetToCommit};
use sluice_types::TopicPartition;
use std::future::Future;
use std::sync::Arc;

pub(crate) fn handle(
    broker: &Arc<Broker>,
    request: TxnOffsetCommitRequest,
    version: i16,
) -> impl Future<Output = Option<TxnOffsetCommitResponse>> + Send + 'static + use<> {
    let broker = broker.clone();
    async move {
        let group_id = request.group_id.0.to_string();
        let producer = (request.producer_id.0, request.producer_epoch);
        let offsets_partition = TopicPartition::new(
            crate::groups::OFFSETS_TOPIC,
            broker.groups().partition_of(&group_id),
        );
        let verified = broker.transactions().verify(
            request.transactional_id.as_str(),
            producer.0,
            producer.1,
            &offsets_partition,
        );
        let refusal = match verified {
            Verified::Yes => None,
            Verified::Fenced if version >= 3 => Some(ResponseError::ProducerFenced.code()),
            Verified::Fenced => Some(ResponseError::InvalidProducerEpoch.code()),
            Verified::NotInTransaction => Some(ResponseError::InvalidTxnState.code()),
        };
        let mut per_partition = Vec::new().into_iter();
        let mut group_error: Option<GroupError> = None;
        if refusal.is_none() {
            let who = MemberRef {
                member_id: request.member_id.to_string(),
                group_instance_id: request.group_instance_id.as_ref().map(|s| s.to_string()),
                generation: request.generation_id,
            };
            let offsets = offsets_of(&request);
            let result = broker
                .groups()
                .execute(&group_id, |c, now| {
                    c.txn_commit_offsets(&group_id, &who, producer, offsets, now)
                })
                .await
                .and_then(|r| r);
            match result {
                Ok(results) => per_partition = results.into_iter(),
                Err(e) => group_error = Some(e),
            }
        }
        let topics = request
            .topics
            .into_iter()
            .map(|t| {
                let partitions = t
                    .partitions
                    .iter()
                    .map(|p| {
                        let code = refusal.unwrap_or_else(|| {
                            let error = group_error
                                .clone()
                                .or_else(|| per_partition.next().and_then(Result::err));
                            group_code(error.as_ref())
                        });
                        TxnOffsetCommitResponsePartition::default()
                            .with_partition_index(p.partition_index)
                            .with_error_code(code)
                    })
                    .collect();
                TxnOffsetCommitResponseTopic::default()
                    .with_name(t.name)
                    .with_partitions(partitions)
            })
            .collect();
        Some(TxnOffsetCommitResponse::default().with_topics(topics))
    }
}

fn offsets_of(request: &TxnOffsetCommitRequest) -> Vec<OffsetToCommit> {
    request
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
        .collect()
}
