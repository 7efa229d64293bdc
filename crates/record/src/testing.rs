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
