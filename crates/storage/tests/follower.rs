//! The follower's append path: a replica copies its leader's batches with their offsets and
//! epochs (gaps included), rolls segments at a batch's base offset, refuses offsets that do not
//! increase, and keeps producer state so that it still deduplicates retries once it leads.

mod common;

use common::{config, epoch_entries as entries, stored_batches};
use sluice_record::BatchIter;
use sluice_record::testing::{build_batch, with_producer};
use sluice_storage::{AppendOrigin, Log, LogConfig};
use std::path::Path;

fn small_segments() -> LogConfig {
    config(&[("segment.bytes", "400")])
}

fn values(n: usize, tag: &str) -> Vec<Vec<u8>> {
    (0..n).map(|i| format!("{tag}{i}").into_bytes()).collect()
}

fn batch(base_offset: i64, n: usize, tag: &str) -> Vec<u8> {
    let values = values(n, tag);
    let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
    build_batch(base_offset, &vec![1_000; n], &refs)
}

/// A batch as the leader stored it: its base offset and leader epoch (outside the CRC).
fn stored(base_offset: i64, n: usize, epoch: i32) -> Vec<u8> {
    let mut bytes = batch(base_offset, n, "s");
    bytes[12..16].copy_from_slice(&epoch.to_be_bytes());
    bytes
}

/// Every batch from the log start to the log end: (base, last, epoch, bytes after the epoch).
fn batches(log: &Log) -> Vec<(i64, i64, i32, Vec<u8>)> {
    stored_batches(log, true)
        .into_iter()
        .map(|(h, bytes)| {
            (
                h.base_offset,
                h.last_offset(),
                h.partition_leader_epoch,
                bytes[16..].to_vec(),
            )
        })
        .collect()
}

/// Copies everything `leader` has past the follower's log end, as a fetcher would.
fn replicate(leader: &Log, follower: &mut Log) {
    while follower.log_end_offset() < leader.log_end_offset() {
        let plan = leader
            .read_to_log_end(follower.log_end_offset(), 700, true)
            .unwrap();
        let bytes = plan.read().unwrap();
        follower.append_as_follower(&bytes, 0).unwrap();
    }
}

fn open_replica(dir: &Path) -> Log {
    Log::open_replica(dir, small_segments(), false, 0).unwrap()
}

#[test]
fn a_follower_holds_the_leaders_batches_at_the_leaders_offsets_and_epochs() {
    let (leader_dir, follower_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut leader = open_replica(leader_dir.path());
    let mut follower = open_replica(follower_dir.path());
    for epoch in [0, 3, 4] {
        leader.become_leader(epoch).unwrap();
        for _ in 0..6 {
            let at = leader.log_end_offset();
            leader
                .append(&batch(0, 4, &format!("e{epoch}-")), AppendOrigin::Client, 0)
                .unwrap();
            assert_eq!(leader.log_end_offset(), at + 4);
        }
    }
    replicate(&leader, &mut follower);
    assert_eq!(batches(&follower), batches(&leader));
    assert_eq!(entries(&follower), [(0, 0), (3, 24), (4, 48)]);
    assert_eq!(entries(&follower), entries(&leader));
    assert!(follower.segment_count() > 3, "small segments roll");
    assert_eq!(follower.high_watermark(), 0, "only the leader moves it");
    assert_eq!(follower.leader_epoch(), 4);
    assert!(
        follower.become_leader(3).is_err(),
        "older than data it holds"
    );
    let expected = batches(&leader);
    drop(follower);
    let follower = open_replica(follower_dir.path());
    assert_eq!(batches(&follower), expected, "the copy survives a crash");
    assert_eq!(entries(&follower), [(0, 0), (3, 24), (4, 48)]);
}

#[test]
fn gaps_are_kept_and_segments_roll_at_a_batchs_base_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open_replica(dir.path());
    let mut request = stored(0, 3, 0);
    request.extend(stored(10, 3, 0));
    log.append_as_follower(&request, 0).unwrap();
    // Each of these fills most of a 400-byte segment, so each rolls one at its own base.
    for base in [100, 205, 5_000_000_000] {
        log.append_as_follower(&stored(base, 20, 1), 0).unwrap();
        assert_eq!(log.active_base_offset(), base);
    }
    assert_eq!(log.log_end_offset(), 5_000_000_020);
    let offsets: Vec<(i64, i64, i32)> = batches(&log).iter().map(|b| (b.0, b.1, b.2)).collect();
    let expected = [
        (0, 2, 0),
        (10, 12, 0),
        (100, 119, 1),
        (205, 224, 1),
        (5_000_000_000, 5_000_000_019, 1),
    ];
    assert_eq!(offsets, expected);
    assert_eq!(entries(&log), [(0, 0), (1, 100)]);
    drop(log);
    let log = open_replica(dir.path());
    let offsets: Vec<(i64, i64, i32)> = batches(&log).iter().map(|b| (b.0, b.1, b.2)).collect();
    assert_eq!(offsets, expected, "after a crash");
}

