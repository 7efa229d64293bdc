//! Share groups (KIP-932) as an admin sees them: ShareGroupDescribe (members and assignments),
//! DescribeShareGroupOffsets (each share-partition's start offset) and AlterShareGroupOffsets,
//! at the group's coordinator. Used by `sluice share-group`.

use crate::Result;
use crate::admin::{empty_answer, str_bytes};
use crate::client::Client;
use crate::error::ClientError;
use crate::groups::coordinator_connection;
use kafka_protocol::messages::alter_share_group_offsets_request::{
    AlterShareGroupOffsetsRequestPartition, AlterShareGroupOffsetsRequestTopic,
};
use kafka_protocol::messages::describe_share_group_offsets_request::{
    DescribeShareGroupOffsetsRequestGroup, DescribeShareGroupOffsetsRequestTopic,
};
use kafka_protocol::messages::{
    AlterShareGroupOffsetsRequest, DescribeShareGroupOffsetsRequest, GroupId,
    ShareGroupDescribeRequest, TopicName,
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
