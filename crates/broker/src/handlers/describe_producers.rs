//! DescribeProducers (v0): the idempotent and transactional producers a partition keeps state
//! for, with their epoch, last sequence and open transaction (what `kafka-transactions.sh
//! describe-producers` and hanging-transaction tooling read). `last_timestamp` is when the
//! broker last saw the producer, by its own clock: Sluice does not keep batch timestamps in
//! producer state.
//!
//! A partition named more than once is answered once: each answer copies the partition's
//! producer state (up to `PRODUCERS_PER_PARTITION_MAX` entries), so repeats would let a small
//! request demand an answer of any size. An answer is thus at most the size of the state the
//! broker already holds.

use super::now;
use crate::server::Broker;
use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse, ProducerId};
use sluice_storage::ActiveProducer;
use std::collections::HashSet;
use std::sync::Arc;

pub(crate) fn handle(
    broker: &Arc<Broker>,
    request: DescribeProducersRequest,
    _version: i16,
) -> std::future::Ready<Option<DescribeProducersResponse>> {
    let mut seen: HashSet<(String, i32)> = HashSet::new();
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let partitions = topic
                .partition_indexes
                .iter()
                .filter(|&&index| seen.insert((topic.name.to_string(), index)))
                .map(|&index| describe(broker, &topic.name, index))
                .collect();
            TopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    now(DescribeProducersResponse::default().with_topics(topics))
}

fn describe(broker: &Broker, topic: &str, index: i32) -> PartitionResponse {
    let answer = PartitionResponse::default().with_partition_index(index);
    match broker.metadata().led_partition(topic, index, -1) {
        Ok(partition) => {
            let producers = partition.log().active_producers();
            answer.with_active_producers(producers.iter().map(producer_state).collect())
        }
        Err(e) => answer.with_error_code(e.code()),
    }
}

fn producer_state(p: &ActiveProducer) -> ProducerState {
    ProducerState::default()
        .with_producer_id(ProducerId(p.producer_id))
        .with_producer_epoch(i32::from(p.producer_epoch))
        .with_last_sequence(p.last_sequence)
        .with_last_timestamp(p.last_seen_ms)
        .with_coordinator_epoch(p.coordinator_epoch)
        .with_current_txn_start_offset(p.txn_start_offset)
}
