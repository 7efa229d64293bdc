//! WriteTxnMarkers (v1): a transaction coordinator on another broker has this broker, the
//! leader of some of a transaction's partitions, write the transaction's commit or abort
//! marker there. Each partition is answered once its marker is fsynced, so the coordinator
//! records the transaction complete only when every marker is durable. A marker in a
//! `__consumer_offsets` partition also applies (or drops) the offsets the transaction
//! committed there. Brokers send this request; until the security issue adds ACLs, any
//! client may.

use crate::error;
use crate::groups::OFFSETS_TOPIC;
use crate::server::Broker;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{WriteTxnMarkersRequest, WriteTxnMarkersResponse};
use sluice_record::{ControlMarker, encode_marker_batch};
use sluice_storage::AppendOrigin;
use std::future::Future;
use std::sync::Arc;

pub(crate) fn handle(
    broker: &Arc<Broker>,
    request: WriteTxnMarkersRequest,
    _version: i16,
) -> impl Future<Output = Option<WriteTxnMarkersResponse>> + Send + 'static + use<> {
    let broker = broker.clone();
    async move {
        let mut markers = Vec::with_capacity(request.markers.len());
        for marker in request.markers {
            let now = crate::now_ms();
            let control = ControlMarker {
                commit: marker.transaction_result,
                coordinator_epoch: marker.coordinator_epoch,
            };
            let producer = (marker.producer_id.0, marker.producer_epoch);
            let batch = encode_marker_batch(producer.0, producer.1, control, now);
            let mut topics = Vec::with_capacity(marker.topics.len());
            for topic in marker.topics {
                let mut partitions = Vec::with_capacity(topic.partition_indexes.len());
                for index in topic.partition_indexes {
                    let target = (topic.name.as_str(), index);
                    let code = write(&broker, target, &batch, producer.0, control.commit).await;
                    partitions.push(
                        WritableTxnMarkerPartitionResult::default()
                            .with_partition_index(index)
                            .with_error_code(code),
                    );
                }
                topics.push(
                    WritableTxnMarkerTopicResult::default()
                        .with_name(topic.name)
                        .with_partitions(partitions),
                );
            }
            markers.push(
                WritableTxnMarkerResult::default()
                    .with_producer_id(marker.producer_id)
                    .with_topics(topics),
            );
        }
        Some(WriteTxnMarkersResponse::default().with_markers(markers))
    }
}

/// Writes one marker and waits until it is durable; its error code.
async fn write(
    broker: &Broker,
    (topic, index): (&str, i32),
    batch: &[u8],
    producer_id: i64,
    commit: bool,
) -> i16 {
    let partition = match broker.metadata().led_partition(topic, index, -1) {
        Ok(p) => p,
        Err(e) => return e.code(),
    };
    let appended = partition.append(batch, AppendOrigin::Broker, crate::now_ms());
    let info = match appended {
        Ok(info) => info,
        Err(e) => return error::code(&e),
    };
    if topic == OFFSETS_TOPIC {
        broker.groups().complete_txn(index, producer_id, commit);
    }
    if broker
        .wait_written((topic, index), &partition, info.last_offset + 1)
        .await
    {
        0
    } else {
        ResponseError::KafkaStorageError.code()
    }
}
