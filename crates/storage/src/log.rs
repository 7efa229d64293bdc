//! `Log`: one partition's ordered run of segments, the offsets that describe it, and the
//! operations that change it (append, roll, flush bookkeeping, retention, truncation).
//!
//! Offsets, from low to high:
//! ```text
//! log_start_offset <= recovery_point <= log_end_offset
//! log_start_offset <= high_watermark <= log_end_offset
//! ```
//! `recovery_point` is the offset below which everything is known to be fsynced. The high
//! watermark of a sole replica (`open`: a single node) follows the log end offset on every
//! append; a replica's (`open_replica`) moves only when its leader advances it, and restarts at
//! its checkpoint, at most the log end.
//!
//! Checkpoint files in the partition directory (one decimal number each, replaced
//! atomically): `log-start-offset`, and `recovery-point` and `high-watermark`, written
//! periodically and at clean shutdown. After a crash, every segment from the one holding the recovery point onward is
//! verified batch by batch, so recovery work is bounded by the unflushed tail plus one segment.
//!
//! Idempotent producers' state (`producer_state`) lives here too, kept by `log/producers.rs`:
//! every append goes through it, and it is rebuilt from snapshots and the log at open.
//!
//! `Log` does no locking and spawns nothing: `Partition` wraps it in a mutex, and the broker
//! runs fsyncs (`FlushPlan::execute`) off its async threads.

mod deferred;
mod epochs;
mod follower;
mod producers;
mod transactions;
mod truncation;

pub(crate) use deferred::{CheckpointWrite, PendingFile};
pub use transactions::AbortedTxn;

use crate::checkpoint;
use crate::config::LogConfig;
use crate::error::is_resource_exhaustion;
use crate::leader_epoch::LeaderEpochCache;
use crate::producer_state::{BatchMetadata, ProducerStates, Verdict, has_producer};
use crate::read::ReadPlan;
use crate::segment::{LogSegment, offsets_of_files};
use crate::{Result, StorageError};
use sluice_record::{BatchHeader, BatchIter, decode_records, validate_batch_records};
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const LOG_START_OFFSET_FILE: &str = "log-start-offset";
const RECOVERY_POINT_FILE: &str = "recovery-point";
/// The high watermark as last checkpointed (decimal): a replica that restarts exposes no more
/// than this, and no more than its log end, until its leader says otherwise.
const HIGH_WATERMARK_FILE: &str = "high-watermark";
/// Compaction's progress: the first offset not yet compacted, and when the earliest kept
/// tombstone expires (-1: none), as two decimal numbers.
const CLEANER_CHECKPOINT_FILE: &str = "cleaner-checkpoint";

/// Who is appending. Clients are held to the producer rules (sequences, epochs) and may not
/// write control batches; the broker's own writes (coordinator records, transaction markers)
/// are trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendOrigin {
    /// A client; transactional batches are refused.
    Client,
    /// A client whose transactional batches the transaction coordinator vouched for (the
    /// partition is in the producer's open transaction, at its current epoch).
    ClientInTransaction,
    Broker,
}

impl AppendOrigin {
    fn is_client(self) -> bool {
        self != AppendOrigin::Broker
    }
}

/// Where an append landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: i64,
    pub last_offset: i64,
    /// Records and bytes written by this append (0 for a duplicate).
    pub records: i64,
    pub bytes: usize,
    /// The log start offset right after the append (Produce answers with it).
    pub log_start_offset: i64,
    /// The batch was a producer's retry of one already in the log: nothing was written, and
    /// the offsets are those of the original.
    pub duplicate: bool,
}

/// What to fsync to make everything below `up_to` durable, with the work rolls left for it
/// (`log/deferred.rs`). Made under the log's lock, executed outside it.
#[derive(Debug)]
pub struct FlushPlan {
    files: Vec<Arc<File>>,
    dir: Option<PathBuf>,
    pub up_to: i64,
    appended_messages: i64,
    /// Sealed segments' index files to fsync, by segment base offset.
    seals: Vec<(i64, Vec<PathBuf>)>,
    /// A producer snapshot (and the aborted-transactions index) to write and fsync.
    snapshot_files: Vec<PendingFile>,
    /// The log's truncation count when the plan was made.
    generation: u64,
}

impl FlushPlan {
    pub fn execute(&self) -> std::io::Result<()> {
        self.execute_deferred()?;
        for file in &self.files {
            rustix::fs::fdatasync(file.as_ref()).map_err(std::io::Error::from)?;
        }
        if let Some(dir) = &self.dir {
            checkpoint::sync_dir(dir)?;
        }
        Ok(())
    }
}

/// What opening a log checked batch by batch (the segments from its recovery point on, after
/// an unclean shutdown): for the start's report.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Recovered {
    pub segments: usize,
    pub bytes: u64,
}

