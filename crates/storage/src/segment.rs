//! `LogSegment`: one `.log` file of batches laid end to end, with its two sparse indexes.
//!
//! The `.log` file holds RecordBatch v2 bytes exactly as producers sent them, except that the
//! base offset (bytes 0..8) and partition leader epoch (bytes 12..16) are assigned on append;
//! both lie outside the CRC. Files are named by the segment's base offset, zero-padded to 20
//! digits, as in Kafka: `00000000000000001234.log`, `.index`, `.timeindex`.
//!
//! A segment owns its file handle and its indexes. It does not decide when to roll, flush or
//! delete itself: that is `Log`'s job.

use crate::damage::{Damage, next_valid_batch};
use crate::index::{OffsetIndex, TimeIndex};
use crate::scan::{ScanStop, scan_batches};
use crate::segment_file::SegmentFile;
use sluice_record::{BatchHeader, verify_checksum};
use std::fs::{File, OpenOptions};
use std::io::{IoSlice, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub(crate) fn file_name(base_offset: i64, extension: &str) -> String {
    format!("{base_offset:020}.{extension}")
}

/// The offsets of the files in `dir` named by `file_name` with `extension`, ascending.
pub(crate) fn offsets_of_files(dir: &Path, extension: &str) -> std::io::Result<Vec<i64>> {
    let suffix = format!(".{extension}");
    let mut offsets = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(stem) = name.strip_suffix(&suffix)
            && let Ok(offset) = stem.parse::<i64>()
        {
            offsets.push(offset);
        }
    }
    offsets.sort_unstable();
    Ok(offsets)
}

#[derive(Debug)]
pub(crate) struct LogSegment {
    base_offset: i64,
    dir: PathBuf,
    /// Held open while the segment is written to or not yet fsynced; otherwise opened on
    /// demand (`segment_file.rs`).
    file: SegmentFile,
    /// Bytes of complete batches in the file; reads never go past it.
    size: u64,
    /// Offset one past the last record in the segment.
    next_offset: i64,
    max_timestamp: i64,
    offset_index: OffsetIndex,
    time_index: TimeIndex,
    bytes_since_index_entry: u64,
    created_at_ms: i64,
    /// Stretches of the file that hold no valid batch (see `damage.rs`), in file order.
    damage: Vec<Damage>,
}

/// What a reader needs to read a segment without holding the log's lock: the bytes below
/// `size` never change while the segment exists.
#[derive(Debug, Clone)]
pub(crate) struct SegmentSnapshot {
    pub base_offset: i64,
    pub file: Arc<File>,
    pub start_position: u64,
    pub size: u64,
}

impl LogSegment {
    pub(crate) fn create(dir: &Path, base_offset: i64, now_ms: i64) -> std::io::Result<LogSegment> {
        let path = dir.join(file_name(base_offset, "log"));
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create_new(true)
            .open(&path)?;
        Ok(LogSegment::empty(dir, base_offset, file, 0, now_ms))
    }

    /// A segment over `file` whose first `size` bytes are not yet scanned: no indexes, no
    /// known end. `open` fills those in.
    fn empty(dir: &Path, base_offset: i64, file: File, size: u64, now_ms: i64) -> LogSegment {
        LogSegment {
            base_offset,
            dir: dir.to_path_buf(),
            file: SegmentFile::pinned(&dir.join(file_name(base_offset, "log")), file),
            size,
            next_offset: base_offset,
            max_timestamp: -1,
            offset_index: OffsetIndex::default(),
            time_index: TimeIndex::default(),
            bytes_since_index_entry: 0,
            created_at_ms: now_ms,
            damage: Vec::new(),
        }
    }

    /// Opens an existing segment. With `recover`, every batch's CRC is checked and the file
    /// is truncated after the last good batch; otherwise only the indexes are checked (and
    /// rebuilt by a header scan if they are missing or damaged). `leader_epoch_max` is the newest
    /// leader epoch the log has had; a stored batch claiming a newer one is corrupt. `active`:
    /// the log's last segment, whose bad tail is a torn write and is cut; a closed segment's
    /// bad tail is damage, recorded and kept (see `rebuild`).
    pub(crate) fn open(
        dir: &Path,
        base_offset: i64,
        recover: bool,
        active: bool,
        index_interval_bytes: u32,
        leader_epoch_max: i32,
        now_ms: i64,
    ) -> std::io::Result<LogSegment> {
        let path = dir.join(file_name(base_offset, "log"));
        let file = OpenOptions::new().read(true).append(true).open(&path)?;
        let size = file.metadata()?.len();
        let mut segment = LogSegment::empty(dir, base_offset, file, size, now_ms);
        if recover || !segment.load_indexes() {
            segment.rebuild(recover, active, index_interval_bytes, leader_epoch_max)?;
        }
        Ok(segment)
    }

