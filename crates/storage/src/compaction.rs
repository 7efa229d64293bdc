//! Log compaction (`cleanup.policy=compact`): keeps the last record of each key, and drops
//! tombstones (null values) once `delete.retention.ms` has passed since their timestamp.
//!
//! A pass works on a prefix of the closed segments: those wholly below both the active segment
//! and the last *checkpointed* recovery point (so a cleaned segment, whose offsets have gaps,
//! is never re-verified by crash recovery, which expects contiguous offsets), and wholly older
//! than `min.compaction.lag.ms`. It runs when the dirty part (not yet compacted, from the
//! cleaner checkpoint on) is at least `min.cleanable.dirty.ratio` of those bytes, or when a
//! dirty record is older than `max.compaction.lag.ms`.
//!
//! 1. Under the log's lock, `Log::clean_plan` picks the segments (their files are immutable).
//! 2. Without the lock, `CleanPlan::execute` maps each key of the dirty segments to its last
//!    offset (by a 128-bit hash of the key, as Kafka maps an MD5), then rewrites every picked
//!    segment into `<base>.log.cleaned`: untouched batches are copied byte for byte, batches
//!    that lost records are rewritten with the survivors' original offsets and timestamps
//!    (`sluice_record::retain_records`), empty ones are dropped. The file is fsynced and its
//!    indexes are built.
//!    Consecutive small segments are written into one file (`merge_groups`).
//! 3. Under the lock again, `Log::install_cleaned` swaps each copy in through a `.swap` file
//!    and a marker naming the last segment it covers (`Log::swap_in`); `Log::open` deletes a
//!    leftover `.cleaned` file (the originals are whole) and finishes an interrupted swap
//!    (`complete_swaps`). No record that compaction keeps is ever lost and no half-written
//!    segment is ever visible. Readers holding an old file keep reading it.
//!
//! Transactions: only segments wholly below the last stable offset are compacted (no record
//! of an open transaction is touched). Records of aborted transactions are removed and never
//! count as the last record of their key, so an aborted write cannot make compaction drop the
//! committed value it would have replaced. Markers are kept.
//!
//! Offsets are never renumbered: a rewritten batch keeps its base offset and last offset
//! delta, so offsets simply have gaps where records were removed. A pass is also due when a
//! tombstone it kept reaches `delete.retention.ms`, even if nothing new was written. The
//! cleaner checkpoint (the first dirty offset) and that tombstone deadline are written to the
//! partition's `cleaner-checkpoint` file after each complete pass, so a restart does not
//! compact the whole log again.

use crate::log::Log;
use crate::scan::scan_batches;
use crate::segment::{LogSegment, file_name};
use crate::{Result, StorageError};
use sluice_record::{Retained, retain_records};
use sluice_types::limits::COMPACTION_KEYS_PER_PASS_MAX;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Suffix of a segment being written by a compaction pass.
pub(crate) const CLEANED_SUFFIX: &str = "log.cleaned";
/// Suffix of a finished merged segment about to replace the segments it covers.
const SWAP_SUFFIX: &str = "log.swap";
/// Beside a `.swap` file: the base offset of the last segment it covers.
const SWAP_END_SUFFIX: &str = "swap-end";
/// Most segments merged into one by a pass.
const MERGED_SEGMENTS_MAX: usize = 1_000;

/// A segment chosen for a pass: its file never changes while the segment exists.
#[derive(Debug)]
pub(crate) struct SegmentToClean {
    pub base_offset: i64,
    pub next_offset: i64,
    pub file: Arc<File>,
    pub size: u64,
}

/// A compaction pass, planned under the log's lock.
#[derive(Debug)]
pub struct CleanPlan {
    pub(crate) dir: PathBuf,
    pub(crate) segments: Vec<SegmentToClean>,
    /// Offsets below this were compacted by an earlier pass.
    pub(crate) first_dirty_offset: i64,
    pub(crate) now_ms: i64,
    pub(crate) delete_retention_ms: i64,
    pub(crate) index_interval_bytes: u32,
    /// Cleaned segments are merged while their original sizes add up to at most this.
    pub(crate) segment_bytes: u64,
    /// Aborted transactions in the planned range: (first, last offset) by producer id.
    pub(crate) aborted: HashMap<i64, Vec<(i64, i64)>>,
}

