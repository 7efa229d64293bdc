//! AddOffsetsToTxn (v0–v3): a transactional producer is about to commit a consumer group's
//! offsets in its transaction (`send_offsets_to_transaction`): the group's partition of
//! `__consumer_offsets` joins the transaction, so its marker makes those offsets take effect
//! (or drops them). v4 (KIP-890, transactions V2) is not offered.

use crate::error;
use crate::server::Broker;
use kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse};
use sluice_types::TopicPartition;
use std::future::Future;
use std::sync::Arc;

pub(crate) fn handle(
    broker: &Arc<Broker>,
    request: AddOffsetsToTxnRequest,
    version: i16,
) -> impl Future<Output = Option<AddOffsetsToTxnResponse>> + Send + 'static + use<> {
    let broker = broker.clone();
    async move {
        let id = request.transactional_id.to_string();
        let group_id = request.group_id.0.to_string();
        if group_id.is_empty() {
            return Some(
                AddOffsetsToTxnResponse::default()
                    .with_error_code(kafka_protocol::error::ResponseError::InvalidGroupId.code()),
            );
        }
        // The group's `__consumer_offsets` partition joins the transaction, wherever it is
        // led (its marker reaches it through WriteTxnMarkers).
        let offsets = crate::groups::OFFSETS_TOPIC;
        crate::internal_topics::ensure(&broker, offsets).await;
        let count = broker
            .published_image()
            .topic(offsets)
            .map_or(0, |t| t.partitions.len() as i32);
        if count == 0 {
            let code = kafka_protocol::error::ResponseError::CoordinatorNotAvailable.code();
            return Some(AddOffsetsToTxnResponse::default().with_error_code(code));
        }
        let index = sluice_types::partition_for(&group_id, count);
        let offsets_partition = TopicPartition::new(crate::groups::OFFSETS_TOPIC, index);
        let (producer_id, epoch) = (request.producer_id.0, request.producer_epoch);
        let now = crate::now_ms();
        let result = broker
            .run_txn(&id, |c| {
                c.add_partitions(&id, producer_id, epoch, &[offsets_partition], now)
            })
            .await;
        Some(
            AddOffsetsToTxnResponse::default()
                .with_error_code(error::txn_code(&result, version >= 2)),
        )
    }
}
