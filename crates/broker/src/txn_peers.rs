//! Transactions across brokers, the broker's side: a transaction's markers written to the
//! partitions this broker leads and sent as WriteTxnMarkers to the leaders of the others
//! (`WriteMarkers`, what a transaction coordinator is given of the broker), and a
//! transactional produce verified with its coordinator on another broker (AddPartitionsToTxn
//! v4 `verify_only`, KIP-890).
//!
//! Not owned here: the coordinators and when they write markers (`transactions.rs`), the
//! connections to other brokers (`peers.rs`).

use crate::server::Broker;
use crate::transactions::{COORDINATOR_EPOCH, TRANSACTION_STATE_TOPIC, WriteMarkers};
use futures::future::BoxFuture;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, ProducerId, TopicName, TransactionalId, WriteTxnMarkersRequest,
};
use kafka_protocol::protocol::StrBytes;
use sluice_record::{ControlMarker, encode_marker_batch};
use sluice_storage::AppendOrigin;
use sluice_txn::MarkerWrite;
use sluice_types::TopicPartition;
use std::collections::BTreeMap;

impl WriteMarkers for Broker {
    fn write_markers<'a>(
        &'a self,
        write: &'a MarkerWrite,
    ) -> BoxFuture<'a, Result<(), (Vec<TopicPartition>, String)>> {
        Box::pin(write_markers(self, write))
    }
}

/// Writes a transaction's markers and waits until they are durable: appended here to the
/// partitions this broker leads, sent as WriteTxnMarkers to the leaders of the others (a
/// partition whose topic is gone needs none). On a failure, returns the partitions that
/// still need theirs (those refused, those without a leader, any whose fsync failed) and
/// what went wrong.
async fn write_markers(
    broker: &Broker,
    write: &MarkerWrite,
) -> Result<(), (Vec<TopicPartition>, String)> {
    let now = crate::now_ms();
    let marker = ControlMarker {
        commit: write.commit,
        coordinator_epoch: COORDINATOR_EPOCH,
    };
    let batch = encode_marker_batch(write.producer_id, write.producer_epoch, marker, now);
    let mut written = Vec::with_capacity(write.partitions.len());
    let mut remote: BTreeMap<i32, Vec<TopicPartition>> = BTreeMap::new();
    let mut remaining = Vec::new();
    let mut error = None;
    let image = broker.metadata();
    for tp in &write.partitions {
        match image.led_partition(&tp.topic, tp.partition, -1) {
            Ok(partition) => match partition.append(&batch, AppendOrigin::Broker, now) {
                Ok(info) => {
                    if tp.topic == crate::groups::OFFSETS_TOPIC {
                        broker
                            .groups()
                            .complete_txn(tp.partition, write.producer_id, write.commit);
                    }
                    written.push((tp, partition, info.last_offset + 1));
                }
                Err(e) => {
                    error = Some(format!("appending to {tp}: {e}"));
                    remaining.push(tp.clone());
                }
            },
            Err(ResponseError::UnknownTopicOrPartition) => {}
            Err(e) => match image.current_leader(&tp.topic, tp.partition) {
                Some((leader, _)) if leader >= 0 && leader != image.local_node_id() => {
                    remote.entry(leader).or_default().push(tp.clone());
                }
                _ => {
                    error = Some(format!("{tp}: {e:?}"));
                    remaining.push(tp.clone());
                }
            },
        }
    }
    // All partitions fsync at once rather than one after another.
    let durable = futures::future::join_all(written.iter().map(|(tp, partition, offset)| {
        let at = (tp.topic.as_str(), tp.partition);
        broker.wait_written(at, partition, *offset)
    }))
    .await;
    for ((tp, _, _), durable) in written.iter().zip(durable) {
        if !durable {
            error = Some("a marker was not fsynced (or replicated)".to_string());
            remaining.push((*tp).clone());
        }
    }
    for (leader, partitions) in remote {
        if let Err((refused, e)) = send_markers(broker, leader, write, partitions).await {
            error = Some(e);
            remaining.extend(refused);
        }
    }
    match error {
        None => Ok(()),
        Some(e) => Err((remaining, e)),
    }
}

