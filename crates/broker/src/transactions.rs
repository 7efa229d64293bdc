//! The transaction coordinators' home in the broker: the internal topic `__transaction_state`
//! (50 partitions by default, compacted; a transactional id lives where Kafka's hash puts it),
//! one coordinator (pure state, `sluice_txn`) per partition this broker leads, when commit
//! and abort markers are written, and the timer that aborts transactions past their timeout.
//! The transaction APIs are handed `TxnCoordinators`, not the broker; a coordinator reaches
//! the broker only to write markers (`WriteMarkers`).
//!
//! A partition's coordinator runs on the broker that leads it, as a shard of the coordinator
//! runtime (`sluice_coordinator`): the metadata publisher loads it there
//! (`Broker::load_transactions`) and unloads it when this broker stops leading the partition
//! (its commands answer NOT_COORDINATOR; failed marker writes are dropped, since the next
//! coordinator finds those transactions ending and writes their markers). Markers for
//! partitions this broker leads are appended here; those of partitions led elsewhere travel
//! as WriteTxnMarkers requests to their leaders, which answer once the markers are fsynced
//! (`txn_peers.rs`).
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

use futures::future::BoxFuture;
use sluice_coordinator::{
    CoordinatorError, CoordinatorShard, Replayed, Runtime, Shard, ShardGuard,
};
use sluice_record::BatchHeader;
use sluice_txn::{
    MarkerWrite, Outcome, TransactionCoordinator, TxnConfig, TxnError, TxnRecord, TxnState,
};
use sluice_types::TopicPartition;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The internal topic holding every transactional id's state.
pub(crate) const TRANSACTION_STATE_TOPIC: &str = "__transaction_state";

/// Sluice runs one transaction coordinator per id, so markers carry coordinator epoch 0.
pub(crate) const COORDINATOR_EPOCH: i32 = 0;

/// How long after a failed marker write it is tried again.
const MARKER_RETRY: Duration = Duration::from_millis(200);

/// One `__transaction_state` partition's coordinator, as the runtime keeps it.
pub(crate) struct TxnShard {
    coordinator: TransactionCoordinator,
    /// Marker writes that failed, to be tried again. At most one per transactional id: a
    /// transaction stays ending (and its id can start no other) until its markers are written.
    unfinished: Vec<MarkerWrite>,
}

impl TxnShard {
    pub(crate) fn new(coordinator: TransactionCoordinator) -> TxnShard {
        TxnShard {
            coordinator,
            unfinished: Vec::new(),
        }
    }
}

impl CoordinatorShard for TxnShard {
    const KIND: &'static str = "transaction";

    /// Nothing transactional is written to this topic, so no markers either.
    fn replay(&mut self, _: &BatchHeader, item: Replayed<'_>) -> bool {
        match item {
            Replayed::Record { key, value } => match TxnRecord::decode(key, value) {
                Ok(record) => {
                    self.coordinator.replay(record);
                    true
                }
                Err(_) => false,
            },
            Replayed::Marker(_) => true,
        }
    }

    /// Failed marker writes are the next coordinator's: it finds their transactions ending.
    fn unloaded(&mut self) {
        self.unfinished.clear();
    }
}

/// What a transaction coordinator needs of the broker: a transaction's markers written to
/// every partition it touched and fsynced, here or by the partitions' leaders (`txn_peers.rs`).
/// A partition whose topic is gone needs none. On a failure, the partitions still without a
/// durable marker, and what went wrong.
pub(crate) trait WriteMarkers: Send + Sync + 'static {
    fn write_markers<'a>(
        &'a self,
        write: &'a MarkerWrite,
    ) -> BoxFuture<'a, Result<(), (Vec<TopicPartition>, String)>>;
}

/// The transaction coordinators of the `__transaction_state` partitions this broker leads:
/// what the transaction APIs are handed, instead of the broker.
pub(crate) struct TxnCoordinators {
    config: TxnConfig,
    runtime: Runtime<TxnShard>,
    /// The broker, which owns these coordinators (hence weak), for markers.
    markers: OnceLock<Weak<dyn WriteMarkers>>,
}

