//! The metadata log on openraft, and the only crate that knows openraft: its type
//! configuration, the log storage on disk (`log_store`: entries fsynced before openraft hears
//! they are stored) and the state machine that applies each committed metadata record to the
//! controller (`state_machine`: snapshots are the metadata image as records). Consensus is not
//! ours; this crate is the glue, so that openraft's API churn between alphas stays here.
//!
//! The controllers talk over TCP (`network`: openraft's RPCs in length-prefixed postcard
//! frames, bounded and timed out, on the controller listener).
//!
//! Not owned here: what the records mean (`sluice-controller`), and who the controllers are
//! (the binary's `--controllers`).

mod log_store;
mod network;
mod open;
mod quorum;
mod state_machine;

pub use log_store::LogStore;
pub use network::{
    CONTROLLER_FRAME_BYTES_MAX, ControllerNetwork, ControllerTls, PeerClient, serve,
};
pub use open::{Voter, open};
pub use quorum::{MetadataQuorum, QuorumError};
pub use state_machine::StateMachine;

use serde::{Deserialize, Serialize};
use sluice_controller::MetadataRecord;

/// One entry of the metadata log: the records of one controller decision, applied together
/// or not at all (a topic never exists without its partitions), as KRaft's atomic batches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataBatch(pub Vec<MetadataRecord>);

impl std::fmt::Display for MetadataBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.as_slice() {
            [] => write!(f, "no records"),
            [one] => write!(f, "{one}"),
            [first, rest @ ..] => write!(f, "{first} and {} more", rest.len()),
        }
    }
}

openraft::declare_raft_types!(
    /// Sluice's metadata log: entries carry batches of metadata records; node ids are
    /// `--node-id`s.
    pub TypeConfig:
        D = MetadataBatch,
        R = (),
        NodeId = u64,
        Node = openraft::BasicNode,
);

/// A controller's raft node.
pub type Raft = openraft::Raft<TypeConfig, StateMachine>;

/// Raft timing for a loaded two-core machine: openraft's defaults (150-300 ms elections)
/// false-fire under load, so a follower waits 500-1000 ms without a heartbeat (sent every
/// 150 ms) before it stands. openraft's leader lease is the longest election timeout: a
/// follower refuses to vote while it heard from a leader within it, so a dead leader is
/// replaced about 1.5-2 s after its last heartbeat (measured with
/// bench/scripts/cluster_failover.py; Kafka's KRaft defaults take longer). A pre-vote round
/// keeps a node that was cut off from disrupting the leader when it returns.
pub fn raft_config() -> openraft::Config {
    openraft::Config {
        cluster_name: "sluice-metadata".into(),
        heartbeat_interval: 150,
        election_timeout_min: 500,
        election_timeout_max: 1_000,
        enable_pre_vote: Some(true),
        ..Default::default()
    }
}
