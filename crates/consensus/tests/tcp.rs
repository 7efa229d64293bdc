//! Three controllers over loopback TCP (the controller listener's protocol): they elect a
//! leader, commit, fail over when the leader's process and listener go, and the old leader
//! rejoins from its log. Also: the listener closes a connection that announces an oversized
//! frame, without allocating for it.

mod common;

use common::{Node, everywhere, leader, start_node, topic, topic_names, write};
use openraft::BasicNode;
use sluice_consensus::{CONTROLLER_FRAME_BYTES_MAX, ControllerNetwork, MetadataQuorum};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

struct Running {
    node: Node,
    server: JoinHandle<()>,
}

async fn start(id: u64, dir: &Path, listener: TcpListener) -> Running {
    let node = start_node(id, dir, ControllerNetwork::default()).await;
    let quorum = MetadataQuorum::new(id, node.raft.clone(), node.state.clone());
    let server = tokio::spawn(sluice_consensus::serve(listener, Arc::new(quorum), None));
    Running { node, server }
}

/// A "kill": the listener and its connections go, then the node stops.
async fn kill(running: Running) {
    running.server.abort();
    let _ = running.server.await;
    running.node.raft.shutdown().await.unwrap();
}

fn nodes_of(running: &BTreeMap<u64, Running>) -> BTreeMap<u64, Node> {
    running
        .iter()
        .map(|(&id, r)| {
            let node = Node {
                raft: r.node.raft.clone(),
                state: r.node.state.clone(),
            };
            (id, node)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_controllers_over_tcp_elect_commit_and_fail_over() {
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut listeners = BTreeMap::new();
    let mut members = BTreeMap::new();
    for id in 1..=3u64 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        members.insert(id, BasicNode::new(addr.to_string()));
        listeners.insert(id, listener);
    }
    let mut running = BTreeMap::new();
    for (id, listener) in listeners {
        running.insert(id, start(id, dirs[id as usize - 1].path(), listener).await);
    }
    running[&1]
        .node
        .raft
        .initialize(members.clone())
        .await
        .unwrap();
    let nodes = nodes_of(&running);
    write(&nodes, topic("a", 1)).await;
    everywhere(&nodes, "a").await;

    let first = leader(&nodes).await;
    kill(running.remove(&first).unwrap()).await;
    let nodes = nodes_of(&running);
    let second = leader(&nodes).await;
    assert_ne!(second, first);
    write(&nodes, topic("b", 2)).await;
    everywhere(&nodes, "b").await;

    // The old leader restarts on its address, from its log, and catches up.
    let addr = &members[&first].addr;
    let listener = TcpListener::bind(addr).await.unwrap();
    running.insert(
        first,
        start(first, dirs[first as usize - 1].path(), listener).await,
    );
    let nodes = nodes_of(&running);
    everywhere(&nodes, "b").await;
    for node in nodes.values() {
        assert_eq!(topic_names(node), ["a", "b"]);
    }
    for (_, r) in running {
        kill(r).await;
    }
}

#[tokio::test]
async fn an_oversized_frame_closes_the_connection() {
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let running = start(1, dir.path(), listener).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let claimed = (CONTROLLER_FRAME_BYTES_MAX as u32) + 1;
    stream.write_all(&claimed.to_be_bytes()).await.unwrap();
    let mut buf = [0u8; 1];
    let read = tokio::time::timeout(common::DEADLINE, stream.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "closed, not answered: {read:?}"
    );
    kill(running).await;
}
