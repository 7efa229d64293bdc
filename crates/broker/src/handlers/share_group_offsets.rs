//! DescribeShareGroupOffsets, AlterShareGroupOffsets and DeleteShareGroupOffsets (v0), at the
//! share group's
//! coordinator: each share-partition's start offset, read from and written to its share
//! coordinator (`shares::persist`).
//!
//! Describe answers the partitions asked, or with none asked, every partition of the topics the
//! group's members subscribed to since its coordinator loaded it (membership is in memory, so
//! after the coordinator moves that is what its members subscribe to now); -1 where no state
//! was written. Alter needs a share group without members (NON_EMPTY_GROUP) or no group of
//! that id at all; it writes each partition's state afresh at the next state epoch, nothing in
//! flight, so the partitions' leaders load it anew at their members' next share session.
//! Delete, under the same condition, deletes the state of every partition of the topics named
//! (a member reading them again starts at `share.auto.offset.reset`); DeleteGroups of a share
//! group deletes its state on every topic (`delete_states`). A request naming more than
//! `SHARE_OFFSETS_PARTITIONS_MAX` partitions (a topic without partitions counts one) is refused
//! with INVALID_REQUEST before anything is read or written.

use crate::error::group_code;
use crate::server::Broker;
use crate::shares::{persist, share_key};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_share_group_offsets_response::{
    AlterShareGroupOffsetsResponsePartition, AlterShareGroupOffsetsResponseTopic,
};
use kafka_protocol::messages::delete_share_group_offsets_response::DeleteShareGroupOffsetsResponseTopic;
use kafka_protocol::messages::describe_share_group_offsets_response::{
    DescribeShareGroupOffsetsResponseGroup, DescribeShareGroupOffsetsResponsePartition,
    DescribeShareGroupOffsetsResponseTopic,
};
use kafka_protocol::messages::{
    AlterShareGroupOffsetsRequest, AlterShareGroupOffsetsResponse, DeleteShareGroupOffsetsRequest,
    DeleteShareGroupOffsetsResponse, DescribeShareGroupOffsetsRequest,
    DescribeShareGroupOffsetsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use sluice_group::GroupError;
use sluice_share::ShareStateValue;
use sluice_types::limits::SHARE_OFFSETS_PARTITIONS_MAX;
use std::future::Future;
use std::sync::Arc;

/// The answer to a request naming more than `SHARE_OFFSETS_PARTITIONS_MAX` partitions.
fn too_many() -> StrBytes {
    StrBytes::from_string(format!(
        "a request may name at most {SHARE_OFFSETS_PARTITIONS_MAX} partitions"
    ))
}

/// The state epoch of a share-partition with no state yet, once reset.
const FIRST_STATE_EPOCH: i32 = 1;

pub(crate) fn describe(
    broker: &Arc<Broker>,
    request: DescribeShareGroupOffsetsRequest,
    _version: i16,
) -> impl Future<Output = Option<DescribeShareGroupOffsetsResponse>> + Send + 'static + use<> {
    let broker = broker.clone();
    async move {
        let named: usize = request
            .groups
            .iter()
            .flat_map(|g| g.topics.iter().flatten())
            .map(|t| t.partitions.len().max(1))
            .sum();
        let mut groups = Vec::with_capacity(request.groups.len());
        for g in super::first_of_each(request.groups, |g| g.group_id.clone()) {
            groups.push(if named > SHARE_OFFSETS_PARTITIONS_MAX {
                DescribeShareGroupOffsetsResponseGroup::default()
                    .with_group_id(g.group_id)
                    .with_error_code(ResponseError::InvalidRequest.code())
                    .with_error_message(Some(too_many()))
            } else {
                describe_group(&broker, g).await
            });
        }
        Some(DescribeShareGroupOffsetsResponse::default().with_groups(groups))
    }
}

