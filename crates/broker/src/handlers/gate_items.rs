//! Authorization of requests refused item by item: the items the caller may not touch are
//! taken out of the request before its handler sees it and answered with Kafka's error
//! (`split`), or left out of a list the handler answers (`filtered`). The rights are Kafka's:
//! READ on a group to commit to it, DESCRIBE to read its offsets or describe it, DELETE to
//! delete it; DESCRIBE on a topic to list its offsets; the coordinator key's DESCRIBE (a group,
//! a transactional id) or the cluster's CLUSTER_ACTION (a share-partition key) to find it.

use crate::authorization::Caller;
use crate::server::Broker;
use futures::future::BoxFuture;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;
use sluice_acl::{Operation, ResourceType};
use std::future::Future;

/// Runs `run` on the request `take` has left, then adds what `take` answered itself.
pub(crate) fn split<Req, Resp, X, F, T, R, M>(
    mut request: Req,
    take: T,
    run: R,
    merge: M,
) -> BoxFuture<'static, Option<Resp>>
where
    T: FnOnce(&mut Req) -> X,
    R: FnOnce(Req) -> F,
    M: FnOnce(&mut Resp, X) + Send + 'static,
    F: Future<Output = Option<Resp>> + Send + 'static,
    X: Send + 'static,
    Resp: 'static,
{
    let answered = take(&mut request);
    filtered(run(request), move |response| merge(response, answered))
}

/// The handler's answer with `keep` applied to it.
pub(crate) fn filtered<Resp, F>(
    pending: F,
    keep: impl FnOnce(&mut Resp) + Send + 'static,
) -> BoxFuture<'static, Option<Resp>>
where
    F: Future<Output = Option<Resp>> + Send + 'static,
    Resp: 'static,
{
    Box::pin(async move {
        let mut response = pending.await?;
        keep(&mut response);
        Some(response)
    })
}

fn allows(b: &Broker, c: &Caller, operation: Operation, kind: ResourceType, name: &str) -> bool {
    b.allows(c, operation, kind, name)
}

/// OffsetCommit: READ on the group (else every partition GROUP_AUTHORIZATION_FAILED) and READ
/// on each topic (else its partitions TOPIC_AUTHORIZATION_FAILED).
pub(crate) fn offset_commit(
    b: &Broker,
    c: &Caller,
    r: &mut OffsetCommitRequest,
) -> Vec<offset_commit_response::OffsetCommitResponseTopic> {
    use offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic};
    let group_ok = allows(b, c, Operation::Read, ResourceType::Group, &r.group_id);
    let (kept, refused): (Vec<_>, Vec<_>) = std::mem::take(&mut r.topics)
        .into_iter()
        .partition(|t| group_ok && allows(b, c, Operation::Read, ResourceType::Topic, &t.name));
    r.topics = kept;
    let error = if group_ok {
        ResponseError::TopicAuthorizationFailed
    } else {
        ResponseError::GroupAuthorizationFailed
    };
    refused
        .into_iter()
        .map(|t| {
            let partitions = t.partitions.iter().map(|p| {
                OffsetCommitResponsePartition::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(error.code())
            });
            OffsetCommitResponseTopic::default()
                .with_name(t.name)
                .with_topic_id(t.topic_id)
                .with_partitions(partitions.collect())
        })
        .collect()
}

/// ListOffsets: DESCRIBE on each topic.
pub(crate) fn list_offsets(
    b: &Broker,
    c: &Caller,
    r: &mut ListOffsetsRequest,
) -> Vec<list_offsets_response::ListOffsetsTopicResponse> {
    use list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
    let (kept, refused): (Vec<_>, Vec<_>) = std::mem::take(&mut r.topics)
        .into_iter()
        .partition(|t| allows(b, c, Operation::Describe, ResourceType::Topic, &t.name));
    r.topics = kept;
    refused
        .into_iter()
        .map(|t| {
            let partitions = t.partitions.iter().map(|p| {
                ListOffsetsPartitionResponse::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(ResponseError::TopicAuthorizationFailed.code())
                    .with_offset(-1)
                    .with_timestamp(-1)
            });
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions.collect())
        })
        .collect()
}

