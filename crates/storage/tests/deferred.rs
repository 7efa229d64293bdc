//! No fsync under the partition lock on the produce path: a roll writes the sealed segment's
//! indexes without fsyncing them and leaves its producer snapshot to the next flush; until a
//! flush has fsynced those indexes, the recovery point stays at or below the segment, so a
//! crash re-verifies it instead of trusting files that may not be on disk; a truncation
//! between a flush's plan and its completion discards the snapshot it planned.

mod common;

use common::{batch_offsets, config};
use sluice_record::testing::{build_batch, with_producer};
use sluice_storage::{AppendOrigin, Log, LogConfig};
use std::path::Path;

fn small_segments() -> LogConfig {
    config(&[("segment.bytes", "300")])
}

fn open(dir: &Path) -> Log {
    Log::open(dir, small_segments(), false, 0).unwrap()
}

/// Appends one producer batch of 3 records; returns whether the log rolled on the way.
fn append(log: &mut Log, seq: i32) -> bool {
    let before = log.active_base_offset();
    let values: Vec<Vec<u8>> = (0..3)
        .map(|i| format!("value-{seq}-{i}").into_bytes())
        .collect();
    let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
    let batch = with_producer(build_batch(0, &[1; 3], &refs), 9, 0, seq, false);
    log.append(&batch, AppendOrigin::Client, 0).unwrap();
    log.active_base_offset() != before
}

/// Appends until the log rolls; returns the sequence to use next.
fn append_until_roll(log: &mut Log, mut seq: i32) -> i32 {
    loop {
        let rolled = append(log, seq);
        seq += 3;
        if rolled {
            return seq;
        }
    }
}

fn flush(log: &mut Log) {
    let plan = log.flush_plan().expect("something to flush");
    plan.execute().unwrap();
    log.mark_flushed(&plan, 0);
}

fn files_ending(dir: &Path, suffix: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(suffix))
        .collect();
    names.sort();
    names
}

fn offsets_readable(log: &Log) -> Vec<i64> {
    batch_offsets(log)
        .into_iter()
        .flat_map(|(base, last, _)| base..=last)
        .collect()
}

#[test]
fn a_roll_leaves_its_snapshot_to_the_next_flush() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    append_until_roll(&mut log, 0);
    assert!(
        files_ending(dir.path(), ".snapshot").is_empty(),
        "not under the lock"
    );
    // The flush snapshots the producer state as of its plan: the log end.
    let end = log.log_end_offset();
    flush(&mut log);
    assert_eq!(
        files_ending(dir.path(), ".snapshot"),
        [format!("{end:020}.snapshot")]
    );
    assert!(files_ending(dir.path(), ".pending").is_empty());
    assert_eq!(log.recovery_point(), log.log_end_offset());
}

fn checkpointed_recovery_point(dir: &Path) -> i64 {
    let text = std::fs::read_to_string(dir.join("recovery-point")).unwrap();
    text.trim().parse().unwrap()
}

/// Appends until the log rolls, then one batch more; the next batch would roll again.
fn fill_to_the_brim(log: &mut Log, seq: i32) -> i32 {
    let seq = append_until_roll(log, seq);
    assert!(!append(log, seq), "two batches fit a segment");
    seq + 3
}

#[test]
fn a_checkpoint_waits_for_a_sealed_segments_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    let seq = fill_to_the_brim(&mut log, 0);
    flush(&mut log);
    let sealing = log.active_base_offset();
    assert!(append(&mut log, seq), "the third batch rolls");
    // The data of the sealed segment is fsynced, its indexes not yet: the checkpoint may not
    // let a crash trust them.
    log.checkpoint(false).unwrap();
    assert!(checkpointed_recovery_point(dir.path()) <= sealing);
    flush(&mut log);
    log.checkpoint(false).unwrap();
    assert_eq!(
        checkpointed_recovery_point(dir.path()),
        log.log_end_offset()
    );
}

#[test]
fn a_crash_before_the_indexes_are_synced_rebuilds_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    let seq = fill_to_the_brim(&mut log, 0);
    flush(&mut log);
    log.checkpoint(false).unwrap();
    let sealed = log.active_base_offset();
    assert!(append(&mut log, seq));
    flush(&mut log); // the new batch's data, and the seal's indexes too...
    let expected = offsets_readable(&log);
    drop(log); // ...but the checkpoint before the crash was written before them.
    // What an unsynced index file may hold after a power failure: garbage.
    std::fs::write(dir.path().join(format!("{sealed:020}.index")), [0xff; 24]).unwrap();
    std::fs::write(
        dir.path().join(format!("{sealed:020}.timeindex")),
        [0xff; 36],
    )
    .unwrap();
    let log = open(dir.path());
    assert_eq!(offsets_readable(&log), expected);
}

#[test]
fn a_truncation_discards_the_snapshot_a_flush_planned_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open_replica(dir.path(), small_segments(), false, 0).unwrap();
    let seq = append_until_roll(&mut log, 0);
    append(&mut log, seq);
    let plan = log.flush_plan().unwrap();
    let planned_at = log.log_end_offset();
    log.truncate_to(planned_at - 3, 0).unwrap();
    plan.execute().unwrap();
    log.mark_flushed(&plan, 0);
    assert!(
        !files_ending(dir.path(), ".snapshot").contains(&format!("{planned_at:020}.snapshot")),
        "a snapshot of a cut tail must not land"
    );
    assert!(files_ending(dir.path(), ".pending").is_empty());
}

#[test]
fn delete_records_is_durable_when_it_answers_and_retention_needs_no_fsync() {
    use sluice_storage::LogManager;
    use std::collections::BTreeMap;
    let dir = tempfile::tempdir().unwrap();
    {
        let logs = LogManager::open(dir.path(), 0).unwrap();
        let overrides = BTreeMap::from([("segment.bytes".to_string(), "300".to_string())]);
        let topic = logs.create_topic("t", 1, overrides, 0).unwrap();
        let partition = topic.partition(0).unwrap();
        for seq in (0..60).step_by(3) {
            append(&mut partition.log(), seq);
        }
        assert_eq!(partition.delete_records_before(Some(31)).unwrap(), 31);
        // No flush, no checkpoint, no clean shutdown: a crash right after the answer.
    }
    let logs = LogManager::open(dir.path(), 0).unwrap();
    let partition = logs.partition("t", 0).unwrap();
    assert_eq!(partition.log().log_start_offset(), 31);
}

#[test]
fn a_start_moved_by_retention_and_lost_in_a_crash_is_the_first_segments_base() {
    let dir = tempfile::tempdir().unwrap();
    let retained = config(&[("segment.bytes", "300"), ("retention.bytes", "600")]);
    let first_base = {
        let mut log = Log::open(dir.path(), retained.clone(), false, 0).unwrap();
        for seq in (0..60).step_by(3) {
            append(&mut log, seq);
        }
        assert!(log.apply_retention(0).unwrap() > 0);
        log.log_start_offset()
        // A crash before any checkpoint wrote the new start.
    };
    assert!(first_base > 0);
    let log = Log::open(dir.path(), retained, false, 0).unwrap();
    assert_eq!(log.log_start_offset(), first_base);
    assert_eq!(offsets_readable(&log)[0], first_base);
}
