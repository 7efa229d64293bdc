//! `Partition`: a `Log` behind a mutex, plus the signals that let async callers wait without
//! polling: the high watermark (for parked fetches) and the recovery point (for `acks=all`).
//!
//! The mutex is held for in-memory work and the `write(2)` of an append (and, on rarer paths,
//! retention's file deletions, timestamp-lookup scans, and compaction's swap of cleaned
//! segments: a few renames and fsyncs once per pass, which appends then wait behind; the
//! rewriting itself runs without it); fetch reads and the fsyncs of the produce path (data, a
//! roll's indexes and snapshot, periodic checkpoints) happen outside it (see `ReadPlan`,
//! `FlushPlan` and `log/deferred.rs`). Uses only tokio's runtime-free
//! `sync` primitives, so storage stays free of any executor.

use crate::config::LogConfig;
use crate::damage::{self, Damage};
use crate::log::{AppendInfo, AppendOrigin, Log, ValidRecords};
use crate::read::ReadPlan;
use crate::scan;
use crate::{Result, StorageError};
use sluice_record::verify_checksum;
use std::fs::File;
use std::sync::{Mutex, MutexGuard};
use tokio::sync::{Notify, watch};

/// fsyncs taking this long are logged at debug level: each holds up every `acks=all`
/// producer of the partition, and consumers too once requests in flight run out.
const FSYNC_SLOW: std::time::Duration = std::time::Duration::from_millis(50);
/// ...and at warn level from here: a disk stalling this long is worth an operator's look.
/// (A burst of large `acks=all` batches can legitimately take hundreds of milliseconds.)
const FSYNC_STALLED: std::time::Duration = std::time::Duration::from_secs(2);

/// What an `acks=all` waiter watches: how far the log is fsynced, and whether fsync has
/// failed (then it never will be, and the waiter answers with an error at once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Durability {
    pub recovery_point: i64,
    pub failed: bool,
}

/// What a scrub checked and found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ScrubReport {
    pub segments: u64,
    pub bytes: u64,
    /// Offsets in damage the scrub met (found now or known before).
    pub damaged_offsets: i64,
}

#[derive(Debug)]
pub struct Partition {
    topic: String,
    index: i32,
    log: Mutex<Log>,
    /// Consumers' long-polls wait on this.
    high_watermark: watch::Sender<i64>,
    /// Followers' long-polls wait on this: they copy past the high watermark.
    log_end: watch::Sender<i64>,
    recovery_point: watch::Sender<Durability>,
    flush_wanted: Notify,
}

impl Partition {
    pub(crate) fn new(topic: String, index: i32, log: Log) -> Partition {
        let (high_watermark, _) = watch::channel(log.high_watermark());
        let (log_end, _) = watch::channel(log.log_end_offset());
        let (recovery_point, _) = watch::channel(Durability {
            recovery_point: log.recovery_point(),
            failed: false,
        });
        Partition {
            topic,
            index,
            log: Mutex::new(log),
            high_watermark,
            log_end,
            recovery_point,
            flush_wanted: Notify::new(),
        }
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }
    pub fn index(&self) -> i32 {
        self.index
    }

    /// Locks the log. A panic while holding the lock is a bug that already crashed a request;
    /// the log's own state stays consistent because every mutation is a single step.
    pub fn log(&self) -> MutexGuard<'_, Log> {
        self.log
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Checks the batches (inflating compressed ones) without the lock, then appends them
    /// under it.
    pub fn append(&self, records: &[u8], origin: AppendOrigin, now_ms: i64) -> Result<AppendInfo> {
        let max_message_bytes = self.log().config().max_message_bytes;
        let valid = ValidRecords::check(records, max_message_bytes, origin)?;
        self.append_with(|log| log.append_valid(valid, origin, now_ms), now_ms)
    }

