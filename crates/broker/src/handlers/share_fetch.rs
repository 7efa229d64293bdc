//! ShareFetch (v1): a share group member's fetch (KIP-932). In order: the share session step
//! (`shares::session`), the acknowledgements it carries, the release of what a closed session
//! held, then records acquired from each partition of the session. With
//! none to hand out the request parks until a partition's high watermark moves, records are
//! released, a lock or back-off ends, or `max_wait_ms` passes. A closing fetch (epoch -1)
//! acquires nothing.
//!
//! The answer names a partition when it has records, an error or an acknowledgement result; a
//! new session's answer names all of them.

use super::group_configs;
use crate::error::{share_error, share_session_error};
use crate::server::Broker;
use crate::shares::acquire::{Acquired, Ask, acquire};
use crate::shares::session::{CLOSE_EPOCH, OPEN_EPOCH, SessionPartition};
use crate::shares::{ShareEntry, share_key};
use futures::future::select_all;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::ShareFetchRequest;
use kafka_protocol::messages::ShareFetchResponse;
use kafka_protocol::messages::share_fetch_response::{
    AcquiredRecords, PartitionData, ShareFetchableTopicResponse,
};
use kafka_protocol::protocol::StrBytes;
use sluice_share::{AckType, Acknowledgement, ShareError, ShareGroupConfig};
use sluice_types::limits::{
    FETCH_RESPONSE_BYTES_MAX, FETCH_WAIT_MS_MAX, SHARE_FETCH_RECORDS_DEFAULT,
    SHARE_FETCH_RECORDS_MAX, SHARE_SESSION_PARTITIONS_MAX,
};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// One partition's part of an answer.
#[derive(Debug, Default)]
pub(super) struct PartitionAnswer {
    pub error: Option<ResponseError>,
    pub ack_error: Option<ResponseError>,
    pub acquired: Acquired,
}

pub(crate) fn handle(
    broker: &Arc<Broker>,
    request: ShareFetchRequest,
    _version: i16,
) -> impl Future<Output = Option<ShareFetchResponse>> + Send + 'static + use<> {
    let broker = broker.clone();
    async move { Some(fetch(&broker, request).await) }
}

async fn fetch(broker: &Broker, request: ShareFetchRequest) -> ShareFetchResponse {
    let (group, member) = match names(
        request.group_id.as_ref().map(|g| g.0.as_str()),
        request.member_id.as_ref().map(|m| m.as_str()),
    ) {
        Ok(names) => names,
        Err(e) => return refused(e, "a share fetch names its group and member"),
    };
    let epoch = request.share_session_epoch;
    let named = request
        .topics
        .iter()
        .map(|t| t.partitions.len())
        .sum::<usize>();
    let forgotten_count = request
        .forgotten_topics_data
        .iter()
        .map(|t| t.partitions.len());
    if named.max(forgotten_count.sum()) > SHARE_SESSION_PARTITIONS_MAX {
        return refused(
            ResponseError::InvalidRequest,
            "too many partitions in one request",
        );
    }
    let mut added = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut acks: BTreeMap<SessionPartition, Result<Vec<Acknowledgement>, ShareError>> =
        BTreeMap::new();
    for topic in &request.topics {
        for p in &topic.partitions {
            let key = (topic.topic_id, p.partition_index);
            if seen.insert(key) {
                added.push(key);
            }
            if !p.acknowledgement_batches.is_empty() {
                let batches = p.acknowledgement_batches.iter();
                let parsed = parse_acks(
                    batches.map(|b| (b.first_offset, b.last_offset, &b.acknowledge_types[..])),
                );
                add_acks(&mut acks, key, parsed);
            }
        }
    }
    let forgotten: Vec<SessionPartition> = request
        .forgotten_topics_data
        .iter()
        .flat_map(|t| t.partitions.iter().map(|&p| (t.topic_id, p)))
        .collect();
    if epoch == OPEN_EPOCH && !acks.is_empty() {
        return refused(
            ResponseError::InvalidRequest,
            "a new share session acknowledges nothing",
        );
    }
    let now = crate::now_ms();
    let shares = &broker.shares;
    let step = shares.sessions().fetch(
        (group.clone(), member.clone()),
        epoch,
        &added,
        &forgotten,
        now,
    );
    tracing::trace!(
        group,
        member,
        epoch,
        ?added,
        ?forgotten,
        ok = step.is_ok(),
        "share fetch"
    );
    let step = match step {
        Ok(step) => step,
        Err(e) => return refused(share_session_error(e), &format!("{e:?}")),
    };
    let image = broker.published_image();
    let config = group_configs::share_config(&image, &group);
    if epoch == OPEN_EPOCH {
        for &(topic_id, partition) in &step.partitions {
            let key = share_key(&group, topic_id, partition);
            broker.shares.revalidate(broker, &key).await;
        }
    }
    let who = Who {
        group: &group,
        member: &member,
        config: &config,
    };
    let mut answers = acknowledge_all(broker, &who, acks, now).await;
    release(broker, &who, &step.released, now).await;
    if epoch != CLOSE_EPOCH {
        let ask = FetchAsk {
            group: &group,
            member: &member,
            config: &config,
            partitions: &step.partitions,
            max_records: max_records(request.max_records),
            max_bytes: request.max_bytes.clamp(1, FETCH_RESPONSE_BYTES_MAX as i32) as usize,
            wait_ms: u64::try_from(request.max_wait_ms)
                .unwrap_or(0)
                .min(FETCH_WAIT_MS_MAX),
        };
        for (key, answer) in acquire_waiting(broker, ask).await {
            let entry = answers.entry(key).or_default();
            entry.error = answer.error;
            entry.acquired = answer.acquired;
        }
        if epoch == OPEN_EPOCH {
            for key in &step.partitions {
                answers.entry(*key).or_default();
            }
        }
    }
    ShareFetchResponse::default()
        .with_acquisition_lock_timeout_ms(
            i32::try_from(config.partition.record_lock_duration_ms).unwrap_or(i32::MAX),
        )
        .with_responses(to_wire(answers))
}

