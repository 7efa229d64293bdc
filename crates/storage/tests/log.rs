//! Storage tests through the public API: append, read, roll, retention, recovery, truncation.

mod common;

use common::config;
use sluice_record::BatchIter;
use sluice_record::testing::build_batch;
use sluice_storage::{AppendOrigin, Log, LogConfig, LogManager};
use std::collections::BTreeMap;
use std::path::Path;

/// Offsets and values of every record readable from `from`, following reads to the end.
fn read_all(log: &Log, from: i64) -> Vec<(i64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut next = from;
    while next < log.high_watermark() {
        let bytes = log.read(next, 1 << 20, true).unwrap().read().unwrap();
        assert!(
            !bytes.is_empty(),
            "read at {next} below the high watermark returned nothing"
        );
        for batch in BatchIter::new(&bytes) {
            let (header, batch) = batch.unwrap();
            sluice_record::decode_records(batch, |r| {
                if r.offset >= next {
                    out.push((r.offset, r.value.unwrap().to_vec()));
                }
                true
            })
            .unwrap();
            next = header.last_offset() + 1;
        }
    }
    out
}

fn value(i: i64) -> Vec<u8> {
    format!("value-{i}").into_bytes()
}

fn append_n(log: &mut Log, n: i64, per_batch: i64, ts: i64) {
    let mut i = log.log_end_offset();
    let end = i + n;
    while i < end {
        let k = per_batch.min(end - i);
        let values: Vec<Vec<u8>> = (i..i + k).map(value).collect();
        let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
        let stamps: Vec<i64> = (i..i + k).map(|o| ts + o).collect();
        let info = log
            .append(&build_batch(0, &stamps, &refs), AppendOrigin::Client, ts)
            .unwrap();
        assert_eq!(info.base_offset, i);
        i += k;
    }
}

#[test]
fn appended_records_read_back_in_order_across_segment_rolls() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(
        dir.path(),
        config(&[("segment.bytes", "2000"), ("index.interval.bytes", "100")]),
        true,
        0,
    )
    .unwrap();
    append_n(&mut log, 500, 3, 1000);
    assert!(
        log.segment_count() > 5,
        "segments should roll at 2000 bytes"
    );
    let all = read_all(&log, 0);
    assert_eq!(all.len(), 500);
    for (i, (offset, v)) in all.iter().enumerate() {
        assert_eq!(*offset, i as i64);
        assert_eq!(v, &value(i as i64));
    }
    // Starting mid-batch returns the batch holding the offset, and nothing before it.
    assert_eq!(read_all(&log, 251)[0].0, 251);
}

#[test]
fn reads_respect_max_bytes_but_always_return_one_batch() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default(), true, 0).unwrap();
    append_n(&mut log, 10, 5, 0);
    let one = log.read(0, 1, true).unwrap().read().unwrap();
    assert_eq!(BatchIter::new(&one).count(), 1);
    assert!(log.read(0, 1, false).unwrap().read().unwrap().is_empty());
    assert_eq!(
        BatchIter::new(&log.read(0, 1 << 20, false).unwrap().read().unwrap()).count(),
        2
    );
    assert!(
        log.read(10, 1 << 20, false)
            .unwrap()
            .read()
            .unwrap()
            .is_empty()
    );
    assert!(
        log.read(11, 1 << 20, false).is_err(),
        "past the end is out of range"
    );
}

#[test]
fn corrupt_or_oversized_batches_are_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), config(&[("max.message.bytes", "200")]), true, 0).unwrap();
    let mut bad = build_batch(0, &[1], &[b"payload"]);
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    assert!(log.append(&bad, AppendOrigin::Client, 0).is_err());
    let big = build_batch(0, &[1], &[&[7u8; 300]]);
    assert!(matches!(
        log.append(&big, AppendOrigin::Client, 0),
        Err(sluice_storage::StorageError::BatchTooLarge { .. })
    ));
    assert_eq!(log.log_end_offset(), 0);
    assert_eq!(log.size_bytes(), 0);
}

