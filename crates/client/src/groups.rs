//! Consumer-group requests: finding the coordinator, listing and describing groups, committed
//! offsets (fetch, commit), deleting groups, and the KIP-848 member heartbeat.

use crate::admin::{empty_answer, str_bytes, topic_name};
use crate::client::Client;
use crate::codes::{NON_EMPTY_GROUP, UNSTABLE_OFFSET_COMMIT};
use crate::connection::Connection;
use crate::error::{ClientError, Result};
use bytes::Buf;
use kafka_protocol::messages::{
    ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, ConsumerProtocolAssignment,
    DeleteGroupsRequest, DescribeGroupsRequest, FindCoordinatorRequest, GroupId, ListGroupsRequest,
    OffsetCommitRequest, OffsetFetchRequest,
    consumer_group_heartbeat_request::TopicPartitions,
    describe_groups_response::DescribedGroup,
    offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic},
    offset_fetch_request::OffsetFetchRequestTopic,
};
use kafka_protocol::protocol::Decodable;
use std::collections::BTreeMap;
use std::time::Duration;

/// FindCoordinator's key type for a group.
const KEY_TYPE_GROUP: i8 = 0;

/// The node id of `group`'s coordinator.
pub async fn coordinator(client: &mut Client, group: &str) -> Result<i32> {
    coordinator_of_key(client, group, KEY_TYPE_GROUP).await
}

/// The node id of the coordinator of `key` (FindCoordinator's key type: 0 a group, 1 a
/// transactional id, 2 a share-partition, which needs v6). From v4 on, keys go in a list.
pub(crate) async fn coordinator_of_key(
    client: &mut Client,
    key: &str,
    key_type: i8,
) -> Result<i32> {
    let connection = client.any();
    let batched = connection
        .version_for::<FindCoordinatorRequest>(6)
        .is_some_and(|v| v >= 4);
    let request = FindCoordinatorRequest::default().with_key_type(key_type);
    let request = if batched {
        request.with_coordinator_keys(vec![str_bytes(key)])
    } else {
        request.with_key(str_bytes(key))
    };
    let (_, response) = connection.send(&request, 6).await?;
    let (code, message, node) = if batched {
        let c = response
            .coordinators
            .into_iter()
            .next()
            .ok_or_else(|| crate::admin::empty_answer("FindCoordinator"))?;
        (c.error_code, c.error_message, c.node_id.0)
    } else {
        (
            response.error_code,
            response.error_message,
            response.node_id.0,
        )
    };
    ClientError::check(code, message.as_deref(), || {
        format!("finding the coordinator of {key}")
    })?;
    if node < 0 {
        return Err(crate::admin::empty_answer("FindCoordinator"));
    }
    Ok(node)
}

pub async fn coordinator_connection<'a>(
    client: &'a mut Client,
    group: &str,
) -> Result<&'a mut Connection> {
    let node = coordinator(client, group).await?;
    client.node(node).await
}

/// One group as ListGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedGroup {
    pub group_id: String,
    pub protocol_type: String,
    pub state: String,
    /// `classic` or `consumer` (KIP-848); empty from brokers that do not say.
    pub group_type: String,
}

/// Every group on every broker of the cluster.
pub async fn list_groups(client: &mut Client) -> Result<Vec<ListedGroup>> {
    let metadata = client.metadata(Some(&[]), false).await?;
    let mut groups = Vec::new();
    for broker in metadata.brokers {
        let connection = client.node(broker.node_id.0).await?;
        let (_, response) = connection.send(&ListGroupsRequest::default(), 5).await?;
        ClientError::check(response.error_code, None, || "listing groups".to_string())?;
        groups.extend(response.groups.into_iter().map(|g| ListedGroup {
            group_id: g.group_id.to_string(),
            protocol_type: g.protocol_type.to_string(),
            state: g.group_state.to_string(),
            group_type: g.group_type.to_string(),
        }));
    }
    groups.sort_by(|a, b| a.group_id.cmp(&b.group_id));
    Ok(groups)
}

pub async fn describe_group(client: &mut Client, group: &str) -> Result<DescribedGroup> {
    let request = DescribeGroupsRequest::default().with_groups(vec![GroupId(str_bytes(group))]);
    // v6 answers GROUP_ID_NOT_FOUND for a group that does not exist (older versions: "Dead").
    let (_, response) = coordinator_connection(client, group)
        .await?
        .send(&request, 6)
        .await?;
    let described = response
        .groups
        .into_iter()
        .next()
        .ok_or_else(|| empty_answer("DescribeGroups"))?;
    ClientError::check(
        described.error_code,
        described.error_message.as_deref(),
        || format!("describing group {group}"),
    )?;
    Ok(described)
}

