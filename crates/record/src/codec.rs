//! Decompression of batch bodies, bounded so that a compression bomb stops at
//! `BATCH_DECOMPRESSED_BYTES_MAX`. Sluice never compresses: batches are stored as producers
//! compressed them.
//!
//! Snappy comes in two framings: librdkafka and most clients send raw snappy blocks, the Java
//! client sends xerial's framing (a magic header, then length-prefixed blocks). Both are read.
//! LZ4 is the standard LZ4 frame format.

use crate::{Compression, RecordError};
use sluice_types::limits::BATCH_DECOMPRESSED_BYTES_MAX;
use std::io::Read;

const XERIAL_MAGIC: &[u8] = &[0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
const XERIAL_HEADER_BYTES: usize = 16;

/// Returns the decompressed body, or `None` when the body is not compressed.
pub(crate) fn decompress(codec: Compression, raw: &[u8]) -> Result<Option<Vec<u8>>, RecordError> {
    let fail = |e: &dyn std::fmt::Display| RecordError::Decompression(format!("{codec:?}: {e}"));
    match codec {
        Compression::None => Ok(None),
        Compression::Gzip => read_bounded(flate2::read::GzDecoder::new(raw)).map(Some),
        Compression::Lz4 => read_bounded(lz4_flex::frame::FrameDecoder::new(raw)).map(Some),
        Compression::Zstd => {
            let decoder = zstd::stream::read::Decoder::new(raw).map_err(|e| fail(&e))?;
            read_bounded(decoder).map(Some)
        }
        Compression::Snappy if raw.starts_with(XERIAL_MAGIC) => xerial(raw).map(Some),
        Compression::Snappy => snappy_block(raw).map(Some),
    }
}

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