#[derive(Debug)]
pub struct Log {
    dir: PathBuf,
    config: LogConfig,
    segments: BTreeMap<i64, LogSegment>,
    log_start_offset: i64,
    high_watermark: i64,
    recovery_point: i64,
    /// The only replica in its in-sync set (a single node): the high watermark follows every
    /// append. Otherwise it moves only by `advance_high_watermark`.
    sole_replica: bool,
    /// This replica follows another (`become_follower`): it takes no leader's append.
    follower: bool,
    /// Transactions decided by a marker at or above the high watermark, by marker offset, with
    /// their first offset: the last stable offset holds at them until the marker is committed.
    unreplicated_txns: BTreeMap<i64, i64>,
    /// The epoch stamped on this replica's appends as leader (`log/epochs.rs`).
    leader_epoch: i32,
    /// Every leader epoch of the log and where it starts, as its checkpoint file holds it.
    epochs: LeaderEpochCache,
    appended_messages: i64,
    flushed_messages: i64,
    last_flush_ms: i64,
    dir_dirty: bool,
    offline: Option<String>,
    /// The recovery point as last written to its checkpoint file: what crash recovery will
    /// start from. Compaction stays below it.
    checkpointed_recovery_point: i64,
    /// Offsets below this have been compacted (checkpointed after each pass).
    cleaner_checkpoint: i64,
    /// When the earliest tombstone in the compacted part may be dropped.
    tombstone_expiry_ms: Option<i64>,
    /// Idempotent producers' sequences and epochs, and their open transactions.
    producers: ProducerStates,
    /// Aborted transactions by the offset of their marker (see `log/transactions.rs`).
    aborted: BTreeMap<i64, AbortedTxn>,
    /// Closed segments whose index files are written but not yet fsynced, by base offset
    /// (`log/deferred.rs`): the recovery point stays at or below the first.
    unsynced_seals: BTreeMap<i64, Vec<PathBuf>>,
    /// A roll asked for a producer snapshot; the next flush writes it.
    snapshot_due: bool,
    /// Truncations so far: work planned before one is stale.
    generation: u64,
    /// The log start offset moved since its checkpoint was written.
    log_start_due: bool,
    /// The epoch cache changed (folded at a new log start) since its file was written.
    epoch_cache_due: bool,
    recovered: Recovered,
}

impl Log {
    /// Opens (or creates) the log in `dir`. `clean` says the previous shutdown was clean, in
    /// which case no segment is re-verified.
    pub fn open(dir: &Path, config: LogConfig, clean: bool, now_ms: i64) -> Result<Log> {
        Log::open_as(dir, config, clean, now_ms, true)
    }

    /// Opens the log of a replica that shares its partition with others: its high watermark is
    /// the checkpointed one (at most its log end) and moves only by `advance_high_watermark`.
    pub fn open_replica(dir: &Path, config: LogConfig, clean: bool, now_ms: i64) -> Result<Log> {
        Log::open_as(dir, config, clean, now_ms, false)
    }

    fn open_as(
        dir: &Path,
        config: LogConfig,
        clean: bool,
        now_ms: i64,
        sole_replica: bool,
    ) -> Result<Log> {
        std::fs::create_dir_all(dir)?;
        deferred::remove_pending_files(dir)?;
        crate::compaction::remove_leftovers(dir)?;
        crate::compaction::complete_swaps(dir)?;
        let checkpointed_recovery_point =
            checkpoint::read_i64(&dir.join(RECOVERY_POINT_FILE)).unwrap_or(0);
        let bases = offsets_of_files(dir, "log")?;
        let cached_epochs = epochs::read_epoch_cache(dir);
        let leader_epoch_max = epochs::leader_epoch_max(cached_epochs.as_ref());
        let recovery_point = if clean {
            i64::MAX
        } else {
            checkpoint::read_i64(&dir.join(RECOVERY_POINT_FILE)).unwrap_or(0)
        };
        let recover_from = bases
            .iter()
            .rev()
            .find(|&&b| b <= recovery_point)
            .copied()
            .unwrap_or(i64::MIN);
        // A damaged or torn segment costs only its damaged bytes: the segments after it are
        // kept (their batches are whole and their offsets follow), whatever recovery cut.
        let mut segments: BTreeMap<i64, LogSegment> = BTreeMap::new();
        let last = bases.last().copied();
        let mut recovered = Recovered::default();
        for base in bases {
            let recover = base >= recover_from && !clean;
            let segment = LogSegment::open(
                dir,
                base,
                recover,
                Some(base) == last,
                config.index_interval_bytes,
                leader_epoch_max,
                now_ms,
            )?;
            if recover {
                recovered.segments += 1;
                recovered.bytes += segment.size();
            }
            if let Some((_, previous)) = segments.iter_mut().next_back() {
                previous.close_damage(base);
                // Everything found on disk counts as durable from here on (the recovery point
                // below), so a closed segment stops holding its file: a log of any length
                // opens with one descriptor at a time.
                previous.release_file();
            }
            segments.insert(base, segment);
        }
        let checkpointed_start =
            checkpoint::read_i64(&dir.join(LOG_START_OFFSET_FILE)).unwrap_or(0);
        if segments.is_empty() {
            let base = checkpointed_start.max(0);
            segments.insert(base, LogSegment::create(dir, base, now_ms)?);
        }
        let first_base = *segments.keys().next().expect("at least one segment");
        let mut log = Log {
            dir: dir.to_path_buf(),
            config,
            segments,
            log_start_offset: checkpointed_start.max(first_base),
            high_watermark: 0,
            recovery_point: 0,
            sole_replica,
            unreplicated_txns: BTreeMap::new(),
            leader_epoch: 0,
            follower: false,
            epochs: LeaderEpochCache::default(),
            appended_messages: 0,
            flushed_messages: 0,
            last_flush_ms: now_ms,
            dir_dirty: true,
            offline: None,
            checkpointed_recovery_point,
            cleaner_checkpoint: 0,
            tombstone_expiry_ms: None,
            producers: ProducerStates::default(),
            aborted: BTreeMap::new(),
            unsynced_seals: BTreeMap::new(),
            snapshot_due: false,
            generation: 0,
            log_start_due: false,
            epoch_cache_due: false,
            recovered,
        };
        if let Some((first_dirty, expiry)) = read_cleaner_checkpoint(dir) {
            log.cleaner_checkpoint = first_dirty.min(log.log_end_offset());
            log.tombstone_expiry_ms = expiry;
        }
        let end = log.log_end_offset();
        log.log_start_offset = log.log_start_offset.min(end);
        log.high_watermark = if sole_replica {
            end
        } else {
            checkpoint::read_i64(&dir.join(HIGH_WATERMARK_FILE))
                .unwrap_or(log.log_start_offset)
                .clamp(log.log_start_offset, end)
        };
        log.recovery_point = end;
        log.load_aborted()?;
        log.load_producers(now_ms)?;
        // The cache names every epoch before a batch of it is written (`become_leader`, an
        // epoch's first append), so recovery needs it only as the bound above; a lost cache is
        // rebuilt from the batch headers.
        let rebuild = cached_epochs.is_none();
        log.epochs = cached_epochs.unwrap_or_default();
        log.settle_epochs(rebuild)?;
        Ok(log)
    }

