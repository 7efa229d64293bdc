//! The share-partitions this broker keeps as the leader of their partitions (Kafka's
//! `SharePartitionManager`): one `sluice_share::SharePartition` per share group and partition,
//! the share sessions of the members that fetch here (`session.rs`), and reading the log for
//! an acquisition (`acquire.rs`). ShareFetch and ShareAcknowledge are handed this, not the
//! broker's coordinators.
//!
//! State is in memory so far: a restart or a leader change starts every share-partition again
//! at `share.auto.offset.reset` (the share coordinator and `__share_group_state` come next,
//! docs/design/0005-share-groups.md).
//!
//! Locks: the map's, held to find or add a share-partition; each share-partition's, held for
//! its in-memory work only (the log is read between two holds, `acquire.rs`); the sessions'.
//! None is held across I/O or an await.

pub(crate) mod acquire;
pub(crate) mod session;

use session::{SessionPartition, Sessions};
use sluice_share::{Acknowledgement, DeadLetter, ShareConfig, ShareError, SharePartition};
use sluice_types::limits::SHARE_PARTITIONS_MAX;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use uuid::Uuid;

/// A share group reading one partition.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct ShareKey {
    pub group: String,
    pub topic_id: Uuid,
    pub partition: i32,
}

pub(crate) type Shared = Arc<Mutex<SharePartition>>;

#[derive(Debug, Default)]
pub(crate) struct Shares {
    partitions: Mutex<HashMap<ShareKey, Shared>>,
    sessions: Mutex<Sessions>,
    /// Woken when records may be acquired again without a new append (released,
    /// acknowledged past, a session closed): parked ShareFetches look again.
    released: tokio::sync::Notify,
}

/// A share-partition could not be started: too many on this broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TooMany;

impl Shares {
    pub fn sessions(&self) -> MutexGuard<'_, Sessions> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn map(&self) -> MutexGuard<'_, HashMap<ShareKey, Shared>> {
        self.partitions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The share-partition of `key`, started at `start_offset()` when new; its settings follow
    /// `config` (the group's configs may have changed).
    pub fn get_or_start(
        &self,
        key: &ShareKey,
        config: ShareConfig,
        start_offset: impl FnOnce() -> i64,
    ) -> Result<Shared, TooMany> {
        let shared = {
            let mut map = self.map();
            match map.get(key) {
                Some(shared) => shared.clone(),
                None => {
                    if map.len() >= SHARE_PARTITIONS_MAX {
                        return Err(TooMany);
                    }
                    let partition = SharePartition::new(config, start_offset());
                    let shared = Arc::new(Mutex::new(partition));
                    map.insert(key.clone(), shared.clone());
                    return Ok(shared);
                }
            }
        };
        let mut partition = lock(&shared);
        if *partition.config() != config {
            partition.reconfigure(config);
        }
        drop(partition);
        Ok(shared)
    }

    pub fn get(&self, key: &ShareKey) -> Option<Shared> {
        self.map().get(key).cloned()
    }

    /// `member`'s acknowledgements of one share-partition, all or nothing.
    pub fn acknowledge(
        &self,
        key: &ShareKey,
        member: &str,
        acks: &[Acknowledgement],
        now_ms: i64,
    ) -> Result<(), ShareError> {
        let Some(shared) = self.get(key) else {
            let offset = acks.first().map_or(0, |a| a.first_offset);
            return Err(ShareError::InvalidRecordState { offset });
        };
        let dead = lock(&shared).acknowledge(member, now_ms, acks)?;
        self.archived(key, dead);
        self.released.notify_waiters();
        Ok(())
    }

    /// Releases what `member` holds in `partitions` of `group` (its session ended or forgot
    /// them).
    pub fn release(&self, group: &str, member: &str, partitions: &[SessionPartition], now_ms: i64) {
        for &(topic_id, partition) in partitions {
            let key = ShareKey {
                group: group.to_string(),
                topic_id,
                partition,
            };
            if let Some(shared) = self.get(&key) {
                let dead = lock(&shared).release_member(member, now_ms);
                self.archived(&key, dead);
            }
        }
        if !partitions.is_empty() {
            self.released.notify_waiters();
        }
    }

    /// Records archived undelivered. The dead-letter topic is a later slice of issue 18; for
    /// now they are archived as Kafka archives them, and logged.
    fn archived(&self, key: &ShareKey, dead: Vec<DeadLetter>) {
        for d in dead {
            tracing::debug!(group = %key.group, topic_id = %key.topic_id, partition = key.partition,
                offset = d.offset, deliveries = d.delivery_count, reason = ?d.reason, "share record archived");
        }
    }

    /// A future that completes at the next `released` wake-up; made before a look, so no
    /// release between the look and the wait is missed.
    pub fn released(&self) -> tokio::sync::futures::Notified<'_> {
        self.released.notified()
    }
}

pub(crate) fn lock(shared: &Shared) -> MutexGuard<'_, SharePartition> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}
