//! `ClassicMembership`: a consumer-group member through the classic protocol (JoinGroup,
//! SyncGroup, Heartbeat, LeaveGroup), for a group whose other members speak it: the CLI
//! switches to it when a KIP-848 heartbeat meets such a group. The assignment is computed
//! client side by the leader, with the range or round-robin assignor (the ones librdkafka,
//! the Java client and kafka-python have in common).
//!
//! Owns: the join/sync cycle, the assignors, the subscription and assignment bytes. Not:
//! reading or committing positions (the caller commits through `commit`).

use crate::admin::{str_bytes, topic_name};
use crate::codes::{
    ILLEGAL_GENERATION, MEMBER_ID_REQUIRED, REBALANCE_IN_PROGRESS, UNKNOWN_MEMBER_ID,
};
use crate::groups::{self, Member};
use crate::member::TopicPartition;
use crate::{Client, ClientError, Connection, Result};
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ConsumerProtocolAssignment, ConsumerProtocolSubscription, GroupId, HeartbeatRequest,
    JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, SyncGroupRequest,
    consumer_protocol_assignment::TopicPartition as AssignedTopic,
    join_group_request::JoinGroupRequestProtocol, leave_group_request::MemberIdentity,
    sync_group_request::SyncGroupRequestAssignment,
};
use kafka_protocol::protocol::{Decodable, Encodable};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;

/// Kafka's defaults for a consumer (`session.timeout.ms`, `max.poll.interval.ms`,
/// `heartbeat.interval.ms`).
const SESSION_TIMEOUT_MS: i32 = 45_000;
const REBALANCE_TIMEOUT_MS: i32 = 60_000;
const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(3);
/// The assignors offered, in order of preference.
const ASSIGNORS: [&str; 2] = ["range", "roundrobin"];
const PROTOCOL_TYPE: &str = "consumer";

pub struct ClassicMembership {
    group: String,
    topics: Vec<String>,
    member_id: String,
    generation: i32,
    coordinator: Connection,
    next_heartbeat: Instant,
    must_join: bool,
}

impl ClassicMembership {
    /// Finds the coordinator of `group`; the first `poll` joins, subscribed to `topics`.
    pub async fn new(
        client: &mut Client,
        group: &str,
        topics: &[String],
    ) -> Result<ClassicMembership> {
        let node = groups::coordinator(client, group).await?;
        Ok(ClassicMembership {
            group: group.to_string(),
            topics: topics.to_vec(),
            member_id: String::new(),
            generation: -1,
            coordinator: client.dedicated(node).await?,
            next_heartbeat: Instant::now(),
            must_join: true,
        })
    }

    /// Finds the coordinator again after a lost connection; the member joins again.
    pub async fn reconnect(&mut self, client: &mut Client) -> Result<()> {
        let node = groups::coordinator(client, &self.group).await?;
        self.coordinator = client.dedicated(node).await?;
        self.must_join = true;
        self.next_heartbeat = Instant::now();
        Ok(())
    }

    pub fn joined(&self) -> bool {
        !self.must_join && self.generation >= 0
    }

    pub fn next_heartbeat(&self) -> Instant {
        self.next_heartbeat
    }

    /// Joins when needed, else heartbeats when due. Returns the member's partitions when they
    /// changed: empty when a rebalance began (everything is given up, eagerly), then the new
    /// assignment once joined.
    pub async fn poll(&mut self, client: &mut Client) -> Result<Option<Vec<TopicPartition>>> {
        if self.must_join {
            return self.join(client).await.map(Some);
        }
        if Instant::now() < self.next_heartbeat {
            return Ok(None);
        }
        let request = HeartbeatRequest::default()
            .with_group_id(GroupId(str_bytes(&self.group)))
            .with_generation_id(self.generation)
            .with_member_id(str_bytes(&self.member_id));
        let (_, response) = self.coordinator.send(&request, 4).await?;
        self.next_heartbeat = Instant::now() + HEARTBEAT_INTERVAL;
        match response.error_code {
            0 => Ok(None),
            REBALANCE_IN_PROGRESS | ILLEGAL_GENERATION | UNKNOWN_MEMBER_ID => {
                if response.error_code == UNKNOWN_MEMBER_ID {
                    self.member_id.clear();
                }
                self.must_join = true;
                Ok(Some(Vec::new()))
            }
            code => {
                ClientError::check(code, None, || format!("heartbeat to group {}", self.group))?;
                Ok(None)
            }
        }
    }

