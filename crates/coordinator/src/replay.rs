//! A shard's records as batches: reading its partition back from the start when it is loaded
//! (`replay`), and encoding a command's keyed records into one batch (`keyed_batch`).

use crate::{CoordinatorError, ShardLog};
use sluice_record::{
    BatchHeader, BatchIter, ControlMarker, NewRecord, decode_records, encode_batch, read_marker,
};

/// Bytes read at a time while loading.
const READ_BYTES: usize = 1024 * 1024;

/// What replay hands a shard: a record, or a transaction marker (a control batch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replayed<'a> {
    Record {
        key: Option<&'a [u8]>,
        value: Option<&'a [u8]>,
    },
    Marker(ControlMarker),
}

/// Replays `log` from its start, oldest first, handing each record and each transaction
/// marker to `apply` with its batch's header; `apply` says whether it could decode a record.
/// Logs how many records were replayed and how many skipped.
pub(crate) fn replay(
    log: &dyn ShardLog,
    kind: &str,
    mut apply: impl FnMut(&BatchHeader, Replayed<'_>) -> bool,
) -> Result<(), CoordinatorError> {
    let (mut records, mut skipped) = (0u64, 0u64);
    let mut offset = log.start_offset();
    loop {
        let bytes = log.read(offset, READ_BYTES)?;
        if bytes.is_empty() {
            break;
        }
        for batch in BatchIter::new(&bytes) {
            let (header, batch) = batch?;
            offset = header.last_offset() + 1;
            if header.is_control() {
                if let Some(marker) = read_marker(batch)? {
                    apply(&header, Replayed::Marker(marker));
                }
                continue;
            }
            decode_records(batch, |r| {
                let record = Replayed::Record {
                    key: r.key,
                    value: r.value,
                };
                if apply(&header, record) {
                    records += 1;
                } else {
                    skipped += 1;
                }
                true
            })?;
        }
    }
    let partition = log.index();
    if skipped > 0 {
        tracing::warn!(kind, partition, skipped, "skipped unreadable records");
    }
    if records > 0 {
        tracing::info!(kind, partition, records, "replayed");
    }
    Ok(())
}

/// One uncompressed batch of (key, value) records; a `None` value is a tombstone.
pub fn keyed_batch(records: &[(Vec<u8>, Option<Vec<u8>>)], now_ms: i64) -> Vec<u8> {
    let new_records: Vec<NewRecord<'_>> = records
        .iter()
        .map(|(k, v)| NewRecord {
            key: Some(k),
            value: v.as_deref(),
        })
        .collect();
    encode_batch(0, now_ms, &new_records)
}
