//! Checking every record of a batch a client sent, compressed or not, without inflating it.
//!
//! A consumer trusts what the broker serves: librdkafka loops or stops at a batch whose body
//! does not decode, so one bad producer could wedge every consumer of a partition. The broker
//! therefore walks every record of every produced batch (see `records.rs` for the layout):
//! each length, varint and header count must fit inside its record, each record must fill its
//! declared length exactly, the records must be exactly `records_count`, and their offset deltas
//! must count 0, 1, 2, ... (what consumers compute offsets from).
//!
//! A compressed body is read through the codec's streaming decoder, a buffer at a time: the
//! walk never holds the inflated body, and stops with `DecompressedTooLarge` once it has read
//! `BATCH_DECOMPRESSED_BYTES_MAX` bytes (a compression bomb costs the cap's CPU, not its
//! memory). Raw snappy, a single block, is the one codec that must be inflated whole; its
//! size is read from its preamble and checked first. At most `DECOMPRESSIONS_CONCURRENT_MAX`
//! decompressions run at once (`codec::DecompressionSlot`).
//!
//! Does not own: the batch header and CRC (`batch.rs`), decoding records for use
//! (`records.rs`).

use crate::codec::{DecompressionSlot, inflating_reader};
use crate::varint::{narrow, read_varlong_with};
use crate::{BatchHeader, Compression, HEADER_BYTES, RecordError};
use sluice_types::limits::BATCH_DECOMPRESSED_BYTES_MAX;
use std::io::{BufRead, BufReader};

/// What the walk learned about a batch's records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RecordsSummary {
    /// At least one record has a null key (a compacted topic refuses such a batch).
    pub has_keyless_record: bool,
}

/// Walks every record of the complete batch `bytes` whose header is `header`.
pub(crate) fn check_records(
    header: &BatchHeader,
    bytes: &[u8],
) -> Result<RecordsSummary, RecordError> {
    let raw = &bytes[HEADER_BYTES..];
    match header.compression()? {
        Compression::None => {
            let mut source = SliceSource(raw);
            let summary = walk(&mut source, header.records_count)?;
            if !source.0.is_empty() {
                return Err(RecordError::MalformedRecord(
                    "bytes left after the last record",
                ));
            }
            Ok(summary)
        }
        codec => {
            let _slot = DecompressionSlot::acquire();
            let reader = inflating_reader(codec, raw)?;
            let mut source = StreamSource {
                reader: BufReader::with_capacity(STREAM_BUFFER_BYTES, reader),
                consumed: 0,
            };
            let summary = walk(&mut source, header.records_count)?;
            source.expect_end()?;
            Ok(summary)
        }
    }
}

/// Buffer between a streaming decoder and the walk.
const STREAM_BUFFER_BYTES: usize = 64 * 1024;

/// Where record bytes come from: a slice, or a decoder read a buffer at a time.
trait Source {
    fn byte(&mut self) -> Result<u8, RecordError>;
    /// Passes over `n` bytes without keeping them.
    fn skip(&mut self, n: usize) -> Result<(), RecordError>;
}

const PAST_THE_END: RecordError =
    RecordError::MalformedRecord("field runs past the end of the batch");

struct SliceSource<'a>(&'a [u8]);

impl Source for SliceSource<'_> {
    fn byte(&mut self) -> Result<u8, RecordError> {
        let (&first, rest) = self.0.split_first().ok_or(PAST_THE_END)?;
        self.0 = rest;
        Ok(first)
    }
    fn skip(&mut self, n: usize) -> Result<(), RecordError> {
        self.0 = self.0.get(n..).ok_or(PAST_THE_END)?;
        Ok(())
    }
}

struct StreamSource<R> {
    reader: R,
    /// Inflated bytes read so far, held under `BATCH_DECOMPRESSED_BYTES_MAX`.
    consumed: usize,
}

impl<R: BufRead> StreamSource<R> {
    fn buffer(&mut self) -> Result<&[u8], RecordError> {
        if self.consumed >= BATCH_DECOMPRESSED_BYTES_MAX {
            return Err(RecordError::DecompressedTooLarge(
                BATCH_DECOMPRESSED_BYTES_MAX,
            ));
        }
        self.reader
            .fill_buf()
            .map_err(|e| RecordError::Decompression(e.to_string()))
    }

    fn advance(&mut self, n: usize) {
        self.reader.consume(n);
        self.consumed += n;
    }

