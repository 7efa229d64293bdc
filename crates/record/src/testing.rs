//! Builders for tests, here and in other crates: well-formed uncompressed batches.

use crate::build::{NewRecord, encode_batch_with_timestamps};

/// Builds an uncompressed batch of `values`, each a record with no key and no headers.
pub fn build_batch(base_offset: i64, timestamps: &[i64], values: &[&[u8]]) -> Vec<u8> {
    let records: Vec<NewRecord<'_>> = values
        .iter()
        .map(|v| NewRecord {
            key: None,
            value: Some(v),
        })
        .collect();
    encode_batch_with_timestamps(base_offset, timestamps, &records)
}

/// Stamps an idempotent producer's id, epoch and first sequence on a batch (and, if
/// `transactional`, the transactional attribute), then recomputes its CRC.
pub fn with_producer(
    mut batch: Vec<u8>,
    producer_id: i64,
    epoch: i16,
    base_sequence: i32,
    transactional: bool,
) -> Vec<u8> {
    const ATTRIBUTES: std::ops::Range<usize> = 21..23;
    const TRANSACTIONAL_BIT: i16 = 0x10;
    batch[43..51].copy_from_slice(&producer_id.to_be_bytes());
    batch[51..53].copy_from_slice(&epoch.to_be_bytes());
    batch[53..57].copy_from_slice(&base_sequence.to_be_bytes());
    if transactional {
        let attributes = i16::from_be_bytes([batch[ATTRIBUTES.start], batch[ATTRIBUTES.start + 1]]);
        batch[ATTRIBUTES].copy_from_slice(&(attributes | TRANSACTIONAL_BIT).to_be_bytes());
    }
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    batch
}
