//! Three controllers in one process, each with its log and state machine on disk, joined by an
//! in-process network: initialize, commit metadata records, kill the leader and elect another,
//! then restart a node from its snapshot and see it catch up. Waits are on conditions with
//! deadlines (openraft's metrics), never on sleeps.

use openraft::BasicNode;
use openraft::alias::{SnapshotOf, VoteOf};
use openraft::error::{NetworkError, RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory, v2::RaftNetworkV2};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::rt::WatchReceiver;
use sluice_consensus::{LogStore, Raft, StateMachine, TypeConfig};
use sluice_controller::{ControllerConfig, MetadataRecord};
use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(30);

/// Who is reachable: a node taken out is unreachable, as a killed process is.
#[derive(Default)]
struct Router {
    nodes: Mutex<BTreeMap<u64, Raft>>,
}

impl Router {
    fn get(&self, id: u64) -> Result<Raft, Unreachable<TypeConfig>> {
        let nodes = self.nodes.lock().unwrap();
        nodes.get(&id).cloned().ok_or_else(|| {
            Unreachable::new(&std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                format!("node {id} is down"),
            ))
        })
    }
}

#[derive(Clone)]
struct Network(Arc<Router>);

struct Client {
    target: u64,
    router: Arc<Router>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Client;

    async fn new_client(&mut self, target: u64, _node: &BasicNode) -> Client {
        Client {
            target,
            router: self.0.clone(),
        }
    }
}

fn network_error(e: impl std::error::Error + 'static) -> NetworkError<TypeConfig> {
    NetworkError::new(&e)
}

impl RaftNetworkV2<TypeConfig> for Client {
    type SnapshotData = Cursor<Vec<u8>>;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        let raft = self.router.get(self.target)?;
        raft.append_entries(rpc)
            .await
            .map_err(|e| RPCError::Network(network_error(e)))
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        let raft = self.router.get(self.target)?;
        raft.vote(rpc)
            .await
            .map_err(|e| RPCError::Network(network_error(e)))
    }

    async fn full_snapshot(
        &mut self,
        vote: VoteOf<TypeConfig>,
        snapshot: SnapshotOf<TypeConfig, Self::SnapshotData>,
        _cancel: impl std::future::Future<Output = ReplicationClosed> + Send + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let raft = self.router.get(self.target)?;
        raft.install_full_snapshot(vote, snapshot)
            .await
            .map_err(|e| StreamingError::Network(network_error(e)))
    }
}

struct Node {
    raft: Raft,
    state: StateMachine,
}

async fn start(id: u64, dir: &Path, router: &Arc<Router>) -> Node {
    let log = LogStore::open(dir).unwrap();
    let state = StateMachine::open(dir, ControllerConfig::default()).unwrap();
    let config = Arc::new(sluice_consensus::raft_config().validate().unwrap());
    let raft = Raft::new(id, config, Network(router.clone()), log, state.clone())
        .await
        .unwrap();
    router.nodes.lock().unwrap().insert(id, raft.clone());
    Node { raft, state }
}

async fn stop(id: u64, nodes: &mut BTreeMap<u64, Node>, router: &Router) {
    router.nodes.lock().unwrap().remove(&id);
    let node = nodes.remove(&id).unwrap();
    node.raft.shutdown().await.unwrap();
}

async fn leader(nodes: &BTreeMap<u64, Node>) -> u64 {
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
async fn write(nodes: &BTreeMap<u64, Node>, record: MetadataRecord) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let id = leader(nodes).await;
        let attempt = nodes[&id].raft.client_write(record.clone());
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

fn topic(name: &str, n: u128) -> MetadataRecord {
    MetadataRecord::Topic {
        name: name.to_string(),
        topic_id: uuid::Uuid::from_u128(n),
    }
}

/// Waits until every node's image has `name`.
async fn everywhere(nodes: &BTreeMap<u64, Node>, name: &str) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    for node in nodes.values() {
        // The image changes by applying entries, which moves `last_applied`: wait on that.
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_controllers_elect_commit_fail_over_and_restart_from_a_snapshot() {
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let router = Arc::new(Router::default());
    let mut nodes = BTreeMap::new();
    for id in 1..=3u64 {
        nodes.insert(id, start(id, dirs[id as usize - 1].path(), &router).await);
    }
    let members: BTreeMap<u64, BasicNode> = (1..=3).map(|id| (id, BasicNode::default())).collect();
    nodes[&1].raft.initialize(members).await.unwrap();

    let first = leader(&nodes).await;
    write(&nodes, topic("a", 1)).await;
    everywhere(&nodes, "a").await;

    // The leader dies; another is elected, and takes writes.
    stop(first, &mut nodes, &router).await;
    let second = leader(&nodes).await;
    assert_ne!(second, first);
    write(&nodes, topic("b", 2)).await;
    everywhere(&nodes, "b").await;

    // The old leader comes back from its log alone and catches up.
    nodes.insert(
        first,
        start(first, dirs[first as usize - 1].path(), &router).await,
    );
    everywhere(&nodes, "b").await;

    // The third node snapshots, stops while a write commits without it, and comes back from
    // its snapshot and log.
    let follower = *nodes
        .keys()
        .find(|&&id| id != second && id != first)
        .unwrap();
    nodes[&follower].raft.trigger().snapshot().await.unwrap();
    nodes[&follower]
        .raft
        .wait(Some(DEADLINE))
        .metrics(|m| m.snapshot.is_some(), "a snapshot")
        .await
        .unwrap();
    stop(follower, &mut nodes, &router).await;
    write(&nodes, topic("c", 3)).await;
    let restarted = start(follower, dirs[follower as usize - 1].path(), &router).await;
    assert!(
        restarted
            .state
            .with_controller(|c| c.image().topic("b").is_some()),
        "the snapshot is loaded at open"
    );
    nodes.insert(follower, restarted);
    everywhere(&nodes, "c").await;
    for node in nodes.values() {
        let names = node.state.with_controller(|c| {
            let mut n: Vec<String> = c.image().topics.values().map(|t| t.name.clone()).collect();
            n.sort();
            n
        });
        assert_eq!(names, ["a", "b", "c"]);
    }
    for (_, node) in nodes {
        node.raft.shutdown().await.unwrap();
    }
}