/// DeleteGroups: DELETE on each group.
pub(crate) fn delete_groups(
    b: &Broker,
    c: &Caller,
    r: &mut DeleteGroupsRequest,
) -> Vec<delete_groups_response::DeletableGroupResult> {
    let (kept, refused): (Vec<_>, Vec<_>) = std::mem::take(&mut r.groups_names)
        .into_iter()
        .partition(|g| allows(b, c, Operation::Delete, ResourceType::Group, g));
    r.groups_names = kept;
    refused
        .into_iter()
        .map(|g| {
            delete_groups_response::DeletableGroupResult::default()
                .with_group_id(g)
                .with_error_code(ResponseError::GroupAuthorizationFailed.code())
        })
        .collect()
}

/// DescribeGroups: DESCRIBE on each group.
pub(crate) fn describe_groups(
    b: &Broker,
    c: &Caller,
    r: &mut DescribeGroupsRequest,
) -> Vec<describe_groups_response::DescribedGroup> {
    let (kept, refused): (Vec<_>, Vec<_>) = std::mem::take(&mut r.groups)
        .into_iter()
        .partition(|g| allows(b, c, Operation::Describe, ResourceType::Group, g));
    r.groups = kept;
    refused
        .into_iter()
        .map(|g| {
            describe_groups_response::DescribedGroup::default()
                .with_group_id(g)
                .with_error_code(ResponseError::GroupAuthorizationFailed.code())
        })
        .collect()
}

/// ListGroups: every group with DESCRIBE on the cluster, else those the caller may describe.
pub(crate) fn list_groups(b: &Broker, c: &Caller, response: &mut ListGroupsResponse) {
    if b.shows(
        c,
        Operation::Describe,
        ResourceType::Cluster,
        sluice_acl::CLUSTER_NAME,
    ) {
        return;
    }
    response
        .groups
        .retain(|g| b.shows(c, Operation::Describe, ResourceType::Group, &g.group_id));
}

/// FindCoordinator: DESCRIBE on the group (key type 0) or the transactional id (1),
/// CLUSTER_ACTION for a share-partition key (2, only brokers ask). v0–v3 ask one key, v4+
/// several; a refused one is answered here.
pub(crate) fn find_coordinator(
    b: &Broker,
    c: &Caller,
    r: &mut FindCoordinatorRequest,
    version: i16,
) -> Vec<find_coordinator_response::Coordinator> {
    let refusal = |key: &str| -> Option<ResponseError> {
        let (allowed, error) = match r.key_type {
            0 => (
                allows(b, c, Operation::Describe, ResourceType::Group, key),
                ResponseError::GroupAuthorizationFailed,
            ),
            1 => (
                allows(
                    b,
                    c,
                    Operation::Describe,
                    ResourceType::TransactionalId,
                    key,
                ),
                ResponseError::TransactionalIdAuthorizationFailed,
            ),
            _ => (
                b.allows_cluster(c, Operation::ClusterAction),
                ResponseError::ClusterAuthorizationFailed,
            ),
        };
        (!allowed).then_some(error)
    };
    let refused_coordinator = |key: &kafka_protocol::protocol::StrBytes, e: ResponseError| {
        find_coordinator_response::Coordinator::default()
            .with_key(key.clone())
            .with_node_id(BrokerId(-1))
            .with_port(-1)
            .with_error_code(e.code())
    };
    if version < 4 {
        return match refusal(&r.key) {
            Some(e) => vec![refused_coordinator(&r.key, e)],
            None => Vec::new(),
        };
    }
    let mut refused = Vec::new();
    let keys = std::mem::take(&mut r.coordinator_keys);
    r.coordinator_keys = keys
        .into_iter()
        .filter(|k| match refusal(k) {
            Some(e) => {
                refused.push(refused_coordinator(k, e));
                false
            }
            None => true,
        })
        .collect();
    refused
}

