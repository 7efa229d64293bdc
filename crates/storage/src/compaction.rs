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
//! 3. Under the lock again, `Log::install_cleaned` swaps each cleaned segment in: it deletes
//!    the old index files, renames `.cleaned` over `.log` (atomic), fsyncs the directory, and
//!    writes the new indexes. A crash before the rename leaves a `.cleaned` file that
//!    `Log::open` deletes; after it, the new segment is whole and its missing indexes are
//!    rebuilt. Either way no record that compaction keeps is lost and no half-written segment
//!    is ever visible. Readers holding the old file keep reading it.
//!
//! Offsets are never renumbered: a rewritten batch keeps its base offset and last offset
//! delta, so offsets simply have gaps where records were removed. A pass is also due when a
//! tombstone it kept reaches `delete.retention.ms`, even if nothing new was written. The
//! cleaner checkpoint (the first dirty offset) and that tombstone deadline are kept in memory:
//! after a restart the first pass compacts the whole cleanable log again, which is safe, only
//! slower.

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
    pub original_size: u64,
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
        for s in rewrite {
            let (segment, removed, expiry) = self.rewrite(s, &hasher, &latest)?;
            cleaned.records_removed += removed;
            cleaned.tombstone_expiry_ms = match (cleaned.tombstone_expiry_ms, expiry) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            cleaned.segments.push(segment);
        }
        Ok(cleaned)
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

    /// Writes the compacted copy of one segment and builds its in-memory segment.
    fn rewrite(
        &self,
        s: &SegmentToClean,
        hasher: &KeyHasher,
        latest: &HashMap<u128, i64>,
    ) -> Result<(CleanedSegment, u64, Option<i64>)> {
        let path = self.dir.join(file_name(s.base_offset, CLEANED_SUFFIX));
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
        scan_segment(s, |batch| {
            let header = sluice_record::BatchHeader::parse(batch)?;
            if header.is_control() {
                out.write_all(batch)?;
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
        out.flush()?;
        drop(out);
        file.sync_all()?;
        let segment = LogSegment::from_cleaned(
            &self.dir,
            s.base_offset,
            file,
            self.index_interval_bytes,
            self.now_ms,
        )?;
        Ok((
            CleanedSegment {
                original_size: s.size,
                path,
                segment,
            },
            removed,
            tombstone_expiry,
        ))
    }
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
            .min(self.active_base_offset());
        let lag_floor = now_ms.saturating_sub(config.min_compaction_lag_ms);
        let segments: Vec<SegmentToClean> = self
            .closed_segments()
            .take_while(|s| s.next_offset() <= limit && s.max_timestamp() <= lag_floor)
            .map(|s| SegmentToClean {
                base_offset: s.base_offset(),
                next_offset: s.next_offset(),
                file: s.file().clone(),
                size: s.size(),
            })
            .collect();
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
            let base = c.segment.base_offset();
            let unchanged = self
                .segment_size(base)
                .is_some_and(|size| size == c.original_size && base < self.active_base_offset());
            if !unchanged {
                complete = false;
                let _ = std::fs::remove_file(&c.path);
                continue;
            }
            for ext in ["index", "timeindex"] {
                remove_if_present(&self.dir().join(file_name(base, ext)))?;
            }
            std::fs::rename(&c.path, self.dir().join(file_name(base, "log")))?;
            crate::checkpoint::sync_dir(self.dir())?;
            c.segment.persist_indexes()?;
            stats.segments += 1;
            stats.bytes_before += c.original_size;
            stats.bytes_after += c.segment.size();
            self.replace_segment(c.segment);
        }
        if complete {
            self.set_cleaner_checkpoint(cleaned.end_offset, cleaned.tombstone_expiry_ms);
        }
        Ok(stats)
    }
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
