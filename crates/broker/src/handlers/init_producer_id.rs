//! InitProducerId (v0–v4). Without a `transactional.id` (idempotent producers): a producer id
//! never handed out before in the cluster (`producer_ids`: blocks from the controller), at
//! epoch 0; as in Kafka, also when the request names its current
//! id and epoch (v3+, a producer bumping its epoch after an error), the new id starting its
//! sequences from 0 everywhere.
//!
//! With a `transactional.id`: the transaction coordinator's answer (`sluice_txn`): the id's
//! producer id and a bumped epoch, fencing older instances; an open transaction of an older
//! instance is aborted first (CONCURRENT_TRANSACTIONS until done, and the client retries).
//! Fenced producers get PRODUCER_FENCED from v4, INVALID_PRODUCER_EPOCH before. v5 (KIP-890,
//! transactions V2) is not offered.

use crate::error;
use crate::server::Broker;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use std::future::Future;
use std::sync::Arc;

pub(crate) fn handle(
    broker: &Arc<Broker>,
    request: InitProducerIdRequest,
    version: i16,
) -> impl Future<Output = Option<InitProducerIdResponse>> + Send + 'static + use<> {
    let broker = broker.clone();
    async move {
        let response = InitProducerIdResponse::default();
        let cluster = broker.cluster.as_ref();
        let Some(id) = request.transactional_id.as_ref().map(|t| t.to_string()) else {
            return Some(match broker.producer_ids.next(cluster).await {
                Ok(pid) => response
                    .with_producer_id(ProducerId(pid))
                    .with_producer_epoch(0),
                Err(e) => response.with_error_code(e.code()),
            });
        };
        // A client that skipped FindCoordinator (the topic is created on first need).
        let topic = crate::transactions::TRANSACTION_STATE_TOPIC;
        crate::internal_topics::ensure(&broker, topic).await;
        // The coordinator may want a new id; one is at hand before it decides (its decision
        // is not a place to wait for the controller).
        if let Err(e) = broker.producer_ids.refill(cluster).await {
            return Some(response.with_error_code(e.code()));
        }
        let expected = (version >= 3 && request.producer_id.0 >= 0)
            .then_some((request.producer_id.0, request.producer_epoch));
        let now = crate::now_ms();
        let ids = &broker.producer_ids;
        let result = broker
            .run_txn(&id, |c| {
                c.init_producer_id(&id, request.transaction_timeout_ms, expected, now, || {
                    ids.try_take()
                })
            })
            .await;
        Some(match result {
            Ok((pid, epoch)) => response
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(epoch),
            Err(e) => response.with_error_code(error::txn_error(&e, version >= 4).code()),
        })
    }
}
