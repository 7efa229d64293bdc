//! DeleteRecords (v0–v2): moves a partition's log start offset forward; -1 means "up to the
//! high watermark". Answered once the new start offset is durable (its checkpoint fsynced);
//! Kafka writes it on a timer.

use super::now;
use crate::server::Broker;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};
use std::sync::Arc;

pub(crate) fn handle(
    broker: &Arc<Broker>,
    request: DeleteRecordsRequest,
    _version: i16,
) -> std::future::Ready<Option<DeleteRecordsResponse>> {
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let result = DeleteRecordsPartitionResult::default()
                        .with_partition_index(p.partition_index);
                    let target = (p.offset != -1).then_some(p.offset);
                    let led = broker
                        .metadata()
                        .led_partition(&t.name, p.partition_index, -1);
                    let deleted = led.and_then(|partition| {
                        partition
                            .delete_records_before(target)
                            .map_err(|e| crate::error::storage_error(&e))
                    });
                    match deleted {
                        Ok(low_watermark) => result.with_low_watermark(low_watermark),
                        Err(e) => result.with_low_watermark(-1).with_error_code(e.code()),
                    }
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    now(DeleteRecordsResponse::default().with_topics(topics))
}