impl std::fmt::Debug for TxnCoordinators {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxnCoordinators")
            .field("runtime", &self.runtime)
            .finish()
    }
}

impl TxnCoordinators {
    /// No coordinator loaded yet; `shutdown` stops their timers.
    pub(crate) fn new(config: TxnConfig, shutdown: CancellationToken) -> TxnCoordinators {
        TxnCoordinators {
            config,
            runtime: Runtime::new(shutdown),
            markers: OnceLock::new(),
        }
    }

    /// Gives the coordinators their way to write markers (once, as the broker starts).
    pub(crate) fn attach(&self, markers: Weak<dyn WriteMarkers>) {
        let attached = self.markers.set(markers).is_ok();
        assert!(attached, "transaction coordinators attached twice");
    }

    /// The runtime (the publisher unloads through it, metrics count its shards).
    pub(crate) fn runtime(&self) -> &Runtime<TxnShard> {
        &self.runtime
    }

    /// Replays `log` (a `__transaction_state` partition of `partition_count`, led here in
    /// `leader_epoch`) into a coordinator, unless it is loaded in that epoch already. The new
    /// coordinator, whose timer the caller starts. Blocking.
    pub(crate) fn load(
        &self,
        log: Arc<dyn sluice_coordinator::ShardLog>,
        partition_count: i32,
        leader_epoch: i32,
    ) -> Result<Option<Transactions>, CoordinatorError> {
        let state = TxnShard::new(TransactionCoordinator::new(self.config));
        let loaded = self
            .runtime
            .load(log, partition_count, leader_epoch, state)?;
        Ok(loaded.and_then(|shard| self.handle(shard)))
    }

    /// The coordinator of `transactional_id` (NOT_COORDINATOR if it is elsewhere).
    pub(crate) fn of(&self, transactional_id: &str) -> Result<Transactions, TxnError> {
        let shard = self.runtime.of(transactional_id);
        let shard = shard.ok_or(TxnError::NotCoordinator)?;
        self.handle(shard).ok_or(TxnError::CoordinatorNotAvailable)
    }

    /// Every coordinator loaded here (ListTransactions).
    pub(crate) fn all(&self) -> Vec<Transactions> {
        let loaded = self.runtime.loaded().into_iter();
        loaded.filter_map(|shard| self.handle(shard)).collect()
    }

    /// Runs a command of `transactional_id`'s coordinator (see `Transactions::run`).
    pub(crate) async fn run<T>(
        &self,
        transactional_id: &str,
        command: impl FnOnce(&mut TransactionCoordinator) -> Outcome<T>,
    ) -> Result<T, TxnError> {
        self.of(transactional_id)?.run(command).await
    }

    /// None once the broker is gone (shutting down).
    fn handle(&self, shard: Arc<Shard<TxnShard>>) -> Option<Transactions> {
        let markers = self.markers.get()?.upgrade()?;
        Some(Transactions { shard, markers })
    }
}

/// The transaction coordinator of one `__transaction_state` partition led here.
#[derive(Clone)]
pub(crate) struct Transactions {
    shard: Arc<Shard<TxnShard>>,
    markers: Arc<dyn WriteMarkers>,
}