#[test]
fn restart_after_clean_shutdown_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = Log::open(dir.path(), config(&[("segment.bytes", "3000")]), true, 0).unwrap();
        append_n(&mut log, 300, 4, 0);
        log.checkpoint(true).unwrap();
    }
    let log = Log::open(dir.path(), config(&[("segment.bytes", "3000")]), true, 0).unwrap();
    assert_eq!(log.log_end_offset(), 300);
    assert_eq!(read_all(&log, 0).len(), 300);
}

/// The crash test: for every byte position inside the last batch, cut the file there (or
/// garble the byte there) and check that recovery keeps exactly the complete batches before.
/// The leader-epoch checkpoint stays beside the segment, as a crash leaves it.
///
/// The one exception is the base offset field, which the CRC does not cover: recovery accepts
/// gaps in offsets (a replica's copy of compacted batches has them), so a garble there that
/// still names a later offset within the segment's reach reads as a gap before an intact
/// batch, as it would in Kafka. It must still never step back or reach past the segment.
#[test]
fn recovery_keeps_exactly_the_complete_batches_before_a_torn_or_garbled_tail() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p");
    let (full, good_len, epochs) = {
        let mut log = Log::open(&path, LogConfig::default(), true, 0).unwrap();
        append_n(&mut log, 20, 4, 0);
        let good_len = log.size_bytes() as usize;
        append_n(&mut log, 3, 3, 0);
        drop(log);
        (
            std::fs::read(path.join("00000000000000000000.log")).unwrap(),
            good_len,
            std::fs::read(path.join("leader-epoch-checkpoint")).unwrap(),
        )
    };
    let base_offset_field = good_len..good_len + 8;
    for cut in good_len..full.len() {
        for garble in [false, true] {
            let bytes: Vec<u8> = if garble {
                let mut b = full.clone();
                b[cut] ^= 0x5a;
                b
            } else {
                full[..cut].to_vec()
            };
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).unwrap();
            std::fs::write(path.join("00000000000000000000.log"), &bytes).unwrap();
            std::fs::write(path.join("leader-epoch-checkpoint"), &epochs).unwrap();
            let log = Log::open(&path, LogConfig::default(), false, 0).unwrap();
            let all = read_all(&log, 0);
            if garble && base_offset_field.contains(&cut) && log.log_end_offset() != 20 {
                let garbled_base =
                    i64::from_be_bytes(bytes[good_len..good_len + 8].try_into().unwrap());
                assert!(
                    garbled_base > 20 && garbled_base - 20 < i64::from(u32::MAX),
                    "cut={cut}"
                );
                assert_eq!(log.log_end_offset(), garbled_base + 3, "cut={cut}");
                assert_eq!(all.len(), 23);
                assert_eq!(
                    all[..20].iter().map(|r| r.0).collect::<Vec<_>>(),
                    (0..20).collect::<Vec<_>>()
                );
                continue;
            }
            assert_eq!(log.log_end_offset(), 20, "cut={cut} garble={garble}");
            assert_eq!(log.size_bytes() as usize, good_len);
            assert_eq!(all.len(), 20);
        }
    }
}

#[test]
fn recovery_rebuilds_missing_or_damaged_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&[("segment.bytes", "2000"), ("index.interval.bytes", "50")]);
    {
        let mut log = Log::open(dir.path(), cfg.clone(), true, 0).unwrap();
        append_n(&mut log, 200, 2, 0);
        log.checkpoint(true).unwrap();
    }
    let mut n = 0;
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let p = entry.unwrap().path();
        match p.extension().and_then(|e| e.to_str()) {
            Some("index") if n % 2 == 0 => {
                std::fs::remove_file(&p).unwrap();
                n += 1;
            }
            Some("index") => {
                std::fs::write(&p, b"garbage").unwrap();
                n += 1;
            }
            _ => {}
        }
    }
    assert!(n > 2);
    let log = Log::open(dir.path(), cfg, true, 0).unwrap();
    assert_eq!(read_all(&log, 0).len(), 200);
    assert_eq!(read_all(&log, 133)[0].0, 133);
}

