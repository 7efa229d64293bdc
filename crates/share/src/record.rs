//! The records of `__share_group_state`: one share-partition's durable state per record, the
//! whole of it each time (a snapshot), keyed by group, topic id and partition, so replaying the
//! topic keeps the last value of each key and the topic can be compacted.
//!
//! Sluice's layout, not Kafka's (Kafka writes `ShareSnapshot` and `ShareUpdate` records in its
//! flexible encoding; Kafka's tools do not read these). Big-endian; `string` is an int16 length
//! then UTF-8 bytes; an array is an int32 count.
//!
//! Key:
//! ```text
//! version     int16    0
//! group       string   the share group id
//! topic_id    16 bytes the topic's UUID
//! partition   int32
//! ```
//! Value (a null value, a tombstone, deletes the state):
//! ```text
//! version          int16    0
//! state_epoch      int32    rises when the state is reset (the group's offsets altered)
//! leader_epoch     int32    the leader epoch of the data partition whose leader wrote it
//! start_offset     int64    every record below it is done
//! write_time_ms    int64
//! batches          array of (first_offset int64, last_offset int64, state int8,
//!                            delivery_count int16), in offset order, apart
//! ```
//! A batch's state is `RecordState::id`: 0 available, 2 acknowledged, 4 archived (an acquired
//! record is written available: a restart releases it).

use crate::partition::{IN_FLIGHT_RECORDS_MAX, StateBatch};
use sluice_types::limits::GROUP_ID_BYTES_MAX;
use sluice_types::wire::{FormatError, Reader, put_i8, put_i16, put_i32, put_i64, put_str};

const KEY_VERSION: i16 = 0;
const VALUE_VERSION: i16 = 0;

/// Which share-partition a state belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShareStateKey {
    pub group: String,
    /// The topic's UUID as a number (big-endian bytes on the wire).
    pub topic_id: u128,
    pub partition: i32,
}

impl ShareStateKey {
    /// The text hashed (as Kafka hashes a group id) to place a share-partition's state:
    /// `group:topic_id:partition`, as Kafka's, with the topic id in hexadecimal.
    pub fn coordinator_key(&self) -> String {
        format!("{}:{:032x}:{}", self.group, self.topic_id, self.partition)
    }
}

/// A share-partition's durable state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareStateValue {
    pub state_epoch: i32,
    pub leader_epoch: i32,
    pub start_offset: i64,
    pub write_time_ms: i64,
    pub batches: Vec<StateBatch>,
}

/// One record of `__share_group_state`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareStateRecord {
    pub key: ShareStateKey,
    /// `None`: a tombstone.
    pub value: Option<ShareStateValue>,
}

impl ShareStateRecord {
    /// The record's key and value bytes (`None` value: a tombstone).
    pub fn encode(&self) -> (Vec<u8>, Option<Vec<u8>>) {
        let mut key = Vec::new();
        put_i16(&mut key, KEY_VERSION);
        put_str(&mut key, &self.key.group);
        key.extend_from_slice(&self.key.topic_id.to_be_bytes());
        put_i32(&mut key, self.key.partition);
        (key, self.value.as_ref().map(encode_value))
    }

    pub fn decode(
        key: Option<&[u8]>,
        value: Option<&[u8]>,
    ) -> Result<ShareStateRecord, FormatError> {
        let mut k = Reader(key.ok_or(FormatError::NoKey)?);
        version(&mut k, "key", KEY_VERSION)?;
        let group = k.string()?;
        if group.is_empty() || group.len() > GROUP_ID_BYTES_MAX {
            return Err(FormatError::TooLong {
                what: "group id",
                len: group.len() as i64,
            });
        }
        let topic_id = u128::from_be_bytes(k.take(16)?.try_into().expect("16 bytes"));
        let partition = k.i32()?;
        let key = ShareStateKey {
            group,
            topic_id,
            partition,
        };
        let value = value.map(decode_value).transpose()?;
        Ok(ShareStateRecord { key, value })
    }
}

