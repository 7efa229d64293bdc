//! Data requests against a partition's leader: ListOffsets, Produce and Fetch. Batches go out
//! and come back as RecordBatch bytes; `sluice_record` builds and decodes them.

use crate::admin::{empty_answer, str_bytes, topic_name};
use crate::client::Client;
use crate::error::{ClientError, Result};
use bytes::Bytes;
use kafka_protocol::messages::{
    BrokerId, DeleteRecordsRequest, FetchRequest, ListOffsetsRequest, ProduceRequest,
    TransactionalId,
    delete_records_request::{DeleteRecordsPartition, DeleteRecordsTopic},
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
    list_offset_isolated(
        client,
        topic,
        partition,
        timestamp,
        Isolation::ReadUncommitted,
    )
    .await
}

/// As `list_offset`; under `ReadCommitted`, `LATEST` is the last stable offset (the end of
/// what a `read_committed` consumer may read).
pub async fn list_offset_isolated(
    client: &mut Client,
    topic: &str,
    partition: i32,
    timestamp: i64,
    isolation: Isolation,
) -> Result<i64> {
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_isolation_level(isolation.code())
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
        return Box::pin(list_offset_isolated(
            client, topic, partition, LATEST, isolation,
        ))
        .await;
    }
    Ok(p.offset)
}

/// The offset `delete_records` takes for "up to the high watermark" (everything there is).
pub const DELETE_TO_END: i64 = -1;

/// DeleteRecords: moves `topic`-`partition`'s start to `offset` (or `DELETE_TO_END`), so the
/// records before it are gone. Returns the partition's new start (its low watermark).
pub async fn delete_records(
    client: &mut Client,
    topic: &str,
    partition: i32,
    offset: i64,
) -> Result<i64> {
    let request = DeleteRecordsRequest::default()
        .with_topics(vec![
            DeleteRecordsTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(vec![
                    DeleteRecordsPartition::default()
                        .with_partition_index(partition)
                        .with_offset(offset),
                ]),
        ])
        .with_timeout_ms(PRODUCE_TIMEOUT_MS);
    let (_, response) = client
        .leader(topic, partition)
        .await?
        .send(&request, 2)
        .await?;
    let p = response
        .topics
        .first()
        .and_then(|t| t.partitions.first())
        .ok_or_else(|| empty_answer("DeleteRecords"))?;
    ClientError::check(p.error_code, None, || {
        format!("deleting records of {topic}-{partition} before offset {offset}")
    })?;
    Ok(p.low_watermark)
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
    send_produce(client, topic, partition, batch, acks, None).await
}

/// Produces a transactional batch (stamped with the producer's id, epoch and sequence) for
/// `transactional_id`, with `acks=all`; returns its base offset.
pub async fn produce_transactional(
    client: &mut Client,
    topic: &str,
    partition: i32,
    batch: Bytes,
    transactional_id: &str,
) -> Result<i64> {
    let offset = send_produce(
        client,
        topic,
        partition,
        batch,
        Acks::All,
        Some(transactional_id),
    );
    Ok(offset.await?.unwrap_or(-1))
}

async fn send_produce(
    client: &mut Client,
    topic: &str,
    partition: i32,
    batch: Bytes,
    acks: Acks,
    transactional_id: Option<&str>,
) -> Result<Option<i64>> {
    let request = ProduceRequest::default()
        .with_transactional_id(transactional_id.map(|id| TransactionalId(str_bytes(id))))
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
    /// Under `read_committed`: the transactions aborted in `records`, as (producer id, first
    /// offset), for `for_each_committed_record` to leave out.
    pub aborted: Vec<(i64, i64)>,
}

/// Kafka's fetch isolation level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Isolation {
    /// Everything written, open and aborted transactions included (up to the high watermark).
    #[default]
    ReadUncommitted,
    /// Only committed records: up to the last stable offset, aborted transactions left out.
    ReadCommitted,
}

impl Isolation {
    fn code(self) -> i8 {
        match self {
            Isolation::ReadUncommitted => 0,
            Isolation::ReadCommitted => 1,
        }
    }
}

