//! The metadata image: the one place handlers ask about the cluster. Which brokers exist and
//! where they are reached, which one is the controller, which broker leads each partition in
//! which leader epoch with which replicas and in-sync set, which broker coordinates a group or
//! a transactional id, and which broker ids a replica assignment may name.
//!
//! Everything comes from the metadata log's committed image. Brokers, the controller and the
//! cluster id are read from the newest image (`ClusterView`, which the binary gives the
//! broker): every unfenced broker, at its registered endpoint for the listener a request came
//! in on (for the in-process gateway's loopback listener, the other brokers' client
//! listeners), and this node always (it is serving the request). Topics, partitions, leaders and
//! coordinators are read from the image this broker has published (`publisher`), so a
//! partition this broker is told it leads has its log here.
//!
//! Not owned here: the image itself (`sluice-controller`), the logs (storage's
//! `LogManager`), and the wire shapes (each handler builds its own response).

use crate::server::{Broker, Endpoint};
use kafka_protocol::error::ResponseError;
use sluice_controller::{NO_LEADER, PartitionRegistration};
use sluice_storage::Partition;
use sluice_storage::leader_epoch::UNDEFINED_EPOCH;
use std::sync::Arc;

/// What the broker reads of the cluster: the committed metadata image, and who the active
/// controller is. The binary implements it over the metadata log (`sluice-cluster`).
pub trait ClusterView: Send + Sync + std::fmt::Debug {
    fn image(&self) -> Arc<sluice_controller::MetadataImage>;
    fn controller_id(&self) -> Option<i32>;
    /// A block of producer ids for this broker from the active controller: `(first, count)`.
    fn allocate_producer_ids(
        &self,
    ) -> futures::future::BoxFuture<'static, Result<(i64, i64), String>>;
    /// Runs `command` on the active controller, retrying while none answers, at most
    /// `limit`. A refusal is `Ok(ControllerReply::Refused)`; `Err` says no controller answered.
    fn submit(
        &self,
        command: sluice_controller::ControllerCommand,
        limit: std::time::Duration,
    ) -> futures::future::BoxFuture<'static, Result<sluice_controller::ControllerReply, String>>;
}

/// A broker as clients reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BrokerNode {
    pub id: i32,
    pub host: String,
    pub port: u16,
}

/// Who holds a partition, as Metadata and the leader-epoch checks answer it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PartitionLeadership {
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    /// Replicas whose copy cannot be served (a log taken offline by a failed write or fsync).
    pub offline_replicas: Vec<i32>,
}

/// A topic: its name and id, whether it is internal, and each partition's leadership by index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TopicImage {
    pub name: String,
    pub id: uuid::Uuid,
    pub internal: bool,
    pub partitions: Vec<(i32, PartitionLeadership)>,
}

/// The image as handlers read it. Brokers are named as the listener a request came in on
/// advertises them (Kafka answers per listener), so the questions that name brokers take that
/// listener's endpoint.
pub(crate) struct MetadataImage<'a> {
    broker: &'a Broker,
}

impl Broker {
    pub(crate) fn metadata(&self) -> MetadataImage<'_> {
        MetadataImage { broker: self }
    }
}

