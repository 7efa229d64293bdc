//! CreateTopics (v2–v7), carried out by the active controller: this broker checks the configs
//! (storage knows the topic config keys), the controller checks the rest (names, counts, a
//! replication factor it can place, assignments naming registered brokers) and places the
//! replicas round-robin over the live brokers. The answer comes once this broker has
//! published the new topics. A replication factor above the live brokers is refused with
//! `INVALID_REPLICATION_FACTOR`. An internal topic is refused
//! (INVALID_REQUEST): the broker creates it, with its own partition count and compaction.

use super::configs::topic_config_entries;
use crate::controller_client::{NotDone, wait_limit};
use crate::server::Broker;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::protocol::StrBytes;
use sluice_controller::{ControllerCommand, ControllerReply, NewTopic, TopicCreated};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

pub(crate) fn handle(
    broker: &Arc<Broker>,
    request: CreateTopicsRequest,
    version: i16,
) -> impl Future<Output = Option<CreateTopicsResponse>> + Send + 'static + use<> {
    let broker = broker.clone();
    async move {
        let limit = wait_limit(request.timeout_ms);
        let checked: Vec<Result<NewTopic, NotDone>> = request.topics.iter().map(check).collect();
        let wanted: Vec<NewTopic> = checked.iter().filter_map(|c| c.clone().ok()).collect();
        let outcomes = create(&broker, wanted, request.validate_only, limit).await;
        let mut outcomes = outcomes.into_iter();
        let topics = request
            .topics
            .iter()
            .zip(checked)
            .map(|(t, checked)| {
                let outcome = checked.and_then(|_| outcomes.next().expect("one per topic"));
                answer(t, outcome, version, &broker.config)
            })
            .collect();
        Some(CreateTopicsResponse::default().with_topics(topics))
    }
}

/// Creates (or, with `validate_only`, checks) `topics` through the controller; one outcome
/// per topic, once this broker has published the created ones.
pub(crate) async fn create(
    broker: &Broker,
    topics: Vec<NewTopic>,
    validate_only: bool,
    limit: std::time::Duration,
) -> Vec<Result<(NewTopic, TopicCreated), NotDone>> {
    let command = if validate_only {
        ControllerCommand::ValidateTopics(topics.clone())
    } else {
        ControllerCommand::CreateTopics(topics.clone())
    };
    let results = broker
        .submit_each(command, topics.len(), limit, |reply| match reply {
            ControllerReply::TopicsCreated(results) => Some(results),
            _ => None,
        })
        .await;
    let outcomes: Vec<_> = topics
        .into_iter()
        .zip(results)
        .map(|(topic, result)| {
            result.map(|mut created| {
                if validate_only {
                    // Nothing was created: no id to give.
                    created.topic_id = uuid::Uuid::nil();
                }
                (topic, created)
            })
        })
        .collect();
    if validate_only {
        return outcomes;
    }
    let ids: Vec<uuid::Uuid> = outcomes.iter().flatten().map(|(_, c)| c.topic_id).collect();
    let shown = broker
        .wait_published(limit, |image| {
            ids.iter().all(|id| image.topics.contains_key(id))
        })
        .await;
    if !shown {
        tracing::warn!(
            topics = ids.len(),
            "created topics not yet published on this broker"
        );
    }
    let mut checked = Vec::with_capacity(outcomes.len());
    for outcome in outcomes {
        checked.push(match outcome {
            Ok((topic, created)) => match broker.publish_error(created.topic_id) {
                None => Ok((topic, created)),
                Some(why) => Err(take_back(broker, &topic.name, why, limit).await),
            },
            Err(e) => Err(e),
        });
    }
    checked
}

/// A topic whose logs this broker could not create (out of descriptors, a full disk) is
/// deleted again, so a failed CreateTopics leaves nothing behind; the answer says why.
async fn take_back(
    broker: &Broker,
    name: &str,
    why: String,
    limit: std::time::Duration,
) -> NotDone {
    tracing::warn!(topic = name, error = %why, "taking back a topic whose logs could not be created");
    let command = ControllerCommand::DeleteTopics(vec![name.to_string()]);
    if let Ok(ControllerReply::TopicsDeleted(results)) = broker.submit(command, limit).await {
        let ids: Vec<uuid::Uuid> = results.into_iter().flatten().collect();
        broker
            .wait_published(limit, |image| {
                ids.iter().all(|id| !image.topics.contains_key(id))
            })
            .await;
    }
    NotDone {
        error: ResponseError::KafkaStorageError,
        message: format!("could not create the topic's logs: {why}"),
    }
}

/// This broker's checks of one topic: configs with values that storage accepts.
fn check(t: &CreatableTopic) -> Result<NewTopic, NotDone> {
    if crate::groups::is_internal(&t.name) {
        // Its partition count and compaction are the broker's to choose (Kafka refuses too).
        return Err(NotDone {
            error: ResponseError::InvalidRequest,
            message: format!("{} is internal: the broker creates it", t.name.as_str()),
        });
    }
    let mut configs = BTreeMap::new();
    for c in &t.configs {
        let Some(value) = &c.value else {
            return Err(NotDone {
                error: ResponseError::InvalidConfig,
                message: format!("config {} has a null value", c.name.as_str()),
            });
        };
        configs.insert(c.name.to_string(), value.to_string());
    }
    sluice_storage::LogConfig::from_overrides(&configs).map_err(|e| NotDone {
        error: crate::error::storage_error(&e),
        message: e.to_string(),
    })?;
    let mut assignments: Vec<_> = t.assignments.iter().collect();
    assignments.sort_by_key(|a| a.partition_index);
    Ok(NewTopic {
        name: t.name.to_string(),
        partitions: t.num_partitions,
        replication_factor: t.replication_factor,
        assignments: assignments
            .iter()
            .map(|a| a.broker_ids.iter().map(|b| b.0).collect())
            .collect(),
        configs: configs.into_iter().collect(),
    })
}

fn answer(
    t: &CreatableTopic,
    outcome: Result<(NewTopic, TopicCreated), NotDone>,
    version: i16,
    config: &crate::config::BrokerConfig,
) -> CreatableTopicResult {
    let result = CreatableTopicResult::default().with_name(t.name.clone());
    let (topic, created) = match outcome {
        Ok(done) => done,
        Err(e) => {
            return result
                .with_error_code(e.error.code())
                .with_error_message(Some(StrBytes::from_string(e.message)));
        }
    };
    let mut ok = result
        .with_num_partitions(created.partitions)
        .with_replication_factor(created.replication_factor);
    if !created.topic_id.is_nil() {
        ok = ok.with_topic_id(created.topic_id);
    }
    if version >= 5 {
        let configs: BTreeMap<String, String> = topic.configs.into_iter().collect();
        let entries = topic_config_entries(&configs, config)
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
