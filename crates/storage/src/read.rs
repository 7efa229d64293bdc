//! Reading whole batches from a segment without holding the log's lock.
//!
//! A `ReadPlan` is made under the lock (it names a segment snapshot and the bounds) and carried
//! out after the lock is released: bytes below a snapshot's size never change, and a deleted
//! segment's open file stays readable. What it returns has passed its CRC (see `read`).

use crate::segment::SegmentSnapshot;
use crate::{Result, StorageError};
use bytes::Bytes;
use sluice_record::{BatchHeader, BatchIter, HEADER_BYTES, RecordError, verify_checksum};
use std::fs::File;
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether reads check the CRC of what they serve (`log_read_verify_crc`, on by default).
/// Process-wide because it is an operator's switch for measuring, not a per-topic property.
static VERIFY_READS: AtomicBool = AtomicBool::new(true);

/// Turns the CRC check of served batches on or off for every read in the process. Off, a read
/// serves a damaged batch as stored (as Kafka does); only for measuring what the check costs.
pub fn set_read_verification(on: bool) {
    VERIFY_READS.store(on, Ordering::Relaxed);
}

/// How far before the wanted batch an index lookup may land, read along with the data so that
/// one `pread` usually suffices.
const SKIP_SLACK_BYTES: u64 = 64 * 1024;

#[derive(Debug, Clone)]
pub struct ReadPlan {
    pub(crate) snapshot: SegmentSnapshot,
    /// First offset wanted; batches ending before it are skipped.
    pub(crate) offset: i64,
    /// Batches starting at or past this offset (the high watermark) are not returned.
    pub(crate) upper_offset: i64,
    pub(crate) max_bytes: usize,
    /// Return the first batch even if it is larger than `max_bytes` (KIP-74), so a consumer
    /// can always make progress.
    pub(crate) min_one_batch: bool,
}

impl ReadPlan {
    /// Reads the batches: whole batches only, in offset order, at most `max_bytes` of them
    /// (except for the KIP-74 first batch). Empty when there is nothing to return. Every batch
    /// is checked against its CRC before it is returned; the first one that fails ends the
    /// read there, and if it is the first wanted, the read fails with `CorruptOnDisk` naming
    /// its position (`Partition::read_batches` learns the damage from that).
    pub fn read(&self) -> Result<Bytes> {
        let snap = &self.snapshot;
        let mut position = snap.start_position;
        while position < snap.size {
            let want = (snap.size - position).min(self.max_bytes as u64 + SKIP_SLACK_BYTES);
            let buf = read_at(&snap.file, want as usize, position)?;
            match self.select(&buf, position) {
                Selection::Range(start, end) => {
                    let at = position + start as u64;
                    return self.verified(Bytes::from(buf).slice(start..end), at);
                }
                Selection::Nothing => return Ok(Bytes::new()),
                Selection::SkipTo(skip) => position += skip as u64,
                Selection::LargeFirst(start, total) => {
                    let at = position + start as u64;
                    let big = read_at(&snap.file, total, at)?;
                    return self.verified(Bytes::from(big), at);
                }
                Selection::Damaged(at) => return Err(self.corrupt(position + at as u64)),
            }
        }
        Ok(Bytes::new())
    }

    /// The batches of `bytes` (read from file position `at`) up to the first that fails its
    /// CRC.
    fn verified(&self, bytes: Bytes, at: u64) -> Result<Bytes> {
        if !VERIFY_READS.load(Ordering::Relaxed) {
            return Ok(bytes);
        }
        let mut good = 0;
        for batch in BatchIter::new(&bytes) {
            match batch {
                Ok((_, b)) if verify_checksum(b).is_ok() => good += b.len(),
                _ => break,
            }
        }
        if good == 0 && !bytes.is_empty() {
            return Err(self.corrupt(at));
        }
        Ok(bytes.slice(..good))
    }

    fn corrupt(&self, position: u64) -> StorageError {
        StorageError::CorruptOnDisk {
            segment_base_offset: self.snapshot.base_offset,
            position,
        }
    }

    /// Which bytes of `buf` (read from file position `file_position`) to return.
    fn select(&self, buf: &[u8], file_position: u64) -> Selection {
        let mut at = 0;
        let mut start = None;
        // Offsets only grow within a segment; a base offset (outside the CRC) that steps back
        // is damage, not a batch to skip.
        let mut offset_floor = self.snapshot.base_offset;
        while at < buf.len() {
            let header = match BatchHeader::parse(&buf[at..]) {
                Ok(header) => header,
                // A header cut by the end of this read: read on from it.
                Err(RecordError::Truncated { .. })
                    if file_position + (at + HEADER_BYTES) as u64 <= self.snapshot.size =>
                {
                    break;
                }
                // Below the snapshot's size every byte belongs to a complete batch, so a
                // header that does not parse there is damage.
                Err(_) if start.is_none() => return Selection::Damaged(at),
                Err(_) => break,
            };
            let total = header.total_bytes();
            let steps_back = header.base_offset < offset_floor;
            if steps_back || file_position + (at + total) as u64 > self.snapshot.size {
                // A length that runs past the end of the complete batches, or offsets that
                // step back, are damage.
                return match start {
                    None => Selection::Damaged(at),
                    Some(begin) => Selection::Range(begin, at),
                };
            }
            offset_floor = header.last_offset().saturating_add(1);
            if header.last_offset() < self.offset {
                at += total;
                continue;
            }
            if header.base_offset >= self.upper_offset {
                break;
            }
            let begin = *start.get_or_insert(at);
            let collected = at - begin;
            if collected + total > self.max_bytes && (collected > 0 || !self.min_one_batch) {
                break;
            }
            if at + total > buf.len() {
                return if collected == 0 {
                    Selection::LargeFirst(at, total)
                } else {
                    Selection::Range(begin, at)
                };
            }
            at += total;
        }
        match start {
            Some(begin) if at > begin => Selection::Range(begin, at),
            Some(_) => Selection::Nothing,
            None if at > 0 => Selection::SkipTo(at),
            None => Selection::Nothing,
        }
    }
}

/// Reads exactly `len` bytes at `offset` into a fresh buffer, without zeroing it first (a
/// fetch can read tens of megabytes; zeroing them showed up in profiles).
fn read_at(file: &File, len: usize, offset: u64) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(len);
    while buf.len() < len {
        let at = offset + buf.len() as u64;
        let want = len - buf.len();
        let n = rustix::io::pread(file, rustix::buffer::spare_capacity(&mut buf), at)?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("segment shorter than its recorded size: wanted {want} more bytes at {at}"),
            ));
        }
    }
    Ok(buf)
}

enum Selection {
    Range(usize, usize),
    /// The bytes at this position of the buffer are not a valid batch.
    Damaged(usize),
    Nothing,
    SkipTo(usize),
    LargeFirst(usize, usize),
}
