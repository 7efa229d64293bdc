//! Metadata (v0–v12): the brokers, the controller, and every requested topic with its
//! partitions' leaders, epochs, replicas and in-sync sets, all as the metadata image has them. Unknown topics are created when `auto.create.topics.enable` is on and the client
//! allows it (v4+), as in Kafka.

use super::{first_of_each, now};
use crate::error;
use crate::metadata_image::TopicImage;
use crate::server::{Broker, Endpoint};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use sluice_storage::StorageError;
use std::collections::BTreeMap;
use std::sync::Arc;

pub(crate) fn handle(
    broker: &Arc<Broker>,
    request: MetadataRequest,
    version: i16,
    endpoint: &Endpoint,
) -> std::future::Ready<Option<MetadataResponse>> {
    let all = match &request.topics {
        None => true,
        Some(topics) => version == 0 && topics.is_empty(),
    };
    let image = broker.metadata();
    let topics = if all {
        image.topics().into_iter().map(describe_topic).collect()
    } else {
        let auto_create =
            broker.config.auto_create_topics && (version < 4 || request.allow_auto_topic_creation);
        first_of_each(request.topics.unwrap_or_default(), |t| {
            (t.name.clone(), t.topic_id)
        })
        .into_iter()
        .map(|t| match t.name {
            Some(name) => lookup_or_create(broker, &name, auto_create),
            None => match image.topic_by_id(t.topic_id) {
                Some(topic) => describe_topic(topic),
                None => MetadataResponseTopic::default()
                    .with_topic_id(t.topic_id)
                    .with_error_code(ResponseError::UnknownTopicId.code()),
            },
        })
        .collect()
    };
    let mut topics: Vec<MetadataResponseTopic> = topics;
    if version < 1 {
        // v0 has no `is_internal` field, and a set field absent from a version cannot encode.
        topics.iter_mut().for_each(|t| t.is_internal = false);
    }
    let brokers = image
        .brokers(endpoint)
        .into_iter()
        .map(|b| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(b.id))
                .with_host(StrBytes::from_string(b.host))
                .with_port(i32::from(b.port))
        })
        .collect();
    now(MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(StrBytes::from_string(image.cluster_id().to_string())))
        .with_controller_id(BrokerId(image.controller_id()))
        .with_topics(topics))
}

fn lookup_or_create(
    broker: &Arc<Broker>,
    name: &TopicName,
    auto_create: bool,
) -> MetadataResponseTopic {
    let image = broker.metadata();
    if let Some(topic) = image.topic(name) {
        return describe_topic(topic);
    }
    let failed = |code: i16| {
        MetadataResponseTopic::default()
            .with_name(Some(name.clone()))
            .with_error_code(code)
    };
    if !auto_create {
        return failed(ResponseError::UnknownTopicOrPartition.code());
    }
    match broker.create_topic(name, broker.config.default_partitions, BTreeMap::new()) {
        // Created, or lost a race with another creator: describe what is there now.
        Ok(_) | Err(StorageError::TopicExists(_)) => match image.topic(name) {
            Some(topic) => describe_topic(topic),
            None => failed(ResponseError::UnknownTopicOrPartition.code()),
        },
        Err(e) => failed(error::code(&e)),
    }
}

fn describe_topic(topic: TopicImage) -> MetadataResponseTopic {
    let ids = |ids: Vec<i32>| ids.into_iter().map(BrokerId).collect::<Vec<_>>();
    let partitions = topic
        .partitions
        .into_iter()
        .map(|(index, state)| {
            let leader_offline = state.offline_replicas.contains(&state.leader);
            MetadataResponsePartition::default()
                .with_partition_index(index)
                .with_error_code(if leader_offline {
                    ResponseError::KafkaStorageError.code()
                } else {
                    0
                })
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