/// The group and member a request names, both required.
pub(super) fn names(
    group: Option<&str>,
    member: Option<&str>,
) -> Result<(String, String), ResponseError> {
    match (group, member) {
        (Some(g), Some(m)) if !g.is_empty() && !m.is_empty() => Ok((g.to_string(), m.to_string())),
        (Some(""), _) => Err(ResponseError::InvalidGroupId),
        _ => Err(ResponseError::InvalidRequest),
    }
}

fn refused(e: ResponseError, why: &str) -> ShareFetchResponse {
    ShareFetchResponse::default()
        .with_error_code(e.code())
        .with_error_message(Some(StrBytes::from_string(why.to_string())))
}

fn max_records(asked: i32) -> usize {
    usize::try_from(asked)
        .ok()
        .filter(|&n| n > 0)
        .unwrap_or(SHARE_FETCH_RECORDS_DEFAULT)
        .min(SHARE_FETCH_RECORDS_MAX)
}

/// One partition's acknowledgements, per partition: one named twice (librdkafka may repeat a
/// topic in a request) keeps both parts.
pub(super) fn add_acks(
    acks: &mut BTreeMap<SessionPartition, Result<Vec<Acknowledgement>, ShareError>>,
    key: SessionPartition,
    parsed: Result<Vec<Acknowledgement>, ShareError>,
) {
    let merged = match (acks.remove(&key), parsed) {
        (Some(Ok(mut before)), Ok(more)) => {
            before.extend(more);
            Ok(before)
        }
        (Some(Err(e)), _) | (_, Err(e)) => Err(e),
        (None, Ok(more)) => Ok(more),
    };
    acks.insert(key, merged);
}

/// Acknowledgement batches as the share-partition takes them: one type for a whole range, or
/// one per offset (runs of one type merged).
pub(super) fn parse_acks<'a>(
    batches: impl Iterator<Item = (i64, i64, &'a [i8])>,
) -> Result<Vec<Acknowledgement>, ShareError> {
    let mut out: Vec<Acknowledgement> = Vec::new();
    for (first, last, types) in batches {
        if first > last || first < 0 {
            return Err(ShareError::InvalidRanges);
        }
        let kind = |code: i8| AckType::from_code(code).ok_or(ShareError::InvalidRanges);
        if types.len() == 1 {
            out.push(Acknowledgement {
                first_offset: first,
                last_offset: last,
                kind: kind(types[0])?,
            });
            continue;
        }
        if i64::try_from(types.len()).ok() != Some(last - first + 1) {
            return Err(ShareError::InvalidRanges);
        }
        for (offset, &code) in (first..=last).zip(types) {
            let kind = kind(code)?;
            match out.last_mut() {
                Some(a) if a.kind == kind && a.last_offset + 1 == offset => a.last_offset = offset,
                _ => out.push(Acknowledgement {
                    first_offset: offset,
                    last_offset: offset,
                    kind,
                }),
            }
        }
    }
    Ok(out)
}