#[test]
fn offsets_that_do_not_increase_are_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open_replica(dir.path());
    log.append_as_follower(&stored(0, 5, 0), 0).unwrap();
    let refusals = [
        stored(3, 5, 0),                               // overlaps the log end
        [stored(5, 2, 0), stored(6, 2, 0)].concat(),   // overlaps the batch before
        [stored(5, 2, 0), b"torn".to_vec()].concat(),  // a torn second batch
        [stored(20, 2, 0), stored(10, 2, 0)].concat(), // goes back
    ];
    for request in refusals {
        assert!(log.append_as_follower(&request, 0).is_err());
        assert_eq!(log.log_end_offset(), 5, "nothing of the request is written");
    }
    let mut corrupt = stored(5, 2, 0);
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    assert!(
        log.append_as_follower(&corrupt, 0).is_err(),
        "a CRC that fails"
    );
    assert!(
        log.append_as_follower(&stored(5, 2, -1), 0).is_err(),
        "no epoch"
    );
    assert_eq!(log.log_end_offset(), 5);
    assert_eq!(batches(&log).len(), 1);
}

#[test]
fn a_follower_that_becomes_leader_recognizes_a_retry_of_a_batch_it_copied() {
    let (leader_dir, follower_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut leader = open_replica(leader_dir.path());
    let mut follower = open_replica(follower_dir.path());
    let produced = |seq: i32| with_producer(batch(0, 2, "p"), 42, 0, seq, false);
    for seq in [0, 2, 4] {
        leader
            .append(&produced(seq), AppendOrigin::Client, 0)
            .unwrap();
    }
    replicate(&leader, &mut follower);
    follower.become_leader(1).unwrap();
    let retry = follower
        .append(&produced(4), AppendOrigin::Client, 0)
        .unwrap();
    assert!(retry.duplicate);
    assert_eq!((retry.base_offset, retry.last_offset), (4, 5));
    // The next in sequence is new; a gap in sequence is refused as on the old leader.
    let next = follower
        .append(&produced(6), AppendOrigin::Client, 0)
        .unwrap();
    assert_eq!((next.base_offset, next.duplicate), (6, false));
    assert!(
        follower
            .append(&produced(10), AppendOrigin::Client, 0)
            .is_err()
    );
}

#[test]
fn a_sole_replicas_high_watermark_follows_a_copied_append() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_segments(), false, 0).unwrap();
    log.append_as_follower(&stored(7, 3, 2), 0).unwrap();
    assert_eq!(log.high_watermark(), 10);
    assert_eq!(entries(&log), [(0, 0), (2, 7)]);
}

#[test]
fn an_empty_log_takes_a_first_batch_that_straddles_its_start() {
    // The leader's DeleteRecords put its log start inside a batch; a follower starting over
    // there is handed that whole batch.
    let dir = tempfile::tempdir().unwrap();
    let mut log = open_replica(dir.path());
    log.append_as_follower(&stored(0, 5, 0), 0).unwrap();
    log.truncate_fully_and_start_at(12, 0).unwrap();
    assert!(log.append_as_follower(&stored(10, 5, 1), 0).is_ok());
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (12, 15));
    // Only a first batch into an empty log: now the same is refused.
    assert!(log.append_as_follower(&stored(14, 3, 1), 0).is_err());
    log.append_as_follower(&stored(15, 2, 1), 0).unwrap();
    let bytes = log
        .read_to_log_end(12, 1 << 20, true)
        .unwrap()
        .read()
        .unwrap();
    let bases: Vec<i64> = BatchIter::new(&bytes)
        .map(|b| b.unwrap().0.base_offset)
        .collect();
    assert_eq!(bases, [10, 15]);
    assert_eq!(entries(&log), [(1, 12)]);
    drop(log);
    let log = open_replica(dir.path());
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (12, 17));
}
