//! Log compaction through the public API: last value per key, tombstones, original offsets,
//! and crash safety at each step of a pass.

use sluice_record::{BatchIter, NewRecord, encode_batch_with_timestamps};
use sluice_storage::{AppendOrigin, Log, LogConfig};
use std::collections::BTreeMap;
use std::path::Path;

const NOW: i64 = 1_000_000;

fn compacted(extra: &[(&str, &str)]) -> LogConfig {
    let mut map: BTreeMap<String, String> = [
        ("cleanup.policy", "compact"),
        ("segment.bytes", "600"),
        ("min.cleanable.dirty.ratio", "0"),
        ("delete.retention.ms", "1000"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in extra {
        map.insert(k.to_string(), v.to_string());
    }
    LogConfig::from_overrides(&map).unwrap()
}

/// Appends one record per call, key `k{key}`, value `v{offset}` (or a tombstone).
fn put(log: &mut Log, key: u32, tombstone: bool, ts: i64) -> i64 {
    let key = format!("k{key}");
    let value = format!("v{}", log.log_end_offset());
    let record = NewRecord {
        key: Some(key.as_bytes()),
        value: (!tombstone).then_some(value.as_bytes()),
    };
    log.append(
        &encode_batch_with_timestamps(0, &[ts], &[record]),
        AppendOrigin::Client,
        ts,
    )
    .unwrap()
    .base_offset
}

/// (offset, key, value) of every record, reading across gaps.
fn read_all(log: &Log) -> Vec<(i64, String, Option<String>)> {
    let mut out = Vec::new();
    let mut next = log.log_start_offset();
    while next < log.high_watermark() {
        let bytes = log.read(next, 1 << 20, true).unwrap().read().unwrap();
        assert!(!bytes.is_empty(), "read at {next} returned nothing");
        for batch in BatchIter::new(&bytes) {
            let (header, batch) = batch.unwrap();
            sluice_record::decode_records(batch, |r| {
                if r.offset >= next {
                    let text = |b: &[u8]| String::from_utf8(b.to_vec()).unwrap();
                    out.push((r.offset, text(r.key.unwrap()), r.value.map(text)));
                }
                true
            })
            .unwrap();
            next = header.last_offset() + 1;
        }
    }
    out
}

/// Makes everything so far durable and checkpointed, as the broker's flusher and
/// housekeeping would.
fn flush_and_checkpoint(log: &mut Log) {
    let plan = log.flush_plan().unwrap();
    plan.execute().unwrap();
    log.mark_flushed(&plan, NOW);
    log.checkpoint(false).unwrap();
}

fn clean(log: &mut Log, now: i64) -> Option<sluice_storage::CleanStats> {
    let plan = log.clean_plan(now)?;
    let cleaned = plan.execute().unwrap();
    Some(log.install_cleaned(cleaned).unwrap())
}

/// Ten keys, each written five times over many small segments, then key 3 deleted.
fn history(dir: &Path) -> Log {
    let mut log = Log::open(dir, compacted(&[]), false, NOW).unwrap();
    for round in 0..5 {
        for key in 0..10 {
            put(&mut log, key, false, NOW + round);
        }
    }
    put(&mut log, 3, true, NOW + 10);
    // Some writes in the active segment, which compaction never touches.
    put(&mut log, 0, false, NOW + 20);
    log
}

#[test]
fn compaction_keeps_the_last_value_per_key_at_its_original_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = history(dir.path());
    assert!(log.segment_count() > 5, "the history spans many segments");
    let before = read_all(&log);
    assert!(
        log.clean_plan(NOW).is_none(),
        "nothing is cleanable above the checkpointed recovery point"
    );
    flush_and_checkpoint(&mut log);
    let stats = clean(&mut log, NOW + 100).expect("a pass is due");
    assert!(stats.records_removed > 0 && stats.bytes_after < stats.bytes_before);
    let after = read_all(&log);
    // Per key, the last record written below the active segment survives, at its offset;
    // the active segment is untouched.
    let active_base = log.active_base_offset();
    let mut expected: BTreeMap<String, (i64, Option<String>)> = BTreeMap::new();
    for (offset, key, value) in &before {
        if *offset < active_base {
            expected.insert(key.clone(), (*offset, value.clone()));
        }
    }
    let mut survivors: Vec<(i64, String, Option<String>)> =
        expected.into_iter().map(|(k, (o, v))| (o, k, v)).collect();
    survivors.extend(before.iter().filter(|r| r.0 >= active_base).cloned());
    survivors.sort();
    assert_eq!(after, survivors);
    assert!(
        after.len() < before.len() / 2,
        "{} of {} left",
        after.len(),
        before.len()
    );
    assert_eq!(log.log_end_offset(), 52, "offsets are never renumbered");

    // Past delete.retention.ms, the tombstone goes too, and the key with it.
    let stats = clean(&mut log, NOW + 10 + 1_000).map(|s| s.records_removed);
    assert!(stats.is_none(), "no dirty bytes: nothing new to clean");
    put(&mut log, 9, false, NOW + 2_000);
    put(&mut log, 5, true, NOW + 2_000);
    for _ in 0..12 {
        put(&mut log, 7, false, NOW + 2_000); // roll past the new writes
    }
    flush_and_checkpoint(&mut log);
    clean(&mut log, NOW + 2_500).expect("the new writes are dirty");
    let left = read_all(&log);
    assert!(
        !left.iter().any(|(_, k, _)| k == "k3"),
        "k3's tombstone is past delete.retention.ms, so k3 is gone: {left:?}"
    );
    let k5: Vec<_> = left.iter().filter(|(_, k, _)| k == "k5").collect();
    assert!(
        k5.len() == 1 && k5[0].2.is_none(),
        "k5's recent tombstone stays, its value goes: {k5:?}"
    );
}

#[test]
fn cleaned_segments_survive_a_crash_and_leftovers_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = history(dir.path());
    flush_and_checkpoint(&mut log);
    clean(&mut log, NOW + 100).unwrap();
    let after = read_all(&log);
    // A crash mid-pass leaves a .cleaned file behind; and the process dies without a clean
    // shutdown, so recovery runs. Neither may lose a record or replay the garbage.
    std::fs::write(
        dir.path().join("00000000000000000000.log.cleaned"),
        b"half-written",
    )
    .unwrap();
    drop(log);
    let log = Log::open(dir.path(), compacted(&[]), false, NOW).unwrap();
    assert_eq!(read_all(&log), after);
    assert!(!dir.path().join("00000000000000000000.log.cleaned").exists());
}

