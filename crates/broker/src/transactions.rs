//! The transaction coordinators' home in the broker: the internal topic `__transaction_state`
//! (50 partitions by default, compacted; a transactional id lives where Kafka's hash puts it),
//! one coordinator (pure state, `sluice_txn`) per partition this broker leads, the writing of
//! commit and abort markers, and the timer that aborts transactions past their timeout.
//!
//! A partition's coordinator runs on the broker that leads it: the metadata publisher loads it
//! there (`Broker::load_transactions`, one `coordinator_shards` shard per partition). While partitions have one replica their leader never
//! changes broker, so nothing is unloaded; moving coordinators with leadership is the
//! replicated-partitions issue's. Markers for partitions this broker leads are
//! appended here; those of partitions led elsewhere travel as WriteTxnMarkers requests to
//! their leaders (`peers`), which answer once the markers are fsynced.
//!
//! A command runs under the coordinator's lock and its records are appended before the lock is
//! released, so the log's order is the order of decisions. Outside the lock the broker waits
//! until those records are fsynced (a producer told "committed" must find it so after any
//! crash), then writes the markers the command calls for, fsyncs them, and only then records
//! the transaction complete and answers. Markers are therefore durable before a transaction
//! is complete; a restart finds any transaction that was ending and writes its markers again
//! (a second marker for a transaction already closed changes nothing). Markers that could not
//! be written (a full disk, a partition refusing the batch) are written again every
//! `MARKER_RETRY` until they are; the transaction stays ending, and its producer waits
//! (CONCURRENT_TRANSACTIONS), until then.

use crate::internal_topics::Replayed;
use crate::server::Broker;
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
use sluice_storage::{AppendOrigin, Partition, StorageError};
use sluice_txn::{
    MarkerWrite, Outcome, TransactionCoordinator, TxnConfig, TxnError, TxnRecord, TxnState,
};
use sluice_types::TopicPartition;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The internal topic holding every transactional id's state.
pub(crate) const TRANSACTION_STATE_TOPIC: &str = "__transaction_state";

/// Sluice runs one transaction coordinator, so markers carry coordinator epoch 0.
const COORDINATOR_EPOCH: i32 = 0;

/// How long after a failed marker write it is tried again.
const MARKER_RETRY: Duration = Duration::from_millis(200);

/// The `__transaction_state` partition of a transactional id: Kafka's hash (the same as a
/// group's in `__consumer_offsets`).
pub(crate) fn partition_for(transactional_id: &str, partitions: i32) -> i32 {
    sluice_group::partition_for(transactional_id, partitions)
}

pub(crate) struct Transactions {
    log: Arc<Partition>,
    coordinator: Mutex<TransactionCoordinator>,
    /// Marker writes that failed, to be tried again. At most one per transactional id: a
    /// transaction stays ending (and its id can start no other) until its markers are written.
    unfinished: Mutex<Vec<MarkerWrite>>,
    /// Wakes the tick loop to schedule a retry.
    retry_wanted: tokio::sync::Notify,
}

impl std::fmt::Debug for Transactions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transactions").finish_non_exhaustive()
    }
}

/// Whether a transactional produce to a partition may go ahead.
pub(crate) enum Verified {
    Yes,
    /// The producer's epoch is older than the transactional id's: it has been fenced.
    Fenced,
    /// No open transaction of this producer holds the partition.
    NotInTransaction,
}