/// A pass's output, to install under the lock.
#[derive(Debug)]
pub struct Cleaned {
    pub(crate) segments: Vec<CleanedSegment>,
    /// The new cleaner checkpoint: everything below was compacted by this pass.
    pub(crate) end_offset: i64,
    pub(crate) records_removed: u64,
    /// When the earliest tombstone this pass kept may go: a pass is due then even if nothing
    /// new was written (Kafka's KIP-534 delete horizon).
    pub(crate) tombstone_expiry_ms: Option<i64>,
}

#[derive(Debug)]
pub(crate) struct CleanedSegment {
    /// The segments it replaces (base offset, size), oldest first; it takes the first's name.
    pub originals: Vec<(i64, u64)>,
    pub path: PathBuf,
    pub segment: LogSegment,
}

/// What a pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CleanStats {
    pub segments: usize,
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub records_removed: u64,
}

/// Keys are mapped by a 128-bit hash: two independently keyed SipHashes.
struct KeyHasher(
    std::collections::hash_map::RandomState,
    std::collections::hash_map::RandomState,
);

impl KeyHasher {
    fn new() -> Self {
        KeyHasher(Default::default(), Default::default())
    }
    fn hash(&self, key: &[u8]) -> u128 {
        let half = |s: &std::collections::hash_map::RandomState| {
            let mut h = s.build_hasher();
            h.write(key);
            h.finish()
        };
        (u128::from(half(&self.0)) << 64) | u128::from(half(&self.1))
    }
}

impl CleanPlan {
    /// Maps keys, writes the cleaned segments and builds their indexes. No lock held.
    pub fn execute(self) -> Result<Cleaned> {
        let hasher = KeyHasher::new();
        let (latest, mapped_segments) = self.map_keys(&hasher)?;
        let rewrite = &self.segments[..mapped_segments];
        let end_offset = rewrite
            .last()
            .map_or(self.first_dirty_offset, |s| s.next_offset);
        let mut cleaned = Cleaned {
            segments: Vec::with_capacity(rewrite.len()),
            end_offset,
            records_removed: 0,
            tombstone_expiry_ms: None,
        };
        for group in merge_groups(rewrite, self.segment_bytes) {
            let (segment, removed, expiry) = self.rewrite(group, &hasher, &latest)?;
            cleaned.records_removed += removed;
            cleaned.tombstone_expiry_ms = match (cleaned.tombstone_expiry_ms, expiry) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            cleaned.segments.push(segment);
        }
        Ok(cleaned)
    }

    /// Whether a batch belongs to an aborted transaction (its records are dropped).
    fn is_aborted(&self, header: &sluice_record::BatchHeader) -> bool {
        header.is_transactional()
            && !header.is_control()
            && self.aborted.get(&header.producer_id).is_some_and(|ranges| {
                ranges
                    .iter()
                    .any(|&(first, last)| (first..=last).contains(&header.base_offset))
            })
    }

    /// Maps each key in the dirty segments to its last offset. Returns the map and how many
    /// of the planned segments may be rewritten: all, unless the map filled up, in which case
    /// those before the segment that did not fit.
    fn map_keys(&self, hasher: &KeyHasher) -> Result<(HashMap<u128, i64>, usize)> {
        let mut latest: HashMap<u128, i64> = HashMap::new();
        for (i, s) in self.segments.iter().enumerate() {
            if s.next_offset <= self.first_dirty_offset {
                continue;
            }
            let mut full = false;
            scan_segment(s, |batch| {
                if self.is_aborted(&sluice_record::BatchHeader::parse(batch)?) {
                    return Ok(true);
                }
                sluice_record::decode_records(batch, |r| {
                    if let Some(key) = r.key {
                        latest.insert(hasher.hash(key), r.offset);
                    }
                    full = latest.len() >= COMPACTION_KEYS_PER_PASS_MAX;
                    !full
                })?;
                Ok(!full)
            })?;
            if full {
                tracing::warn!(dir = %self.dir.display(), segment = s.base_offset, "compaction key map full; compacting up to this segment");
                return Ok((latest, i));
            }
        }
        Ok((latest, self.segments.len()))
    }

