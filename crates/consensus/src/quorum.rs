//! `MetadataQuorum`: controller commands through the metadata log. A command is decided by
//! the `QuorumController` on the active controller (the Raft leader), against an image that
//! holds everything committed before it (a ReadIndex round first), and its records are
//! committed as one batch and applied before the answer returns. Commands run one at a time,
//! so none decides on records that might not commit.
//!
//! Not owned here: what a command decides (`sluice-controller`), and forwarding a command to
//! the active controller from another node (its callers do that with the leader this names).

use crate::{MetadataBatch, Raft, StateMachine};
use openraft::ReadPolicy;
use sluice_controller::{MetadataRecord, QuorumController};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuorumError {
    /// This node is not the active controller (NOT_CONTROLLER); `leader` is, if known.
    #[error("not the active controller; the active one is {leader:?}")]
    NotController { leader: Option<u64> },
    /// The log could not commit the command (the controller lost its quorum or stopped).
    #[error("the metadata log did not commit: {0}")]
    NotCommitted(String),
}

pub struct MetadataQuorum {
    node_id: u64,
    raft: Raft,
    state: StateMachine,
    /// One command at a time.
    turn: tokio::sync::Mutex<()>,
}

impl MetadataQuorum {
    pub fn new(node_id: u64, raft: Raft, state: StateMachine) -> MetadataQuorum {
        MetadataQuorum {
            node_id,
            raft,
            state,
            turn: tokio::sync::Mutex::new(()),
        }
    }

    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    /// Runs `decide` on the active controller's up-to-date controller; commits the records it
    /// returns as one entry and returns its answer once they are applied.
    pub async fn run<T>(
        &self,
        decide: impl FnOnce(&mut QuorumController) -> (Vec<MetadataRecord>, T),
    ) -> Result<T, QuorumError> {
        let _turn = self.turn.lock().await;
        if let Err(e) = self.raft.ensure_linearizable(ReadPolicy::ReadIndex).await {
            let named = e.forward_to_leader().and_then(|f| f.leader_id);
            let leader = named.or(self.raft.current_leader().await);
            return match leader {
                Some(id) if id == self.node_id => Err(QuorumError::NotCommitted(e.to_string())),
                _ if e.forward_to_leader().is_some() => Err(QuorumError::NotController { leader }),
                _ => Err(QuorumError::NotCommitted(e.to_string())),
            };
        }
        let (records, answer) = self.state.with_controller(decide);
        if !records.is_empty() {
            self.raft
                .client_write(MetadataBatch(records))
                .await
                .map_err(|e| match e.forward_to_leader() {
                    Some(f) => QuorumError::NotController {
                        leader: f.leader_id,
                    },
                    None => QuorumError::NotCommitted(e.to_string()),
                })?;
        }
        Ok(answer)
    }
}
