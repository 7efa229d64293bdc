//! Leader epochs in the log: batches of any epoch the log has had survive a crash, the
//! leader-epoch cache follows appends, truncation and the log start offset, is rebuilt from the
//! batches when its file is lost, and offsets with gaps (a replica's copy of compacted data)
//! survive recovery.

mod common;

use common::{batch_offsets as batches, config, epoch_entries as entries};
use sluice_record::BatchIter;
use sluice_record::testing::build_batch;
use sluice_storage::{AppendOrigin, Log, LogConfig};
use std::path::Path;

const CHECKPOINT: &str = "leader-epoch-checkpoint";

fn small_segments() -> LogConfig {
    config(&[("segment.bytes", "500")])
}

/// Appends `n` records in batches of 5.
fn append_n(log: &mut Log, n: i64) {
    for _ in 0..n / 5 {
        let at = log.log_end_offset();
        let values: Vec<Vec<u8>> = (at..at + 5).map(|i| format!("v{i}").into_bytes()).collect();
        let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
        let info = log
            .append(&build_batch(0, &[at; 5], &refs), AppendOrigin::Client, at)
            .unwrap();
        assert_eq!(info.base_offset, at);
    }
}

/// Opens the log as after a crash: no clean-shutdown mark, so every segment is verified.
fn reopen_after_crash(dir: &Path) -> Log {
    Log::open(dir, small_segments(), false, 0).unwrap()
}

#[test]
fn batches_of_a_later_epoch_survive_a_crash_and_the_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_segments(), false, 0).unwrap();
    assert_eq!(log.leader_epoch(), 0);
    append_n(&mut log, 50);
    log.become_leader(3).unwrap();
    append_n(&mut log, 50);
    assert!(log.segment_count() > 3);
    let before = batches(&log);
    assert!(before.iter().any(|b| b.2 == 3) && before.iter().any(|b| b.2 == 0));
    drop(log); // no checkpoint, no clean shutdown
    let log = reopen_after_crash(dir.path());
    assert_eq!(log.log_end_offset(), 100);
    assert_eq!(batches(&log), before);
    assert_eq!(log.leader_epoch(), 3);
    assert_eq!(entries(&log), [(0, 0), (3, 50)]);
    assert_eq!(log.end_offset_for_epoch(0), (0, 50));
    assert_eq!(log.end_offset_for_epoch(3), (3, 100));
    assert_eq!(log.end_offset_for_epoch(1), (0, 50));
}

#[test]
fn the_cache_is_rebuilt_from_the_batches_when_its_file_is_lost_or_damaged() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_segments(), false, 0).unwrap();
    append_n(&mut log, 20);
    log.become_leader(2).unwrap();
    append_n(&mut log, 20);
    log.become_leader(7).unwrap();
    append_n(&mut log, 20);
    let expected = entries(&log);
    assert_eq!(expected, [(0, 0), (2, 20), (7, 40)]);
    drop(log);
    let path = dir.path().join(CHECKPOINT);
    std::fs::remove_file(&path).unwrap();
    let log = reopen_after_crash(dir.path());
    assert_eq!(entries(&log), expected);
    assert_eq!(log.leader_epoch(), 7);
    drop(log);
    std::fs::write(&path, "0\n2\n9 0\n4 5\n").unwrap();
    let log = Log::open(dir.path(), small_segments(), true, 0).unwrap();
    assert_eq!(entries(&log), expected);
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "0\n3\n0 0\n2 20\n7 40\n"
    );
}

#[test]
fn an_epoch_without_batches_yet_is_kept_and_not_handed_out_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_segments(), false, 0).unwrap();
    append_n(&mut log, 10);
    log.become_leader(4).unwrap();
    drop(log);
    let mut log = reopen_after_crash(dir.path());
    assert_eq!(log.leader_epoch(), 4);
    assert_eq!(entries(&log), [(0, 0), (4, 10)]);
    assert!(log.become_leader(3).is_err(), "an older epoch is refused");
    append_n(&mut log, 5);
    assert_eq!(batches(&log).last(), Some(&(10, 14, 4)));
}

