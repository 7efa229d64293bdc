//! The group coordinator's home in the broker: the internal topic `__consumer_offsets`, one
//! `GroupCoordinator` per partition of it that this broker leads (a group lives where Kafka's
//! hash puts it), the parked JoinGroup/SyncGroup requests, and the timer that ticks the
//! coordinators.
//!
//! The shards live in the coordinator runtime (`sluice_coordinator`): a partition's
//! coordinator is loaded (its partition replayed) when the metadata publisher finds this
//! broker leading it, and unloaded when it stops (its parked requests answer NOT_COORDINATOR);
//! a group whose partition is not loaded here answers NOT_COORDINATOR, and FindCoordinator
//! sends its clients to the partition's leader.
//!
//! A command runs under its shard's lock: the coordinator decides, and its records are
//! appended to the shard's partition before the lock is released, so the log's order is the
//! order of decisions. Replies leave once those records are written to the log, as Kafka
//! answers a commit once it is appended (a single Kafka broker does not fsync it either): an
//! acknowledged commit survives `kill -9`; the partition's `flush.ms` bounds what a power
//! failure can take, and losing a commit only means records are delivered again, never lost.
//! Waiting for an fsync per commit capped a 10-member group at about 7,000 commits/s. On a
//! partition with followers, replies wait until the records are on every in-sync replica
//! (Kafka's `acks=-1` for coordinator writes), so a commit answered survives its broker; the
//! coordinator applies them when appended, so until then its own reads may show them. The
//! coordinator itself (pure state) is in `sluice_group`; this module owns only the waiting
//! and the timer.

use sluice_coordinator::{CoordinatorError, CoordinatorShard, Replayed, Runtime, ShardGuard};
use sluice_group::{
    Effects, GroupConfig, GroupCoordinator, GroupError, JoinRequest, JoinResponse, OffsetsRecord,
    Reply, SyncRequest, SyncResponse, WaiterId,
};
use sluice_record::BatchHeader;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

/// The internal topic holding committed offsets and group metadata.
pub(crate) const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Topics clients may read but not write or delete.
pub(crate) fn is_internal(topic: &str) -> bool {
    topic == OFFSETS_TOPIC
        || topic == crate::transactions::TRANSACTION_STATE_TOPIC
        || topic == crate::share_coordinators::SHARE_STATE_TOPIC
}

/// How often deadlines (session timeouts, join-phase ends) are checked: they fire at most this
/// late, against timeouts of seconds.
const TICK_INTERVAL: Duration = Duration::from_millis(50);

pub(crate) struct Groups {
    config: GroupConfig,
    /// The loaded coordinators, by `__consumer_offsets` partition.
    runtime: Runtime<GroupShard>,
    next_waiter: AtomicU64,
}

impl std::fmt::Debug for Groups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Groups")
            .field("runtime", &self.runtime)
            .finish()
    }
}

type Shard = sluice_coordinator::Shard<GroupShard>;

/// One `__consumer_offsets` partition's coordinator and the requests parked on it.
pub(crate) struct GroupShard {
    coordinator: GroupCoordinator,
    waiters: HashMap<WaiterId, Waiter>,
    /// When the shard was loaded: the time its replayed groups are judged against.
    loaded_at_ms: i64,
}

enum Waiter {
    Join(oneshot::Sender<JoinResponse>),
    Sync(oneshot::Sender<SyncResponse>),
}

/// Replies to hand out once the records they depend on are written.
struct Outcome {
    written: Result<(), GroupError>,
    /// The log offset after the last record written, to wait on before answering.
    written_to: Option<i64>,
    deliveries: Vec<(Waiter, Reply)>,
}

impl CoordinatorShard for GroupShard {
    const KIND: &'static str = "group";

    /// Offsets committed in a transaction wait for its marker.
    fn replay(&mut self, header: &BatchHeader, item: Replayed<'_>) -> bool {
        let coordinator = &mut self.coordinator;
        match item {
            Replayed::Marker(marker) => {
                coordinator.complete_txn(header.producer_id, marker.commit);
                true
            }
            Replayed::Record { key, value } => match OffsetsRecord::decode(key, value) {
                Ok(record) if header.is_transactional() => {
                    coordinator.replay_txn_offset(header.producer_id, record);
                    true
                }
                Ok(record) => {
                    coordinator.replay(record, self.loaded_at_ms);
                    true
                }
                Err(_) => false,
            },
        }
    }

    /// Parked JoinGroup and SyncGroup requests answer NOT_COORDINATOR (their senders drop).
    fn unloaded(&mut self) {
        self.waiters.clear();
    }
}

impl Groups {
    /// No coordinator loaded yet; `shutdown` stops the timers.
    pub(crate) fn new(config: GroupConfig, shutdown: CancellationToken) -> Groups {
        Groups {
            config,
            runtime: Runtime::new(shutdown),
            next_waiter: AtomicU64::new(1),
        }
    }

