//! Idempotent producers through the public `Log` API: retries are answered with the original
//! offsets and written once, gaps and stale epochs refused, and the state survives a clean
//! restart (snapshot), a crash (rebuilt from the log), a torn tail and truncation.

mod common;

use common::config;
use sluice_record::testing::{build_batch, with_producer};
use sluice_storage::{AppendInfo, AppendOrigin, Log, StorageError};
use std::path::Path;

/// A batch of `n` records from producer `pid` at `epoch`, starting at sequence `seq`.
fn batch(pid: i64, epoch: i16, seq: i32, n: usize) -> Vec<u8> {
    let values: Vec<Vec<u8>> = (0..n)
        .map(|i| format!("p{pid}-s{}", seq as usize + i).into_bytes())
        .collect();
    let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
    with_producer(build_batch(0, &vec![1; n], &refs), pid, epoch, seq, false)
}

fn append(log: &mut Log, bytes: &[u8]) -> Result<AppendInfo, StorageError> {
    log.append(bytes, AppendOrigin::Client, 1_000)
}

fn open(dir: &Path, clean: bool) -> Log {
    Log::open(dir, config(&[("segment.bytes", "600")]), clean, 1_000).unwrap()
}

#[test]
fn a_retried_batch_gets_its_original_offsets_and_is_not_written_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), true);
    let first = append(&mut log, &batch(5, 0, 0, 3)).unwrap();
    let second = append(&mut log, &batch(5, 0, 3, 2)).unwrap();
    assert_eq!((second.base_offset, second.last_offset), (3, 4));
    let size = log.size_bytes();
    let retry = append(&mut log, &batch(5, 0, 0, 3)).unwrap();
    assert!(retry.duplicate);
    assert_eq!(
        (retry.base_offset, retry.last_offset),
        (first.base_offset, first.last_offset)
    );
    assert_eq!(retry.records, 0);
    assert_eq!(log.log_end_offset(), 5);
    assert_eq!(log.size_bytes(), size);
}

#[test]
fn gaps_and_stale_epochs_are_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), true);
    append(&mut log, &batch(5, 2, 0, 2)).unwrap();
    assert!(matches!(
        append(&mut log, &batch(5, 2, 3, 1)),
        Err(StorageError::OutOfOrderSequence(_))
    ));
    assert!(matches!(
        append(&mut log, &batch(5, 1, 2, 1)),
        Err(StorageError::InvalidProducerEpoch(_))
    ));
    assert!(matches!(
        append(&mut log, &batch(5, 3, 1, 1)),
        Err(StorageError::OutOfOrderSequence(_))
    ));
    assert_eq!(log.log_end_offset(), 2);
    // A producer batch among others is refused: Kafka takes one batch per partition.
    let mut two = batch(6, 0, 0, 1);
    two.extend_from_slice(&batch(6, 0, 1, 1));
    assert!(matches!(
        append(&mut log, &two),
        Err(StorageError::InvalidRecord(_))
    ));
    assert_eq!(log.log_end_offset(), 2);
}

#[test]
fn clients_may_not_write_control_or_transactional_batches_but_the_broker_may() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), true);
    let transactional = with_producer(build_batch(0, &[1], &[b"t"]), 1, 0, 0, true);
    assert!(matches!(
        append(&mut log, &transactional),
        Err(StorageError::InvalidTxnState(_))
    ));
    let mut control = build_batch(0, &[1], &[b"c"]);
    control[22] |= 0x20;
    let crc = crc32c::crc32c(&control[21..]);
    control[17..21].copy_from_slice(&crc.to_be_bytes());
    assert!(matches!(
        append(&mut log, &control),
        Err(StorageError::InvalidRecord(_))
    ));
    assert_eq!(log.log_end_offset(), 0);
    log.append(&control, AppendOrigin::Broker, 1_000).unwrap();
    assert_eq!(log.log_end_offset(), 1);
}

/// Writes 40 batches of 3 records from two producers across several segments, then checks the
/// state that a reopened log has: the last five batches of each are recognised as retries,
/// older ones are gaps, and the next sequence is accepted.
fn write_history(log: &mut Log) {
    for i in 0..40 {
        let pid = 100 + i64::from(i % 2);
        let seq = (i / 2) * 3;
        append(log, &batch(pid, 0, seq, 3)).unwrap();
    }
}

