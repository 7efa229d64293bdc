//! Decompression of batch bodies, bounded so that a compression bomb stops at
//! `BATCH_DECOMPRESSED_BYTES_MAX`, and at most `DECOMPRESSIONS_CONCURRENT_MAX` at once. The
//! broker never compresses: batches are stored as producers compressed them. `compress` is
//! for a client's producer (`sluice produce -z`).
//!
//! Snappy comes in two framings: librdkafka and most clients send raw snappy blocks, the Java
//! client sends xerial's framing (a magic header, then length-prefixed blocks). Both are read.
//! LZ4 is the standard LZ4 frame format.

use crate::{Compression, RecordError};
use sluice_types::limits::{BATCH_DECOMPRESSED_BYTES_MAX, DECOMPRESSIONS_CONCURRENT_MAX};
use std::io::Read;
use std::sync::{Condvar, Mutex};

const XERIAL_MAGIC: &[u8] = &[0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
const XERIAL_HEADER_BYTES: usize = 16;

/// Bytes of uncompressed input per xerial snappy block (the Java client's block size).
const XERIAL_BLOCK_BYTES: usize = 32 * 1024;

/// `body` compressed with `codec` as Kafka clients send it: a gzip stream, an LZ4 frame, a
/// zstd frame, or snappy in xerial's framing (what the Java client sends; every client reads it).
pub(crate) fn compress(codec: Compression, body: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let written = "writing into a Vec cannot fail";
    match codec {
        Compression::None => body.to_vec(),
        Compression::Gzip => {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            gz.write_all(body).expect(written);
            gz.finish().expect(written)
        }
        Compression::Lz4 => {
            let mut lz = lz4_flex::frame::FrameEncoder::new(Vec::new());
            lz.write_all(body).expect(written);
            lz.finish().expect(written)
        }
        Compression::Zstd => zstd::encode_all(body, 3).expect(written),
        Compression::Snappy => {
            let mut out = XERIAL_MAGIC.to_vec();
            out.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1]); // version 1, compatible with 1
            let mut encoder = snap::raw::Encoder::new();
            for block in body.chunks(XERIAL_BLOCK_BYTES) {
                let compressed = encoder.compress_vec(block).expect(written);
                out.extend_from_slice(&(compressed.len() as u32).to_be_bytes());
                out.extend_from_slice(&compressed);
            }
            out
        }
    }
}

/// Returns the decompressed body, or `None` when the body is not compressed.
pub(crate) fn decompress(codec: Compression, raw: &[u8]) -> Result<Option<Vec<u8>>, RecordError> {
    if codec == Compression::None {
        return Ok(None);
    }
    let _slot = DecompressionSlot::acquire();
    read_bounded(inflating_reader(codec, raw)?).map(Some)
}

/// A reader of the inflated body. Gzip, LZ4 and zstd stream; snappy is inflated whole
/// (under the cap, its size checked first) because its blocks are.
pub(crate) fn inflating_reader<'a>(
    codec: Compression,
    raw: &'a [u8],
) -> Result<Box<dyn Read + 'a>, RecordError> {
    let fail = |e: &dyn std::fmt::Display| RecordError::Decompression(format!("{codec:?}: {e}"));
    Ok(match codec {
        Compression::None => Box::new(raw),
        Compression::Gzip => Box::new(flate2::read::GzDecoder::new(raw)),
        Compression::Lz4 => Box::new(lz4_flex::frame::FrameDecoder::new(raw)),
        Compression::Zstd => {
            Box::new(zstd::stream::read::Decoder::with_buffer(raw).map_err(|e| fail(&e))?)
        }
        Compression::Snappy if raw.starts_with(XERIAL_MAGIC) => {
            Box::new(std::io::Cursor::new(xerial(raw)?))
        }
        Compression::Snappy => Box::new(std::io::Cursor::new(snappy_block(raw)?)),
    })
}

/// A share of the decompressions allowed at once (`DECOMPRESSIONS_CONCURRENT_MAX`). Holders
/// never wait on anything else while they hold one, so waiting for one cannot deadlock; a
/// thread waits only while the others are busy inflating.
pub(crate) struct DecompressionSlot(());

static SLOTS_IN_USE: Mutex<usize> = Mutex::new(0);
static SLOT_FREED: Condvar = Condvar::new();

impl DecompressionSlot {
    pub(crate) fn acquire() -> DecompressionSlot {
        let mut in_use = SLOTS_IN_USE.lock().unwrap_or_else(|p| p.into_inner());
        while *in_use >= DECOMPRESSIONS_CONCURRENT_MAX {
            in_use = SLOT_FREED.wait(in_use).unwrap_or_else(|p| p.into_inner());
        }
        *in_use += 1;
        DecompressionSlot(())
    }
}

