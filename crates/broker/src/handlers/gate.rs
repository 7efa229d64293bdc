//! Authorization of the requests whose answer, when refused, is the whole response: each
//! function here returns the refusal Kafka gives, or `None` to let the handler run
//! (`gated`). The rights checked are Kafka's (`KafkaApis`): a group's READ for its members'
//! requests, a transactional id's WRITE for a transaction's, the cluster's CLUSTER_ACTION for
//! what only brokers send, its DESCRIBE or ALTER for cluster-wide admin requests.
//!
//! Requests refused item by item (topics, partitions, groups) are checked in their handlers.

use crate::authorization::Caller;
use crate::server::Broker;
use futures::future::Either;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use sluice_acl::{Operation, ResourceType};
use std::future::{Future, Ready};

/// `refusal` when there is one, else the handler's answer.
pub(crate) fn gated<Resp, F: Future<Output = Option<Resp>>>(
    refusal: Option<Resp>,
    run: impl FnOnce() -> F,
) -> Either<Ready<Option<Resp>>, F> {
    match refusal {
        Some(response) => Either::Left(std::future::ready(Some(response))),
        None => Either::Right(run()),
    }
}

const GROUP_REFUSED: i16 = ResponseError::GroupAuthorizationFailed.code();
const TXN_REFUSED: i16 = ResponseError::TransactionalIdAuthorizationFailed.code();
const CLUSTER_REFUSED: i16 = ResponseError::ClusterAuthorizationFailed.code();

fn group_read(b: &Broker, c: &Caller, group: &str) -> bool {
    b.allows(c, Operation::Read, ResourceType::Group, group)
}

fn txn_write(b: &Broker, c: &Caller, id: &str) -> bool {
    b.allows(c, Operation::Write, ResourceType::TransactionalId, id)
}

pub(crate) fn join_group(
    b: &Broker,
    c: &Caller,
    r: &JoinGroupRequest,
) -> Option<JoinGroupResponse> {
    (!group_read(b, c, &r.group_id)).then(|| {
        JoinGroupResponse::default()
            .with_error_code(GROUP_REFUSED)
            .with_generation_id(-1)
            .with_member_id(r.member_id.clone())
    })
}

pub(crate) fn sync_group(
    b: &Broker,
    c: &Caller,
    r: &SyncGroupRequest,
) -> Option<SyncGroupResponse> {
    (!group_read(b, c, &r.group_id))
        .then(|| SyncGroupResponse::default().with_error_code(GROUP_REFUSED))
}

pub(crate) fn heartbeat(b: &Broker, c: &Caller, r: &HeartbeatRequest) -> Option<HeartbeatResponse> {
    (!group_read(b, c, &r.group_id))
        .then(|| HeartbeatResponse::default().with_error_code(GROUP_REFUSED))
}

pub(crate) fn leave_group(
    b: &Broker,
    c: &Caller,
    r: &LeaveGroupRequest,
) -> Option<LeaveGroupResponse> {
    (!group_read(b, c, &r.group_id))
        .then(|| LeaveGroupResponse::default().with_error_code(GROUP_REFUSED))
}

/// The subscribed topics the caller may not describe, if any (Kafka refuses the heartbeat).
fn undescribable<'t>(b: &Broker, c: &Caller, topics: Option<&'t Vec<TopicName>>) -> Vec<&'t str> {
    topics
        .into_iter()
        .flatten()
        .map(|t| t.as_str())
        .filter(|t| !b.allows(c, Operation::Describe, ResourceType::Topic, t))
        .collect()
}

/// A group heartbeat's refusal: READ on the group, DESCRIBE on every subscribed topic.
fn heartbeat_refusal(
    b: &Broker,
    c: &Caller,
    group: &str,
    topics: Option<&Vec<TopicName>>,
) -> Option<(i16, StrBytes)> {
    if !group_read(b, c, group) {
        let message = "not allowed READ on the group";
        return Some((GROUP_REFUSED, StrBytes::from_static_str(message)));
    }
    let topics = undescribable(b, c, topics);
    (!topics.is_empty()).then(|| {
        let message = format!("not allowed DESCRIBE on {}", topics.join(", "));
        let code = ResponseError::TopicAuthorizationFailed.code();
        (code, StrBytes::from_string(message))
    })
}

