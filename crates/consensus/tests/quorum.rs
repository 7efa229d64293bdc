//! Controller commands through the metadata log, on three controllers over TCP: the active
//! controller decides and commits a command's records as one entry, every controller's image
//! follows, and a controller that is not active says which one is.

mod common;

use common::{Node, everywhere, leader, start_node, topic_names};
use openraft::BasicNode;
use sluice_consensus::{ControllerNetwork, MetadataQuorum, QuorumError};
use sluice_controller::{
    BrokerHeartbeat, ControllerCommand, ControllerError, ControllerReply, Endpoint, NewTopic,
    Registration,
};
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::net::TcpListener;

fn registration(broker: i32) -> Registration {
    Registration {
        broker_id: broker,
        incarnation_id: uuid::Uuid::from_u128(broker as u128),
        directory_id: uuid::Uuid::from_u128(broker as u128),
        endpoints: vec![Endpoint {
            name: "PLAINTEXT".into(),
            host: "127.0.0.1".into(),
            port: 9092 + broker as u16,
        }],
        rack: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_commit_as_one_entry_and_every_image_follows() {
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut members = BTreeMap::new();
    let mut nodes = BTreeMap::new();
    let mut servers = Vec::new();
    let mut listeners = Vec::new();
    for id in 1..=3u64 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        members.insert(
            id,
            BasicNode::new(listener.local_addr().unwrap().to_string()),
        );
        let node = start_node(
            id,
            dirs[id as usize - 1].path(),
            ControllerNetwork::default(),
        )
        .await;
        listeners.push(listener);
        nodes.insert(id, node);
    }
    let quorums: BTreeMap<u64, Arc<MetadataQuorum>> = nodes
        .iter()
        .map(|(&id, n): (&u64, &Node)| {
            let quorum = MetadataQuorum::new(id, n.raft.clone(), n.state.clone());
            (id, Arc::new(quorum))
        })
        .collect();
    for (listener, quorum) in listeners.into_iter().zip(quorums.values()) {
        servers.push(tokio::spawn(sluice_consensus::serve(
            listener,
            quorum.clone(),
            None,
        )));
    }
    nodes[&1].raft.initialize(members).await.unwrap();
    let active = leader(&nodes).await;

    // A controller that is not active names the one that is.
    let passive = *quorums.keys().find(|&&id| id != active).unwrap();
    nodes[&passive]
        .raft
        .wait(Some(common::DEADLINE))
        .metrics(
            |m| m.current_leader == Some(active),
            "the passive node knows the leader",
        )
        .await
        .unwrap();
    let refused = quorums[&passive].run(0, |_| (Vec::new(), ())).await;
    assert_eq!(
        refused,
        Err(QuorumError::NotController {
            leader: Some(active)
        })
    );

    let q = &quorums[&active];
    for broker in 1..=3 {
        let epoch = q
            .run(0, |c| match c.register_broker(registration(broker), 0) {
                Ok((records, epoch)) => (records, epoch),
                Err(e) => panic!("{e}"),
            })
            .await
            .unwrap();
        let heartbeat = BrokerHeartbeat {
            broker_id: broker,
            broker_epoch: epoch,
            caught_up: true,
            want_fence: false,
            want_shutdown: false,
        };
        let fenced = q
            .run(0, |c| {
                let (records, reply) = c.heartbeat(heartbeat, 0).unwrap();
                (records, reply.fenced)
            })
            .await
            .unwrap();
        assert!(!fenced);
    }
    let orders = NewTopic {
        name: "orders".into(),
        partitions: 12,
        replication_factor: 1,
        assignments: Vec::new(),
        configs: Vec::new(),
    };
    let created = q
        .run(0, |c| {
            let (records, mut results) = c.create_topics(&[orders]);
            (records, results.remove(0))
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(created.partitions, 12);
    everywhere(&nodes, "orders").await;
    // Every controller's image is the active one's, partitions included (one entry: a topic
    // is never seen without them).
    let image = |n: &Node| n.state.with_controller(|c| c.image().clone());
    let expected = image(&nodes[&active]);
    assert_eq!(expected.topic("orders").unwrap().partitions.len(), 12);
    for node in nodes.values() {
        assert_eq!(topic_names(node), ["orders"]);
        assert_eq!(image(node), expected);
    }

    // A command given to a passive controller is handed to the active one over the controller
    // listener, and its records reach the passive node's published image.
    let now = || 0;
    let reply = quorums[&passive]
        .submit(ControllerCommand::RegisterBroker(registration(4)), now)
        .await
        .unwrap();
    let ControllerReply::Registered(epoch) = reply else {
        panic!("{reply:?}");
    };
    let mut images = nodes[&passive].state.images();
    let image = images
        .wait_for(|image| {
            image
                .brokers
                .get(&4)
                .is_some_and(|b| b.broker_epoch == epoch)
        })
        .await
        .unwrap()
        .clone();
    assert!(
        image.brokers[&4].fenced,
        "a registered broker starts fenced"
    );
    // A refusal comes back as the controller's error, not as a failure of the hand-over.
    let stale = BrokerHeartbeat {
        broker_id: 4,
        broker_epoch: epoch - 1,
        caught_up: true,
        want_fence: false,
        want_shutdown: false,
    };
    let reply = quorums[&passive]
        .submit(ControllerCommand::Heartbeat(stale), now)
        .await
        .unwrap();
    assert!(
        matches!(
            reply,
            ControllerReply::Refused(ControllerError::StaleBrokerEpoch { broker: 4, .. })
        ),
        "{reply:?}"
    );
    for server in servers {
        server.abort();
    }
    for (_, node) in nodes {
        node.raft.shutdown().await.unwrap();
    }
}
