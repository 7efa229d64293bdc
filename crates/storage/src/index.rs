//! Sparse offset and time indexes of one segment.
//!
//! Offset index file (`<base_offset>.index`), Kafka's format, a run of 8-byte entries:
//! ```text
//! relative_offset  u32 BE   offset of a batch's first record minus the segment's base offset
//! position         u32 BE   byte position of that batch in the .log file
//! ```
//! Time index file (`<base_offset>.timeindex`), a run of 12-byte entries:
//! ```text
//! timestamp        i64 BE   the largest record timestamp seen so far in the segment
//! relative_offset  u32 BE   first offset of the batch that raised it
//! ```
//! Both are strictly increasing in every column. An entry is added when at least
//! `index.interval.bytes` of log have been written since the previous one, so lookups land at
//! most that far before their target and then scan batch headers.
//!
//! Indexes are derived data. The active segment's indexes live in memory and are written to
//! disk when the segment is sealed or the broker shuts down cleanly; after a crash, recovery
//! rebuilds them from the log. A file that fails `load`'s checks is rebuilt the same way.

use std::path::Path;

const OFFSET_ENTRY_BYTES: usize = 8;
const TIME_ENTRY_BYTES: usize = 12;

#[derive(Debug, Default, Clone)]
pub(crate) struct OffsetIndex {
    entries: Vec<(u32, u32)>,
}

impl OffsetIndex {
    pub(crate) fn append(&mut self, relative_offset: u32, position: u32) {
        if let Some(&(last_offset, last_position)) = self.entries.last() {
            assert!(
                relative_offset > last_offset && position > last_position,
                "index must grow"
            );
        }
        self.entries.push((relative_offset, position));
    }

    /// Adds an entry in its place (for a batch found after damage in a closed segment); an
    /// entry that would break the order of the others is left out.
    pub(crate) fn insert(&mut self, relative_offset: u32, position: u32) {
        let i = self.entries.partition_point(|&(o, _)| o < relative_offset);
        let after_previous = i == 0 || self.entries[i - 1].1 < position;
        let before_next = self
            .entries
            .get(i)
            .is_none_or(|&(o, p)| o > relative_offset && p > position);
        if after_previous && before_next {
            self.entries.insert(i, (relative_offset, position));
        }
    }

    /// The last entry whose position is at or before `position`: (relative offset, position).
    pub(crate) fn floor_by_position(&self, position: u32) -> Option<(u32, u32)> {
        let i = self.entries.partition_point(|&(_, p)| p <= position);
        i.checked_sub(1).map(|i| self.entries[i])
    }

    /// Byte position of the last indexed batch starting at or before `relative_offset`.
    pub(crate) fn lookup(&self, relative_offset: u32) -> u32 {
        let i = self.entries.partition_point(|&(o, _)| o <= relative_offset);
        if i == 0 { 0 } else { self.entries[i - 1].1 }
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * OFFSET_ENTRY_BYTES);
        for &(o, p) in &self.entries {
            out.extend_from_slice(&o.to_be_bytes());
            out.extend_from_slice(&p.to_be_bytes());
        }
        out
    }

    /// Loads an index file, or `None` if it is missing or inconsistent with a log of
    /// `log_bytes` bytes (then the caller rebuilds it).
    pub(crate) fn load(path: &Path, log_bytes: u64) -> Option<OffsetIndex> {
        let bytes = std::fs::read(path).ok()?;
        if bytes.len() % OFFSET_ENTRY_BYTES != 0 {
            return None;
        }
        let mut index = OffsetIndex::default();
        for chunk in bytes.chunks_exact(OFFSET_ENTRY_BYTES) {
            let o = u32::from_be_bytes(chunk[0..4].try_into().ok()?);
            let p = u32::from_be_bytes(chunk[4..8].try_into().ok()?);
            let grows = index
                .entries
                .last()
                .is_none_or(|&(lo, lp)| o > lo && p > lp);
            if !grows || u64::from(p) >= log_bytes {
                return None;
            }
            index.entries.push((o, p));
        }
        Some(index)
    }
}

#[derive(Debug, Default, Clone)]
pub(crate) struct TimeIndex {
    entries: Vec<(i64, u32)>,
}

impl TimeIndex {
    /// Records that the batch at `relative_offset` raised the segment's max timestamp to
    /// `timestamp`; ignored unless it really is a new maximum.
    pub(crate) fn maybe_append(&mut self, timestamp: i64, relative_offset: u32) {
        if self
            .entries
            .last()
            .is_none_or(|&(t, o)| timestamp > t && relative_offset > o)
        {
            self.entries.push((timestamp, relative_offset));
        }
    }

    /// Relative offset from which a scan for the first record with a timestamp at or after
    /// `timestamp` may start: every record before it is older than `timestamp`.
    pub(crate) fn lookup(&self, timestamp: i64) -> u32 {
        let i = self.entries.partition_point(|&(t, _)| t < timestamp);
        if i == 0 { 0 } else { self.entries[i - 1].1 }
    }

    pub(crate) fn max_timestamp(&self) -> Option<i64> {
        self.entries.last().map(|&(t, _)| t)
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * TIME_ENTRY_BYTES);
        for &(t, o) in &self.entries {
            out.extend_from_slice(&t.to_be_bytes());
            out.extend_from_slice(&o.to_be_bytes());
        }
        out
    }

    pub(crate) fn load(path: &Path, relative_offset_end: u32) -> Option<TimeIndex> {
        let bytes = std::fs::read(path).ok()?;
        if bytes.len() % TIME_ENTRY_BYTES != 0 {
            return None;
        }
        let mut index = TimeIndex::default();
        for chunk in bytes.chunks_exact(TIME_ENTRY_BYTES) {
            let t = i64::from_be_bytes(chunk[0..8].try_into().ok()?);
            let o = u32::from_be_bytes(chunk[8..12].try_into().ok()?);
            let grows = index
                .entries
                .last()
                .is_none_or(|&(lt, lo)| t > lt && o > lo);
            if !grows || o >= relative_offset_end {
                return None;
            }
            index.entries.push((t, o));
        }
        Some(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_lookup_finds_the_floor_entry() {
        let mut index = OffsetIndex::default();
        index.append(0, 0);
        index.append(10, 4096);
        index.append(25, 8200);
        assert_eq!(index.lookup(0), 0);
        assert_eq!(index.lookup(9), 0);
        assert_eq!(index.lookup(10), 4096);
        assert_eq!(index.lookup(24), 4096);
        assert_eq!(index.lookup(1000), 8200);
    }

    #[test]
    fn index_files_round_trip_and_damage_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.index");
        let mut index = OffsetIndex::default();
        index.append(0, 0);
        index.append(3, 100);
        std::fs::write(&path, index.encode()).unwrap();
        assert_eq!(OffsetIndex::load(&path, 200).unwrap().lookup(5), 100);
        assert!(
            OffsetIndex::load(&path, 100).is_none(),
            "position past the log end"
        );
        std::fs::write(&path, &index.encode()[..12]).unwrap();
        assert!(OffsetIndex::load(&path, 200).is_none(), "torn entry");
    }

    #[test]
    fn time_lookup_starts_before_any_newer_record() {
        let mut index = TimeIndex::default();
        index.maybe_append(100, 0);
        index.maybe_append(90, 5); // not a new maximum
        index.maybe_append(200, 10);
        assert_eq!(index.lookup(50), 0);
        assert_eq!(index.lookup(150), 0);
        assert_eq!(index.lookup(201), 10);
        assert_eq!(index.max_timestamp(), Some(200));
    }
}
