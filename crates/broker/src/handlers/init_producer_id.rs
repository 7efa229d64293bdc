//! InitProducerId (v0–v4) for idempotent producers: a producer id never handed out before, at
//! epoch 0. As in Kafka, a request without a `transactional.id` always gets a fresh id, even
//! when it names its current id and epoch (v3+, the producer bumping its epoch after an
//! error): the new id starts its sequences from 0 everywhere.
//!
//! A `transactional.id` needs a transaction coordinator, which Sluice does not have yet: such a
//! request gets INVALID_REQUEST (FindCoordinator for a transaction already refuses the same
//! way). v5 is left out: it tells clients the broker does KIP-890 (transactions V2).

use super::now;
use crate::error;
use crate::server::Broker;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use std::sync::Arc;

pub(crate) fn handle(
    broker: &Arc<Broker>,
    request: InitProducerIdRequest,
    _version: i16,
) -> std::future::Ready<Option<InitProducerIdResponse>> {
    let response = InitProducerIdResponse::default();
    if request.transactional_id.is_some() {
        return now(response.with_error_code(ResponseError::InvalidRequest.code()));
    }
    match broker.logs.allocate_producer_id() {
        Ok(id) => now(response
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(0)),
        Err(e) => {
            tracing::error!(error = %e, "could not allocate a producer id");
            now(response.with_error_code(error::code(&e)))
        }
    }
}