    /// JoinGroup until the rebalance completes, then SyncGroup (assigning, as the leader).
    async fn join(&mut self, client: &mut Client) -> Result<Vec<TopicPartition>> {
        // The first JoinGroup of a new member may be answered MEMBER_ID_REQUIRED with the id to
        // join with (KIP-394); a second such answer is an error.
        let mut id_given = false;
        let joined = loop {
            let request = JoinGroupRequest::default()
                .with_group_id(GroupId(str_bytes(&self.group)))
                .with_session_timeout_ms(SESSION_TIMEOUT_MS)
                .with_rebalance_timeout_ms(REBALANCE_TIMEOUT_MS)
                .with_member_id(str_bytes(&self.member_id))
                .with_protocol_type(str_bytes(PROTOCOL_TYPE))
                .with_protocols(
                    ASSIGNORS
                        .iter()
                        .map(|name| {
                            JoinGroupRequestProtocol::default()
                                .with_name(str_bytes(name))
                                .with_metadata(subscription(&self.topics))
                        })
                        .collect(),
                );
            // The coordinator holds a JoinGroup until every member has joined.
            let wait = Duration::from_millis(REBALANCE_TIMEOUT_MS as u64);
            let (_, response) = self.coordinator.send_waiting(&request, 7, wait).await?;
            if response.error_code == MEMBER_ID_REQUIRED && !id_given {
                self.member_id = response.member_id.to_string();
                id_given = true;
                continue;
            }
            ClientError::check(response.error_code, None, || {
                format!("joining group {}", self.group)
            })?;
            break response;
        };
        self.member_id = joined.member_id.to_string();
        self.generation = joined.generation_id;
        let assignments = if joined.leader == joined.member_id {
            assign(client, &joined).await?
        } else {
            Vec::new()
        };
        let request = SyncGroupRequest::default()
            .with_group_id(GroupId(str_bytes(&self.group)))
            .with_generation_id(self.generation)
            .with_member_id(str_bytes(&self.member_id))
            .with_protocol_type(Some(str_bytes(PROTOCOL_TYPE)))
            .with_protocol_name(joined.protocol_name.clone())
            .with_assignments(assignments);
        let wait = Duration::from_millis(REBALANCE_TIMEOUT_MS as u64);
        let (_, response) = self.coordinator.send_waiting(&request, 5, wait).await?;
        if matches!(
            response.error_code,
            REBALANCE_IN_PROGRESS | ILLEGAL_GENERATION | UNKNOWN_MEMBER_ID
        ) {
            // Another rebalance began meanwhile: join again at the next poll.
            self.next_heartbeat = Instant::now();
            return Ok(Vec::new());
        }
        ClientError::check(response.error_code, None, || {
            format!("syncing with group {}", self.group)
        })?;
        self.must_join = false;
        self.next_heartbeat = Instant::now() + HEARTBEAT_INTERVAL;
        let mut mine = groups::assigned_partitions(&response.assignment);
        mine.sort();
        Ok(mine)
    }

    /// Commits the next offsets to read of the given partitions, in this generation.
    pub async fn commit(&mut self, offsets: &BTreeMap<TopicPartition, i64>) -> Result<()> {
        let member = Member {
            member_id: self.member_id.clone(),
            epoch: self.generation,
        };
        groups::commit_offsets(&mut self.coordinator, &self.group, &member, offsets).await
    }

    /// Leaves the group so its partitions move to other members at once.
    pub async fn leave(&mut self) {
        if self.member_id.is_empty() {
            return;
        }
        let request = LeaveGroupRequest::default()
            .with_group_id(GroupId(str_bytes(&self.group)))
            .with_members(vec![
                MemberIdentity::default().with_member_id(str_bytes(&self.member_id)),
            ]);
        if let Err(e) = self.coordinator.send(&request, 5).await {
            tracing::warn!(group = %self.group, error = %e, "leaving the group failed; its session will time out");
        }
    }
}

/// A commit error that joining again settles (the generation moved on).
pub fn rejoin_settles(code: i16) -> bool {
    matches!(
        code,
        REBALANCE_IN_PROGRESS | ILLEGAL_GENERATION | UNKNOWN_MEMBER_ID
    )
}

/// ConsumerProtocolSubscription v0 bytes: the version, then the topics.
fn subscription(topics: &[String]) -> Bytes {
    let message = ConsumerProtocolSubscription::default()
        .with_topics(topics.iter().map(|t| str_bytes(t)).collect());
    versioned(&message)
}

/// A consumer-protocol message as it travels: an i16 version, then the message at v0.
fn versioned(message: &impl Encodable) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i16(0);
    message
        .encode(&mut buf, 0)
        .expect("a v0 consumer-protocol message always encodes");
    buf.freeze()
}

/// The leader's part: every member's assignment under the protocol the group chose.
async fn assign(
    client: &mut Client,
    joined: &JoinGroupResponse,
) -> Result<Vec<SyncGroupRequestAssignment>> {
    let mut subscriptions: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for member in &joined.members {
        subscriptions.insert(member.member_id.to_string(), subscribed(&member.metadata));
    }
    let mut partitions: BTreeMap<String, i32> = BTreeMap::new();
    for topic in subscriptions.values().flatten() {
        if !partitions.contains_key(topic) {
            let count = client.partitions(topic, false).await.map_or(0, |p| p.len());
            partitions.insert(topic.clone(), count as i32);
        }
    }
    let protocol = joined.protocol_name.as_deref().unwrap_or("range");
    let plan = match protocol {
        "roundrobin" => round_robin(&subscriptions, &partitions),
        _ => range(&subscriptions, &partitions),
    };
    Ok(subscriptions
        .keys()
        .map(|member| {
            let mine = plan.get(member).cloned().unwrap_or_default();
            SyncGroupRequestAssignment::default()
                .with_member_id(str_bytes(member))
                .with_assignment(assignment_bytes(&mine))
        })
        .collect())
}

