//! Share groups (KIP-932) as an admin sees them: ShareGroupDescribe (members and assignments),
//! DescribeShareGroupOffsets (each share-partition's start offset) and AlterShareGroupOffsets,
//! at the group's coordinator; each share-partition's records in flight as its share
//! coordinator keeps them (FindCoordinator key type 2, ReadShareGroupState). Used by `sluice
//! share-group`.

use crate::Result;
use crate::admin::{empty_answer, str_bytes};
use crate::client::Client;
use crate::error::ClientError;
use crate::groups::coordinator_connection;
use base64::Engine;
use kafka_protocol::messages::alter_share_group_offsets_request::{
    AlterShareGroupOffsetsRequestPartition, AlterShareGroupOffsetsRequestTopic,
};
use kafka_protocol::messages::describe_share_group_offsets_request::{
    DescribeShareGroupOffsetsRequestGroup, DescribeShareGroupOffsetsRequestTopic,
};
use kafka_protocol::messages::read_share_group_state_request::{PartitionData, ReadStateData};
use kafka_protocol::messages::{
    AlterShareGroupOffsetsRequest, DescribeShareGroupOffsetsRequest, GroupId,
    ReadShareGroupStateRequest, ShareGroupDescribeRequest, TopicName,
};
use std::collections::BTreeMap;

/// A share group member: its id, client, host and assigned partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareMember {
    pub member_id: String,
    pub client_id: String,
    pub client_host: String,
    pub partitions: Vec<(String, i32)>,
}

/// A share group as ShareGroupDescribe answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareGroup {
    pub state: String,
    pub group_epoch: i32,
    pub members: Vec<ShareMember>,
}

pub async fn describe_share_group(client: &mut Client, group: &str) -> Result<ShareGroup> {
    let request =
        ShareGroupDescribeRequest::default().with_group_ids(vec![GroupId(str_bytes(group))]);
    let (_, response) = coordinator_connection(client, group)
        .await?
        .send(&request, 1)
        .await?;
    let g = response
        .groups
        .into_iter()
        .next()
        .ok_or_else(|| empty_answer("ShareGroupDescribe"))?;
    ClientError::check(g.error_code, g.error_message.as_deref(), || {
        format!("describing share group {group}")
    })?;
    let members = g
        .members
        .into_iter()
        .map(|m| ShareMember {
            member_id: m.member_id.to_string(),
            client_id: m.client_id.to_string(),
            client_host: m.client_host.to_string(),
            partitions: m
                .assignment
                .topic_partitions
                .into_iter()
                .flat_map(|t| {
                    let topic = t.topic_name.to_string();
                    t.partitions.into_iter().map(move |p| (topic.clone(), p))
                })
                .collect(),
        })
        .collect();
    Ok(ShareGroup {
        state: g.group_state.to_string(),
        group_epoch: g.group_epoch,
        members,
    })
}

/// Each share-partition's start offset (-1: no state yet): of `topics`, or with `None` of the
/// topics the group's members subscribed to.
pub async fn share_group_offsets(
    client: &mut Client,
    group: &str,
    topics: Option<&[(String, Vec<i32>)]>,
) -> Result<BTreeMap<(String, i32), i64>> {
    let asked = topics.map(|ts| {
        ts.iter()
            .map(|(t, ps)| {
                DescribeShareGroupOffsetsRequestTopic::default()
                    .with_topic_name(TopicName(str_bytes(t)))
                    .with_partitions(ps.clone())
            })
            .collect()
    });
    let request = DescribeShareGroupOffsetsRequest::default().with_groups(vec![
        DescribeShareGroupOffsetsRequestGroup::default()
            .with_group_id(GroupId(str_bytes(group)))
            .with_topics(asked),
    ]);
    let (_, response) = coordinator_connection(client, group)
        .await?
        .send(&request, 0)
        .await?;
    let g = response
        .groups
        .into_iter()
        .next()
        .ok_or_else(|| empty_answer("DescribeShareGroupOffsets"))?;
    ClientError::check(g.error_code, g.error_message.as_deref(), || {
        format!("describing the offsets of share group {group}")
    })?;
    let mut out = BTreeMap::new();
    for t in g.topics {
        for p in t.partitions {
            let topic = t.topic_name.to_string();
            ClientError::check(p.error_code, p.error_message.as_deref(), || {
                format!("the start offset of {topic}-{}", p.partition_index)
            })?;
            out.insert((topic, p.partition_index), p.start_offset);
        }
    }
    Ok(out)
}

