//! Damage in a segment: a stretch of bytes that holds no valid batch where one should be
//! (a flipped bit, an overwritten length, a torn write in the middle of the log), found by
//! recovery or by a read that checked the CRC of what it was about to serve.
//!
//! Damage costs only the damaged bytes: the batches after it are found again by searching
//! for the next position that holds a batch whose CRC verifies and whose offsets follow
//! (`next_valid_batch`), and they stay readable. The offsets the damaged bytes held are lost
//! on this node; a read at one of them is refused (`StorageError::Damaged`, Kafka's
//! `CORRUPT_MESSAGE`) with the next readable offset in the message, so an operator can move a
//! consumer past it. A replica will repair such a stretch once replication exists.
//!
//! Does not own: what a valid batch is (`sluice_record`), when damage is looked for
//! (`segment.rs` at recovery, `Partition::learn_damage` after a read or a scrub).

use sluice_record::{BatchHeader, HEADER_BYTES, verify_checksum};
use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;

/// One damaged stretch of a segment and the offsets it held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// Byte positions in the segment file.
    pub positions: Range<u64>,
    /// Offsets lost: from the first one the damaged bytes should have held to the base offset
    /// of the next valid batch (or the segment's end).
    pub offsets: Range<i64>,
}

impl Damage {
    /// How many offsets the damage cost.
    pub fn lost_offsets(&self) -> i64 {
        self.offsets.end - self.offsets.start
    }

    /// How many bytes are damaged.
    pub fn bytes(&self) -> u64 {
        self.positions.end - self.positions.start
    }

    /// What a read of one of the damaged offsets gets.
    pub(crate) fn refusal(&self) -> crate::StorageError {
        crate::StorageError::Damaged(format!(
            "offsets {}..{} are damaged on disk and cannot be read; the next readable offset is {}",
            self.offsets.start, self.offsets.end, self.offsets.end
        ))
    }
}

/// Bytes searched per read while looking for the next batch.
const SEARCH_CHUNK_BYTES: u64 = 1024 * 1024;

/// Largest jump in offsets a batch found after damage may make from the offsets before it;
/// a "batch" further away is a coincidence in the damaged bytes, not the log.
const OFFSET_JUMP_MAX: i64 = i32::MAX as i64;

/// The first position in `[from, end)` of `file` that holds a whole batch whose CRC verifies,
/// whose base offset lies in `[offset_floor, offset_floor + OFFSET_JUMP_MAX)` and whose leader
/// epoch is at most `leader_epoch_max`.
pub(crate) fn next_valid_batch(
    file: &File,
    from: u64,
    end: u64,
    offset_floor: i64,
    leader_epoch_max: i32,
) -> std::io::Result<Option<(u64, BatchHeader)>> {
    let header_bytes = HEADER_BYTES as u64;
    let mut chunk_start = from;
    while chunk_start + header_bytes <= end {
        let len = (SEARCH_CHUNK_BYTES + header_bytes).min(end - chunk_start);
        let mut chunk = vec![0u8; len as usize];
        file.read_exact_at(&mut chunk, chunk_start)?;
        for at in 0..=(chunk.len() - HEADER_BYTES) {
            let position = chunk_start + at as u64;
            let Ok(header) = BatchHeader::parse(&chunk[at..]) else {
                continue;
            };
            let jump = header.base_offset.checked_sub(offset_floor);
            let plausible = jump.is_some_and(|j| (0..OFFSET_JUMP_MAX).contains(&j))
                && header.partition_leader_epoch <= leader_epoch_max
                && position + header.total_bytes() as u64 <= end;
            if plausible && verifies(file, position, &header)? {
                return Ok(Some((position, header)));
            }
        }
        chunk_start += len - header_bytes + 1;
    }
    Ok(None)
}

fn verifies(file: &File, position: u64, header: &BatchHeader) -> std::io::Result<bool> {
    let mut bytes = vec![0u8; header.total_bytes()];
    file.read_exact_at(&mut bytes, position)?;
    Ok(verify_checksum(&bytes).is_ok())
}
