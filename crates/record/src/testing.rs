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

/// A batch around a body given byte for byte: `attributes` (compression bits included),
/// `records_count` (the last offset delta follows it), and a correct CRC. For tests that need
/// a batch whose body lies.
pub fn batch_with_body(attributes: i16, records_count: i32, body: &[u8]) -> Vec<u8> {
    let header = crate::BatchHeader {
        base_offset: 0,
        batch_length: 0,
        partition_leader_epoch: 0,
        magic: 2,
        crc: 0,
        attributes,
        last_offset_delta: records_count.wrapping_sub(1),
        base_timestamp: 0,
        max_timestamp: 0,
        producer_id: -1,
        producer_epoch: -1,
        base_sequence: -1,
        records_count,
    };
    crate::build::write_header(&header, body)
}

/// The body of an uncompressed batch: its records, without the header.
pub fn body_of(batch: &[u8]) -> &[u8] {
    &batch[crate::HEADER_BYTES..]
}