/// Sets the start offsets of `topic`'s share-partitions (`partition -> offset`); the group
/// must have no members.
pub async fn alter_share_group_offsets(
    client: &mut Client,
    group: &str,
    topic: &str,
    offsets: &BTreeMap<i32, i64>,
) -> Result<()> {
    let partitions = offsets
        .iter()
        .map(|(&p, &o)| {
            AlterShareGroupOffsetsRequestPartition::default()
                .with_partition_index(p)
                .with_start_offset(o)
        })
        .collect();
    let request = AlterShareGroupOffsetsRequest::default()
        .with_group_id(GroupId(str_bytes(group)))
        .with_topics(vec![
            AlterShareGroupOffsetsRequestTopic::default()
                .with_topic_name(TopicName(str_bytes(topic)))
                .with_partitions(partitions),
        ]);
    let (_, response) = coordinator_connection(client, group)
        .await?
        .send(&request, 0)
        .await?;
    ClientError::check(
        response.error_code,
        response.error_message.as_deref(),
        || format!("resetting the offsets of share group {group}"),
    )?;
    for t in response.responses {
        for p in t.partitions {
            ClientError::check(p.error_code, p.error_message.as_deref(), || {
                format!("resetting {topic}-{}", p.partition_index)
            })?;
        }
    }
    Ok(())
}

/// What a share-partition's durable state says of the records past its start offset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InFlight {
    /// Delivered and not yet accepted, rejected or archived.
    pub delivered: i64,
    /// Accepted past the start offset.
    pub acknowledged: i64,
    /// Archived (rejected or out of deliveries) past the start offset.
    pub archived: i64,
    /// The highest delivery count among the records in flight (0: none).
    pub max_delivery_count: i16,
}

/// Kafka's ids of the record states in state batches.
const STATE_AVAILABLE: i8 = 0;
const STATE_ACQUIRED: i8 = 1;
const STATE_ACKNOWLEDGED: i8 = 2;
const STATE_ARCHIVED: i8 = 4;
/// FindCoordinator's key type for a share-partition's share coordinator.
const KEY_TYPE_SHARE: i8 = 2;

/// The records in flight of `group`'s share-partitions of topic `topic_id`, as each one's
/// share coordinator last had them written (every acknowledgement, release and lock expiry
/// writes the state; what was acquired since is not in it). `None` where nothing was written.
pub async fn in_flight(
    client: &mut Client,
    group: &str,
    topic_id: uuid::Uuid,
    partitions: &[i32],
) -> Result<BTreeMap<i32, Option<InFlight>>> {
    let mut out = BTreeMap::new();
    for &partition in partitions {
        let key = format!(
            "{group}:{}:{partition}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(topic_id.as_bytes())
        );
        let node = crate::groups::coordinator_of_key(client, &key, KEY_TYPE_SHARE).await?;
        let request = ReadShareGroupStateRequest::default()
            .with_group_id(str_bytes(group))
            .with_topics(vec![
                ReadStateData::default()
                    .with_topic_id(topic_id)
                    .with_partitions(vec![
                        PartitionData::default()
                            .with_partition(partition)
                            .with_leader_epoch(-1),
                    ]),
            ]);
        let (_, response) = client.node(node).await?.send(&request, 0).await?;
        let p = response
            .results
            .into_iter()
            .flat_map(|r| r.partitions)
            .find(|p| p.partition == partition)
            .ok_or_else(|| empty_answer("ReadShareGroupState"))?;
        ClientError::check(p.error_code, p.error_message.as_deref(), || {
            format!("reading the share state of partition {partition}")
        })?;
        // A state epoch of -1: nothing written yet.
        let summary = (p.state_epoch >= 0).then(|| summarize(p.start_offset, &p.state_batches));
        out.insert(partition, summary);
    }
    Ok(out)
}

fn summarize(
    start_offset: i64,
    batches: &[kafka_protocol::messages::read_share_group_state_response::StateBatch],
) -> InFlight {
    let mut summary = InFlight::default();
    for b in batches {
        let first = b.first_offset.max(start_offset);
        if b.last_offset < first {
            continue;
        }
        let count = b.last_offset - first + 1;
        match b.delivery_state {
            STATE_ACKNOWLEDGED => summary.acknowledged += count,
            STATE_ARCHIVED => summary.archived += count,
            STATE_AVAILABLE | STATE_ACQUIRED if b.delivery_count > 0 => {
                summary.delivered += count;
                summary.max_delivery_count = summary.max_delivery_count.max(b.delivery_count);
            }
            _ => {}
        }
    }
    summary
}
