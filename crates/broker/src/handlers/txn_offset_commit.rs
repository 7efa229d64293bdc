//! TxnOffsetCommit (v0–v3): a consumer group's offsets, committed inside the producer's
//! transaction. The group's `__consumer_offsets` partition must be in the transaction
//! (AddOffsetsToTxn) at the producer's current epoch; the offsets are written as a
//! transactional batch of the producer and take effect at its commit marker (an abort drops
//! them). v3 checks the member and generation, as OffsetCommit does. v4+ (KIP-890) is not
//! offered.

use super::offset_commit::{PartitionCodes, offset_to_commit};
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
        let id = request.transactional_id.as_str();
        let refusal = match broker.groups().partition_of(&group_id) {
            Err(e) => Some(crate::error::group_error(&e)),
            Ok(index) => {
                let offsets_partition = TopicPartition::new(crate::groups::OFFSETS_TOPIC, index);
                match verify(&broker, id, producer, &offsets_partition).await {
                    Ok(Verified::Yes) => None,
                    Ok(Verified::Fenced) if version >= 3 => Some(ResponseError::ProducerFenced),
                    Ok(Verified::Fenced) => Some(ResponseError::InvalidProducerEpoch),
                    Ok(Verified::NotInTransaction) => Some(ResponseError::InvalidTxnState),
                    Err(e) => Some(e),
                }
            }
        };
        let mut codes = match refusal {
            Some(refusal) => PartitionCodes::All(refusal.code()),
            None => PartitionCodes::new(commit(&broker, &request, &group_id, producer).await),
        };
        let topics = request
            .topics
            .into_iter()
            .map(|t| {
                let partitions = t
                    .partitions
                    .iter()
                    .map(|p| {
                        TxnOffsetCommitResponsePartition::default()
                            .with_partition_index(p.partition_index)
                            .with_error_code(codes.next_code())
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

/// Hands the offsets to the group coordinator as pending in the producer's transaction.
async fn commit(
    broker: &Broker,
    request: &TxnOffsetCommitRequest,
    group_id: &str,
    producer: (i64, i16),
) -> Result<Vec<Result<(), GroupError>>, GroupError> {
    let who = MemberRef {
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.as_ref().map(|s| s.to_string()),
        generation: request.generation_id,
    };
    let offsets = offsets_of(request);
    broker
        .groups()
        .execute(group_id, |c, now| {
            c.txn_commit_offsets(group_id, &who, producer, offsets, now)
        })
        .await
        .and_then(|r| r)
}

fn offsets_of(request: &TxnOffsetCommitRequest) -> Vec<OffsetToCommit> {
    request
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
        .collect()
}

/// Whether the group's offsets partition is in the producer's open transaction, as its
/// coordinator says: here, or on another broker (AddPartitionsToTxn `verify_only`).
/// Err: the coordinator could not be asked (COORDINATOR_NOT_AVAILABLE, which the client
/// retries).
async fn verify(
    broker: &Broker,
    transactional_id: &str,
    producer: (i64, i16),
    offsets_partition: &TopicPartition,
) -> Result<Verified, ResponseError> {
    if let Ok(transactions) = broker.transactions(transactional_id) {
        let (id, epoch) = producer;
        return Ok(transactions.verify(transactional_id, id, epoch, offsets_partition));
    }
    let remote =
        crate::txn_peers::verify_remotely(broker, transactional_id, producer, offsets_partition);
    match remote.await {
        Ok(()) => Ok(Verified::Yes),
        Err(ResponseError::InvalidProducerEpoch) => Ok(Verified::Fenced),
        Err(ResponseError::InvalidTxnState) => Ok(Verified::NotInTransaction),
        Err(_) => Err(ResponseError::CoordinatorNotAvailable),
    }
}