/// The member a request is from, and its group's settings.
pub(super) struct Who<'a> {
    pub group: &'a str,
    pub member: &'a str,
    pub config: &'a ShareGroupConfig,
}

/// Applies each partition's acknowledgements, writes the records they archived to the
/// dead-letter topic and the share-partitions' state; the answer per partition carries its
/// result (a state write that failed is the acknowledgement's error: the client may send it
/// again).
pub(super) async fn acknowledge_all(
    broker: &Broker,
    who: &Who<'_>,
    acks: BTreeMap<SessionPartition, Result<Vec<Acknowledgement>, ShareError>>,
    now_ms: i64,
) -> BTreeMap<SessionPartition, PartitionAnswer> {
    let Who { group, member, .. } = *who;
    let shares = &broker.shares;
    let mut answers = BTreeMap::new();
    for ((topic_id, partition), parsed) in acks {
        let key = share_key(group, topic_id, partition);
        tracing::trace!(group, member, %topic_id, partition, ?parsed, "acknowledgements");
        let applied = parsed.and_then(|acks| shares.acknowledge(&key, member, &acks, now_ms));
        let result = match applied {
            Err(e) => {
                tracing::debug!(group, member, %topic_id, partition, error = %e, "acknowledgement refused");
                Err(share_error(&e))
            }
            Ok(()) => match shares.get(&key) {
                Some(entry) => shares.settle(broker, &key, &entry, who.config).await,
                None => Ok(()),
            },
        };
        let answer = PartitionAnswer {
            ack_error: result.err(),
            ..Default::default()
        };
        answers.insert((topic_id, partition), answer);
    }
    answers
}

/// Releases what a closed session's member held and writes those share-partitions' state.
pub(super) async fn release(
    broker: &Broker,
    who: &Who<'_>,
    partitions: &[SessionPartition],
    now_ms: i64,
) {
    let Who { group, member, .. } = *who;
    let shares = &broker.shares;
    for key in shares.release(group, member, partitions, now_ms) {
        let Some(entry) = shares.get(&key) else {
            continue;
        };
        if let Err(e) = shares.settle(broker, &key, &entry, who.config).await {
            tracing::warn!(group, member, partition = key.partition, error = ?e,
                "released records not written; they stay released here");
        }
    }
}

/// What a fetch asks of its session's partitions.
struct FetchAsk<'a> {
    group: &'a str,
    member: &'a str,
    config: &'a ShareGroupConfig,
    partitions: &'a [SessionPartition],
    max_records: usize,
    max_bytes: usize,
    wait_ms: u64,
}

/// Acquires from every partition, waiting (the module doc) while none has anything.
async fn acquire_waiting(
    broker: &Broker,
    ask: FetchAsk<'_>,
) -> BTreeMap<SessionPartition, PartitionAnswer> {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(ask.wait_ms);
    loop {
        let released = broker.shares.released();
        tokio::pin!(released);
        released.as_mut().enable();
        let mut watches = subscribe(broker, ask.partitions);
        let entries = load_all(broker, &ask).await;
        let now = crate::now_ms();
        let answers = acquire_once(broker, &ask, &entries, now);
        settle_archived(broker, &ask, &entries).await;
        let found = answers
            .values()
            .any(|a| a.error.is_some() || !a.acquired.ranges.is_empty());
        if found || tokio::time::Instant::now() >= deadline || ask.partitions.is_empty() {
            return answers;
        }
        let next = entries
            .values()
            .filter_map(|e| e.as_ref().ok())
            .filter_map(|(_, e)| e.lock().next_deadline_ms(now))
            .min();
        let wake = next.map_or(deadline, |at| {
            let wait = Duration::from_millis(u64::try_from(at - now).unwrap_or(0));
            deadline.min(tokio::time::Instant::now() + wait)
        });
        let appended = async {
            if watches.is_empty() {
                std::future::pending::<()>().await;
            }
            let _closed = select_all(watches.iter_mut().map(|w| Box::pin(w.changed()))).await;
        };
        tokio::select! {
            () = &mut released => {}
            () = appended => {}
            () = tokio::time::sleep_until(wake) => {}
        }
    }
}

/// Share-partitions whose locks expired at the delivery limit: their dead letters, then
/// their state.
async fn settle_archived(
    broker: &Broker,
    ask: &FetchAsk<'_>,
    entries: &BTreeMap<SessionPartition, Loaded>,
) {
    for (&(topic_id, partition), loaded) in entries {
        let Ok((_, entry)) = loaded else { continue };
        if !entry.has_dead() {
            continue;
        }
        let key = share_key(ask.group, topic_id, partition);
        let settled = broker.shares.settle(broker, &key, entry, ask.config).await;
        if let Err(e) = settled {
            tracing::warn!(group = ask.group, partition, error = ?e, "archived records not written");
        }
    }
}