    /// A segment over a file compaction just wrote: its indexes are built by a header scan.
    pub(crate) fn from_cleaned(
        dir: &Path,
        base_offset: i64,
        file: File,
        index_interval_bytes: u32,
        now_ms: i64,
    ) -> std::io::Result<LogSegment> {
        let size = file.metadata()?.len();
        let mut segment = LogSegment::empty(dir, base_offset, file, size, now_ms);
        segment.rebuild(false, true, index_interval_bytes, i32::MAX)?;
        Ok(segment)
    }

    /// Loads both index files and finds the end offset by scanning from the last indexed
    /// batch. False if anything is missing or inconsistent.
    fn load_indexes(&mut self) -> bool {
        let Some(offset_index) = OffsetIndex::load(
            &self.dir.join(file_name(self.base_offset, "index")),
            self.size,
        ) else {
            return false;
        };
        let mut last: Option<BatchHeader> = None;
        let start = u64::from(offset_index.lookup(u32::MAX));
        if scan_batches(self.pinned(), start, self.size, |b| {
            last = Some(b.header);
            Ok(true)
        })
        .is_err()
        {
            return false;
        }
        let next_offset = last.map_or(self.base_offset, |h| h.last_offset().saturating_add(1));
        let relative_end = (next_offset - self.base_offset) as u32;
        let Some(time_index) = TimeIndex::load(
            &self.dir.join(file_name(self.base_offset, "timeindex")),
            relative_end.max(1),
        ) else {
            return false;
        };
        self.max_timestamp = time_index.max_timestamp().unwrap_or(-1);
        self.next_offset = next_offset;
        self.offset_index = offset_index;
        self.time_index = time_index;
        true
    }

    /// Rebuilds the indexes from the log; with `verify`, also checks every CRC and offset
    /// (without, only that each header parses). Damage in the middle (a bad stretch with valid
    /// batches after it) is recorded and passed over, so it costs only its own bytes. A bad
    /// stretch that runs to the end of the file is a torn tail in the active segment, and the
    /// file is cut there; in a closed segment it is damage like any other, its offsets running
    /// to the next segment's base (`close_damage`), and its bytes stay.
    fn rebuild(
        &mut self,
        verify: bool,
        active: bool,
        index_interval_bytes: u32,
        leader_epoch_max: i32,
    ) -> std::io::Result<()> {
        self.offset_index = OffsetIndex::default();
        self.time_index = TimeIndex::default();
        self.bytes_since_index_entry = 0;
        self.next_offset = self.base_offset;
        self.max_timestamp = -1;
        self.damage.clear();
        let file_bytes = self.size;
        let mut expected_next = self.base_offset;
        let mut epoch_floor = i32::MIN;
        let mut entries = Vec::new();
        let mut position = 0;
        let mut after_damage = false;
        let valid_bytes = loop {
            let result = scan_batches(self.pinned(), position, file_bytes, |b| {
                // Base offset and leader epoch lie outside the CRC, so recovery checks them
                // against what the log may look like: epochs never decreasing and never above
                // the newest epoch this log has had. Offsets may leave gaps (a replica copies
                // compacted batches with their offsets); that the leader's own appends are
                // contiguous is asserted where it appends, not here.
                let h = &b.header;
                let epoch_ok = h.partition_leader_epoch >= epoch_floor
                    && h.partition_leader_epoch <= leader_epoch_max;
                if verify && (verify_checksum(b.bytes).is_err() || !epoch_ok) {
                    return Err(b.position);
                }
                // Offsets never step back, verified or not, and stay within what the
                // segment's 32-bit relative offsets can name (as Kafka's recovery checks): a
                // base offset garbled by more than that is damage, not a gap.
                let relative_last = h.last_offset() - self.base_offset;
                if h.base_offset < expected_next
                    || h.last_offset() < h.base_offset
                    || relative_last > i64::from(u32::MAX)
                {
                    return Err(b.position);
                }
                epoch_floor = h.partition_leader_epoch;
                expected_next = b.header.last_offset().saturating_add(1);
                entries.push((b.position, b.header, std::mem::take(&mut after_damage)));
                Ok(true)
            });
            let bad = match result {
                Ok(end) => break end,
                Err(ScanStop::Invalid { position }) => position,
                Err(ScanStop::Io(e)) => return Err(e),
            };
            let found = next_valid_batch(
                self.pinned(),
                bad + 1,
                file_bytes,
                expected_next,
                leader_epoch_max,
            )?;
            let Some((next, header)) = found else {
                if !active {
                    self.damage.push(Damage {
                        positions: bad..file_bytes,
                        offsets: expected_next..i64::MAX,
                    });
                }
                break bad;
            };
            let damage = Damage {
                positions: bad..next,
                offsets: expected_next..header.base_offset,
            };
            tracing::error!(
                segment = %self.path().display(), positions = ?damage.positions,
                lost_offsets = ?damage.offsets,
                "damaged batches in the middle of a segment; the batches after them are kept"
            );
            self.damage.push(damage);
            expected_next = header.base_offset;
            position = next;
            after_damage = true;
        };
        for (position, header, after_damage) in entries {
            self.track_append(position, &header, index_interval_bytes, after_damage);
        }
        self.size = valid_bytes;
        if valid_bytes < file_bytes && !active {
            tracing::error!(
                segment = %self.path().display(), valid_bytes, file_bytes,
                "damaged batches at the end of a closed segment; the segments after it are kept"
            );
        } else if valid_bytes < file_bytes {
            tracing::warn!(
                segment = %self.path().display(),
                valid_bytes, file_bytes, "truncating torn or corrupt segment tail"
            );
            self.pinned().set_len(valid_bytes)?;
            self.pinned().sync_all()?;
            self.size = valid_bytes;
        }
        Ok(())
    }

