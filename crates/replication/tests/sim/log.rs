//! The simulation's replica log: batches in memory, of which a prefix is durable (what an
//! fsync covered) and the rest volatile (lost by a crash), with storage's own leader-epoch
//! cache and a high watermark restored from its checkpoint. It keeps storage's rules where
//! they matter to replication: appends at or past the end, truncation at batch boundaries,
//! the epoch cache written through (durable at once), the high watermark never above the end.

use sluice_replication::ReplicaLog;
use sluice_storage::LeaderEpochCache;

/// A batch: its offsets, the epoch it was written in, and an id naming its contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batch {
    pub base: i64,
    pub last: i64,
    pub epoch: i32,
    pub id: u64,
}

#[derive(Debug, Default)]
pub struct ModelLog {
    pub batches: Vec<Batch>,
    /// `batches[..durable]` are fsynced.
    pub durable: usize,
    pub start: i64,
    /// The log end when it holds no batch (it starts, or starts over, there).
    empty_end: i64,
    pub epochs: LeaderEpochCache,
    pub high_watermark: i64,
    high_watermark_checkpoint: i64,
    /// A deliberate bug for the simulation's own test: the log claims its tail is fsynced.
    pub pretend_durable: bool,
}

impl ModelLog {
    pub fn end(&self) -> i64 {
        self.batches.last().map_or(self.empty_end, |b| b.last + 1)
    }

    pub fn durable_end(&self) -> i64 {
        match self.durable {
            0 => self.empty_end,
            n => self.batches[n - 1].last + 1,
        }
    }

    /// The leader's append: `count` offsets at the log end in `epoch`.
    pub fn append_as_leader(&mut self, epoch: i32, count: i64, id: u64) -> Batch {
        let base = self.end();
        let batch = Batch {
            base,
            last: base + count - 1,
            epoch,
            id,
        };
        if self.epochs.latest_epoch() != Some(epoch) {
            self.epochs.assign(epoch, base);
        }
        self.batches.push(batch);
        batch
    }

    /// The follower's append, as `Log::append_as_follower` checks it: false (and nothing
    /// appended) unless the offsets increase from the log end.
    /// An empty log takes a first batch that straddles its end (its start fell inside the
    /// batch on the leader, by DeleteRecords), as storage does.
    pub fn append_as_follower(&mut self, batches: &[Batch]) -> bool {
        let mut next = self.end();
        if let Some(first) = batches.first()
            && self.batches.is_empty()
            && first.base < next
            && first.last >= next
        {
            next = first.base;
        }
        for b in batches {
            if b.base < next || b.last < b.base {
                return false;
            }
            next = b.last + 1;
        }
        for b in batches {
            self.epochs.observe_batch(b.epoch, b.base.max(self.start));
            self.batches.push(*b);
        }
        true
    }

    pub fn become_leader(&mut self, epoch: i32) {
        let end = self.end();
        self.epochs.assign(epoch, end);
    }

    pub fn flush(&mut self, batches: usize) {
        self.durable = self.durable.max(batches.min(self.batches.len()));
    }

    /// `truncate_to`: every batch holding an offset at or past `offset` goes.
    pub fn truncate_to(&mut self, offset: i64) {
        self.batches.retain(|b| b.last < offset);
        self.durable = self.durable.min(self.batches.len());
        self.settle_after_cut();
        // As storage's `truncate_to`: no epoch starts at or past the new end.
        let end = self.end();
        self.epochs.truncate_from_end(end);
    }

    pub fn truncate_fully_and_start_at(&mut self, offset: i64) {
        self.batches.clear();
        self.durable = 0;
        self.start = offset;
        self.empty_end = offset;
        self.epochs = LeaderEpochCache::default();
        self.high_watermark = offset;
        self.high_watermark_checkpoint = offset;
    }

    /// DeleteRecords, or a follower adopting its leader's log start.
    pub fn advance_start(&mut self, offset: i64) {
        if offset <= self.start {
            return;
        }
        let removed = self.batches.iter().take_while(|b| b.last < offset).count();
        self.batches.drain(..removed);
        self.durable = self.durable.saturating_sub(removed);
        self.start = offset;
        self.empty_end = self.empty_end.max(offset);
        self.epochs.truncate_from_start(offset);
    }

    pub fn advance_high_watermark(&mut self, offset: i64) {
        self.high_watermark = self.high_watermark.max(offset.min(self.end()));
    }

    pub fn checkpoint_high_watermark(&mut self) {
        self.high_watermark_checkpoint = self.high_watermark;
    }

    /// A crash: the volatile tail is lost, as storage's recovery finds the log.
    pub fn crash(&mut self) {
        self.batches.truncate(self.durable);
        self.settle_after_cut();
        self.high_watermark = self.high_watermark_checkpoint.clamp(self.start, self.end());
    }

    fn settle_after_cut(&mut self) {
        let end = self.end();
        if self.batches.is_empty() {
            self.empty_end = self.empty_end.min(end).max(self.start);
        }
        // As `settle_epochs` and `truncate_to` keep the cache: an epoch may start at the end.
        self.epochs.truncate_from_end(end + 1);
        self.high_watermark = self.high_watermark.min(end);
        self.high_watermark_checkpoint = self.high_watermark_checkpoint.min(end);
    }

    /// The batches from `offset` on, at most `max` of them.
    pub fn read(&self, offset: i64, max: usize) -> Vec<Batch> {
        self.batches
            .iter()
            .filter(|b| b.last >= offset)
            .take(max)
            .copied()
            .collect()
    }

    /// The batch holding `offset`, if any.
    pub fn batch_at(&self, offset: i64) -> Option<(usize, &Batch)> {
        let i = self.batches.partition_point(|b| b.last < offset);
        self.batches
            .get(i)
            .filter(|b| b.base <= offset)
            .map(|b| (i, b))
    }

    /// Whether `batch` is here and fsynced.
    pub fn holds_durably(&self, batch: &Batch) -> bool {
        matches!(self.batch_at(batch.base), Some((i, b)) if b == batch && i < self.durable)
    }
}

impl ReplicaLog for ModelLog {
    fn log_start_offset(&self) -> i64 {
        self.start
    }
    fn log_end_offset(&self) -> i64 {
        self.end()
    }
    fn durable_end_offset(&self) -> i64 {
        if self.pretend_durable {
            return self.end();
        }
        self.durable_end()
    }
    fn latest_epoch(&self) -> Option<i32> {
        self.epochs.latest_epoch()
    }
    fn end_offset_for_epoch(&self, epoch: i32) -> Option<(i32, i64)> {
        let (found, end) = self.epochs.end_offset_for(epoch, self.end());
        (found >= 0).then_some((found, end))
    }
}