/// The partitions in a classic consumer member's assignment bytes (ConsumerProtocol
/// Assignment: a version, then topics with their partitions); empty when there are none or
/// they do not parse.
pub fn assigned_partitions(member_assignment: &[u8]) -> Vec<(String, i32)> {
    let mut buf = bytes::Bytes::copy_from_slice(member_assignment);
    if buf.remaining() < 2 {
        return Vec::new();
    }
    let version = buf.get_i16();
    let Ok(assignment) = ConsumerProtocolAssignment::decode(&mut buf, version) else {
        return Vec::new();
    };
    assignment
        .assigned_partitions
        .into_iter()
        .flat_map(|t| {
            let topic = t.topic.to_string();
            t.partitions.into_iter().map(move |p| (topic.clone(), p))
        })
        .collect()
}

/// Committed offsets of `group`: (topic, partition) -> offset. `topics` narrows the question
/// (`None`: everything the group committed).
pub async fn committed_offsets(
    client: &mut Client,
    group: &str,
    topics: Option<&[(String, Vec<i32>)]>,
) -> Result<BTreeMap<(String, i32), i64>> {
    fetch_committed(client, group, topics, false).await
}

/// How often, and how far apart, a question meeting an open transaction's offsets is asked
/// again (the transaction ends within its timeout; a restarted producer ends it at once).
const UNSTABLE_RETRIES_MAX: u32 = 600;
const UNSTABLE_BACKOFF: Duration = Duration::from_millis(100);

/// As `committed_offsets`, but only offsets no open transaction may still change (KIP-447's
/// `require_stable`): while one does, the question is asked again. What a transactional
/// reader (a view's engine) resumes from.
pub async fn stable_committed_offsets(
    client: &mut Client,
    group: &str,
) -> Result<BTreeMap<(String, i32), i64>> {
    let mut tries = 0;
    loop {
        match fetch_committed(client, group, None, true).await {
            Err(e) if e.code() == Some(UNSTABLE_OFFSET_COMMIT) && tries < UNSTABLE_RETRIES_MAX => {
                tries += 1;
                tokio::time::sleep(UNSTABLE_BACKOFF).await;
            }
            other => return other,
        }
    }
}

async fn fetch_committed(
    client: &mut Client,
    group: &str,
    topics: Option<&[(String, Vec<i32>)]>,
    require_stable: bool,
) -> Result<BTreeMap<(String, i32), i64>> {
    let request = OffsetFetchRequest::default()
        .with_group_id(GroupId(str_bytes(group)))
        .with_require_stable(require_stable)
        .with_topics(topics.map(|ts| {
            ts.iter()
                .map(|(name, partitions)| {
                    OffsetFetchRequestTopic::default()
                        .with_name(topic_name(name))
                        .with_partition_indexes(partitions.clone())
                })
                .collect()
        }));
    let (_, response) = coordinator_connection(client, group)
        .await?
        .send(&request, 7)
        .await?;
    ClientError::check(response.error_code, None, || {
        format!("fetching the committed offsets of group {group}")
    })?;
    let mut out = BTreeMap::new();
    for t in response.topics {
        for p in t.partitions {
            ClientError::check(p.error_code, None, || {
                format!(
                    "fetching the committed offset of {}-{}",
                    t.name.0, p.partition_index
                )
            })?;
            if p.committed_offset >= 0 {
                out.insert((t.name.to_string(), p.partition_index), p.committed_offset);
            }
        }
    }
    Ok(out)
}

/// Who commits: a member of the group (its id and generation or KIP-848 member epoch), or an
/// admin tool committing for an empty group (`Member::admin()`).
#[derive(Debug, Clone)]
pub struct Member {
    pub member_id: String,
    pub epoch: i32,
}

impl Member {
    pub fn admin() -> Member {
        Member {
            member_id: String::new(),
            epoch: -1,
        }
    }
}