pub(crate) fn consumer_group_heartbeat(
    b: &Broker,
    c: &Caller,
    r: &ConsumerGroupHeartbeatRequest,
) -> Option<ConsumerGroupHeartbeatResponse> {
    let topics = r.subscribed_topic_names.as_ref();
    heartbeat_refusal(b, c, &r.group_id, topics).map(|(code, message)| {
        ConsumerGroupHeartbeatResponse::default()
            .with_error_code(code)
            .with_error_message(Some(message))
    })
}

pub(crate) fn share_group_heartbeat(
    b: &Broker,
    c: &Caller,
    r: &ShareGroupHeartbeatRequest,
) -> Option<ShareGroupHeartbeatResponse> {
    let topics = r.subscribed_topic_names.as_ref();
    heartbeat_refusal(b, c, &r.group_id, topics).map(|(code, message)| {
        ShareGroupHeartbeatResponse::default()
            .with_error_code(code)
            .with_error_message(Some(message))
    })
}

pub(crate) fn offset_delete(
    b: &Broker,
    c: &Caller,
    r: &OffsetDeleteRequest,
) -> Option<OffsetDeleteResponse> {
    (!b.allows(c, Operation::Delete, ResourceType::Group, &r.group_id))
        .then(|| OffsetDeleteResponse::default().with_error_code(GROUP_REFUSED))
}

/// A transactional producer needs WRITE on its id; an idempotent one IDEMPOTENT_WRITE on the
/// cluster or WRITE on some topic (KIP-679).
pub(crate) fn init_producer_id(
    b: &Broker,
    c: &Caller,
    r: &InitProducerIdRequest,
) -> Option<InitProducerIdResponse> {
    let refused = |code: i16| {
        InitProducerIdResponse::default()
            .with_error_code(code)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    match &r.transactional_id {
        Some(id) => (!txn_write(b, c, id)).then(|| refused(TXN_REFUSED)),
        None => {
            let allowed = b.allows_some(c, Operation::Write, ResourceType::Topic)
                || b.allows_cluster(c, Operation::IdempotentWrite);
            (!allowed).then(|| refused(CLUSTER_REFUSED))
        }
    }
}

pub(crate) fn end_txn(b: &Broker, c: &Caller, r: &EndTxnRequest) -> Option<EndTxnResponse> {
    (!txn_write(b, c, &r.transactional_id)).then(|| {
        EndTxnResponse::default()
            .with_error_code(TXN_REFUSED)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    })
}

pub(crate) fn add_offsets_to_txn(
    b: &Broker,
    c: &Caller,
    r: &AddOffsetsToTxnRequest,
) -> Option<AddOffsetsToTxnResponse> {
    if !txn_write(b, c, &r.transactional_id) {
        return Some(AddOffsetsToTxnResponse::default().with_error_code(TXN_REFUSED));
    }
    (!group_read(b, c, &r.group_id))
        .then(|| AddOffsetsToTxnResponse::default().with_error_code(GROUP_REFUSED))
}

/// Clients' AddPartitionsToTxn (v0–v3): WRITE on the id, then on every topic: a refused topic
/// fails the whole request, its partitions TOPIC_AUTHORIZATION_FAILED and the others
/// OPERATION_NOT_ATTEMPTED, as Kafka does. Brokers' batches (v4): CLUSTER_ACTION.
pub(crate) fn add_partitions_to_txn(
    b: &Broker,
    c: &Caller,
    r: &AddPartitionsToTxnRequest,
    version: i16,
) -> Option<AddPartitionsToTxnResponse> {
    if version >= 4 {
        return (!b.allows_cluster(c, Operation::ClusterAction))
            .then(|| AddPartitionsToTxnResponse::default().with_error_code(CLUSTER_REFUSED));
    }
    let txn_refused = !txn_write(b, c, &r.v3_and_below_transactional_id);
    let refused_topics: Vec<&TopicName> = r
        .v3_and_below_topics
        .iter()
        .map(|t| &t.name)
        .filter(|t| !b.allows(c, Operation::Write, ResourceType::Topic, t))
        .collect();
    if !txn_refused && refused_topics.is_empty() {
        return None;
    }
    let results = r
        .v3_and_below_topics
        .iter()
        .map(|t| {
            let code = if txn_refused {
                TXN_REFUSED
            } else if refused_topics.contains(&&t.name) {
                ResponseError::TopicAuthorizationFailed.code()
            } else {
                ResponseError::OperationNotAttempted.code()
            };
            let partitions = t
                .partitions
                .iter()
                .map(|&p| {
                    AddPartitionsToTxnPartitionResult::default()
                        .with_partition_index(p)
                        .with_partition_error_code(code)
                })
                .collect();
            AddPartitionsToTxnTopicResult::default()
                .with_name(t.name.clone())
                .with_results_by_partition(partitions)
        })
        .collect();
    Some(AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results))
}