    /// Replays `log` (a partition of a `__consumer_offsets` with `partition_count`
    /// partitions, led here in `leader_epoch`) into a new coordinator that serves its groups
    /// from now on. Blocking: call it off the runtime's threads. A partition already loaded
    /// in this epoch is left as it is.
    pub(crate) fn load(
        &self,
        log: Arc<dyn sluice_coordinator::ShardLog>,
        partition_count: i32,
        leader_epoch: i32,
    ) -> Result<(), CoordinatorError> {
        let state = GroupShard {
            coordinator: GroupCoordinator::new(self.config.clone()),
            waiters: HashMap::new(),
            loaded_at_ms: crate::now_ms(),
        };
        self.runtime
            .load(log, partition_count, leader_epoch, state)?;
        Ok(())
    }

    /// The runtime of the group coordinators (the publisher unloads through it).
    pub(crate) fn runtime(&self) -> &Runtime<GroupShard> {
        &self.runtime
    }

    fn loaded(&self) -> Vec<Arc<Shard>> {
        self.runtime.loaded()
    }

    /// The coordinator of `group_id`, if it is loaded here.
    fn shard(&self, group_id: &str) -> Result<Arc<Shard>, GroupError> {
        self.runtime.of(group_id).ok_or(GroupError::NotCoordinator)
    }

    pub(crate) async fn join(&self, req: JoinRequest) -> JoinResponse {
        let member_id = req.member_id.clone();
        let group_id = req.group_id.clone();
        self.park(&group_id, Waiter::Join, |c, waiter, now| {
            c.join(req, waiter, now)
        })
        .await
        .unwrap_or_else(|e| JoinResponse::error_for(e, &member_id))
    }

    pub(crate) async fn sync(&self, req: SyncRequest) -> SyncResponse {
        let group_id = req.group_id.clone();
        self.park(&group_id, Waiter::Sync, |c, waiter, now| {
            c.sync(req, waiter, now)
        })
        .await
        .unwrap_or_else(SyncResponse::error_for)
    }

    /// Runs a command whose answer may come later (JoinGroup, SyncGroup): registers a waiter
    /// first, since the command itself, another one, or a deadline may answer it.
    async fn park<R>(
        &self,
        group_id: &str,
        waiter: fn(oneshot::Sender<R>) -> Waiter,
        command: impl FnOnce(&mut GroupCoordinator, WaiterId, i64) -> Effects,
    ) -> Result<R, GroupError> {
        let (tx, rx) = oneshot::channel();
        let id = self.next_waiter.fetch_add(1, Ordering::Relaxed);
        let shard = self.shard(group_id)?;
        let outcome = {
            let mut state = serving(&shard)?;
            state.waiters.insert(id, waiter(tx));
            let fx = command(&mut state.coordinator, id, crate::now_ms());
            apply(&mut state, fx)
        };
        deliver(replicated(&shard, outcome).await)?;
        // A waiter dropped unanswered: the shard was unloaded, the group moved.
        rx.await.map_err(|_| GroupError::NotCoordinator)
    }

    /// Runs a command that may write records; its result stands only once they are written.
    pub(crate) async fn execute<T>(
        &self,
        group_id: &str,
        command: impl FnOnce(&mut GroupCoordinator, i64) -> (Effects, T),
    ) -> Result<T, GroupError> {
        let shard = self.shard(group_id)?;
        let (outcome, result) = {
            let mut state = serving(&shard)?;
            let (fx, result) = command(&mut state.coordinator, crate::now_ms());
            (apply(&mut state, fx), result)
        };
        deliver(replicated(&shard, outcome).await)?;
        Ok(result)
    }

    /// A transaction marker was written to partition `index` of `__consumer_offsets`: offsets
    /// the producer committed in that transaction take effect, or are dropped.
    pub(crate) fn complete_txn(&self, index: i32, producer_id: i64, commit: bool) {
        if let Some(shard) = self.runtime.get(index) {
            shard.lock().coordinator.complete_txn(producer_id, commit);
        }
    }

    /// The `__consumer_offsets` partition that holds `group_id`, if its coordinator is here.
    pub(crate) fn partition_of(&self, group_id: &str) -> Result<i32, GroupError> {
        Ok(self.shard(group_id)?.index())
    }

    /// Reads the coordinator of `group_id` without changing it.
    pub(crate) fn read<T>(
        &self,
        group_id: &str,
        query: impl FnOnce(&GroupCoordinator) -> T,
    ) -> Result<T, GroupError> {
        let shard = self.shard(group_id)?;
        Ok(query(&serving(&shard)?.coordinator))
    }

    /// Reads every coordinator loaded here (ListGroups: each broker lists its own groups).
    pub(crate) fn read_all<T>(&self, mut query: impl FnMut(&GroupCoordinator) -> Vec<T>) -> Vec<T> {
        self.loaded()
            .iter()
            .flat_map(|s| {
                serving(s)
                    .map(|s| query(&s.coordinator))
                    .unwrap_or_default()
            })
            .collect()
    }

    /// Every committed offset of every group: (group, topic, partition, offset), for metrics.
    pub(crate) fn all_committed_offsets(&self) -> Vec<(String, String, i32, i64)> {
        self.read_all(|c| {
            c.list_groups()
                .into_iter()
                .flat_map(|g| {
                    c.fetch_offsets(&g.group_id, None)
                        .into_iter()
                        .filter(|o| o.offset >= 0)
                        .map(move |o| (g.group_id.clone(), o.topic, o.partition, o.offset))
                        .collect::<Vec<_>>()
                })
                .collect()
        })
    }

