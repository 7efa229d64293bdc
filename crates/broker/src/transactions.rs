//! The transaction coordinator's home in the broker: the internal topic `__transaction_state`
//! (one partition, compacted), the coordinator itself (pure state, `sluice_txn`), the writing
//! of commit and abort markers, and the timer that aborts transactions past their timeout.
//!
//! A command runs under the coordinator's lock and its records are appended before the lock is
//! released, so the log's order is the order of decisions. Outside the lock the broker waits
//! until those records are fsynced (a producer told "committed" must find it so after any
//! crash), then writes the markers the command calls for, fsyncs them, and only then records
//! the transaction complete and answers. Markers are therefore durable before a transaction
//! is complete; a restart finds any transaction that was ending and writes its markers again
//! (a second marker for a transaction already closed changes nothing).

use crate::internal_topics::Replayed;
use crate::server::Broker;
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

pub(crate) struct Transactions {
    log: Arc<Partition>,
    coordinator: Mutex<TransactionCoordinator>,
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
    /// Creates `__transaction_state` on first start and replays it.
    pub(crate) fn open(
        broker: &Arc<Broker>,
        config: TxnConfig,
    ) -> Result<Transactions, StorageError> {
        let topic = match broker.logs.topic(TRANSACTION_STATE_TOPIC) {
            Some(topic) => topic,
            None => {
                let configs =
                    BTreeMap::from([("cleanup.policy".to_string(), "compact".to_string())]);
                broker.create_topic(TRANSACTION_STATE_TOPIC, 1, configs)?
            }
        };
        let log = topic
            .partition(0)
            .ok_or_else(|| StorageError::UnknownPartition {
                topic: TRANSACTION_STATE_TOPIC.into(),
                partition: 0,
            })?;
        let mut coordinator = TransactionCoordinator::new(config);
        load(&log, &mut coordinator)?;
        Ok(Transactions {
            log,
            coordinator: Mutex::new(coordinator),
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
            self.complete(broker, write).await;
        }
        reply
    }

    /// Writes a transaction's markers, waits until they are durable, then records it complete.
    /// A partition that no longer exists (its topic was deleted) needs no marker; a partition
    /// that fails leaves the transaction ending, to be completed after the next start.
    async fn complete(&self, broker: &Broker, write: MarkerWrite) {
        let now = crate::now_ms();
        let marker = ControlMarker {
            commit: write.commit,
            coordinator_epoch: COORDINATOR_EPOCH,
        };
        let batch = encode_marker_batch(write.producer_id, write.producer_epoch, marker, now);
        let mut written = Vec::with_capacity(write.partitions.len());
        for tp in &write.partitions {
            let Ok(partition) = broker.logs.partition(&tp.topic, tp.partition) else {
                continue;
            };
            match partition.append(&batch, AppendOrigin::Broker, now) {
                Ok(info) => {
                    if tp.topic == crate::groups::OFFSETS_TOPIC {
                        broker
                            .groups()
                            .complete_txn(tp.partition, write.producer_id, write.commit);
                    }
                    written.push((partition, info.last_offset + 1));
                }
                Err(e) => {
                    tracing::error!(transactional_id = %write.transactional_id, partition = %tp, error = %e, "could not write a transaction marker; the transaction completes after a restart");
                    return;
                }
            }
        }
        // All partitions fsync at once rather than one after another.
        let durable =
            futures::future::join_all(written.iter().map(|(p, offset)| p.wait_durable(*offset)))
                .await;
        if durable.contains(&false) {
            tracing::error!(transactional_id = %write.transactional_id, "a transaction marker was not fsynced; the transaction completes after a restart");
            return;
        }
        let mut coordinator = self.lock();
        let effects = coordinator.markers_written(&write, crate::now_ms());
        if let Err(e) = self.append(&effects.records) {
            tracing::error!(error = ?e, "could not record a transaction complete");
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
    /// and expires idle transactional ids every `every_ms`.
    pub(crate) async fn tick_loop(
        self: Arc<Self>,
        broker: Arc<Broker>,
        every_ms: u64,
        shutdown: CancellationToken,
    ) {
        let recovered = self.lock().recover();
        for write in recovered.markers {
            tracing::info!(transactional_id = %write.transactional_id, commit = write.commit, "completing a transaction found ending at start");
            self.complete(&broker, write).await;
        }
        let every = Duration::from_millis(every_ms.max(10));
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = shutdown.cancelled() => return,
            }
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
