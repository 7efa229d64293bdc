//! Truncation, the follower's tools: cutting a log back to an offset (a tail that diverged from
//! its leader's) and emptying it to start again at an offset (a follower whose leader's log
//! now starts past this one's end). Both are durable before they return, in an order that
//! leaves a consistent log whatever step a crash interrupts:
//!
//! 1. the recovery point, high watermark and leader-epoch cache are lowered and written first,
//!    so that a restart verifies everything from the cut on, and a batch of an epoch the cut
//!    removed, found again because its bytes outlived the crash, is newer than any epoch the
//!    cache still has and is cut by recovery as a torn tail;
//! 2. then the files are cut and deleted, and the cut and the directory fsynced.
//!
//! Not owned here: which offset to cut at (the replication protocol's OffsetForLeaderEpoch and
//! diverging epochs).

use super::{HIGH_WATERMARK_FILE, LOG_START_OFFSET_FILE, Log, RECOVERY_POINT_FILE};
use crate::checkpoint;
use crate::leader_epoch::LeaderEpochCache;
use crate::segment::{LogSegment, file_name};
use crate::{Result, StorageError};

impl Log {
    /// Removes every batch at or after `offset` (for a follower that diverged from its leader).
    /// The cut is at a batch boundary: a batch holding `offset` goes whole.
    pub fn truncate_to(&mut self, offset: i64, now_ms: i64) -> Result<()> {
        self.check_online()?;
        let offset = offset.max(self.log_start_offset);
        self.generation += 1;
        if offset >= self.log_end_offset() {
            // No batch goes, but an epoch starting at the log end does: this replica led in it
            // without writing, and a follower that kept it would tell its new leader a last
            // epoch no batch of its log has, and be told to truncate again, forever (Kafka's
            // `truncateTo` drops it the same way).
            let end = self.log_end_offset();
            return self.truncate_epochs_from_end(end);
        }
        self.lower_checkpoints_to(offset)?;
        while self.segments.len() > 1 && self.active().base_offset() >= offset {
            let (_, segment) = self.segments.pop_last().expect("non-empty");
            segment.delete_files()?;
        }
        self.active_mut().hold_file()?;
        let active = self.active();
        let file = active.file()?;
        // A closed segment that becomes the active one may keep damaged bytes past its end
        // (see `LogSegment::rebuild`): they are cut too, or appends would land after them.
        let file_bytes = file.metadata()?.len();
        if active.next_offset() > offset || file_bytes > active.size() {
            let mut cut = active.size();
            crate::scan::scan_batches(&file, 0, active.size(), |b| {
                if b.header.last_offset() >= offset {
                    cut = b.position;
                    return Ok(false);
                }
                Ok(true)
            })
            .map_err(|_| StorageError::Offline("scan during truncation failed".into()))?;
            let base = active.base_offset();
            file.set_len(cut)?;
            file.sync_all()?;
            let _ = std::fs::remove_file(self.dir.join(file_name(base, "index")));
            let reopened = LogSegment::open(
                &self.dir,
                base,
                false,
                true,
                self.config.index_interval_bytes,
                self.leader_epoch,
                now_ms,
            )?;
            self.segments.insert(base, reopened);
        }
        checkpoint::sync_dir(&self.dir)?;
        self.note_truncation();
        self.after_cut(now_ms)
    }

    /// Empties the log and starts it again at `offset`: every segment, producer snapshot and
    /// epoch goes, and the next append lands at `offset` (Kafka's `truncateFullyAndStartAt`).
    pub fn truncate_fully_and_start_at(&mut self, offset: i64, now_ms: i64) -> Result<()> {
        self.check_online()?;
        if offset < 0 {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start_offset: self.log_start_offset,
                log_end_offset: self.log_end_offset(),
            });
        }
        self.generation += 1;
        self.lower_checkpoints_to(offset.min(self.log_end_offset()))?;
        while let Some((_, segment)) = self.segments.pop_first() {
            segment.delete_files()?;
        }
        self.remove_snapshots_after(i64::MIN)?;
        self.segments
            .insert(offset, LogSegment::create(&self.dir, offset, now_ms)?);
        checkpoint::sync_dir(&self.dir)?;
        // The new start, then the offsets that follow it.
        checkpoint::write_i64(&self.dir.join(LOG_START_OFFSET_FILE), offset)?;
        self.log_start_offset = offset;
        self.recovery_point = offset;
        self.checkpointed_recovery_point = offset;
        self.high_watermark = offset;
        self.cleaner_checkpoint = offset;
        self.unreplicated_txns.clear();
        self.epochs = LeaderEpochCache::default();
        self.write_epoch_cache()?;
        checkpoint::write_i64(&self.dir.join(RECOVERY_POINT_FILE), offset)?;
        checkpoint::write_i64(&self.dir.join(HIGH_WATERMARK_FILE), offset)?;
        self.note_truncation();
        self.after_cut(now_ms)
    }

    /// Step 1: the checkpoints a restart trusts come down to `end` before any file changes.
    fn lower_checkpoints_to(&mut self, end: i64) -> Result<()> {
        self.recovery_point = self.recovery_point.min(end);
        if self.checkpointed_recovery_point > end {
            checkpoint::write_i64(&self.dir.join(RECOVERY_POINT_FILE), end)?;
            self.checkpointed_recovery_point = end;
        }
        self.high_watermark = self.high_watermark.min(end);
        checkpoint::write_i64(&self.dir.join(HIGH_WATERMARK_FILE), self.high_watermark)?;
        self.truncate_epochs_from_end(end)
    }

    /// The state kept beside the segments, brought in step with the new log end.
    fn after_cut(&mut self, now_ms: i64) -> Result<()> {
        let end = self.log_end_offset();
        self.high_watermark = self.high_watermark.min(end);
        self.unreplicated_txns.retain(|&marker, _| marker < end);
        self.recovery_point = self.recovery_point.min(end);
        self.cleaner_checkpoint = self.cleaner_checkpoint.min(end);
        self.truncate_epochs_from_end(end)?;
        self.remove_snapshots_after(end)?;
        self.prune_aborted(end);
        self.write_aborted()?;
        self.load_producers(now_ms)
    }
}