/// The topics in a member's subscription bytes (none when they do not parse).
fn subscribed(metadata: &[u8]) -> Vec<String> {
    let mut buf = Bytes::copy_from_slice(metadata);
    if buf.len() < 2 {
        return Vec::new();
    }
    let version = bytes::Buf::get_i16(&mut buf);
    ConsumerProtocolSubscription::decode(&mut buf, version)
        .map(|s| s.topics.iter().map(|t| t.to_string()).collect())
        .unwrap_or_default()
}

fn assignment_bytes(partitions: &[TopicPartition]) -> Bytes {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (topic, p) in partitions {
        by_topic.entry(topic).or_default().push(*p);
    }
    let message = ConsumerProtocolAssignment::default().with_assigned_partitions(
        by_topic
            .into_iter()
            .map(|(topic, partitions)| {
                AssignedTopic::default()
                    .with_topic(topic_name(topic))
                    .with_partitions(partitions)
            })
            .collect(),
    );
    versioned(&message)
}

type Plan = BTreeMap<String, Vec<TopicPartition>>;

/// Kafka's RangeAssignor: per topic, its subscribers in member-id order each take a
/// contiguous range; the first `partitions % members` take one more.
fn range(
    subscriptions: &BTreeMap<String, Vec<String>>,
    partitions: &BTreeMap<String, i32>,
) -> Plan {
    let mut plan = Plan::new();
    for (topic, &count) in partitions {
        let members: Vec<&String> = subscriptions
            .iter()
            .filter(|(_, topics)| topics.contains(topic))
            .map(|(member, _)| member)
            .collect();
        if members.is_empty() {
            continue;
        }
        let (each, extra) = (count / members.len() as i32, count % members.len() as i32);
        let mut next = 0;
        for (i, member) in members.into_iter().enumerate() {
            let take = each + i32::from((i as i32) < extra);
            let entry = plan.entry(member.clone()).or_default();
            entry.extend((next..next + take).map(|p| (topic.clone(), p)));
            next += take;
        }
    }
    plan
}

/// Kafka's RoundRobinAssignor: every partition in (topic, partition) order to the next member
/// (in member-id order) subscribed to its topic.
fn round_robin(
    subscriptions: &BTreeMap<String, Vec<String>>,
    partitions: &BTreeMap<String, i32>,
) -> Plan {
    let members: Vec<&String> = subscriptions.keys().collect();
    let mut plan = Plan::new();
    let mut turn = 0usize;
    for (topic, &count) in partitions {
        for p in 0..count {
            for _ in 0..members.len() {
                let member = members[turn % members.len()];
                turn += 1;
                if subscriptions[member].contains(topic) {
                    plan.entry(member.clone())
                        .or_default()
                        .push((topic.clone(), p));
                    break;
                }
            }
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subs(members: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        members
            .iter()
            .map(|(m, ts)| (m.to_string(), ts.iter().map(|t| t.to_string()).collect()))
            .collect()
    }

    fn counts(topics: &[(&str, i32)]) -> BTreeMap<String, i32> {
        topics.iter().map(|(t, n)| (t.to_string(), *n)).collect()
    }

    fn names(plan: &Plan, member: &str) -> Vec<String> {
        plan.get(member)
            .map(|ps| ps.iter().map(|(t, p)| format!("{t}-{p}")).collect())
            .unwrap_or_default()
    }

    #[test]
    fn range_gives_contiguous_ranges_the_first_members_one_more() {
        let plan = range(&subs(&[("a", &["t"]), ("b", &["t"])]), &counts(&[("t", 5)]));
        assert_eq!(names(&plan, "a"), ["t-0", "t-1", "t-2"]);
        assert_eq!(names(&plan, "b"), ["t-3", "t-4"]);
        let plan = range(
            &subs(&[("a", &["t", "u"]), ("b", &["u"])]),
            &counts(&[("t", 2), ("u", 2)]),
        );
        assert_eq!(names(&plan, "a"), ["t-0", "t-1", "u-0"]);
        assert_eq!(names(&plan, "b"), ["u-1"]);
    }

    #[test]
    fn round_robin_deals_partitions_in_turn() {
        let plan = round_robin(
            &subs(&[("a", &["t", "u"]), ("b", &["t", "u"])]),
            &counts(&[("t", 3), ("u", 2)]),
        );
        assert_eq!(names(&plan, "a"), ["t-0", "t-2", "u-1"]);
        assert_eq!(names(&plan, "b"), ["t-1", "u-0"]);
    }

    #[test]
    fn subscriptions_and_assignments_round_trip() {
        let bytes = subscription(&["orders".to_string(), "payments".to_string()]);
        assert_eq!(subscribed(&bytes), ["orders", "payments"]);
        let mine = vec![("orders".to_string(), 0), ("orders".to_string(), 2)];
        assert_eq!(groups::assigned_partitions(&assignment_bytes(&mine)), mine);
        assert!(subscribed(b"\x00").is_empty());
    }
}