    fn active(&self) -> &LogSegment {
        self.segments
            .values()
            .next_back()
            .expect("a log always has an active segment")
    }

    fn active_mut(&mut self) -> &mut LogSegment {
        self.segments
            .values_mut()
            .next_back()
            .expect("a log always has an active segment")
    }

    fn check_online(&self) -> Result<()> {
        match &self.offline {
            Some(reason) => Err(StorageError::Offline(reason.clone())),
            None => Ok(()),
        }
    }

    /// Validates every batch in `records` (a produce request's payload), then appends them all
    /// with consecutive offsets. Nothing is written unless every batch is valid; a producer's
    /// retried batch is not written again (see `AppendInfo::duplicate`).
    pub fn append(
        &mut self,
        records: &[u8],
        origin: AppendOrigin,
        now_ms: i64,
    ) -> Result<AppendInfo> {
        let valid = ValidRecords::check(records, self.config.max_message_bytes, origin)?;
        self.append_valid(valid, origin, now_ms)
    }

    /// Appends batches `ValidRecords::check` passed (see `append`), once they meet the topic's
    /// config as it is now (`ValidRecords::admit`: no batch is walked again).
    pub fn append_valid(
        &mut self,
        valid: ValidRecords<'_>,
        origin: AppendOrigin,
        now_ms: i64,
    ) -> Result<AppendInfo> {
        self.check_online()?;
        if self.follower {
            return Err(StorageError::NotLeaderOrFollower(format!(
                "this replica follows the leader of epoch {}",
                self.leader_epoch
            )));
        }
        let batches = valid.admit(&self.config)?;
        self.check_markers(&batches)?;
        if let Some(original) = self.find_duplicate(&batches, origin)? {
            return Ok(AppendInfo {
                base_offset: original.first_offset,
                last_offset: original.last_offset,
                records: 0,
                bytes: 0,
                log_start_offset: self.log_start_offset,
                duplicate: true,
            });
        }
        let base_offset = self.log_end_offset();
        let mut next = base_offset;
        let epoch = self.leader_epoch;
        self.note_epoch_start(epoch, base_offset)?;
        for (header, bytes) in &batches {
            let last_offset = next + header.offset_count() - 1;
            self.maybe_roll(next, last_offset, bytes.len(), now_ms)?;
            let interval = self.config.index_interval_bytes;
            if let Err(e) = self
                .active_mut()
                .append(bytes, header, next, epoch, interval)
            {
                return Err(self.io_failure("append", e));
            }
            self.track_producer(header, bytes, next, now_ms);
            next += header.offset_count();
            // The leader's own log is contiguous: every batch starts where the last one ended.
            assert_eq!(self.active().next_offset(), next, "append left a gap");
        }
        let records = next - base_offset;
        self.appended_messages += records;
        if self.sole_replica {
            self.set_high_watermark(next);
        }
        Ok(AppendInfo {
            base_offset,
            last_offset: next - 1,
            records,
            bytes: records_len(&batches),
            log_start_offset: self.log_start_offset,
            duplicate: false,
        })
    }