    /// Writes the compacted copy of a run of segments as one file and builds its in-memory
    /// segment.
    fn rewrite(
        &self,
        group: &[SegmentToClean],
        hasher: &KeyHasher,
        latest: &HashMap<u128, i64>,
    ) -> Result<(CleanedSegment, u64, Option<i64>)> {
        let first = group.first().expect("groups are not empty");
        let path = self.dir.join(file_name(first.base_offset, CLEANED_SUFFIX));
        // A closed segment is never appended to, so plain write access suffices.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)?;
        let mut out = BufWriter::with_capacity(1 << 20, &file);
        let mut removed = 0u64;
        let mut tombstone_expiry: Option<i64> = None;
        for s in group {
            scan_segment(s, |batch| {
                let header = sluice_record::BatchHeader::parse(batch)?;
                if header.is_control() {
                    out.write_all(batch)?;
                    return Ok(true);
                }
                if self.is_aborted(&header) {
                    removed += u64::try_from(header.records_count).unwrap_or(0);
                    return Ok(true);
                }
                let retained = retain_records(batch, |r| {
                    let superseded = r.key.is_some_and(|k| {
                        latest
                            .get(&hasher.hash(k))
                            .is_some_and(|&last| r.offset < last)
                    });
                    let expired_tombstone = r.value.is_none()
                        && r.timestamp.saturating_add(self.delete_retention_ms) <= self.now_ms;
                    let keep = !superseded && !expired_tombstone;
                    removed += u64::from(!keep);
                    if keep && r.value.is_none() {
                        let expiry = r.timestamp.saturating_add(self.delete_retention_ms);
                        tombstone_expiry = Some(tombstone_expiry.map_or(expiry, |e| e.min(expiry)));
                    }
                    keep
                })?;
                match retained {
                    Retained::All => out.write_all(batch)?,
                    Retained::Some(rewritten) => out.write_all(&rewritten)?,
                    Retained::Nothing => {}
                }
                Ok(true)
            })?;
        }
        out.flush()?;
        drop(out);
        file.sync_all()?;
        let segment = LogSegment::from_cleaned(
            &self.dir,
            first.base_offset,
            file,
            self.index_interval_bytes,
            self.now_ms,
        )?;
        Ok((
            CleanedSegment {
                originals: group.iter().map(|s| (s.base_offset, s.size)).collect(),
                path,
                segment,
            },
            removed,
            tombstone_expiry,
        ))
    }
}

/// Splits segments into runs to merge: consecutive segments whose sizes add up to at most
/// `segment_bytes` (at least one per run), whose offsets stay within a segment's u32 relative
/// range, at most `MERGED_SEGMENTS_MAX` per run. Without merging, compaction would leave one
/// small (or empty) file, and one open descriptor, per segment ever written.
fn merge_groups(segments: &[SegmentToClean], segment_bytes: u64) -> Vec<&[SegmentToClean]> {
    let mut groups = Vec::new();
    let mut start = 0;
    while start < segments.len() {
        let first = &segments[start];
        let mut end = start + 1;
        let mut bytes = first.size;
        while end < segments.len() && end - start < MERGED_SEGMENTS_MAX {
            let next = &segments[end];
            let fits = bytes + next.size <= segment_bytes
                && next.next_offset - first.base_offset < i64::from(u32::MAX);
            if !fits {
                break;
            }
            bytes += next.size;
            end += 1;
        }
        groups.push(&segments[start..end]);
        start = end;
    }
    groups
}

