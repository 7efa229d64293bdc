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
mod common;

use common::{DEADLINE, Node, everywhere, leader, start_node, topic, topic_names, write};
use sluice_consensus::{Raft, TypeConfig};
use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::Path;
use std::sync::{Arc, Mutex};

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

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        let raft = self.router.get(self.target)?;
        raft.pre_vote(rpc)
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

async fn start(id: u64, dir: &Path, router: &Arc<Router>) -> Node {
    let node = start_node(id, dir, Network(router.clone())).await;
    router.nodes.lock().unwrap().insert(id, node.raft.clone());
    node
}

async fn stop(id: u64, nodes: &mut BTreeMap<u64, Node>, router: &Router) {
    router.nodes.lock().unwrap().remove(&id);
    let node = nodes.remove(&id).unwrap();
    node.raft.shutdown().await.unwrap();
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
        assert_eq!(topic_names(node), ["a", "b", "c"]);
    }
    for (_, node) in nodes {
        node.raft.shutdown().await.unwrap();
    }
}
