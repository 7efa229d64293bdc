//! The shard table and a shard's lifecycle: loaded (replayed) when this broker becomes
//! leader of its partition, serving commands under its lock, unloaded when leadership moves.
//!
//! A shard is tagged with the leader epoch it was loaded in. A load in the same or an older
//! epoch changes nothing; a load in a newer epoch replaces the shard with one replayed afresh
//! (another leader may have written the partition meanwhile, and the old state would be
//! stale). Unloading stops the shard's timer (`Shard::stopped`), lets the kind answer what
//! waits on it (`CoordinatorShard::unloaded`), and makes every later append fail with
//! `Unloaded`: a command that found the shard before it moved writes nothing.

use crate::replay::{Replayed, keyed_batch, replay};
use crate::{CoordinatorError, ShardLog};
use sluice_record::{BatchHeader, stamp_producer};
use std::collections::BTreeMap;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// A kind of coordinator: the state of one partition of its internal topic.
pub trait CoordinatorShard: Send + 'static {
    /// The kind's name, for logs ("group", "transaction").
    const KIND: &'static str;

    /// Applies one record or transaction marker read back at load, oldest first; false if a
    /// record could not be decoded (it is skipped and counted).
    fn replay(&mut self, header: &BatchHeader, item: Replayed<'_>) -> bool;

    /// The shard was unloaded: answer whatever waits on it, since its requests now belong to
    /// another coordinator. Called under the shard's lock.
    fn unloaded(&mut self) {}
}

/// Every shard of one kind this broker runs, by partition of its internal topic.
pub struct Runtime<S> {
    shards: RwLock<BTreeMap<i32, Arc<Shard<S>>>>,
    /// The internal topic's partition count (0 until a shard is loaded): where a key hashes.
    partition_count: AtomicI32,
    /// Cancelled when the broker shuts down: every shard's timer stops.
    shutdown: CancellationToken,
}

/// One partition's coordinator.
pub struct Shard<S> {
    log: Arc<dyn ShardLog>,
    leader_epoch: i32,
    state: Mutex<S>,
    /// Cancelled when the shard is unloaded.
    unloaded: CancellationToken,
    /// The runtime's: cancelled when the broker shuts down.
    shutdown: CancellationToken,
    /// Wakes the kind's timer for this shard before its next deadline.
    timer: Notify,
}

/// A shard's state under its lock, with the right to append its records.
pub struct ShardGuard<'a, S> {
    shard: &'a Shard<S>,
    state: MutexGuard<'a, S>,
}

impl<S> std::fmt::Debug for Runtime<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let loaded: Vec<(i32, i32)> = self
            .read()
            .iter()
            .map(|(&index, shard)| (index, shard.leader_epoch))
            .collect();
        f.debug_struct("Runtime")
            .field("loaded (partition, epoch)", &loaded)
            .finish()
    }
}

impl<S: CoordinatorShard> Runtime<S> {
    /// No shard loaded. `shutdown` stops every shard's timer.
    pub fn new(shutdown: CancellationToken) -> Runtime<S> {
        Runtime {
            shards: RwLock::new(BTreeMap::new()),
            partition_count: AtomicI32::new(0),
            shutdown,
        }
    }

    /// Loads partition `log.index()` (of an internal topic of `partition_count` partitions),
    /// led here in `leader_epoch`, by replaying the log into `state`. The new shard, or `None`
    /// if it is loaded already in this epoch or a newer one. A shard of an older epoch is
    /// unloaded first. Blocking (it reads the whole partition): call it off the runtime's
    /// threads, from one task (the metadata publisher).
    pub fn load(
        &self,
        log: Arc<dyn ShardLog>,
        partition_count: i32,
        leader_epoch: i32,
        mut state: S,
    ) -> Result<Option<Arc<Shard<S>>>, CoordinatorError> {
        let index = log.index();
        match self.get(index) {
            Some(loaded) if loaded.leader_epoch >= leader_epoch => return Ok(None),
            Some(_) => {
                self.unload(index);
            }
            None => {}
        }
        replay(log.as_ref(), S::KIND, |header, item| {
            state.replay(header, item)
        })?;
        let shard = Arc::new(Shard {
            log,
            leader_epoch,
            state: Mutex::new(state),
            unloaded: CancellationToken::new(),
            shutdown: self.shutdown.clone(),
            timer: Notify::new(),
        });
        self.partition_count
            .store(partition_count, Ordering::Release);
        let mut shards = self.shards.write().unwrap_or_else(|p| p.into_inner());
        if shards
            .get(&index)
            .is_some_and(|s| s.leader_epoch >= leader_epoch)
        {
            return Ok(None);
        }
        shards.insert(index, shard.clone());
        tracing::info!(
            kind = S::KIND,
            partition = index,
            leader_epoch,
            "coordinator loaded"
        );
        Ok(Some(shard))
    }

    /// Unloads partition `index`'s shard, if loaded: this broker no longer leads it. True if
    /// one was unloaded.
    pub fn unload(&self, index: i32) -> bool {
        let removed = {
            let mut shards = self.shards.write().unwrap_or_else(|p| p.into_inner());
            shards.remove(&index)
        };
        let Some(shard) = removed else {
            return false;
        };
        let mut state = shard.lock_state();
        shard.unloaded.cancel();
        state.unloaded();
        drop(state);
        tracing::info!(kind = S::KIND, partition = index, "coordinator unloaded");
        true
    }

