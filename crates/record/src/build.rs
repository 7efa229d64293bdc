//! Building v2 batches: uncompressed for records the broker writes itself (the group
//! coordinator's `__consumer_offsets` records, and batches rewritten by compaction), and
//! optionally compressed for a client's producer (`sluice produce`). Client batches are never
//! rebuilt by the broker: they are stored as received.

use crate::records::Record;
use crate::varint::write_varlong;
use crate::{BatchHeader, Compression, HEADER_BYTES, LOG_OVERHEAD_BYTES};

/// Where the CRC-32C field sits and where the bytes it covers start (after the CRC itself).
const CRC_FIELD: std::ops::Range<usize> = 17..21;
const CRC_COVERED_FROM: usize = 21;

/// One record to write: an optional key, and a value that is `None` for a tombstone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewRecord<'a> {
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
}

/// Encodes `records` as one uncompressed batch at `base_offset` (the log assigns the real
/// one), every record stamped with `timestamp_ms`, no producer id, no headers.
///
/// # Panics
/// On an empty `records` (a batch holds at least one record).
pub fn encode_batch(base_offset: i64, timestamp_ms: i64, records: &[NewRecord<'_>]) -> Vec<u8> {
    encode_batch_with_timestamps(base_offset, &vec![timestamp_ms; records.len()], records)
}

/// As `encode_batch`, with a timestamp per record.
pub fn encode_batch_with_timestamps(
    base_offset: i64,
    timestamps_ms: &[i64],
    records: &[NewRecord<'_>],
) -> Vec<u8> {
    assert_eq!(timestamps_ms.len(), records.len());
    let full: Vec<Record<'_>> = records
        .iter()
        .zip(timestamps_ms)
        .enumerate()
        .map(|(delta, (record, ts))| Record {
            offset: base_offset + delta as i64,
            timestamp: *ts,
            key: record.key,
            value: record.value,
            headers: Vec::new(),
        })
        .collect();
    encode_records(&full)
}

/// Encodes whole records (headers included) as one uncompressed batch whose base offset is the
/// first record's offset; offsets must rise by one from there. No producer id. This is what a
/// client sends (the `sluice` CLI builds its batches here).
///
/// # Panics
/// On an empty `records`, or offsets that are not consecutive.
pub fn encode_records(records: &[Record<'_>]) -> Vec<u8> {
    encode_records_compressed(records, Compression::None)
}

/// As `encode_records`, the records compressed with `codec` (as a client's producer does).
///
/// # Panics
/// As `encode_records`.
pub fn encode_records_compressed(records: &[Record<'_>], codec: Compression) -> Vec<u8> {
    assert!(!records.is_empty(), "a batch holds at least one record");
    let base_offset = records[0].offset;
    assert!(
        records
            .iter()
            .enumerate()
            .all(|(i, r)| r.offset == base_offset + i as i64),
        "offsets in a batch are consecutive"
    );
    let base_ts = records[0].timestamp;
    let header = BatchHeader {
        base_offset,
        batch_length: 0,
        partition_leader_epoch: 0,
        magic: 2,
        crc: 0,
        attributes: compression_attribute(codec),
        last_offset_delta: (records.len() - 1) as i32,
        base_timestamp: base_ts,
        max_timestamp: records.iter().map(|r| r.timestamp).max().unwrap_or(base_ts),
        producer_id: -1,
        producer_epoch: -1,
        base_sequence: -1,
        records_count: records.len() as i32,
    };
    let mut body = Vec::new();
    for record in records {
        write_record(&mut body, &header, record);
    }
    if codec == Compression::None {
        return write_header(&header, &body);
    }
    write_header(&header, &crate::codec::compress(codec, &body))
}

/// The attribute bits that name `codec` (the inverse of `BatchHeader::compression`).
fn compression_attribute(codec: Compression) -> i16 {
    match codec {
        Compression::None => 0,
        Compression::Gzip => 1,
        Compression::Snappy => 2,
        Compression::Lz4 => 3,
        Compression::Zstd => 4,
    }
}

/// Stamps a producer's id, epoch and first sequence on a whole batch (and, if
/// `transactional`, the transactional attribute), then recomputes its CRC: the broker writes
/// offsets committed inside a transaction as such a batch.
///
/// # Panics
/// On fewer bytes than a batch header.
pub fn stamp_producer(
    batch: &mut [u8],
    producer_id: i64,
    epoch: i16,
    base_sequence: i32,
    transactional: bool,
) {
    const ATTRIBUTES: std::ops::Range<usize> = 21..23;
    const TRANSACTIONAL_BIT: i16 = 0x10;
    batch[43..51].copy_from_slice(&producer_id.to_be_bytes());
    batch[51..53].copy_from_slice(&epoch.to_be_bytes());
    batch[53..57].copy_from_slice(&base_sequence.to_be_bytes());
    if transactional {
        let attributes = i16::from_be_bytes([batch[ATTRIBUTES.start], batch[ATTRIBUTES.start + 1]]);
        batch[ATTRIBUTES].copy_from_slice(&(attributes | TRANSACTIONAL_BIT).to_be_bytes());
    }
    let crc = crc32c::crc32c(&batch[CRC_COVERED_FROM..]);
    batch[CRC_FIELD].copy_from_slice(&crc.to_be_bytes());
}

/// Appends one record, its offset and timestamp taken relative to `batch`'s base.
pub(crate) fn write_record(body: &mut Vec<u8>, batch: &BatchHeader, record: &Record<'_>) {
    let mut encoded = Vec::with_capacity(32);
    encoded.push(0u8); // attributes
    write_varlong(&mut encoded, record.timestamp - batch.base_timestamp);
    write_varlong(&mut encoded, record.offset - batch.base_offset);
    write_bytes(&mut encoded, record.key);
    write_bytes(&mut encoded, record.value);
    write_varlong(&mut encoded, record.headers.len() as i64);
    for h in &record.headers {
        write_bytes(&mut encoded, Some(h.key));
        write_bytes(&mut encoded, h.value);
    }
    write_varlong(body, encoded.len() as i64);
    body.extend_from_slice(&encoded);
}

/// The batch bytes for `header` (its length and CRC computed here) followed by `body`.
pub(crate) fn write_header(header: &BatchHeader, body: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(HEADER_BYTES + body.len());
    b.extend_from_slice(&header.base_offset.to_be_bytes());
    b.extend_from_slice(&((HEADER_BYTES - LOG_OVERHEAD_BYTES + body.len()) as i32).to_be_bytes());
    b.extend_from_slice(&header.partition_leader_epoch.to_be_bytes());
    b.push(2); // magic
    b.extend_from_slice(&[0; 4]); // crc, filled in below
    b.extend_from_slice(&header.attributes.to_be_bytes());
    b.extend_from_slice(&header.last_offset_delta.to_be_bytes());
    b.extend_from_slice(&header.base_timestamp.to_be_bytes());
    b.extend_from_slice(&header.max_timestamp.to_be_bytes());
    b.extend_from_slice(&header.producer_id.to_be_bytes());
    b.extend_from_slice(&header.producer_epoch.to_be_bytes());
    b.extend_from_slice(&header.base_sequence.to_be_bytes());
    b.extend_from_slice(&header.records_count.to_be_bytes());
    b.extend_from_slice(body);
    let crc = crc32c::crc32c(&b[CRC_COVERED_FROM..]);
    b[CRC_FIELD].copy_from_slice(&crc.to_be_bytes());
    b
}

fn write_bytes(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        None => write_varlong(out, -1),
        Some(b) => {
            write_varlong(out, b.len() as i64);
            out.extend_from_slice(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{decode_records, validate_batch, verify_checksum};

    #[test]
    fn built_batches_validate_and_decode_back() {
        let records = [
            NewRecord {
                key: Some(b"k1"),
                value: Some(b"v1"),
            },
            NewRecord {
                key: Some(b"k2"),
                value: None,
            },
        ];
        let batch = encode_batch(7, 1_000, &records);
        validate_batch(&batch).expect("valid");
        let header = verify_checksum(&batch).expect("checksum");
        assert_eq!((header.base_offset, header.records_count), (7, 2));
        let mut seen = Vec::new();
        decode_records(&batch, |r| {
            seen.push((
                r.offset,
                r.key.map(<[u8]>::to_vec),
                r.value.map(<[u8]>::to_vec),
            ));
            true
        })
        .expect("decodes");
        assert_eq!(
            seen,
            vec![
                (7, Some(b"k1".to_vec()), Some(b"v1".to_vec())),
                (8, Some(b"k2".to_vec()), None)
            ]
        );
    }

    #[test]
    fn compressed_batches_validate_and_decode_back() {
        let value = b"the same value again and again".repeat(20);
        let records: Vec<Record<'_>> = (0..50)
            .map(|i| Record {
                offset: i,
                timestamp: 1_000 + i,
                key: None,
                value: Some(&value),
                headers: Vec::new(),
            })
            .collect();
        for codec in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let batch = encode_records_compressed(&records, codec);
            assert!(batch.len() < value.len() * 10, "{codec:?} compresses");
            let header = validate_batch(&batch).expect("valid");
            assert_eq!(header.compression().unwrap(), codec);
            let mut count = 0;
            decode_records(&batch, |r| {
                assert_eq!((r.offset, r.value), (count, Some(&value[..])));
                count += 1;
                true
            })
            .expect("decodes");
            assert_eq!(count, 50, "{codec:?}");
        }
    }
}
