//! Control records: the transaction markers a transaction coordinator writes to end a
//! transaction in each of its partitions. A control batch (attribute bits 4 and 5:
//! transactional and control) carries the producer id and epoch of the transaction and one
//! record, big-endian:
//! ```text
//! key    version int16 (0), type int16 (0 ABORT, 1 COMMIT)
//! value  version int16 (0), coordinator_epoch int32
//! ```
//! Kafka defines other control types (leader change, snapshots) that only its own replication
//! writes; they read here as "not a marker".

use crate::batch::BatchHeader;
use crate::build::{write_header, write_record};
use crate::error::RecordError;
use crate::records::{Record, decode_records};

const ATTRIBUTES_TRANSACTIONAL_CONTROL: i16 = 0x30;
const TYPE_ABORT: i16 = 0;
const TYPE_COMMIT: i16 = 1;

/// The end of a transaction in one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlMarker {
    pub commit: bool,
    pub coordinator_epoch: i32,
}

/// A control batch holding `marker` for the transaction of `producer_id` at `producer_epoch`.
pub fn encode_marker_batch(
    producer_id: i64,
    producer_epoch: i16,
    marker: ControlMarker,
    timestamp_ms: i64,
) -> Vec<u8> {
    let kind = if marker.commit {
        TYPE_COMMIT
    } else {
        TYPE_ABORT
    };
    let mut key = Vec::with_capacity(4);
    key.extend_from_slice(&0i16.to_be_bytes());
    key.extend_from_slice(&kind.to_be_bytes());
    let mut value = Vec::with_capacity(6);
    value.extend_from_slice(&0i16.to_be_bytes());
    value.extend_from_slice(&marker.coordinator_epoch.to_be_bytes());
    let header = BatchHeader {
        base_offset: 0,
        batch_length: 0,
        partition_leader_epoch: 0,
        magic: 2,
        crc: 0,
        attributes: ATTRIBUTES_TRANSACTIONAL_CONTROL,
        last_offset_delta: 0,
        base_timestamp: timestamp_ms,
        max_timestamp: timestamp_ms,
        producer_id,
        producer_epoch,
        base_sequence: -1,
        records_count: 1,
    };
    let record = Record {
        offset: 0,
        timestamp: timestamp_ms,
        key: Some(&key),
        value: Some(&value),
        headers: Vec::new(),
    };
    let mut body = Vec::new();
    write_record(&mut body, &header, &record);
    write_header(&header, &body)
}

/// The marker a control batch holds; `None` for other control records (or an empty batch).
pub fn read_marker(batch: &[u8]) -> Result<Option<ControlMarker>, RecordError> {
    let mut marker = None;
    decode_records(batch, |r| {
        marker = parse_marker(r.key, r.value);
        false
    })?;
    Ok(marker)
}

fn parse_marker(key: Option<&[u8]>, value: Option<&[u8]>) -> Option<ControlMarker> {
    let key = key?;
    let kind = i16::from_be_bytes(key.get(2..4)?.try_into().ok()?);
    let commit = match kind {
        TYPE_COMMIT => true,
        TYPE_ABORT => false,
        _ => return None,
    };
    let coordinator_epoch = value
        .and_then(|v| v.get(2..6))
        .and_then(|b| b.try_into().ok())
        .map_or(-1, i32::from_be_bytes);
    Some(ControlMarker {
        commit,
        coordinator_epoch,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::validate_batch;

    #[test]
    fn markers_round_trip_in_a_valid_control_batch() {
        for commit in [true, false] {
            let marker = ControlMarker {
                commit,
                coordinator_epoch: 3,
            };
            let batch = encode_marker_batch(42, 7, marker, 1_700_000_000_000);
            let header = validate_batch(&batch).unwrap();
            assert!(header.is_control() && header.is_transactional());
            assert_eq!((header.producer_id, header.producer_epoch), (42, 7));
            assert_eq!(read_marker(&batch).unwrap(), Some(marker));
        }
    }

    #[test]
    fn other_control_types_are_not_markers() {
        assert_eq!(parse_marker(Some(&[0, 0, 0, 2]), Some(&[0, 0])), None);
        assert_eq!(parse_marker(Some(&[0, 0]), None), None);
        assert_eq!(parse_marker(None, None), None);
    }
}
