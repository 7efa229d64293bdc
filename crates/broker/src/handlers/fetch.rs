//! Fetch (v4–v12). Reads whole batches from each requested partition, up to the per-partition
//! and per-response byte limits (the first batch always, KIP-74). When less than `min_bytes` is
//! available the request parks until a requested partition's high watermark moves or
//! `max_wait_ms` passes: it is woken by the append, never by polling.
//!
//! With `isolation_level=read_committed` a partition is read up to its last stable offset (no
//! further than the oldest open transaction), and the answer lists the aborted transactions
//! with records in that range, so the client drops their records.
//!
//! Leader epochs (KIP-320, KIP-595): a partition's `current_leader_epoch` older or newer than its
//! epoch is refused (`FENCED_LEADER_EPOCH`, `UNKNOWN_LEADER_EPOCH`); a `last_fetched_epoch` whose
//! epoch ended before the fetch offset, or that the log never had, is answered with the
//! `diverging_epoch` (where that epoch ended) and no records, so a replica truncates there.
//!
//! A fetch naming a replica id is a follower's: the replica manager (`sluice_replica`) checks
//! it against the leader's epoch and counts its offset towards the high watermark, and it
//! reads to the log end; it waits on the log end as well as the high watermark. A broker that
//! does not lead the partition with that follower answers `NOT_LEADER_OR_FOLLOWER`. From v12 a partition refused because another broker leads it, or because
//! the consumer's epoch is old, names the current leader and epoch (KIP-951).
//!
//! A consumer's fetches count against its `consumer_byte_rate` (`quotas`): past it, a fetch is
//! answered at once with no records and the wait, and the connection waits it out.
//!
//! Fetch sessions (KIP-227) are declined: every response carries session id 0, so clients keep
//! sending full fetch requests; a request naming a session gets `FETCH_SESSION_ID_NOT_FOUND`.

use crate::authorization::Caller;
use crate::error;
use crate::server::Broker;
use bytes::Bytes;
use futures::future::select_all;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::FetchPartition;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, EpochEndOffset, FetchableTopicResponse, LeaderIdAndEpoch, PartitionData,
};
use kafka_protocol::messages::{BrokerId, ProducerId};
use kafka_protocol::messages::{FetchRequest, FetchResponse};
use sluice_acl::{Operation, ResourceType};
use sluice_storage::StorageError;
use sluice_types::limits::{FETCH_RESPONSE_BYTES_MAX, FETCH_WAIT_MS_MAX, QUOTA_FETCH_RESPONSE_MS};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

const READ_COMMITTED: i8 = 1;

/// What one partition's read asks for.
struct PartitionRead<'a> {
    topic: &'a str,
    request: &'a FetchPartition,
    max_bytes: usize,
    min_one_batch: bool,
    isolation_level: i8,
    /// The follower's broker id, or -1 for a consumer.
    replica_id: i32,
}

pub(crate) fn handle(
    broker: Arc<Broker>,
    caller: &Caller,
    mut request: FetchRequest,
    version: i16,
    client_id: &str,
) -> impl Future<Output = Option<FetchResponse>> + Send + 'static + use<> {
    let denied = take_denied(&broker, caller, &mut request);
    if request.replica_id.0 >= 0 {
        crate::dispatch::exempt_from_request_quota();
    }
    let quota = FetchQuota::of(&broker, caller, client_id, &mut request);
    let wait_ms = u64::try_from(request.max_wait_ms)
        .unwrap_or(0)
        .min(FETCH_WAIT_MS_MAX);
    let deadline = tokio::time::Instant::now() + Duration::from_millis(wait_ms);
    async move {
        let quota = match quota {
            Ok(quota) => quota,
            Err(throttle_time_ms) => {
                return Some(FetchResponse::default().with_throttle_time_ms(throttle_time_ms));
            }
        };
        if request.session_id != 0 {
            return Some(
                FetchResponse::default()
                    .with_error_code(ResponseError::FetchSessionIdNotFound.code()),
            );
        }
        let mut responses = answer(&broker, &request, version, deadline).await;
        if request.replica_id.0 < 0 {
            count_fetched(&broker, &responses);
        }
        if version >= 12 {
            point_to_leaders(&broker, &mut responses);
        }
        let throttle_time_ms = quota.map_or(0, |q| q.record(&broker, &responses));
        responses.extend(denied);
        Some(
            FetchResponse::default()
                .with_responses(responses)
                .with_throttle_time_ms(throttle_time_ms),
        )
    }
}

