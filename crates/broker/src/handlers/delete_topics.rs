//! DeleteTopics (v1–v5): by name, carried out by the active controller. The answer comes once
//! this broker has published the removal (its own logs of the topics are gone); every other
//! broker deletes its logs when its image shows the removal.

use crate::controller_client::{NotDone, wait_limit};
use crate::server::Broker;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use sluice_controller::{ControllerCommand, ControllerReply};
use std::future::Future;
use std::sync::Arc;

pub(crate) fn handle(
    broker: &Arc<Broker>,
    request: DeleteTopicsRequest,
    _version: i16,
) -> impl Future<Output = Option<DeleteTopicsResponse>> + Send + 'static + use<> {
    let broker = broker.clone();
    async move {
        let limit = wait_limit(request.timeout_ms);
        let names: Vec<TopicName> = request.topic_names;
        let wanted: Vec<String> = names
            .iter()
            .filter(|n| !crate::groups::is_internal(n))
            .map(|n| n.to_string())
            .collect();
        let mut outcomes = delete(&broker, &wanted, limit).await.into_iter();
        let responses = names
            .into_iter()
            .map(|name| {
                let result = DeletableTopicResult::default().with_name(Some(name.clone()));
                let outcome = if crate::groups::is_internal(&name) {
                    Err(NotDone {
                        error: ResponseError::InvalidTopicException,
                        message: "internal topics cannot be deleted".into(),
                    })
                } else {
                    outcomes.next().expect("one per topic")
                };
                match outcome {
                    Ok(()) => result,
                    Err(e) => result
                        .with_error_code(e.error.code())
                        .with_error_message(Some(StrBytes::from_string(e.message))),
                }
            })
            .collect();
        Some(DeleteTopicsResponse::default().with_responses(responses))
    }
}

async fn delete(
    broker: &Broker,
    names: &[String],
    limit: std::time::Duration,
) -> Vec<Result<(), NotDone>> {
    let command = ControllerCommand::DeleteTopics(names.to_vec());
    let results = broker
        .submit_each(command, names.len(), limit, |reply| match reply {
            ControllerReply::TopicsDeleted(results) => Some(results),
            _ => None,
        })
        .await;
    let ids: Vec<uuid::Uuid> = results.iter().flatten().copied().collect();
    let shown = broker
        .wait_published(limit, |image| {
            ids.iter().all(|id| !image.topics.contains_key(id))
        })
        .await;
    if !shown {
        tracing::warn!(
            topics = ids.len(),
            "deleted topics not yet removed on this broker"
        );
    }
    results.into_iter().map(|r| r.map(|_| ())).collect()
}
