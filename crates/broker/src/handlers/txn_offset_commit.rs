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
        let verified = broker.groups().partition_of(&group_id).map(|index| {
            let offsets_partition = TopicPartition::new(crate::groups::OFFSETS_TOPIC, index);
            // The transaction coordinator is on another broker: taken unverified, as before
            // KIP-890 (its marker, through WriteTxnMarkers, completes the offsets).
            let Ok(transactions) = broker.transactions() else {
                return Verified::Yes;
            };
            transactions.verify(
                request.transactional_id.as_str(),
                producer.0,
                producer.1,
                &offsets_partition,
            )
        });
        let refusal = match verified {
            Ok(Verified::Yes) => None,
            Ok(Verified::Fenced) if version >= 3 => Some(ResponseError::ProducerFenced),
            Ok(Verified::Fenced) => Some(ResponseError::InvalidProducerEpoch),
            Ok(Verified::NotInTransaction) => Some(ResponseError::InvalidTxnState),
            Err(e) => Some(crate::error::group_error(&e)),
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
