//! The records of internal topics (`__consumer_offsets`, `__transaction_state`) as batches:
//! encoding a coordinator's keyed records into one batch, and reading a partition back from
//! its start at broker start so its coordinator can rebuild its state.

use sluice_record::{BatchHeader, BatchIter, NewRecord, encode_batch};
use sluice_storage::{Partition, StorageError};

/// Bytes read at a time.
const READ_BYTES: usize = 1024 * 1024;

/// Hands every batch of the partition, oldest first, to `visit`.
pub(crate) fn for_each_batch(
    partition: &Partition,
    mut visit: impl FnMut(&BatchHeader, &[u8]) -> Result<(), StorageError>,
) -> Result<(), StorageError> {
    let mut offset = partition.log().log_start_offset();
    loop {
        let bytes = partition.read(offset, READ_BYTES, true)?.read()?;
        if bytes.is_empty() {
            return Ok(());
        }
        for batch in BatchIter::new(&bytes) {
            let (header, batch) = batch?;
            offset = header.last_offset() + 1;
            visit(&header, batch)?;
        }
    }
}

/// One uncompressed batch of (key, value) records; a `None` value is a tombstone.
pub(crate) fn keyed_batch(records: &[(Vec<u8>, Option<Vec<u8>>)], now_ms: i64) -> Vec<u8> {
    let new_records: Vec<NewRecord<'_>> = records
        .iter()
        .map(|(k, v)| NewRecord {
            key: Some(k),
            value: v.as_deref(),
        })
        .collect();
    encode_batch(0, now_ms, &new_records)
}