#[test]
fn truncation_and_log_start_moves_keep_the_cache_in_step() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_segments(), false, 0).unwrap();
    append_n(&mut log, 30);
    log.become_leader(2).unwrap();
    append_n(&mut log, 30);
    log.become_leader(5).unwrap();
    append_n(&mut log, 30);
    log.truncate_to(60, 0).unwrap();
    assert_eq!(entries(&log), [(0, 0), (2, 30)]);
    // The leader's next append starts its epoch in the cache again.
    append_n(&mut log, 10);
    assert_eq!(entries(&log), [(0, 0), (2, 30), (5, 60)]);
    log.truncate_to(45, 0).unwrap();
    assert_eq!(entries(&log), [(0, 0), (2, 30)]);
    assert_eq!(log.delete_records_before(40).unwrap(), 40);
    assert_eq!(entries(&log), [(2, 40)]);
    drop(log);
    let log = reopen_after_crash(dir.path());
    assert_eq!(entries(&log), [(2, 40)]);
    assert_eq!(log.end_offset_for_epoch(0), (0, 40));
}

/// A batch as a replica copies it: its own base offset and leader epoch (outside the CRC).
fn copied_batch(base_offset: i64, records: i64, epoch: i32) -> Vec<u8> {
    let values: Vec<Vec<u8>> = (0..records).map(|i| format!("c{i}").into_bytes()).collect();
    let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
    let mut bytes = build_batch(base_offset, &vec![base_offset; records as usize], &refs);
    bytes[12..16].copy_from_slice(&epoch.to_be_bytes());
    bytes
}

#[test]
fn offsets_with_gaps_survive_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let mut segment = Vec::new();
    for (base, records, epoch) in [(0, 5, 0), (10, 5, 0), (100, 3, 2), (104, 1, 2)] {
        segment.extend(copied_batch(base, records, epoch));
    }
    std::fs::write(dir.path().join("00000000000000000000.log"), &segment).unwrap();
    let log = reopen_after_crash(dir.path());
    assert_eq!(log.log_end_offset(), 105);
    assert_eq!(
        batches(&log),
        [(0, 4, 0), (10, 14, 0), (100, 102, 2), (104, 104, 2)]
    );
    // A read inside a gap starts at the next batch.
    let bytes = log.read(50, 1 << 20, true).unwrap().read().unwrap();
    let (first, _) = BatchIter::new(&bytes).next().unwrap().unwrap();
    assert_eq!(first.base_offset, 100);
    assert_eq!(entries(&log), [(0, 0), (2, 100)]);
}

#[test]
fn a_batch_claiming_an_epoch_newer_than_the_cache_is_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_segments(), false, 0).unwrap();
    append_n(&mut log, 10);
    drop(log);
    // The cache says epoch 0 is the newest; a batch of epoch 9 cannot have been written.
    let segment = dir.path().join("00000000000000000000.log");
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes.extend(copied_batch(10, 5, 9));
    std::fs::write(&segment, &bytes).unwrap();
    let log = reopen_after_crash(dir.path());
    assert_eq!(log.log_end_offset(), 10);
    assert_eq!(entries(&log), [(0, 0)]);
}

#[test]
fn a_truncation_at_the_log_end_drops_an_epoch_led_without_writing() {
    // Found by the replication simulation: a replica that led epoch 4 without writing, then
    // follows, must not keep telling its leader that its last epoch is 4.
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_segments(), false, 0).unwrap();
    append_n(&mut log, 10);
    log.become_leader(4).unwrap();
    assert_eq!(entries(&log), [(0, 0), (4, 10)]);
    log.truncate_to(10, 0).unwrap();
    assert_eq!(log.log_end_offset(), 10);
    assert_eq!(entries(&log), [(0, 0)]);
    drop(log);
    assert_eq!(entries(&reopen_after_crash(dir.path())), [(0, 0)]);
}