async fn describe_group(
    broker: &Broker,
    g: kafka_protocol::messages::describe_share_group_offsets_request::DescribeShareGroupOffsetsRequestGroup,
) -> DescribeShareGroupOffsetsResponseGroup {
    let group = g.group_id.to_string();
    let base = DescribeShareGroupOffsetsResponseGroup::default().with_group_id(g.group_id);
    let known = broker
        .groups()
        .read(&group, |c| c.share_group_topics(&group));
    let seen = match known {
        Ok(Ok(Some((_, topics)))) => topics,
        Ok(Ok(None)) | Ok(Err(GroupError::GroupIdNotFound)) if g.topics.is_none() => {
            return base.with_error_code(ResponseError::GroupIdNotFound.code());
        }
        Ok(_) => Vec::new(),
        Err(e) => return base.with_error_code(group_code(Some(&e))),
    };
    let image = broker.published_image();
    let asked: Vec<(String, Vec<i32>)> = match g.topics {
        Some(topics) => topics
            .into_iter()
            .map(|t| (t.topic_name.to_string(), t.partitions))
            .collect(),
        None => seen
            .into_iter()
            .filter_map(|name| {
                let partitions = image.topic(&name)?.partitions.keys().copied().collect();
                Some((name, partitions))
            })
            .collect(),
    };
    let mut topics = Vec::with_capacity(asked.len());
    for (name, partitions) in asked {
        let topic = image.topic(&name);
        let topic_id = topic.map(|t| t.topic_id).unwrap_or_default();
        let mut out = Vec::with_capacity(partitions.len());
        for partition in partitions {
            let p = DescribeShareGroupOffsetsResponsePartition::default()
                .with_partition_index(partition)
                .with_leader_epoch(-1);
            let read = match topic {
                Some(t) if t.partitions.contains_key(&partition) => {
                    persist::read(broker, &share_key(&group, topic_id, partition)).await
                }
                _ => Err(ResponseError::UnknownTopicOrPartition),
            };
            out.push(match read {
                Ok(state) => p.with_start_offset(state.map_or(-1, |s| s.start_offset)),
                Err(e) => p.with_start_offset(-1).with_error_code(e.code()),
            });
        }
        topics.push(
            DescribeShareGroupOffsetsResponseTopic::default()
                .with_topic_name(TopicName(StrBytes::from_string(name)))
                .with_topic_id(topic_id)
                .with_partitions(out),
        );
    }
    base.with_topics(topics)
}

pub(crate) fn alter(
    broker: &Arc<Broker>,
    request: AlterShareGroupOffsetsRequest,
    _version: i16,
) -> impl Future<Output = Option<AlterShareGroupOffsetsResponse>> + Send + 'static + use<> {
    let broker = broker.clone();
    async move { Some(alter_group(&broker, request).await) }
}

/// Whether `group`'s offsets may be altered or deleted: a share group without members, or
/// no group of that id; else the error code.
fn check_idle(broker: &Broker, group: &str) -> Result<(), i16> {
    match broker.groups().read(group, |c| c.share_group_topics(group)) {
        Err(e) | Ok(Err(e)) => Err(group_code(Some(&e))),
        Ok(Ok(Some((false, _)))) => Err(ResponseError::NonEmptyGroup.code()),
        Ok(Ok(_)) => Ok(()),
    }
}

async fn alter_group(
    broker: &Broker,
    request: AlterShareGroupOffsetsRequest,
) -> AlterShareGroupOffsetsResponse {
    let group = request.group_id.to_string();
    let named: usize = request
        .topics
        .iter()
        .map(|t| t.partitions.len().max(1))
        .sum();
    if named > SHARE_OFFSETS_PARTITIONS_MAX {
        return AlterShareGroupOffsetsResponse::default()
            .with_error_code(ResponseError::InvalidRequest.code())
            .with_error_message(Some(too_many()));
    }
    if let Err(code) = check_idle(broker, &group) {
        return AlterShareGroupOffsetsResponse::default().with_error_code(code);
    }
    let image = broker.published_image();
    let mut responses = Vec::with_capacity(request.topics.len());
    for t in request.topics {
        let topic = image.topic(t.topic_name.as_str());
        let topic_id = topic.map(|t| t.topic_id).unwrap_or_default();
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            let written = match topic {
                Some(tp) if tp.partitions.contains_key(&p.partition_index) => {
                    let key = share_key(&group, topic_id, p.partition_index);
                    reset(broker, &key, p.start_offset).await
                }
                _ => Err(ResponseError::UnknownTopicOrPartition),
            };
            partitions.push(
                AlterShareGroupOffsetsResponsePartition::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(written.err().map_or(0, |e| e.code())),
            );
        }
        responses.push(
            AlterShareGroupOffsetsResponseTopic::default()
                .with_topic_name(t.topic_name)
                .with_topic_id(topic_id)
                .with_partitions(partitions),
        );
    }
    AlterShareGroupOffsetsResponse::default().with_responses(responses)
}

