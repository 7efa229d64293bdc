//! ShareGroupHeartbeat (v1): a share group member joins, stays and leaves (KIP-932). The
//! coordinator works with topic names; this file maps the wire's topic ids and hands it the
//! group's `share.session.timeout.ms` and `share.heartbeat.interval.ms` from the image.

use super::consumer_group_heartbeat::BrokerTopics;
use super::group_configs;
use super::join_group::Client;
use crate::error::group_code;
use crate::server::Broker;
use kafka_protocol::messages::share_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{ShareGroupHeartbeatRequest, ShareGroupHeartbeatResponse};
use kafka_protocol::protocol::StrBytes;
use sluice_group::{ShareHeartbeat, ShareHeartbeatResponse};
use std::future::Future;
use std::sync::Arc;

pub(crate) fn handle(
    broker: &Arc<Broker>,
    request: ShareGroupHeartbeatRequest,
    _version: i16,
    client: Client,
) -> impl Future<Output = Option<ShareGroupHeartbeatResponse>> + Send + 'static + use<> {
    let group_id = request.group_id.0.to_string();
    let config = group_configs::share_config(&broker.published_image(), &group_id);
    let req = ShareHeartbeat {
        group_id: group_id.clone(),
        member_id: request.member_id.to_string(),
        member_epoch: request.member_epoch,
        rack_id: request.rack_id.map(|s| s.to_string()),
        subscribed_topics: request
            .subscribed_topic_names
            .map(|ts| ts.into_iter().map(|t| t.0.to_string()).collect()),
        client_id: client.id,
        client_host: client.host,
        session_timeout_ms: config.session_timeout_ms,
        heartbeat_interval_ms: config.heartbeat_interval_ms,
    };
    let broker = broker.clone();
    async move {
        let topics = BrokerTopics(&broker);
        let response = broker
            .groups()
            .execute(&group_id, |c, now| c.share_heartbeat(req, &topics, now))
            .await
            .unwrap_or_else(|e| ShareHeartbeatResponse::error_for(e, ""));
        if let Some(e) = &response.error {
            tracing::debug!(member = %response.member_id, error = %e, "ShareGroupHeartbeat refused");
        }
        Some(to_wire(&broker, response))
    }
}

fn to_wire(broker: &Broker, r: ShareHeartbeatResponse) -> ShareGroupHeartbeatResponse {
    let image = broker.published_image();
    let assignment = r.assignment.map(|a| {
        let topic_partitions = a
            .into_iter()
            .filter_map(|(topic, partitions)| {
                let id = image.topic(&topic)?.topic_id;
                Some(
                    TopicPartitions::default()
                        .with_topic_id(id)
                        .with_partitions(partitions.into_iter().collect()),
                )
            })
            .collect();
        Assignment::default().with_topic_partitions(topic_partitions)
    });
    ShareGroupHeartbeatResponse::default()
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
