//! The follower's append: batches copied from the partition's leader are stored as the leader
//! stored them, with its offsets (gaps included: the leader's log may be compacted) and its
//! leader epochs, so that every replica holds the same bytes at the same offsets.
//!
//! What differs from a leader's append (`Log::append`):
//! - no offsets are assigned: each batch keeps its base offset, which must be at or past the
//!   log end and past the previous batch's last offset (strictly increasing), or nothing of the
//!   request is written; an empty log also takes a first batch holding its start offset (the
//!   leader's log starts inside that batch), stored whole in a segment based at the batch;
//! - a batch is checked as recovery checks a stored one (header, length, CRC), not as a
//!   producer's: a compacted batch legitimately holds fewer records than its offset delta says,
//!   and the topic's `max.message.bytes` was the leader's to enforce;
//! - the producer state learns every batch without the producer rules (sequence, epoch,
//!   coordinator epoch): the leader applied them, and a follower that refused a batch its
//!   leader accepted could never catch up. Keeping the state means a follower that becomes
//!   leader still recognizes a producer's retry of a batch it copied;
//! - each batch's leader epoch enters the epoch cache when it is newer than the cache's latest,
//!   before the batch is written (so recovery's epoch bound covers it).
//!
//! Not owned here: when to fetch, from where, and how far the high watermark may move (the
//! replication core); a follower's high watermark moves by `advance_high_watermark` alone.

use super::{AppendInfo, Log};
use crate::segment::LogSegment;
use crate::{Result, StorageError};
use sluice_record::{BatchHeader, BatchIter, verify_checksum};

impl Log {
    /// Appends batches fetched from the leader, keeping their offsets and epochs (see the
    /// module comment). Nothing is written unless every batch is whole and their offsets
    /// increase from the log end on.
    pub fn append_as_follower(&mut self, records: &[u8], now_ms: i64) -> Result<AppendInfo> {
        self.check_online()?;
        let end = self.log_end_offset();
        let batches = check_follower_batches(records, end, self.is_empty())?;
        let base_offset = batches[0].0.base_offset;
        if base_offset < end {
            self.restart_segment_at(base_offset, now_ms)?;
        }
        let mut offsets = 0;
        for (header, bytes) in &batches {
            let epoch = header.partition_leader_epoch;
            self.note_follower_epoch(epoch, header.base_offset)?;
            self.maybe_roll(
                header.base_offset,
                header.last_offset(),
                bytes.len(),
                now_ms,
            )?;
            let interval = self.config.index_interval_bytes;
            if let Err(e) =
                self.active_mut()
                    .append(bytes, header, header.base_offset, epoch, interval)
            {
                return Err(self.io_failure("append", e));
            }
            self.track_producer(header, bytes, header.base_offset, now_ms);
            offsets += header.offset_count();
            assert_eq!(self.active().next_offset(), header.last_offset() + 1);
        }
        let end = self.log_end_offset();
        self.appended_messages += offsets;
        if self.sole_replica {
            self.set_high_watermark(end);
        }
        Ok(AppendInfo {
            base_offset,
            last_offset: end - 1,
            records: offsets,
            bytes: batches.iter().map(|(_, b)| b.len()).sum(),
            log_start_offset: self.log_start_offset,
            duplicate: false,
        })
    }

    /// Whether the log holds no batch: one empty segment, starting at the log start offset.
    fn is_empty(&self) -> bool {
        self.segments.len() == 1 && self.active().size() == 0
    }

    /// Replaces the empty log's one segment by an empty one at `base_offset`, below the log
    /// start offset (which stays): the first batch, straddling the start, is stored whole.
    fn restart_segment_at(&mut self, base_offset: i64, now_ms: i64) -> Result<()> {
        debug_assert!(self.is_empty() && base_offset < self.log_end_offset());
        let segment = match LogSegment::create(&self.dir, base_offset, now_ms) {
            Ok(s) => s,
            Err(e) => return Err(self.io_failure("create segment", e)),
        };
        if let Some((_, old)) = self.segments.pop_first() {
            old.delete_files()?;
        }
        self.segments.insert(base_offset, segment);
        self.dir_dirty = true;
        Ok(())
    }

    /// A batch of an epoch newer than any the cache names starts that epoch (at its base
    /// offset); the leader's own stamping epoch follows, so this replica never becomes leader
    /// in an epoch older than data it holds. Older epochs are already in the cache, or were
    /// truncated from its start with the data that held them.
    fn note_follower_epoch(&mut self, epoch: i32, offset: i64) -> Result<()> {
        if epoch < 0 {
            return Err(StorageError::InvalidRecord(format!(
                "a replicated batch at offset {offset} has no leader epoch ({epoch})"
            )));
        }
        // A batch straddling the log start starts its epoch at the start, not before it.
        let offset = offset.max(self.log_start_offset);
        if self
            .epochs
            .latest_epoch()
            .is_none_or(|latest| epoch > latest)
            && self.epochs.assign(epoch, offset)
        {
            self.write_epoch_cache()?;
        }
        self.leader_epoch = self.leader_epoch.max(epoch);
        Ok(())
    }
}

/// Every batch of `records`, checked whole (header, length, CRC), with base offsets at or past
/// `log_end_offset` and each past the one before. An empty log also takes a first batch that
/// holds its end offset: the leader's log starts inside that batch (DeleteRecords moved it
/// there), and the follower's starts at the same offset.
fn check_follower_batches(
    records: &[u8],
    log_end_offset: i64,
    log_is_empty: bool,
) -> Result<Vec<(BatchHeader, &[u8])>> {
    let mut batches: Vec<(BatchHeader, &[u8])> = Vec::new();
    let mut next_allowed = log_end_offset;
    for item in BatchIter::new(records) {
        let (_, bytes) = item?;
        let header = verify_checksum(bytes)?;
        let straddles_the_start = batches.is_empty()
            && log_is_empty
            && header.base_offset < log_end_offset
            && header.last_offset() >= log_end_offset;
        if straddles_the_start {
            next_allowed = header.base_offset;
        }
        if header.base_offset < next_allowed || header.last_offset() < header.base_offset {
            return Err(StorageError::InvalidRecord(format!(
                "replicated batch at offsets {}..={} does not follow offset {}",
                header.base_offset,
                header.last_offset(),
                next_allowed - 1
            )));
        }
        next_allowed = header.last_offset() + 1;
        batches.push((header, bytes));
    }
    if batches.is_empty() {
        return Err(super::no_batch(records));
    }
    Ok(batches)
}
