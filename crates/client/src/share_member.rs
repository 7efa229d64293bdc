//! `ShareReader`: one member of a share group (KIP-932), the consumer side of a queue.
//! ShareGroupHeartbeat to the group's coordinator gives it partitions; a share session on
//! each of their leaders serves ShareFetch (records acquired for this member for a while)
//! and ShareAcknowledge (each record accepted, released or rejected). Used by the HTTP API's
//! share-group queue.
//!
//! Sessions: one per leader, opened at epoch 0 with every partition the member has there,
//! moved on by one with each request (partitions added and forgotten as the assignment
//! changes), closed at -1 when the member leaves, which releases what it still holds. A
//! request that fails on the way, or that the broker refuses for its session, leaves the
//! session to be opened again by the next fetch. Records acquired under the old one stay this
//! member's (Kafka's rule: a replaced session releases nothing) until their lock runs out; they
//! can be acknowledged again once the next fetch has opened the new session.
//!
//! Not here: what the records mean, nor when to acknowledge them (the caller's).

use crate::codes::{FENCED_MEMBER_EPOCH, UNKNOWN_MEMBER_ID};
use crate::data::for_each_record;
use crate::member::{coordinator_of, topic_ids};
use crate::{Client, ClientError, Connection, Result};
use bytes::Bytes;
use kafka_protocol::messages::share_acknowledge_request::{
    AcknowledgePartition, AcknowledgeTopic, AcknowledgementBatch as AckRequestBatch,
};
use kafka_protocol::messages::share_fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
use kafka_protocol::messages::{
    GroupId, ShareAcknowledgeRequest, ShareFetchRequest, ShareGroupHeartbeatRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use tokio::time::Instant;
use uuid::Uuid;

/// The member epoch that leaves the group, and the session epoch that closes a session.
const LEAVE_EPOCH: i32 = -1;
const CLOSE_EPOCH: i32 = -1;
/// Kafka's codes a share session or a partition's leadership answers with.
const NOT_LEADER_OR_FOLLOWER: i16 = 6;
const FENCED_LEADER_EPOCH: i16 = 74;
const UNKNOWN_TOPIC_ID: i16 = 100;
const SHARE_SESSION_NOT_FOUND: i16 = 122;
const INVALID_SHARE_SESSION_EPOCH: i16 = 123;
/// How long each leader is asked to wait at a time when several are waited on together.
const WAIT_SLICE: Duration = Duration::from_millis(500);
/// The most a session's fetch takes in bytes (the broker caps it further).
const FETCH_BYTES_MAX: i32 = 8 * 1024 * 1024;

/// A partition of a share group member: topic id and index.
type SharePartition = (Uuid, i32);
/// A partition's acknowledgements: (offset, kind).
type PartitionAcks = (SharePartition, Vec<(i64, AckKind)>);

/// How a record is acknowledged, with KIP-932's numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AckKind {
    /// Done with: never delivered again.
    Accept = 1,
    /// Delivered again (to any member), after the group's back-off.
    Release = 2,
    /// Never delivered again; written to the dead-letter topic when the group names one.
    Reject = 3,
}

impl AckKind {
    /// `accept`, `release` or `reject`.
    pub fn parse(text: &str) -> Option<AckKind> {
        match text {
            "accept" => Some(AckKind::Accept),
            "release" => Some(AckKind::Release),
            "reject" => Some(AckKind::Reject),
            _ => None,
        }
    }
}

/// Records acquired from one partition: the batches as fetched, and the offsets of them this
/// member holds, with their delivery counts.
#[derive(Debug)]
pub struct Acquired {
    pub topic: String,
    pub partition: i32,
    records: Bytes,
    /// (first offset, last offset, delivery count), in offset order.
    ranges: Vec<(i64, i64, i16)>,
}