/// A FindCoordinator answer with the refused keys: v0–v3 carry one at the top.
pub(crate) fn merge_coordinators(
    response: &mut FindCoordinatorResponse,
    refused: Vec<find_coordinator_response::Coordinator>,
    version: i16,
) {
    if version >= 4 {
        response.coordinators.extend(refused);
    } else if let Some(c) = refused.into_iter().next() {
        response.error_code = c.error_code;
        response.node_id = c.node_id;
        response.host = c.host;
        response.port = c.port;
    }
}

const TOPIC_REFUSED: ResponseError = ResponseError::TopicAuthorizationFailed;

/// Splits `items` by `allowed`, leaving the allowed in place and returning the others.
/// Nothing is allocated when all are allowed (every request while ACLs are not enforced).
pub(crate) fn refused_of<T>(items: &mut Vec<T>, allowed: impl Fn(&T) -> bool) -> Vec<T> {
    items.extract_if(.., |item| !allowed(item)).collect()
}

/// CreateTopics: CREATE on the cluster or on the topic.
pub(crate) fn create_topics(
    b: &Broker,
    c: &Caller,
    r: &mut CreateTopicsRequest,
) -> Vec<create_topics_response::CreatableTopicResult> {
    let cluster = b.shows(
        c,
        Operation::Create,
        ResourceType::Cluster,
        sluice_acl::CLUSTER_NAME,
    );
    refused_of(&mut r.topics, |t| {
        cluster || allows(b, c, Operation::Create, ResourceType::Topic, &t.name)
    })
    .into_iter()
    .map(|t| {
        create_topics_response::CreatableTopicResult::default()
            .with_name(t.name)
            .with_error_code(TOPIC_REFUSED.code())
            .with_num_partitions(-1)
            .with_replication_factor(-1)
    })
    .collect()
}

/// DeleteTopics: DELETE on each topic.
pub(crate) fn delete_topics(
    b: &Broker,
    c: &Caller,
    r: &mut DeleteTopicsRequest,
) -> Vec<delete_topics_response::DeletableTopicResult> {
    refused_of(&mut r.topic_names, |t| {
        allows(b, c, Operation::Delete, ResourceType::Topic, t)
    })
    .into_iter()
    .map(|t| {
        delete_topics_response::DeletableTopicResult::default()
            .with_name(Some(t))
            .with_error_code(TOPIC_REFUSED.code())
    })
    .collect()
}

/// CreatePartitions: ALTER on each topic.
pub(crate) fn create_partitions(
    b: &Broker,
    c: &Caller,
    r: &mut CreatePartitionsRequest,
) -> Vec<create_partitions_response::CreatePartitionsTopicResult> {
    refused_of(&mut r.topics, |t| {
        allows(b, c, Operation::Alter, ResourceType::Topic, &t.name)
    })
    .into_iter()
    .map(|t| {
        create_partitions_response::CreatePartitionsTopicResult::default()
            .with_name(t.name)
            .with_error_code(TOPIC_REFUSED.code())
    })
    .collect()
}

/// DeleteRecords: DELETE on each topic.
pub(crate) fn delete_records(
    b: &Broker,
    c: &Caller,
    r: &mut DeleteRecordsRequest,
) -> Vec<delete_records_response::DeleteRecordsTopicResult> {
    use delete_records_response::{DeleteRecordsPartitionResult, DeleteRecordsTopicResult};
    refused_of(&mut r.topics, |t| {
        allows(b, c, Operation::Delete, ResourceType::Topic, &t.name)
    })
    .into_iter()
    .map(|t| {
        let partitions = t.partitions.iter().map(|p| {
            DeleteRecordsPartitionResult::default()
                .with_partition_index(p.partition_index)
                .with_low_watermark(-1)
                .with_error_code(TOPIC_REFUSED.code())
        });
        DeleteRecordsTopicResult::default()
            .with_name(t.name)
            .with_partitions(partitions.collect())
    })
    .collect()
}

