//! The internal topics (`__consumer_offsets`, `__transaction_state`): their creation through
//! the controller (`ensure`), and their records as batches: encoding a coordinator's keyed
//! records into one batch, and reading a partition back from its start when its coordinator
//! is loaded, so it can rebuild its state.

use sluice_record::{
    BatchHeader, BatchIter, ControlMarker, NewRecord, decode_records, encode_batch, read_marker,
};
use sluice_storage::{Partition, StorageError};

/// Bytes read at a time.
const READ_BYTES: usize = 1024 * 1024;

/// What replay hands a coordinator: a record, or a transaction marker (control batch).
pub(crate) enum Replayed<'a> {
    Record {
        key: Option<&'a [u8]>,
        value: Option<&'a [u8]>,
    },
    Marker(ControlMarker),
}

/// Replays the partition at start, oldest first, handing each record and each transaction
/// marker to `apply` with its batch's header; `apply` says whether it could decode a record.
/// Logs how many records were replayed and how many skipped.
pub(crate) fn replay(
    partition: &Partition,
    mut apply: impl FnMut(&BatchHeader, Replayed<'_>) -> bool,
) -> Result<(), StorageError> {
    let (mut records, mut skipped) = (0u64, 0u64);
    let mut offset = partition.log().log_start_offset();
    loop {
        let plan = partition.read(offset, READ_BYTES, true)?;
        let bytes = partition.read_batches(&plan)?;
        if bytes.is_empty() {
            break;
        }
        for batch in BatchIter::new(&bytes) {
            let (header, batch) = batch?;
            offset = header.last_offset() + 1;
            if header.is_control() {
                if let Some(marker) = read_marker(batch)? {
                    apply(&header, Replayed::Marker(marker));
                }
                continue;
            }
            decode_records(batch, |r| {
                let record = Replayed::Record {
                    key: r.key,
                    value: r.value,
                };
                if apply(&header, record) {
                    records += 1;
                } else {
                    skipped += 1;
                }
                true
            })?;
        }
    }
    let (topic, index) = (partition.topic(), partition.index());
    if skipped > 0 {
        tracing::warn!(
            topic,
            partition = index,
            skipped,
            "skipped unreadable records"
        );
    }
    if records > 0 {
        tracing::info!(topic, partition = index, records, "replayed");
    }
    Ok(())
}

/// One uncompressed batch of (key, value) records; a `None` value is a tombstone.
pub(crate) fn keyed_batch(records: &[(Vec<u8>, Option<Vec<u8>>)], now_ms: i64) -> Vec<u8> {
    let new_records: Vec<NewRecord<'_>> = records
        .iter()
        .map(|(k, v)| NewRecord {
            key: Some(k),
            value: v.as_deref(),
        })
        .collect();
    encode_batch(0, now_ms, &new_records)
}

/// Creates `topic` (an internal topic) through the controller if this broker's image lacks it.
pub(crate) async fn ensure(broker: &crate::server::Broker, topic: &str) {
    if broker.metadata().topic(topic).is_some() {
        return;
    }
    let (partitions, mut configs) = match topic {
        crate::groups::OFFSETS_TOPIC => (
            broker.config.offsets_topic_partitions,
            vec![(
                "segment.bytes".to_string(),
                broker.config.offsets_topic_segment_bytes.to_string(),
            )],
        ),
        _ => (broker.config.transaction_state_partitions, Vec::new()),
    };
    configs.push(("cleanup.policy".to_string(), "compact".to_string()));
    let new_topic = sluice_controller::NewTopic {
        name: topic.to_string(),
        partitions,
        replication_factor: -1,
        assignments: Vec::new(),
        configs,
    };
    let outcomes = crate::handlers::create_topics::create(
        broker,
        vec![new_topic],
        false,
        crate::controller_client::CONTROLLER_WAIT_MAX,
    )
    .await;
    for outcome in outcomes {
        match outcome {
            Ok(_) => tracing::info!(topic, partitions, "internal topic created"),
            Err(e) if e.error == kafka_protocol::error::ResponseError::TopicAlreadyExists => {}
            Err(e) => tracing::warn!(topic, error = %e.message, "internal topic not created"),
        }
    }
}