#[test]
fn retention_by_bytes_and_time_deletes_whole_closed_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(
        dir.path(),
        config(&[("segment.bytes", "1000"), ("retention.bytes", "3000")]),
        true,
        0,
    )
    .unwrap();
    append_n(&mut log, 300, 2, 0);
    let before = log.segment_count();
    assert!(log.apply_retention(0).unwrap() > 0);
    assert!(log.segment_count() < before);
    assert!(log.size_bytes() < 3000 + 1000);
    let start = log.log_start_offset();
    assert!(start > 0);
    assert_eq!(read_all(&log, start).first().unwrap().0, start);
    assert!(log.read(start - 1, 100, true).is_err());

    log.set_config(config(&[
        ("segment.bytes", "1000"),
        ("retention.ms", "100"),
    ]));
    // Timestamps are ts + offset = offset; at now = 1_000_000 everything is expired.
    log.apply_retention(1_000_000).unwrap();
    assert_eq!(log.log_start_offset(), 300);
    assert_eq!(log.log_end_offset(), 300);
}

#[test]
fn delete_records_moves_the_log_start_offset_and_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = Log::open(dir.path(), config(&[("segment.bytes", "1000")]), true, 0).unwrap();
        append_n(&mut log, 100, 2, 0);
        assert_eq!(log.delete_records_before(57).unwrap(), 57);
        assert!(log.delete_records_before(101).is_err());
        assert_eq!(read_all(&log, 57)[0].0, 57);
        log.checkpoint(true).unwrap();
    }
    let log = Log::open(dir.path(), config(&[("segment.bytes", "1000")]), true, 0).unwrap();
    assert_eq!(log.log_start_offset(), 57);
}

#[test]
fn offsets_for_timestamps_find_the_first_record_at_or_after() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(
        dir.path(),
        config(&[("segment.bytes", "1000"), ("index.interval.bytes", "10")]),
        true,
        0,
    )
    .unwrap();
    append_n(&mut log, 100, 3, 5000); // record at offset o has timestamp 5000 + o
    assert_eq!(log.offset_for_timestamp(0).unwrap(), Some((0, 5000)));
    assert_eq!(log.offset_for_timestamp(5042).unwrap(), Some((42, 5042)));
    assert_eq!(log.offset_for_timestamp(5099).unwrap(), Some((99, 5099)));
    assert_eq!(log.offset_for_timestamp(5100).unwrap(), None);
}

#[test]
fn truncate_to_removes_the_tail_and_appends_continue_from_there() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), config(&[("segment.bytes", "1000")]), true, 0).unwrap();
    append_n(&mut log, 100, 2, 0);
    log.truncate_to(40, 0).unwrap();
    assert_eq!(log.log_end_offset(), 40);
    append_n(&mut log, 10, 2, 0);
    let all = read_all(&log, 0);
    assert_eq!(all.len(), 50);
    assert!(all.iter().enumerate().all(|(i, (o, _))| *o == i as i64));
}

#[test]
fn fsync_bookkeeping_tracks_the_recovery_point() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(
        dir.path(),
        config(&[("flush.messages", "5"), ("flush.ms", "100000")]),
        true,
        0,
    )
    .unwrap();
    append_n(&mut log, 3, 3, 0);
    assert!(!log.flush_due(1));
    append_n(&mut log, 3, 3, 0);
    assert!(log.flush_due(1));
    let plan = log.flush_plan().unwrap();
    plan.execute().unwrap();
    log.mark_flushed(&plan, 1);
    assert_eq!(log.recovery_point(), 6);
    assert!(!log.flush_due(2));
}

fn topic_names(m: &LogManager) -> Vec<String> {
    m.topics().iter().map(|t| t.name().to_string()).collect()
}

