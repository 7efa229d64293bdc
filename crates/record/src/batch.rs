//! The RecordBatch v2 header, byte by byte, and checks on whole batches.
//!
//! ```text
//! offset  size  field                  covered by CRC
//!      0     8  base_offset            no   (assigned by the broker on append)
//!      8     4  batch_length           no   (bytes that follow this field)
//!     12     4  partition_leader_epoch no   (assigned by the broker on append)
//!     16     1  magic (= 2)            no
//!     17     4  crc (CRC-32C, unsigned) no
//!     21     2  attributes             yes  bits 0-2 compression, 3 timestamp type,
//!                                            4 transactional, 5 control, 6 delete horizon
//!     23     4  last_offset_delta      yes
//!     27     8  base_timestamp         yes
//!     35     8  max_timestamp          yes
//!     43     8  producer_id            yes
//!     51     2  producer_epoch         yes
//!     53     4  base_sequence          yes
//!     57     4  records_count          yes
//!     61     …  records (compressed as a whole when attributes say so)
//! ```
//! All integers are big-endian. Because the CRC starts at byte 21, the broker can rewrite the
//! base offset and leader epoch without recomputing it: that is what lets Sluice store batches
//! as received.

use crate::RecordError;
use crate::validate::{RecordsSummary, check_records};
use sluice_types::limits::BATCH_BYTES_MAX_ABSOLUTE;

/// Bytes of the fixed batch header.
pub const HEADER_BYTES: usize = 61;
/// Bytes before `batch_length` counts: base offset and the length itself.
pub const LOG_OVERHEAD_BYTES: usize = 12;
/// The only record format Sluice accepts.
pub const MAGIC_V2: i8 = 2;

const CRC_START: usize = 21;

/// The codec named by the low three bits of the attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

/// A parsed batch header. Parsing checks only what is needed to know the batch's extent;
/// `validate_batch` checks the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes(b[at..at + 2].try_into().expect("2 bytes"))
}

impl BatchHeader {
    /// Parses the 61-byte header at the front of `bytes`. Checks magic and that the length is
    /// plausible; does not check that the whole batch is present.
    pub fn parse(bytes: &[u8]) -> Result<BatchHeader, RecordError> {
        if bytes.len() < HEADER_BYTES {
            return Err(RecordError::Truncated {
                needed: HEADER_BYTES,
                available: bytes.len(),
            });
        }
        let magic = bytes[16] as i8;
        if magic != MAGIC_V2 {
            return Err(RecordError::UnsupportedMagic(magic));
        }
        let batch_length = be_i32(bytes, 8);
        let total = i64::from(batch_length) + LOG_OVERHEAD_BYTES as i64;
        if total < HEADER_BYTES as i64 || total > i64::from(BATCH_BYTES_MAX_ABSOLUTE) {
            return Err(RecordError::BadLength(i64::from(batch_length)));
        }
        Ok(BatchHeader {
            base_offset: be_i64(bytes, 0),
            batch_length,
            partition_leader_epoch: be_i32(bytes, 12),
            magic,
            crc: u32::from_be_bytes(bytes[17..21].try_into().expect("4 bytes")),
            attributes: be_i16(bytes, 21),
            last_offset_delta: be_i32(bytes, 23),
            base_timestamp: be_i64(bytes, 27),
            max_timestamp: be_i64(bytes, 35),
            producer_id: be_i64(bytes, 43),
            producer_epoch: be_i16(bytes, 51),
            base_sequence: be_i32(bytes, 53),
            records_count: be_i32(bytes, 57),
        })
    }

    /// Size of the whole batch, header included.
    pub fn total_bytes(&self) -> usize {
        self.batch_length as usize + LOG_OVERHEAD_BYTES
    }

    /// Offset of the batch's last record (saturating: a stored base offset is outside the CRC,
    /// so damage can put it anywhere).
    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .saturating_add(i64::from(self.last_offset_delta))
    }

    /// Offsets this batch occupies.
    pub fn offset_count(&self) -> i64 {
        i64::from(self.last_offset_delta) + 1
    }

    pub fn compression(&self) -> Result<Compression, RecordError> {
        match self.attributes & 0x07 {
            0 => Ok(Compression::None),
            1 => Ok(Compression::Gzip),
            2 => Ok(Compression::Snappy),
            3 => Ok(Compression::Lz4),
            4 => Ok(Compression::Zstd),
            other => Err(RecordError::UnknownCompression(other as u8)),
        }
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & 0x10 != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & 0x20 != 0
    }
}

