//! ConsumerGroupHeartbeat (v0–v1): the KIP-848 consumer group protocol. The coordinator works
//! with topic names; this file maps the wire's topic ids both ways and gives the coordinator
//! the partition counts of topics.

use super::join_group::Client;
use crate::error::group_code;
use crate::server::Broker;
use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse};
use kafka_protocol::protocol::StrBytes;
use sluice_group::{ConsumerHeartbeat, ConsumerHeartbeatResponse, GroupError, Topics};
use std::future::Future;
use std::sync::Arc;

pub(crate) fn handle(
    broker: &Arc<Broker>,
    request: ConsumerGroupHeartbeatRequest,
    version: i16,
    client: Client,
) -> impl Future<Output = Option<ConsumerGroupHeartbeatResponse>> + Send + 'static + use<> {
    let req = ConsumerHeartbeat {
        group_id: request.group_id.0.to_string(),
        member_id: request.member_id.to_string(),
        member_epoch: request.member_epoch,
        instance_id: request.instance_id.map(|s| s.to_string()),
        rack_id: request.rack_id.map(|s| s.to_string()),
        rebalance_timeout_ms: request.rebalance_timeout_ms,
        subscribed_topics: request
            .subscribed_topic_names
            .map(|ts| ts.into_iter().map(|t| t.0.to_string()).collect()),
        // librdkafka sends an empty regex to mean none.
        subscribed_regex: request
            .subscribed_topic_regex
            .filter(|r| !r.is_empty())
            .map(|s| s.to_string()),
        server_assignor: request.server_assignor.map(|s| s.to_string()),
        owned: request.topic_partitions.map(|tps| {
            tps.into_iter()
                .filter_map(|tp| {
                    let topic = broker.logs.topic_by_id(tp.topic_id)?;
                    Some((topic.name().to_owned(), tp.partitions.into_iter().collect()))
                })
                .collect()
        }),
        client_id: client.id,
        client_host: client.host,
    };
    // KIP-1082: from v1 the client names itself.
    let nameless_join = version >= 1 && req.member_epoch == 0 && req.member_id.is_empty();
    let broker = broker.clone();
    async move {
        let response = if nameless_join {
            let e = GroupError::InvalidRequest("a joining member must send its member id");
            ConsumerHeartbeatResponse::error_for(e, "")
        } else {
            let group_id = req.group_id.clone();
            let topics = BrokerTopics(&broker);
            broker
                .groups()
                .execute(&group_id, |c, now| c.consumer_heartbeat(req, &topics, now))
                .await
                .unwrap_or_else(|e| ConsumerHeartbeatResponse::error_for(e, ""))
        };
        if let Some(e) = &response.error {
            tracing::debug!(member = %response.member_id, error = %e, "ConsumerGroupHeartbeat refused");
        }
        Some(to_wire(&broker, response))
    }
}

/// The cluster's topics as the coordinator sees them (the image this broker serves from).
pub(crate) struct BrokerTopics<'a>(pub(crate) &'a Broker);

impl Topics for BrokerTopics<'_> {
    fn partition_count(&self, topic: &str) -> Option<i32> {
        let image = self.0.published_image();
        image.topic(topic).map(|t| t.partitions.len() as i32)
    }
    fn names(&self) -> Vec<String> {
        let image = self.0.published_image();
        image
            .topics
            .values()
            .map(|t| t.name.clone())
            .filter(|n| !crate::groups::is_internal(n))
            .collect()
    }
}

fn to_wire(broker: &Broker, r: ConsumerHeartbeatResponse) -> ConsumerGroupHeartbeatResponse {
    let assignment = r.assignment.map(|a| {
        let topic_partitions = a
            .into_iter()
            .filter_map(|(topic, partitions)| {
                let id = broker.published_image().topic(&topic)?.topic_id;
                Some(
                    TopicPartitions::default()
                        .with_topic_id(id)
                        .with_partitions(partitions.into_iter().collect()),
                )
            })
            .collect();
        Assignment::default().with_topic_partitions(topic_partitions)
    });
    ConsumerGroupHeartbeatResponse::default()
        .with_error_code(group_code(r.error.as_ref()))
        .with_error_message(
            r.error
                .as_ref()
                .map(|e| StrBytes::from_string(e.to_string())),
        )
        .with_member_id((!r.member_id.is_empty()).then(|| StrBytes::from_string(r.member_id)))
        .with_member_epoch(r.member_epoch)
        .with_heartbeat_interval_ms(r.heartbeat_interval_ms)
        .with_assignment(assignment)
}
