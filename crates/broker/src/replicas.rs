//! The broker's side of the replica manager (`sluice_replica`): where the other brokers are
//! (from the published image), and the in-sync set proposals its leaders make, sent to the
//! controller as AlterPartition with this broker's epoch and answered back.
//!
//! Not owned here: the replication rules and the fetchers (`sluice_replica`,
//! `sluice_replication`), the leader side of Fetch on the wire (`handlers/fetch.rs`).

use crate::server::Broker;
use sluice_controller::{
    AlterPartition, ControllerCommand, ControllerError, ControllerReply, MetadataImage,
};
use sluice_replica::{PartitionRegistration, Proposal, ReplicationError};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// How long a proposal waits for the controller; its leader sends it again after
/// `alter_partition_retry_ms` anyway.
const PROPOSAL_WAIT: Duration = Duration::from_secs(5);

/// The other brokers' inter-broker listeners (by that listener's name), as this broker's
/// published image has them.
pub(crate) struct ImageAddresses {
    pub image: watch::Receiver<Arc<MetadataImage>>,
    pub listener: String,
}

impl sluice_replica::BrokerAddresses for ImageAddresses {
    fn address_of(&self, broker_id: i32) -> Option<String> {
        crate::peers::address_of(&self.image.borrow(), broker_id, &self.listener)
    }
}

impl Broker {
    /// For a broker's own write (transaction markers) that ends before `offset`: true once it
    /// is on every in-sync replica of a partition with followers (Kafka's `acks=-1`), or
    /// fsynced on one without; false if that will not happen here.
    pub(crate) async fn wait_written(
        &self,
        (topic, index): (&str, i32),
        partition: &sluice_storage::Partition,
        offset: i64,
    ) -> bool {
        match self.replicas.leader(topic, index) {
            Some(leader) => leader.wait_committed(offset).await.is_ok(),
            // A replicated partition without a leader here: written, but not committed here.
            None if !partition.log().is_sole_replica() => false,
            None => partition.wait_durable(offset).await,
        }
    }
}

/// Sends the leaders' proposals to the controller until shutdown, one at a time (a leader
/// has at most one in flight).
pub(crate) async fn send_proposals(
    broker: Weak<Broker>,
    mut proposals: mpsc::Receiver<Proposal>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    loop {
        let proposal = tokio::select! {
            proposal = proposals.recv() => proposal,
            _ = shutdown.cancelled() => return,
        };
        let Some(proposal) = proposal else { return };
        let Some(broker) = broker.upgrade() else {
            return;
        };
        let result = alter_partition(&broker, &proposal).await;
        if let Err(e) = &result {
            tracing::info!(topic = %proposal.topic, partition = proposal.partition, error = %e, "in-sync set proposal refused");
        }
        let (topic, index) = (&proposal.topic, proposal.partition);
        broker
            .replicas
            .on_alter_partition_response(topic, index, &proposal.request, result);
    }
}

async fn alter_partition(
    broker: &Broker,
    proposal: &Proposal,
) -> Result<PartitionRegistration, ReplicationError> {
    let node = broker.config.node_id;
    let image = broker.published_image();
    let broker_epoch = image
        .brokers
        .get(&node)
        .map(|b| b.broker_epoch)
        .ok_or(ReplicationError::NotLeaderOrFollower)?;
    let current = image
        .topics
        .get(&proposal.topic_id)
        .and_then(|t| t.partitions.get(&proposal.partition))
        .cloned()
        .ok_or(ReplicationError::NotLeaderOrFollower)?;
    let request = &proposal.request;
    let command = ControllerCommand::AlterPartition(AlterPartition {
        broker_id: node,
        broker_epoch,
        topic_id: proposal.topic_id,
        partition: proposal.partition,
        leader_epoch: request.leader_epoch,
        partition_epoch: request.partition_epoch,
        new_isr: request.new_isr.clone(),
    });
    match broker.cluster.submit(command, PROPOSAL_WAIT).await {
        Ok(ControllerReply::PartitionAltered(state)) => Ok(PartitionRegistration {
            replicas: current.replicas,
            isr: state.isr,
            leader: state.leader,
            leader_epoch: state.leader_epoch,
            partition_epoch: state.partition_epoch,
        }),
        Ok(ControllerReply::Refused(e)) => Err(refusal(&e)),
        Ok(other) => {
            tracing::error!(
                ?other,
                "the controller answered AlterPartition with another reply"
            );
            Err(ReplicationError::InvalidRequest(
                "unexpected controller reply",
            ))
        }
        // Not answered: the leader sends it again.
        Err(_) => Err(ReplicationError::InvalidRequest(
            "the controller did not answer",
        )),
    }
}

/// The controller's refusal as the leader's state machine knows it; anything it does not
/// name is retried.
fn refusal(e: &ControllerError) -> ReplicationError {
    match e {
        ControllerError::FencedLeaderEpoch { request, current } => {
            ReplicationError::FencedLeaderEpoch {
                request: *request,
                current: *current,
            }
        }
        ControllerError::InvalidUpdateVersion { request, current } => {
            ReplicationError::InvalidUpdateVersion {
                request: *request,
                current: *current,
            }
        }
        ControllerError::IneligibleReplica(replica) => {
            ReplicationError::IneligibleReplica(*replica)
        }
        ControllerError::NotLeaderOrFollower | ControllerError::UnknownTopicId(..) => {
            ReplicationError::NotLeaderOrFollower
        }
        _ => ReplicationError::InvalidRequest("refused by the controller"),
    }
}