    /// Applies the producer rules to a client's batches: a producer's batch must come alone
    /// (Kafka accepts one v2 batch per partition), and is either new (None), a retry of a
    /// remembered batch (its metadata), or refused.
    fn find_duplicate(
        &self,
        batches: &[(BatchHeader, &[u8])],
        origin: AppendOrigin,
    ) -> Result<Option<BatchMetadata>> {
        if !origin.is_client() {
            return Ok(None);
        }
        let Some((header, _)) = batches.iter().find(|(h, _)| has_producer(h)) else {
            return Ok(None);
        };
        if batches.len() > 1 {
            return Err(StorageError::InvalidRecord(
                "a producer's batch must be the only batch for its partition in a request".into(),
            ));
        }
        match self.producers.check(header)? {
            Verdict::Append => Ok(None),
            Verdict::Duplicate(original) => Ok(Some(original)),
        }
    }

    /// Rolls to a new segment, starting at `base_offset`, when the next batch (to be stored at
    /// `base_offset..=last_offset`) would overflow the active one, the active one is older than
    /// `segment.ms`, or its offsets relative to the active segment's base would overflow u32.
    fn maybe_roll(
        &mut self,
        base_offset: i64,
        last_offset: i64,
        batch_bytes: usize,
        now_ms: i64,
    ) -> Result<()> {
        let active = self.active();
        let relative_overflow = last_offset - active.base_offset() >= i64::from(u32::MAX);
        // An empty segment takes any batch, unless the batch's offsets cannot be stored
        // relative to its base (a follower copying past a gap of four billion offsets).
        if active.size() == 0 && !relative_overflow {
            return Ok(());
        }
        let full = active.size() + batch_bytes as u64 > self.config.segment_bytes;
        let old = now_ms - active.created_at_ms() >= self.config.segment_ms;
        if full || old || relative_overflow {
            self.roll_at(base_offset, now_ms)?;
        }
        Ok(())
    }

    /// Closes the active segment and starts a new one at the log end offset.
    fn roll(&mut self, now_ms: i64) -> Result<()> {
        self.roll_at(self.log_end_offset(), now_ms)
    }

    /// Closes the active segment and starts a new one at `base` (the log end offset, or past
    /// it for a follower whose next batch starts after a gap).
    fn roll_at(&mut self, base: i64, now_ms: i64) -> Result<()> {
        debug_assert!(base >= self.log_end_offset());
        if let Err(e) = self.seal_active() {
            return Err(self.io_failure("write indexes", e));
        }
        let segment = match LogSegment::create(&self.dir, base, now_ms) {
            Ok(s) => s,
            Err(e) => return Err(self.io_failure("create segment", e)),
        };
        self.segments.insert(base, segment);
        self.dir_dirty = true;
        Ok(())
    }