    /// After the last record the inflated body must end.
    fn expect_end(&mut self) -> Result<(), RecordError> {
        if self.buffer()?.is_empty() {
            Ok(())
        } else {
            Err(RecordError::MalformedRecord(
                "bytes left after the last record",
            ))
        }
    }
}

impl<R: BufRead> Source for StreamSource<R> {
    fn byte(&mut self) -> Result<u8, RecordError> {
        let first = *self.buffer()?.first().ok_or(PAST_THE_END)?;
        self.advance(1);
        Ok(first)
    }
    fn skip(&mut self, mut n: usize) -> Result<(), RecordError> {
        while n > 0 {
            let available = self.buffer()?.len();
            if available == 0 {
                return Err(PAST_THE_END);
            }
            let step = available.min(n);
            self.advance(step);
            n -= step;
        }
        Ok(())
    }
}

/// One record's bytes: every read is checked against what its length prefix left.
struct Bounded<'s, S> {
    source: &'s mut S,
    left: usize,
}

const PAST_THE_RECORD: RecordError =
    RecordError::MalformedRecord("field runs past the end of the record");

impl<S: Source> Bounded<'_, S> {
    fn byte(&mut self) -> Result<u8, RecordError> {
        self.left = self.left.checked_sub(1).ok_or(PAST_THE_RECORD)?;
        self.source.byte()
    }
    fn skip(&mut self, n: usize) -> Result<(), RecordError> {
        self.left = self.left.checked_sub(n).ok_or(PAST_THE_RECORD)?;
        self.source.skip(n)
    }
    fn varlong(&mut self) -> Result<i64, RecordError> {
        read_varlong_with(|| self.byte())
    }
    fn varint(&mut self) -> Result<i32, RecordError> {
        narrow(self.varlong()?)
    }
    /// A length-prefixed byte string (-1: null); returns whether it was null.
    fn nullable_bytes(&mut self) -> Result<bool, RecordError> {
        match self.varint()? {
            -1 => Ok(true),
            n if n >= 0 => self.skip(n as usize).map(|()| false),
            _ => Err(RecordError::MalformedRecord("negative length")),
        }
    }
}

fn walk(source: &mut impl Source, records_count: i32) -> Result<RecordsSummary, RecordError> {
    let mut summary = RecordsSummary::default();
    for index in 0..records_count {
        let length = narrow(read_varlong_with(|| source.byte())?)?;
        if length < 0 {
            return Err(RecordError::MalformedRecord("negative record length"));
        }
        let mut record = Bounded {
            source: &mut *source,
            left: length as usize,
        };
        if check_record(&mut record, index)? {
            summary.has_keyless_record = true;
        }
        if record.left != 0 {
            return Err(RecordError::MalformedRecord(
                "record longer than its fields",
            ));
        }
    }
    Ok(summary)
}

/// Checks one record's fields; returns whether its key is null.
fn check_record(record: &mut Bounded<'_, impl Source>, index: i32) -> Result<bool, RecordError> {
    record.byte()?; // attributes
    record.varlong()?; // timestamp delta
    if record.varint()? != index {
        return Err(RecordError::MalformedRecord(
            "offset deltas must count up from 0",
        ));
    }
    let keyless = record.nullable_bytes()?;
    record.nullable_bytes()?; // value
    let headers = record.varint()?;
    if headers < 0 {
        return Err(RecordError::MalformedRecord("negative header count"));
    }
    // Each header takes at least two bytes, so a lying count fails within the record.
    for _ in 0..headers {
        if record.nullable_bytes()? {
            return Err(RecordError::MalformedRecord("null header key"));
        }
        record.nullable_bytes()?;
    }
    Ok(keyless)
}

#[cfg(test)]
mod tests {
    use crate::testing::{batch_with_body, body_of, build_batch};
    use crate::varint::write_varlong;
    use crate::{RecordError, validate_batch, validate_batch_records};
    use std::io::Write;

