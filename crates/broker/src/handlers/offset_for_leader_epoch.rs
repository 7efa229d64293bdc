//! OffsetForLeaderEpoch (v2–v4): where a leader epoch ended in a partition's log, from its
//! leader-epoch cache. A consumer validates its position with it after the partition's epoch
//! changed (KIP-320); a follower uses it to find where its log diverged from the leader's.
//! The request's `current_leader_epoch` is checked as Fetch checks it
//! (`MetadataImage::led_partition`).

use super::now;
use crate::server::Broker;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};
use sluice_storage::leader_epoch::{UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET};
use std::sync::Arc;

pub(crate) fn handle(
    broker: &Arc<Broker>,
    request: OffsetForLeaderEpochRequest,
    _version: i16,
) -> std::future::Ready<Option<OffsetForLeaderEpochResponse>> {
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    end_offset(
                        broker,
                        &t.topic,
                        p.partition,
                        p.current_leader_epoch,
                        p.leader_epoch,
                    )
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic)
                .with_partitions(partitions)
        })
        .collect();
    now(OffsetForLeaderEpochResponse::default().with_topics(topics))
}

fn end_offset(
    broker: &Broker,
    topic: &str,
    index: i32,
    current_leader_epoch: i32,
    leader_epoch: i32,
) -> EpochEndOffset {
    let undefined = EpochEndOffset::default()
        .with_partition(index)
        .with_leader_epoch(UNDEFINED_EPOCH)
        .with_end_offset(UNDEFINED_EPOCH_OFFSET);
    let led = broker
        .metadata()
        .led_partition(topic, index, current_leader_epoch);
    let partition = match led {
        Ok(p) => p,
        Err(e) => return undefined.with_error_code(e.code()),
    };
    let log = partition.log();
    if log.is_offline() {
        return undefined.with_error_code(ResponseError::KafkaStorageError.code());
    }
    let (epoch, end) = log.end_offset_for_epoch(leader_epoch);
    undefined.with_leader_epoch(epoch).with_end_offset(end)
}
