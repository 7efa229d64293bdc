//! Reading an internal topic's partition (`__consumer_offsets`, `__transaction_state`) from
//! its start at broker start, batch by batch, so its coordinator can rebuild its state.

use sluice_record::{BatchHeader, BatchIter};
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
