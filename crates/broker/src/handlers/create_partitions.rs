//! CreatePartitions (v0–v3): grows topics, carried out by the active controller (new
//! partitions are placed round-robin over the live brokers unless the request assigns them).
//! `validate_only` is checked here against this broker's image. An internal topic's count is
//! fixed (INVALID_TOPIC_EXCEPTION), as DeleteTopics refuses to delete one.

use crate::controller_client::{NotDone, wait_limit};
use crate::server::Broker;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use kafka_protocol::protocol::StrBytes;
use sluice_controller::{ControllerCommand, ControllerReply, MetadataImage, NewPartitions};
use sluice_types::limits::PARTITIONS_PER_TOPIC_MAX;
use std::future::Future;
use std::sync::Arc;

pub(crate) fn handle(
    broker: &Arc<Broker>,
    request: CreatePartitionsRequest,
    _version: i16,
) -> impl Future<Output = Option<CreatePartitionsResponse>> + Send + 'static + use<> {
    let broker = broker.clone();
    async move {
        let limit = wait_limit(request.timeout_ms);
        let changes: Vec<NewPartitions> = request.topics.iter().map(change).collect();
        // An internal topic's partition count places its groups and transactions (Kafka's
        // hash of their ids): growing it would lose them.
        let internal = |c: &NewPartitions| crate::groups::is_internal(&c.topic);
        let wanted: Vec<NewPartitions> = changes.iter().filter(|c| !internal(c)).cloned().collect();
        let mut done = if request.validate_only {
            let image = broker.published_image();
            wanted.iter().map(|c| validate(&image, c)).collect()
        } else {
            grow(&broker, wanted, limit).await
        }
        .into_iter();
        let outcomes: Vec<Result<(), NotDone>> = changes
            .iter()
            .map(|c| {
                if internal(c) {
                    Err(NotDone {
                        error: ResponseError::InvalidTopicException,
                        message: "the partition count of an internal topic is fixed".into(),
                    })
                } else {
                    done.next().expect("one outcome per wanted change")
                }
            })
            .collect();
        let results = request
            .topics
            .iter()
            .zip(outcomes)
            .map(|(t, outcome)| {
                let result = CreatePartitionsTopicResult::default().with_name(t.name.clone());
                match outcome {
                    Ok(()) => result,
                    Err(e) => result
                        .with_error_code(e.error.code())
                        .with_error_message(Some(StrBytes::from_string(e.message))),
                }
            })
            .collect();
        Some(CreatePartitionsResponse::default().with_results(results))
    }
}

fn change(t: &CreatePartitionsTopic) -> NewPartitions {
    NewPartitions {
        topic: t.name.to_string(),
        total: t.count,
        assignments: t
            .assignments
            .iter()
            .flatten()
            .map(|a| a.broker_ids.iter().map(|b| b.0).collect())
            .collect(),
    }
}

/// `validate_only`: the checks the controller would make of the counts.
fn validate(image: &MetadataImage, change: &NewPartitions) -> Result<(), NotDone> {
    let Some(topic) = image.topic(&change.topic) else {
        return Err(NotDone {
            error: ResponseError::UnknownTopicOrPartition,
            message: format!("topic {} does not exist", change.topic),
        });
    };
    let current = topic.partitions.len() as i32;
    if change.total <= current || change.total > PARTITIONS_PER_TOPIC_MAX {
        return Err(NotDone {
            error: ResponseError::InvalidPartitions,
            message: format!(
                "topic has {current} partitions; the new total must be greater and at most {PARTITIONS_PER_TOPIC_MAX}, not {}",
                change.total
            ),
        });
    }
    Ok(())
}

async fn grow(
    broker: &Broker,
    changes: Vec<NewPartitions>,
    limit: std::time::Duration,
) -> Vec<Result<(), NotDone>> {
    let command = ControllerCommand::CreatePartitions(changes.clone());
    let results = broker
        .submit_each(command, changes.len(), limit, |reply| match reply {
            ControllerReply::PartitionsCreated(results) => Some(results),
            _ => None,
        })
        .await;
    let grown: Vec<(String, i32)> = changes
        .iter()
        .zip(&results)
        .filter(|(_, r)| r.is_ok())
        .map(|(c, _)| (c.topic.clone(), c.total))
        .collect();
    let shown = broker
        .wait_published(limit, |image| {
            grown.iter().all(|(name, total)| {
                image
                    .topic(name)
                    .is_none_or(|t| t.partitions.len() as i32 >= *total)
            })
        })
        .await;
    if !shown {
        tracing::warn!("new partitions not yet published on this broker");
    }
    results
}