impl Drop for DecompressionSlot {
    fn drop(&mut self) {
        let mut in_use = SLOTS_IN_USE.lock().unwrap_or_else(|p| p.into_inner());
        *in_use -= 1;
        SLOT_FREED.notify_one();
    }
}

/// Reads the whole inflated body, never holding more than the cap (plus one byte to tell
/// that it was exceeded).
fn read_bounded(reader: impl Read) -> Result<Vec<u8>, RecordError> {
    let mut out = Vec::new();
    let limit = BATCH_DECOMPRESSED_BYTES_MAX as u64;
    reader
        .take(limit + 1)
        .read_to_end(&mut out)
        .map_err(|e| RecordError::Decompression(e.to_string()))?;
    if out.len() > BATCH_DECOMPRESSED_BYTES_MAX {
        return Err(RecordError::DecompressedTooLarge(
            BATCH_DECOMPRESSED_BYTES_MAX,
        ));
    }
    Ok(out)
}

fn snappy_block(raw: &[u8]) -> Result<Vec<u8>, RecordError> {
    let len =
        snap::raw::decompress_len(raw).map_err(|e| RecordError::Decompression(e.to_string()))?;
    if len > BATCH_DECOMPRESSED_BYTES_MAX {
        return Err(RecordError::DecompressedTooLarge(
            BATCH_DECOMPRESSED_BYTES_MAX,
        ));
    }
    snap::raw::Decoder::new()
        .decompress_vec(raw)
        .map_err(|e| RecordError::Decompression(e.to_string()))
}

fn xerial(raw: &[u8]) -> Result<Vec<u8>, RecordError> {
    let mut rest = raw
        .get(XERIAL_HEADER_BYTES..)
        .ok_or(RecordError::Decompression(
            "xerial snappy header truncated".into(),
        ))?;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let (len_bytes, tail) = rest.split_at_checked(4).ok_or(RecordError::Decompression(
            "xerial snappy block length truncated".into(),
        ))?;
        let len = u32::from_be_bytes(len_bytes.try_into().expect("4 bytes")) as usize;
        let (block, tail) = tail
            .split_at_checked(len)
            .ok_or(RecordError::Decompression(
                "xerial snappy block truncated".into(),
            ))?;
        let inflated = snappy_block(block)?;
        if out.len() + inflated.len() > BATCH_DECOMPRESSED_BYTES_MAX {
            return Err(RecordError::DecompressedTooLarge(
                BATCH_DECOMPRESSED_BYTES_MAX,
            ));
        }
        out.extend_from_slice(&inflated);
        rest = tail;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn every_codec_inflates_what_its_reference_compressed() {
        let data = b"sluice sluice sluice sluice".repeat(50);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&data).unwrap();
        let mut lz = lz4_flex::frame::FrameEncoder::new(Vec::new());
        lz.write_all(&data).unwrap();
        let snappy = snap::raw::Encoder::new().compress_vec(&data).unwrap();
        let mut xerial = XERIAL_MAGIC.to_vec();
        xerial.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1]);
        xerial.extend_from_slice(&(snappy.len() as u32).to_be_bytes());
        xerial.extend_from_slice(&snappy);
        let cases = [
            (Compression::Gzip, gz.finish().unwrap()),
            (Compression::Lz4, lz.finish().unwrap()),
            (Compression::Zstd, zstd::encode_all(&data[..], 3).unwrap()),
            (Compression::Snappy, snappy.clone()),
            (Compression::Snappy, xerial),
        ];
        for (codec, compressed) in cases {
            assert_eq!(
                decompress(codec, &compressed).unwrap().unwrap(),
                data,
                "{codec:?}"
            );
        }
    }

    #[test]
    fn what_compress_writes_inflates_back() {
        let data = b"a record, another record, ".repeat(5_000);
        for codec in [
            Compression::Gzip,
            Compression::Lz4,
            Compression::Zstd,
            Compression::Snappy,
        ] {
            let compressed = compress(codec, &data);
            assert!(compressed.len() < data.len() / 4, "{codec:?}");
            assert_eq!(
                decompress(codec, &compressed).unwrap().unwrap(),
                data,
                "{codec:?}"
            );
        }
    }

    #[test]
    fn garbage_is_an_error() {
        for codec in [
            Compression::Gzip,
            Compression::Lz4,
            Compression::Zstd,
            Compression::Snappy,
        ] {
            assert!(
                decompress(codec, b"definitely not compressed").is_err(),
                "{codec:?}"
            );
        }
    }
}