impl MetadataImage<'_> {
    /// The cluster's id: the metadata log's, or this data directory's until the log has one.
    pub(crate) fn cluster_id(&self) -> String {
        let image = self.broker.cluster.image();
        image
            .cluster_id
            .clone()
            .unwrap_or_else(|| self.broker.cluster_id.clone())
    }

    /// This node's id.
    pub(crate) fn local_node_id(&self) -> i32 {
        self.broker.config.node_id
    }

    /// The controller clients are told of: the active controller when it is also a live
    /// broker, else this broker (clients send admin requests to "the controller", and a
    /// controller-only node has no Kafka listener; any broker hands such requests on, as
    /// KRaft brokers answer with a live broker). -1 while no controller is known.
    pub(crate) fn controller_id(&self) -> i32 {
        let Some(active) = self.broker.cluster.controller_id() else {
            return -1;
        };
        let image = self.broker.cluster.image();
        let live = image.brokers.get(&active).is_some_and(|b| !b.fenced);
        if live { active } else { self.local_node_id() }
    }

    /// Every live (unfenced) broker, as reached through the listener `endpoint` belongs to,
    /// and this node, which is serving the request whatever the controller last decided.
    pub(crate) fn brokers(&self, endpoint: &Endpoint) -> Vec<BrokerNode> {
        let registered = self.registered_brokers(endpoint);
        let live = registered.into_iter().filter(|(_, fenced)| !fenced);
        live.map(|(b, _)| b).collect()
    }

    /// Every registered broker, fenced or not (DescribeCluster's `include_fenced_brokers`),
    /// with whether it is fenced; this node counts as live.
    pub(crate) fn registered_brokers(&self, endpoint: &Endpoint) -> Vec<(BrokerNode, bool)> {
        let image = self.broker.cluster.image();
        let local = self.local_node_id();
        let mut brokers = vec![(self.local_node(endpoint), false)];
        for b in image.brokers.values().filter(|b| b.broker_id != local) {
            let name = remote_listener(endpoint, &self.broker.config.inter_broker.listener);
            if let Some(e) = b.endpoints.iter().find(|e| e.name == name) {
                let node = BrokerNode {
                    id: b.broker_id,
                    host: e.host.clone(),
                    port: e.port,
                };
                brokers.push((node, b.fenced));
            }
        }
        brokers.sort_by_key(|(b, _)| b.id);
        brokers
    }

    /// Every topic of the cluster.
    pub(crate) fn topics(&self) -> Vec<TopicImage> {
        let image = self.broker.published_image();
        image.topics.values().map(|t| self.topic_image(t)).collect()
    }

    pub(crate) fn topic(&self, name: &str) -> Option<TopicImage> {
        let image = self.broker.published_image();
        image.topic(name).map(|t| self.topic_image(t))
    }

    pub(crate) fn topic_by_id(&self, id: uuid::Uuid) -> Option<TopicImage> {
        let image = self.broker.published_image();
        image.topics.get(&id).map(|t| self.topic_image(t))
    }

    fn topic_image(&self, topic: &sluice_controller::TopicImage) -> TopicImage {
        TopicImage {
            name: topic.name.clone(),
            id: topic.topic_id,
            internal: crate::groups::is_internal(&topic.name),
            partitions: topic
                .partitions
                .iter()
                .map(|(&index, p)| (index, self.leadership(&topic.name, index, p)))
                .collect(),
        }
    }

    fn leadership(
        &self,
        topic: &str,
        index: i32,
        registration: &PartitionRegistration,
    ) -> PartitionLeadership {
        let node = self.local_node_id();
        let offline = registration.replicas.contains(&node)
            && self
                .broker
                .logs
                .partition(topic, index)
                .is_ok_and(|p| p.log().is_offline());
        PartitionLeadership {
            leader: registration.leader,
            leader_epoch: registration.leader_epoch,
            replicas: registration.replicas.clone(),
            isr: registration.isr.clone(),
            offline_replicas: if offline { vec![node] } else { Vec::new() },
        }
    }

    /// The local log of a partition this broker leads, for a request that names it with
    /// `current_leader_epoch` (-1 for any: see `check_current_leader_epoch`). Otherwise the
    /// error a client acts on: UNKNOWN_TOPIC_OR_PARTITION, LEADER_NOT_AVAILABLE (no leader
    /// now), NOT_LEADER_OR_FOLLOWER (another broker leads it, or this one has not created its
    /// log yet).
    pub(crate) fn led_partition(
        &self,
        topic: &str,
        index: i32,
        current_leader_epoch: i32,
    ) -> Result<Arc<Partition>, ResponseError> {
        let (leader, leader_epoch) = {
            let image = self.broker.published.borrow();
            let p = image
                .partition(topic, index)
                .ok_or(ResponseError::UnknownTopicOrPartition)?;
            (p.leader, p.leader_epoch)
        };
        if leader == NO_LEADER {
            return Err(ResponseError::LeaderNotAvailable);
        }
        if leader != self.local_node_id() {
            return Err(ResponseError::NotLeaderOrFollower);
        }
        let partition = self
            .broker
            .logs
            .partition(topic, index)
            .map_err(|_| ResponseError::NotLeaderOrFollower)?;
        check_current_leader_epoch(current_leader_epoch, leader_epoch)?;
        Ok(partition)
    }

    /// The leader of partition `index` of internal topic `topic` (a coordinator's home), as
    /// reached through `endpoint`'s listener; `None` while it has no live leader.
    pub(crate) fn leader_node(
        &self,
        topic: &str,
        index: i32,
        endpoint: &Endpoint,
    ) -> Option<BrokerNode> {
        let leader = self
            .broker
            .published_image()
            .partition(topic, index)?
            .leader;
        if leader == NO_LEADER {
            return None;
        }
        self.node(leader, endpoint)
    }

    /// The leader of a partition and its epoch, as this broker serves the image (-1 for no
    /// leader); `None` if the partition is unknown. KIP-951 hands it to a client refused with
    /// NOT_LEADER_OR_FOLLOWER.
    pub(crate) fn current_leader(&self, topic: &str, index: i32) -> Option<(i32, i32)> {
        let image = self.broker.published.borrow();
        let p = image.partition(topic, index)?;
        Some((p.leader, p.leader_epoch))
    }

    /// Broker `id` as reached through `endpoint`'s listener.
    pub(crate) fn node(&self, id: i32, endpoint: &Endpoint) -> Option<BrokerNode> {
        if id == self.local_node_id() {
            return Some(self.local_node(endpoint));
        }
        let image = self.broker.cluster.image();
        let broker = image.brokers.get(&id).filter(|b| !b.fenced)?;
        let name = remote_listener(endpoint, &self.broker.config.inter_broker.listener);
        let e = broker.endpoints.iter().find(|e| e.name == name)?;
        Some(BrokerNode {
            id,
            host: e.host.clone(),
            port: e.port,
        })
    }

    fn local_node(&self, endpoint: &Endpoint) -> BrokerNode {
        BrokerNode {
            id: self.local_node_id(),
            host: endpoint.host.clone(),
            port: endpoint.port,
        }
    }
}

