//! The share-partitions this broker keeps as the leader of their partitions (Kafka's
//! `SharePartitionManager`): one `sluice_share::SharePartition` per share group and partition,
//! the share sessions of the members that fetch here (`session.rs`), reading the log for an
//! acquisition (`acquire.rs`), and the durable state at the share coordinators
//! (`persist.rs`). ShareFetch and ShareAcknowledge are handed this, not the broker's
//! coordinators.
//!
//! A share-partition is loaded from its share coordinator the first time it is read in a
//! leader epoch (a new leader picks up where the old one left off), or started at
//! `share.auto.offset.reset` and written at once when it has no state yet. Every change counts
//! (`ShareEntry::changed`); acknowledgements and closed sessions write the whole state before
//! they are answered, so an acknowledged record is never delivered again after a crash or a
//! leader change. Acquisitions and expired locks are written with the next write: after a
//! crash what was acquired is available again (at least once).
//!
//! Locks: the map's, held to find or add an entry; each share-partition's, held for its
//! in-memory work only (the log is read between two holds, `acquire.rs`); an entry's write
//! lock (async), held across its write so writes leave in the order of their snapshots; the
//! load lock (async), so one share-partition is not loaded twice at once; the sessions'.
//! No sync lock is held across I/O or an await.

pub(crate) mod acquire;
pub(crate) mod dead_letters;
pub(crate) mod persist;
pub(crate) mod session;

use crate::server::Broker;
use kafka_protocol::error::ResponseError;
use session::{SessionPartition, Sessions};
use sluice_share::{
    Acknowledgement, AutoOffsetReset, DeadLetter, ShareError, ShareGroupConfig, SharePartition,
    ShareStateKey, ShareStateValue,
};
use sluice_types::limits::SHARE_PARTITIONS_MAX;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use uuid::Uuid;

/// A share group reading one partition (the key of its durable state too).
pub(crate) fn share_key(group: &str, topic_id: Uuid, partition: i32) -> ShareStateKey {
    ShareStateKey {
        group: group.to_string(),
        topic_id: topic_id.as_u128(),
        partition,
    }
}

/// A share-partition loaded here.
#[derive(Debug)]
pub(crate) struct ShareEntry {
    partition: Mutex<SharePartition>,
    /// The data partition's leader epoch it was loaded in: in a later one it is loaded again.
    leader_epoch: i32,
    state_epoch: i32,
    /// Records archived undelivered, for the dead-letter topic (`dead_letters.rs`).
    dead: Mutex<Vec<DeadLetter>>,
    /// Changes made to the share-partition.
    changes: AtomicU64,
    /// The changes the last write held; held across a write.
    written: tokio::sync::Mutex<u64>,
}

impl ShareEntry {
    pub fn lock(&self) -> MutexGuard<'_, SharePartition> {
        self.partition.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The share-partition changed: the next write holds it.
    pub fn changed(&self) {
        self.changes.fetch_add(1, Ordering::AcqRel);
    }

    /// Records just archived undelivered: they go to the dead-letter topic before the state
    /// that archives them is written (`Shares::settle`).
    pub fn archived(&self, dead: Vec<DeadLetter>) {
        if dead.is_empty() {
            return;
        }
        let mut pending = self.dead.lock().unwrap_or_else(|e| e.into_inner());
        pending.extend(dead);
        if pending.len() > DEAD_LETTERS_PENDING_MAX {
            let dropped = pending.len() - DEAD_LETTERS_PENDING_MAX;
            pending.drain(..dropped);
            tracing::warn!(
                dropped,
                "dead letters dropped: the dead-letter topic is not taking them"
            );
        }
    }