/// Kafka's config resource types: a topic's, a broker's (the cluster's right), a group's.
fn config_right(
    b: &Broker,
    c: &Caller,
    operation: Operation,
    resource_type: i8,
    name: &str,
) -> Option<ResponseError> {
    let (kind, name, error) = match resource_type {
        2 => (ResourceType::Topic, name, TOPIC_REFUSED),
        32 => (
            ResourceType::Group,
            name,
            ResponseError::GroupAuthorizationFailed,
        ),
        _ => (
            ResourceType::Cluster,
            sluice_acl::CLUSTER_NAME,
            ResponseError::ClusterAuthorizationFailed,
        ),
    };
    (!allows(b, c, operation, kind, name)).then_some(error)
}

/// DescribeConfigs: DESCRIBE_CONFIGS on each resource.
pub(crate) fn describe_configs(
    b: &Broker,
    c: &Caller,
    r: &mut DescribeConfigsRequest,
) -> Vec<describe_configs_response::DescribeConfigsResult> {
    let mut refused = Vec::new();
    r.resources.retain(|res| {
        let error = config_right(
            b,
            c,
            Operation::DescribeConfigs,
            res.resource_type,
            &res.resource_name,
        );
        if let Some(e) = error {
            refused.push(
                describe_configs_response::DescribeConfigsResult::default()
                    .with_resource_type(res.resource_type)
                    .with_resource_name(res.resource_name.clone())
                    .with_error_code(e.code()),
            );
        }
        error.is_none()
    });
    refused
}

/// AlterConfigs and IncrementalAlterConfigs: ALTER_CONFIGS on each resource.
macro_rules! alter_configs_gate {
    ($name:ident, $req:ty, $module:ident) => {
        pub(crate) fn $name(
            b: &Broker,
            c: &Caller,
            r: &mut $req,
        ) -> Vec<$module::AlterConfigsResourceResponse> {
            let mut refused = Vec::new();
            r.resources.retain(|res| {
                let error = config_right(
                    b,
                    c,
                    Operation::AlterConfigs,
                    res.resource_type,
                    &res.resource_name,
                );
                if let Some(e) = error {
                    refused.push(
                        $module::AlterConfigsResourceResponse::default()
                            .with_resource_type(res.resource_type)
                            .with_resource_name(res.resource_name.clone())
                            .with_error_code(e.code()),
                    );
                }
                error.is_none()
            });
            refused
        }
    };
}

alter_configs_gate!(alter_configs, AlterConfigsRequest, alter_configs_response);
alter_configs_gate!(
    incremental_alter_configs,
    IncrementalAlterConfigsRequest,
    incremental_alter_configs_response
);

/// OffsetForLeaderEpoch: a follower's (replica id set) needs CLUSTER_ACTION, a client's
/// DESCRIBE on each topic.
pub(crate) fn offset_for_leader_epoch(
    b: &Broker,
    c: &Caller,
    r: &mut OffsetForLeaderEpochRequest,
) -> Vec<offset_for_leader_epoch_response::OffsetForLeaderTopicResult> {
    use offset_for_leader_epoch_response::{EpochEndOffset, OffsetForLeaderTopicResult};
    let follower = r.replica_id.0 >= 0;
    let follower_ok = follower && b.allows_cluster(c, Operation::ClusterAction);
    let error = if follower {
        ResponseError::ClusterAuthorizationFailed
    } else {
        TOPIC_REFUSED
    };
    refused_of(&mut r.topics, |t| {
        if follower {
            follower_ok
        } else {
            allows(b, c, Operation::Describe, ResourceType::Topic, &t.topic)
        }
    })
    .into_iter()
    .map(|t| {
        let partitions = t.partitions.iter().map(|p| {
            EpochEndOffset::default()
                .with_partition(p.partition)
                .with_error_code(error.code())
                .with_leader_epoch(-1)
                .with_end_offset(-1)
        });
        OffsetForLeaderTopicResult::default()
            .with_topic(t.topic)
            .with_partitions(partitions.collect())
    })
    .collect()
}