/// Reads once, and again each time a requested partition's high watermark moves, until
/// `min_bytes` are there or `deadline` passes.
async fn answer(
    broker: &Arc<Broker>,
    request: &FetchRequest,
    version: i16,
    deadline: tokio::time::Instant,
) -> Vec<FetchableTopicResponse> {
    let mut watches = subscribe(broker, request);
    loop {
        let (responses, bytes, any_error) = read_all(broker, request);
        let satisfied = bytes >= i64::from(request.min_bytes) || any_error;
        if satisfied || tokio::time::Instant::now() >= deadline || watches.is_empty() {
            tracing::trace!(
                bytes,
                min_bytes = request.min_bytes,
                max_bytes = request.max_bytes,
                version,
                "fetch answered"
            );
            return responses;
        }
        let changed = select_all(watches.iter_mut().map(|w| Box::pin(w.changed())));
        if tokio::time::timeout_at(deadline, changed).await.is_err() {
            return read_all(broker, request).0;
        }
    }
}

/// A consumer's `consumer_byte_rate` (a follower's fetches are not measured).
struct FetchQuota {
    principal: Arc<str>,
    client_id: String,
}

impl FetchQuota {
    /// The quota that measures this fetch, if any. A consumer already past its quota is
    /// answered at once with no records and the wait (`Err`), and its connection reads nothing
    /// more until then, as Kafka answers a throttled fetch; otherwise one response carries at
    /// most `QUOTA_FETCH_RESPONSE_MS` of the quota's bytes (past the first batch).
    fn of(
        broker: &Broker,
        caller: &Caller,
        client_id: &str,
        request: &mut FetchRequest,
    ) -> Result<Option<FetchQuota>, i32> {
        let kind = crate::quotas::QuotaKind::Fetch;
        if request.replica_id.0 >= 0 || !broker.quotas.any() {
            return Ok(None);
        }
        let Some((rate, owed_ms)) = broker.quotas.owed(kind, &caller.principal, client_id) else {
            return Ok(None);
        };
        if owed_ms > 0 {
            return Err(crate::quotas::hold_connection(kind, owed_ms));
        }
        let share = QUOTA_FETCH_RESPONSE_MS as f64 / 1000.0;
        let per_response = (rate * share).clamp(1.0, f64::from(i32::MAX)) as i32;
        request.max_bytes = request.max_bytes.min(per_response);
        Ok(Some(FetchQuota {
            principal: caller.principal.clone(),
            client_id: client_id.to_string(),
        }))
    }

    /// Records the records' bytes; the wait the response tells the client.
    fn record(&self, broker: &Broker, responses: &[FetchableTopicResponse]) -> i32 {
        let bytes: usize = responses
            .iter()
            .flat_map(|t| &t.partitions)
            .filter_map(|p| p.records.as_ref().map(Bytes::len))
            .sum();
        let kind = crate::quotas::QuotaKind::Fetch;
        let wait_ms = broker
            .quotas
            .record(kind, &self.principal, &self.client_id, bytes as f64);
        i32::try_from(wait_ms).unwrap_or(i32::MAX)
    }
}

/// Takes out of `request` the topics `caller` may not read (a follower: every topic unless it
/// may CLUSTER_ACTION), as Kafka does, and answers them TOPIC_AUTHORIZATION_FAILED.
fn take_denied(
    broker: &Broker,
    caller: &Caller,
    request: &mut FetchRequest,
) -> Vec<FetchableTopicResponse> {
    let follower = request.replica_id.0 >= 0;
    let follower_allowed = follower && broker.allows_cluster(caller, Operation::ClusterAction);
    super::gate_items::refused_of(&mut request.topics, |t| {
        if follower {
            follower_allowed
        } else {
            broker.allows(caller, Operation::Read, ResourceType::Topic, &t.topic)
        }
    })
    .into_iter()
    .map(|t| {
        let partitions = t
            .partitions
            .iter()
            .map(|p| {
                PartitionData::default()
                    .with_partition_index(p.partition)
                    .with_error_code(ResponseError::TopicAuthorizationFailed.code())
                    .with_high_watermark(-1)
            })
            .collect();
        FetchableTopicResponse::default()
            .with_topic(t.topic)
            .with_topic_id(t.topic_id)
            .with_partitions(partitions)
    })
    .collect()
}

/// KIP-951: a partition refused because this broker does not lead it (or leads it in
/// another epoch) names its current leader and epoch, so the consumer moves at once.
fn point_to_leaders(broker: &Broker, responses: &mut [FetchableTopicResponse]) {
    let moved = [
        ResponseError::NotLeaderOrFollower.code(),
        ResponseError::FencedLeaderEpoch.code(),
    ];
    let image = broker.metadata();
    for topic in responses.iter_mut() {
        for p in topic
            .partitions
            .iter_mut()
            .filter(|p| moved.contains(&p.error_code))
        {
            if let Some((leader, epoch)) = image.current_leader(&topic.topic, p.partition_index) {
                p.current_leader = LeaderIdAndEpoch::default()
                    .with_leader_id(BrokerId(leader))
                    .with_leader_epoch(epoch);
            }
        }
    }
}

