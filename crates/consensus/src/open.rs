//! Starting a node of the metadata log: its log and state machine opened from a directory,
//! Raft started on them, and a new log initialized with the configured voters. Every voter
//! initializes its own new log with the same voters (openraft allows that: the one that wins
//! the first election carries the membership), so a cluster forms with no extra step.
//!
//! Not owned here: where the directory is and who the voters are (the binary's settings).

use crate::{ControllerNetwork, ControllerTls, LogStore, MetadataQuorum, Raft, StateMachine};
use openraft::BasicNode;
use openraft::error::{InitializeError, RaftError};
use openraft::rt::WatchReceiver;
use sluice_controller::ControllerConfig;
use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// A voter of the metadata log: its node id and controller-listener address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Voter {
    pub id: u64,
    pub address: String,
}

/// Opens the metadata log in `dir` and starts this node's Raft on it: as one of `voters`, or,
/// when they do not name `node_id`, as a learner that the active controller adds
/// (`MetadataQuorum::join_as_learner`).
pub async fn open(
    node_id: u64,
    dir: &Path,
    voters: &[Voter],
    config: ControllerConfig,
    tls: Option<ControllerTls>,
) -> io::Result<Arc<MetadataQuorum>> {
    let log = LogStore::open(dir)?;
    let state = StateMachine::open(dir, config)?;
    let raft_config = crate::raft_config().validate().map_err(io::Error::other)?;
    // A voter's connections to the others leave from its own controller address.
    let own = voters.iter().find(|v| v.id == node_id);
    let local = own.and_then(|v| crate::network::specific_ip(&v.address));
    let network = ControllerNetwork::from_address(local).with_tls(tls);
    let raft = Raft::new(
        node_id,
        Arc::new(raft_config),
        network.clone(),
        log,
        state.clone(),
    )
    .await
    .map_err(io::Error::other)?;
    let initialized = raft.is_initialized().await.map_err(io::Error::other)?;
    let voter = voters.iter().any(|v| v.id == node_id);
    if !initialized && voter {
        let members: BTreeMap<u64, BasicNode> = voters
            .iter()
            .map(|v| (v.id, BasicNode::new(v.address.clone())))
            .collect();
        match raft.initialize(members).await {
            Ok(()) => {}
            // Another voter's first election reached this node first: already a member.
            Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
            Err(e) => return Err(io::Error::other(e)),
        }
        tracing::info!(node_id, voters = voters.len(), "metadata log initialized");
    }
    let quorum = MetadataQuorum::new(node_id, raft, state).with_network(network);
    Ok(Arc::new(quorum))
}

impl MetadataQuorum {
    /// Waits until some controller is known to be active, for at most `limit`.
    pub async fn wait_for_leader(&self, limit: Duration) -> Option<u64> {
        let waited = self
            .raft()
            .wait(Some(limit))
            .metrics(|m| m.current_leader.is_some(), "an active controller")
            .await;
        waited.ok().and_then(|m| m.current_leader)
    }

    /// Stops this node's Raft (its log is already durable).
    pub async fn shutdown(&self) {
        if let Err(e) = self.raft().shutdown().await {
            tracing::warn!(error = %e, "the metadata log did not stop cleanly");
        }
    }

    /// Whether this node is the active controller.
    pub fn is_active(&self) -> bool {
        let metrics = self.raft().metrics();
        let metrics = metrics.borrow_watched();
        metrics.current_leader == Some(self.node_id())
    }
}