/// OffsetDelete's topics: READ on each (the group's DELETE is `gate::offset_delete`).
pub(crate) fn offset_delete(
    b: &Broker,
    c: &Caller,
    r: &mut OffsetDeleteRequest,
) -> Vec<offset_delete_response::OffsetDeleteResponseTopic> {
    use offset_delete_response::{OffsetDeleteResponsePartition, OffsetDeleteResponseTopic};
    refused_of(&mut r.topics, |t| {
        allows(b, c, Operation::Read, ResourceType::Topic, &t.name)
    })
    .into_iter()
    .map(|t| {
        let partitions = t.partitions.iter().map(|p| {
            OffsetDeleteResponsePartition::default()
                .with_partition_index(p.partition_index)
                .with_error_code(TOPIC_REFUSED.code())
        });
        OffsetDeleteResponseTopic::default()
            .with_name(t.name)
            .with_partitions(partitions.collect())
    })
    .collect()
}

/// TxnOffsetCommit: WRITE on the transactional id and READ on the group (else every partition
/// refused with that error), READ on each topic.
pub(crate) fn txn_offset_commit(
    b: &Broker,
    c: &Caller,
    r: &mut TxnOffsetCommitRequest,
) -> Vec<txn_offset_commit_response::TxnOffsetCommitResponseTopic> {
    use txn_offset_commit_response::{
        TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
    };
    let whole = if !allows(
        b,
        c,
        Operation::Write,
        ResourceType::TransactionalId,
        &r.transactional_id,
    ) {
        Some(ResponseError::TransactionalIdAuthorizationFailed)
    } else if !allows(b, c, Operation::Read, ResourceType::Group, &r.group_id) {
        Some(ResponseError::GroupAuthorizationFailed)
    } else {
        None
    };
    let refused = refused_of(&mut r.topics, |t| {
        whole.is_none() && allows(b, c, Operation::Read, ResourceType::Topic, &t.name)
    });
    let error = whole.unwrap_or(TOPIC_REFUSED);
    refused
        .into_iter()
        .map(|t| {
            let partitions = t.partitions.iter().map(|p| {
                TxnOffsetCommitResponsePartition::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(error.code())
            });
            TxnOffsetCommitResponseTopic::default()
                .with_name(t.name)
                .with_partitions(partitions.collect())
        })
        .collect()
}

/// DescribeTransactions: DESCRIBE on each transactional id.
pub(crate) fn describe_transactions(
    b: &Broker,
    c: &Caller,
    r: &mut DescribeTransactionsRequest,
) -> Vec<describe_transactions_response::TransactionState> {
    refused_of(&mut r.transactional_ids, |id| {
        allows(b, c, Operation::Describe, ResourceType::TransactionalId, id)
    })
    .into_iter()
    .map(|id| {
        describe_transactions_response::TransactionState::default()
            .with_transactional_id(id)
            .with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code())
    })
    .collect()
}

/// ListTransactions: those the caller may describe.
pub(crate) fn list_transactions(b: &Broker, c: &Caller, response: &mut ListTransactionsResponse) {
    response.transaction_states.retain(|t| {
        b.shows(
            c,
            Operation::Describe,
            ResourceType::TransactionalId,
            &t.transactional_id,
        )
    });
}

/// DescribeProducers: READ on each topic.
pub(crate) fn describe_producers(
    b: &Broker,
    c: &Caller,
    r: &mut DescribeProducersRequest,
) -> Vec<describe_producers_response::TopicResponse> {
    use describe_producers_response::{PartitionResponse, TopicResponse};
    refused_of(&mut r.topics, |t| {
        allows(b, c, Operation::Read, ResourceType::Topic, &t.name)
    })
    .into_iter()
    .map(|t| {
        let partitions = t.partition_indexes.iter().map(|&p| {
            PartitionResponse::default()
                .with_partition_index(p)
                .with_error_code(TOPIC_REFUSED.code())
        });
        TopicResponse::default()
            .with_name(t.name)
            .with_partitions(partitions.collect())
    })
    .collect()
}

/// ConsumerGroupDescribe and ShareGroupDescribe: DESCRIBE on each group.
pub(crate) fn describable_groups(
    b: &Broker,
    c: &Caller,
    groups: &mut Vec<GroupId>,
) -> Vec<GroupId> {
    refused_of(groups, |g| {
        allows(b, c, Operation::Describe, ResourceType::Group, g)
    })
}

