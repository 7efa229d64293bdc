//! Metadata (v0–v12): the brokers, the controller, and every requested topic with its
//! partitions' leaders, epochs, replicas and in-sync sets, all as the metadata image has them. Unknown topics are created when `auto.create.topics.enable` is on and the client
//! allows it (v4+), as in Kafka.

use super::first_of_each;
use crate::authorization::Caller;
use crate::controller_client::CONTROLLER_WAIT_MAX;
use crate::metadata_image::TopicImage;
use crate::server::{Broker, Endpoint};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use sluice_acl::{Operation, ResourceType};
use sluice_controller::NewTopic;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

pub(crate) fn handle(
    broker: &Arc<Broker>,
    caller: &Caller,
    request: MetadataRequest,
    version: i16,
    endpoint: &Arc<Endpoint>,
) -> impl Future<Output = Option<MetadataResponse>> + Send + 'static + use<> {
    let broker = broker.clone();
    let endpoint = endpoint.clone();
    let caller = caller.clone();
    async move {
        let all = match &request.topics {
            None => true,
            Some(topics) => version == 0 && topics.is_empty(),
        };
        let may_describe =
            |name: &str| broker.shows(&caller, Operation::Describe, ResourceType::Topic, name);
        let topics = if all {
            // Every topic the caller may describe; the others are left out, as in Kafka.
            let image = broker.metadata();
            image
                .topics()
                .into_iter()
                .filter(|t| may_describe(&t.name))
                .map(describe_topic)
                .collect()
        } else {
            let auto_create = broker.config.auto_create_topics
                && (version < 4 || request.allow_auto_topic_creation);
            let wanted = first_of_each(request.topics.unwrap_or_default(), |t| {
                (t.name.clone(), t.topic_id)
            });
            let (wanted, denied) = authorize_named(&broker, &caller, wanted, auto_create);
            let refused = if auto_create {
                create_missing(&broker, &wanted).await
            } else {
                HashMap::new()
            };
            let image = broker.metadata();
            let denied = denied.into_iter().map(|name| {
                MetadataResponseTopic::default()
                    .with_name(Some(name))
                    .with_error_code(ResponseError::TopicAuthorizationFailed.code())
            });
            let answered: Vec<MetadataResponseTopic> = wanted
                .into_iter()
                .map(|t| match t.name {
                    Some(name) => match image.topic(&name) {
                        Some(topic) => describe_topic(topic),
                        None => {
                            let error = refused
                                .get(name.as_str())
                                .copied()
                                .unwrap_or(ResponseError::UnknownTopicOrPartition);
                            MetadataResponseTopic::default()
                                .with_name(Some(name))
                                .with_error_code(error.code())
                        }
                    },
                    None => match image.topic_by_id(t.topic_id) {
                        Some(topic) if may_describe(&topic.name) => describe_topic(topic),
                        Some(_) => MetadataResponseTopic::default()
                            .with_topic_id(t.topic_id)
                            .with_error_code(ResponseError::TopicAuthorizationFailed.code()),
                        None => MetadataResponseTopic::default()
                            .with_topic_id(t.topic_id)
                            .with_error_code(ResponseError::UnknownTopicId.code()),
                    },
                })
                .collect();
            answered.into_iter().chain(denied).collect()
        };
        let mut topics: Vec<MetadataResponseTopic> = topics;
        if version < 1 {
            // v0 has no `is_internal` field, and a set field absent from a version cannot encode.
            topics.iter_mut().for_each(|t| t.is_internal = false);
        }
        let image = broker.metadata();
        let brokers = image
            .brokers(&endpoint)
            .into_iter()
            .map(|b| {
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(b.id))
                    .with_host(StrBytes::from_string(b.host))
                    .with_port(i32::from(b.port))
            })
            .collect();
        Some(
            MetadataResponse::default()
                .with_brokers(brokers)
                .with_cluster_id(Some(StrBytes::from_string(image.cluster_id().to_string())))
                .with_controller_id(BrokerId(image.controller_id()))
                .with_topics(topics),
        )
    }
}