#[test]
fn a_crash_between_the_rename_and_the_new_indexes_rebuilds_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = history(dir.path());
    flush_and_checkpoint(&mut log);
    clean(&mut log, NOW + 100).unwrap();
    let after = read_all(&log);
    drop(log);
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path
            .extension()
            .is_some_and(|e| e == "index" || e == "timeindex")
        {
            std::fs::remove_file(path).unwrap();
        }
    }
    let log = Log::open(dir.path(), compacted(&[]), false, NOW).unwrap();
    assert_eq!(read_all(&log), after);
}

#[test]
fn the_dirty_ratio_and_the_compaction_lag_hold_a_pass_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(
        dir.path(),
        compacted(&[("min.compaction.lag.ms", "500")]),
        false,
        NOW,
    )
    .unwrap();
    for round in 0..5 {
        for key in 0..10 {
            put(&mut log, key, false, NOW + round);
        }
    }
    flush_and_checkpoint(&mut log);
    assert!(
        log.clean_plan(NOW + 100).is_none(),
        "younger than min.compaction.lag.ms"
    );
    assert!(log.clean_plan(NOW + 600).is_some());
    let dir2 = tempfile::tempdir().unwrap();
    let mut strict = Log::open(
        dir2.path(),
        compacted(&[("min.cleanable.dirty.ratio", "0.9")]),
        false,
        NOW,
    )
    .unwrap();
    for key in 0..40 {
        put(&mut strict, key, false, NOW);
    }
    flush_and_checkpoint(&mut strict);
    clean(&mut strict, NOW).expect("all dirty: ratio 1");
    for key in 0..4 {
        put(&mut strict, key, false, NOW);
    }
    for key in 40..44 {
        put(&mut strict, key, false, NOW); // roll the new writes out of the active segment
    }
    flush_and_checkpoint(&mut strict);
    assert!(
        strict.clean_plan(NOW).is_none(),
        "a little dirt is below the 0.9 ratio"
    );
}

