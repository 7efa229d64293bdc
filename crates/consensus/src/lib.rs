//! The metadata log on openraft, and the only crate that knows openraft: its type
//! configuration, the log storage on disk (`log_store`: entries fsynced before openraft hears
//! they are stored) and the state machine that applies each committed metadata record to the
//! controller (`state_machine`: snapshots are the metadata image as records). Consensus is not
//! ours; this crate is the glue, so that openraft's API churn between alphas stays here.
//!
//! Not owned here: what the records mean (`sluice-controller`), and the network between the
//! controllers (next: the controller listener).

mod log_store;
mod state_machine;

pub use log_store::LogStore;
pub use state_machine::StateMachine;

openraft::declare_raft_types!(
    /// Sluice's metadata log: entries carry metadata records; node ids are `--node-id`s.
    pub TypeConfig:
        D = sluice_controller::MetadataRecord,
        R = (),
        NodeId = u64,
        Node = openraft::BasicNode,
);

/// A controller's raft node.
pub type Raft = openraft::Raft<TypeConfig, StateMachine>;
