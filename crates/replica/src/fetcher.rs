//! A fetcher: one task per leader broker, copying every partition this broker follows there
//! (Kafka's `ReplicaFetcherThread`). Each partition has its `replication::Follower`; a round
//! is:
//!
//! 1. take the partitions to follow from the manager (a new leader epoch is a new
//!    `Follower`; none left ends the task);
//! 2. off the async threads: tick each follower, carrying out what it asks (an fsync of a
//!    tail copied before it began), collecting the fetches due;
//! 3. send them as one Fetch (v12, with this broker's replica id) and wait, the leader
//!    holding it up to `fetch_wait_max_ms` when it has nothing new;
//! 4. off the async threads: hand each partition's answer to its follower and carry out the
//!    effects in order: append with the leader's offsets and epochs, fsync, truncate, follow
//!    the leader's high watermark and log start. The partitions' appends come first, then
//!    their fsyncs side by side (up to `FSYNC_THREADS_MAX` at once), then, per partition,
//!    what follows its fsync. A follower fetches again only once what it appended is fsynced,
//!    so every fetch offset it reports is durable.
//!
//! A copy or truncation the log refuses (the role changed meanwhile: `Log::check_follows`)
//! or that fails restarts that partition's follower; the next round may drop it.

use crate::log_view::LogView;
use crate::{FollowTarget, Shared, now_ms};
use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::{BrokerId, FetchRequest as WireFetch, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use sluice_client::Connection;
use sluice_replication::{
    Effect, FetchData, FetchRequest, FetchResponse as Answer, Follower, ReplicationError,
};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// The Fetch version followers send: the newest that names topics rather than ids.
const FETCH_VERSION: i16 = 12;
/// How long connecting to a leader may take, and its answer beyond the fetch's own wait.
const LEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// A round with no fetch due waits this long (or until woken) before looking again.
const IDLE_WAIT: Duration = Duration::from_millis(50);
/// At most this many partitions of one fetcher are fsynced at once.
const FSYNC_THREADS_MAX: usize = 8;
/// Request ids a follower may use before the next follower's begin.
const REQUEST_IDS_PER_FOLLOWER: u64 = 1 << 32;

type Key = (String, i32);

/// A partition whose copy waits for its fsync, and the effects that come after it.
struct AwaitingFsync {
    key: Key,
    partition: Arc<sluice_storage::Partition>,
    then: Vec<Effect>,
}

struct Slot {
    target: Arc<FollowTarget>,
    follower: Follower,
    /// The first request id of this follower: a due fetch below it is an earlier one's.
    first_request_id: u64,
}

/// The fetcher's state between rounds.
struct Fetcher {
    shared: Arc<Shared>,
    leader_id: i32,
    slots: BTreeMap<Key, Slot>,
    /// Fetches the followers asked for, to go out in the next request.
    due: Vec<(Key, FetchRequest)>,
    next_request_id: u64,
}

pub(crate) async fn run(shared: Arc<Shared>, leader_id: i32, wake: Arc<Notify>) {
    let mut fetcher = Fetcher {
        shared: shared.clone(),
        leader_id,
        slots: BTreeMap::new(),
        due: Vec::new(),
        next_request_id: 1,
    };
    let mut connection: Option<Connection> = None;
    tracing::info!(leader = leader_id, "replica fetcher started");
    while !shared.shutdown.is_cancelled() {
        let Some(targets) = shared.follow_targets(leader_id) else {
            break;
        };
        fetcher.sync(targets);
        fetcher = blocking(fetcher, |f| f.tick()).await;
        if fetcher.due.is_empty() {
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(IDLE_WAIT) => {}
                _ = shared.shutdown.cancelled() => break,
            }
            continue;
        }
        let due = std::mem::take(&mut fetcher.due);
        let request = fetcher.request(&due);
        let answered = tokio::select! {
            answered = send(&shared, leader_id, &mut connection, &request) => answered,
            _ = shared.shutdown.cancelled() => break,
        };
        if let Err(e) = &answered {
            tracing::debug!(leader = leader_id, error = %e, "replica fetch failed");
            connection = None;
        }
        fetcher = blocking(fetcher, move |f| f.absorb(due, answered)).await;
    }
    tracing::info!(leader = leader_id, "replica fetcher stopped");
}

