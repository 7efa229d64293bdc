//! Data requests against a partition's leader: ListOffsets, Produce and Fetch. Batches go out
//! and come back as RecordBatch bytes; `sluice_record` builds and decodes them.

use crate::admin::{empty_answer, topic_name};
use crate::client::Client;
use crate::error::{ClientError, Result};
use bytes::Bytes;
use kafka_protocol::messages::{
    BrokerId, FetchRequest, ListOffsetsRequest, ProduceRequest,
    fetch_request::{FetchPartition, FetchTopic},
    list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic},
    produce_request::{PartitionProduceData, TopicProduceData},
};
use std::time::Duration;

/// ListOffsets' special timestamps.
pub const LATEST: i64 = -1;
pub const EARLIEST: i64 = -2;

/// How long the broker may hold a produce waiting for `acks=all`.
const PRODUCE_TIMEOUT_MS: i32 = 30_000;

/// The offset of the first record at or after `timestamp` in `topic`-`partition` (or
/// `LATEST` / `EARLIEST`); the log end offset when no record is that new.
pub async fn list_offset(
    client: &mut Client,
    topic: &str,
    partition: i32,
    timestamp: i64,
) -> Result<i64> {
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![
            ListOffsetsTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(vec![
                    ListOffsetsPartition::default()
                        .with_partition_index(partition)
                        .with_current_leader_epoch(-1)
                        .with_timestamp(timestamp),
                ]),
        ]);
    let (_, response) = client
        .leader(topic, partition)
        .await?
        .send(&request, 7)
        .await?;
    let p = response
        .topics
        .first()
        .and_then(|t| t.partitions.first())
        .ok_or_else(|| empty_answer("ListOffsets"))?;
    ClientError::check(p.error_code, None, || {
        format!("looking up an offset in {topic}-{partition}")
    })?;
    if p.offset < 0 {
        // No record at or after the timestamp: Kafka answers -1; the end is where to start.
        return Box::pin(list_offset(client, topic, partition, LATEST)).await;
    }
    Ok(p.offset)
}

/// Kafka's `acks`: 0 (no answer), 1 (the leader wrote it), -1 (`all`: fsynced on Sluice).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    None,
    Leader,
    All,
}

impl Acks {
    fn code(self) -> i16 {
        match self {
            Acks::None => 0,
            Acks::Leader => 1,
            Acks::All => -1,
        }
    }
}

/// Produces one record batch to `topic`-`partition`; returns the base offset it was given
/// (`None` with `Acks::None`, which gets no answer).
pub async fn produce(
    client: &mut Client,
    topic: &str,
    partition: i32,
    batch: Bytes,
    acks: Acks,
) -> Result<Option<i64>> {
    let request = ProduceRequest::default()
        .with_acks(acks.code())
        .with_timeout_ms(PRODUCE_TIMEOUT_MS)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(topic_name(topic))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(batch)),
                ]),
        ]);
    let connection = client.leader(topic, partition).await?;
    if acks == Acks::None {
        connection.send_without_response(&request, 12).await?;
        return Ok(None);
    }
    let (_, response) = connection.send(&request, 12).await?;
    let p = response
        .responses
        .first()
        .and_then(|t| t.partition_responses.first())
        .ok_or_else(|| empty_answer("Produce"))?;
    ClientError::check(p.error_code, p.error_message.as_deref(), || {
        format!("producing to {topic}-{partition}")
    })?;
    Ok(Some(p.base_offset))
}

/// What one fetch of one partition brought back.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// Whole record batches (possibly none; possibly one cut short at the end, which the
    /// decoder skips).
    pub records: Bytes,
    pub high_watermark: i64,
    pub log_start_offset: i64,
}

/// Hands `visit` each record at or after offset `from` in `records` (whole batches as a fetch
/// returns them; a batch cut short at the end is left for the next fetch, and control batches
/// are skipped). Returns the offset to fetch next: past the last whole batch, or `from` when
/// there was none.
pub fn for_each_record(
    records: &[u8],
    from: i64,
    mut visit: impl FnMut(&sluice_record::Record<'_>),
) -> Result<i64> {
    let mut next = from;
    for item in sluice_record::BatchIter::new(records) {
        let (header, bytes) = match item {
            Ok(batch) => batch,
            Err(sluice_record::RecordError::Truncated { .. }) => break,
            Err(e) => return Err(ClientError::Invalid(format!("bad batch in a fetch: {e}"))),
        };
        if header.last_offset() < next {
            continue;
        }
        if !header.is_control() {
            sluice_record::decode_records(bytes, |record| {
                if record.offset >= next {
                    visit(&record);
                }
                true
            })
            .map_err(|e| ClientError::Invalid(format!("bad record in a fetch: {e}")))?;
        }
        next = header.last_offset() + 1;
    }
    Ok(next)
}

/// One partition's part of a multi-partition fetch.
#[derive(Debug)]
pub struct PartitionFetch {
    pub partition: i32,
    pub offset: i64,
    pub result: Result<Fetched>,
}

/// Fetches `topic`'s partitions from their offsets, one request per leader, each waiting up
/// to `max_wait` for any data.
pub async fn fetch_partitions(
    client: &mut Client,
    topic: &str,
    positions: &[(i32, i64)],
    max_wait: Duration,
    partition_max_bytes: i32,
) -> Result<Vec<PartitionFetch>> {
    let mut by_leader: std::collections::BTreeMap<i32, Vec<(i32, i64)>> = Default::default();
    for &(partition, offset) in positions {
        let leader = client.leader_id(topic, partition).await?;
        by_leader
            .entry(leader)
            .or_default()
            .push((partition, offset));
    }
    let mut out = Vec::with_capacity(positions.len());
    for (leader, group) in by_leader {
        let partitions = group
            .iter()
            .map(|&(partition, offset)| {
                FetchPartition::default()
                    .with_partition(partition)
                    .with_current_leader_epoch(-1)
                    .with_fetch_offset(offset)
                    .with_last_fetched_epoch(-1)
                    .with_log_start_offset(-1)
                    .with_partition_max_bytes(partition_max_bytes)
            })
            .collect();
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(max_wait.as_millis().min(i32::MAX as u128) as i32)
            .with_min_bytes(1)
            .with_max_bytes(sluice_types::limits::FETCH_RESPONSE_BYTES_MAX as i32)
            .with_session_id(0)
            .with_session_epoch(-1)
            .with_topics(vec![
                FetchTopic::default()
                    .with_topic(topic_name(topic))
                    .with_partitions(partitions),
            ]);
        let connection = client.node(leader).await?;
        let (_, response) = connection.send_waiting(&request, 12, max_wait).await?;
        ClientError::check(response.error_code, None, || {
            format!("fetching from {topic}")
        })?;
        let answered = response.responses.into_iter().flat_map(|t| t.partitions);
        for p in answered {
            let Some(&(partition, offset)) = group.iter().find(|(i, _)| *i == p.partition_index)
            else {
                continue;
            };
            let result = ClientError::check(p.error_code, None, || {
                format!("fetching from {topic}-{partition} at offset {offset}")
            })
            .map(|()| Fetched {
                records: p.records.unwrap_or_default(),
                high_watermark: p.high_watermark,
                log_start_offset: p.log_start_offset,
            });
            out.push(PartitionFetch {
                partition,
                offset,
                result,
            });
        }
    }
    Ok(out)
}