pub(crate) fn consumer_groups_refused(
    refused: Vec<GroupId>,
) -> Vec<consumer_group_describe_response::DescribedGroup> {
    refused
        .into_iter()
        .map(|g| {
            consumer_group_describe_response::DescribedGroup::default()
                .with_group_id(g)
                .with_error_code(ResponseError::GroupAuthorizationFailed.code())
        })
        .collect()
}

pub(crate) fn share_groups_refused(
    refused: Vec<GroupId>,
) -> Vec<share_group_describe_response::DescribedGroup> {
    refused
        .into_iter()
        .map(|g| {
            share_group_describe_response::DescribedGroup::default()
                .with_group_id(g)
                .with_error_code(ResponseError::GroupAuthorizationFailed.code())
        })
        .collect()
}

/// OffsetFetch, applied to the handler's answer (it only reads): a group the caller may not
/// DESCRIBE answers GROUP_AUTHORIZATION_FAILED and nothing else; a topic it may not DESCRIBE is
/// refused TOPIC_AUTHORIZATION_FAILED when named, and left out when all were asked for.
pub(crate) fn offset_fetch(
    b: &Broker,
    c: &Caller,
    all_topics: &[(GroupId, bool)],
    response: &mut OffsetFetchResponse,
) {
    let group_ok = |g: &str| allows(b, c, Operation::Describe, ResourceType::Group, g);
    let asked_all = |g: &str| all_topics.iter().any(|(id, all)| id.as_str() == g && *all);
    let topic_ok = |t: &str, all: bool| {
        if all {
            b.shows(c, Operation::Describe, ResourceType::Topic, t)
        } else {
            allows(b, c, Operation::Describe, ResourceType::Topic, t)
        }
    };
    // v0–v7: one group, its topics at the top.
    if let Some((group, all)) = all_topics.first().filter(|_| response.groups.is_empty()) {
        if !group_ok(group) {
            response.topics.clear();
            response.error_code = ResponseError::GroupAuthorizationFailed.code();
            return;
        }
        response.topics.retain(|t| !*all || topic_ok(&t.name, true));
        for t in response
            .topics
            .iter_mut()
            .filter(|t| !*all && !topic_ok(&t.name, false))
        {
            for p in &mut t.partitions {
                p.committed_offset = -1;
                p.metadata = None;
                p.error_code = TOPIC_REFUSED.code();
            }
        }
        return;
    }
    for group in &mut response.groups {
        if !group_ok(&group.group_id) {
            group.topics.clear();
            group.error_code = ResponseError::GroupAuthorizationFailed.code();
            continue;
        }
        let all = asked_all(&group.group_id);
        group.topics.retain(|t| !all || topic_ok(&t.name, true));
        for t in group
            .topics
            .iter_mut()
            .filter(|t| !all && !topic_ok(&t.name, false))
        {
            for p in &mut t.partitions {
                p.committed_offset = -1;
                p.metadata = None;
                p.error_code = TOPIC_REFUSED.code();
            }
        }
    }
}

/// Each group an OffsetFetch names, and whether it asks for all topics.
pub(crate) fn offset_fetch_groups(r: &OffsetFetchRequest) -> Vec<(GroupId, bool)> {
    if r.groups.is_empty() {
        vec![(r.group_id.clone(), r.topics.is_none())]
    } else {
        r.groups
            .iter()
            .map(|g| (g.group_id.clone(), g.topics.is_none()))
            .collect()
    }
}

/// DescribeShareGroupOffsets, applied to the handler's answer (it only reads): DESCRIBE on
/// each group, and on each topic (a topic refused is left out).
pub(crate) fn describe_share_group_offsets(
    b: &Broker,
    c: &Caller,
    response: &mut DescribeShareGroupOffsetsResponse,
) {
    for group in &mut response.groups {
        if !allows(
            b,
            c,
            Operation::Describe,
            ResourceType::Group,
            &group.group_id,
        ) {
            group.topics.clear();
            group.error_code = ResponseError::GroupAuthorizationFailed.code();
            continue;
        }
        group
            .topics
            .retain(|t| b.shows(c, Operation::Describe, ResourceType::Topic, &t.topic_name));
    }
}