/// Runs `work` on the fetcher off the async threads (it appends, fsyncs and truncates).
async fn blocking(
    mut fetcher: Fetcher,
    work: impl FnOnce(&mut Fetcher) + Send + 'static,
) -> Fetcher {
    let done = tokio::task::spawn_blocking(move || {
        work(&mut fetcher);
        fetcher
    });
    done.await.expect("a fetcher round does not panic")
}

/// Sends `request` to the leader, connecting first if needed.
async fn send(
    shared: &Shared,
    leader_id: i32,
    connection: &mut Option<Connection>,
    request: &WireFetch,
) -> Result<FetchResponse, String> {
    if connection.is_none() {
        let address = shared
            .addresses
            .address_of(leader_id)
            .ok_or_else(|| format!("broker {leader_id} has no known address"))?;
        let (local, security) = (shared.config.local_address, &shared.config.security);
        let id = "sluice-replica-fetcher";
        let connected = Connection::connect_secured(&address, local, id, LEADER_TIMEOUT, security);
        *connection = Some(connected.await.map_err(|e| e.to_string())?);
    }
    let connection = connection.as_mut().expect("connected above");
    let wait = Duration::from_millis(u64::try_from(request.max_wait_ms).unwrap_or(0));
    let (_, response) = connection
        .send_waiting(request, FETCH_VERSION, wait)
        .await
        .map_err(|e| e.to_string())?;
    Ok(response)
}

impl Fetcher {
    /// Keeps a follower per target: a new target (a partition newly followed, or its new
    /// leader epoch) gets a new one, and a partition no longer followed here is dropped with
    /// its due fetch.
    fn sync(&mut self, targets: Vec<Arc<FollowTarget>>) {
        let wanted: BTreeMap<Key, Arc<FollowTarget>> = targets
            .into_iter()
            .map(|t| ((t.topic.clone(), t.index), t))
            .collect();
        self.slots.retain(|key, slot| {
            wanted
                .get(key)
                .is_some_and(|t| Arc::ptr_eq(t, &slot.target))
        });
        for (key, target) in wanted {
            if !self.slots.contains_key(&key) {
                let slot = self.new_slot(target);
                self.slots.insert(key, slot);
            }
        }
        let slots = &self.slots;
        self.due.retain(|(key, request)| {
            slots
                .get(key)
                .is_some_and(|s| request.request_id >= s.first_request_id)
        });
    }

    fn new_slot(&mut self, target: Arc<FollowTarget>) -> Slot {
        let first_request_id = self.next_request_id;
        self.next_request_id += REQUEST_IDS_PER_FOLLOWER;
        let config = &self.shared.config;
        let follower = Follower::new(
            config.node_id,
            target.leader_id,
            target.leader_epoch,
            first_request_id,
            now_ms(),
            config.follower,
        );
        Slot {
            target,
            follower,
            first_request_id,
        }
    }

    /// Ticks every follower, carrying out what it asks.
    fn tick(&mut self) {
        let keys: Vec<Key> = self.slots.keys().cloned().collect();
        for key in keys {
            let effects = {
                let slot = &mut self.slots.get_mut(&key).expect("listed");
                let log = slot.target.partition.log();
                slot.follower.tick(&LogView(&log), now_ms())
            };
            self.carry_out(&key, effects, None);
        }
    }

