//! Helpers shared by the storage integration tests.
// Each test binary includes this module and uses a part of it.
#![allow(dead_code)]

use sluice_record::{BatchHeader, BatchIter};
use sluice_storage::{Log, LogConfig};
use std::collections::BTreeMap;

/// A log config with these overrides of Kafka's defaults.
pub fn config(pairs: &[(&str, &str)]) -> LogConfig {
    let map: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    LogConfig::from_overrides(&map).unwrap()
}

/// Every batch from the log start, each header with its bytes as stored: up to the high
/// watermark (what a consumer reads), or with `to_log_end` up to the log end (a follower).
pub fn stored_batches(log: &Log, to_log_end: bool) -> Vec<(BatchHeader, Vec<u8>)> {
    let end = if to_log_end {
        log.log_end_offset()
    } else {
        log.high_watermark()
    };
    let mut out = Vec::new();
    let mut next = log.log_start_offset();
    while next < end {
        let plan = log.read_to_log_end(next, 1 << 20, true).unwrap();
        let bytes = plan.read().unwrap();
        assert!(!bytes.is_empty(), "nothing at {next}");
        for item in BatchIter::new(&bytes) {
            let (header, stored) = item.unwrap();
            if header.last_offset() >= end {
                return out;
            }
            next = header.last_offset() + 1;
            out.push((header, stored.to_vec()));
        }
    }
    out
}

/// (base offset, last offset, leader epoch) of every batch a consumer reads.
pub fn batch_offsets(log: &Log) -> Vec<(i64, i64, i32)> {
    stored_batches(log, false)
        .iter()
        .map(|(h, _)| (h.base_offset, h.last_offset(), h.partition_leader_epoch))
        .collect()
}

/// The leader-epoch cache's entries, as (epoch, start offset).
pub fn epoch_entries(log: &Log) -> Vec<(i32, i64)> {
    log.epoch_entries()
        .iter()
        .map(|e| (e.epoch, e.start_offset))
        .collect()
}
