//! The leader-epoch side of `Log`: loading the cache (`leader_epoch`) when the log opens, or
//! rebuilding it from batch headers when its file is missing or damaged; stamping appends with
//! the current epoch (`become_leader`); keeping the cache in step with truncation and the log
//! start offset; and answering where an epoch ended.
//!
//! The cache file is written (and fsynced) whenever the entries change: at a leader change, the
//! first append of an epoch the cache does not end with, or a truncation; never per append. A
//! move of the log start offset folds the entries below it in memory and leaves the file to the
//! next checkpoint (`log/deferred.rs`): entries below the start are folded at open anyway. It names an epoch before any batch of it is written, which
//! is what lets recovery refuse a batch of a newer epoch as torn.

use super::Log;
use crate::checkpoint;
use crate::leader_epoch::{EpochEntry, LEADER_EPOCH_CHECKPOINT_FILE, LeaderEpochCache};
use crate::scan::{ScanStop, scan_batches};
use crate::segment::file_name;
use crate::{Result, StorageError};
use std::path::Path;

/// The cache as its file holds it; `None` when the file is missing or damaged.
pub(super) fn read_epoch_cache(dir: &Path) -> Option<LeaderEpochCache> {
    let path = dir.join(LEADER_EPOCH_CHECKPOINT_FILE);
    let text = std::fs::read_to_string(&path).ok()?;
    let cache = LeaderEpochCache::decode(&text);
    if cache.is_none() {
        tracing::warn!(file = %path.display(), "damaged leader-epoch checkpoint; rebuilding it from the log");
    }
    cache
}

/// The newest epoch a stored batch may carry, for recovery: the cache's latest, or any epoch
/// when there is no cache to trust (it is then rebuilt from what the batches say).
pub(super) fn leader_epoch_max(cache: Option<&LeaderEpochCache>) -> i32 {
    cache
        .and_then(LeaderEpochCache::latest_epoch)
        .unwrap_or(i32::MAX)
}

impl Log {
    /// Completes the cache once the segments are open: with `rebuild` (its file was lost) the
    /// epochs of every batch are read from the headers; epochs past the log end or before its
    /// start are dropped, and the current epoch is the cache's latest (0 for a new log).
    pub(super) fn settle_epochs(&mut self, rebuild: bool) -> Result<()> {
        let mut changed = rebuild && self.observe_all_epochs();
        // An epoch may start exactly at the log end: a leader that has written nothing yet.
        // Dropping it would hand the same epoch out again after the next leader change.
        changed |= self.epochs.truncate_from_end(self.log_end_offset() + 1);
        changed |= self.epochs.truncate_from_start(self.log_start_offset);
        self.leader_epoch = self.epochs.latest_epoch().unwrap_or(0);
        changed |= self.epochs.assign(self.leader_epoch, self.log_end_offset());
        if changed {
            self.write_epoch_cache()?;
        }
        Ok(())
    }

    /// Rebuilds the cache from the batch headers of the whole log (its file was lost).
    fn observe_all_epochs(&mut self) -> bool {
        let mut found = Vec::new();
        for segment in self.segments.values() {
            // Its own descriptor, closed after the scan: the segment-file cache is for reads,
            // and a scan of the whole log must not fill it (one file open at a time).
            let path = self.dir.join(file_name(segment.base_offset(), "log"));
            let file = match std::fs::File::open(&path) {
                Ok(file) => file,
                Err(e) => {
                    tracing::warn!(dir = %self.dir.display(), base = segment.base_offset(), error = %e,
                        "leader epochs read without this segment");
                    continue;
                }
            };
            let scanned = scan_batches(&file, 0, segment.size(), |b| {
                found.push((b.header.partition_leader_epoch, b.header.base_offset));
                Ok(true)
            });
            if let Err(ScanStop::Invalid { position }) = scanned {
                tracing::warn!(dir = %self.dir.display(), base = segment.base_offset(), position,
                    "leader epochs read up to a bad batch in this segment");
            }
        }
        found.into_iter().fold(false, |c, (epoch, offset)| {
            self.epochs.observe_batch(epoch, offset) | c
        })
    }