    /// One Fetch for every due partition.
    fn request(&self, due: &[(Key, FetchRequest)]) -> WireFetch {
        let config = &self.shared.config;
        let mut topics: BTreeMap<&str, Vec<FetchPartition>> = BTreeMap::new();
        for ((topic, index), request) in due {
            let partition = FetchPartition::default()
                .with_partition(*index)
                .with_current_leader_epoch(request.current_leader_epoch)
                .with_fetch_offset(request.fetch_offset)
                .with_last_fetched_epoch(request.last_fetched_epoch.unwrap_or(-1))
                .with_log_start_offset(-1)
                .with_partition_max_bytes(config.fetch_partition_bytes_max);
            topics.entry(topic).or_default().push(partition);
        }
        let topics = topics
            .into_iter()
            .map(|(name, partitions)| {
                FetchTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(name.to_string())))
                    .with_partitions(partitions)
            })
            .collect();
        WireFetch::default()
            .with_replica_id(BrokerId(config.node_id))
            .with_max_wait_ms(config.fetch_wait_max_ms)
            .with_min_bytes(1)
            .with_max_bytes(config.fetch_response_bytes_max)
            .with_isolation_level(0)
            .with_session_id(0)
            .with_session_epoch(-1)
            .with_topics(topics)
    }

    /// Hands each due partition its answer (a failed request answers each with an error):
    /// every partition's copy is appended, then they are fsynced side by side, then each
    /// carries on.
    fn absorb(&mut self, due: Vec<(Key, FetchRequest)>, answered: Result<FetchResponse, String>) {
        let mut answers: BTreeMap<Key, PartitionData> = BTreeMap::new();
        if let Ok(response) = answered {
            for topic in response.responses {
                for p in topic.partitions {
                    answers.insert((topic.topic.to_string(), p.partition_index), p);
                }
            }
        }
        let mut awaiting = Vec::new();
        for (key, request) in due {
            let data = answers.remove(&key);
            let records = data.as_ref().and_then(|d| d.records.clone());
            let answer = Answer {
                request_id: request.request_id,
                result: data.map_or(Err(ReplicationError::NotLeaderOrFollower), |d| {
                    wire_answer(&d, request.fetch_offset)
                }),
            };
            let Some(slot) = self.slots.get_mut(&key) else {
                continue;
            };
            let effects = {
                let log = slot.target.partition.log();
                slot.follower
                    .on_fetch_response(&answer, &LogView(&log), now_ms())
            };
            awaiting.extend(self.carry_out_until_fsync(&key, effects, records.as_ref()));
        }
        self.fsync_side_by_side(awaiting);
    }

    /// Carries out a follower's effects in order; a step that fails restarts the follower.
    fn carry_out(&mut self, key: &Key, effects: Vec<Effect>, records: Option<Bytes>) {
        for effect in effects {
            if let Err(e) = self.carry_out_one(key, effect, records.as_ref()) {
                self.restart(key, &e);
                return;
            }
        }
    }

    /// Carries out effects in order up to an fsync (an append's, or one on its own), and
    /// hands that fsync and what follows it back; a step that fails restarts the follower.
    fn carry_out_until_fsync(
        &mut self,
        key: &Key,
        effects: Vec<Effect>,
        records: Option<&Bytes>,
    ) -> Option<AwaitingFsync> {
        let mut effects = effects.into_iter();
        while let Some(effect) = effects.next() {
            let partition = self.slots.get(key)?.target.partition.clone();
            let done = match effect {
                Effect::AppendAndFlush => self.append(key, records).map(|()| true),
                Effect::Flush => Ok(true),
                other => self.carry_out_one(key, other, records).map(|()| false),
            };
            match done {
                Ok(true) => {
                    let then = effects.collect();
                    let key = key.clone();
                    return Some(AwaitingFsync {
                        key,
                        partition,
                        then,
                    });
                }
                Ok(false) => {}
                Err(e) => {
                    self.restart(key, &e);
                    return None;
                }
            }
        }
        None
    }

    /// Fsyncs the partitions at once, then carries on with each in turn.
    fn fsync_side_by_side(&mut self, awaiting: Vec<AwaitingFsync>) {
        let partitions = awaiting.iter().map(|a| a.partition.clone()).collect();
        let results =
            sluice_types::in_parallel(partitions, FSYNC_THREADS_MAX, |p| p.flush(now_ms()));
        for (a, result) in awaiting.into_iter().zip(results) {
            let carried_on = result.and_then(|()| self.after_fsync(&a.key, &a.partition));
            match carried_on {
                Ok(()) => self.carry_out(&a.key, a.then, None),
                Err(e) => self.restart(&a.key, &e),
            }
        }
    }

    /// A follower whose step failed starts over (its due fetch dropped).
    fn restart(&mut self, key: &Key, error: &sluice_storage::StorageError) {
        let Some(slot) = self.slots.get(key) else {
            return;
        };
        let target = slot.target.clone();
        tracing::warn!(topic = %target.topic, partition = target.index, leader = self.leader_id, error = %error, "a follower's step failed; it starts over");
        let slot = self.new_slot(target);
        self.slots.insert(key.clone(), slot);
        self.due.retain(|(k, _)| k != key);
    }

    /// Appends a fetched copy with the leader's offsets and epochs.
    fn append(
        &mut self,
        key: &Key,
        records: Option<&Bytes>,
    ) -> Result<(), sluice_storage::StorageError> {
        let slot = self.slots.get(key).expect("a slot carries out its effects");
        if let Some(records) = records.filter(|r| !r.is_empty()) {
            let epoch = slot.target.leader_epoch;
            slot.target
                .partition
                .append_as_follower(records, epoch, now_ms())?;
        }
        Ok(())
    }

    fn carry_out_one(
        &mut self,
        key: &Key,
        effect: Effect,
        records: Option<&Bytes>,
    ) -> Result<(), sluice_storage::StorageError> {
        let slot = self
            .slots
            .get_mut(key)
            .expect("a slot carries out its effects");
        let partition = slot.target.partition.clone();
        let epoch = slot.target.leader_epoch;
        let now = now_ms();
        match effect {
            Effect::SendFetch(request) => self.due.push((key.clone(), request)),
            Effect::AppendAndFlush => {
                self.append(key, records)?;
                self.flushed(key, &partition)?;
            }
            Effect::Flush => self.flushed(key, &partition)?,
            Effect::AdvanceHighWatermark(offset) => {
                partition.advance_high_watermark(offset)?;
            }
            Effect::TruncateTo(offset) => partition.truncate_to(offset, epoch, now)?,
            Effect::TruncateFullyAndStartAt(offset) => {
                partition.truncate_fully_and_start_at(offset, epoch, now)?
            }
            Effect::AdvanceLogStartOffset(offset) => {
                partition.delete_records_before(Some(offset))?;
            }
            Effect::AlterPartition(_) => {
                debug_assert!(false, "a follower proposed an in-sync set");
            }
        }
        Ok(())
    }

    /// Fsyncs the partition and carries on (`after_fsync`).
    fn flushed(
        &mut self,
        key: &Key,
        partition: &Arc<sluice_storage::Partition>,
    ) -> Result<(), sluice_storage::StorageError> {
        partition.flush(now_ms())?;
        self.after_fsync(key, partition)
    }

    /// Tells the partition's follower its log is fsynced, carrying out what that asks.
    fn after_fsync(
        &mut self,
        key: &Key,
        partition: &Arc<sluice_storage::Partition>,
    ) -> Result<(), sluice_storage::StorageError> {
        let Some(slot) = self.slots.get_mut(key) else {
            return Ok(());
        };
        let effects = {
            let log = partition.log();
            slot.follower.on_flushed(&LogView(&log), now_ms())
        };
        for effect in effects {
            self.carry_out_one(key, effect, None)?;
        }
        Ok(())
    }
}

