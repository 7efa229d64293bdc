//! A cluster of one, as `sluice serve` runs it: the node bootstraps its metadata log, its
//! broker registers and is unfenced, and after a restart (a new incarnation, the controller
//! restarted with it) it is back at once under a new broker epoch, with the cluster id kept.

use sluice_cluster::{ClusterConfig, ClusterNode};
use sluice_consensus::Voter;
use sluice_controller::{ControllerConfig, Endpoint, Registration};
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(30);

fn config(dir: &std::path::Path) -> ClusterConfig {
    ClusterConfig {
        node_id: 1,
        metadata_dir: dir.to_path_buf(),
        controller_listen: None,
        voters: vec![Voter {
            id: 1,
            address: "local".into(),
        }],
        controller: ControllerConfig::default(),
        heartbeat_interval_ms: 500,
        controller_tls: None,
    }
}

fn registration() -> Registration {
    Registration {
        broker_id: 1,
        incarnation_id: uuid::Uuid::new_v4(),
        directory_id: uuid::Uuid::new_v4(),
        endpoints: vec![Endpoint {
            name: "PLAINTEXT".into(),
            host: "127.0.0.1".into(),
            port: 9092,
        }],
        rack: None,
    }
}

async fn start(dir: &std::path::Path, cluster_id: &str) -> (ClusterNode, String) {
    let node = ClusterNode::start(config(dir)).await.unwrap();
    assert_eq!(node.wait_for_controller(DEADLINE).await, Some(1));
    let id = node.bootstrap(cluster_id).await.unwrap();
    node.run_broker(registration());
    assert!(node.wait_unfenced(DEADLINE).await, "never unfenced");
    (node, id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_node_registers_and_comes_back_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (node, id) = start(dir.path(), "first").await;
    assert_eq!(id, "first");
    let epoch = node.broker_status().broker_epoch.unwrap();
    let image = node.image();
    assert!(!image.brokers[&1].fenced);
    assert_eq!(image.brokers[&1].endpoints[0].port, 9092);
    assert_eq!(node.controller_id(), Some(1));
    node.shutdown().await;
    drop(node); // its lock on the metadata log goes with it
    // The controlled shutdown fenced it; the log kept that.
    let (node, id) = start(dir.path(), "second").await;
    assert_eq!(
        id, "first",
        "the cluster id is the log's, not the new process's"
    );
    let again = node.broker_status().broker_epoch.unwrap();
    assert!(again > epoch, "a new incarnation gets a new broker epoch");
    node.shutdown().await;
}
