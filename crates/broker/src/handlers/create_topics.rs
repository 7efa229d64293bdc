//! CreateTopics (v2–v7). A single node stores one replica: a replication factor other than 1
//! (or -1, "the default") is refused with `INVALID_REPLICATION_FACTOR`, and manual
//! assignments may only name this broker.

use super::configs::topic_config_entries;
use super::now;
use crate::error;
use crate::server::Broker;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;
use std::sync::Arc;

pub(crate) fn handle(
    broker: &Arc<Broker>,
    request: CreateTopicsRequest,
    version: i16,
) -> std::future::Ready<Option<CreateTopicsResponse>> {
    let validate_only = request.validate_only;
    let topics = request
        .topics
        .into_iter()
        .map(|t| create_one(broker, t, validate_only, version))
        .collect();
    now(CreateTopicsResponse::default().with_topics(topics))
}

fn create_one(
    broker: &Arc<Broker>,
    t: CreatableTopic,
    validate_only: bool,
    version: i16,
) -> CreatableTopicResult {
    let result = CreatableTopicResult::default().with_name(t.name.clone());
    let fail = |code: i16, message: String| {
        result
            .clone()
            .with_error_code(code)
            .with_error_message(Some(StrBytes::from_string(message)))
    };
    let image = broker.metadata();
    let brokers = image.broker_count();
    if t.replication_factor != -1
        && !(1..=brokers).contains(&usize::try_from(t.replication_factor).unwrap_or(0))
    {
        return fail(
            ResponseError::InvalidReplicationFactor.code(),
            format!(
                "replication factor {} is larger than the {brokers} broker(s) available",
                t.replication_factor
            ),
        );
    }
    if let Some(unknown) = t
        .assignments
        .iter()
        .flat_map(|a| a.broker_ids.iter())
        .find(|b| !image.is_broker(b.0))
    {
        return fail(
            ResponseError::InvalidReplicaAssignment.code(),
            format!("broker {} does not exist", unknown.0),
        );
    }
    let partitions = match (t.num_partitions, t.assignments.len()) {
        (-1, 0) => broker.config.default_partitions,
        (-1, n) => n as i32,
        (n, _) => n,
    };
    let mut configs = BTreeMap::new();
    for c in &t.configs {
        match &c.value {
            Some(v) => configs.insert(c.name.to_string(), v.to_string()),
            None => {
                return fail(
                    ResponseError::InvalidConfig.code(),
                    format!("config {} has a null value", c.name.as_str()),
                );
            }
        };
    }
    let outcome = if validate_only {
        broker
            .logs
            .validate_new_topic(&t.name, partitions, &configs)
            .map(|()| None)
    } else {
        broker
            .create_topic(&t.name, partitions, configs.clone())
            .map(Some)
    };
    match outcome {
        Err(e) => fail(error::code(&e), e.to_string()),
        Ok(created) => {
            let mut ok = result
                .with_num_partitions(partitions)
                .with_replication_factor(1);
            if let Some(topic) = created {
                ok = ok.with_topic_id(topic.id());
            }
            if version >= 5 {
                let entries = topic_config_entries(&configs)
                    .into_iter()
                    .map(|e| {
                        CreatableTopicConfigs::default()
                            .with_name(StrBytes::from_static_str(e.name))
                            .with_value(Some(StrBytes::from_string(e.value)))
                            .with_config_source(e.source)
                    })
                    .collect();
                ok = ok.with_configs(Some(entries));
            }
            ok
        }
    }
}
