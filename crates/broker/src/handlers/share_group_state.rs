//! ReadShareGroupState, WriteShareGroupState and DeleteShareGroupState (v0): a share-partition
//! leader (or the group's coordinator) on another broker reads, writes and deletes a
//! share-partition's state at its share coordinator, here
//! (`share_coordinators`). Each share-partition is answered on its own: NOT_COORDINATOR when
//! this broker does not keep it; state epoch -1 when no state was written yet (Sluice's
//! convention between its brokers).

use crate::error::share_state_error;
use crate::server::Broker;
use crate::share_coordinators::{SHARE_STATE_TOPIC, partition_of};
use crate::shares::persist::{NO_STATE_EPOCH, batch};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_share_group_state_response::{
    self as delete_response, DeleteStateResult,
};
use kafka_protocol::messages::read_share_group_state_response::{
    self as read_response, ReadStateResult,
};
use kafka_protocol::messages::write_share_group_state_response::{
    self as write_response, WriteStateResult,
};
use kafka_protocol::messages::{
    DeleteShareGroupStateRequest, DeleteShareGroupStateResponse, ReadShareGroupStateRequest,
    ReadShareGroupStateResponse, WriteShareGroupStateRequest, WriteShareGroupStateResponse,
};
use sluice_share::{ShareStateKey, ShareStateValue};
use std::future::Future;
use std::sync::Arc;

/// The partition of `__share_group_state` keeping `key`, in this broker's image.
fn index_of(broker: &Broker, key: &ShareStateKey) -> Result<i32, ResponseError> {
    let image = broker.published_image();
    let topic = image
        .topic(SHARE_STATE_TOPIC)
        .ok_or(ResponseError::NotCoordinator)?;
    Ok(partition_of(key, topic.partitions.len() as i32))
}

fn key(group: &str, topic_id: uuid::Uuid, partition: i32) -> ShareStateKey {
    ShareStateKey {
        group: group.to_string(),
        topic_id: topic_id.as_u128(),
        partition,
    }
}

pub(crate) fn read(
    broker: &Arc<Broker>,
    request: ReadShareGroupStateRequest,
    _version: i16,
) -> std::future::Ready<Option<ReadShareGroupStateResponse>> {
    let group = request.group_id.to_string();
    let results = request
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let key = key(&group, t.topic_id, p.partition);
                    let read = index_of(broker, &key).and_then(|index| {
                        let coordinators = &broker.share_coordinators;
                        coordinators
                            .read(index, &key)
                            .map_err(|e| share_state_error(&e))
                    });
                    read_result(p.partition, read)
                })
                .collect();
            ReadStateResult::default()
                .with_topic_id(t.topic_id)
                .with_partitions(partitions)
        })
        .collect();
    std::future::ready(Some(
        ReadShareGroupStateResponse::default().with_results(results),
    ))
}

fn read_result(
    partition: i32,
    read: Result<Option<ShareStateValue>, ResponseError>,
) -> read_response::PartitionResult {
    let base = read_response::PartitionResult::default().with_partition(partition);
    match read {
        Err(e) => base.with_error_code(e.code()),
        Ok(None) => base.with_state_epoch(NO_STATE_EPOCH).with_start_offset(-1),
        Ok(Some(v)) => base
            .with_state_epoch(v.state_epoch)
            .with_start_offset(v.start_offset)
            .with_state_batches(
                v.batches
                    .iter()
                    .map(|b| {
                        read_response::StateBatch::default()
                            .with_first_offset(b.first_offset)
                            .with_last_offset(b.last_offset)
                            .with_delivery_state(b.state as i8)
                            .with_delivery_count(
                                i16::try_from(b.delivery_count).unwrap_or(i16::MAX),
                            )
                    })
                    .collect(),
            ),
    }
}

pub(crate) fn write(
    broker: &Arc<Broker>,
    request: WriteShareGroupStateRequest,
    _version: i16,
) -> impl Future<Output = Option<WriteShareGroupStateResponse>> + Send + 'static + use<> {
    let broker = broker.clone();
    async move {
        let group = request.group_id.to_string();
        let mut results = Vec::with_capacity(request.topics.len());
        for t in request.topics {
            let mut partitions = Vec::with_capacity(t.partitions.len());
            for p in t.partitions {
                let key = key(&group, t.topic_id, p.partition);
                let (partition, written) = write_one(&broker, key, p).await;
                partitions.push(
                    write_response::PartitionResult::default()
                        .with_partition(partition)
                        .with_error_code(written.err().map_or(0, |e| e.code())),
                );
            }
            results.push(
                WriteStateResult::default()
                    .with_topic_id(t.topic_id)
                    .with_partitions(partitions),
            );
        }
        Some(WriteShareGroupStateResponse::default().with_results(results))
    }
}

async fn write_one(
    broker: &Broker,
    key: ShareStateKey,
    p: kafka_protocol::messages::write_share_group_state_request::PartitionData,
) -> (i32, Result<(), ResponseError>) {
    let partition = p.partition;
    let batches: Result<Vec<_>, _> = p
        .state_batches
        .iter()
        .map(|b| {
            batch(
                b.first_offset,
                b.last_offset,
                b.delivery_state,
                b.delivery_count,
            )
        })
        .collect();
    let value = batches.map(|batches| ShareStateValue {
        state_epoch: p.state_epoch,
        leader_epoch: p.leader_epoch,
        start_offset: p.start_offset,
        write_time_ms: crate::now_ms(),
        batches,
    });
    let written = match (value, index_of(broker, &key)) {
        (Ok(value), Ok(index)) => broker
            .share_coordinators
            .write(index, key, value)
            .await
            .map_err(|e| share_state_error(&e)),
        (Err(e), _) | (_, Err(e)) => Err(e),
    };
    (partition, written)
}

pub(crate) fn delete(
    broker: &Arc<Broker>,
    request: DeleteShareGroupStateRequest,
    _version: i16,
) -> impl Future<Output = Option<DeleteShareGroupStateResponse>> + Send + 'static + use<> {
    let broker = broker.clone();
    async move {
        let group = request.group_id.to_string();
        let mut results = Vec::with_capacity(request.topics.len());
        for t in request.topics {
            let mut partitions = Vec::with_capacity(t.partitions.len());
            for p in t.partitions {
                let key = key(&group, t.topic_id, p.partition);
                let deleted = match index_of(&broker, &key) {
                    Ok(index) => broker
                        .share_coordinators
                        .delete(index, key)
                        .await
                        .map_err(|e| share_state_error(&e)),
                    Err(e) => Err(e),
                };
                partitions.push(
                    delete_response::PartitionResult::default()
                        .with_partition(p.partition)
                        .with_error_code(deleted.err().map_or(0, |e| e.code())),
                );
            }
            results.push(
                DeleteStateResult::default()
                    .with_topic_id(t.topic_id)
                    .with_partitions(partitions),
            );
        }
        Some(DeleteShareGroupStateResponse::default().with_results(results))
    }
}