/// Counts the bytes and records a fetch answer carries, per topic (record counts from the
/// batch headers; nothing is decoded).
fn count_fetched(broker: &Broker, responses: &[FetchableTopicResponse]) {
    for topic in responses {
        let (mut records, mut bytes) = (0u64, 0u64);
        for p in &topic.partitions {
            let Some(data) = &p.records else { continue };
            bytes += data.len() as u64;
            records += sluice_record::BatchIter::new(data)
                .map_while(Result::ok)
                .map(|(header, _)| header.records_count.max(0) as u64)
                .sum::<u64>();
        }
        if bytes > 0 {
            broker.metrics.fetched(topic.topic.as_str(), records, bytes);
        }
    }
}

/// Watches on the high watermark of every requested partition that exists, taken before the
/// first read so that no append between the read and the wait is missed.
fn subscribe(broker: &Broker, request: &FetchRequest) -> Vec<watch::Receiver<i64>> {
    request
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| (t.topic.as_str(), p.partition))
        })
        .filter_map(|(topic, index)| broker.logs.partition(topic, index).ok())
        .flat_map(|p| {
            // A follower copies past the high watermark, and learns where it moved.
            let log_end = (request.replica_id.0 >= 0).then(|| p.subscribe_log_end());
            std::iter::once(p.subscribe_high_watermark()).chain(log_end)
        })
        .collect()
}

/// One pass over every requested partition. Returns the responses, the record bytes found and
/// whether any partition had an error (which answers the fetch at once, as in Kafka).
fn read_all(broker: &Broker, request: &FetchRequest) -> (Vec<FetchableTopicResponse>, i64, bool) {
    let response_max = i64::from(request.max_bytes.clamp(0, FETCH_RESPONSE_BYTES_MAX as i32));
    let mut total: i64 = 0;
    let mut any_error = false;
    let mut topics = Vec::with_capacity(request.topics.len());
    for topic in &request.topics {
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for p in &topic.partitions {
            let budget = (response_max - total)
                .max(0)
                .min(i64::from(p.partition_max_bytes.max(0)));
            let data = read_partition(
                broker,
                PartitionRead {
                    topic: &topic.topic,
                    request: p,
                    max_bytes: budget as usize,
                    min_one_batch: total == 0,
                    isolation_level: request.isolation_level,
                    replica_id: request.replica_id.0,
                },
            );
            any_error |= data.error_code != 0;
            let bytes = data.records.as_ref().map_or(0, |r| r.len() as i64);
            tracing::trace!(topic = %topic.topic.as_str(), partition = p.partition, offset = p.fetch_offset, budget, bytes, "fetch read");
            total += bytes;
            partitions.push(data);
        }
        topics.push(
            FetchableTopicResponse::default()
                .with_topic(topic.topic.clone())
                .with_partitions(partitions),
        );
    }
    (topics, total, any_error)
}