    pub(super) fn write_epoch_cache(&mut self) -> Result<()> {
        let path = self.dir.join(LEADER_EPOCH_CHECKPOINT_FILE);
        checkpoint::write_atomically(&path, self.epochs.encode().as_bytes())?;
        self.epoch_cache_due = false;
        Ok(())
    }

    /// From now on, batches appended by this replica as leader carry `epoch`, which starts at
    /// the current log end offset. An epoch older than the current one is refused: it belongs
    /// to a leader that has been replaced.
    pub fn become_leader(&mut self, epoch: i32) -> Result<()> {
        self.enter_epoch(epoch, false)?;
        if self.epochs.assign(epoch, self.log_end_offset()) {
            self.write_epoch_cache()?;
        }
        Ok(())
    }

    /// From now on this replica copies from the leader of `epoch` (`append_as_follower`) and
    /// takes no leader's append; copies and truncations for an older epoch are refused
    /// (`check_follows`). The epoch cache is untouched: the batches copied bring their epochs.
    pub fn become_follower(&mut self, epoch: i32) -> Result<()> {
        self.enter_epoch(epoch, true)
    }

    /// Takes `epoch` as the current one, leading or following; an older one is refused.
    fn enter_epoch(&mut self, epoch: i32, follower: bool) -> Result<()> {
        self.check_online()?;
        if epoch < self.leader_epoch {
            return Err(StorageError::InvalidRecord(format!(
                "leader epoch {epoch} is older than the log's current epoch {}",
                self.leader_epoch
            )));
        }
        self.leader_epoch = epoch;
        self.follower = follower;
        Ok(())
    }

    /// Whether this replica follows the leader of `epoch`, so that a copy or a truncation
    /// that leader asked for may change it: not once it leads, or follows a newer epoch.
    pub fn check_follows(&self, epoch: i32) -> Result<()> {
        if self.follower && self.leader_epoch == epoch {
            return Ok(());
        }
        Err(StorageError::NotLeaderOrFollower(format!(
            "this replica no longer follows epoch {epoch} (its epoch is {}, {})",
            self.leader_epoch,
            if self.follower {
                "following"
            } else {
                "leading"
            }
        )))
    }

    /// Whether this replica follows another (`become_follower`).
    pub fn is_follower(&self) -> bool {
        self.follower
    }

    /// The epoch this replica stamps on the batches it appends as leader.
    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch
    }

    /// Every epoch the log holds batches of (or is leader in), with its start offset.
    pub fn epoch_entries(&self) -> &[EpochEntry] {
        self.epochs.entries()
    }

    /// OffsetForLeaderEpoch: the newest epoch at or below `epoch` and the offset where it
    /// ended (see `LeaderEpochCache::end_offset_for`).
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        self.epochs.end_offset_for(epoch, self.log_end_offset())
    }

    /// Before a batch of `epoch` is appended at `offset`: the first batch of an epoch the
    /// cache does not end with starts that epoch in it (after a truncation removed it, say).
    pub(super) fn note_epoch_start(&mut self, epoch: i32, offset: i64) -> Result<()> {
        if self.epochs.latest_epoch() != Some(epoch) && self.epochs.assign(epoch, offset) {
            self.write_epoch_cache()?;
        }
        Ok(())
    }

    /// The epoch of the batch at `offset` (ListOffsets answers with it).
    pub fn epoch_for_offset(&self, offset: i64) -> i32 {
        self.epochs.epoch_for_offset(offset)
    }

    /// Keeps the cache in step with a cut at `end` (see `truncate_to`).
    pub(super) fn truncate_epochs_from_end(&mut self, end: i64) -> Result<()> {
        if self.epochs.truncate_from_end(end) {
            self.write_epoch_cache()?;
        }
        Ok(())
    }
}