/// Checks one complete batch as a producer sent it: the header is sane, the slice holds
/// exactly one batch, the CRC matches, the record count agrees with the offset delta, and
/// every record, compressed or not, is well formed and where its count says
/// (`validate.rs`).
pub fn validate_batch(bytes: &[u8]) -> Result<BatchHeader, RecordError> {
    validate_batch_records(bytes).map(|(header, _)| header)
}

/// `validate_batch`, also telling what the walk over the records learned.
pub fn validate_batch_records(bytes: &[u8]) -> Result<(BatchHeader, RecordsSummary), RecordError> {
    let header = verify_checksum(bytes)?;
    if header.records_count < 1 || header.last_offset_delta != header.records_count - 1 {
        return Err(RecordError::RecordCountMismatch {
            header: header.records_count,
            last_offset_delta: header.last_offset_delta,
        });
    }
    let summary = check_records(&header, bytes)?;
    Ok((header, summary))
}

/// Checks what must hold for any stored batch, including ones compaction has thinned: the
/// header is sane, the slice holds exactly one batch, and the CRC matches. Recovery uses this.
pub fn verify_checksum(bytes: &[u8]) -> Result<BatchHeader, RecordError> {
    let header = BatchHeader::parse(bytes)?;
    if header.total_bytes() != bytes.len() {
        return Err(RecordError::BadLength(i64::from(header.batch_length)));
    }
    let computed = crc32c::crc32c(&bytes[CRC_START..]);
    if computed != header.crc {
        return Err(RecordError::CrcMismatch {
            stored: header.crc,
            computed,
        });
    }
    Ok(header)
}

/// Iterates over a run of batches laid end to end (a produce request's records, or a stretch
/// of a segment file), yielding each header with its byte range. Stops with an error at the
/// first batch that is incomplete or malformed; `valid_bytes` then tells where the good prefix
/// ends, which is what recovery truncates to.
pub struct BatchIter<'a> {
    bytes: &'a [u8],
    position: usize,
    failed: bool,
}

impl<'a> BatchIter<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        BatchIter {
            bytes,
            position: 0,
            failed: false,
        }
    }

    /// Bytes consumed by the batches yielded so far.
    pub fn valid_bytes(&self) -> usize {
        self.position
    }
}

impl<'a> Iterator for BatchIter<'a> {
    type Item = Result<(BatchHeader, &'a [u8]), RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.position == self.bytes.len() {
            return None;
        }
        let rest = &self.bytes[self.position..];
        let header = match BatchHeader::parse(rest) {
            Ok(header) => header,
            Err(e) => {
                self.failed = true;
                return Some(Err(e));
            }
        };
        let total = header.total_bytes();
        if rest.len() < total {
            self.failed = true;
            return Some(Err(RecordError::Truncated {
                needed: total,
                available: rest.len(),
            }));
        }
        self.position += total;
        Some(Ok((header, &rest[..total])))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::build_batch;

    #[test]
    fn a_well_formed_batch_validates() {
        let batch = build_batch(0, &[10, 12], &[b"a", b"bc"]);
        let header = validate_batch(&batch).unwrap();
        assert_eq!(header.records_count, 2);
        assert_eq!(header.max_timestamp, 12);
        assert_eq!(header.total_bytes(), batch.len());
    }

    #[test]
    fn every_single_bit_flip_in_the_crc_range_is_caught() {
        let batch = build_batch(0, &[1, 2, 3], &[b"x", b"yy", b"zzz"]);
        for i in CRC_START..batch.len() {
            let mut bad = batch.clone();
            bad[i] ^= 0x01;
            assert!(
                validate_batch(&bad).is_err(),
                "flip at byte {i} went unnoticed"
            );
        }
    }

    #[test]
    fn base_offset_and_epoch_are_outside_the_crc() {
        let mut batch = build_batch(0, &[1], &[b"x"]);
        batch[0..8].copy_from_slice(&77i64.to_be_bytes());
        batch[12..16].copy_from_slice(&5i32.to_be_bytes());
        assert_eq!(validate_batch(&batch).unwrap().base_offset, 77);
    }

    #[test]
    fn iteration_stops_at_a_torn_tail() {
        let mut run = build_batch(0, &[1], &[b"first"]);
        let first_len = run.len();
        run.extend(build_batch(1, &[2], &[b"second"]));
        for cut in 0..run.len() {
            let mut iter = BatchIter::new(&run[..cut]);
            let complete = iter.by_ref().take_while(|r| r.is_ok()).count();
            let expected = usize::from(cut >= first_len);
            assert_eq!(complete, expected, "cut at {cut}");
        }
    }

    #[test]
    fn old_magic_is_refused() {
        let mut batch = build_batch(0, &[1], &[b"x"]);
        batch[16] = 1;
        assert_eq!(
            validate_batch(&batch),
            Err(RecordError::UnsupportedMagic(1))
        );
    }
}
