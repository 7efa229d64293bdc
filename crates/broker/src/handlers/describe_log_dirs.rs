//! DescribeLogDirs (v1–v4): the broker's one log directory, each partition's size in it, and
//! (v4) the filesystem's total and usable bytes. Topics or partitions that do not exist are
//! left out of the answer, as Kafka does; one named twice is answered once.
//!
//! Damage on disk (see the storage design) is reported here too, in a second entry named
//! `<data dir> (damaged)` with `KAFKA_STORAGE_ERROR`: it lists only the damaged partitions,
//! `partition_size` being the damaged bytes and `offset_lag` the offsets lost. Kafka's
//! response has no field for damage, and tools show a log directory in error loudly.

use super::{first_of_each, now};
use crate::server::Broker;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use sluice_storage::Damage;
use std::sync::Arc;

pub(crate) fn handle(
    broker: &Arc<Broker>,
    request: DescribeLogDirsRequest,
    version: i16,
) -> std::future::Ready<Option<DescribeLogDirsResponse>> {
    let wanted: Vec<(String, Option<Vec<i32>>)> = match request.topics {
        Some(topics) => first_of_each(topics, |t| t.topic.clone())
            .into_iter()
            .map(|t| (t.topic.to_string(), Some(t.partitions)))
            .collect(),
        None => broker
            .logs
            .topics()
            .iter()
            .map(|t| (t.name().to_string(), None))
            .collect(),
    };
    let data_dir = broker.logs.data_dir().display().to_string();
    let (topics, damaged): (Vec<_>, Vec<_>) = wanted
        .into_iter()
        .filter_map(|(name, partitions)| describe_topic(broker, &name, partitions))
        .unzip();
    let mut result = DescribeLogDirsResult::default()
        .with_log_dir(StrBytes::from_string(data_dir.clone()))
        .with_topics(topics);
    if version >= 4 {
        let (total, usable) = broker.logs.disk_space().unwrap_or((-1, -1));
        result = result.with_total_bytes(total).with_usable_bytes(usable);
    }
    let damaged: Vec<DescribeLogDirsTopic> = damaged
        .into_iter()
        .filter(|t| !t.partitions.is_empty())
        .collect();
    let mut results = vec![result];
    if !damaged.is_empty() {
        results.push(
            DescribeLogDirsResult::default()
                .with_error_code(ResponseError::KafkaStorageError.code())
                .with_log_dir(StrBytes::from_string(format!("{data_dir} (damaged)")))
                .with_topics(damaged)
                .with_total_bytes(-1)
                .with_usable_bytes(-1),
        );
    }
    now(DescribeLogDirsResponse::default().with_results(results))
}

/// The topic's partitions as stored, and those of them with damage (see the module doc).
fn describe_topic(
    broker: &Broker,
    name: &str,
    partitions: Option<Vec<i32>>,
) -> Option<(DescribeLogDirsTopic, DescribeLogDirsTopic)> {
    let topic = broker.logs.topic(name)?;
    let indexes = match partitions {
        Some(indexes) => first_of_each(indexes, |&i| i),
        None => (0..topic.partition_count()).collect(),
    };
    let mut described = Vec::new();
    let mut damaged = Vec::new();
    for i in indexes {
        let Some(partition) = topic.partition(i) else {
            continue;
        };
        let (size, damage) = {
            let log = partition.log();
            (log.size_bytes(), log.damage())
        };
        described.push(
            DescribeLogDirsPartition::default()
                .with_partition_index(i)
                .with_partition_size(size as i64)
                .with_offset_lag(0),
        );
        if !damage.is_empty() {
            let bytes: u64 = damage.iter().map(Damage::bytes).sum();
            let offsets: i64 = damage.iter().map(Damage::lost_offsets).sum();
            damaged.push(
                DescribeLogDirsPartition::default()
                    .with_partition_index(i)
                    .with_partition_size(bytes as i64)
                    .with_offset_lag(offsets),
            );
        }
    }
    let named = |partitions| {
        DescribeLogDirsTopic::default()
            .with_name(TopicName(StrBytes::from_string(name.to_string())))
            .with_partitions(partitions)
    };
    Some((named(described), named(damaged)))
}