/// Commits `offsets` (the next offset to read, per topic and partition) for `group`.
pub async fn commit_offsets(
    connection: &mut Connection,
    group: &str,
    member: &Member,
    offsets: &BTreeMap<(String, i32), i64>,
) -> Result<()> {
    let mut by_topic: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
    for ((topic, partition), offset) in offsets {
        by_topic.entry(topic).or_default().push(
            OffsetCommitRequestPartition::default()
                .with_partition_index(*partition)
                .with_committed_offset(*offset)
                .with_committed_leader_epoch(-1),
        );
    }
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(str_bytes(group)))
        .with_generation_id_or_member_epoch(member.epoch)
        .with_member_id(str_bytes(&member.member_id))
        .with_topics(
            by_topic
                .into_iter()
                .map(|(name, partitions)| {
                    OffsetCommitRequestTopic::default()
                        .with_name(topic_name(name))
                        .with_partitions(partitions)
                })
                .collect(),
        );
    let (_, response) = connection.send(&request, 9).await?;
    for t in response.topics {
        for p in t.partitions {
            ClientError::check(p.error_code, None, || {
                format!(
                    "committing the offset of {}-{} for group {group}",
                    t.name.0, p.partition_index
                )
            })?;
        }
    }
    Ok(())
}

pub async fn delete_group(client: &mut Client, group: &str) -> Result<()> {
    let request = DeleteGroupsRequest::default().with_groups_names(vec![GroupId(str_bytes(group))]);
    let (_, response) = coordinator_connection(client, group)
        .await?
        .send(&request, 2)
        .await?;
    let result = response
        .results
        .first()
        .ok_or_else(|| empty_answer("DeleteGroups"))?;
    ClientError::check(result.error_code, None, || {
        format!("deleting group {group}")
    })
}

/// One KIP-848 heartbeat (ConsumerGroupHeartbeat): joins with epoch 0, leaves with -1.
pub struct Heartbeat<'a> {
    pub group: &'a str,
    pub member_id: &'a str,
    pub member_epoch: i32,
    /// Topics to subscribe to (sent when joining; `None` afterwards means unchanged).
    pub topics: Option<&'a [String]>,
    /// Partitions the member owns now, by topic id (`None`: unchanged).
    pub owned: Option<Vec<(uuid::Uuid, Vec<i32>)>>,
}

/// How long a KIP-848 member may take to give up revoked partitions.
const REBALANCE_TIMEOUT_MS: i32 = 60_000;

/// Sends one heartbeat; a non-zero error code in the answer is the caller's to handle
/// (FENCED_MEMBER_EPOCH and UNKNOWN_MEMBER_ID mean: join again).
pub async fn consumer_group_heartbeat(
    connection: &mut Connection,
    heartbeat: Heartbeat<'_>,
) -> Result<ConsumerGroupHeartbeatResponse> {
    let request = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(str_bytes(heartbeat.group)))
        .with_member_id(str_bytes(heartbeat.member_id))
        .with_member_epoch(heartbeat.member_epoch)
        .with_rebalance_timeout_ms(if heartbeat.member_epoch == 0 {
            REBALANCE_TIMEOUT_MS
        } else {
            -1
        })
        .with_subscribed_topic_names(
            heartbeat
                .topics
                .map(|ts| ts.iter().map(|t| topic_name(t)).collect()),
        )
        .with_topic_partitions(heartbeat.owned.map(|owned| {
            owned
                .into_iter()
                .map(|(id, partitions)| {
                    TopicPartitions::default()
                        .with_topic_id(id)
                        .with_partitions(partitions)
                })
                .collect()
        }));
    let (_, response) = connection.send(&request, 1).await?;
    Ok(response)
}

/// A member of a described group, with the partitions assigned to it.
#[derive(Debug, Clone)]
pub struct MemberReport {
    pub member_id: String,
    pub client_id: String,
    pub client_host: String,
    pub partitions: Vec<(String, i32)>,
}

/// One partition a group committed or owns: where the group stands and how far behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLag {
    pub topic: String,
    pub partition: i32,
    pub committed: Option<i64>,
    pub end_offset: i64,
    pub owner: Option<String>,
}

impl PartitionLag {
    /// Log end offset minus committed offset; `None` when nothing is committed.
    pub fn lag(&self) -> Option<i64> {
        self.committed.map(|c| (self.end_offset - c).max(0))
    }
}

/// A group as `sluice group describe` and `GET /v1/groups/{group}` show it.
#[derive(Debug, Clone)]
pub struct GroupReport {
    pub group_id: String,
    pub state: String,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<MemberReport>,
    pub partitions: Vec<PartitionLag>,
}

