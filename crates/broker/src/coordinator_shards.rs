//! The shards of a coordinator that keeps its state in an internal topic: one per partition
//! of `__consumer_offsets` (group coordinators) or `__transaction_state` (transaction
//! coordinators) that this broker leads, found by Kafka's hash of a group or transactional
//! id. The metadata publisher loads a shard when it finds this broker leading its partition;
//! a key whose shard is not here belongs to another broker (NOT_COORDINATOR).
//!
//! Not owned here: what a shard is (`groups.rs`, `transactions.rs`), and when leadership
//! changes (`publisher.rs`). Shards are not unloaded yet: while partitions have one replica
//! their leader never changes broker.

use sluice_storage::StorageError;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard};

pub(crate) struct Shards<S> {
    shards: RwLock<BTreeMap<i32, Arc<S>>>,
    /// The internal topic's partition count (0 until a shard is loaded): where a key hashes.
    partition_count: AtomicI32,
}

impl<S> Default for Shards<S> {
    fn default() -> Self {
        Shards {
            shards: RwLock::new(BTreeMap::new()),
            partition_count: AtomicI32::new(0),
        }
    }
}

impl<S> std::fmt::Debug for Shards<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let loaded: Vec<i32> = self.read().keys().copied().collect();
        f.debug_struct("Shards").field("loaded", &loaded).finish()
    }
}

impl<S> Shards<S> {
    /// Loads partition `index` (of `partition_count`) with `make` unless it is loaded; the
    /// new shard if it was not. `make` replays the partition: call this off the runtime's
    /// threads.
    pub(crate) fn load(
        &self,
        index: i32,
        partition_count: i32,
        make: impl FnOnce() -> Result<S, StorageError>,
    ) -> Result<Option<Arc<S>>, StorageError> {
        if self.read().contains_key(&index) {
            return Ok(None);
        }
        let shard = Arc::new(make()?);
        self.partition_count
            .store(partition_count, Ordering::Release);
        let mut shards = self.shards.write().unwrap_or_else(|p| p.into_inner());
        if shards.contains_key(&index) {
            return Ok(None);
        }
        shards.insert(index, shard.clone());
        Ok(Some(shard))
    }

    /// The shard of `key` (a group or transactional id), if it is loaded here.
    pub(crate) fn of(&self, key: &str) -> Option<Arc<S>> {
        let count = self.partition_count.load(Ordering::Acquire);
        if count < 1 {
            return None;
        }
        self.get(sluice_group::partition_for(key, count))
    }

    pub(crate) fn get(&self, index: i32) -> Option<Arc<S>> {
        self.read().get(&index).cloned()
    }

    /// Every shard loaded here, by partition.
    pub(crate) fn loaded(&self) -> Vec<Arc<S>> {
        self.read().values().cloned().collect()
    }

    fn read(&self) -> RwLockReadGuard<'_, BTreeMap<i32, Arc<S>>> {
        self.shards.read().unwrap_or_else(|p| p.into_inner())
    }
}