#[test]
fn a_compacted_topic_refuses_records_without_keys() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), compacted(&[]), false, NOW).unwrap();
    let keyless = NewRecord {
        key: None,
        value: Some(b"v"),
    };
    let err = log
        .append(
            &encode_batch_with_timestamps(0, &[NOW], &[keyless]),
            AppendOrigin::Client,
            NOW,
        )
        .unwrap_err();
    assert!(err.to_string().contains("without a key"), "{err}");
    assert_eq!(log.log_end_offset(), 0);
}

#[test]
fn an_expiring_tombstone_makes_a_pass_due_without_new_writes() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), compacted(&[]), false, NOW).unwrap();
    put(&mut log, 1, false, NOW);
    put(&mut log, 1, true, NOW);
    for key in 100..120 {
        put(&mut log, key, false, NOW); // roll both out of the active segment
    }
    flush_and_checkpoint(&mut log);
    clean(&mut log, NOW + 10).expect("dirty");
    assert!(
        read_all(&log)
            .iter()
            .any(|(_, k, v)| k == "k1" && v.is_none())
    );
    assert!(
        log.clean_plan(NOW + 999).is_none(),
        "nothing dirty, tombstone still young"
    );
    clean(&mut log, NOW + 1_000).expect("the tombstone's time has come");
    assert!(!read_all(&log).iter().any(|(_, k, _)| k == "k1"));
}

