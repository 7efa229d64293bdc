//! FindCoordinator (v0–v6): the coordinator of a group (the leader of its `__consumer_offsets`
//! partition) or of a transactional id (the leader of its `__transaction_state` partition). The internal
//! topic is created through the controller on the first request that needs it, as Kafka does,
//! so its partitions spread over the brokers live by then; until it has a live leader the
//! answer is COORDINATOR_NOT_AVAILABLE, which clients retry.
//! Share groups (KIP-932) do not exist here; asking for their coordinator gets INVALID_REQUEST
//! with a message, so a client fails clearly instead of retrying forever.

use crate::groups::OFFSETS_TOPIC;
use crate::server::{Broker, Endpoint};
use crate::transactions::TRANSACTION_STATE_TOPIC;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;
use std::future::Future;
use std::sync::Arc;

/// FindCoordinator's `key_type` for consumer groups and for transactional ids.
const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

pub(crate) fn handle(
    broker: &Arc<Broker>,
    request: FindCoordinatorRequest,
    version: i16,
    endpoint: &Arc<Endpoint>,
) -> impl Future<Output = Option<FindCoordinatorResponse>> + Send + 'static + use<> {
    let broker = broker.clone();
    let endpoint = endpoint.clone();
    async move {
        let topic = match request.key_type {
            KEY_TYPE_GROUP => Some(OFFSETS_TOPIC),
            KEY_TYPE_TRANSACTION => Some(TRANSACTION_STATE_TOPIC),
            _ => None,
        };
        if let Some(topic) = topic {
            crate::internal_topics::ensure(&broker, topic).await;
        }
        let found = |key: StrBytes| find(&broker, topic, key, &endpoint);
        if version >= 4 {
            let coordinators = request
                .coordinator_keys
                .iter()
                .cloned()
                .map(found)
                .collect();
            return Some(FindCoordinatorResponse::default().with_coordinators(coordinators));
        }
        let c = found(request.key.clone());
        let mut response = FindCoordinatorResponse::default()
            .with_error_code(c.error_code)
            .with_node_id(c.node_id)
            .with_host(c.host)
            .with_port(c.port);
        if version >= 1 {
            response.error_message = c.error_message;
        }
        Some(response)
    }
}

fn find(broker: &Broker, topic: Option<&str>, key: StrBytes, endpoint: &Endpoint) -> Coordinator {
    let mut c = Coordinator::default()
        .with_key(key.clone())
        .with_node_id(BrokerId(-1));
    let Some(topic) = topic else {
        c.error_code = ResponseError::InvalidRequest.code();
        c.error_message = Some(StrBytes::from_static_str(
            "Sluice coordinates consumer groups and transactions; share groups are not supported",
        ));
        return c;
    };
    let image = broker.metadata();
    let partitions = image.topic(topic).map_or(0, |t| t.partitions.len() as i32);
    // Kafka's hash, the same for a group and a transactional id.
    let index = if partitions > 0 {
        sluice_types::partition_for(&key, partitions)
    } else {
        0
    };
    match image.leader_node(topic, index, endpoint) {
        Some(node) => {
            c.node_id = BrokerId(node.id);
            c.host = StrBytes::from_string(node.host);
            c.port = i32::from(node.port);
        }
        None => {
            c.error_code = ResponseError::CoordinatorNotAvailable.code();
            c.error_message = Some(StrBytes::from_static_str(
                "the coordinator's partition has no live leader yet",
            ));
        }
    }
    c
}
