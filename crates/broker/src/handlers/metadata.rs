//! Metadata (v0–v12): the single broker, and every requested topic with its partitions led by
//! this node. Unknown topics are created when `auto.create.topics.enable` is on and the client
//! allows it (v4+), as in Kafka.

use super::{first_of_each, now};
use crate::error;
use crate::server::{Broker, Endpoint};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use sluice_storage::{StorageError, Topic};
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
    let topics = if all {
        broker
            .logs
            .topics()
            .iter()
            .map(|t| describe_topic(broker, t))
            .collect()
    } else {
        let auto_create =
            broker.config.auto_create_topics && (version < 4 || request.allow_auto_topic_creation);
        first_of_each(request.topics.unwrap_or_default(), |t| {
            (t.name.clone(), t.topic_id)
        })
        .into_iter()
        .map(|t| match t.name {
            Some(name) => lookup_or_create(broker, &name, auto_create),
            None => match broker
                .logs
                .topics()
                .into_iter()
                .find(|x| x.id() == t.topic_id)
            {
                Some(topic) => describe_topic(broker, &topic),
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
    now(MetadataResponse::default()
        .with_brokers(vec![this_broker(broker, endpoint)])
        .with_cluster_id(Some(StrBytes::from_string(broker.cluster_id.clone())))
        .with_controller_id(BrokerId(broker.config.node_id))
        .with_topics(topics))
}

/// This broker as the listener the request came in on advertises it (as Kafka answers per
/// listener).
fn this_broker(broker: &Broker, endpoint: &Endpoint) -> MetadataResponseBroker {
    MetadataResponseBroker::default()
        .with_node_id(BrokerId(broker.config.node_id))
        .with_host(StrBytes::from_string(endpoint.host.clone()))
        .with_port(i32::from(endpoint.port))
}

fn lookup_or_create(
    broker: &Arc<Broker>,
    name: &TopicName,
    auto_create: bool,
) -> MetadataResponseTopic {
    if let Some(topic) = broker.logs.topic(name) {
        return describe_topic(broker, &topic);
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
        Ok(topic) => describe_topic(broker, &topic),
        // Lost a race with another creator: describe what is there now.
        Err(StorageError::TopicExists(_)) => match broker.logs.topic(name) {
            Some(topic) => describe_topic(broker, &topic),
            None => failed(ResponseError::UnknownTopicOrPartition.code()),
        },
        Err(e) => failed(error::code(&e)),
    }
}

fn describe_topic(broker: &Broker, topic: &Topic) -> MetadataResponseTopic {
    let node = BrokerId(broker.config.node_id);
    let partitions = topic
        .partitions()
        .iter()
        .map(|p| {
            let (offline, leader_epoch) = {
                let log = p.log();
                (log.is_offline(), log.leader_epoch())
            };
            MetadataResponsePartition::default()
                .with_partition_index(p.index())
                .with_error_code(if offline {
                    ResponseError::KafkaStorageError.code()
                } else {
                    0
                })
                .with_leader_id(node)
                .with_leader_epoch(leader_epoch)
                .with_replica_nodes(vec![node])
                .with_isr_nodes(vec![node])
                .with_offline_replicas(if offline { vec![node] } else { vec![] })
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(
            topic.name().to_string(),
        ))))
        .with_topic_id(topic.id())
        .with_is_internal(crate::groups::is_internal(topic.name()))
        .with_partitions(partitions)
}
