//! One acquisition from a share-partition this broker leads: where to read (under the
//! share-partition's lock), the read of the log (outside it), the records offered and taken
//! (under it again), and the bytes and acquired ranges a ShareFetch answers with.
//!
//! Reading between two holds is safe: the share-partition's next fetch offset never passes
//! its end offset, which only grows, so a read from an older next fetch offset still offers
//! every record never handed out; records below it are skipped unless available.

use super::ShareEntry;
use crate::server::Broker;
use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use sluice_record::{BatchHeader, decode_records};
use sluice_share::{Delivery, KeyHash, Offered, ShareStateKey};
use sluice_types::limits::SHARE_READ_BYTES_MAX;
use std::hash::{Hash, Hasher};

/// A run of offsets acquired with one delivery count: (first, last, delivery count).
pub(crate) type AcquiredRange = (i64, i64, i16);

/// What one share-partition hands a member.
#[derive(Debug, Default)]
pub(crate) struct Acquired {
    /// Whole batches holding every acquired record (and maybe others the member must skip).
    pub records: Bytes,
    pub ranges: Vec<AcquiredRange>,
}

/// What one acquisition asks for.
pub(crate) struct Ask<'a> {
    pub key: &'a ShareStateKey,
    pub topic: &'a str,
    pub member: &'a str,
    pub max_records: usize,
    pub max_bytes: usize,
    pub now_ms: i64,
}

/// Acquires records of one loaded share-partition for a member; the Kafka error if this
/// broker cannot serve it.
pub(crate) fn acquire(
    broker: &Broker,
    entry: &ShareEntry,
    ask: Ask<'_>,
) -> Result<Acquired, ResponseError> {
    let partition = broker
        .metadata()
        .led_partition(ask.topic, ask.key.partition, -1)?;
    let (log_start, high_watermark) = {
        let log = partition.log();
        (log.log_start_offset(), log.high_watermark())
    };
    let (from, window) = {
        let mut share = entry.lock();
        let dead = share.expire_locks(ask.now_ms);
        let start = share.start_offset();
        share.log_start_moved(log_start);
        if !dead.is_empty() || share.start_offset() != start {
            entry.changed();
        }
        entry.archived(dead);
        (share.next_fetch_offset(ask.now_ms), share.in_flight_max())
    };
    if from >= high_watermark || ask.max_records == 0 {
        return Ok(Acquired::default());
    }
    // What may be taken lies within the in-flight window past `from` and `max_records` more:
    // a read of at most SHARE_READ_BYTES_MAX (at least one batch), decoded no further.
    let read = partition
        .log()
        .read(from, ask.max_bytes.min(SHARE_READ_BYTES_MAX), true)
        .and_then(|plan| partition.read_batches(&plan));
    let bytes = read.map_err(|e| crate::error::storage_error(&e))?;
    let offered = offered(&bytes, from, window.saturating_add(ask.max_records))
        .map_err(|_| ResponseError::CorruptMessage)?;
    let deliveries = entry
        .lock()
        .acquire(ask.member, ask.now_ms, &offered, ask.max_records);
    if !deliveries.is_empty() {
        entry.changed();
    }
    let ranges = ranges(&deliveries);
    let records = match (ranges.first(), ranges.last()) {
        (Some(first), Some(last)) => batches_between(&bytes, first.0, last.1),
        _ => Bytes::new(),
    };
    Ok(Acquired { records, ranges })
}

/// The records of the batches read from `from` on, in offset order, with their keys' hashes
/// and batches, whole batches until `enough` are out. Transaction markers are not records:
/// their offsets are gaps.
fn offered(
    bytes: &[u8],
    from: i64,
    enough: usize,
) -> Result<Vec<Offered>, sluice_record::RecordError> {
    let mut out = Vec::new();
    for batch in sluice_record::BatchIter::new(bytes) {
        if out.len() >= enough {
            break;
        }
        let (header, batch) = batch?;
        if header.is_control() || header.last_offset() < from {
            continue;
        }
        let batch_last_offset = header.last_offset();
        decode_records(batch, |r| {
            if r.offset >= from {
                out.push(Offered {
                    offset: r.offset,
                    key: key_hash(r.key),
                    batch_last_offset,
                });
            }
            true
        })?;
    }
    Ok(out)
}

/// A key's hash for per-key order: SipHash with fixed keys, the same on every broker and run.
fn key_hash(key: Option<&[u8]>) -> KeyHash {
    key.map(|k| {
        #[allow(deprecated)]
        let mut h = std::hash::SipHasher::new();
        k.hash(&mut h);
        h.finish()
    })
}

/// Deliveries as runs of consecutive offsets with one delivery count.
fn ranges(deliveries: &[Delivery]) -> Vec<AcquiredRange> {
    let mut out: Vec<AcquiredRange> = Vec::new();
    for d in deliveries {
        let count = i16::try_from(d.delivery_count).unwrap_or(i16::MAX);
        match out.last_mut() {
            Some(last) if last.1 + 1 == d.offset && last.2 == count => last.1 = d.offset,
            _ => out.push((d.offset, d.offset, count)),
        }
    }
    out
}

/// The run of whole batches that holds offsets `first..=last`.
fn batches_between(bytes: &Bytes, first: i64, last: i64) -> Bytes {
    let (mut start, mut end, mut position) = (None, 0, 0);
    while position < bytes.len() {
        let Ok(header) = BatchHeader::parse(&bytes[position..]) else {
            break;
        };
        let total = header.total_bytes();
        if header.last_offset() >= first && header.base_offset <= last {
            start.get_or_insert(position);
            end = position + total;
        }
        position += total;
    }
    start.map_or_else(Bytes::new, |s| bytes.slice(s..end.min(bytes.len())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deliveries_merge_into_runs_of_one_count() {
        let d = |offset, delivery_count| Delivery {
            offset,
            delivery_count,
        };
        let got = ranges(&[d(3, 1), d(4, 1), d(5, 2), d(7, 2), d(8, 2)]);
        assert_eq!(got, vec![(3, 4, 1), (5, 5, 2), (7, 8, 2)]);
    }

    #[test]
    fn only_the_batches_holding_the_range_are_kept() {
        let mut bytes = Vec::new();
        for base in [0i64, 10, 20] {
            let records: Vec<_> = (0..10)
                .map(|_| sluice_record::NewRecord {
                    key: Some(b"k"),
                    value: Some(b"v"),
                })
                .collect();
            bytes.extend(sluice_record::encode_batch(base, 0, &records));
        }
        let bytes = Bytes::from(bytes);
        let kept = batches_between(&bytes, 12, 15);
        let bases: Vec<i64> = sluice_record::BatchIter::new(&kept)
            .map(|b| b.unwrap().0.base_offset)
            .collect();
        assert_eq!(bases, vec![10]);
        let all = offered(&bytes, 0, 100).unwrap();
        assert_eq!(all.len(), 30);
        assert_eq!(all[29].offset, 29);
        assert_eq!(all[0].key, all[29].key);
        assert_eq!(
            (all[0].batch_last_offset, all[29].batch_last_offset),
            (9, 29)
        );
        // From 13, whole batches until 5 are out: the second batch's rest only.
        let some = offered(&bytes, 13, 5).unwrap();
        assert_eq!(
            some.iter().map(|o| o.offset).collect::<Vec<_>>(),
            (13..20).collect::<Vec<_>>()
        );
    }
}