impl GroupReport {
    /// The report as JSON, in the one shape the HTTP API (`GET /v1/groups/{group}`) and
    /// `sluice group describe --format json` share.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::json;
        let members: Vec<serde_json::Value> = self
            .members
            .iter()
            .map(|m| {
                let assignment: Vec<serde_json::Value> = m
                    .partitions
                    .iter()
                    .map(|(t, p)| json!({"topic": t, "partition": p}))
                    .collect();
                json!({
                    "member_id": m.member_id,
                    "client_id": m.client_id,
                    "host": m.client_host,
                    "assignment": assignment,
                })
            })
            .collect();
        let partitions: Vec<serde_json::Value> = self
            .partitions
            .iter()
            .map(|p| {
                json!({
                    "topic": p.topic,
                    "partition": p.partition,
                    "committed_offset": p.committed,
                    "end_offset": p.end_offset,
                    "lag": p.lag(),
                    "member_id": p.owner,
                })
            })
            .collect();
        json!({
            "group": self.group_id,
            "state": self.state,
            "protocol_type": self.protocol_type,
            "protocol": self.protocol,
            "members": members,
            "partitions": partitions,
        })
    }
}

/// Describes `group` with its members, and the lag of every partition it committed or owns.
pub async fn report(client: &mut Client, group: &str) -> Result<GroupReport> {
    let described = describe_group(client, group).await?;
    let committed = committed_offsets(client, group, None).await?;
    let members: Vec<MemberReport> = described
        .members
        .iter()
        .map(|m| MemberReport {
            member_id: m.member_id.to_string(),
            client_id: m.client_id.to_string(),
            client_host: m.client_host.to_string(),
            partitions: assigned_partitions(&m.member_assignment),
        })
        .collect();
    let mut owners: BTreeMap<(String, i32), String> = BTreeMap::new();
    for m in &members {
        for tp in &m.partitions {
            owners.insert(tp.clone(), m.member_id.clone());
        }
    }
    let keys: std::collections::BTreeSet<(String, i32)> =
        committed.keys().chain(owners.keys()).cloned().collect();
    let mut partitions = Vec::with_capacity(keys.len());
    for (topic, partition) in keys {
        let end_offset =
            crate::data::list_offset(client, &topic, partition, crate::data::LATEST).await?;
        partitions.push(PartitionLag {
            committed: committed.get(&(topic.clone(), partition)).copied(),
            owner: owners.get(&(topic.clone(), partition)).cloned(),
            topic,
            partition,
            end_offset,
        });
    }
    Ok(GroupReport {
        group_id: group.to_string(),
        state: described.group_state.to_string(),
        protocol_type: described.protocol_type.to_string(),
        protocol: described.protocol_data.to_string(),
        members,
        partitions,
    })
}

/// One partition of a group's offset reset: where the group stands and where it would go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResetRow {
    pub partition: i32,
    /// The committed offset now (`None`: nothing committed).
    pub current: Option<i64>,
    pub new: i64,
}

/// Where `to` would put `group` in each partition of `topic` (as Kafka's
/// `kafka-consumer-groups --reset-offsets`): an explicit offset outside the log moves to its
/// nearest end.
pub async fn plan_reset(
    client: &mut Client,
    group: &str,
    topic: &str,
    to: crate::position::Start,
) -> Result<Vec<ResetRow>> {
    let partitions = client.partitions(topic, false).await?;
    let current = committed_offsets(
        client,
        group,
        Some(&[(topic.to_string(), partitions.clone())]),
    )
    .await?;
    let mut rows = Vec::with_capacity(partitions.len());
    for p in partitions {
        let new = crate::position::reset_offset(client, topic, p, to).await?;
        rows.push(ResetRow {
            partition: p,
            current: current.get(&(topic.to_string(), p)).copied(),
            new,
        });
    }
    Ok(rows)
}

/// Commits a planned reset, as an admin: only for a group with no active members (Kafka's
/// rule), else NON_EMPTY_GROUP.
pub async fn execute_reset(
    client: &mut Client,
    group: &str,
    topic: &str,
    plan: &[ResetRow],
) -> Result<()> {
    let described = describe_group(client, group).await?;
    if !described.members.is_empty() {
        return Err(ClientError::Kafka {
            context: format!("resetting the offsets of group {group}"),
            code: NON_EMPTY_GROUP,
            name: crate::error::error_name(NON_EMPTY_GROUP),
            message: Some(format!(
                "the group has {} active member(s) (state {}); stop its consumers first",
                described.members.len(),
                described.group_state
            )),
        });
    }
    let offsets: BTreeMap<(String, i32), i64> = plan
        .iter()
        .map(|r| ((topic.to_string(), r.partition), r.new))
        .collect();
    let connection = coordinator_connection(client, group).await?;
    commit_offsets(connection, group, &Member::admin(), &offsets).await
}