    /// A failed write or fsync takes the log offline: the state of the file is unknown, so
    /// carrying on could acknowledge data that is not there. A full disk or a process out of
    /// descriptors is not such a failure: nothing was written, and the request is refused.
    fn io_failure(&mut self, what: &str, e: std::io::Error) -> StorageError {
        if e.kind() == std::io::ErrorKind::StorageFull {
            tracing::error!(dir = %self.dir.display(), "{what} failed: disk full; the batch was not written");
            return StorageError::Io(e);
        }
        if is_resource_exhaustion(&e) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "{what} failed for want of a resource; the batch was not written");
            return StorageError::ResourceExhausted(format!("{what}: {e}"));
        }
        self.fail(format!("{what} failed: {e}"));
        StorageError::Offline(format!("{what} failed: {e}"))
    }

    /// Takes the log offline for good (until restart and recovery).
    pub fn fail(&mut self, reason: String) {
        tracing::error!(dir = %self.dir.display(), %reason, "partition log is now offline");
        self.offline = Some(reason);
    }

    /// Refuses every later append and read, as `fail` does, but as the expected end of a log
    /// whose topic is being deleted: nothing went wrong, so nothing is logged as an error.
    pub(crate) fn retire(&mut self, reason: &str) {
        self.offline = Some(reason.to_string());
    }

    /// Plans a consumer's read of batches from `offset`, up to the high watermark. An offset at
    /// or past the high watermark (up to the log end) yields an empty read.
    pub fn read(&self, offset: i64, max_bytes: usize, min_one_batch: bool) -> Result<ReadPlan> {
        let mut plan = self.read_to_log_end(offset, max_bytes, min_one_batch)?;
        plan.upper_offset = self.high_watermark;
        Ok(plan)
    }

    /// Plans a follower's read from `offset`, up to the log end: a replica copies what the
    /// leader has, committed or not.
    pub fn read_to_log_end(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
    ) -> Result<ReadPlan> {
        self.check_online()?;
        if offset < self.log_start_offset || offset > self.log_end_offset() {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start_offset: self.log_start_offset,
                log_end_offset: self.log_end_offset(),
            });
        }
        let (_, floor) = self
            .segments
            .range(..=offset)
            .next_back()
            .expect("offset >= first base");
        if let Some(damage) = floor.damage_at(offset) {
            return Err(damage.refusal());
        }
        // Past the floor segment's end (compaction leaves gaps, even empty segments), the
        // data continues in the first later segment that holds any.
        let segment = if offset < floor.next_offset() {
            floor
        } else {
            self.segments
                .range(offset + 1..)
                .map(|(_, s)| s)
                .find(|s| s.next_offset() > s.base_offset())
                .unwrap_or_else(|| self.active())
        };
        Ok(ReadPlan {
            snapshot: segment.snapshot_for(offset).map_err(exhaustion_or_io)?,
            offset,
            upper_offset: self.log_end_offset(),
            max_bytes,
            min_one_batch,
        })
    }

    /// Every damaged stretch found so far (at recovery or by reads), oldest segment first.
    pub fn damage(&self) -> Vec<crate::Damage> {
        self.segments
            .values()
            .flat_map(|s| s.damage().iter().cloned())
            .collect()
    }

    /// Records damage found at `position` of the segment at `base_offset`
    /// (`Partition::learn_damage`): offsets from `lost_from` up to the next valid batch
    /// (`next`: its position and base offset) or the segment's end. None if that segment is
    /// gone (retention or compaction replaced it meanwhile); with the damage, whether it is new.
    pub(crate) fn add_damage(
        &mut self,
        base_offset: i64,
        position: u64,
        lost_from: i64,
        next: Option<(u64, i64)>,
    ) -> Option<(crate::Damage, bool)> {
        let segment = self.segments.get_mut(&base_offset)?;
        let (end, lost_to) = next.unwrap_or((segment.size(), segment.next_offset()));
        let damage = crate::Damage {
            positions: position..end,
            offsets: lost_from..lost_to.max(lost_from + 1),
        };
        let new = segment.add_damage(damage.clone(), next);
        Some((damage, new))
    }

    /// See `LogSegment::scan_start_before`; None if the segment is gone.
    pub(crate) fn scan_start_before(&self, base_offset: i64, position: u64) -> Option<(u64, i64)> {
        self.segments
            .get(&base_offset)
            .map(|s| s.scan_start_before(position))
    }

    /// The closed segments, as (base offset, size): what the scrubber verifies.
    pub(crate) fn closed_segment_sizes(&self) -> Vec<(i64, u64)> {
        self.closed_segments()
            .map(|s| (s.base_offset(), s.size()))
            .collect()
    }

    /// The file of the closed segment at `base_offset` and its size; None if it is gone.
    pub(crate) fn closed_segment_file(&self, base_offset: i64) -> Option<Result<(Arc<File>, u64)>> {
        let segment = self
            .closed_segments()
            .find(|s| s.base_offset() == base_offset)?;
        Some(
            segment
                .file()
                .map(|file| (file, segment.size()))
                .map_err(exhaustion_or_io),
        )
    }

    /// A fresh snapshot of the segment at `base_offset` for a read of `offset`.
    pub(crate) fn snapshot_of(
        &self,
        base_offset: i64,
        offset: i64,
    ) -> Option<crate::segment::SegmentSnapshot> {
        self.segments
            .get(&base_offset)
            .and_then(|s| s.snapshot_for(offset).ok())
    }

    /// The first record at or after `timestamp`: its offset and timestamp.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<(i64, i64)>> {
        self.check_online()?;
        for segment in self.segments.values() {
            if segment.max_timestamp() < timestamp {
                continue;
            }
            let start = segment.position_for_timestamp(timestamp);
            if let Some(found) = self.search_segment(segment, start, timestamp)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    fn search_segment(
        &self,
        segment: &LogSegment,
        start: u64,
        timestamp: i64,
    ) -> Result<Option<(i64, i64)>> {
        let mut found = None;
        let mut error = None;
        let lower = self.log_start_offset;
        let upper = self.high_watermark;
        let file = segment.file().map_err(exhaustion_or_io)?;
        let scan = crate::scan::scan_batches(&file, start, segment.size(), |b| {
            if b.header.base_offset >= upper {
                return Ok(false);
            }
            if b.header.max_timestamp < timestamp || b.header.last_offset() < lower {
                return Ok(true);
            }
            let decoded = decode_records(b.bytes, |r| {
                if r.timestamp >= timestamp && r.offset >= lower {
                    found = Some((r.offset, r.timestamp));
                }
                found.is_none()
            });
            if let Err(e) = decoded {
                error = Some(e);
            }
            Ok(found.is_none() && error.is_none())
        });
        if let Some(e) = error {
            return Err(e.into());
        }
        if let Err(crate::scan::ScanStop::Io(e)) = scan {
            return Err(e.into());
        }
        Ok(found)
    }

    /// True when `flush.messages` or `flush.ms` calls for an fsync now.
    pub fn flush_due(&self, now_ms: i64) -> bool {
        let unflushed = self.log_end_offset() > self.recovery_point;
        unflushed
            && (self.appended_messages - self.flushed_messages >= self.config.flush_messages
                || now_ms - self.last_flush_ms >= self.config.flush_ms)
    }

    /// What to fsync so that everything appended so far is durable; `None` when it already is.
    pub fn flush_plan(&mut self) -> Option<FlushPlan> {
        let end = self.log_end_offset();
        if end <= self.recovery_point && !self.dir_dirty && !self.deferred_due() {
            return None;
        }
        // Segments with data not yet fsynced hold their files open (see `segment_file.rs`).
        let files: std::io::Result<Vec<Arc<File>>> = self
            .segments
            .values()
            .filter(|s| {
                s.next_offset() > self.recovery_point || s.base_offset() >= self.recovery_point
            })
            .map(LogSegment::file)
            .collect();
        let files = match files {
            Ok(files) => files,
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), error = %e, "cannot open a segment to fsync it; trying later");
                return None;
            }
        };
        let mut plan = FlushPlan {
            files,
            dir: None,
            up_to: end,
            appended_messages: self.appended_messages,
            seals: Vec::new(),
            snapshot_files: Vec::new(),
            generation: 0,
        };
        self.take_deferred(&mut plan);
        // The snapshot's files are renamed into place after the plan: the next one syncs that.
        plan.dir = std::mem::take(&mut self.dir_dirty).then(|| self.dir.clone());
        Some(plan)
    }

    /// Records that `plan` completed.
    pub fn mark_flushed(&mut self, plan: &FlushPlan, now_ms: i64) {
        self.complete_deferred(plan);
        self.flushed_messages = self.flushed_messages.max(plan.appended_messages);
        self.last_flush_ms = now_ms;
        self.release_flushed_files();
    }

    /// Closed segments wholly fsynced stop holding their files open. Those still holding one
    /// are the newest closed ones, so the walk back from the active segment stops at the first
    /// that holds none.
    fn release_flushed_files(&mut self) {
        let recovery_point = self.recovery_point;
        for segment in self.segments.values_mut().rev().skip(1) {
            if !segment.holds_file() {
                break;
            }
            if segment.next_offset() <= recovery_point {
                segment.release_file();
            }
        }
    }

    /// Records a failed fsync: the log goes offline, unless the process only ran out of
    /// descriptors or memory (opening the directory to sync it needs one), in which case the
    /// same plan is simply due again. Returns whether the log went offline.
    pub fn mark_flush_failed(&mut self, plan: &FlushPlan, e: &std::io::Error) -> bool {
        if plan.dir.is_some() {
            self.dir_dirty = true;
        }
        self.fail_deferred(plan);
        if is_resource_exhaustion(e) {
            return false;
        }
        self.fail(format!("fsync failed: {e}"));
        true
    }

    /// Deletes closed segments past `retention.ms` or beyond `retention.bytes`, and whole
    /// segments below the log start offset. Returns how many segments went.
    pub fn apply_retention(&mut self, now_ms: i64) -> Result<usize> {
        self.check_online()?;
        let active = self.active();
        let delete = self.config.cleanup_delete;
        let active_expired = delete
            && self.config.retention_ms >= 0
            && active.size() > 0
            && active.max_timestamp() >= 0
            && active.max_timestamp() < now_ms - self.config.retention_ms
            && active.next_offset() <= self.high_watermark;
        if active_expired {
            self.roll(now_ms)?;
        }
        let mut total: u64 = self.segments.values().map(LogSegment::size).sum();
        let mut deleted = 0;
        while self.segments.len() > 1 {
            let first = self.segments.values().next().expect("non-empty");
            let by_time = delete
                && self.config.retention_ms >= 0
                && first.max_timestamp() < now_ms - self.config.retention_ms;
            let by_size = delete
                && self.config.retention_bytes >= 0
                && total - first.size() >= self.config.retention_bytes as u64;
            let below_start = first.next_offset() <= self.log_start_offset;
            if !(by_time || by_size || below_start) {
                break;
            }
            total -= first.size();
            self.delete_first_segment()?;
            deleted += 1;
        }
        Ok(deleted)
    }

    fn delete_first_segment(&mut self) -> Result<()> {
        let (_, segment) = self.segments.pop_first().expect("non-empty");
        let next_base = *self.segments.keys().next().expect("active segment remains");
        if next_base > self.log_start_offset {
            self.set_log_start_offset(next_base);
        }
        segment.delete_files()?;
        Ok(())
    }

    /// Moves the log start offset in memory; its checkpoint and the epoch cache's folded start
    /// are written later, outside the lock (`log/deferred.rs`): a start found lower after a
    /// crash is raised to the first segment's base at open, and an epoch cache with entries
    /// below the start is folded there at open.
    fn set_log_start_offset(&mut self, offset: i64) {
        self.log_start_offset = offset;
        self.log_start_due = true;
        if self.epochs.truncate_from_start(offset) {
            self.epoch_cache_due = true;
        }
        self.producers.remove_below(offset);
        self.prune_aborted(i64::MAX);
    }

    /// DeleteRecords: moves the log start offset to `offset` (at most the high watermark) and
    /// drops the segments wholly below it. Returns the new log start offset.
    pub fn delete_records_before(&mut self, offset: i64) -> Result<i64> {
        self.check_online()?;
        if offset > self.high_watermark || offset < 0 {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start_offset: self.log_start_offset,
                log_end_offset: self.log_end_offset(),
            });
        }
        if offset > self.log_start_offset {
            self.set_log_start_offset(offset);
        }
        while self.segments.len() > 1
            && self
                .segments
                .values()
                .next()
                .expect("non-empty")
                .next_offset()
                <= offset
        {
            self.delete_first_segment()?;
        }
        Ok(self.log_start_offset)
    }

    /// Writes the checkpoints (and with `with_indexes` the active segment's indexes and a
    /// producer snapshot), all fsynced before it returns: clean shutdown. The periodic
    /// checkpoints go through `Partition::write_checkpoints`, outside the lock.
    pub fn checkpoint(&mut self, with_indexes: bool) -> Result<()> {
        if with_indexes {
            self.active().persist_indexes()?;
            self.write_producer_snapshot()?;
        }
        let write = self.checkpoint_write();
        if let Err(e) = write.write() {
            self.checkpoint_failed(&write);
            return Err(e.into());
        }
        self.install_checkpoints(&write)?;
        checkpoint::sync_dir(&self.dir)?;
        Ok(())
    }

    /// Moves the high watermark up to `offset` (a replicated partition's leader, once its
    /// in-sync replicas have the data); true if it moved. It never moves back, and never past
    /// the log end.
    pub fn advance_high_watermark(&mut self, offset: i64) -> Result<bool> {
        self.check_online()?;
        if offset > self.log_end_offset() {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start_offset: self.log_start_offset,
                log_end_offset: self.log_end_offset(),
            });
        }
        if offset <= self.high_watermark {
            return Ok(false);
        }
        self.set_high_watermark(offset);
        Ok(true)
    }

    fn set_high_watermark(&mut self, offset: i64) {
        debug_assert!(offset >= self.high_watermark && offset <= self.log_end_offset());
        self.high_watermark = offset;
        self.unreplicated_txns = self.unreplicated_txns.split_off(&offset);
    }

    /// Whether this replica is alone in its in-sync set (`open`) or shares it (`open_replica`).
    pub fn is_sole_replica(&self) -> bool {
        self.sole_replica
    }

    /// Makes this replica the sole one of its partition (its high watermark follows its log
    /// end, and moves there now) or one of several (its leader moves the high watermark).
    pub fn set_sole_replica(&mut self, sole: bool) {
        self.sole_replica = sole;
        let end = self.log_end_offset();
        if sole && self.high_watermark < end {
            self.set_high_watermark(end);
        }
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }
    /// Base offset of the active segment, the one appends go to.
    pub fn active_base_offset(&self) -> i64 {
        self.active().base_offset()
    }
    /// Every segment but the active one, oldest first.
    pub(crate) fn closed_segments(&self) -> impl Iterator<Item = &LogSegment> {
        let closed = self.segments.len() - 1;
        self.segments.values().take(closed)
    }
    pub(crate) fn segment_size(&self, base_offset: i64) -> Option<u64> {
        self.segments.get(&base_offset).map(LogSegment::size)
    }
    pub(crate) fn remove_segment(&mut self, base_offset: i64) {
        self.segments.remove(&base_offset);
    }
    /// Puts a segment compaction wrote (and fsynced) in place of the originals; it holds no
    /// file open from then on.
    pub(crate) fn replace_segment(&mut self, mut segment: LogSegment) {
        segment.release_file();
        self.segments.insert(segment.base_offset(), segment);
    }
    pub(crate) fn checkpointed_recovery_point(&self) -> i64 {
        self.checkpointed_recovery_point
    }
    pub(crate) fn cleaner_checkpoint(&self) -> i64 {
        self.cleaner_checkpoint
    }
    pub(crate) fn tombstone_expiry_ms(&self) -> Option<i64> {
        self.tombstone_expiry_ms
    }
    pub(crate) fn set_cleaner_checkpoint(&mut self, offset: i64, tombstone_expiry_ms: Option<i64>) {
        self.cleaner_checkpoint = self.cleaner_checkpoint.max(offset);
        self.tombstone_expiry_ms = tombstone_expiry_ms;
        let line = format!(
            "{} {}\n",
            self.cleaner_checkpoint,
            tombstone_expiry_ms.unwrap_or(-1)
        );
        let path = self.dir.join(CLEANER_CHECKPOINT_FILE);
        if let Err(e) = checkpoint::write_atomically(&path, line.as_bytes()) {
            // Losing it only means the next start compacts the whole log once more.
            tracing::warn!(dir = %self.dir.display(), error = %e, "could not write the cleaner checkpoint");
        }
    }

    pub fn set_config(&mut self, config: LogConfig) {
        self.config = config;
    }
    pub fn config(&self) -> &LogConfig {
        &self.config
    }
    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }
    pub fn log_end_offset(&self) -> i64 {
        self.active().next_offset()
    }
    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }
    /// What opening this log recovered (nothing after a clean shutdown).
    pub fn recovered(&self) -> Recovered {
        self.recovered
    }

    pub fn recovery_point(&self) -> i64 {
        self.recovery_point
    }
    pub fn size_bytes(&self) -> u64 {
        self.segments.values().map(LogSegment::size).sum()
    }
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }
    pub fn is_offline(&self) -> bool {
        self.offline.is_some()
    }
    /// Largest record timestamp in the log, -1 when empty.
    pub fn max_timestamp(&self) -> i64 {
        self.segments
            .values()
            .map(LogSegment::max_timestamp)
            .max()
            .unwrap_or(-1)
    }
}

