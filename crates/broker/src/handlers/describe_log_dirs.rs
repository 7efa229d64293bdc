//! DescribeLogDirs (v1–v4): the broker's one log directory, each partition's size in it, and
//! (v4) the filesystem's total and usable bytes. Topics or partitions that do not exist are
//! left out of the answer, as Kafka does.

use super::{first_of_each, now};
use crate::server::Broker;
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
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
    let topics = wanted
        .into_iter()
        .filter_map(|(name, partitions)| describe_topic(broker, &name, partitions))
        .collect();
    let mut result = DescribeLogDirsResult::default()
        .with_log_dir(StrBytes::from_string(
            broker.logs.data_dir().display().to_string(),
        ))
        .with_topics(topics);
    if version >= 4 {
        let (total, usable) = broker.logs.disk_space().unwrap_or((-1, -1));
        result = result.with_total_bytes(total).with_usable_bytes(usable);
    }
    now(DescribeLogDirsResponse::default().with_results(vec![result]))
}

fn describe_topic(
    broker: &Broker,
    name: &str,
    partitions: Option<Vec<i32>>,
) -> Option<DescribeLogDirsTopic> {
    let topic = broker.logs.topic(name)?;
    let indexes = partitions.unwrap_or_else(|| (0..topic.partition_count()).collect());
    let described = indexes
        .into_iter()
        .filter_map(|i| {
            let partition = topic.partition(i)?;
            let size = partition.log().size_bytes();
            Some(
                DescribeLogDirsPartition::default()
                    .with_partition_index(i)
                    .with_partition_size(size as i64)
                    .with_offset_lag(0),
            )
        })
        .collect();
    Some(
        DescribeLogDirsTopic::default()
            .with_name(TopicName(StrBytes::from_string(name.to_string())))
            .with_partitions(described),
    )
}