/// A partition's topic name and loaded share-partition, or why it cannot be served.
type Loaded = Result<(String, Arc<ShareEntry>), ResponseError>;

/// The session's share-partitions, loaded here (from their share coordinators the first time).
async fn load_all(broker: &Broker, ask: &FetchAsk<'_>) -> BTreeMap<SessionPartition, Loaded> {
    let image = broker.published_image();
    let mut out = BTreeMap::new();
    for &(topic_id, partition) in ask.partitions {
        let loaded = match image.topics.get(&topic_id) {
            None => Err(ResponseError::UnknownTopicId),
            Some(topic) => {
                let key = share_key(ask.group, topic_id, partition);
                let shares = &broker.shares;
                let entry = shares.load(broker, &key, &topic.name, ask.config).await;
                entry.map(|e| (topic.name.clone(), e))
            }
        };
        out.insert((topic_id, partition), loaded);
    }
    out
}

/// One pass over the session's partitions, from a rotating start so that a partition early
/// in the list does not take every record of each fetch.
fn acquire_once(
    broker: &Broker,
    ask: &FetchAsk<'_>,
    entries: &BTreeMap<SessionPartition, Loaded>,
    now_ms: i64,
) -> BTreeMap<SessionPartition, PartitionAnswer> {
    let mut answers = BTreeMap::new();
    let (mut records_left, mut bytes_left) = (ask.max_records, ask.max_bytes);
    let n = ask.partitions.len();
    let first = usize::try_from(now_ms).unwrap_or(0) % n.max(1);
    for i in 0..n {
        let (topic_id, partition) = ask.partitions[(first + i) % n];
        let got = match entries.get(&(topic_id, partition)) {
            Some(Ok((topic, entry))) => {
                let key = share_key(ask.group, topic_id, partition);
                let one = Ask {
                    key: &key,
                    topic,
                    member: ask.member,
                    max_records: records_left,
                    max_bytes: bytes_left.max(1),
                    now_ms,
                };
                acquire(broker, entry, one)
            }
            Some(Err(e)) => Err(*e),
            None => Err(ResponseError::UnknownServerError),
        };
        let answer = match got {
            Ok(acquired) => {
                let count: i64 = acquired.ranges.iter().map(|r| r.1 - r.0 + 1).sum();
                records_left = records_left.saturating_sub(usize::try_from(count).unwrap_or(0));
                bytes_left = bytes_left.saturating_sub(acquired.records.len());
                PartitionAnswer {
                    acquired,
                    ..Default::default()
                }
            }
            Err(e) => PartitionAnswer {
                error: Some(e),
                ..Default::default()
            },
        };
        answers.insert((topic_id, partition), answer);
    }
    answers
}

/// Watches on the high watermark of each partition here, taken before a look.
fn subscribe(
    broker: &Broker,
    partitions: &[SessionPartition],
) -> Vec<tokio::sync::watch::Receiver<i64>> {
    let image = broker.published_image();
    partitions
        .iter()
        .filter_map(|(id, index)| {
            let topic = image.topics.get(id)?;
            broker.logs.partition(&topic.name, *index).ok()
        })
        .map(|p| p.subscribe_high_watermark())
        .collect()
}

fn to_wire(
    answers: BTreeMap<SessionPartition, PartitionAnswer>,
) -> Vec<ShareFetchableTopicResponse> {
    let mut topics: Vec<ShareFetchableTopicResponse> = Vec::new();
    for ((topic_id, partition), answer) in answers {
        let acquired = answer
            .acquired
            .ranges
            .iter()
            .map(|&(first, last, count)| {
                AcquiredRecords::default()
                    .with_first_offset(first)
                    .with_last_offset(last)
                    .with_delivery_count(count)
            })
            .collect();
        let data = PartitionData::default()
            .with_partition_index(partition)
            .with_error_code(answer.error.map_or(0, |e| e.code()))
            .with_acknowledge_error_code(answer.ack_error.map_or(0, |e| e.code()))
            .with_records(Some(answer.acquired.records))
            .with_acquired_records(acquired);
        match topics.last_mut() {
            Some(t) if t.topic_id == topic_id => t.partitions.push(data),
            _ => topics.push(
                ShareFetchableTopicResponse::default()
                    .with_topic_id(topic_id)
                    .with_partitions(vec![data]),
            ),
        }
    }
    topics
}