/// Splits the named topics into those the caller may describe (and, if it would be created,
/// create: CREATE on the cluster or the topic) and the names refused
/// TOPIC_AUTHORIZATION_FAILED. Topics named by id are checked once their name is known.
fn authorize_named(
    broker: &Broker,
    caller: &Caller,
    wanted: Vec<MetadataRequestTopic>,
    auto_create: bool,
) -> (Vec<MetadataRequestTopic>, Vec<TopicName>) {
    let image = broker.metadata();
    let may_create = |name: &str| {
        broker.allows_cluster(caller, Operation::Create)
            || broker.allows(caller, Operation::Create, ResourceType::Topic, name)
    };
    let mut denied = Vec::new();
    let allowed = wanted
        .into_iter()
        .filter(|t| {
            let Some(name) = &t.name else {
                return true;
            };
            let ok = broker.allows(caller, Operation::Describe, ResourceType::Topic, name)
                && (!auto_create || image.topic(name).is_some() || may_create(name));
            if !ok {
                denied.push(name.clone());
            }
            ok
        })
        .collect();
    (allowed, denied)
}

/// Creates the named topics the image lacks (auto-creation), with the default partition
/// count and replication factor. A topic another request created meanwhile is fine; any
/// other refusal is answered for that topic (an invalid name: INVALID_TOPIC_EXCEPTION).
async fn create_missing(
    broker: &Broker,
    wanted: &[MetadataRequestTopic],
) -> HashMap<String, ResponseError> {
    let image = broker.metadata();
    let absent: Vec<&TopicName> = wanted
        .iter()
        .filter_map(|t| t.name.as_ref())
        .filter(|name| image.topic(name).is_none())
        .collect();
    // An internal topic is created as the broker makes it (its partitions, compaction).
    for name in absent.iter().filter(|n| crate::groups::is_internal(n)) {
        crate::internal_topics::ensure(broker, name).await;
    }
    let missing: Vec<NewTopic> = absent
        .into_iter()
        .filter(|name| !crate::groups::is_internal(name))
        .map(|name| NewTopic {
            name: name.to_string(),
            partitions: -1,
            replication_factor: -1,
            assignments: Vec::new(),
            configs: Vec::new(),
        })
        .collect();
    if missing.is_empty() {
        return HashMap::new();
    }
    let names: Vec<String> = missing.iter().map(|t| t.name.clone()).collect();
    let outcomes = super::create_topics::create(broker, missing, false, CONTROLLER_WAIT_MAX).await;
    let mut refused = HashMap::new();
    for (name, outcome) in names.into_iter().zip(outcomes) {
        if let Err(e) = outcome
            && e.error != ResponseError::TopicAlreadyExists
        {
            tracing::debug!(topic = %name, error = %e.message, "topic not auto-created");
            refused.insert(name, e.error);
        }
    }
    refused
}

fn describe_topic(topic: TopicImage) -> MetadataResponseTopic {
    let ids = |ids: Vec<i32>| ids.into_iter().map(BrokerId).collect::<Vec<_>>();
    let partitions = topic
        .partitions
        .into_iter()
        .map(|(index, state)| {
            let leader_offline = state.offline_replicas.contains(&state.leader);
            let error = if state.leader == sluice_controller::NO_LEADER {
                ResponseError::LeaderNotAvailable.code()
            } else if leader_offline {
                ResponseError::KafkaStorageError.code()
            } else {
                0
            };
            MetadataResponsePartition::default()
                .with_partition_index(index)
                .with_error_code(error)
                .with_leader_id(BrokerId(state.leader))
                .with_leader_epoch(state.leader_epoch)
                .with_replica_nodes(ids(state.replicas))
                .with_isr_nodes(ids(state.isr))
                .with_offline_replicas(ids(state.offline_replicas))
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(topic.name))))
        .with_topic_id(topic.id)
        .with_is_internal(topic.internal)
        .with_partitions(partitions)
}
