//! The runtime over an in-memory log: loading replays, keys find their shard, unloading
//! stops a shard from writing, and leader epochs order loads and unloads.

use sluice_coordinator::{CoordinatorError, CoordinatorShard, Replayed, Runtime, ShardLog};
use sluice_record::{BatchHeader, ControlMarker, encode_marker_batch};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

/// A partition kept in memory: batches with their offsets assigned, as storage would.
struct MemLog {
    index: i32,
    batches: Mutex<Vec<(i64, Vec<u8>)>>,
}

impl MemLog {
    fn new(index: i32) -> Arc<MemLog> {
        Arc::new(MemLog {
            index,
            batches: Mutex::new(Vec::new()),
        })
    }

    fn end_offset(&self) -> i64 {
        let batches = self.batches.lock().unwrap();
        batches.last().map_or(0, |(_, b)| {
            BatchHeader::parse(b)
                .expect("a batch we wrote")
                .last_offset()
                + 1
        })
    }

    fn batch_count(&self) -> usize {
        self.batches.lock().unwrap().len()
    }
}

impl ShardLog for MemLog {
    fn index(&self) -> i32 {
        self.index
    }
    fn start_offset(&self) -> i64 {
        0
    }
    fn read(&self, offset: i64, _max_bytes: usize) -> Result<bytes::Bytes, CoordinatorError> {
        let batches = self.batches.lock().unwrap();
        let mut out = Vec::new();
        for (base, batch) in batches.iter() {
            if *base >= offset {
                out.extend_from_slice(batch);
            }
        }
        Ok(out.into())
    }
    fn append(&self, batch: &[u8], _now_ms: i64) -> Result<i64, CoordinatorError> {
        let base = self.end_offset();
        let mut batch = batch.to_vec();
        batch[..8].copy_from_slice(&base.to_be_bytes());
        let next = BatchHeader::parse(&batch).unwrap().last_offset() + 1;
        self.batches.lock().unwrap().push((base, batch));
        Ok(next)
    }
    fn wait_durable(&self, _offset: i64) -> Pin<Box<dyn Future<Output = bool> + Send + '_>> {
        Box::pin(std::future::ready(true))
    }
}

/// A shard that remembers what it replayed, and whether it was unloaded.
#[derive(Default)]
struct Seen {
    keys: Vec<String>,
    transactional: Vec<String>,
    markers: Vec<bool>,
    unloaded: bool,
}

impl CoordinatorShard for Seen {
    const KIND: &'static str = "test";
    fn replay(&mut self, header: &BatchHeader, item: Replayed<'_>) -> bool {
        match item {
            Replayed::Record { key, .. } => {
                let Some(key) = key.and_then(|k| std::str::from_utf8(k).ok()) else {
                    return false;
                };
                if header.is_transactional() {
                    self.transactional.push(key.to_string());
                } else {
                    self.keys.push(key.to_string());
                }
                true
            }
            Replayed::Marker(marker) => {
                self.markers.push(marker.commit);
                true
            }
        }
    }
    fn unloaded(&mut self) {
        self.unloaded = true;
    }
}

fn record(key: &str) -> (Vec<u8>, Option<Vec<u8>>) {
    (key.as_bytes().to_vec(), Some(b"v".to_vec()))
}

fn runtime() -> Runtime<Seen> {
    Runtime::new(CancellationToken::new())
}

#[test]
fn a_load_replays_what_the_shard_wrote() {
    let log = MemLog::new(3);
    let first = runtime();
    let shard = first
        .load(log.clone(), 10, 0, Seen::default())
        .unwrap()
        .unwrap();
    {
        let guard = shard.lock();
        assert_eq!(
            guard.append(&[record("a"), record("b")], None, 1).unwrap(),
            Some(2)
        );
        assert_eq!(
            guard.append(&[], None, 1).unwrap(),
            None,
            "nothing to write"
        );
        assert_eq!(
            guard.append(&[record("t")], Some((7, 0)), 1).unwrap(),
            Some(3)
        );
    }
    let marker = ControlMarker {
        commit: true,
        coordinator_epoch: 0,
    };
    log.append(&encode_marker_batch(7, 0, marker, 1), 1)
        .unwrap();
    assert_eq!(log.batch_count(), 3);

    let second = runtime();
    let loaded = second.load(log, 10, 0, Seen::default()).unwrap().unwrap();
    let state = loaded.lock();
    assert_eq!(state.keys, ["a", "b"]);
    assert_eq!(
        state.transactional,
        ["t"],
        "the producer's batch replays as transactional"
    );
    assert_eq!(state.markers, [true]);
}

