//! CreatePartitions (v0–v3): grows a topic. Manual assignments may only name this broker.

use super::now;
use crate::error;
use crate::server::Broker;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use kafka_protocol::protocol::StrBytes;
use std::sync::Arc;

pub(crate) fn handle(
    broker: &Arc<Broker>,
    request: CreatePartitionsRequest,
    _version: i16,
) -> std::future::Ready<Option<CreatePartitionsResponse>> {
    let image = broker.metadata();
    let results = request
        .topics
        .into_iter()
        .map(|t| {
            let result = CreatePartitionsTopicResult::default().with_name(t.name.clone());
            let unknown = t
                .assignments
                .iter()
                .flatten()
                .flat_map(|a| a.broker_ids.iter())
                .find(|b| !image.is_broker(b.0));
            let outcome = if let Some(unknown) = unknown {
                Err((
                    ResponseError::InvalidReplicaAssignment.code(),
                    format!("broker {} does not exist", unknown.0),
                ))
            } else {
                broker
                    .create_partitions(&t.name, t.count, request.validate_only)
                    .map_err(|e| (error::code(&e), e.to_string()))
            };
            match outcome {
                Ok(()) => result,
                Err((code, message)) => result
                    .with_error_code(code)
                    .with_error_message(Some(StrBytes::from_string(message))),
            }
        })
        .collect();
    now(CreatePartitionsResponse::default().with_results(results))
}