    const GZIP: i16 = 1;
    const ZSTD: i16 = 4;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(bytes).unwrap();
        gz.finish().unwrap()
    }

    /// One record whose fields are written as given (lengths may lie).
    fn record(offset_delta: i64, key_length: i64, key: &[u8], headers: i64) -> Vec<u8> {
        let mut fields = vec![0u8];
        write_varlong(&mut fields, 0);
        write_varlong(&mut fields, offset_delta);
        write_varlong(&mut fields, key_length);
        fields.extend_from_slice(key);
        write_varlong(&mut fields, 1);
        fields.push(b'v');
        write_varlong(&mut fields, headers);
        let mut out = Vec::new();
        write_varlong(&mut out, fields.len() as i64);
        out.extend(fields);
        out
    }

    #[test]
    fn compressed_batches_of_every_codec_validate() {
        let plain = build_batch(0, &[1, 2, 3], &[b"a", b"bb", b"ccc"]);
        let body = body_of(&plain);
        let cases = [
            (GZIP, gzip(body)),
            (ZSTD, zstd::encode_all(body, 3).unwrap()),
            (2, snap::raw::Encoder::new().compress_vec(body).unwrap()),
        ];
        for (codec, compressed) in cases {
            let (header, summary) =
                validate_batch_records(&batch_with_body(codec, 3, &compressed)).unwrap();
            assert_eq!(header.records_count, 3);
            assert!(summary.has_keyless_record, "codec {codec}");
        }
    }

    #[test]
    fn a_body_that_is_not_in_its_codec_is_refused() {
        let plain = build_batch(0, &[1], &[b"a"]);
        let batch = batch_with_body(GZIP, 1, body_of(&plain));
        assert!(matches!(
            validate_batch(&batch),
            Err(RecordError::Decompression(_))
        ));
    }

    #[test]
    fn a_count_claiming_more_records_than_the_body_holds_is_refused() {
        let plain = build_batch(0, &[1], &[b"a"]);
        for codec in [0, GZIP] {
            let body = if codec == 0 {
                body_of(&plain).to_vec()
            } else {
                gzip(body_of(&plain))
            };
            let batch = batch_with_body(codec, i32::MAX, &body);
            assert!(validate_batch(&batch).is_err(), "codec {codec}");
        }
    }

    #[test]
    fn lying_lengths_and_counts_inside_a_record_are_refused() {
        let cases = [
            record(0, 1 << 30, b"k", 0), // key length 2^30
            record(0, 1, b"k", 1 << 30), // header count 2^30
            record(0, -2, b"", 0),       // negative key length
            record(5, 1, b"k", 0),       // offset delta not 0
        ];
        for body in cases {
            for codec in [0, GZIP] {
                let bytes = if codec == 0 {
                    body.clone()
                } else {
                    gzip(&body)
                };
                let batch = batch_with_body(codec, 1, &bytes);
                assert!(
                    matches!(validate_batch(&batch), Err(RecordError::MalformedRecord(_))),
                    "codec {codec}, body {body:?}"
                );
            }
        }
        let good = record(0, 1, b"k", 0);
        let (_, summary) = validate_batch_records(&batch_with_body(0, 1, &good)).unwrap();
        assert!(!summary.has_keyless_record);
    }

    #[test]
    fn bytes_after_the_last_record_are_refused() {
        let mut body = record(0, 1, b"k", 0);
        body.push(0);
        for codec in [0, GZIP] {
            let bytes = if codec == 0 {
                body.clone()
            } else {
                gzip(&body)
            };
            assert!(validate_batch(&batch_with_body(codec, 1, &bytes)).is_err());
        }
    }

    #[test]
    fn a_compression_bomb_stops_at_the_cap() {
        // One record whose value claims 2^31-1 bytes of zeros: the inflated stream runs to the
        // cap before the record could end.
        let mut body = Vec::new();
        write_varlong(&mut body, i64::from(i32::MAX));
        let mut fields = vec![0u8];
        write_varlong(&mut fields, 0);
        write_varlong(&mut fields, 0);
        write_varlong(&mut fields, -1);
        write_varlong(&mut fields, i64::from(i32::MAX) - 16);
        body.extend(fields);
        let mut encoder = zstd::Encoder::new(Vec::new(), 3).unwrap();
        encoder.write_all(&body).unwrap();
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..300 {
            encoder.write_all(&zeros).unwrap();
        }
        let compressed = encoder.finish().unwrap();
        assert!(compressed.len() < 64 * 1024, "{}", compressed.len());
        assert_eq!(
            validate_batch(&batch_with_body(ZSTD, 1, &compressed)),
            Err(RecordError::DecompressedTooLarge(
                sluice_types::limits::BATCH_DECOMPRESSED_BYTES_MAX
            ))
        );
    }
}
