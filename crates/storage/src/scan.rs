//! Sequential reading of the batches in a stretch of a segment file, for recovery, index
//! rebuilds and timestamp searches. Reads in chunks with `pread`, so it holds at most one
//! chunk (or one batch, if larger) in memory.

use sluice_record::{BatchHeader, HEADER_BYTES};
use std::fs::File;
use std::os::unix::fs::FileExt;

const CHUNK_BYTES: usize = 256 * 1024;

/// One batch found by a scan: its position in the file and its bytes.
pub(crate) struct ScannedBatch<'a> {
    pub position: u64,
    pub header: BatchHeader,
    pub bytes: &'a [u8],
}

/// Why a scan stopped before `end`.
#[derive(Debug)]
pub(crate) enum ScanStop {
    /// The bytes at `position` are not a complete, well-formed batch.
    Invalid {
        position: u64,
    },
    Io(std::io::Error),
}

/// Visits each batch in `[start, end)` in order. `visit` returns false to stop early. Returns
/// the position after the last batch visited.
pub(crate) fn scan_batches(
    file: &File,
    start: u64,
    end: u64,
    mut visit: impl FnMut(ScannedBatch<'_>) -> Result<bool, u64>,
) -> Result<u64, ScanStop> {
    let mut buf: Vec<u8> = Vec::new();
    let mut buf_start = start;
    let mut position = start;
    while position < end {
        let offset_in_buf = (position - buf_start) as usize;
        let available = buf.len() - offset_in_buf;
        let need = if available >= HEADER_BYTES {
            match BatchHeader::parse(&buf[offset_in_buf..]) {
                Ok(h) => h.total_bytes(),
                Err(_) => return Err(ScanStop::Invalid { position }),
            }
        } else {
            HEADER_BYTES
        };
        if available < need {
            if position + need as u64 > end {
                return Err(ScanStop::Invalid { position });
            }
            let want = need.max(CHUNK_BYTES).min((end - position) as usize);
            buf.resize(want, 0);
            file.read_exact_at(&mut buf, position)
                .map_err(ScanStop::Io)?;
            buf_start = position;
            continue;
        }
        let bytes = &buf[offset_in_buf..offset_in_buf + need];
        let header = BatchHeader::parse(bytes).map_err(|_| ScanStop::Invalid { position })?;
        match visit(ScannedBatch {
            position,
            header,
            bytes,
        }) {
            Ok(true) => position += need as u64,
            Ok(false) => return Ok(position),
            Err(bad_position) => {
                return Err(ScanStop::Invalid {
                    position: bad_position,
                });
            }
        }
    }
    Ok(position)
}