#[test]
fn the_manager_persists_topics_configs_and_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let data: &Path = dir.path();
    {
        let m = LogManager::open(data, 0).unwrap();
        let configs = [("retention.ms".to_string(), "-1".to_string())].into();
        m.create_topic("orders", 3, configs, 0).unwrap();
        m.create_topic("gone", 1, BTreeMap::new(), 0).unwrap();
        assert!(m.create_topic("orders", 1, BTreeMap::new(), 0).is_err());
        assert!(m.create_topic("bad/name", 1, BTreeMap::new(), 0).is_err());
        m.partition("orders", 2)
            .unwrap()
            .append(&build_batch(0, &[1], &[b"x"]), AppendOrigin::Client, 0)
            .unwrap();
        m.create_partitions("orders", 5, false, 0).unwrap();
        m.delete_topic("gone").unwrap();
        assert!(
            LogManager::open(data, 0).is_err(),
            "the data directory is locked"
        );
        m.shutdown(0).unwrap();
    }
    let m = LogManager::open(data, 0).unwrap();
    assert!(m.clean_start());
    assert_eq!(topic_names(&m), vec!["orders"]);
    let t = m.topic("orders").unwrap();
    assert_eq!(t.partition_count(), 5);
    assert_eq!(t.overrides().get("retention.ms").unwrap(), "-1");
    assert_eq!(m.partition("orders", 2).unwrap().log().log_end_offset(), 1);
}

#[test]
fn a_broker_holds_any_set_of_a_topics_partitions_and_reads_old_topic_files() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let id = uuid::Uuid::new_v4();
    {
        let m = LogManager::open(data, 0).unwrap();
        m.create_topic_replicas("placed", id, &[1, 4], BTreeMap::new(), 0)
            .unwrap();
        m.add_partitions("placed", &[4, 7], 0).unwrap();
        m.shutdown(0).unwrap();
    }
    // A topic.json written before clusters: a partition count.
    let old = data.join("topics").join("old");
    std::fs::create_dir_all(&old).unwrap();
    let json = format!(
        r#"{{"id": "{}", "partitions": 2, "configs": {{}}}}"#,
        uuid::Uuid::new_v4()
    );
    std::fs::write(old.join("topic.json"), json).unwrap();
    let m = LogManager::open(data, 0).unwrap();
    let placed = m.topic("placed").unwrap();
    assert_eq!(placed.id(), id);
    assert_eq!(placed.partition_indexes(), vec![1, 4, 7]);
    assert!(m.partition("placed", 0).is_err());
    assert_eq!(m.topic("old").unwrap().partition_indexes(), vec![0, 1]);
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Whatever the batch sizes, segment size and index interval, every appended record
        /// reads back once, in order, from any starting offset, before and after a crash
        /// recovery of the whole log.
        #[test]
        fn appends_read_back_from_any_offset_and_survive_recovery(
            batches in proptest::collection::vec(1usize..12, 1..40),
            segment_bytes in 200u64..3000,
            index_interval in 0u32..2000,
            start_fraction in 0.0f64..1.0,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let cfg = config(&[
                ("segment.bytes", &segment_bytes.to_string()),
                ("index.interval.bytes", &index_interval.to_string()),
            ]);
            let mut log = Log::open(dir.path(), cfg.clone(), true, 0).unwrap();
            for n in &batches {
                append_n(&mut log, *n as i64, *n as i64, 0);
            }
            let total: i64 = batches.iter().map(|n| *n as i64).sum();
            let start = ((total as f64) * start_fraction) as i64;
            let expect: Vec<i64> = (start..total).collect();
            let got: Vec<i64> = read_all(&log, start).into_iter().map(|(o, _)| o).collect();
            prop_assert_eq!(&got, &expect);
            drop(log);
            let recovered = Log::open(dir.path(), cfg, false, 0).unwrap();
            prop_assert_eq!(recovered.log_end_offset(), total);
            let got: Vec<i64> = read_all(&recovered, start).into_iter().map(|(o, _)| o).collect();
            prop_assert_eq!(got, expect);
        }
    }
}

#[test]
fn a_failed_fsync_takes_the_log_offline_for_good() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default(), true, 0).unwrap();
    append_n(&mut log, 5, 5, 0);
    let plan = log.flush_plan().unwrap();
    log.mark_flush_failed(&plan, &std::io::Error::other("injected EIO"));
    assert!(log.is_offline());
    assert_eq!(
        log.recovery_point(),
        0,
        "the failed flush made nothing durable"
    );
    let batch = build_batch(0, &[1], &[b"x"]);
    assert!(matches!(
        log.append(&batch, AppendOrigin::Client, 0),
        Err(sluice_storage::StorageError::Offline(_))
    ));
    assert!(matches!(
        log.read(0, 100, true),
        Err(sluice_storage::StorageError::Offline(_))
    ));
}