/// Visits each batch of a segment; `visit` returns false to stop.
fn scan_segment(s: &SegmentToClean, mut visit: impl FnMut(&[u8]) -> Result<bool>) -> Result<()> {
    let mut failure = None;
    let scanned = scan_batches(&s.file, 0, s.size, |b| match visit(b.bytes) {
        Ok(go_on) => Ok(go_on),
        Err(e) => {
            failure = Some(e);
            Ok(false)
        }
    });
    if let Some(e) = failure {
        return Err(e);
    }
    match scanned {
        Ok(_) => Ok(()),
        Err(crate::scan::ScanStop::Io(e)) => Err(e.into()),
        Err(crate::scan::ScanStop::Invalid { position }) => Err(StorageError::Offline(format!(
            "segment {} is corrupt at byte {position}; not compacting it",
            s.base_offset
        ))),
    }
}

impl Log {
    /// The next compaction pass, if one is due.
    pub fn clean_plan(&self, now_ms: i64) -> Option<CleanPlan> {
        let config = self.config();
        if !config.cleanup_compact || self.is_offline() {
            return None;
        }
        let limit = self
            .checkpointed_recovery_point()
            .min(self.active_base_offset())
            .min(self.last_stable_offset());
        let lag_floor = now_ms.saturating_sub(config.min_compaction_lag_ms);
        let segments: std::io::Result<Vec<SegmentToClean>> = self
            .closed_segments()
            .take_while(|s| s.next_offset() <= limit && s.max_timestamp() <= lag_floor)
            .map(|s| {
                Ok(SegmentToClean {
                    base_offset: s.base_offset(),
                    next_offset: s.next_offset(),
                    file: s.file()?,
                    size: s.size(),
                })
            })
            .collect();
        let segments = match segments {
            Ok(segments) => segments,
            Err(e) => {
                // Out of descriptors, say: the next pass tries again.
                tracing::warn!(dir = %self.dir().display(), error = %e, "cannot open segments to compact");
                return None;
            }
        };
        let first_dirty = self.cleaner_checkpoint();
        let is_dirty = |s: &&SegmentToClean| s.next_offset > first_dirty;
        let dirty_bytes: u64 = segments.iter().filter(is_dirty).map(|s| s.size).sum();
        let total_bytes: u64 = segments.iter().map(|s| s.size).sum();
        let tombstones_due = self.tombstone_expiry_ms().is_some_and(|t| t <= now_ms);
        if dirty_bytes == 0 && !tombstones_due {
            return None;
        }
        let overdue_before = now_ms.saturating_sub(config.max_compaction_lag_ms);
        let overdue = self
            .closed_segments()
            .filter(|s| s.next_offset() > first_dirty && s.next_offset() <= limit)
            .any(|s| s.max_timestamp() >= 0 && s.max_timestamp() < overdue_before);
        let ratio_met = dirty_bytes * 1000
            >= u64::from(config.min_cleanable_dirty_ratio_permille) * total_bytes;
        if !(ratio_met || overdue || tombstones_due) {
            return None;
        }
        Some(CleanPlan {
            dir: self.dir().to_path_buf(),
            segments,
            first_dirty_offset: first_dirty,
            now_ms,
            delete_retention_ms: config.delete_retention_ms,
            index_interval_bytes: config.index_interval_bytes,
            segment_bytes: config.segment_bytes,
            aborted: self.aborted_transactions(0, limit).into_iter().fold(
                HashMap::new(),
                |mut by_producer: HashMap<i64, Vec<(i64, i64)>>, a| {
                    by_producer
                        .entry(a.producer_id)
                        .or_default()
                        .push((a.first_offset, a.last_offset));
                    by_producer
                },
            ),
        })
    }

    /// Swaps the cleaned segments in. A segment that retention or truncation removed
    /// meanwhile is skipped and its cleaned file deleted.
    pub fn install_cleaned(&mut self, cleaned: Cleaned) -> Result<CleanStats> {
        let mut stats = CleanStats {
            records_removed: cleaned.records_removed,
            ..Default::default()
        };
        let mut complete = true;
        for c in cleaned.segments {
            let active = self.active_base_offset();
            let unchanged = c
                .originals
                .iter()
                .all(|&(base, size)| self.segment_size(base) == Some(size) && base < active);
            if !unchanged {
                complete = false;
                let _ = std::fs::remove_file(&c.path);
                continue;
            }
            self.swap_in(&c)?;
            stats.segments += c.originals.len();
            stats.bytes_before += c.originals.iter().map(|(_, size)| size).sum::<u64>();
            stats.bytes_after += c.segment.size();
            self.replace_segment(c.segment);
        }
        if complete {
            self.set_cleaner_checkpoint(cleaned.end_offset, cleaned.tombstone_expiry_ms);
        }
        Ok(stats)
    }
}