    fn path(&self) -> PathBuf {
        self.dir.join(file_name(self.base_offset, "log"))
    }

    /// Ends damage that runs to the end of this closed segment at the next segment's base.
    pub(crate) fn close_damage(&mut self, next_base_offset: i64) {
        for damage in &mut self.damage {
            if damage.offsets.end == i64::MAX {
                damage.offsets.end = next_base_offset.max(damage.offsets.start + 1);
            }
        }
    }

    /// Damage a read found (see `Partition::learn_damage`): recorded, and the batch after it
    /// indexed so that reads of later offsets start past it.
    pub(crate) fn add_damage(&mut self, damage: Damage, next: Option<(u64, i64)>) -> bool {
        if self
            .damage
            .iter()
            .any(|d| d.positions.start == damage.positions.start)
        {
            return false;
        }
        if let Some((position, offset)) = next {
            let relative = (offset - self.base_offset) as u32;
            self.offset_index.insert(relative, position as u32);
        }
        let at = self
            .damage
            .partition_point(|d| d.positions.start < damage.positions.start);
        self.damage.insert(at, damage);
        true
    }

    /// Where a scan that must reach `position` may start: the last indexed batch at or before
    /// it (position and base offset), or the segment's start.
    pub(crate) fn scan_start_before(&self, position: u64) -> (u64, i64) {
        let at = u32::try_from(position).unwrap_or(u32::MAX);
        self.offset_index
            .floor_by_position(at)
            .map_or((0, self.base_offset), |(relative, p)| {
                (u64::from(p), self.base_offset + i64::from(relative))
            })
    }

    /// The damage whose lost offsets include `offset`.
    pub(crate) fn damage_at(&self, offset: i64) -> Option<&Damage> {
        self.damage.iter().find(|d| d.offsets.contains(&offset))
    }

    pub(crate) fn damage(&self) -> &[Damage] {
        &self.damage
    }

    /// Updates the in-memory end, max timestamp and indexes for a batch now at `position`.
    /// `after_damage` indexes the batch whatever the interval, so reads of its offsets start
    /// past the damage.
    fn track_append(
        &mut self,
        position: u64,
        header: &BatchHeader,
        index_interval_bytes: u32,
        after_damage: bool,
    ) {
        let relative = (header.base_offset - self.base_offset) as u32;
        let due = self.bytes_since_index_entry >= u64::from(index_interval_bytes);
        if position > 0 && (due || after_damage) {
            self.offset_index.append(relative, position as u32);
            self.bytes_since_index_entry = 0;
        }
        self.bytes_since_index_entry += header.total_bytes() as u64;
        if header.max_timestamp > self.max_timestamp {
            self.max_timestamp = header.max_timestamp;
            self.time_index.maybe_append(header.max_timestamp, relative);
        }
        self.next_offset = header.last_offset().saturating_add(1);
        self.size = position + header.total_bytes() as u64;
    }

