//! AlterPartition: a partition leader's proposal of a new in-sync set (Kafka's
//! `AlterPartition`, one partition), checked by `replication`'s partition rules after the
//! leader's broker epoch: the leader epoch must be the partition's, the partition epoch the one
//! the proposal was made against, every joining replica registered and unfenced, and the
//! leader in the set. It answers the new registration, whose partition epoch the leader
//! adopts for its next proposal; like every command, the image changes only when its record
//! is replayed.

use super::QuorumController;
use crate::error::ControllerError;
use crate::record::MetadataRecord;
use serde::{Deserialize, Serialize};
use sluice_replication::{AlterPartitionRequest, PartitionRegistration, ReplicationError};
use uuid::Uuid;

/// A leader's proposal for one partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlterPartition {
    pub broker_id: i32,
    pub broker_epoch: i64,
    pub topic_id: Uuid,
    pub partition: i32,
    pub leader_epoch: i32,
    /// The partition epoch of the registration the proposal changes.
    pub partition_epoch: i32,
    pub new_isr: Vec<i32>,
}

/// The registration a proposal left, as the leader needs it back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionState {
    pub leader: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub isr: Vec<i32>,
}

impl QuorumController {
    /// The record of the new in-sync set and the registration it leaves, or why not.
    pub fn alter_partition(
        &self,
        proposal: &AlterPartition,
    ) -> Result<(Vec<MetadataRecord>, PartitionState), ControllerError> {
        self.check_broker_epoch(proposal.broker_id, proposal.broker_epoch)?;
        let unknown =
            || ControllerError::UnknownTopicId(proposal.topic_id.to_string(), proposal.partition);
        let topic = self
            .image
            .topics
            .get(&proposal.topic_id)
            .ok_or_else(unknown)?;
        let current = topic
            .partitions
            .get(&proposal.partition)
            .ok_or_else(unknown)?;
        let mut changed: PartitionRegistration = current.clone();
        let request = AlterPartitionRequest {
            leader_id: proposal.broker_id,
            leader_epoch: proposal.leader_epoch,
            partition_epoch: proposal.partition_epoch,
            new_isr: proposal.new_isr.clone(),
        };
        let eligible = |b: i32| self.image.is_unfenced(b);
        changed
            .alter_partition(&request, eligible)
            .map_err(refusal)?;
        let record = MetadataRecord::PartitionChange {
            topic_id: proposal.topic_id,
            partition: proposal.partition,
            isr: changed.isr.clone(),
            leader: changed.leader,
            leader_epoch: changed.leader_epoch,
            partition_epoch: changed.partition_epoch,
        };
        let state = PartitionState {
            leader: changed.leader,
            leader_epoch: changed.leader_epoch,
            partition_epoch: changed.partition_epoch,
            isr: changed.isr,
        };
        Ok((vec![record], state))
    }
}

/// Why the partition rules refused a proposal, as the controller's error (each names Kafka's
/// code).
fn refusal(e: ReplicationError) -> ControllerError {
    match e {
        ReplicationError::FencedLeaderEpoch { request, current } => {
            ControllerError::FencedLeaderEpoch { request, current }
        }
        ReplicationError::InvalidUpdateVersion { request, current } => {
            ControllerError::InvalidUpdateVersion { request, current }
        }
        ReplicationError::IneligibleReplica(replica) => ControllerError::IneligibleReplica(replica),
        ReplicationError::NotLeaderOrFollower | ReplicationError::UnknownLeaderEpoch { .. } => {
            ControllerError::NotLeaderOrFollower
        }
        other => ControllerError::InvalidRequest(other.to_string()),
    }
}
