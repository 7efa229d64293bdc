//! Individual records inside a v2 batch.
//!
//! ```text
//! length            varint   bytes that follow, up to the end of this record
//! attributes        int8     unused, 0
//! timestamp_delta   varlong  from the batch's base_timestamp
//! offset_delta      varint   from the batch's base_offset
//! key_length        varint   -1 for a null key
//! key               bytes
//! value_length      varint   -1 for a null value (a tombstone)
//! value             bytes
//! header_count      varint
//! headers           header_count × (key_length varint, key, value_length varint, value)
//! ```
//! The fetch path never looks inside a batch; validation of a produced batch walks its
//! records without keeping them (`validate.rs`), and lookups by timestamp decode them here.

use crate::codec::decompress;
use crate::varint::{read_varint, read_varlong};
use crate::{BatchHeader, HEADER_BYTES, RecordError};

/// One decoded record, borrowing from the (decompressed) batch body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: Vec<RecordHeader<'a>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordHeader<'a> {
    pub key: &'a [u8],
    pub value: Option<&'a [u8]>,
}

fn take<'a>(buf: &mut &'a [u8], len: usize) -> Result<&'a [u8], RecordError> {
    if buf.len() < len {
        return Err(RecordError::MalformedRecord(
            "field runs past the end of the record",
        ));
    }
    let (head, rest) = buf.split_at(len);
    *buf = rest;
    Ok(head)
}

fn nullable_bytes<'a>(buf: &mut &'a [u8]) -> Result<Option<&'a [u8]>, RecordError> {
    match read_varint(buf)? {
        -1 => Ok(None),
        n if n >= 0 => take(buf, n as usize).map(Some),
        _ => Err(RecordError::MalformedRecord("negative length")),
    }
}

/// Splits the next length-prefixed record off the front of `buf`.
fn next_record_body<'a>(buf: &mut &'a [u8]) -> Result<&'a [u8], RecordError> {
    let len = read_varint(buf)?;
    if len < 0 {
        return Err(RecordError::MalformedRecord("negative record length"));
    }
    take(buf, len as usize)
}

fn parse_record<'a>(header: &BatchHeader, mut body: &'a [u8]) -> Result<Record<'a>, RecordError> {
    take(&mut body, 1)?;
    let timestamp = header.base_timestamp.wrapping_add(read_varlong(&mut body)?);
    let offset = header
        .base_offset
        .saturating_add(i64::from(read_varint(&mut body)?));
    let key = nullable_bytes(&mut body)?;
    let value = nullable_bytes(&mut body)?;
    let count = read_varint(&mut body)?;
    if count < 0 || count as usize > body.len() {
        return Err(RecordError::MalformedRecord("header count out of range"));
    }
    let mut headers = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let key =
            nullable_bytes(&mut body)?.ok_or(RecordError::MalformedRecord("null header key"))?;
        headers.push(RecordHeader {
            key,
            value: nullable_bytes(&mut body)?,
        });
    }
    Ok(Record {
        offset,
        timestamp,
        key,
        value,
        headers,
    })
}

/// Decompresses (when needed) and decodes every record of one complete batch, handing each to
/// `visit`. `visit` returns false to stop early.
pub fn decode_records(
    batch: &[u8],
    mut visit: impl FnMut(Record<'_>) -> bool,
) -> Result<(), RecordError> {
    let header = BatchHeader::parse(batch)?;
    let raw = batch
        .get(HEADER_BYTES..header.total_bytes())
        .ok_or(RecordError::Truncated {
            needed: header.total_bytes(),
            available: batch.len(),
        })?;
    let inflated = decompress(header.compression()?, raw)?;
    let mut body: &[u8] = inflated.as_deref().unwrap_or(raw);
    for _ in 0..header.records_count.max(0) {
        let record = parse_record(&header, next_record_body(&mut body)?)?;
        if !visit(record) {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::build_batch;

    #[test]
    fn records_decode_with_offsets_and_timestamps() {
        let batch = build_batch(40, &[100, 90, 130], &[b"a", b"", b"ccc"]);
        let mut seen = Vec::new();
        decode_records(&batch, |r| {
            seen.push((r.offset, r.timestamp, r.value.map(<[u8]>::to_vec)));
            true
        })
        .unwrap();
        assert_eq!(
            seen,
            vec![
                (40, 100, Some(b"a".to_vec())),
                (41, 90, Some(vec![])),
                (42, 130, Some(b"ccc".to_vec()))
            ]
        );
    }

    #[test]
    fn a_lying_record_length_is_an_error_not_a_panic() {
        let mut batch = build_batch(0, &[1], &[b"abc"]);
        batch[HEADER_BYTES] = 0x7e; // record length 63, far past the end
        assert!(decode_records(&batch, |_| true).is_err());
    }
}