    /// Appends batches fetched from the leader of `leader_epoch` with their offsets and epochs
    /// (`Log::append_as_follower`), unless this log no longer follows that epoch.
    pub fn append_as_follower(
        &self,
        records: &[u8],
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo> {
        let append = |log: &mut Log| {
            log.check_follows(leader_epoch)?;
            log.append_as_follower(records, now_ms)
        };
        self.append_with(append, now_ms)
    }

    /// Runs `append` under the lock, then wakes whoever waits on what moved: consumers on the
    /// high watermark, followers on the log end, the flusher when a flush is due.
    fn append_with(
        &self,
        append: impl FnOnce(&mut Log) -> Result<AppendInfo>,
        now_ms: i64,
    ) -> Result<AppendInfo> {
        let (info, high_watermark, log_end, flush_due) = {
            let mut log = self.log();
            let info = append(&mut log)?;
            let flush_due = log.flush_due(now_ms);
            (info, log.high_watermark(), log.log_end_offset(), flush_due)
        };
        self.high_watermark
            .send_if_modified(|hw| std::mem::replace(hw, high_watermark) != high_watermark);
        self.log_end.send_replace(log_end);
        if flush_due {
            self.flush_wanted.notify_one();
        }
        Ok(info)
    }

    pub fn read(&self, offset: i64, max_bytes: usize, min_one_batch: bool) -> Result<ReadPlan> {
        self.log().read(offset, max_bytes, min_one_batch)
    }

    /// Carries out `plan` (made by `read` or `Log::read_committed`) outside the lock. If the
    /// read meets damage (a batch whose CRC fails, a length that lies), the damage is measured
    /// and recorded (`learn_damage`); a read of offsets the damage holds fails with
    /// `Damaged`, and a read of later offsets is made again from past the damage.
    pub fn read_batches(&self, plan: &ReadPlan) -> Result<bytes::Bytes> {
        let (base, position) = match plan.read() {
            Err(StorageError::CorruptOnDisk {
                segment_base_offset,
                position,
            }) => (segment_base_offset, position),
            other => return other,
        };
        let damage = self.learn_damage(&plan.snapshot.file, plan.snapshot.size, base, position)?;
        if damage.offsets.contains(&plan.offset) || plan.offset < damage.offsets.start {
            return Err(damage.refusal());
        }
        let Some(snapshot) = self.log().snapshot_of(base, plan.offset) else {
            return Ok(bytes::Bytes::new());
        };
        ReadPlan {
            snapshot,
            ..plan.clone()
        }
        .read()
    }

    /// Measures the damage met at `position` of the segment at `base` (whose file holds `size`
    /// bytes of batches) and records it in the log. Reads the segment, so it runs outside the
    /// lock, taking it only to look up the index and to record.
    fn learn_damage(&self, file: &File, size: u64, base: i64, position: u64) -> Result<Damage> {
        let gone = || StorageError::Damaged(format!("segment {base} is gone"));
        let (scan_from, mut lost_from) = self
            .log()
            .scan_start_before(base, position)
            .ok_or_else(gone)?;
        // The damage starts after the last whole batch before it.
        let _ = scan::scan_batches(file, scan_from, position, |b| {
            lost_from = b.header.last_offset().saturating_add(1);
            Ok(true)
        });
        let next = damage::next_valid_batch(file, position + 1, size, lost_from, i32::MAX)?
            .map(|(at, header)| (at, header.base_offset));
        let recorded = self.log().add_damage(base, position, lost_from, next);
        let (damage, new) = recorded.ok_or_else(gone)?;
        if new {
            tracing::error!(topic = %self.topic, partition = self.index, segment = base, positions = ?damage.positions, lost_offsets = ?damage.offsets, "damaged batches found; they are not served");
        }
        Ok(damage)
    }

    /// Base offsets of the closed segments, oldest first: what the scrubber verifies.
    pub fn closed_segment_bases(&self) -> Vec<i64> {
        self.log()
            .closed_segment_sizes()
            .into_iter()
            .map(|(base, _)| base)
            .collect()
    }

    /// Verifies every batch of the closed segment at `base` against its CRC (the scrubber),
    /// recording the damage it finds as a read would. Blocking: run it off the async threads.
    /// A segment that is gone (retention, compaction) is an empty report.
    pub fn scrub_segment(&self, base: i64) -> Result<ScrubReport> {
        let mut report = ScrubReport::default();
        let found = self.log().closed_segment_file(base);
        let Some(found) = found else {
            return Ok(report);
        };
        let (file, size) = found?;
        let mut position = 0;
        // Offsets only grow within a segment (compaction leaves gaps, never a step back); the
        // base offset lies outside the CRC, so it is checked against that.
        let mut offset_floor = base;
        while position < size {
            let scanned = scan::scan_batches(&file, position, size, |b| {
                let h = &b.header;
                if verify_checksum(b.bytes).is_err() || h.base_offset < offset_floor {
                    return Err(b.position);
                }
                offset_floor = h.last_offset().saturating_add(1);
                Ok(true)
            });
            let bad = match scanned {
                Ok(_) => break,
                Err(scan::ScanStop::Invalid { position }) => position,
                Err(scan::ScanStop::Io(e)) => return Err(e.into()),
            };
            let damage = match self.learn_damage(&file, size, base, bad) {
                Ok(damage) => damage,
                Err(StorageError::Damaged(_)) => break, // the segment went meanwhile
                Err(e) => return Err(e),
            };
            report.damaged_offsets += damage.lost_offsets();
            position = damage.positions.end;
            offset_floor = damage.offsets.end;
        }
        report.segments = 1;
        report.bytes = size;
        Ok(report)
    }

    /// Watches the high watermark: a parked consumer fetch waits on this.
    pub fn subscribe_high_watermark(&self) -> watch::Receiver<i64> {
        self.high_watermark.subscribe()
    }

    /// Watches the log end offset: a parked follower fetch waits on this.
    pub fn subscribe_log_end(&self) -> watch::Receiver<i64> {
        self.log_end.subscribe()
    }

    /// Moves the high watermark up to `offset` (see `Log::advance_high_watermark`) and wakes
    /// the consumers waiting on it; true if it moved.
    pub fn advance_high_watermark(&self, offset: i64) -> Result<bool> {
        let (moved, high_watermark) = {
            let mut log = self.log();
            (log.advance_high_watermark(offset)?, log.high_watermark())
        };
        if moved {
            self.high_watermark.send_replace(high_watermark);
        }
        Ok(moved)
    }

    /// Makes this replica the sole one of its partition or one of several
    /// (`Log::set_sole_replica`), waking the consumers if the high watermark moved.
    pub fn set_sole_replica(&self, sole: bool) {
        let high_watermark = {
            let mut log = self.log();
            if log.is_sole_replica() == sole {
                return;
            }
            log.set_sole_replica(sole);
            log.high_watermark()
        };
        self.high_watermark
            .send_if_modified(|hw| std::mem::replace(hw, high_watermark) != high_watermark);
    }

    /// Cuts a follower's log back to `offset` (`Log::truncate_to`, durable before it returns),
    /// for the leader of `leader_epoch`. Blocking: run it off the async threads.
    pub fn truncate_to(&self, offset: i64, leader_epoch: i32, now_ms: i64) -> Result<()> {
        self.truncate_with(|log| {
            log.check_follows(leader_epoch)?;
            log.truncate_to(offset, now_ms)
        })
    }

    /// Empties a follower's log to start again at `offset`
    /// (`Log::truncate_fully_and_start_at`), for the leader of `leader_epoch`. Blocking: run it off the async threads.
    pub fn truncate_fully_and_start_at(
        &self,
        offset: i64,
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<()> {
        self.truncate_with(|log| {
            log.check_follows(leader_epoch)?;
            log.truncate_fully_and_start_at(offset, now_ms)
        })
    }

    /// Runs a truncation under the lock and tells the watchers where the offsets went.
    fn truncate_with(&self, truncate: impl FnOnce(&mut Log) -> Result<()>) -> Result<()> {
        let (high_watermark, log_end, recovery_point) = {
            let mut log = self.log();
            truncate(&mut log)?;
            (
                log.high_watermark(),
                log.log_end_offset(),
                log.recovery_point(),
            )
        };
        self.high_watermark.send_replace(high_watermark);
        self.log_end.send_replace(log_end);
        self.recovery_point.send_replace(Durability {
            recovery_point,
            failed: false,
        });
        Ok(())
    }

    /// Watches the recovery point: an `acks=all` produce waits on this.
    pub fn subscribe_durability(&self) -> watch::Receiver<Durability> {
        self.recovery_point.subscribe()
    }

    /// Asks for an fsync and resolves once everything below `offset` is durable: true, or
    /// false if the partition went offline first. Concurrent callers share fsyncs.
    pub async fn wait_durable(&self, offset: i64) -> bool {
        let mut durability = self.subscribe_durability();
        self.request_flush();
        let reached = |d: &Durability| d.failed || d.recovery_point >= offset;
        match durability.wait_for(reached).await {
            Ok(d) => !d.failed,
            Err(_) => false,
        }
    }

    /// Runs one compaction pass if one is due; the work happens without the log's lock.
    /// Blocking: run it off the async threads.
    pub fn clean(&self, now_ms: i64) -> Result<Option<crate::CleanStats>> {
        let Some(plan) = self.log().clean_plan(now_ms) else {
            return Ok(None);
        };
        let cleaned = plan.execute()?;
        Ok(Some(self.log().install_cleaned(cleaned)?))
    }

    /// Asks the partition's flusher to fsync soon.
    pub fn request_flush(&self) {
        self.flush_wanted.notify_one();
    }

    /// Resolves when someone asked for a flush.
    pub async fn flush_requested(&self) {
        self.flush_wanted.notified().await
    }

    /// Fsyncs everything appended so far. Blocking: run it off the async threads. Concurrent
    /// waiters share one fsync (group commit) because they all wait on the recovery point.
    /// `ResourceExhausted` means nothing failed on disk: try again later.
    pub fn flush(&self, now_ms: i64) -> Result<()> {
        let Some(plan) = self.log().flush_plan() else {
            return Ok(());
        };
        let started = std::time::Instant::now();
        let result = plan.execute();
        self.report_fsync_time(started.elapsed());
        match result {
            Ok(()) => {
                let point = {
                    let mut log = self.log();
                    log.mark_flushed(&plan, now_ms);
                    log.recovery_point()
                };
                self.recovery_point.send_replace(Durability {
                    recovery_point: point,
                    failed: false,
                });
                Ok(())
            }
            Err(e) => {
                let (point, offline) = {
                    let mut log = self.log();
                    let offline = log.mark_flush_failed(&plan, &e);
                    (log.recovery_point(), offline)
                };
                if !offline {
                    return Err(crate::StorageError::ResourceExhausted(format!(
                        "fsync: {e}"
                    )));
                }
                self.recovery_point.send_replace(Durability {
                    recovery_point: point,
                    failed: true,
                });
                Err(crate::StorageError::Offline(format!("fsync failed: {e}")))
            }
        }
    }

    /// Writes the recovery point and high watermark checkpoints: their values are taken under
    /// the lock, the files written and fsynced outside it, and put in place under it again
    /// (see `log/deferred.rs`). Blocking: run it off the async threads.
    pub fn write_checkpoints(&self) -> Result<()> {
        let write = self.log().checkpoint_write();
        self.complete_checkpoint(&write)
    }

    /// DeleteRecords: moves the log start offset to `offset` (the high watermark if None) and
    /// answers once the move is durable, its checkpoint written outside the lock.
    pub fn delete_records_before(&self, offset: Option<i64>) -> Result<i64> {
        let (start, write) = {
            let mut log = self.log();
            let target = offset.unwrap_or_else(|| log.high_watermark());
            (log.delete_records_before(target)?, log.checkpoint_write())
        };
        self.complete_checkpoint(&write)?;
        Ok(start)
    }

    /// Writes and fsyncs `write`'s files without the lock, renames them into place under it,
    /// and fsyncs the directory without it.
    fn complete_checkpoint(&self, write: &crate::log::CheckpointWrite) -> Result<()> {
        if let Err(e) = write.write() {
            self.log().checkpoint_failed(write);
            return Err(e.into());
        }
        let dir = {
            let mut log = self.log();
            log.install_checkpoints(write)?;
            log.dir().to_path_buf()
        };
        crate::checkpoint::sync_dir(&dir)?;
        Ok(())
    }

    fn report_fsync_time(&self, took: std::time::Duration) {
        let took_ms = took.as_millis() as u64;
        if took >= FSYNC_STALLED {
            tracing::warn!(topic = %self.topic, partition = self.index, took_ms, "fsync stalled");
        } else if took >= FSYNC_SLOW {
            tracing::debug!(topic = %self.topic, partition = self.index, took_ms, "slow fsync");
        }
    }

    pub fn flush_due(&self, now_ms: i64) -> bool {
        self.log().flush_due(now_ms)
    }

    pub(crate) fn set_config(&self, config: LogConfig) {
        self.log().set_config(config);
    }

    pub(crate) fn take_offline(&self, reason: &str) {
        self.log().retire(reason);
    }
}