    /// Appends one validated batch, assigning `base_offset` and `leader_epoch` on the way to
    /// the file. On a write error the file is cut back to its previous size, so a full disk
    /// leaves no partial batch behind.
    pub(crate) fn append(
        &mut self,
        batch: &[u8],
        header: &BatchHeader,
        base_offset: i64,
        leader_epoch: i32,
        index_interval_bytes: u32,
    ) -> std::io::Result<()> {
        assert!(base_offset >= self.next_offset, "offsets must grow");
        assert_eq!(batch.len(), header.total_bytes());
        let offset_bytes = base_offset.to_be_bytes();
        let epoch_bytes = leader_epoch.to_be_bytes();
        let mut slices = [
            IoSlice::new(&offset_bytes),
            IoSlice::new(&batch[8..12]),
            IoSlice::new(&epoch_bytes),
            IoSlice::new(&batch[16..]),
        ];
        let position = self.size;
        let file = self.pinned();
        if let Err(e) = write_all_vectored(file, &mut slices) {
            file.set_len(position)?;
            return Err(e);
        }
        let stored = BatchHeader {
            base_offset,
            partition_leader_epoch: leader_epoch,
            ..*header
        };
        self.track_append(position, &stored, index_interval_bytes, false);
        Ok(())
    }

    /// Where a read of `offset` starts: the last indexed batch at or before it.
    pub(crate) fn position_for(&self, offset: i64) -> u64 {
        let relative = (offset - self.base_offset).clamp(0, i64::from(u32::MAX)) as u32;
        u64::from(self.offset_index.lookup(relative))
    }

    /// A snapshot positioned at or before the batch holding `offset` (its file opened if not
    /// held: an error means none could be, say for want of descriptors).
    pub(crate) fn snapshot_for(&self, offset: i64) -> std::io::Result<SegmentSnapshot> {
        Ok(SegmentSnapshot {
            base_offset: self.base_offset,
            file: self.file.get()?,
            start_position: self.position_for(offset),
            size: self.size,
        })
    }

    /// Where a scan for the first record at or after `timestamp` may start.
    pub(crate) fn position_for_timestamp(&self, timestamp: i64) -> u64 {
        let relative = self.time_index.lookup(timestamp);
        u64::from(self.offset_index.lookup(relative))
    }

    /// Writes both indexes to their files and fsyncs them (clean shutdown, compaction).
    pub(crate) fn persist_indexes(&self) -> std::io::Result<()> {
        for path in self.write_indexes()? {
            File::open(path)?.sync_all()?;
        }
        Ok(())
    }

    /// Writes both indexes to their files without fsyncing them (a roll seals the segment
    /// under the partition lock; the next flush fsyncs them: see `log/deferred.rs`). Returns
    /// the files written.
    pub(crate) fn write_indexes(&self) -> std::io::Result<Vec<PathBuf>> {
        let mut written = Vec::with_capacity(2);
        for (ext, bytes) in [
            ("index", self.offset_index.encode()),
            ("timeindex", self.time_index.encode()),
        ] {
            let path = self.dir.join(file_name(self.base_offset, ext));
            File::create(&path)?.write_all(&bytes)?;
            written.push(path);
        }
        Ok(written)
    }

    /// Removes the segment's files. Readers holding a snapshot keep a valid handle.
    pub(crate) fn delete_files(&self) -> std::io::Result<()> {
        for ext in ["log", "index", "timeindex"] {
            match std::fs::remove_file(self.dir.join(file_name(self.base_offset, ext))) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    pub(crate) fn base_offset(&self) -> i64 {
        self.base_offset
    }
    pub(crate) fn next_offset(&self) -> i64 {
        self.next_offset
    }
    pub(crate) fn size(&self) -> u64 {
        self.size
    }
    pub(crate) fn max_timestamp(&self) -> i64 {
        self.max_timestamp
    }
    pub(crate) fn created_at_ms(&self) -> i64 {
        self.created_at_ms
    }
    /// The segment's file, opened now if it is not held (see `segment_file.rs`).
    pub(crate) fn file(&self) -> std::io::Result<Arc<File>> {
        self.file.get()
    }

    /// The file of a segment that holds it open: the active one, one being opened or
    /// rebuilt, one with data not yet fsynced.
    fn pinned(&self) -> &File {
        self.file
            .pinned_file()
            .expect("only a segment that holds its file is written or rebuilt")
    }

    /// Stops holding the file open (the segment is closed and fsynced).
    pub(crate) fn release_file(&mut self) {
        self.file.unpin();
    }

    pub(crate) fn holds_file(&self) -> bool {
        self.file.is_pinned()
    }

    /// Holds the file open again (a closed segment that becomes the active one).
    pub(crate) fn hold_file(&mut self) -> std::io::Result<()> {
        self.file.pin()
    }
}

fn write_all_vectored(mut file: &File, mut slices: &mut [IoSlice<'_>]) -> std::io::Result<()> {
    while !slices.is_empty() {
        match file.write_vectored(slices) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut slices, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