/// An I/O error opening a segment file: out of descriptors is a retriable refusal, anything
/// else is an I/O error (neither takes the partition offline: nothing was written).
fn exhaustion_or_io(e: std::io::Error) -> StorageError {
    if is_resource_exhaustion(&e) {
        StorageError::ResourceExhausted(format!("opening a segment: {e}"))
    } else {
        StorageError::Io(e)
    }
}

/// Batches a client may not write: control batches (transaction markers come from the
/// transaction coordinator, as in Kafka), and transactional batches the coordinator did not
/// vouch for (they would open a transaction no coordinator knows, which nothing would end).
fn check_client_batch(header: &BatchHeader, origin: AppendOrigin) -> Result<()> {
    if header.is_control() {
        return Err(StorageError::InvalidRecord(
            "clients may not write control batches".into(),
        ));
    }
    if header.is_transactional() && origin != AppendOrigin::ClientInTransaction {
        return Err(StorageError::InvalidTxnState(
            "a transactional batch for a partition not added to the producer's transaction".into(),
        ));
    }
    Ok(())
}

/// A produce request's batches, each checked whole (header, CRC, every record; see
/// `sluice_record::validate_batch_records`). Checking inflates compressed batches, so
/// `Partition::append` does it before taking the log's lock; what depends on the topic's
/// config is decided under it (`admit`), from what the check learned.
#[derive(Debug)]
pub struct ValidRecords<'a> {
    batches: Vec<(BatchHeader, &'a [u8])>,
    /// Whether any record has a null key (a compacted topic refuses the request).
    has_keyless_record: bool,
}