    /// Unloads every shard whose partition `keep` rejects; the partitions unloaded.
    pub fn unload_unless(&self, keep: impl Fn(i32) -> bool) -> Vec<i32> {
        let gone: Vec<i32> = self.read().keys().copied().filter(|&i| !keep(i)).collect();
        gone.into_iter().filter(|&i| self.unload(i)).collect()
    }
}

impl<S> Runtime<S> {
    /// The shard of `key` (a group or transactional id), if it is loaded here.
    pub fn of(&self, key: &str) -> Option<Arc<Shard<S>>> {
        let count = self.partition_count.load(Ordering::Acquire);
        if count < 1 {
            return None;
        }
        self.get(sluice_types::partition_for(key, count))
    }

    /// The shard of partition `index`, if it is loaded here.
    pub fn get(&self, index: i32) -> Option<Arc<Shard<S>>> {
        self.read().get(&index).cloned()
    }

    /// Every shard loaded here, by partition.
    pub fn loaded(&self) -> Vec<Arc<Shard<S>>> {
        self.read().values().cloned().collect()
    }

    /// How many shards are loaded here.
    pub fn loaded_count(&self) -> usize {
        self.read().len()
    }

    fn read(&self) -> RwLockReadGuard<'_, BTreeMap<i32, Arc<Shard<S>>>> {
        self.shards.read().unwrap_or_else(|p| p.into_inner())
    }
}

impl<S> Shard<S> {
    /// The partition of the internal topic this shard keeps its state in.
    pub fn index(&self) -> i32 {
        self.log.index()
    }

    /// The leader epoch of the partition this shard was loaded in.
    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch
    }

    /// The shard's state, exclusively: a command runs under this, and appends its records
    /// before letting go.
    pub fn lock(&self) -> ShardGuard<'_, S> {
        ShardGuard {
            shard: self,
            state: self.lock_state(),
        }
    }

    /// The shard's state for a command, unless the shard was unloaded (`Unloaded`: its keys
    /// belong to another coordinator now).
    pub fn serving(&self) -> Result<ShardGuard<'_, S>, CoordinatorError> {
        let state = self.lock();
        if state.is_unloaded() {
            return Err(CoordinatorError::Unloaded);
        }
        Ok(state)
    }

    /// Resolves once the shard is unloaded or the broker shuts down: its timer stops then.
    /// (A shard still writes while the broker drains its connections at shutdown.)
    pub async fn stopped(&self) {
        tokio::select! {
            _ = self.unloaded.cancelled() => {}
            _ = self.shutdown.cancelled() => {}
        }
    }

    /// Wakes the shard's timer (`timer_woken`) before its next deadline.
    pub fn wake_timer(&self) {
        self.timer.notify_one();
    }

    /// Resolves when `wake_timer` is called (a call while no one waits is kept for the next).
    pub async fn timer_woken(&self) {
        self.timer.notified().await
    }

    /// True once everything below `offset` is fsynced; false if it never will be.
    pub async fn wait_durable(&self, offset: i64) -> bool {
        self.log.wait_durable(offset).await
    }

    /// True once everything below `offset` is on every in-sync replica (`ShardLog`).
    pub async fn wait_replicated(&self, offset: i64) -> bool {
        self.log.wait_replicated(offset).await
    }

    fn lock_state(&self) -> MutexGuard<'_, S> {
        // A panic under the lock is a bug that already failed one command; the state it left
        // is still the coordinator's best knowledge, as in every other lock of the broker.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl<S> ShardGuard<'_, S> {
    /// Appends `records` (keyed; a `None` value is a tombstone) as one batch; with a
    /// producer `(id, epoch)`, as a transactional batch of it. The offset after the batch, to
    /// wait on for durability; `None` if there was nothing to write. Fails with `Unloaded`
    /// once the shard is unloaded.
    pub fn append(
        &self,
        records: &[(Vec<u8>, Option<Vec<u8>>)],
        producer: Option<(i64, i16)>,
        now_ms: i64,
    ) -> Result<Option<i64>, CoordinatorError> {
        if self.shard.unloaded.is_cancelled() {
            return Err(CoordinatorError::Unloaded);
        }
        if records.is_empty() {
            return Ok(None);
        }
        let mut batch = keyed_batch(records, now_ms);
        if let Some((producer_id, epoch)) = producer {
            stamp_producer(&mut batch, producer_id, epoch, -1, true);
        }
        self.shard.log.append(&batch, now_ms).map(Some)
    }

    /// Whether the shard was unloaded: its state answers nothing new.
    pub fn is_unloaded(&self) -> bool {
        self.shard.unloaded.is_cancelled()
    }
}

impl<S> Deref for ShardGuard<'_, S> {
    type Target = S;
    fn deref(&self) -> &S {
        &self.state
    }
}

impl<S> DerefMut for ShardGuard<'_, S> {
    fn deref_mut(&mut self) -> &mut S {
        &mut self.state
    }
}
