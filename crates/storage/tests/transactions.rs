//! Transactions in a partition through the public `Log` API: transactional batches open a
//! transaction, markers close it, the last stable offset bounds `read_committed` reads, and
//! aborted transactions are listed for the range read, across restarts, crashes and truncation.
//! (Transactional batches are written with the broker's origin here: clients need a
//! transaction coordinator's say-so, which the broker checks before storage sees them.)

mod common;

use common::config;
use sluice_record::testing::{build_batch, with_producer};
use sluice_record::{ControlMarker, encode_marker_batch};
use sluice_storage::{AbortedTxn, AppendOrigin, Log};
use std::path::Path;

fn open(dir: &Path, clean: bool) -> Log {
    Log::open(dir, config(&[("segment.bytes", "400")]), clean, 1_000).unwrap()
}

fn txn_batch(log: &mut Log, pid: i64, seq: i32, n: usize) -> i64 {
    let values: Vec<Vec<u8>> = (0..n).map(|i| format!("t{pid}-{i}").into_bytes()).collect();
    let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
    let batch = with_producer(build_batch(0, &vec![1; n], &refs), pid, 0, seq, true);
    log.append(&batch, AppendOrigin::Broker, 1_000)
        .unwrap()
        .base_offset
}

fn plain(log: &mut Log) -> i64 {
    log.append(
        &build_batch(0, &[1], &[b"plain"]),
        AppendOrigin::Client,
        1_000,
    )
    .unwrap()
    .base_offset
}

fn marker(log: &mut Log, pid: i64, commit: bool) -> i64 {
    let m = ControlMarker {
        commit,
        coordinator_epoch: 0,
    };
    let batch = encode_marker_batch(pid, 0, m, 1_000);
    log.append(&batch, AppendOrigin::Broker, 1_000)
        .unwrap()
        .base_offset
}

/// Offsets 0: plain; 1-2: producer 7 (aborted at 6); 3: producer 8 (committed at 5); 4: plain;
/// 5: commit 8; 6: abort 7; 7-8: producer 9, still open.
fn history(log: &mut Log) {
    assert_eq!(plain(log), 0);
    assert_eq!(txn_batch(log, 7, 0, 2), 1);
    assert_eq!(txn_batch(log, 8, 0, 1), 3);
    assert_eq!(log.last_stable_offset(), 1);
    assert_eq!(plain(log), 4);
    assert_eq!(marker(log, 8, true), 5);
    assert_eq!(log.last_stable_offset(), 1, "producer 7 is still open");
    assert_eq!(marker(log, 7, false), 6);
    assert_eq!(log.last_stable_offset(), 7);
    assert_eq!(txn_batch(log, 9, 0, 2), 7);
}

fn assert_history(log: &Log) {
    assert_eq!(log.high_watermark(), 9);
    assert_eq!(log.last_stable_offset(), 7);
    assert_eq!(
        log.aborted_transactions(0, 7),
        vec![AbortedTxn {
            producer_id: 7,
            first_offset: 1,
            last_offset: 6,
            last_stable_offset: 7,
        }]
    );
    assert!(
        log.aborted_transactions(7, 9).is_empty(),
        "it ended before 7"
    );
    assert!(log.aborted_transactions(0, 1).is_empty(), "it began at 1");
    // read_committed stops before the open transaction; read_uncommitted does not.
    assert_eq!(last_readable(log, true), 6);
    assert_eq!(last_readable(log, false), 8);
}

/// The last offset a consumer reaches reading from 0, following reads across segments.
fn last_readable(log: &Log, committed: bool) -> i64 {
    let mut next = 0;
    loop {
        let plan = if committed {
            log.read_committed(next, 1 << 20, true)
        } else {
            log.read(next, 1 << 20, true)
        };
        let bytes = plan.unwrap().read().unwrap();
        let Some(last) = sluice_record::BatchIter::new(&bytes)
            .map(|b| b.unwrap().0.last_offset())
            .last()
        else {
            return next - 1;
        };
        next = last + 1;
    }
}

#[test]
fn markers_close_transactions_and_bound_read_committed() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), true);
    history(&mut log);
    assert_history(&log);
    assert_eq!(marker(&mut log, 9, true), 9);
    assert_eq!(log.last_stable_offset(), 10);
}

#[test]
fn transactions_survive_a_clean_restart_and_a_crash_with_or_without_snapshots() {
    for (clean, drop_snapshots) in [(true, false), (false, false), (false, true)] {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut log = open(dir.path(), true);
            history(&mut log);
            if clean {
                log.checkpoint(true).unwrap();
            }
        }
        if drop_snapshots {
            for entry in std::fs::read_dir(dir.path()).unwrap() {
                let path = entry.unwrap().path();
                let name = path.file_name().unwrap().to_string_lossy().to_string();
                if name.ends_with(".snapshot") || name == "aborted-transactions" {
                    std::fs::remove_file(path).unwrap();
                }
            }
        }
        let log = open(dir.path(), clean);
        assert_history(&log);
    }
}

#[test]
fn truncation_reopens_a_transaction_whose_marker_it_removed() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), true);
    history(&mut log);
    log.truncate_to(6, 1_000).unwrap();
    assert_eq!(
        log.last_stable_offset(),
        1,
        "producer 7's abort marker is gone"
    );
    assert!(log.aborted_transactions(0, 6).is_empty());
    drop(log);
    let log = open(dir.path(), false);
    assert_eq!(log.last_stable_offset(), 1);
    assert!(log.aborted_transactions(0, 6).is_empty());
}

#[test]
fn a_marker_from_an_older_coordinator_epoch_is_fenced_and_not_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), false);
    let marker_at = |log: &mut Log, coordinator_epoch: i32| {
        let m = ControlMarker {
            commit: true,
            coordinator_epoch,
        };
        log.append(
            &encode_marker_batch(7, 0, m, 1_000),
            AppendOrigin::Broker,
            1_000,
        )
    };
    txn_batch(&mut log, 7, 0, 1);
    assert_eq!(marker_at(&mut log, 5).unwrap().base_offset, 1);
    txn_batch(&mut log, 7, 1, 1);
    let end = log.log_end_offset();
    // The coordinator of epoch 3 lost its role to the one of epoch 5 and does not know it.
    assert!(matches!(
        marker_at(&mut log, 3),
        Err(sluice_storage::StorageError::TransactionCoordinatorFenced(
            _
        ))
    ));
    assert_eq!(log.log_end_offset(), end, "a fenced marker is not written");
    assert_eq!(log.last_stable_offset(), 2, "the transaction is still open");
    // The fence outlives a restart (the producer snapshot and the log both carry the epoch).
    drop(log);
    let mut log = open(dir.path(), false);
    assert!(marker_at(&mut log, 4).is_err());
    assert_eq!(marker_at(&mut log, 5).unwrap().base_offset, 3);
    assert_eq!(log.last_stable_offset(), 4);
}