pub(crate) fn describe_log_dirs(
    b: &Broker,
    c: &Caller,
    _r: &DescribeLogDirsRequest,
) -> Option<DescribeLogDirsResponse> {
    (!b.allows_cluster(c, Operation::Describe))
        .then(|| DescribeLogDirsResponse::default().with_error_code(CLUSTER_REFUSED))
}

pub(crate) fn describe_scram(
    b: &Broker,
    c: &Caller,
    _r: &DescribeUserScramCredentialsRequest,
) -> Option<DescribeUserScramCredentialsResponse> {
    (!b.allows_cluster(c, Operation::Describe)).then(|| {
        DescribeUserScramCredentialsResponse::default()
            .with_error_code(CLUSTER_REFUSED)
            .with_error_message(Some(StrBytes::from_static_str(
                "not allowed DESCRIBE on the cluster",
            )))
    })
}

pub(crate) fn alter_scram(
    b: &Broker,
    c: &Caller,
    r: &AlterUserScramCredentialsRequest,
) -> Option<AlterUserScramCredentialsResponse> {
    if b.allows_cluster(c, Operation::Alter) {
        return None;
    }
    let users = r.deletions.iter().map(|d| &d.name);
    let users = users.chain(r.upsertions.iter().map(|u| &u.name));
    let results = super::first_of_each(users, |u| (*u).clone())
        .into_iter()
        .map(|u| {
            AlterUserScramCredentialsResult::default()
                .with_user(u.clone())
                .with_error_code(CLUSTER_REFUSED)
        })
        .collect();
    Some(AlterUserScramCredentialsResponse::default().with_results(results))
}

/// Only brokers send these: CLUSTER_ACTION, refused per partition.
pub(crate) fn write_txn_markers(
    b: &Broker,
    c: &Caller,
    r: &WriteTxnMarkersRequest,
) -> Option<WriteTxnMarkersResponse> {
    use kafka_protocol::messages::write_txn_markers_response::*;
    if b.allows_cluster(c, Operation::ClusterAction) {
        return None;
    }
    let markers = r.markers.iter().map(|m| {
        let topics = m.topics.iter().map(|t| {
            let partitions = t.partition_indexes.iter().map(|&p| {
                WritableTxnMarkerPartitionResult::default()
                    .with_partition_index(p)
                    .with_error_code(CLUSTER_REFUSED)
            });
            WritableTxnMarkerTopicResult::default()
                .with_name(t.name.clone())
                .with_partitions(partitions.collect())
        });
        WritableTxnMarkerResult::default()
            .with_producer_id(m.producer_id)
            .with_topics(topics.collect())
    });
    Some(WriteTxnMarkersResponse::default().with_markers(markers.collect()))
}

/// The share coordinator's APIs, which only brokers send: CLUSTER_ACTION, refused per
/// partition.
macro_rules! share_state_gate {
    ($name:ident, $req:ty, $resp:ty, $module:ident, $result:ident) => {
        pub(crate) fn $name(b: &Broker, c: &Caller, r: &$req) -> Option<$resp> {
            use kafka_protocol::messages::$module::{PartitionResult, $result};
            if b.allows_cluster(c, Operation::ClusterAction) {
                return None;
            }
            let results = r.topics.iter().map(|t| {
                let partitions = t.partitions.iter().map(|p| {
                    PartitionResult::default()
                        .with_partition(p.partition)
                        .with_error_code(CLUSTER_REFUSED)
                });
                $result::default()
                    .with_topic_id(t.topic_id)
                    .with_partitions(partitions.collect())
            });
            Some(<$resp>::default().with_results(results.collect()))
        }
    };
}

share_state_gate!(
    read_share_group_state,
    ReadShareGroupStateRequest,
    ReadShareGroupStateResponse,
    read_share_group_state_response,
    ReadStateResult
);
share_state_gate!(
    write_share_group_state,
    WriteShareGroupStateRequest,
    WriteShareGroupStateResponse,
    write_share_group_state_response,
    WriteStateResult
);
share_state_gate!(
    delete_share_group_state,
    DeleteShareGroupStateRequest,
    DeleteShareGroupStateResponse,
    delete_share_group_state_response,
    DeleteStateResult
);