impl Acquired {
    /// Hands `visit` each acquired record and its delivery count (a fetched batch may hold
    /// records another member holds: those are left out).
    pub fn for_each(&self, mut visit: impl FnMut(&sluice_record::Record<'_>, i16)) -> Result<()> {
        let Some(&(first, _, _)) = self.ranges.first() else {
            return Ok(());
        };
        for_each_record(&self.records, first, |r| {
            if let Some(count) = self.delivery_count(r.offset) {
                visit(r, count);
            }
        })?;
        Ok(())
    }

    fn delivery_count(&self, offset: i64) -> Option<i16> {
        self.ranges
            .iter()
            .find(|(first, last, _)| (*first..=*last).contains(&offset))
            .map(|r| r.2)
    }
}

/// One record's acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub kind: AckKind,
}

/// How one partition's acknowledgements ended.
#[derive(Debug)]
pub struct PartitionAcked {
    pub topic: String,
    pub partition: i32,
    /// How many records it named.
    pub records: usize,
    pub result: Result<()>,
}

/// A share session with one leader.
struct LeaderSession {
    node: i32,
    /// Dropped after a failure; the next request connects again.
    connection: Option<Connection>,
    /// The epoch the next request carries; 0 opens a session.
    epoch: i32,
    /// The member's partitions led by this node.
    partitions: BTreeSet<SharePartition>,
    /// The partitions the broker's session holds (what was sent); a continuing fetch adds
    /// and forgets the difference.
    in_session: BTreeSet<SharePartition>,
}

impl LeaderSession {
    fn new(node: i32) -> LeaderSession {
        LeaderSession {
            node,
            connection: None,
            epoch: 0,
            partitions: BTreeSet::new(),
            in_session: BTreeSet::new(),
        }
    }

    /// Forgets the session: the next request opens a new one (on a new connection if
    /// `drop_connection`).
    fn reset(&mut self, drop_connection: bool) {
        self.epoch = 0;
        self.in_session.clear();
        if drop_connection {
            self.connection = None;
        }
    }

    /// The session moved on by one request.
    fn advance(&mut self) {
        self.epoch = if self.epoch == i32::MAX {
            1
        } else {
            self.epoch + 1
        };
    }

    async fn connection(&mut self, client: &mut Client) -> Result<&mut Connection> {
        if self.connection.is_none() {
            self.connection = Some(client.dedicated(self.node).await?);
        }
        Ok(self.connection.as_mut().expect("connected above"))
    }
}

/// Who is asking: the group and member every share request names.
struct Who<'a> {
    group: &'a str,
    member_id: &'a str,
}

pub struct ShareReader {
    group: String,
    member_id: String,
    epoch: i32,
    /// The subscribed topics by id, as assignments name them.
    topics: BTreeMap<Uuid, String>,
    coordinator: Connection,
    next_heartbeat: Instant,
    assigned: BTreeSet<SharePartition>,
    /// Set when a leader moved: the sessions are laid out again before the next fetch.
    leaders_stale: bool,
    sessions: BTreeMap<i32, LeaderSession>,
}

impl ShareReader {
    /// Joins `group` subscribed to `topics` (one heartbeat; the assignment may come with a
    /// later one).
    pub async fn join(client: &mut Client, group: &str, topics: &[String]) -> Result<ShareReader> {
        let ids = topic_ids(client, topics).await?;
        let coordinator = coordinator_of(client, group).await?;
        let mut reader = ShareReader {
            group: group.to_string(),
            // KIP-932 v1: the member makes its own id.
            member_id: Uuid::new_v4().simple().to_string(),
            epoch: 0,
            topics: ids,
            coordinator,
            next_heartbeat: Instant::now(),
            assigned: BTreeSet::new(),
            leaders_stale: false,
            sessions: BTreeMap::new(),
        };
        reader.heartbeat(client).await?;
        Ok(reader)
    }

    pub fn member_id(&self) -> &str {
        &self.member_id
    }

    /// The partitions the group gave this member, by topic name.
    pub fn assigned(&self) -> Vec<(String, i32)> {
        self.assigned
            .iter()
            .filter_map(|(id, p)| Some((self.topics.get(id)?.clone(), *p)))
            .collect()
    }

