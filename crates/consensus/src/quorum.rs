//! `MetadataQuorum`: controller commands through the metadata log. A command is decided by
//! the `QuorumController` on the active controller (the Raft leader), against an image that
//! holds everything committed before it (a ReadIndex round first), and its records are
//! committed as one batch and applied before the answer returns. Commands run one at a time,
//! so none decides on records that might not commit.
//!
//! A node that is not the active controller hands a command on to the one that is, over the
//! controller listener (`submit`); the node learns who that is from Raft. A controller that
//! has just become active gives every broker a full session before it judges any
//! (`QuorumController::become_active`, once per term it leads).
//!
//! Not owned here: what a command decides (`sluice-controller`), and the wire format of the
//! hand-over (`network`).

use crate::{MetadataBatch, Raft, StateMachine};
use openraft::ReadPolicy;
use openraft::rt::WatchReceiver;
use serde::{Deserialize, Serialize};
use sluice_controller::{ControllerCommand, ControllerReply, MetadataRecord, QuorumController};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum QuorumError {
    /// This node is not the active controller (NOT_CONTROLLER); `leader` is, if known.
    #[error("not the active controller; the active one is {leader:?}")]
    NotController { leader: Option<u64> },
    /// The log could not commit the command (the controller lost its quorum or stopped).
    #[error("the metadata log did not commit: {0}")]
    NotCommitted(String),
    /// The active controller could not be reached to hand the command on.
    #[error("the active controller {leader} could not be reached: {why}")]
    Unreachable { leader: u64, why: String },
}

pub struct MetadataQuorum {
    node_id: u64,
    raft: Raft,
    state: StateMachine,
    /// One command at a time; holds the term this node last became active in.
    turn: tokio::sync::Mutex<Option<u64>>,
    /// How connections to other controllers are made (where from, TLS).
    network: crate::ControllerNetwork,
}

impl MetadataQuorum {
    pub fn new(node_id: u64, raft: Raft, state: StateMachine) -> MetadataQuorum {
        MetadataQuorum {
            node_id,
            raft,
            state,
            turn: tokio::sync::Mutex::new(None),
            network: crate::ControllerNetwork::default(),
        }
    }

    /// Commands handed on and requests to join go over `network` (see `ControllerNetwork`).
    pub fn with_network(mut self, network: crate::ControllerNetwork) -> MetadataQuorum {
        self.network = network;
        self
    }

    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    pub fn state(&self) -> &StateMachine {
        &self.state
    }

    pub fn node_id(&self) -> u64 {
        self.node_id
    }

    /// The active controller as this node knows it.
    pub fn leader(&self) -> Option<u64> {
        self.raft.metrics().borrow_watched().current_leader
    }

    /// The controller-listener address of node `id`, as the membership has it.
    pub fn address_of(&self, id: u64) -> Option<String> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow_watched();
        let membership = metrics.membership_config.membership();
        membership.get_node(&id).map(|n| n.addr.clone())
    }

    /// Runs `command` on the active controller, wherever it is: here, or handed on to it.
    pub async fn submit(
        &self,
        command: ControllerCommand,
        now_ms: impl Fn() -> i64,
    ) -> Result<ControllerReply, QuorumError> {
        match self.execute(command.clone(), now_ms()).await {
            Err(QuorumError::NotController {
                leader: Some(leader),
            }) if leader != self.node_id => {
                let address = self.address_of(leader).ok_or(QuorumError::NotController {
                    leader: Some(leader),
                })?;
                crate::network::send_command((leader, &address), &self.network, &command).await
            }
            other => other,
        }
    }

    /// Adds `node_id` (at controller listener `address`) as a learner: it receives the
    /// metadata log and votes in nothing. Only the active controller does it.
    pub async fn add_learner(&self, node_id: u64, address: String) -> Result<(), QuorumError> {
        if !self.is_active() {
            return Err(QuorumError::NotController {
                leader: self.leader(),
            });
        }
        let node = openraft::BasicNode::new(address);
        match self.raft.add_learner(node_id, node, false).await {
            Ok(_) => Ok(()),
            Err(e) => match e.forward_to_leader() {
                Some(f) => Err(QuorumError::NotController {
                    leader: f.leader_id,
                }),
                None => Err(QuorumError::NotCommitted(e.to_string())),
            },
        }
    }

    /// Asks the voters, at their controller listeners, until the active one has added this
    /// node as a learner.
    pub async fn join_as_learner(
        &self,
        voters: &[crate::Voter],
        own_address: &str,
    ) -> Result<(), QuorumError> {
        let mut last = QuorumError::NotController { leader: None };
        let mut targets: Vec<&crate::Voter> = voters.iter().collect();
        while let Some(voter) = targets.pop() {
            let sent = crate::network::send_add_learner(
                voter.id,
                &voter.address,
                &self.network,
                self.node_id,
                own_address,
            );
            match sent.await {
                Ok(()) => return Ok(()),
                Err(QuorumError::NotController {
                    leader: Some(leader),
                }) if leader != voter.id => {
                    // Ask the one it named next.
                    if let Some(named) = voters.iter().find(|v| v.id == leader) {
                        targets.push(named);
                    }
                    last = QuorumError::NotController {
                        leader: Some(leader),
                    };
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Runs `command` if this node is the active controller (NotController otherwise).
    pub async fn execute(
        &self,
        command: ControllerCommand,
        now_ms: i64,
    ) -> Result<ControllerReply, QuorumError> {
        self.run(now_ms, |c| c.execute(command, now_ms)).await
    }

    /// Time passes on the active controller: brokers whose session expired are fenced.
    /// Does nothing on another node.
    pub async fn tick(&self, now_ms: i64) -> Result<(), QuorumError> {
        if self.leader() != Some(self.node_id) {
            return Ok(());
        }
        // A decision costs a ReadIndex round with the voters; an idle cluster needs none.
        // (A look at times from before this node became active may say yes; the decision,
        // after `become_active`, then fences no one.)
        if !self.state.with_controller(|c| c.sessions_expired(now_ms)) {
            return Ok(());
        }
        self.run(now_ms, |c| (c.tick(now_ms), ())).await
    }

    /// Runs `decide` on the active controller's up-to-date controller; commits the records it
    /// returns as one entry and returns its answer once they are applied.
    pub async fn run<T>(
        &self,
        now_ms: i64,
        decide: impl FnOnce(&mut QuorumController) -> (Vec<MetadataRecord>, T),
    ) -> Result<T, QuorumError> {
        let mut active_term = self.turn.lock().await;
        if let Err(e) = self.raft.ensure_linearizable(ReadPolicy::ReadIndex).await {
            let named = e.forward_to_leader().and_then(|f| f.leader_id);
            let leader = named.or(self.raft.current_leader().await);
            return match leader {
                Some(id) if id == self.node_id => Err(QuorumError::NotCommitted(e.to_string())),
                _ if e.forward_to_leader().is_some() => Err(QuorumError::NotController { leader }),
                _ => Err(QuorumError::NotCommitted(e.to_string())),
            };
        }
        let term = self.raft.metrics().borrow_watched().current_term;
        if *active_term != Some(term) {
            self.state.with_controller(|c| c.become_active(now_ms));
            *active_term = Some(term);
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