/// The names of topics given by id, as this broker's image has them (unknown ids: none).
fn topic_names(b: &Broker, ids: impl Iterator<Item = uuid::Uuid>) -> Vec<String> {
    let image = b.metadata();
    ids.filter_map(|id| image.topic_by_id(id).map(|t| t.name.to_string()))
        .collect()
}

/// A share group's member requests: READ on the group, READ on every topic (refused as a
/// whole: a share session spans its topics).
fn share_member_refusal(
    b: &Broker,
    c: &Caller,
    group: Option<&GroupId>,
    topics: Vec<String>,
) -> Option<(i16, String)> {
    if let Some(g) = group
        && !group_read(b, c, g)
    {
        return Some((GROUP_REFUSED, "not allowed READ on the group".into()));
    }
    let refused: Vec<String> = topics
        .into_iter()
        .filter(|t| !b.allows(c, Operation::Read, ResourceType::Topic, t))
        .collect();
    (!refused.is_empty()).then(|| {
        let code = ResponseError::TopicAuthorizationFailed.code();
        (code, format!("not allowed READ on {}", refused.join(", ")))
    })
}

pub(crate) fn share_fetch(
    b: &Broker,
    c: &Caller,
    r: &ShareFetchRequest,
) -> Option<ShareFetchResponse> {
    let topics = topic_names(b, r.topics.iter().map(|t| t.topic_id));
    share_member_refusal(b, c, r.group_id.as_ref(), topics).map(|(code, message)| {
        ShareFetchResponse::default()
            .with_error_code(code)
            .with_error_message(Some(StrBytes::from_string(message)))
    })
}

pub(crate) fn share_acknowledge(
    b: &Broker,
    c: &Caller,
    r: &ShareAcknowledgeRequest,
) -> Option<ShareAcknowledgeResponse> {
    let topics = topic_names(b, r.topics.iter().map(|t| t.topic_id));
    share_member_refusal(b, c, r.group_id.as_ref(), topics).map(|(code, message)| {
        ShareAcknowledgeResponse::default()
            .with_error_code(code)
            .with_error_message(Some(StrBytes::from_string(message)))
    })
}

/// Alter- and DeleteShareGroupOffsets: `operation` on the group, READ on each topic, refused as
/// a whole.
fn share_offsets_refusal<'t>(
    b: &Broker,
    c: &Caller,
    operation: Operation,
    group: &str,
    topics: impl Iterator<Item = &'t TopicName>,
) -> Option<(i16, String)> {
    if !b.allows(c, operation, ResourceType::Group, group) {
        return Some((
            GROUP_REFUSED,
            format!("not allowed {operation:?} on the group"),
        ));
    }
    let refused: Vec<&str> = topics
        .map(|t| t.as_str())
        .filter(|t| !b.allows(c, Operation::Read, ResourceType::Topic, t))
        .collect();
    (!refused.is_empty()).then(|| {
        let code = ResponseError::TopicAuthorizationFailed.code();
        (code, format!("not allowed READ on {}", refused.join(", ")))
    })
}

pub(crate) fn alter_share_group_offsets(
    b: &Broker,
    c: &Caller,
    r: &AlterShareGroupOffsetsRequest,
) -> Option<AlterShareGroupOffsetsResponse> {
    let topics = r.topics.iter().map(|t| &t.topic_name);
    share_offsets_refusal(b, c, Operation::Read, &r.group_id, topics).map(|(code, message)| {
        AlterShareGroupOffsetsResponse::default()
            .with_error_code(code)
            .with_error_message(Some(StrBytes::from_string(message)))
    })
}

pub(crate) fn delete_share_group_offsets(
    b: &Broker,
    c: &Caller,
    r: &DeleteShareGroupOffsetsRequest,
) -> Option<DeleteShareGroupOffsetsResponse> {
    let topics = r.topics.iter().map(|t| &t.topic_name);
    share_offsets_refusal(b, c, Operation::Delete, &r.group_id, topics).map(|(code, message)| {
        DeleteShareGroupOffsetsResponse::default()
            .with_error_code(code)
            .with_error_message(Some(StrBytes::from_string(message)))
    })
}