    /// Fires the coordinators' deadlines until shutdown, and expires old offsets every
    /// `offsets_retention_check_ms`.
    pub(crate) async fn tick_loop(
        self: Arc<Self>,
        offsets_retention_check_ms: u64,
        shutdown: CancellationToken,
    ) {
        let mut interval = tokio::time::interval(TICK_INTERVAL);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let check_every = Duration::from_millis(offsets_retention_check_ms.max(1));
        let mut next_expiry = tokio::time::Instant::now() + check_every;
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                _ = shutdown.cancelled() => return,
            }
            let now = crate::now_ms();
            if tokio::time::Instant::now() >= next_expiry {
                next_expiry += check_every;
                for shard in self.loaded() {
                    let outcome = {
                        let mut state = shard.lock();
                        let fx = state.coordinator.expire_offsets(now);
                        apply(&mut state, fx)
                    };
                    let _ = deliver(replicated(&shard, outcome).await);
                }
            }
            for shard in self.loaded() {
                let outcome = {
                    let mut state = shard.lock();
                    if state.coordinator.next_deadline_ms().is_none_or(|d| d > now) {
                        continue;
                    }
                    let fx = state.coordinator.tick(now);
                    apply(&mut state, fx)
                };
                let _ = deliver(replicated(&shard, outcome).await);
            }
        }
    }
}

/// The shard's state, unless it was unloaded (its groups moved to another broker).
fn serving(shard: &Shard) -> Result<ShardGuard<'_, GroupShard>, GroupError> {
    shard
        .serving()
        .map_err(|e| crate::error::coordinator_group_error(&e))
}

/// Appends the command's records and takes the waiters its replies are for; offset records
/// take effect in the coordinator once written, never before. Called under the shard lock, so
/// records reach the log in decision order.
fn apply(state: &mut ShardGuard<'_, GroupShard>, fx: Effects) -> Outcome {
    let appended = write(state, &fx.records, fx.producer);
    let mut written_to = appended.as_ref().ok().copied().flatten();
    let written = appended.map(|_| ());
    if let (Ok(()), Some(on_write)) = (&written, fx.on_write) {
        // What the written records leave behind (a group with nothing left to keep) is
        // written next, before any other command's records.
        let follow_up = state.coordinator.written(&fx.records, on_write);
        if !follow_up.records.is_empty() {
            let followed = apply(state, follow_up);
            written_to = followed.written_to.or(written_to);
        }
    }
    let deliveries = fx
        .replies
        .into_iter()
        .filter_map(|reply| {
            let id = match &reply {
                Reply::Join(id, _) | Reply::Sync(id, _) => *id,
            };
            state.waiters.remove(&id).map(|w| (w, reply))
        })
        .collect();
    Outcome {
        written,
        written_to,
        deliveries,
    }
}

/// Waits until what `outcome` wrote is on every in-sync replica (at once on a partition
/// without followers); if it never will be here, its replies carry COORDINATOR_NOT_AVAILABLE
/// and the client tries again.
async fn replicated(shard: &Shard, mut outcome: Outcome) -> Outcome {
    if let (Ok(()), Some(offset)) = (&outcome.written, outcome.written_to)
        && !shard.wait_replicated(offset).await
    {
        outcome.written = Err(GroupError::CoordinatorNotAvailable);
    }
    outcome
}

/// Appends records as one batch; with a producer, as a transactional batch of it. The offset
/// after it, if anything was written.
fn write(
    state: &ShardGuard<'_, GroupShard>,
    records: &[OffsetsRecord],
    producer: Option<(i64, i16)>,
) -> Result<Option<i64>, GroupError> {
    let encoded: Vec<(Vec<u8>, Option<Vec<u8>>)> =
        records.iter().map(OffsetsRecord::encode).collect();
    let appended = state.append(&encoded, producer, crate::now_ms());
    appended.map_err(|e| {
        if e != CoordinatorError::Unloaded {
            tracing::error!(error = %e, "could not write to {OFFSETS_TOPIC}");
        }
        crate::error::coordinator_group_error(&e)
    })
}

/// Answers the parked requests. If the records could not be written, every reply carries
/// that error instead.
fn deliver(outcome: Outcome) -> Result<(), GroupError> {
    let written = outcome.written;
    for (waiter, reply) in outcome.deliveries {
        match (waiter, reply) {
            (Waiter::Join(tx), Reply::Join(_, r)) => {
                let r = match &written {
                    Ok(()) => r,
                    Err(e) => JoinResponse::error_for(e.clone(), &r.member_id),
                };
                let _ = tx.send(r);
            }
            (Waiter::Sync(tx), Reply::Sync(_, r)) => {
                let r = match &written {
                    Ok(()) => r,
                    Err(e) => SyncResponse::error_for(e.clone()),
                };
                let _ = tx.send(r);
            }
            _ => tracing::error!("a group reply did not match its waiter's kind"),
        }
    }
    written
}