    /// Heartbeats when one is due; a new assignment lays the sessions out again.
    pub async fn heartbeat(&mut self, client: &mut Client) -> Result<()> {
        if Instant::now() < self.next_heartbeat {
            return Ok(());
        }
        let subscribed = (self.epoch == 0).then(|| {
            self.topics
                .values()
                .map(|t| TopicName(StrBytes::from_string(t.clone())))
                .collect()
        });
        let request = ShareGroupHeartbeatRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(self.group.clone())))
            .with_member_id(StrBytes::from_string(self.member_id.clone()))
            .with_member_epoch(self.epoch)
            .with_subscribed_topic_names(subscribed);
        let (_, response) = self.coordinator.send(&request, 1).await?;
        if matches!(response.error_code, UNKNOWN_MEMBER_ID | FENCED_MEMBER_EPOCH) {
            // The group let this member go: it joins again with what it had.
            self.epoch = 0;
            self.next_heartbeat = Instant::now();
            return Ok(());
        }
        ClientError::check(
            response.error_code,
            response.error_message.as_deref(),
            || format!("heartbeat to share group {}", self.group),
        )?;
        self.epoch = response.member_epoch;
        let interval = response.heartbeat_interval_ms.clamp(100, 30_000) as u64;
        self.next_heartbeat = Instant::now() + Duration::from_millis(interval);
        if let Some(assignment) = response.assignment {
            self.assigned = assignment
                .topic_partitions
                .into_iter()
                .filter(|tp| self.topics.contains_key(&tp.topic_id))
                .flat_map(|tp| tp.partitions.into_iter().map(move |p| (tp.topic_id, p)))
                .collect();
            self.lay_out(client).await?;
        }
        Ok(())
    }

    /// Puts each assigned partition in the session of its leader.
    async fn lay_out(&mut self, client: &mut Client) -> Result<()> {
        let mut by_leader: BTreeMap<i32, BTreeSet<SharePartition>> = BTreeMap::new();
        for &(id, partition) in &self.assigned {
            let topic = &self.topics[&id];
            let leader = client.leader_id(topic, partition).await?;
            by_leader.entry(leader).or_default().insert((id, partition));
        }
        for session in self.sessions.values_mut() {
            session.partitions.clear();
        }
        for (node, partitions) in by_leader {
            let session = self
                .sessions
                .entry(node)
                .or_insert_with(|| LeaderSession::new(node));
            session.partitions = partitions;
        }
        self.leaders_stale = false;
        Ok(())
    }

    /// Acquires about `max_records` records from the member's partitions (a broker completes
    /// the batch of the last one it hands out, as Kafka does), waiting up to `wait` for some. Every leader is asked without waiting first; only when none had any
    /// are they all asked again together, each for its share of `max_records`, waiting
    /// `WAIT_SLICE` at a time when there are several (so records on any of them end the wait
    /// within a slice).
    pub async fn fetch(
        &mut self,
        client: &mut Client,
        max_records: usize,
        wait: Duration,
    ) -> Result<Vec<Acquired>> {
        let deadline = Instant::now() + wait;
        self.heartbeat(client).await?;
        // A member just joined may have no partitions until a later heartbeat.
        while self.fetching_nodes().is_empty() && Instant::now() < deadline {
            tokio::time::sleep_until(self.next_heartbeat.min(deadline)).await;
            self.heartbeat(client).await?;
        }
        let wait = deadline.saturating_duration_since(Instant::now());
        if self.leaders_stale {
            client.forget_leaders();
            self.lay_out(client).await?;
        }
        let mut out = Vec::new();
        let mut first_error = None;
        let mut budget = max_records;
        for node in self.fetching_nodes() {
            if budget == 0 {
                break;
            }
            match self.fetch_one(client, node, budget, Duration::ZERO).await {
                Ok(acquired) => {
                    budget = budget.saturating_sub(count(&acquired));
                    out.extend(acquired);
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        let deadline = Instant::now() + wait;
        while out.is_empty() && first_error.is_none() && Instant::now() < deadline {
            let nodes = self.fetching_nodes();
            let share = max_records.div_ceil(nodes.len().max(1)).max(1);
            // One leader waits the whole time; several wait in slices, as a request in
            // flight cannot be taken back when another leader's records come first.
            let left = deadline.saturating_duration_since(Instant::now());
            let slice = if nodes.len() > 1 {
                left.min(WAIT_SLICE)
            } else {
                left
            };
            for result in self.fetch_all_waiting(client, &nodes, share, slice).await {
                match result {
                    Ok(acquired) => out.extend(acquired),
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
        }
        match first_error {
            Some(e) if out.is_empty() => Err(e),
            _ => Ok(out),
        }
    }

    /// The leaders with a session to fetch from (partitions now, or some to forget).
    fn fetching_nodes(&self) -> Vec<i32> {
        self.sessions
            .values()
            .filter(|s| !s.partitions.is_empty() || !s.in_session.is_empty())
            .map(|s| s.node)
            .collect()
    }

    /// Long-polls every leader in `nodes` at once. Connections are made first, one by one
    /// (they need the client); the waits then overlap.
    async fn fetch_all_waiting(
        &mut self,
        client: &mut Client,
        nodes: &[i32],
        max_records: usize,
        wait: Duration,
    ) -> Vec<Result<Vec<Acquired>>> {
        let mut results = Vec::new();
        for node in nodes {
            let session = self.sessions.get_mut(node).expect("a node of the sessions");
            if let Err(e) = session.connection(client).await {
                results.push(Err(e));
            }
        }
        let who = Who {
            group: &self.group,
            member_id: &self.member_id,
        };
        let topics = &self.topics;
        let waits = self
            .sessions
            .values_mut()
            .filter(|s| nodes.contains(&s.node) && s.connection.is_some())
            .map(|s| share_fetch(s, &who, topics, max_records, wait));
        let outcomes = futures::future::join_all(waits).await;
        for outcome in outcomes {
            results.push(self.settle(outcome));
        }
        results
    }

    async fn fetch_one(
        &mut self,
        client: &mut Client,
        node: i32,
        max_records: usize,
        wait: Duration,
    ) -> Result<Vec<Acquired>> {
        let session = self
            .sessions
            .get_mut(&node)
            .expect("a node of the sessions");
        session.connection(client).await?;
        let who = Who {
            group: &self.group,
            member_id: &self.member_id,
        };
        let outcome = share_fetch(session, &who, &self.topics, max_records, wait).await;
        self.settle(outcome)
    }

    /// Notes a leader that moved, and passes the records on.
    fn settle(&mut self, outcome: FetchOutcome) -> Result<Vec<Acquired>> {
        self.leaders_stale |= outcome.leader_moved;
        outcome.acquired
    }

    /// Acknowledges records this member acquired, each partition at its leader. A partition
    /// the member has no session for answers an error of its own, as does one the broker
    /// refuses (a record not acquired by this member: INVALID_RECORD_STATE).
    pub async fn acknowledge(
        &mut self,
        client: &mut Client,
        acks: &[Ack],
    ) -> Result<Vec<PartitionAcked>> {
        let ids: BTreeMap<&str, Uuid> = self
            .topics
            .iter()
            .map(|(id, name)| (name.as_str(), *id))
            .collect();
        let mut by_partition: BTreeMap<(String, i32), Vec<(i64, AckKind)>> = BTreeMap::new();
        for ack in acks {
            by_partition
                .entry((ack.topic.clone(), ack.partition))
                .or_default()
                .push((ack.offset, ack.kind));
        }
        let mut out = Vec::new();
        let mut by_node: BTreeMap<i32, Vec<PartitionAcks>> = BTreeMap::new();
        for ((topic, partition), offsets) in by_partition {
            let key = ids.get(topic.as_str()).map(|id| (*id, partition));
            let node = key.and_then(|k| {
                self.sessions
                    .values()
                    .find(|s| s.epoch > 0 && s.in_session.contains(&k))
                    .map(|s| s.node)
            });
            match (key, node) {
                (Some(key), Some(node)) => by_node.entry(node).or_default().push((key, offsets)),
                _ => out.push(PartitionAcked {
                    topic,
                    partition,
                    records: offsets.len(),
                    result: ClientError::check(
                        SHARE_SESSION_NOT_FOUND,
                        Some("this member has no open share session for that partition (not assigned, or its session failed: poll, then acknowledge again before the records' lock runs out)"),
                        || "acknowledging".to_string(),
                    ),
                }),
            }
        }
        for (node, partitions) in by_node {
            out.extend(self.acknowledge_at(client, node, partitions).await);
        }
        Ok(out)
    }

    async fn acknowledge_at(
        &mut self,
        client: &mut Client,
        node: i32,
        partitions: Vec<PartitionAcks>,
    ) -> Vec<PartitionAcked> {
        let named = |topics: &BTreeMap<Uuid, String>, result: &dyn Fn() -> Result<()>| {
            partitions
                .iter()
                .map(|((id, p), offsets)| PartitionAcked {
                    topic: topics[id].clone(),
                    partition: *p,
                    records: offsets.len(),
                    result: result(),
                })
                .collect::<Vec<_>>()
        };
        let session = self
            .sessions
            .get_mut(&node)
            .expect("a node of the sessions");
        let request = acknowledge_request(&self.group, &self.member_id, session.epoch, &partitions);
        let sent = match session.connection(client).await {
            Ok(connection) => connection.send(&request, 1).await,
            Err(e) => Err(e),
        };
        let response = match sent {
            Ok((_, response)) => response,
            Err(e) => {
                session.reset(true);
                // The request may or may not have arrived: each partition answers that the
                // broker was not reached (io::Error is not Clone, so each gets its own).
                let (text, kind) = match &e {
                    ClientError::Io { error, .. } | ClientError::Connect { error, .. } => {
                        (e.to_string(), error.kind())
                    }
                    _ => (e.to_string(), std::io::ErrorKind::Other),
                };
                return named(&self.topics, &|| {
                    Err(ClientError::Io {
                        address: format!("node {node}"),
                        error: std::io::Error::new(kind, text.clone()),
                    })
                });
            }
        };
        if response.error_code != 0 {
            session.reset(false);
            let (code, message) = (response.error_code, response.error_message.clone());
            return named(&self.topics, &|| {
                ClientError::check(code, message.as_deref(), || "acknowledging".into())
            });
        }
        session.advance();
        let mut errors: BTreeMap<SharePartition, (i16, Option<String>)> = BTreeMap::new();
        for t in response.responses {
            for p in t.partitions {
                let message = p.error_message.map(|m| m.to_string());
                errors.insert((t.topic_id, p.partition_index), (p.error_code, message));
            }
        }
        let mut out = Vec::new();
        for ((id, partition), offsets) in &partitions {
            let (code, message) = errors.remove(&(*id, *partition)).unwrap_or((0, None));
            self.leaders_stale |= leader_moved(code);
            let topic = self.topics[id].clone();
            out.push(PartitionAcked {
                result: ClientError::check(code, message.as_deref(), || {
                    format!("acknowledging records of {topic}-{partition}")
                }),
                topic,
                partition: *partition,
                records: offsets.len(),
            });
        }
        out
    }

    /// Closes every session (releasing what the member still holds) and leaves the group.
    pub async fn leave(&mut self) {
        for session in self.sessions.values_mut() {
            if session.epoch == 0 {
                continue;
            }
            let Some(connection) = session.connection.as_mut() else {
                continue;
            };
            let request = ShareFetchRequest::default()
                .with_group_id(Some(GroupId(StrBytes::from_string(self.group.clone()))))
                .with_member_id(Some(StrBytes::from_string(self.member_id.clone())))
                .with_share_session_epoch(CLOSE_EPOCH)
                .with_max_records(1)
                .with_batch_size(1);
            if let Err(e) = connection.send(&request, 1).await {
                tracing::warn!(group = %self.group, node = session.node, error = %e, "closing a share session failed; the broker releases its records when the session is evicted");
            }
        }
        self.sessions.clear();
        if self.epoch == 0 {
            return;
        }
        let request = ShareGroupHeartbeatRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(self.group.clone())))
            .with_member_id(StrBytes::from_string(self.member_id.clone()))
            .with_member_epoch(LEAVE_EPOCH);
        if let Err(e) = self.coordinator.send(&request, 1).await {
            tracing::warn!(group = %self.group, error = %e, "leaving the share group failed; its session will time out");
        }
    }
}

/// The number of records in `acquired`.
fn count(acquired: &[Acquired]) -> usize {
    acquired
        .iter()
        .flat_map(|a| a.ranges.iter())
        .map(|(first, last, _)| (last - first + 1) as usize)
        .sum()
}

fn leader_moved(code: i16) -> bool {
    matches!(
        code,
        NOT_LEADER_OR_FOLLOWER | FENCED_LEADER_EPOCH | UNKNOWN_TOPIC_ID
    )
}

/// What one ShareFetch came to.
struct FetchOutcome {
    acquired: Result<Vec<Acquired>>,
    leader_moved: bool,
}

/// One ShareFetch on `session` (connected), moving the session on when it is answered.
async fn share_fetch(
    session: &mut LeaderSession,
    who: &Who<'_>,
    topics: &BTreeMap<Uuid, String>,
    max_records: usize,
    wait: Duration,
) -> FetchOutcome {
    let request = fetch_request(session, who, max_records, wait);
    let connection = session.connection.as_mut().expect("connected before");
    let response = match connection.send_waiting(&request, 1, wait).await {
        Ok((_, response)) => response,
        Err(e) => {
            session.reset(true);
            return FetchOutcome {
                acquired: Err(e),
                leader_moved: false,
            };
        }
    };
    if response.error_code != 0 {
        session.reset(false);
        let refused = ClientError::check(
            response.error_code,
            response.error_message.as_deref(),
            || format!("share fetch from node {}", session.node),
        );
        let session_lost = matches!(
            response.error_code,
            SHARE_SESSION_NOT_FOUND | INVALID_SHARE_SESSION_EPOCH
        );
        return FetchOutcome {
            // A lost session is opened again by the next fetch: nothing to report.
            acquired: if session_lost {
                Ok(Vec::new())
            } else {
                refused.map(|()| Vec::new())
            },
            leader_moved: false,
        };
    }
    session.in_session = session.partitions.clone();
    session.advance();
    let mut acquired = Vec::new();
    let mut moved = false;
    for t in response.responses {
        let Some(topic) = topics.get(&t.topic_id) else {
            continue;
        };
        for p in t.partitions {
            moved |= leader_moved(p.error_code);
            if p.error_code != 0 {
                tracing::debug!(%topic, partition = p.partition_index, code = p.error_code, "share fetch: partition error");
            }
            if p.acquired_records.is_empty() {
                continue;
            }
            acquired.push(Acquired {
                topic: topic.clone(),
                partition: p.partition_index,
                records: p.records.unwrap_or_default(),
                ranges: p
                    .acquired_records
                    .iter()
                    .map(|a| (a.first_offset, a.last_offset, a.delivery_count))
                    .collect(),
            });
        }
    }
    FetchOutcome {
        acquired: Ok(acquired),
        leader_moved: moved,
    }
}

/// The ShareFetch for `session`: at epoch 0 every partition, else those added and those
/// forgotten since the last one.
fn fetch_request(
    session: &LeaderSession,
    who: &Who<'_>,
    max_records: usize,
    wait: Duration,
) -> ShareFetchRequest {
    let (added, forgotten): (Vec<SharePartition>, Vec<SharePartition>) = if session.epoch == 0 {
        (session.partitions.iter().copied().collect(), Vec::new())
    } else {
        (
            session
                .partitions
                .difference(&session.in_session)
                .copied()
                .collect(),
            session
                .in_session
                .difference(&session.partitions)
                .copied()
                .collect(),
        )
    };
    let max_records = i32::try_from(max_records).unwrap_or(i32::MAX).max(1);
    ShareFetchRequest::default()
        .with_group_id(Some(GroupId(StrBytes::from_string(who.group.to_string()))))
        .with_member_id(Some(StrBytes::from_string(who.member_id.to_string())))
        .with_share_session_epoch(session.epoch)
        .with_max_wait_ms(i32::try_from(wait.as_millis()).unwrap_or(i32::MAX))
        .with_min_bytes(1)
        .with_max_bytes(FETCH_BYTES_MAX)
        .with_max_records(max_records)
        .with_batch_size(max_records)
        .with_topics(
            by_topic(&added)
                .into_iter()
                .map(|(id, partitions)| {
                    FetchTopic::default().with_topic_id(id).with_partitions(
                        partitions
                            .into_iter()
                            .map(|p| FetchPartition::default().with_partition_index(p))
                            .collect(),
                    )
                })
                .collect(),
        )
        .with_forgotten_topics_data(
            by_topic(&forgotten)
                .into_iter()
                .map(|(id, partitions)| {
                    ForgottenTopic::default()
                        .with_topic_id(id)
                        .with_partitions(partitions)
                })
                .collect(),
        )
}

fn by_topic(partitions: &[SharePartition]) -> BTreeMap<Uuid, Vec<i32>> {
    let mut out: BTreeMap<Uuid, Vec<i32>> = BTreeMap::new();
    for &(id, p) in partitions {
        out.entry(id).or_default().push(p);
    }
    out
}

/// A ShareAcknowledge naming each partition's records, consecutive offsets of one kind in
/// one batch.
fn acknowledge_request(
    group: &str,
    member_id: &str,
    epoch: i32,
    partitions: &[PartitionAcks],
) -> ShareAcknowledgeRequest {
    let mut topics: BTreeMap<Uuid, Vec<AcknowledgePartition>> = BTreeMap::new();
    for ((id, partition), offsets) in partitions {
        let batches = ack_batches(offsets)
            .into_iter()
            .map(|(first, last, kind)| {
                AckRequestBatch::default()
                    .with_first_offset(first)
                    .with_last_offset(last)
                    .with_acknowledge_types(vec![kind as i8])
            })
            .collect();
        topics.entry(*id).or_default().push(
            AcknowledgePartition::default()
                .with_partition_index(*partition)
                .with_acknowledgement_batches(batches),
        );
    }
    ShareAcknowledgeRequest::default()
        .with_group_id(Some(GroupId(StrBytes::from_string(group.to_string()))))
        .with_member_id(Some(StrBytes::from_string(member_id.to_string())))
        .with_share_session_epoch(epoch)
        .with_topics(
            topics
                .into_iter()
                .map(|(id, partitions)| {
                    AcknowledgeTopic::default()
                        .with_topic_id(id)
                        .with_partitions(partitions)
                })
                .collect(),
        )
}

/// Offsets and kinds as (first, last, kind) runs: consecutive offsets of one kind together.
/// An offset named twice keeps its last kind.
fn ack_batches(offsets: &[(i64, AckKind)]) -> Vec<(i64, i64, AckKind)> {
    let by_offset: BTreeMap<i64, AckKind> = offsets.iter().copied().collect();
    let mut runs: Vec<(i64, i64, AckKind)> = Vec::new();
    for (offset, kind) in by_offset {
        match runs.last_mut() {
            Some((_, last, k)) if *last + 1 == offset && *k == kind => *last = offset,
            _ => runs.push((offset, offset, kind)),
        }
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acknowledgements_become_runs_of_one_kind() {
        use AckKind::*;
        let offsets = [
            (5, Accept),
            (3, Accept),
            (4, Accept),
            (7, Release),
            (8, Release),
            (9, Accept),
            (6, Reject),
            (4, Accept),
        ];
        assert_eq!(
            ack_batches(&offsets),
            vec![
                (3, 5, Accept),
                (6, 6, Reject),
                (7, 8, Release),
                (9, 9, Accept)
            ]
        );
        assert_eq!(ack_batches(&[(10, Accept), (12, Accept)]).len(), 2);
    }

    #[test]
    fn ack_kinds_parse_by_name() {
        assert_eq!(AckKind::parse("accept"), Some(AckKind::Accept));
        assert_eq!(AckKind::parse("release"), Some(AckKind::Release));
        assert_eq!(AckKind::parse("reject"), Some(AckKind::Reject));
        assert_eq!(AckKind::parse("ACCEPT"), None);
    }
}