/// Sends a transaction's markers for `partitions` to their leader `leader` (WriteTxnMarkers);
/// the partitions it did not write, and why.
async fn send_markers(
    broker: &Broker,
    leader: i32,
    write: &MarkerWrite,
    partitions: Vec<TopicPartition>,
) -> Result<(), (Vec<TopicPartition>, String)> {
    let Some(address) = broker.peer_address(&broker.cluster.image(), leader) else {
        return Err((partitions, format!("broker {leader} is not reachable")));
    };
    let topics = sluice_types::by_topic(&partitions)
        .into_iter()
        .map(|(name, indexes)| {
            WritableTxnMarkerTopic::default()
                .with_name(TopicName(StrBytes::from_string(name.to_string())))
                .with_partition_indexes(indexes)
        })
        .collect();
    let marker = WritableTxnMarker::default()
        .with_producer_id(ProducerId(write.producer_id))
        .with_producer_epoch(write.producer_epoch)
        .with_transaction_result(write.commit)
        .with_coordinator_epoch(COORDINATOR_EPOCH)
        .with_topics(topics);
    let request = WriteTxnMarkersRequest::default().with_markers(vec![marker]);
    let response = broker.peers.send(leader, &address, &request).await;
    let response = response.map_err(|e| (partitions.clone(), format!("broker {leader}: {e}")))?;
    let refused: Vec<TopicPartition> = response
        .markers
        .iter()
        .flat_map(|m| m.topics.iter())
        .flat_map(|t| {
            t.partitions
                .iter()
                .filter(|p| p.error_code != 0)
                .map(|p| TopicPartition::new(t.name.as_str(), p.partition_index))
        })
        .collect();
    if refused.is_empty() {
        Ok(())
    } else {
        Err((refused, format!("broker {leader} refused some markers")))
    }
}

/// Asks the transaction coordinator of `transactional_id`, on another broker, whether `tp`
/// is in `producer`'s open transaction (AddPartitionsToTxn v4, `verify_only`; KIP-890). A
/// coordinator that cannot be asked or answers NOT_COORDINATOR makes NOT_ENOUGH_REPLICAS, the
/// retriable error Kafka answers a produce with when verification cannot be done.
pub(crate) async fn verify_remotely(
    broker: &Broker,
    transactional_id: &str,
    (producer_id, producer_epoch): (i64, i16),
    tp: &TopicPartition,
) -> Result<(), ResponseError> {
    let unavailable = ResponseError::NotEnoughReplicas;
    let image = broker.published_image();
    let Some(topic) = image.topic(TRANSACTION_STATE_TOPIC) else {
        return Err(ResponseError::InvalidTxnState);
    };
    let index = sluice_types::partition_for(transactional_id, topic.partitions.len() as i32);
    let leader = topic.partitions.get(&index).map_or(-1, |p| p.leader);
    if leader < 0 || leader == broker.config.node_id {
        return Err(unavailable);
    }
    let address = broker
        .peer_address(&broker.cluster.image(), leader)
        .ok_or(unavailable)?;
    let topics = vec![
        AddPartitionsToTxnTopic::default()
            .with_name(TopicName(StrBytes::from_string(tp.topic.clone())))
            .with_partitions(vec![tp.partition]),
    ];
    let transaction = AddPartitionsToTxnTransaction::default()
        .with_transactional_id(TransactionalId(StrBytes::from_string(
            transactional_id.to_string(),
        )))
        .with_producer_id(ProducerId(producer_id))
        .with_producer_epoch(producer_epoch)
        .with_verify_only(true)
        .with_topics(topics);
    let request = AddPartitionsToTxnRequest::default().with_transactions(vec![transaction]);
    let response = match broker.peers.send(leader, &address, &request).await {
        Ok(response) => response,
        Err(e) => {
            tracing::debug!(leader, error = %e, "transaction verification not answered");
            return Err(unavailable);
        }
    };
    if response.error_code != 0 {
        return Err(unavailable);
    }
    let code = response
        .results_by_transaction
        .iter()
        .flat_map(|t| t.topic_results.iter())
        .flat_map(|t| t.results_by_partition.iter())
        .find(|p| p.partition_index == tp.partition)
        .map_or(ResponseError::UnknownServerError.code(), |p| {
            p.partition_error_code
        });
    match ResponseError::try_from_code(code) {
        None => Ok(()),
        Some(e @ (ResponseError::InvalidProducerEpoch | ResponseError::InvalidTxnState)) => Err(e),
        Some(_) => Err(unavailable),
    }
}
