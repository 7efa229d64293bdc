//! FindCoordinator (v0–v6): the coordinator of a group (the leader of its `__consumer_offsets`
//! partition) or of a transactional id (the leader of its `__transaction_state` partition). The internal
//! topic is created through the controller on the first request that needs it, as Kafka does,
//! so its partitions spread over the brokers live by then; until it has a live leader the
//! answer is COORDINATOR_NOT_AVAILABLE, which clients retry.
//! Key type 2 (KIP-932) finds the share coordinator of a share-partition: the key is
//! `group:topic_id:partition` as Kafka writes it (the topic id in Kafka's URL-safe base64), and
//! the coordinator is the leader of the `__share_group_state` partition that keeps its state. A
//! key that does not parse answers INVALID_REQUEST with a message.

use crate::groups::OFFSETS_TOPIC;
use crate::server::{Broker, Endpoint};
use crate::share_coordinators::{SHARE_STATE_TOPIC, partition_of};
use crate::transactions::TRANSACTION_STATE_TOPIC;
use base64::Engine;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;
use sluice_share::ShareStateKey;
use std::future::Future;
use std::sync::Arc;

/// FindCoordinator's `key_type` for consumer groups, transactional ids and share-partitions.
const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;
const KEY_TYPE_SHARE: i8 = 2;

pub(crate) fn handle(
    broker: &Arc<Broker>,
    request: FindCoordinatorRequest,
    version: i16,
    endpoint: &Arc<Endpoint>,
) -> impl Future<Output = Option<FindCoordinatorResponse>> + Send + 'static + use<> {
    let broker = broker.clone();
    let endpoint = endpoint.clone();
    async move {
        let key_type = request.key_type;
        let topic = match key_type {
            KEY_TYPE_GROUP => Some(OFFSETS_TOPIC),
            KEY_TYPE_TRANSACTION => Some(TRANSACTION_STATE_TOPIC),
            KEY_TYPE_SHARE => Some(SHARE_STATE_TOPIC),
            _ => None,
        };
        if let Some(topic) = topic {
            crate::internal_topics::ensure(&broker, topic).await;
        }
        let found = |key: StrBytes| find(&broker, key_type, key, &endpoint);
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

fn find(broker: &Broker, key_type: i8, key: StrBytes, endpoint: &Endpoint) -> Coordinator {
    let mut c = Coordinator::default()
        .with_key(key.clone())
        .with_node_id(BrokerId(-1));
    let refuse = |mut c: Coordinator, why: String| {
        c.error_code = ResponseError::InvalidRequest.code();
        c.error_message = Some(StrBytes::from_string(why));
        c
    };
    let image = broker.metadata();
    let partitions_of = |topic: &str| image.topic(topic).map_or(0, |t| t.partitions.len() as i32);
    let (topic, index) = match key_type {
        // Kafka's hash, the same for a group and a transactional id.
        KEY_TYPE_GROUP | KEY_TYPE_TRANSACTION => {
            let topic = if key_type == KEY_TYPE_GROUP {
                OFFSETS_TOPIC
            } else {
                TRANSACTION_STATE_TOPIC
            };
            let partitions = partitions_of(topic);
            let index = if partitions > 0 {
                sluice_types::partition_for(&key, partitions)
            } else {
                0
            };
            (topic, index)
        }
        KEY_TYPE_SHARE => match parse_share_key(&key) {
            Ok(share_key) => {
                let partitions = partitions_of(SHARE_STATE_TOPIC);
                let index = if partitions > 0 {
                    partition_of(&share_key, partitions)
                } else {
                    0
                };
                (SHARE_STATE_TOPIC, index)
            }
            Err(why) => return refuse(c, why),
        },
        other => {
            return refuse(
                c,
                format!("FindCoordinator key type {other} is not 0, 1 or 2"),
            );
        }
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

/// A share coordinator key, `group:topic_id:partition` (the group may hold colons; the topic
/// id in Kafka's URL-safe base64 without padding).
fn parse_share_key(key: &str) -> Result<ShareStateKey, String> {
    let bad = || format!("a share coordinator key is group:topic_id:partition, not {key:?}");
    let (rest, partition) = key.rsplit_once(':').ok_or_else(bad)?;
    let (group, topic_id) = rest.rsplit_once(':').ok_or_else(bad)?;
    let partition: i32 = partition.parse().map_err(|_| bad())?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(topic_id)
        .map_err(|_| bad())?;
    let topic_id: [u8; 16] = bytes.try_into().map_err(|_| bad())?;
    if group.is_empty() || partition < 0 {
        return Err(bad());
    }
    Ok(ShareStateKey {
        group: group.to_string(),
        topic_id: u128::from_be_bytes(topic_id),
        partition,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_keys_parse_as_kafka_writes_them() {
        // Kafka's Uuid.toString of 0x00..01 ..., URL-safe base64 without padding.
        let id = uuid::Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
        let text = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id.as_bytes());
        let key = parse_share_key(&format!("a:b:{text}:7")).unwrap();
        assert_eq!(
            key,
            ShareStateKey {
                group: "a:b".into(),
                topic_id: id.as_u128(),
                partition: 7
            }
        );
        for bad in [
            "g",
            "g:x:1",
            &format!("g:{text}:-1"),
            &format!(":{text}:1"),
            &format!("g:{text}:x"),
        ] {
            assert!(parse_share_key(bad).is_err(), "{bad}");
        }
    }
}