/// Hands `visit` each record at or after offset `from` in `records` (whole batches as a fetch
/// returns them; a batch cut short at the end is left for the next fetch, and control batches
/// are skipped). Returns the offset to fetch next: past the last whole batch, or `from` when
/// there was none.
pub fn for_each_record(
    records: &[u8],
    from: i64,
    visit: impl FnMut(&sluice_record::Record<'_>),
) -> Result<i64> {
    for_each_committed_record(records, from, &[], visit)
}

/// As `for_each_record`, leaving out the records of `aborted` transactions (producer id, first
/// offset), as a `read_committed` consumer does: a producer's transactional batches from its
/// first offset are skipped until its abort marker.
pub fn for_each_committed_record(
    records: &[u8],
    from: i64,
    aborted: &[(i64, i64)],
    mut visit: impl FnMut(&sluice_record::Record<'_>),
) -> Result<i64> {
    let mut pending: Vec<(i64, i64)> = aborted.to_vec();
    pending.sort_unstable_by_key(|&(_, first_offset)| std::cmp::Reverse(first_offset));
    let mut aborting = std::collections::HashSet::new();
    let mut next = from;
    for item in sluice_record::BatchIter::new(records) {
        let (header, bytes) = match item {
            Ok(batch) => batch,
            Err(sluice_record::RecordError::Truncated { .. }) => break,
            Err(e) => return Err(ClientError::Invalid(format!("bad batch in a fetch: {e}"))),
        };
        while let Some(&(producer_id, first_offset)) = pending.last()
            && first_offset <= header.last_offset()
        {
            aborting.insert(producer_id);
            pending.pop();
        }
        let skipped = header.is_transactional() && aborting.contains(&header.producer_id);
        if header.is_control() {
            let marker = sluice_record::read_marker(bytes)
                .map_err(|e| ClientError::Invalid(format!("bad control batch: {e}")))?;
            if marker.is_some_and(|m| !m.commit) {
                aborting.remove(&header.producer_id);
            }
        } else if header.last_offset() >= next && !skipped {
            sluice_record::decode_records(bytes, |record| {
                if record.offset >= next {
                    visit(&record);
                }
                true
            })
            .map_err(|e| ClientError::Invalid(format!("bad record in a fetch: {e}")))?;
        }
        next = next.max(header.last_offset() + 1);
    }
    Ok(next)
}

/// One partition's part of a multi-partition fetch.
#[derive(Debug)]
pub struct PartitionFetch {
    pub topic: String,
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
    let positions: Vec<(&str, i32, i64)> = positions.iter().map(|&(p, o)| (topic, p, o)).collect();
    let options = FetchOptions {
        max_wait,
        partition_max_bytes,
        isolation: Isolation::ReadUncommitted,
    };
    fetch_many(client, &positions, options).await
}

/// How a fetch waits, how much it takes and what it may see.
#[derive(Debug, Clone, Copy)]
pub struct FetchOptions {
    pub max_wait: Duration,
    pub partition_max_bytes: i32,
    pub isolation: Isolation,
}

/// Fetches (topic, partition, offset) positions, one request per leader, each waiting up to
/// `max_wait` for any data. A leader that cannot be found or reached fails the whole call;
/// a partition's own error comes back in its `result`.
pub async fn fetch_many(
    client: &mut Client,
    positions: &[(&str, i32, i64)],
    options: FetchOptions,
) -> Result<Vec<PartitionFetch>> {
    let mut by_leader: std::collections::BTreeMap<i32, Vec<(&str, i32, i64)>> = Default::default();
    for &(topic, partition, offset) in positions {
        let leader = client.leader_id(topic, partition).await?;
        by_leader
            .entry(leader)
            .or_default()
            .push((topic, partition, offset));
    }
    let mut out = Vec::with_capacity(positions.len());
    for (leader, group) in by_leader {
        let request = fetch_request(&group, options);
        let connection = client.node(leader).await?;
        let (_, response) = connection
            .send_waiting(&request, 12, options.max_wait)
            .await?;
        ClientError::check(response.error_code, None, || "fetching".to_string())?;
        for t in response.responses {
            for p in t.partitions {
                let Some(&(topic, partition, offset)) = group
                    .iter()
                    .find(|(n, i, _)| *n == t.topic.as_str() && *i == p.partition_index)
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
                    aborted: p
                        .aborted_transactions
                        .unwrap_or_default()
                        .iter()
                        .map(|a| (a.producer_id.0, a.first_offset))
                        .collect(),
                });
                out.push(PartitionFetch {
                    topic: topic.to_string(),
                    partition,
                    offset,
                    result,
                });
            }
        }
    }
    Ok(out)
}