/// The listener through which a request that came in on `endpoint` reaches the other
/// brokers: the same one, except for the loopback `INTERNAL` listener of the in-process
/// clients (the HTTP gateway, the views), whose registered addresses mean nothing on another
/// host; they are part of this broker, and reach the others as it does, through the
/// inter-broker listener (`inter_broker`).
fn remote_listener<'a>(endpoint: &'a Endpoint, inter_broker: &'a str) -> &'a str {
    if endpoint.name == crate::server::INTERNAL_LISTENER {
        inter_broker
    } else {
        &endpoint.name
    }
}

/// A request's `current_leader_epoch` against the partition's: older is FENCED_LEADER_EPOCH
/// (the caller's metadata is stale), newer is UNKNOWN_LEADER_EPOCH (this broker has not learnt
/// of it yet), -1 skips the check (KIP-320).
pub(crate) fn check_current_leader_epoch(
    requested: i32,
    leader_epoch: i32,
) -> Result<(), ResponseError> {
    match requested {
        UNDEFINED_EPOCH => Ok(()),
        e if e < leader_epoch => Err(ResponseError::FencedLeaderEpoch),
        e if e > leader_epoch => Err(ResponseError::UnknownLeaderEpoch),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_leader_epoch_is_checked_as_kafka_does() {
        assert_eq!(check_current_leader_epoch(-1, 4), Ok(()));
        assert_eq!(check_current_leader_epoch(4, 4), Ok(()));
        assert_eq!(
            check_current_leader_epoch(3, 4),
            Err(ResponseError::FencedLeaderEpoch)
        );
        assert_eq!(
            check_current_leader_epoch(5, 4),
            Err(ResponseError::UnknownLeaderEpoch)
        );
    }
}