impl std::fmt::Debug for Transactions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transactions")
            .field("partition", &self.shard.index())
            .finish()
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
    /// The coordinator's state, unless it was unloaded (its ids moved to another broker).
    fn serving(&self) -> Result<ShardGuard<'_, TxnShard>, TxnError> {
        let state = self.shard.serving();
        state.map_err(|e| crate::error::coordinator_txn_error(&e))
    }

    /// Reads the coordinator's state (DescribeTransactions, ListTransactions).
    pub(crate) fn inspect<T>(&self, f: impl FnOnce(&TransactionCoordinator) -> T) -> T {
        f(&self.shard.lock().coordinator)
    }

    /// Runs a command: appends its records, waits until they are durable, writes and fsyncs
    /// its markers and completes those transactions; then returns its reply.
    pub(crate) async fn run<T>(
        &self,
        command: impl FnOnce(&mut TransactionCoordinator) -> Outcome<T>,
    ) -> Result<T, TxnError> {
        let (reply, markers, durable_at) = {
            let mut state = self.serving()?;
            let outcome = command(&mut state.coordinator);
            let durable_at = append(&state, &outcome.effects.records)?;
            (outcome.reply, outcome.effects.markers, durable_at)
        };
        if let Some(offset) = durable_at
            && !self.shard.wait_durable(offset).await
        {
            return Err(TxnError::CoordinatorNotAvailable);
        }
        for write in markers {
            self.complete(write, Attempt::First).await;
        }
        reply
    }

    /// Writes a transaction's markers, waits until they are durable, then records it complete.
    /// A partition that no longer exists (its topic was deleted) needs no marker; the
    /// partitions still without a durable marker after a failure are kept for
    /// `retry_unfinished` (the others are not written twice).
    async fn complete(&self, write: MarkerWrite, attempt: Attempt) {
        if let Err((remaining, e)) = self.markers.write_markers(&write).await {
            if attempt == Attempt::First {
                tracing::error!(transactional_id = %write.transactional_id, error = %e, "transaction markers not written; retrying");
            }
            // An unloaded coordinator keeps nothing: the next one finds the transaction ending.
            if let Ok(mut state) = self.serving() {
                state.unfinished.push(MarkerWrite {
                    partitions: remaining,
                    ..write
                });
                self.shard.wake_timer();
            }
            return;
        }
        if attempt == Attempt::Retry {
            tracing::info!(transactional_id = %write.transactional_id, "transaction markers written on a retry");
        }
        let Ok(mut state) = self.serving() else {
            // Unloaded: the next coordinator finds the transaction ending and completes it.
            return;
        };
        let effects = state.coordinator.markers_written(&write, crate::now_ms());
        if let Err(e) = append(&state, &effects.records) {
            tracing::error!(error = ?e, "could not record a transaction complete");
        }
    }

    /// Tries the marker writes that failed again.
    async fn retry_unfinished(&self) {
        let writes = std::mem::take(&mut self.shard.lock().unfinished);
        for write in writes {
            self.complete(write, Attempt::Retry).await;
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
        let state = self.shard.lock();
        let Some(m) = state.coordinator.get(transactional_id) else {
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

    /// Completes the transactions found ending at start, then aborts timed-out transactions
    /// and expires idle transactional ids every `every_ms`, and retries failed marker writes
    /// every `MARKER_RETRY`.
    pub(crate) async fn tick_loop(self, every_ms: u64) {
        let recovered = self.shard.lock().coordinator.recover();
        for write in recovered.markers {
            tracing::info!(transactional_id = %write.transactional_id, commit = write.commit, "completing a transaction found ending at start");
            self.complete(write, Attempt::First).await;
        }
        let every = Duration::from_millis(every_ms.max(10));
        let mut next_tick = tokio::time::Instant::now() + every;
        loop {
            let retry_at = tokio::time::Instant::now() + MARKER_RETRY;
            let wake = if self.shard.lock().unfinished.is_empty() {
                next_tick
            } else {
                retry_at.min(next_tick)
            };
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => {}
                // A write just failed: sleep again, now until its retry.
                _ = self.shard.timer_woken() => continue,
                _ = self.shard.stopped() => return,
            }
            self.retry_unfinished().await;
            if tokio::time::Instant::now() < next_tick {
                continue;
            }
            next_tick = tokio::time::Instant::now() + every;
            let now = crate::now_ms();
            let ticked = self
                .run(|c| Outcome {
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

/// Appends records to `__transaction_state` under the coordinator's lock; the offset to wait
/// on for durability.
fn append(
    state: &ShardGuard<'_, TxnShard>,
    records: &[TxnRecord],
) -> Result<Option<i64>, TxnError> {
    let encoded: Vec<(Vec<u8>, Option<Vec<u8>>)> = records.iter().map(TxnRecord::encode).collect();
    state.append(&encoded, None, crate::now_ms()).map_err(|e| {
        if e != CoordinatorError::Unloaded {
            tracing::error!(error = %e, "could not write to {TRANSACTION_STATE_TOPIC}");
        }
        crate::error::coordinator_txn_error(&e)
    })
}

/// Whether a marker write is tried for the first time (a failure is logged) or again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attempt {
    First,
    Retry,
}
