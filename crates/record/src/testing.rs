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
    crate::build::stamp_producer(&mut batch, producer_id, epoch, base_sequence, transactional);
    batch
}
