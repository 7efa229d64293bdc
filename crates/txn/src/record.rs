//! The records of `__transaction_state`, in Kafka's own layout (`TransactionLogKey` and
//! `TransactionLogValue` version 0) so that Kafka's tools can read them. Big-endian; `string`
//! is an int16 length then UTF-8 bytes; arrays an int32 count (-1: null).
//!
//! Key:
//! ```text
//! version            int16   0
//! transactional_id   string
//! ```
//! Value (a null value, tombstone, removes the transactional id):
//! ```text
//! version                  int16   0
//! producer_id              int64
//! producer_epoch           int16
//! transaction_timeout_ms   int32
//! transaction_status       int8    0 Empty, 1 Ongoing, 2 PrepareCommit, 3 PrepareAbort,
//!                                  4 CompleteCommit, 5 CompleteAbort, 6 Dead
//! transaction_partitions   nullable array of (topic string, partition_ids array of int32)
//! last_update_timestamp_ms int64
//! start_timestamp_ms       int64   -1 when no transaction is open
//! ```
//! Each value is the whole state of its transactional id, so replaying the topic means keeping
//! the last value per key, and the topic can be compacted.

use crate::coordinator::{TransactionMetadata, TxnState};
use sluice_types::TopicPartition;
use sluice_types::limits::{
    PARTITIONS_PER_TOPIC_MAX, TRANSACTION_PARTITIONS_MAX, TRANSACTIONAL_ID_BYTES_MAX,
};
use sluice_types::wire::{FormatError, Reader, put_i8, put_i16, put_i32, put_i64, put_str};
use std::collections::BTreeSet;

const KEY_VERSION: i16 = 0;
const VALUE_VERSION: i16 = 0;

/// One record of `__transaction_state`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnRecord {
    pub transactional_id: String,
    /// `None`: a tombstone.
    pub value: Option<TransactionMetadata>,
}

impl TxnRecord {
    /// The record's key and value bytes (`None` value: a tombstone).
    pub fn encode(&self) -> (Vec<u8>, Option<Vec<u8>>) {
        let mut key = Vec::new();
        put_i16(&mut key, KEY_VERSION);
        put_str(&mut key, &self.transactional_id);
        (key, self.value.as_ref().map(encode_value))
    }

    pub fn decode(key: Option<&[u8]>, value: Option<&[u8]>) -> Result<TxnRecord, FormatError> {
        let mut k = Reader(key.ok_or(FormatError::NoKey)?);
        let version = k.i16()?;
        if version != KEY_VERSION {
            return Err(FormatError::UnknownVersion {
                what: "key",
                version,
            });
        }
        let transactional_id = k.string()?;
        if transactional_id.len() > TRANSACTIONAL_ID_BYTES_MAX {
            return Err(FormatError::TooLong {
                what: "transactional id",
                len: transactional_id.len() as i64,
            });
        }
        Ok(TxnRecord {
            transactional_id,
            value: value.map(decode_value).transpose()?,
        })
    }
}

fn encode_value(m: &TransactionMetadata) -> Vec<u8> {
    let mut out = Vec::new();
    put_i16(&mut out, VALUE_VERSION);
    put_i64(&mut out, m.producer_id);
    put_i16(&mut out, m.producer_epoch);
    put_i32(&mut out, m.timeout_ms);
    put_i8(&mut out, m.state.code());
    let by_topic = sluice_types::by_topic(&m.partitions);
    put_i32(&mut out, by_topic.len() as i32);
    for (topic, partitions) in by_topic {
        put_str(&mut out, topic);
        put_i32(&mut out, partitions.len() as i32);
        for p in partitions {
            put_i32(&mut out, p);
        }
    }
    put_i64(&mut out, m.last_update_ms);
    put_i64(&mut out, m.start_ms);
    out
}

fn decode_value(bytes: &[u8]) -> Result<TransactionMetadata, FormatError> {
    let mut r = Reader(bytes);
    let version = r.i16()?;
    if version != VALUE_VERSION {
        return Err(FormatError::UnknownVersion {
            what: "value",
            version,
        });
    }
    let producer_id = r.i64()?;
    let producer_epoch = r.i16()?;
    let timeout_ms = r.i32()?;
    let status = r.i8()?;
    let state = TxnState::from_code(status).ok_or(FormatError::Invalid {
        what: "transaction status",
        value: status.into(),
    })?;
    let mut partitions = BTreeSet::new();
    for _ in 0..r.nullable_count("transaction topics", TRANSACTION_PARTITIONS_MAX)? {
        let topic = r.string()?;
        for _ in 0..r.count("transaction partitions", PARTITIONS_PER_TOPIC_MAX as usize)? {
            partitions.insert(TopicPartition::new(topic.clone(), r.i32()?));
            if partitions.len() > TRANSACTION_PARTITIONS_MAX {
                return Err(FormatError::TooLong {
                    what: "transaction partitions",
                    len: partitions.len() as i64,
                });
            }
        }
    }
    Ok(TransactionMetadata {
        producer_id,
        producer_epoch,
        timeout_ms,
        state,
        partitions,
        last_update_ms: r.i64()?,
        start_ms: r.i64()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> TxnRecord {
        TxnRecord {
            transactional_id: "orders-tx".into(),
            value: Some(TransactionMetadata {
                producer_id: 4001,
                producer_epoch: 7,
                timeout_ms: 60_000,
                state: TxnState::Ongoing,
                partitions: [("a", 0), ("a", 3), ("b", 1)]
                    .into_iter()
                    .map(|(t, p)| TopicPartition::new(t, p))
                    .collect(),
                last_update_ms: 1_700_000_000_123,
                start_ms: 1_700_000_000_000,
            }),
        }
    }

    #[test]
    fn records_round_trip() {
        for record in [
            sample(),
            TxnRecord {
                transactional_id: "gone".into(),
                value: None,
            },
        ] {
            let (key, value) = record.encode();
            assert_eq!(TxnRecord::decode(Some(&key), value.as_deref()), Ok(record));
        }
    }

    #[test]
    fn the_value_has_kafkas_layout() {
        let (key, value) = sample().encode();
        assert_eq!(&key[..4], &[0, 0, 0, 9], "version 0, then the id's length");
        let value = value.unwrap();
        // version, producer id, epoch, timeout, status Ongoing = 1, two topics.
        assert_eq!(&value[..2], &[0, 0]);
        assert_eq!(&value[2..10], &4001i64.to_be_bytes());
        assert_eq!(&value[10..12], &7i16.to_be_bytes());
        assert_eq!(&value[12..16], &60_000i32.to_be_bytes());
        assert_eq!(value[16], 1);
        assert_eq!(&value[17..21], &2i32.to_be_bytes());
    }

    #[test]
    fn damaged_values_are_errors_not_panics() {
        let (key, value) = sample().encode();
        let value = value.unwrap();
        for cut in 0..value.len() {
            assert!(TxnRecord::decode(Some(&key), Some(&value[..cut])).is_err());
        }
        let mut bad_status = value.clone();
        bad_status[16] = 9;
        assert!(matches!(
            TxnRecord::decode(Some(&key), Some(&bad_status)),
            Err(FormatError::Invalid { .. })
        ));
        assert_eq!(TxnRecord::decode(None, None), Err(FormatError::NoKey));
    }
}