impl Log {
    /// Replaces a run of segments by their cleaned copy, crash-safely: first
    /// `<first>.swap-end` names the last segment covered; then the copy is renamed to
    /// `<first>.log.swap` (from here a restart finishes the job, see `complete_swaps`); then
    /// the originals' indexes and all but the first `.log` go; last, the swap is renamed over
    /// the first `.log` and the marker removed.
    fn swap_in(&mut self, c: &CleanedSegment) -> Result<()> {
        let dir = self.dir().to_path_buf();
        let first = c.originals.first().expect("not empty").0;
        let last = c.originals.last().expect("not empty").0;
        crate::checkpoint::write_i64(&dir.join(file_name(first, SWAP_END_SUFFIX)), last)?;
        let swap = dir.join(file_name(first, SWAP_SUFFIX));
        std::fs::rename(&c.path, &swap)?;
        crate::checkpoint::sync_dir(&dir)?;
        for &(base, _) in &c.originals {
            for ext in ["index", "timeindex"] {
                remove_if_present(&dir.join(file_name(base, ext)))?;
            }
            if base != first {
                remove_if_present(&dir.join(file_name(base, "log")))?;
                self.remove_segment(base);
            }
        }
        std::fs::rename(&swap, dir.join(file_name(first, "log")))?;
        crate::checkpoint::sync_dir(&dir)?;
        remove_if_present(&dir.join(file_name(first, SWAP_END_SUFFIX)))?;
        c.segment.persist_indexes()?;
        Ok(())
    }
}

/// Finishes swaps a crash interrupted (see `Log::swap_in`): every `.log` the swap covers is
/// removed with its indexes, and the swap becomes the first segment's `.log`.
pub(crate) fn complete_swaps(dir: &Path) -> std::io::Result<()> {
    let names: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    for name in &names {
        let Some(first) = name
            .strip_suffix(&format!(".{SWAP_SUFFIX}"))
            .and_then(|b| b.parse::<i64>().ok())
        else {
            continue;
        };
        let marker = dir.join(file_name(first, SWAP_END_SUFFIX));
        let Some(last) = crate::checkpoint::read_i64(&marker) else {
            // Without its marker a swap was never committed to: the originals are whole.
            remove_if_present(&dir.join(name))?;
            continue;
        };
        tracing::info!(dir = %dir.display(), first, last, "finishing an interrupted compaction swap");
        for other in &names {
            let Some(base) = other
                .strip_suffix(".log")
                .and_then(|b| b.parse::<i64>().ok())
            else {
                continue;
            };
            if base > first && base <= last {
                remove_if_present(&dir.join(other))?;
            }
            if base >= first && base <= last {
                for ext in ["index", "timeindex"] {
                    remove_if_present(&dir.join(file_name(base, ext)))?;
                }
            }
        }
        std::fs::rename(dir.join(name), dir.join(file_name(first, "log")))?;
        crate::checkpoint::sync_dir(dir)?;
        remove_if_present(&marker)?;
    }
    // A marker whose swap already completed.
    for name in &names {
        if name.ends_with(&format!(".{SWAP_END_SUFFIX}"))
            && !dir
                .join(name.replace(SWAP_END_SUFFIX, SWAP_SUFFIX))
                .exists()
        {
            remove_if_present(&dir.join(name))?;
        }
    }
    Ok(())
}

fn remove_if_present(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Deletes `.cleaned` files a crash left behind (the segments they were copies of are intact).
pub(crate) fn remove_leftovers(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.ends_with(CLEANED_SUFFIX))
        {
            tracing::info!(file = %entry.path().display(), "removing an unfinished compaction output");
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}
