//! FindCoordinator (v0–v6): the coordinator of a group or a transactional id, as the metadata
//! image names it (today this broker coordinates every one).
//! Share groups (KIP-932) do not exist here; asking for their coordinator gets INVALID_REQUEST
//! with a message, so a client fails clearly instead of retrying forever.

use super::now;
use crate::server::{Broker, Endpoint};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;
use std::sync::Arc;

/// FindCoordinator's `key_type` for consumer groups and for transactional ids.
const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

pub(crate) fn handle(
    broker: &Arc<Broker>,
    request: FindCoordinatorRequest,
    version: i16,
    endpoint: &Endpoint,
) -> std::future::Ready<Option<FindCoordinatorResponse>> {
    let image = broker.metadata();
    let found = |key: StrBytes| {
        let mut c = Coordinator::default()
            .with_key(key.clone())
            .with_node_id(BrokerId(-1));
        let coordinator = match request.key_type {
            KEY_TYPE_GROUP => Some(image.group_coordinator(&key, endpoint)),
            KEY_TYPE_TRANSACTION => Some(image.transaction_coordinator(&key, endpoint)),
            _ => None,
        };
        if let Some(node) = coordinator {
            c.node_id = BrokerId(node.id);
            c.host = StrBytes::from_string(node.host);
            c.port = i32::from(node.port);
        } else {
            c.error_code = ResponseError::InvalidRequest.code();
            c.error_message = Some(StrBytes::from_static_str(
                "Sluice coordinates consumer groups and transactions; share groups are not supported",
            ));
        }
        c
    };
    if version >= 4 {
        let coordinators = request
            .coordinator_keys
            .iter()
            .cloned()
            .map(found)
            .collect();
        return now(FindCoordinatorResponse::default().with_coordinators(coordinators));
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
    now(response)
}