/// One leader's Fetch (v12: topics by name) for `positions`.
fn fetch_request(positions: &[(&str, i32, i64)], options: FetchOptions) -> FetchRequest {
    let mut topics: Vec<FetchTopic> = Vec::new();
    for &(topic, partition, offset) in positions {
        let entry = FetchPartition::default()
            .with_partition(partition)
            .with_current_leader_epoch(-1)
            .with_fetch_offset(offset)
            .with_last_fetched_epoch(-1)
            .with_log_start_offset(-1)
            .with_partition_max_bytes(options.partition_max_bytes);
        match topics.iter_mut().find(|t| t.topic.as_str() == topic) {
            Some(t) => t.partitions.push(entry),
            None => topics.push(
                FetchTopic::default()
                    .with_topic(topic_name(topic))
                    .with_partitions(vec![entry]),
            ),
        }
    }
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(options.max_wait.as_millis().min(i32::MAX as u128) as i32)
        .with_min_bytes(1)
        .with_max_bytes(sluice_types::limits::FETCH_RESPONSE_BYTES_MAX as i32)
        .with_isolation_level(options.isolation.code())
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(topics)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_record::{
        ControlMarker, NewRecord, encode_batch, encode_marker_batch, stamp_producer,
    };

    /// One batch of one record `value` at `offset`, transactional for `producer` when given.
    fn batch(offset: i64, value: &[u8], producer: Option<i64>) -> Vec<u8> {
        let mut b = encode_batch(
            offset,
            0,
            &[NewRecord {
                key: None,
                value: Some(value),
            }],
        );
        if let Some(pid) = producer {
            stamp_producer(&mut b, pid, 0, 0, true);
        }
        b
    }

    fn marker(offset: i64, producer: i64, commit: bool) -> Vec<u8> {
        let mut b = encode_marker_batch(
            producer,
            0,
            ControlMarker {
                commit,
                coordinator_epoch: 0,
            },
            0,
        );
        b[..8].copy_from_slice(&offset.to_be_bytes()); // the base offset is outside the CRC
        b
    }

    fn visible(fetch: &[u8], from: i64, aborted: &[(i64, i64)]) -> (Vec<String>, i64) {
        let mut seen = Vec::new();
        let next = for_each_committed_record(fetch, from, aborted, |r| {
            seen.push(String::from_utf8(r.value.unwrap().to_vec()).unwrap());
        })
        .unwrap();
        (seen, next)
    }

    #[test]
    fn read_committed_leaves_out_aborted_transactions_only() {
        let fetch = [
            batch(0, b"plain", None),
            batch(1, b"aborted", Some(7)),
            batch(2, b"kept", Some(8)),
            marker(3, 7, false),
            batch(4, b"again", Some(7)),
            marker(5, 8, true),
            marker(6, 7, true),
        ]
        .concat();
        let all = ["plain", "aborted", "kept", "again"];
        assert_eq!(visible(&fetch, 0, &[]), (all.map(String::from).to_vec(), 7));
        // Producer 7's first transaction aborted; its second, after the abort marker, did not.
        let (seen, next) = visible(&fetch, 0, &[(7, 1)]);
        assert_eq!(
            (seen, next),
            (vec!["plain".into(), "kept".into(), "again".into()], 7)
        );
        // Starting past a batch still tracks the markers that follow it.
        let (seen, _) = visible(&fetch, 2, &[(7, 1)]);
        assert_eq!(seen, vec!["kept".to_string(), "again".into()]);
    }
}