/// A partition's answer on the wire as the follower's `FetchResponse` result.
fn wire_answer(data: &PartitionData, fetch_offset: i64) -> Result<FetchData, ReplicationError> {
    use kafka_protocol::error::ResponseError;
    match ResponseError::try_from_code(data.error_code) {
        None => {}
        // The answer carries the leader's log start and high watermark, not its end: cutting
        // back to the high watermark (never past what the leader holds) is safe, and the
        // follower copies the rest again.
        Some(ResponseError::OffsetOutOfRange) => {
            return Err(ReplicationError::OffsetOutOfRange {
                offset: fetch_offset,
                log_start_offset: data.log_start_offset,
                log_end_offset: data.high_watermark,
            });
        }
        Some(ResponseError::FencedLeaderEpoch) => {
            return Err(ReplicationError::FencedLeaderEpoch {
                request: -1,
                current: -1,
            });
        }
        Some(_) => return Err(ReplicationError::NotLeaderOrFollower),
    }
    let diverging = &data.diverging_epoch;
    let diverging_epoch = (diverging.epoch >= 0).then_some((diverging.epoch, diverging.end_offset));
    let records = data.records.as_ref().and_then(batch_range);
    Ok(FetchData {
        high_watermark: data.high_watermark,
        log_start_offset: data.log_start_offset,
        diverging_epoch,
        records,
    })
}

/// The first batch's base offset and one past the last batch's last offset.
fn batch_range(records: &Bytes) -> Option<(i64, i64)> {
    let mut batches = sluice_record::BatchIter::new(records).map_while(Result::ok);
    let (first, _) = batches.next()?;
    let last = batches
        .last()
        .map_or(first.last_offset(), |(h, _)| h.last_offset());
    Some((first.base_offset, last + 1))
}
