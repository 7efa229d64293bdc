//! `Partition`: a `Log` behind a mutex, plus the signals that let async callers wait without
//! polling: the high watermark (for parked fetches) and the recovery point (for `acks=all`).
//!
//! The mutex is held for in-memory work and the `write(2)` of an append (and, on rarer paths,
//! retention's file deletions, timestamp-lookup scans, and compaction's swap of cleaned
//! segments: a few renames and fsyncs once per pass, which appends then wait behind; the
//! rewriting itself runs without it); fetch reads and
//! fsyncs happen outside it (see `ReadPlan` and `FlushPlan`). Uses only tokio's runtime-free
//! `sync` primitives, so storage stays free of any executor.

use crate::config::LogConfig;
use crate::damage::{self, Damage};
use crate::log::{AppendInfo, AppendOrigin, Log, ValidRecords};
use crate::read::ReadPlan;
use crate::scan;
use crate::{Result, StorageError};
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

#[derive(Debug)]
pub struct Partition {
    topic: String,
    index: i32,
    log: Mutex<Log>,
    high_watermark: watch::Sender<i64>,
    recovery_point: watch::Sender<Durability>,
    flush_wanted: Notify,
}

impl Partition {
    pub(crate) fn new(topic: String, index: i32, log: Log) -> Partition {
        let (high_watermark, _) = watch::channel(log.high_watermark());
        let (recovery_point, _) = watch::channel(Durability {
            recovery_point: log.recovery_point(),
            failed: false,
        });
        Partition {
            topic,
            index,
            log: Mutex::new(log),
            high_watermark,
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
        let config = self.log().config().clone();
        let valid = ValidRecords::check(records, &config, origin)?;
        let (info, high_watermark, flush_due) = {
            let mut log = self.log();
            let info = log.append_valid(valid, origin, now_ms)?;
            (info, log.high_watermark(), log.flush_due(now_ms))
        };
        self.high_watermark.send_replace(high_watermark);
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
        let damage = self.learn_damage(plan, base, position)?;
        if damage.offsets.contains(&plan.offset) || plan.offset < damage.offsets.start {
            return Err(StorageError::Damaged(format!(
                "offsets {}..{} are damaged on disk and cannot be read; the next readable offset is {}",
                damage.offsets.start, damage.offsets.end, damage.offsets.end
            )));
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

    /// Measures the damage a read met at `position` of the segment at `base` (outside the
    /// lock: it reads the segment) and records it in the log.
    fn learn_damage(&self, plan: &ReadPlan, base: i64, position: u64) -> Result<Damage> {
        let file = &plan.snapshot.file;
        // The damage starts after the last whole batch before it.
        let mut lost_from = base;
        let _ = scan::scan_batches(file, 0, position, |b| {
            lost_from = b.header.last_offset() + 1;
            Ok(true)
        });
        let next =
            damage::next_valid_batch(file, position + 1, plan.snapshot.size, lost_from, i32::MAX)?
                .map(|(at, header)| (at, header.base_offset));
        let mut log = self.log();
        let damage = log.add_damage(base, position, lost_from, next);
        drop(log);
        if let Some(damage) = &damage {
            tracing::error!(topic = %self.topic, partition = self.index, lost_offsets = ?damage.offsets, "a read found damaged batches; they are not served");
        }
        damage.ok_or_else(|| StorageError::Damaged(format!("segment {base} is gone")))
    }

    /// Watches the high watermark: a parked fetch waits on this.
    pub fn subscribe_high_watermark(&self) -> watch::Receiver<i64> {
        self.high_watermark.subscribe()
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