    pub fn take_dead(&self) -> Vec<DeadLetter> {
        std::mem::take(&mut *self.dead.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub fn put_back_dead(&self, dead: Vec<DeadLetter>) {
        let mut pending = self.dead.lock().unwrap_or_else(|e| e.into_inner());
        let newer = std::mem::replace(&mut *pending, dead);
        pending.extend(newer);
    }

    pub fn has_dead(&self) -> bool {
        !self
            .dead
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }
}

/// Dead letters one share-partition keeps waiting for the dead-letter topic at most; past it
/// the oldest are dropped (their records stay archived).
const DEAD_LETTERS_PENDING_MAX: usize = 100_000;

#[derive(Debug, Default)]
pub(crate) struct Shares {
    partitions: Mutex<HashMap<ShareStateKey, Arc<ShareEntry>>>,
    loading: tokio::sync::Mutex<()>,
    sessions: Mutex<Sessions>,
    /// Woken when records may be acquired again without a new append (released,
    /// acknowledged past, a session closed): parked ShareFetches look again.
    released: tokio::sync::Notify,
}

impl Shares {
    pub fn sessions(&self) -> MutexGuard<'_, Sessions> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn map(&self) -> MutexGuard<'_, HashMap<ShareStateKey, Arc<ShareEntry>>> {
        self.partitions.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get(&self, key: &ShareStateKey) -> Option<Arc<ShareEntry>> {
        self.map().get(key).cloned()
    }

    /// The share-partition of `key` in partition `topic`'s current leader epoch, loaded from
    /// its share coordinator (or started) if it is not loaded yet in that epoch; its settings
    /// follow `config`. The Kafka error if this broker does not lead the partition or the
    /// state cannot be read.
    pub async fn load(
        &self,
        broker: &Broker,
        key: &ShareStateKey,
        topic: &str,
        config: &ShareGroupConfig,
    ) -> Result<Arc<ShareEntry>, ResponseError> {
        let image = broker.metadata();
        let partition = image.led_partition(topic, key.partition, -1)?;
        let (_, leader_epoch) = image
            .current_leader(topic, key.partition)
            .ok_or(ResponseError::UnknownTopicOrPartition)?;
        if let Some(entry) = self.loaded(key, leader_epoch, config) {
            return Ok(entry);
        }
        let _loading = self.loading.lock().await;
        if let Some(entry) = self.loaded(key, leader_epoch, config) {
            return Ok(entry);
        }
        if self.map().len() >= SHARE_PARTITIONS_MAX && self.get(key).is_none() {
            return Err(ResponseError::ShareSessionLimitReached);
        }
        let (share, state_epoch, dead, unwritten) = match persist::read(broker, key).await? {
            Some(state) => restore(key, config, state),
            None => {
                let log = partition.log();
                let start = match config.auto_offset_reset {
                    AutoOffsetReset::Latest => log.high_watermark(),
                    AutoOffsetReset::Earliest => log.log_start_offset(),
                };
                let share = SharePartition::new(config.partition, start);
                (share, FIRST_STATE_EPOCH, Vec::new(), true)
            }
        };
        let entry = Arc::new(ShareEntry {
            partition: Mutex::new(share),
            leader_epoch,
            state_epoch,
            dead: Mutex::new(dead),
            changes: AtomicU64::new(u64::from(unwritten)),
            written: tokio::sync::Mutex::new(0),
        });
        self.map().insert(key.clone(), entry.clone());
        if unwritten {
            // Where a new share-partition starts is fixed once written ("latest" would move).
            self.settle(broker, key, &entry, config).await?;
        }
        Ok(entry)
    }

    /// The entry of `key` if it is loaded in `leader_epoch`, reconfigured to `config`.
    fn loaded(
        &self,
        key: &ShareStateKey,
        leader_epoch: i32,
        config: &ShareGroupConfig,
    ) -> Option<Arc<ShareEntry>> {
        let entry = self.get(key).filter(|e| e.leader_epoch == leader_epoch)?;
        let mut share = entry.lock();
        if *share.config() != config.partition {
            share.reconfigure(config.partition);
        }
        drop(share);
        Some(entry)
    }

    /// The dead letters of `key`, then its state: what follows a change a client is told of.
    pub async fn settle(
        &self,
        broker: &Broker,
        key: &ShareStateKey,
        entry: &ShareEntry,
        config: &ShareGroupConfig,
    ) -> Result<(), ResponseError> {
        dead_letters::flush(broker, key, entry, config).await;
        self.persist(broker, key, entry).await
    }

    /// Writes the state of `key` unless the last write already held every change; the writes
    /// of one share-partition leave in order (the module doc).
    pub async fn persist(
        &self,
        broker: &Broker,
        key: &ShareStateKey,
        entry: &ShareEntry,
    ) -> Result<(), ResponseError> {
        let mut written = entry.written.lock().await;
        let changes = entry.changes.load(Ordering::Acquire);
        if *written >= changes {
            return Ok(());
        }
        let value = {
            let share = entry.lock();
            ShareStateValue {
                state_epoch: entry.state_epoch,
                leader_epoch: entry.leader_epoch,
                start_offset: share.start_offset(),
                write_time_ms: crate::now_ms(),
                batches: share.state_batches(),
            }
        };
        let result = persist::write(broker, key, &value).await;
        if matches!(
            result,
            Err(ResponseError::FencedStateEpoch | ResponseError::FencedLeaderEpoch)
        ) {
            // Reset or taken over meanwhile: this copy is stale; the next read loads afresh.
            self.forget(key, entry);
        }
        result?;
        *written = changes;
        Ok(())
    }

    /// Drops `entry` if it is still the one loaded for `key`.
    fn forget(&self, key: &ShareStateKey, entry: &ShareEntry) {
        let mut map = self.map();
        if map
            .get(key)
            .is_some_and(|e| std::ptr::eq(e.as_ref(), entry))
        {
            map.remove(key);
        }
    }

    /// A member opens a share session: a share-partition loaded here whose state was reset or
    /// deleted since (AlterShareGroupOffsets: a newer state epoch) is dropped, so the next read
    /// loads it afresh. Costs one read of the state per partition of a new session.
    pub async fn revalidate(&self, broker: &Broker, key: &ShareStateKey) {
        let Some(entry) = self.get(key) else { return };
        match persist::read(broker, key).await {
            Ok(Some(state)) if state.state_epoch == entry.state_epoch => {}
            Ok(_) => self.forget(key, &entry),
            Err(e) => tracing::debug!(group = %key.group, partition = key.partition, error = ?e,
                "a share-partition's state could not be checked"),
        }
    }

    /// `member`'s acknowledgements of one share-partition, all or nothing, in memory: the
    /// caller persists them before answering.
    pub fn acknowledge(
        &self,
        key: &ShareStateKey,
        member: &str,
        acks: &[Acknowledgement],
        now_ms: i64,
    ) -> Result<(), ShareError> {
        let Some(entry) = self.get(key) else {
            let offset = acks.first().map_or(0, |a| a.first_offset);
            return Err(ShareError::InvalidRecordState { offset });
        };
        let dead = entry.lock().acknowledge(member, now_ms, acks)?;
        entry.changed();
        entry.archived(dead);
        self.released.notify_waiters();
        Ok(())
    }

    /// Releases what `member` holds in `partitions` of `group` (its session closed); returns
    /// the share-partitions that changed, for the caller to persist.
    pub fn release(
        &self,
        group: &str,
        member: &str,
        partitions: &[SessionPartition],
        now_ms: i64,
    ) -> Vec<ShareStateKey> {
        let mut changed = Vec::new();
        for &(topic_id, partition) in partitions {
            let key = share_key(group, topic_id, partition);
            if let Some(entry) = self.get(&key) {
                let dead = entry.lock().release_member(member, now_ms);
                entry.changed();
                entry.archived(dead);
                changed.push(key);
            }
        }
        if !changed.is_empty() {
            self.released.notify_waiters();
        }
        changed
    }

    /// A future that completes at the next `released` wake-up; made before a look, so no
    /// release between the look and the wait is missed.
    pub fn released(&self) -> tokio::sync::futures::Notified<'_> {
        self.released.notified()
    }
}

/// A share-partition from its durable state, with the records its restore archived at the
/// delivery limit; one whose batches are damaged starts again at the state's start offset
/// (what was in flight is delivered again: at least once).
fn restore(
    key: &ShareStateKey,
    config: &ShareGroupConfig,
    state: ShareStateValue,
) -> (SharePartition, i32, Vec<DeadLetter>, bool) {
    let epoch = state.state_epoch;
    match SharePartition::restore(config.partition, state.start_offset, &state.batches) {
        Ok((share, dead)) => {
            let unwritten = !dead.is_empty();
            (share, epoch, dead, unwritten)
        }
        Err(e) => {
            tracing::error!(group = %key.group, partition = key.partition, error = %e,
                "a share-partition's state is damaged; it starts again at its start offset");
            let share = SharePartition::new(config.partition, state.start_offset);
            (share, epoch, Vec::new(), true)
        }
    }
}

/// The state epoch of a share-partition's first state.
const FIRST_STATE_EPOCH: i32 = 1;