fn assert_history_remembered(log: &mut Log) {
    let end = log.log_end_offset();
    for pid in [100, 101] {
        for k in 15..20 {
            let retry = append(log, &batch(pid, 0, k * 3, 3)).unwrap();
            assert!(
                retry.duplicate,
                "producer {pid} batch {k} should be a duplicate"
            );
            assert_eq!(retry.base_offset, i64::from(k * 2 + (pid - 100) as i32) * 3);
        }
        assert!(matches!(
            append(log, &batch(pid, 0, 14 * 3, 3)),
            Err(StorageError::OutOfOrderSequence(_))
        ));
    }
    assert_eq!(log.log_end_offset(), end);
    assert!(!append(log, &batch(100, 0, 60, 1)).unwrap().duplicate);
}

#[test]
fn producer_state_survives_a_clean_restart_through_its_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = open(dir.path(), true);
        write_history(&mut log);
        assert!(
            log.segment_count() > 3,
            "the history should span several segments"
        );
        // A roll leaves its snapshot to the flusher; one flush, one more batch, then the
        // snapshot of a clean shutdown: two snapshots.
        let plan = log.flush_plan().unwrap();
        plan.execute().unwrap();
        log.mark_flushed(&plan, 0);
        log.append(&build_batch(0, &[1], &[b"x"]), AppendOrigin::Client, 1_000)
            .unwrap();
        log.checkpoint(true).unwrap();
    }
    let snapshots = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".snapshot")
        })
        .count();
    assert_eq!(snapshots, 2, "the newest two snapshots are kept");
    let mut log = open(dir.path(), true);
    assert_eq!(log.producer_count(), 2);
    assert_history_remembered(&mut log);
}

#[test]
fn producer_state_is_rebuilt_after_a_crash_even_without_snapshots() {
    for remove_snapshots in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut log = open(dir.path(), true);
            write_history(&mut log);
            // Dropped without a checkpoint: a crash.
        }
        if remove_snapshots {
            for entry in std::fs::read_dir(dir.path()).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().is_some_and(|e| e == "snapshot") {
                    std::fs::remove_file(path).unwrap();
                }
            }
        }
        let mut log = open(dir.path(), false);
        assert_history_remembered(&mut log);
    }
}

#[test]
fn damaged_or_stale_snapshots_are_discarded() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = open(dir.path(), true);
        write_history(&mut log);
        log.checkpoint(true).unwrap();
    }
    let mut snapshots: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "snapshot"))
        .collect();
    snapshots.sort();
    let newest = snapshots.last().unwrap();
    let mut bytes = std::fs::read(newest).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(newest, bytes).unwrap();
    // A snapshot from the future (as if recovery had cut the log below it).
    std::fs::write(dir.path().join("00000000000000099999.snapshot"), b"junk").unwrap();
    let mut log = open(dir.path(), false);
    assert!(!newest.exists(), "the damaged snapshot is removed");
    assert!(!dir.path().join("00000000000000099999.snapshot").exists());
    assert_history_remembered(&mut log);
}

#[test]
fn truncation_and_retention_forget_what_left_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), true);
    append(&mut log, &batch(1, 0, 0, 2)).unwrap();
    append(&mut log, &batch(1, 0, 2, 2)).unwrap();
    log.truncate_to(2, 1_000).unwrap();
    // The batch at sequence 2 is gone, so it is no duplicate: it is written again.
    let again = append(&mut log, &batch(1, 0, 2, 2)).unwrap();
    assert!(!again.duplicate);
    assert_eq!(again.base_offset, 2);
    log.delete_records_before(4).unwrap();
    assert_eq!(log.producer_count(), 0);
    // With no state left, the producer may continue at any sequence.
    assert!(!append(&mut log, &batch(1, 0, 9, 1)).unwrap().duplicate);
}

#[test]
fn idle_producers_expire() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), true);
    log.append(&batch(1, 0, 0, 1), AppendOrigin::Client, 1_000)
        .unwrap();
    log.append(&batch(2, 0, 0, 1), AppendOrigin::Client, 9_000)
        .unwrap();
    assert_eq!(log.expire_producers(10_000, 5_000), 1);
    assert_eq!(log.producer_count(), 1);
}