fn read_partition(broker: &Broker, read: PartitionRead<'_>) -> PartitionData {
    let PartitionRead {
        topic,
        request,
        max_bytes,
        min_one_batch,
        isolation_level,
        replica_id,
    } = read;
    let (index, offset) = (request.partition, request.fetch_offset);
    let base = PartitionData::default().with_partition_index(index);
    let refused = |code: i16| {
        base.clone()
            .with_error_code(code)
            .with_records(Some(Bytes::new()))
    };
    if replica_id >= 0 {
        return read_for_follower(
            broker,
            topic,
            request,
            replica_id,
            (max_bytes, min_one_batch),
        );
    }
    let led = broker
        .metadata()
        .led_partition(topic, index, request.current_leader_epoch);
    let partition = match led {
        Ok(p) => p,
        Err(ResponseError::UnknownTopicOrPartition) => {
            return base.with_error_code(ResponseError::UnknownTopicOrPartition.code());
        }
        Err(e) => return refused(e.code()),
    };
    let committed = isolation_level == READ_COMMITTED;
    let (plan, high_watermark, last_stable_offset, log_start_offset, aborted) = {
        let log = partition.log();
        if let Some(diverging) = diverging_epoch(&log, request) {
            return base
                .with_high_watermark(log.high_watermark())
                .with_last_stable_offset(log.last_stable_offset())
                .with_log_start_offset(log.log_start_offset())
                .with_diverging_epoch(diverging)
                .with_records(Some(Bytes::new()));
        }
        let last_stable_offset = log.last_stable_offset();
        let (plan, aborted) = if committed {
            let aborted = log.aborted_transactions(offset, last_stable_offset);
            (
                log.read_committed(offset, max_bytes, min_one_batch),
                Some(aborted),
            )
        } else {
            (log.read(offset, max_bytes, min_one_batch), None)
        };
        (
            plan,
            log.high_watermark(),
            last_stable_offset,
            log.log_start_offset(),
            aborted,
        )
    };
    let aborted = aborted.map(|list| {
        list.into_iter()
            .map(|a| {
                AbortedTransaction::default()
                    .with_producer_id(ProducerId(a.producer_id))
                    .with_first_offset(a.first_offset)
            })
            .collect()
    });
    let base = base
        .with_high_watermark(high_watermark)
        .with_last_stable_offset(last_stable_offset)
        .with_log_start_offset(log_start_offset)
        .with_aborted_transactions(aborted);
    let read = plan.and_then(|plan| partition.read_batches(&plan));
    match read {
        Ok(bytes) => base.with_records(Some(bytes)),
        Err(e) => {
            if !matches!(e, StorageError::OffsetOutOfRange { .. }) {
                tracing::warn!(topic, partition = index, offset, error = %e, "fetch failed");
            }
            base.with_error_code(error::code(&e))
                .with_records(Some(Bytes::new()))
        }
    }
}

/// A follower's fetch (`replica_id`): the replica manager checks it against the leader's
/// epoch and log and counts its offset (durable on the follower) towards the high watermark;
/// the read goes to the log end, past the high watermark, as a replica copies what the leader
/// has.
fn read_for_follower(
    broker: &Broker,
    topic: &str,
    request: &FetchPartition,
    replica_id: i32,
    (max_bytes, min_one_batch): (usize, bool),
) -> PartitionData {
    let index = request.partition;
    let fetch = sluice_replica::FetchRequest {
        request_id: 0,
        replica_id,
        current_leader_epoch: request.current_leader_epoch,
        fetch_offset: request.fetch_offset,
        last_fetched_epoch: (request.last_fetched_epoch >= 0).then_some(request.last_fetched_epoch),
    };
    let base = PartitionData::default()
        .with_partition_index(index)
        .with_records(Some(Bytes::new()));
    let (partition, answer) = match broker.replicas.on_follower_fetch(topic, index, &fetch) {
        Ok(found) => found,
        Err(e) => return base.with_error_code(error::replication_error(&e).code()),
    };
    let (plan, high_watermark, log_start_offset, last_stable_offset) = {
        let log = partition.log();
        let plan = match &answer {
            sluice_replica::FetchAnswer::Read { offset } => {
                Some(log.read_to_log_end(*offset, max_bytes, min_one_batch))
            }
            _ => None,
        };
        let offsets = (log.high_watermark(), log.log_start_offset());
        (plan, offsets.0, offsets.1, log.last_stable_offset())
    };
    let base = base
        .with_high_watermark(high_watermark)
        .with_last_stable_offset(last_stable_offset)
        .with_log_start_offset(log_start_offset);
    match answer {
        sluice_replica::FetchAnswer::Diverging { epoch, end_offset } => base.with_diverging_epoch(
            EpochEndOffset::default()
                .with_epoch(epoch)
                .with_end_offset(end_offset),
        ),
        sluice_replica::FetchAnswer::Refused(e) => {
            base.with_error_code(error::replication_error(&e).code())
        }
        sluice_replica::FetchAnswer::Read { .. } => {
            let read = plan
                .expect("planned for a read")
                .and_then(|plan| partition.read_batches(&plan));
            match read {
                Ok(bytes) => base.with_records(Some(bytes)),
                Err(e) => base.with_error_code(error::code(&e)),
            }
        }
    }
}

/// Where the fetcher's last fetched epoch ended, when its log has diverged from this one: that
/// epoch is unknown here (an older one is answered) or ended before the fetch offset.
fn diverging_epoch(log: &sluice_storage::Log, request: &FetchPartition) -> Option<EpochEndOffset> {
    if request.last_fetched_epoch < 0 {
        return None;
    }
    let (epoch, end_offset) = log.end_offset_for_epoch(request.last_fetched_epoch);
    (epoch < request.last_fetched_epoch || end_offset < request.fetch_offset).then(|| {
        EpochEndOffset::default()
            .with_epoch(epoch)
            .with_end_offset(end_offset)
    })
}