impl<'a> ValidRecords<'a> {
    /// Checks every batch of `records`; one over `max_message_bytes` is refused before it is
    /// walked (or inflated).
    pub fn check(
        records: &'a [u8],
        max_message_bytes: u32,
        origin: AppendOrigin,
    ) -> Result<ValidRecords<'a>> {
        let mut batches: Vec<(BatchHeader, &[u8])> = Vec::new();
        let mut has_keyless_record = false;
        for item in BatchIter::new(records) {
            let (_, bytes) = item?;
            check_size(bytes, max_message_bytes)?;
            let (header, summary) = validate_batch_records(bytes)?;
            has_keyless_record |= !header.is_control() && summary.has_keyless_record;
            if origin.is_client() {
                check_client_batch(&header, origin)?;
            }
            batches.push((header, bytes));
        }
        if batches.is_empty() {
            return Err(no_batch(records));
        }
        Ok(ValidRecords {
            batches,
            has_keyless_record,
        })
    }

    /// The batches, if they meet `config` (which may have changed since `check`).
    fn admit(self, config: &LogConfig) -> Result<Vec<(BatchHeader, &'a [u8])>> {
        for (_, bytes) in &self.batches {
            check_size(bytes, config.max_message_bytes)?;
        }
        // A compacted topic keeps the last record per key, so a record without a key has no
        // place in it (Kafka refuses it the same way).
        if config.cleanup_compact && self.has_keyless_record {
            return Err(StorageError::InvalidRecord(
                "compacted topic cannot accept a record without a key".into(),
            ));
        }
        Ok(self.batches)
    }
}

/// The refusal of records that hold no whole batch.
fn no_batch(records: &[u8]) -> StorageError {
    sluice_record::RecordError::Truncated {
        needed: sluice_record::HEADER_BYTES,
        available: records.len(),
    }
    .into()
}

fn check_size(batch: &[u8], max_message_bytes: u32) -> Result<()> {
    if batch.len() > max_message_bytes as usize {
        return Err(StorageError::BatchTooLarge {
            bytes: batch.len(),
            max: max_message_bytes,
        });
    }
    Ok(())
}

fn read_cleaner_checkpoint(dir: &Path) -> Option<(i64, Option<i64>)> {
    let text = std::fs::read_to_string(dir.join(CLEANER_CHECKPOINT_FILE)).ok()?;
    let mut parts = text.split_whitespace().map(str::parse::<i64>);
    let first_dirty = parts.next()?.ok()?;
    let expiry = parts.next()?.ok()?;
    Some((first_dirty, (expiry >= 0).then_some(expiry)))
}

fn records_len(batches: &[(BatchHeader, &[u8])]) -> usize {
    batches.iter().map(|(_, b)| b.len()).sum()
}