/// Writes a share-partition's state afresh at `start_offset`, at the next state epoch.
async fn reset(
    broker: &Broker,
    key: &sluice_share::ShareStateKey,
    start_offset: i64,
) -> Result<(), ResponseError> {
    if start_offset < 0 {
        return Err(ResponseError::InvalidRequest);
    }
    let held = persist::read(broker, key).await?;
    let value = ShareStateValue {
        state_epoch: held.map_or(FIRST_STATE_EPOCH, |s| s.state_epoch.saturating_add(1)),
        leader_epoch: -1,
        start_offset,
        write_time_ms: crate::now_ms(),
        batches: Vec::new(),
    };
    persist::write(broker, key, &value).await
}

pub(crate) fn delete(
    broker: &Arc<Broker>,
    request: DeleteShareGroupOffsetsRequest,
    _version: i16,
) -> impl Future<Output = Option<DeleteShareGroupOffsetsResponse>> + Send + 'static + use<> {
    let broker = broker.clone();
    async move {
        let group = request.group_id.to_string();
        if request.topics.len() > SHARE_OFFSETS_PARTITIONS_MAX {
            return Some(
                DeleteShareGroupOffsetsResponse::default()
                    .with_error_code(ResponseError::InvalidRequest.code())
                    .with_error_message(Some(too_many())),
            );
        }
        if let Err(code) = check_idle(&broker, &group) {
            return Some(DeleteShareGroupOffsetsResponse::default().with_error_code(code));
        }
        let image = broker.published_image();
        let mut responses = Vec::with_capacity(request.topics.len());
        // A topic named twice is deleted once.
        for t in super::first_of_each(request.topics, |t| t.topic_name.clone()) {
            let topic = image.topic(t.topic_name.as_str());
            let deleted = match topic {
                Some(topic) => delete_topic_states(&broker, &group, topic).await,
                None => Err(ResponseError::UnknownTopicOrPartition),
            };
            responses.push(
                DeleteShareGroupOffsetsResponseTopic::default()
                    .with_topic_id(topic.map(|t| t.topic_id).unwrap_or_default())
                    .with_topic_name(t.topic_name)
                    .with_error_code(deleted.err().map_or(0, |e| e.code())),
            );
        }
        Some(DeleteShareGroupOffsetsResponse::default().with_responses(responses))
    }
}

/// Deletes `group`'s state of every partition of `topic`.
async fn delete_topic_states(
    broker: &Broker,
    group: &str,
    topic: &sluice_controller::TopicImage,
) -> Result<(), ResponseError> {
    for &partition in topic.partitions.keys() {
        persist::delete(broker, &share_key(group, topic.topic_id, partition)).await?;
    }
    Ok(())
}

/// Deletes `group`'s share-partition states on every topic (DeleteGroups of a share group:
/// its coordinator does not know every topic it ever read). A state that cannot be deleted is
/// logged; the group is gone either way.
pub(crate) async fn delete_states(broker: &Broker, group: &str) {
    let image = broker.published_image();
    if image
        .topic(crate::share_coordinators::SHARE_STATE_TOPIC)
        .is_none()
    {
        return;
    }
    for topic in image.topics.values() {
        if crate::groups::is_internal(&topic.name) {
            continue;
        }
        if let Err(e) = delete_topic_states(broker, group, topic).await {
            tracing::warn!(group, topic = %topic.name, error = ?e, "a deleted share group's state was not deleted");
        }
    }
}