fn log_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_str().unwrap().ends_with(".log"))
        .map(|e| {
            (
                e.file_name().into_string().unwrap(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

/// Compacts `history` once, then writes a little more, so that a second pass has small
/// cleaned segments to merge.
fn merged_history(dir: &Path) -> Log {
    let mut log = history(dir);
    flush_and_checkpoint(&mut log);
    clean(&mut log, NOW + 100).unwrap();
    for key in 0..12 {
        put(&mut log, key, false, NOW + 200);
    }
    flush_and_checkpoint(&mut log);
    log
}

#[test]
fn small_cleaned_segments_are_merged() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = merged_history(dir.path());
    let before = log.segment_count();
    let stats = clean(&mut log, NOW + 300).expect("dirty again");
    assert!(stats.segments > 1);
    assert!(
        log.segment_count() < before,
        "{} segments after, {before} before",
        log.segment_count()
    );
    let after = read_all(&log);
    drop(log);
    let reopened = Log::open(dir.path(), compacted(&[]), false, NOW).unwrap();
    assert_eq!(read_all(&reopened), after);
}

#[test]
fn a_crash_in_the_middle_of_a_merge_is_finished_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = merged_history(dir.path());
    let copy = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), copy.path().join(entry.file_name())).unwrap();
    }
    let files_before = log_files(dir.path());
    clean(&mut log, NOW + 300).unwrap();
    let expected = read_all(&log);
    let files_after = log_files(dir.path());
    // Recreate, in the copy, the state right after step 2 of a swap: the merged segment as
    // `<first>.log.swap` with its marker, every original still in place.
    let gone: Vec<&String> = files_before
        .keys()
        .filter(|n| !files_after.contains_key(*n))
        .collect();
    assert!(!gone.is_empty(), "the pass merged segments");
    let first = files_after
        .keys()
        .rfind(|n| *n < gone[0])
        .expect("the merged segment keeps the first name")
        .clone();
    let base = |n: &str| n.trim_end_matches(".log").parse::<i64>().unwrap();
    let last = gone.iter().map(|n| base(n)).max().unwrap();
    std::fs::write(
        copy.path().join(format!("{first}.swap")),
        &files_after[&first],
    )
    .unwrap();
    std::fs::write(
        copy.path().join(format!("{:020}.swap-end", base(&first))),
        format!("{last}\n"),
    )
    .unwrap();
    let recovered = read_all(&Log::open(copy.path(), compacted(&[]), false, NOW).unwrap());
    // Other segments of that pass may not have been swapped yet: they hold their older,
    // uncompacted records. Nothing compaction keeps is lost, nothing is duplicated, and the
    // last value of every key is the same.
    let offsets: Vec<i64> = recovered.iter().map(|r| r.0).collect();
    assert!(offsets.windows(2).all(|w| w[0] < w[1]), "{offsets:?}");
    for record in &expected {
        assert!(recovered.contains(record), "{record:?} lost");
    }
    let last = |records: &[(i64, String, Option<String>)]| -> BTreeMap<String, Option<String>> {
        records
            .iter()
            .map(|(_, k, v)| (k.clone(), v.clone()))
            .collect()
    };
    assert_eq!(last(&recovered), last(&expected));
    let leftovers: Vec<_> = std::fs::read_dir(copy.path())
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().into_string().ok())
        .filter(|n| n.contains("swap"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn compaction_progress_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = history(dir.path());
    flush_and_checkpoint(&mut log);
    clean(&mut log, NOW + 100).expect("a first pass");
    assert!(log.clean_plan(NOW + 100).is_none(), "nothing left to do");
    log.checkpoint(true).unwrap();
    drop(log);
    let reopened = Log::open(dir.path(), compacted(&[]), true, NOW).unwrap();
    assert!(
        reopened.clean_plan(NOW + 100).is_none(),
        "the restarted log knows what was compacted"
    );
}

/// A transactional write of key `k{key}` by producer `pid` (the broker vouched for it).
fn put_in_transaction(log: &mut Log, pid: i64, seq: i32, key: u32, ts: i64) -> i64 {
    let key = format!("k{key}");
    let value = format!("txn-v{}", log.log_end_offset());
    let record = NewRecord {
        key: Some(key.as_bytes()),
        value: Some(value.as_bytes()),
    };
    let batch = sluice_record::testing::with_producer(
        encode_batch_with_timestamps(0, &[ts], &[record]),
        pid,
        0,
        seq,
        true,
    );
    log.append(&batch, AppendOrigin::ClientInTransaction, ts)
        .unwrap()
        .base_offset
}

fn end_transaction(log: &mut Log, pid: i64, commit: bool, ts: i64) {
    let marker = sluice_record::ControlMarker {
        commit,
        coordinator_epoch: 0,
    };
    let batch = sluice_record::encode_marker_batch(pid, 0, marker, ts);
    log.append(&batch, AppendOrigin::Broker, ts).unwrap();
}

#[test]
fn an_aborted_write_never_replaces_the_committed_value_and_open_transactions_are_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), compacted(&[]), true, NOW).unwrap();
    let committed = put(&mut log, 1, false, NOW);
    put_in_transaction(&mut log, 7, 0, 1, NOW);
    end_transaction(&mut log, 7, false, NOW);
    put_in_transaction(&mut log, 8, 0, 2, NOW);
    end_transaction(&mut log, 8, true, NOW);
    for i in 0..20 {
        put(&mut log, 100 + i, false, NOW);
    }
    // Producer 9's transaction stays open: nothing from it on may be compacted.
    let open_at = put_in_transaction(&mut log, 9, 0, 2, NOW);
    for i in 0..20 {
        put(&mut log, 100 + i, false, NOW);
    }
    flush_and_checkpoint(&mut log);
    assert!(clean(&mut log, NOW + 10).is_some());
    let records = read_all(&log);
    let values_of = |key: &str| -> Vec<Option<String>> {
        records
            .iter()
            .filter(|(_, k, _)| k == key)
            .map(|(_, _, v)| v.clone())
            .collect()
    };
    assert_eq!(values_of("k1"), vec![Some(format!("v{committed}"))]);
    assert_eq!(
        values_of("k2").len(),
        2,
        "the committed and the open transaction's write"
    );
    assert!(
        records.iter().any(|(o, _, _)| *o == open_at),
        "the open transaction is untouched"
    );
    // Keys 100.. were written twice, the second time above the open transaction: compaction
    // did not look there, so both copies remain until the transaction ends.
    assert_eq!(values_of("k100").len(), 2);
}