fn version(r: &mut Reader<'_>, what: &'static str, known: i16) -> Result<(), FormatError> {
    let version = r.i16()?;
    if version != known {
        return Err(FormatError::UnknownVersion { what, version });
    }
    Ok(())
}

fn encode_value(v: &ShareStateValue) -> Vec<u8> {
    let mut out = Vec::with_capacity(30 + v.batches.len() * 19);
    put_i16(&mut out, VALUE_VERSION);
    put_i32(&mut out, v.state_epoch);
    put_i32(&mut out, v.leader_epoch);
    put_i64(&mut out, v.start_offset);
    put_i64(&mut out, v.write_time_ms);
    put_i32(&mut out, v.batches.len() as i32);
    for b in &v.batches {
        put_i64(&mut out, b.first_offset);
        put_i64(&mut out, b.last_offset);
        put_i8(&mut out, b.state as i8);
        put_i16(&mut out, b.delivery_count as i16);
    }
    out
}

fn decode_value(bytes: &[u8]) -> Result<ShareStateValue, FormatError> {
    let mut r = Reader(bytes);
    version(&mut r, "value", VALUE_VERSION)?;
    let state_epoch = r.i32()?;
    let leader_epoch = r.i32()?;
    let start_offset = r.i64()?;
    let write_time_ms = r.i64()?;
    let count = r.count("state batches", IN_FLIGHT_RECORDS_MAX)?;
    let mut batches = Vec::with_capacity(count);
    for _ in 0..count {
        let first_offset = r.i64()?;
        let last_offset = r.i64()?;
        let state = r.i8()?;
        let delivery_count = r.i16()?;
        if !matches!(state, 0 | 2 | 4) {
            return Err(FormatError::Invalid {
                what: "record state",
                value: state.into(),
            });
        }
        if delivery_count < 0 {
            return Err(FormatError::Invalid {
                what: "delivery count",
                value: delivery_count.into(),
            });
        }
        batches.push(StateBatch {
            first_offset,
            last_offset,
            state: state as u8,
            delivery_count: delivery_count as u16,
        });
    }
    Ok(ShareStateValue {
        state_epoch,
        leader_epoch,
        start_offset,
        write_time_ms,
        batches,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> ShareStateRecord {
        ShareStateRecord {
            key: ShareStateKey {
                group: "workers".into(),
                topic_id: 0x0123_4567_89ab_cdef_0011_2233_4455_6677,
                partition: 3,
            },
            value: Some(ShareStateValue {
                state_epoch: 1,
                leader_epoch: 7,
                start_offset: 100,
                write_time_ms: 1_700_000_000_000,
                batches: vec![
                    StateBatch {
                        first_offset: 100,
                        last_offset: 104,
                        state: 2,
                        delivery_count: 1,
                    },
                    StateBatch {
                        first_offset: 105,
                        last_offset: 105,
                        state: 0,
                        delivery_count: 3,
                    },
                ],
            }),
        }
    }

    #[test]
    fn records_and_tombstones_round_trip() {
        let r = record();
        let (key, value) = r.encode();
        assert_eq!(
            ShareStateRecord::decode(Some(&key), value.as_deref()),
            Ok(r.clone())
        );
        let tombstone = ShareStateRecord { value: None, ..r };
        let (key, value) = tombstone.encode();
        assert_eq!(value, None);
        assert_eq!(ShareStateRecord::decode(Some(&key), None), Ok(tombstone));
    }

    #[test]
    fn every_truncation_and_a_bad_state_are_refused() {
        let (key, value) = record().encode();
        let value = value.unwrap();
        for cut in 0..value.len() {
            assert!(ShareStateRecord::decode(Some(&key), Some(&value[..cut])).is_err());
        }
        for cut in 0..key.len() {
            assert!(ShareStateRecord::decode(Some(&key[..cut]), Some(&value)).is_err());
        }
        let mut bad = value.clone();
        let state_at = 2 + 4 + 4 + 8 + 8 + 4 + 8 + 8;
        bad[state_at] = 1; // acquired is never written
        assert!(ShareStateRecord::decode(Some(&key), Some(&bad)).is_err());
        assert!(ShareStateRecord::decode(None, Some(&value)).is_err());
    }
}
