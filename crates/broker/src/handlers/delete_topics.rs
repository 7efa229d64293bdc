//! DeleteTopics (v1–v5): by name.

use super::now;
use crate::error;
use crate::server::Broker;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse};
use kafka_protocol::protocol::StrBytes;
use std::sync::Arc;

pub(crate) fn handle(
    broker: &Arc<Broker>,
    request: DeleteTopicsRequest,
    _version: i16,
) -> std::future::Ready<Option<DeleteTopicsResponse>> {
    let responses = request
        .topic_names
        .into_iter()
        .map(|name| {
            let result = DeletableTopicResult::default().with_name(Some(name.clone()));
            if crate::groups::is_internal(&name) {
                return result
                    .with_error_code(ResponseError::InvalidTopicException.code())
                    .with_error_message(Some(StrBytes::from_static_str(
                        "internal topics cannot be deleted",
                    )));
            }
            match broker.logs.delete_topic(&name) {
                Ok(()) => result,
                Err(e) => result
                    .with_error_code(error::code(&e))
                    .with_error_message(Some(StrBytes::from_string(e.to_string()))),
            }
        })
        .collect();
    now(DeleteTopicsResponse::default().with_responses(responses))
}