#[test]
fn a_key_finds_the_shard_of_its_partition() {
    let rt = runtime();
    assert!(rt.of("group-1").is_none(), "nothing loaded");
    let index = sluice_types::partition_for("group-1", 50);
    rt.load(MemLog::new(index), 50, 0, Seen::default()).unwrap();
    assert_eq!(rt.of("group-1").map(|s| s.index()), Some(index));
    let elsewhere = (0..1000)
        .map(|i| format!("other-{i}"))
        .find(|k| sluice_types::partition_for(k, 50) != index)
        .unwrap();
    assert!(
        rt.of(&elsewhere).is_none(),
        "its partition is led elsewhere"
    );
    assert_eq!(rt.loaded_count(), 1);
}

#[tokio::test]
async fn an_unloaded_shard_writes_nothing_and_stops() {
    let rt = runtime();
    let log = MemLog::new(0);
    let shard = rt
        .load(log.clone(), 1, 4, Seen::default())
        .unwrap()
        .unwrap();
    assert!(rt.unload(0));
    assert!(!rt.unload(0), "already unloaded");
    assert!(rt.of("any").is_none());
    assert!(
        matches!(shard.serving(), Err(CoordinatorError::Unloaded)),
        "no command runs on an unloaded shard"
    );
    let guard = shard.lock();
    assert!(guard.unloaded, "the kind was told");
    assert!(guard.is_unloaded());
    assert_eq!(
        guard.append(&[record("late")], None, 1),
        Err(CoordinatorError::Unloaded)
    );
    drop(guard);
    assert_eq!(log.batch_count(), 0);
    tokio::time::timeout(std::time::Duration::from_secs(5), shard.stopped())
        .await
        .expect("an unloaded shard's timer stops");
}

#[test]
fn leader_epochs_order_loads() {
    let rt = runtime();
    let log = MemLog::new(2);
    let first = rt
        .load(log.clone(), 5, 3, Seen::default())
        .unwrap()
        .unwrap();
    first.lock().append(&[record("x")], None, 1).unwrap();
    assert!(
        rt.load(log.clone(), 5, 3, Seen::default())
            .unwrap()
            .is_none(),
        "same epoch"
    );
    assert!(
        rt.load(log.clone(), 5, 2, Seen::default())
            .unwrap()
            .is_none(),
        "older epoch"
    );
    let second = rt.load(log, 5, 4, Seen::default()).unwrap().unwrap();
    assert_eq!(second.leader_epoch(), 4);
    assert_eq!(second.lock().keys, ["x"], "replayed afresh");
    assert!(first.lock().is_unloaded(), "the older shard was unloaded");
    assert_eq!(rt.get(2).map(|s| s.leader_epoch()), Some(4));
}

#[test]
fn unload_unless_keeps_the_partitions_still_led() {
    let rt = runtime();
    for index in 0..4 {
        rt.load(MemLog::new(index), 4, 0, Seen::default()).unwrap();
    }
    let gone = rt.unload_unless(|i| i % 2 == 0);
    assert_eq!(gone, [1, 3]);
    let left: Vec<i32> = rt.loaded().iter().map(|s| s.index()).collect();
    assert_eq!(left, [0, 2]);
}

#[tokio::test]
async fn shutdown_stops_the_timers_but_not_the_writes() {
    let shutdown = CancellationToken::new();
    let rt: Runtime<Seen> = Runtime::new(shutdown.clone());
    let shard = rt
        .load(MemLog::new(0), 1, 0, Seen::default())
        .unwrap()
        .unwrap();
    shutdown.cancel();
    tokio::time::timeout(std::time::Duration::from_secs(5), shard.stopped())
        .await
        .expect("stopped at shutdown");
    let written = shard.lock().append(&[record("drain")], None, 1);
    assert_eq!(written, Ok(Some(1)), "connections draining still commit");
}

#[tokio::test]
async fn a_wake_before_the_wait_is_kept() {
    let rt = runtime();
    let shard = rt
        .load(MemLog::new(0), 1, 0, Seen::default())
        .unwrap()
        .unwrap();
    shard.wake_timer();
    tokio::time::timeout(std::time::Duration::from_secs(5), shard.timer_woken())
        .await
        .expect("the wake-up was kept");
}
