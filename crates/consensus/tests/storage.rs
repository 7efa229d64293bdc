//! The metadata log's storage and state machine against openraft's own storage test suite,
//! and across reopening: what was appended (and only that) is found again, a torn tail is
//! cut, a purge survives, and a snapshot brings the metadata image back.

use openraft::alias::{EntryOf, LogIdOf, VoteOf};
use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, RaftLogStorage, RaftStateMachine};
use openraft::testing::log::{StoreBuilder, Suite};
use openraft::{RaftLogReader, RaftSnapshotBuilder, StorageError};
use sluice_consensus::{LogStore, MetadataBatch, StateMachine, TypeConfig};
use sluice_controller::{ControllerConfig, MetadataRecord};
use std::path::Path;
use tempfile::TempDir;

struct OnDisk;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for OnDisk {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError<TypeConfig>> {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let log = LogStore::open(dir.path()).expect("the log opens");
        let sm = StateMachine::open(dir.path(), ControllerConfig::default()).expect("it opens");
        Ok((dir, log, sm))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openrafts_storage_suite_passes() {
    Suite::test_all(OnDisk).await.expect("the suite passes");
}

type Entry = EntryOf<TypeConfig>;

/// A log id of term `term`, leader node 1.
fn log_id(term: u64, index: u64) -> LogIdOf<TypeConfig> {
    openraft::testing::log_id::<TypeConfig>(term, 1, index)
}

fn record_entry(term: u64, index: u64, topic: &str) -> Entry {
    let record = MetadataRecord::Topic {
        name: topic.to_string(),
        topic_id: uuid::Uuid::from_u128(u128::from(index) + 1),
    };
    Entry::new_normal(log_id(term, index), MetadataBatch(vec![record]))
}

async fn append(log: &mut LogStore, entries: Vec<Entry>) {
    log.append(entries, IOFlushed::noop()).await.unwrap();
}

async fn indexes(log: &mut LogStore) -> Vec<u64> {
    let mut reader = log.get_log_reader().await;
    let entries = reader.try_get_log_entries(0..1_000).await.unwrap();
    entries.iter().map(|e| e.index()).collect()
}

#[tokio::test]
async fn appended_entries_survive_a_reopen_and_a_torn_tail_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = LogStore::open(dir.path()).unwrap();
    append(
        &mut log,
        (1..=5)
            .map(|i| record_entry(1, i, &format!("t{i}")))
            .collect(),
    )
    .await;
    log.truncate_after(Some(log_id(1, 3))).await.unwrap();
    append(&mut log, vec![record_entry(2, 4, "t4-again")]).await;
    drop(log);
    // A crash in the middle of the next append leaves half a frame.
    let file = dir.path().join("raft-log");
    let mut bytes = std::fs::read(&file).unwrap();
    let whole = bytes.len();
    bytes.extend_from_slice(&[0, 0, 0, 40, 1, 2, 3]);
    std::fs::write(&file, &bytes).unwrap();
    let mut log = LogStore::open(dir.path()).unwrap();
    assert_eq!(indexes(&mut log).await, [1, 2, 3, 4]);
    assert_eq!(
        std::fs::metadata(&file).unwrap().len() as usize,
        whole,
        "the tail is cut"
    );
    let mut reader = log.get_log_reader().await;
    let last = reader.try_get_log_entries(4..5).await.unwrap();
    assert_eq!(last[0].log_id(), log_id(2, 4));
    // A damaged byte inside a frame ends the log there.
    drop(log);
    let mut bytes = std::fs::read(&file).unwrap();
    let at = bytes.len() - 3;
    bytes[at] ^= 0xff;
    std::fs::write(&file, &bytes).unwrap();
    let mut log = LogStore::open(dir.path()).unwrap();
    assert_eq!(indexes(&mut log).await, [1, 2, 3]);
}

#[tokio::test]
async fn a_purge_and_the_vote_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = LogStore::open(dir.path()).unwrap();
    append(&mut log, (1..=6).map(|i| record_entry(1, i, "t")).collect()).await;
    log.purge(log_id(1, 4)).await.unwrap();
    let vote = VoteOf::<TypeConfig>::new(3, 2);
    log.save_vote(&vote).await.unwrap();
    drop(log);
    let mut log = LogStore::open(dir.path()).unwrap();
    assert_eq!(indexes(&mut log).await, [5, 6]);
    let state = log.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 4)));
    assert_eq!(state.last_log_id, Some(log_id(1, 6)));
    assert_eq!(
        log.get_log_reader().await.read_vote().await.unwrap(),
        Some(vote)
    );
}

fn topics(sm: &StateMachine) -> Vec<String> {
    sm.with_controller(|c| {
        let mut names: Vec<String> = c.image().topics.values().map(|t| t.name.clone()).collect();
        names.sort();
        names
    })
}

async fn apply(sm: &mut StateMachine, entries: Vec<Entry>) {
    let stream = futures_util::stream::iter(entries.into_iter().map(|e| Ok((e, None))));
    sm.apply(stream).await.unwrap();
}

#[tokio::test]
async fn a_snapshot_brings_the_metadata_image_back_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let open = |d: &Path| StateMachine::open(d, ControllerConfig::default()).unwrap();
    let mut sm = open(dir.path());
    apply(
        &mut sm,
        (1..=3)
            .map(|i| record_entry(1, i, &format!("t{i}")))
            .collect(),
    )
    .await;
    let built = sm
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    assert_eq!(built.meta.last_log_id, Some(log_id(1, 3)));
    drop(sm);
    let mut sm = open(dir.path());
    assert_eq!(topics(&sm), ["t1", "t2", "t3"]);
    assert_eq!(sm.applied_state().await.unwrap().0, Some(log_id(1, 3)));
    // Installed on another node, it gives the same image.
    let other = tempfile::tempdir().unwrap();
    let mut installed = open(other.path());
    let snapshot = sm.get_current_snapshot().await.unwrap().unwrap();
    installed
        .install_snapshot(&snapshot.meta, snapshot.snapshot)
        .await
        .unwrap();
    assert_eq!(topics(&installed), ["t1", "t2", "t3"]);
}
