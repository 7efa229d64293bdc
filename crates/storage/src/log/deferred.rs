//! What the partition lock no longer waits for. A segment roll happens under the lock, on the
//! produce path; so do the periodic checkpoints. None of them fsyncs there any more:
//!
//! - **Sealed indexes.** A roll writes the closed segment's two index files without fsyncing
//!   them and names them in `unsynced_seals`; the next `FlushPlan` fsyncs them outside the lock.
//!   Until a plan that covered them completes, a checkpoint names a recovery point at or below
//!   that segment's base offset, so a crash re-verifies the segment and rebuilds its indexes
//!   rather than trusting files that may not have reached the disk.
//! - **Producer snapshots.** A roll only notes that a snapshot is due. The next plan encodes it
//!   (and the aborted-transactions index it vouches for) under the lock, writes both to
//!   `*.pending` files and fsyncs them outside it, and `mark_flushed` renames them into place
//!   under the lock again: a rename, not an fsync (the next plan fsyncs the directory; until
//!   then a crash finds the older files, which are as good). A truncation in between
//!   (`generation`) discards them instead, so a snapshot of a cut tail never lands.
//! - **Checkpoints** (recovery point, high watermark, and the log start offset and the epoch
//!   cache when retention or DeleteRecords moved the start): `Partition::write_checkpoints`
//!   takes them under the lock, writes and fsyncs `*.pending` files outside it, renames them
//!   into place under it and fsyncs the directory outside it again. A start offset found lower
//!   after a crash is raised to the first segment's base at open, and epochs below the start
//!   are folded there at open, so retention need not wait for either; DeleteRecords does
//!   (`Partition::delete_records_before`), so its answer is durable.
//!
//! Still under the lock, and rare: the leader-epoch cache at a leader change or an epoch's
//! first append (the cache must name an epoch before a batch of it is written), truncation,
//! compaction's swap, and clean shutdown.

use super::{FlushPlan, Log};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

const PENDING_EXTENSION: &str = "pending";

/// A small file to replace atomically in two steps: written and fsynced as `<name>.pending`
/// without the lock (`write`), renamed over `<name>` under it (`install`).
#[derive(Debug)]
pub(crate) struct PendingFile {
    path: PathBuf,
    bytes: Vec<u8>,
}

impl PendingFile {
    pub(crate) fn new(path: PathBuf, bytes: Vec<u8>) -> PendingFile {
        PendingFile { path, bytes }
    }

    fn pending_path(&self) -> PathBuf {
        let mut name = self.path.file_name().unwrap_or_default().to_os_string();
        name.push(".");
        name.push(PENDING_EXTENSION);
        self.path.with_file_name(name)
    }

    pub(crate) fn write(&self) -> std::io::Result<()> {
        let mut file = File::create(self.pending_path())?;
        file.write_all(&self.bytes)?;
        file.sync_all()
    }

    pub(crate) fn install(&self) -> std::io::Result<()> {
        std::fs::rename(self.pending_path(), &self.path)
    }

    pub(crate) fn discard(&self) {
        let _ = std::fs::remove_file(self.pending_path());
    }
}

/// Checkpoints written outside the lock (`Partition::write_checkpoints`).
#[derive(Debug)]
pub(crate) struct CheckpointWrite {
    files: Vec<PendingFile>,
    recovery_point: i64,
    generation: u64,
    /// Whether it carries the log start offset, and the epoch cache (written when they moved).
    log_start: bool,
    epoch_cache: bool,
}

impl CheckpointWrite {
    pub fn write(&self) -> std::io::Result<()> {
        self.files.iter().try_for_each(PendingFile::write)
    }

    pub fn discard(&self) {
        self.files.iter().for_each(PendingFile::discard);
    }
}

/// Removes `*.pending` files a crash left behind (at open).
pub(super) fn remove_pending_files(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == PENDING_EXTENSION) {
            std::fs::remove_file(path)?;
        }
    }
    Ok(())
}

