//! Helpers shared by the consensus tests: a controller node on a directory, and waits on
//! conditions with deadlines (openraft's metrics), never sleeps.
// Each test binary includes this module and uses a part of it.
#![allow(dead_code)]

use openraft::network::{NetSnapshot, RaftNetworkFactory};
use openraft::rt::WatchReceiver;
use sluice_consensus::{LogStore, Raft, StateMachine, TypeConfig};
use sluice_controller::{ControllerConfig, MetadataRecord};
use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub const DEADLINE: Duration = Duration::from_secs(30);

pub struct Node {
    pub raft: Raft,
    pub state: StateMachine,
}

/// Opens the log and state machine in `dir` and starts a controller on them.
pub async fn start_node<N>(id: u64, dir: &Path, network: N) -> Node
where
    N: RaftNetworkFactory<TypeConfig>,
    N::Network: NetSnapshot<TypeConfig, SnapshotData = Cursor<Vec<u8>>>,
{
    let log = LogStore::open(dir).unwrap();
    let state = StateMachine::open(dir, ControllerConfig::default()).unwrap();
    let config = Arc::new(sluice_consensus::raft_config().validate().unwrap());
    let raft = Raft::new(id, config, network, log, state.clone())
        .await
        .unwrap();
    Node { raft, state }
}

/// The leader the live nodes agree on, once there is one.
pub async fn leader(nodes: &BTreeMap<u64, Node>) -> u64 {
    let any = nodes.values().next().unwrap();
    let metrics = any
        .raft
        .wait(Some(DEADLINE))
        .metrics(
            |m| m.current_leader.is_some_and(|l| nodes.contains_key(&l)),
            "a live leader",
        )
        .await
        .unwrap();
    metrics.current_leader.unwrap()
}

/// Writes `record` through the leader, retrying while leadership is being settled (a new
/// leader answers ForwardToLeader until a quorum has acknowledged it), up to the deadline.
pub async fn write(nodes: &BTreeMap<u64, Node>, record: MetadataRecord) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let id = leader(nodes).await;
        let batch = sluice_consensus::MetadataBatch(vec![record.clone()]);
        let attempt = nodes[&id].raft.client_write(batch);
        let outcome = tokio::time::timeout(Duration::from_secs(5), attempt).await;
        match outcome {
            Ok(Ok(_)) => return,
            // Not yet (ForwardToLeader while the lease settles) or no answer in time: wait
            // for the leader's metrics to move, then ask again.
            _ if tokio::time::Instant::now() < deadline => {
                let mut rx = nodes[&id].raft.metrics();
                let _ = tokio::time::timeout(Duration::from_millis(200), rx.changed()).await;
            }
            other => panic!("no write within the deadline: {other:?}"),
        }
    }
}

pub fn topic(name: &str, n: u128) -> MetadataRecord {
    MetadataRecord::Topic {
        name: name.to_string(),
        topic_id: uuid::Uuid::from_u128(n),
    }
}

/// Waits until every node's image has `name`.
pub async fn everywhere(nodes: &BTreeMap<u64, Node>, name: &str) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    for node in nodes.values() {
        // The image changes by applying entries, which moves the metrics: wait on those.
        let mut rx = node.raft.metrics();
        while node
            .state
            .with_controller(|c| c.image().topic(name).is_none())
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name} never arrived"
            );
            let _ = tokio::time::timeout_at(deadline, rx.changed()).await;
        }
    }
}

/// The topic names in a node's image, sorted.
pub fn topic_names(node: &Node) -> Vec<String> {
    node.state.with_controller(|c| {
        let mut names: Vec<String> = c.image().topics.values().map(|t| t.name.clone()).collect();
        names.sort();
        names
    })
}