impl Transactions {
    /// Replays `__transaction_state`'s partition `log` into a coordinator. Blocking: call it
    /// off the runtime's threads.
    pub(crate) fn load(
        log: Arc<Partition>,
        config: TxnConfig,
    ) -> Result<Transactions, StorageError> {
        let mut coordinator = TransactionCoordinator::new(config);
        load(&log, &mut coordinator)?;
        Ok(Transactions {
            log,
            coordinator: Mutex::new(coordinator),
            unfinished: Mutex::new(Vec::new()),
            retry_wanted: tokio::sync::Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, TransactionCoordinator> {
        self.coordinator.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads the coordinator's state (DescribeTransactions, ListTransactions).
    pub(crate) fn inspect<T>(&self, f: impl FnOnce(&TransactionCoordinator) -> T) -> T {
        f(&self.lock())
    }

    /// Runs a command: appends its records, waits until they are durable, writes and fsyncs
    /// its markers and completes those transactions; then returns its reply.
    pub(crate) async fn run<T>(
        &self,
        broker: &Broker,
        command: impl FnOnce(&mut TransactionCoordinator) -> Outcome<T>,
    ) -> Result<T, TxnError> {
        let (reply, markers, durable_at) = {
            let mut coordinator = self.lock();
            let outcome = command(&mut coordinator);
            let durable_at = self.append(&outcome.effects.records)?;
            (outcome.reply, outcome.effects.markers, durable_at)
        };
        if let Some(offset) = durable_at
            && !self.log.wait_durable(offset).await
        {
            return Err(TxnError::CoordinatorNotAvailable);
        }
        for write in markers {
            self.complete(broker, write, Attempt::First).await;
        }
        reply
    }

    /// Writes a transaction's markers, waits until they are durable, then records it complete.
    /// A partition that no longer exists (its topic was deleted) needs no marker; the
    /// partitions still without a durable marker after a failure are kept for
    /// `retry_unfinished` (the others are not written twice).
    async fn complete(&self, broker: &Broker, write: MarkerWrite, attempt: Attempt) {
        if let Err((remaining, e)) = self.write_markers(broker, &write).await {
            if attempt == Attempt::First {
                tracing::error!(transactional_id = %write.transactional_id, error = %e, "transaction markers not written; retrying");
            }
            self.unfinished_lock().push(MarkerWrite {
                partitions: remaining,
                ..write
            });
            self.retry_wanted.notify_one();
            return;
        }
        if attempt == Attempt::Retry {
            tracing::info!(transactional_id = %write.transactional_id, "transaction markers written on a retry");
        }
        let mut coordinator = self.lock();
        let effects = coordinator.markers_written(&write, crate::now_ms());
        if let Err(e) = self.append(&effects.records) {
            tracing::error!(error = ?e, "could not record a transaction complete");
        }
    }

    fn unfinished_lock(&self) -> MutexGuard<'_, Vec<MarkerWrite>> {
        self.unfinished.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Tries the marker writes that failed again.
    async fn retry_unfinished(&self, broker: &Broker) {
        let writes = std::mem::take(&mut *self.unfinished_lock());
        for write in writes {
            self.complete(broker, write, Attempt::Retry).await;
        }
    }

    /// Writes a transaction's markers and waits until they are durable: appended here to the
    /// partitions this broker leads, sent as WriteTxnMarkers to the leaders of the others (a
    /// partition whose topic is gone needs none). On a failure, returns the partitions that
    /// still need theirs (those refused, those without a leader, any whose fsync failed) and
    /// what went wrong.
    async fn write_markers(
        &self,
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
                            broker.groups().complete_txn(
                                tp.partition,
                                write.producer_id,
                                write.commit,
                            );
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
        let durable = futures::future::join_all(
            written
                .iter()
                .map(|(_, partition, offset)| partition.wait_durable(*offset)),
        )
        .await;
        for ((tp, _, _), durable) in written.iter().zip(durable) {
            if !durable {
                error = Some("a marker was not fsynced".to_string());
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

    /// Checks that a transactional produce to `tp` belongs to the producer's open transaction.
    pub(crate) fn verify(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        tp: &TopicPartition,
    ) -> Verified {
        let coordinator = self.lock();
        let Some(m) = coordinator.get(transactional_id) else {
            return Verified::NotInTransaction;
        };
        if m.producer_id != producer_id {
            return Verified::NotInTransaction;
        }
        if producer_epoch < m.producer_epoch {
            return Verified::Fenced;
        }
        if producer_epoch == m.producer_epoch
            && m.state == TxnState::Ongoing
            && m.partitions.contains(tp)
        {
            Verified::Yes
        } else {
            Verified::NotInTransaction
        }
    }

    /// Appends records to `__transaction_state`; returns the offset to wait for durability.
    fn append(&self, records: &[TxnRecord]) -> Result<Option<i64>, TxnError> {
        if records.is_empty() {
            return Ok(None);
        }
        let encoded: Vec<(Vec<u8>, Option<Vec<u8>>)> =
            records.iter().map(TxnRecord::encode).collect();
        let now = crate::now_ms();
        let batch = crate::internal_topics::keyed_batch(&encoded, now);
        match self.log.append(&batch, AppendOrigin::Broker, now) {
            Ok(info) => Ok(Some(info.last_offset + 1)),
            Err(e) => {
                tracing::error!(error = %e, "could not write to {TRANSACTION_STATE_TOPIC}");
                Err(TxnError::CoordinatorNotAvailable)
            }
        }
    }

    /// Completes the transactions found ending at start, then aborts timed-out transactions
    /// and expires idle transactional ids every `every_ms`, and retries failed marker writes
    /// every `MARKER_RETRY`.
    pub(crate) async fn tick_loop(
        self: Arc<Self>,
        broker: Arc<Broker>,
        every_ms: u64,
        shutdown: CancellationToken,
    ) {
        let recovered = self.lock().recover();
        for write in recovered.markers {
            tracing::info!(transactional_id = %write.transactional_id, commit = write.commit, "completing a transaction found ending at start");
            self.complete(&broker, write, Attempt::First).await;
        }
        let every = Duration::from_millis(every_ms.max(10));
        let mut next_tick = tokio::time::Instant::now() + every;
        loop {
            let retry_at = tokio::time::Instant::now() + MARKER_RETRY;
            let wake = if self.unfinished_lock().is_empty() {
                next_tick
            } else {
                retry_at.min(next_tick)
            };
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => {}
                // A write just failed: sleep again, now until its retry.
                _ = self.retry_wanted.notified() => continue,
                _ = shutdown.cancelled() => return,
            }
            self.retry_unfinished(&broker).await;
            if tokio::time::Instant::now() < next_tick {
                continue;
            }
            next_tick = tokio::time::Instant::now() + every;
            let now = crate::now_ms();
            let ticked = self
                .run(&broker, |c| Outcome {
                    reply: Ok(()),
                    effects: c.tick(now),
                })
                .await;
            if let Err(e) = ticked {
                tracing::warn!(error = %e, "transaction timeouts not applied");
            }
        }
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
    let Some(address) = crate::peers::address_of(&broker.cluster.image(), leader) else {
        return Err((partitions, format!("broker {leader} is not reachable")));
    };
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for tp in &partitions {
        by_topic.entry(&tp.topic).or_default().push(tp.partition);
    }
    let topics = by_topic
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
    let index = partition_for(transactional_id, topic.partitions.len() as i32);
    let leader = topic.partitions.get(&index).map_or(-1, |p| p.leader);
    if leader < 0 || leader == broker.config.node_id {
        return Err(unavailable);
    }
    let address = crate::peers::address_of(&broker.cluster.image(), leader).ok_or(unavailable)?;
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

/// Whether a marker write is tried for the first time (a failure is logged) or again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attempt {
    First,
    Retry,
}

/// Replays `__transaction_state` into the coordinator.
fn load(
    partition: &Partition,
    coordinator: &mut TransactionCoordinator,
) -> Result<(), StorageError> {
    // Nothing transactional is written to this topic, so no markers either.
    crate::internal_topics::replay(partition, |_, replayed| match replayed {
        Replayed::Record { key, value } => match TxnRecord::decode(key, value) {
            Ok(record) => {
                coordinator.replay(record);
                true
            }
            Err(_) => false,
        },
        Replayed::Marker(_) => true,
    })
}