impl FlushPlan {
    /// The deferred part of a flush, before the segments' data: the sealed indexes (a
    /// segment deleted meanwhile, by retention or truncation, needs nothing), then the
    /// snapshot's files.
    pub(super) fn execute_deferred(&self) -> std::io::Result<()> {
        for (_, paths) in &self.seals {
            for path in paths {
                match File::open(path) {
                    Ok(file) => file.sync_all()?,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
        }
        self.snapshot_files.iter().try_for_each(PendingFile::write)
    }
}

impl Log {
    /// A roll sealed the active segment: its indexes are written now, fsynced by the next
    /// flush, and a producer snapshot is due.
    pub(super) fn seal_active(&mut self) -> std::io::Result<()> {
        let base = self.active().base_offset();
        let written = self.active().write_indexes()?;
        self.unsynced_seals.insert(base, written);
        self.snapshot_due = true;
        Ok(())
    }

    /// The deferred work a flush plan carries: every seal not yet fsynced, and the snapshot's
    /// files if one is due (taken: a failed plan asks for it again).
    pub(super) fn take_deferred(&mut self, plan: &mut FlushPlan) {
        plan.seals = self
            .unsynced_seals
            .iter()
            .map(|(base, paths)| (*base, paths.clone()))
            .collect();
        plan.generation = self.generation;
        if std::mem::take(&mut self.snapshot_due) {
            plan.snapshot_files = self.snapshot_files();
        }
    }

    /// Whether deferred work alone makes a flush worth planning.
    pub(super) fn deferred_due(&self) -> bool {
        self.snapshot_due || !self.unsynced_seals.is_empty()
    }

    /// After a plan completed: its snapshot files go into place (unless a truncation made
    /// them stale), its seals count as durable, and the recovery point moves to what it
    /// fsynced.
    pub(super) fn complete_deferred(&mut self, plan: &FlushPlan) {
        if !plan.snapshot_files.is_empty() {
            self.install_snapshot_files(plan);
        }
        for (base, _) in &plan.seals {
            self.unsynced_seals.remove(base);
        }
        self.recovery_point = self.recovery_point.max(plan.up_to);
    }

    /// The recovery point a checkpoint may name: crash recovery trusts every segment before
    /// the one holding it, indexes included, so it stays at or below the first segment whose
    /// index files are not yet fsynced (its data may well be).
    pub(super) fn recovery_point_to_checkpoint(&self) -> i64 {
        let first_unsynced = self.unsynced_seals.keys().next().copied();
        first_unsynced.map_or(self.recovery_point, |base| self.recovery_point.min(base))
    }

    fn install_snapshot_files(&mut self, plan: &FlushPlan) {
        if plan.generation != self.generation {
            plan.snapshot_files.iter().for_each(PendingFile::discard);
            return;
        }
        // The aborted-transactions index first: the snapshot vouches for it.
        for file in &plan.snapshot_files {
            if let Err(e) = file.install() {
                tracing::warn!(dir = %self.dir.display(), error = %e, "could not put a producer snapshot in place");
                plan.snapshot_files.iter().for_each(PendingFile::discard);
                return;
            }
        }
        self.dir_dirty = true;
        if let Err(e) = self.prune_snapshots() {
            tracing::warn!(dir = %self.dir.display(), error = %e, "could not prune producer snapshots");
        }
    }

    /// After a failed plan: its snapshot is due again, and its files go.
    pub(super) fn fail_deferred(&mut self, plan: &FlushPlan) {
        if !plan.snapshot_files.is_empty() {
            plan.snapshot_files.iter().for_each(PendingFile::discard);
            self.snapshot_due = true;
        }
    }

    /// The recovery point and high watermark as they stand, and the log start offset and the
    /// epoch cache if they moved, to be written outside the lock.
    pub(crate) fn checkpoint_write(&mut self) -> CheckpointWrite {
        let file = |name: &str, value: i64| {
            PendingFile::new(self.dir.join(name), format!("{value}\n").into_bytes())
        };
        let recovery_point = self.recovery_point_to_checkpoint();
        let mut files = vec![
            file(super::RECOVERY_POINT_FILE, recovery_point),
            file(super::HIGH_WATERMARK_FILE, self.high_watermark),
        ];
        let log_start = std::mem::take(&mut self.log_start_due);
        if log_start {
            files.push(file(super::LOG_START_OFFSET_FILE, self.log_start_offset));
        }
        let epoch_cache = std::mem::take(&mut self.epoch_cache_due);
        if epoch_cache {
            let path = self
                .dir
                .join(crate::leader_epoch::LEADER_EPOCH_CHECKPOINT_FILE);
            files.push(PendingFile::new(path, self.epochs.encode().into_bytes()));
        }
        CheckpointWrite {
            files,
            recovery_point,
            generation: self.generation,
            log_start,
            epoch_cache,
        }
    }

    /// Writing `write` failed: what it carried is due again.
    pub(crate) fn checkpoint_failed(&mut self, write: &CheckpointWrite) {
        write.discard();
        self.log_start_due |= write.log_start;
        self.epoch_cache_due |= write.epoch_cache;
    }

    /// Puts written checkpoints in place, unless a truncation lowered them meanwhile (its own
    /// checkpoints are newer).
    pub(crate) fn install_checkpoints(&mut self, write: &CheckpointWrite) -> std::io::Result<()> {
        if write.generation != self.generation {
            write.files.iter().for_each(PendingFile::discard);
            return Ok(());
        }
        if let Err(e) = write.files.iter().try_for_each(PendingFile::install) {
            self.checkpoint_failed(write);
            return Err(e);
        }
        self.checkpointed_recovery_point = write.recovery_point;
        Ok(())
    }

    /// After a truncation (which raised `generation` before it changed anything, so that work
    /// planned before it is stale): seals of segments it deleted are forgotten.
    pub(super) fn note_truncation(&mut self) {
        let segments = &self.segments;
        self.unsynced_seals
            .retain(|base, _| segments.contains_key(base));
    }
}
