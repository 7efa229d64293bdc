//! The high watermark as its own value: a sole replica's follows every append, a replica's
//! moves only when its leader says so, never back and never past the log end; it bounds
//! consumers' reads but not followers'; it is checkpointed and restored as at most the log end;
//! and the last stable offset holds at a transaction whose marker it has not yet passed.

mod common;

use common::config;
use sluice_record::testing::{build_batch, with_producer};
use sluice_record::{BatchIter, ControlMarker, encode_marker_batch};
use sluice_storage::{AppendOrigin, Log, StorageError};
use std::path::Path;

const CHECKPOINT: &str = "high-watermark";

fn append(log: &mut Log, n: usize) -> i64 {
    let values: Vec<Vec<u8>> = (0..n).map(|i| format!("v{i}").into_bytes()).collect();
    let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
    log.append(&build_batch(0, &vec![1; n], &refs), AppendOrigin::Client, 1)
        .unwrap()
        .base_offset
}

fn replica(dir: &Path, clean: bool) -> Log {
    Log::open_replica(dir, config(&[]), clean, 1).unwrap()
}

/// Offsets of the records a plan from `offset` reads.
fn offsets(plan: sluice_storage::ReadPlan) -> Vec<i64> {
    let bytes = plan.read().unwrap();
    BatchIter::new(&bytes)
        .flat_map(|b| {
            let (h, _) = b.unwrap();
            h.base_offset..=h.last_offset()
        })
        .collect()
}

#[test]
fn a_sole_replica_commits_every_append_and_checkpoints_its_high_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), config(&[]), false, 1).unwrap();
    assert!(log.is_sole_replica());
    append(&mut log, 5);
    assert_eq!(log.high_watermark(), 5);
    log.checkpoint(false).unwrap();
    let text = std::fs::read_to_string(dir.path().join(CHECKPOINT)).unwrap();
    assert_eq!(text.trim(), "5");
}

#[test]
fn a_replica_s_high_watermark_moves_only_forward_and_only_when_told() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = replica(dir.path(), false);
    assert!(!log.is_sole_replica());
    append(&mut log, 4);
    append(&mut log, 4);
    assert_eq!((log.high_watermark(), log.log_end_offset()), (0, 8));
    // Consumers read up to the high watermark, followers to the log end.
    assert!(offsets(log.read(0, 1 << 20, true).unwrap()).is_empty());
    assert_eq!(
        offsets(log.read_to_log_end(0, 1 << 20, true).unwrap()),
        (0..8).collect::<Vec<_>>()
    );
    assert!(log.advance_high_watermark(4).unwrap());
    assert_eq!(
        offsets(log.read(0, 1 << 20, true).unwrap()),
        (0..4).collect::<Vec<_>>()
    );
    assert!(!log.advance_high_watermark(3).unwrap(), "never back");
    assert_eq!(log.high_watermark(), 4);
    assert!(matches!(
        log.advance_high_watermark(9),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    assert!(log.advance_high_watermark(8).unwrap());
    assert_eq!(log.last_stable_offset(), 8);
}

#[test]
fn a_restarted_replica_exposes_no_more_than_its_checkpoint_and_its_log_end() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = replica(dir.path(), false);
    append(&mut log, 10);
    log.advance_high_watermark(6).unwrap();
    log.checkpoint(false).unwrap();
    append(&mut log, 10);
    log.advance_high_watermark(15).unwrap();
    drop(log); // a crash: the checkpoint says 6
    let mut log = replica(dir.path(), false);
    assert_eq!((log.high_watermark(), log.log_end_offset()), (6, 20));
    // A checkpoint past what survived is cut to the log end.
    log.truncate_to(10, 1).unwrap();
    log.advance_high_watermark(10).unwrap();
    log.checkpoint(false).unwrap();
    std::fs::write(dir.path().join(CHECKPOINT), "1000\n").unwrap();
    drop(log);
    let log = replica(dir.path(), false);
    assert_eq!((log.high_watermark(), log.log_end_offset()), (10, 10));
    // Without a checkpoint, nothing is known committed but what precedes the log start.
    std::fs::remove_file(dir.path().join(CHECKPOINT)).unwrap();
    drop(log);
    assert_eq!(replica(dir.path(), true).high_watermark(), 0);
    // A sole replica commits everything it has, checkpoint or not.
    assert_eq!(
        Log::open(dir.path(), config(&[]), true, 1)
            .unwrap()
            .high_watermark(),
        10
    );
}

#[test]
fn the_last_stable_offset_holds_until_the_high_watermark_passes_the_marker() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = replica(dir.path(), false);
    append(&mut log, 2);
    let values: [&[u8]; 3] = [b"a", b"b", b"c"];
    let txn = with_producer(build_batch(0, &[1; 3], &values), 7, 0, 0, true);
    assert_eq!(
        log.append(&txn, AppendOrigin::Broker, 1)
            .unwrap()
            .base_offset,
        2
    );
    let marker = ControlMarker {
        commit: true,
        coordinator_epoch: 0,
    };
    let at = log
        .append(
            &encode_marker_batch(7, 0, marker, 1),
            AppendOrigin::Broker,
            1,
        )
        .unwrap()
        .base_offset;
    assert_eq!(at, 5);
    log.advance_high_watermark(4).unwrap();
    assert_eq!(
        log.last_stable_offset(),
        2,
        "the marker is not committed yet"
    );
    log.advance_high_watermark(5).unwrap();
    assert_eq!(
        log.last_stable_offset(),
        2,
        "the high watermark has not passed the marker"
    );
    log.advance_high_watermark(6).unwrap();
    assert_eq!(log.last_stable_offset(), 6);
    // A restart recomputes the same from the batches.
    log.checkpoint(false).unwrap();
    drop(log);
    std::fs::write(dir.path().join(CHECKPOINT), "4\n").unwrap();
    let log = replica(dir.path(), false);
    assert_eq!(log.last_stable_offset(), 2);
}
