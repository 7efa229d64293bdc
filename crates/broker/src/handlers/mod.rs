//! One module per Kafka API. `SUPPORTED` is the table of what this broker implements, with
//! the versions each handler really supports; ApiVersions answers from it and `route` refuses
//! anything outside it. An API missing here is simply absent from ApiVersions.

mod acls;
mod add_offsets_to_txn;
mod add_partitions_to_txn;
pub(crate) mod api_versions;
mod client_quotas;
pub(crate) mod configs;
mod consumer_group_describe;
mod consumer_group_heartbeat;
mod create_partitions;
pub(crate) mod create_topics;
mod delete_groups;
mod delete_records;
mod delete_topics;
mod describe_cluster;
mod describe_groups;
mod describe_log_dirs;
mod describe_producers;
mod describe_transactions;
mod end_txn;
mod fetch;
mod find_coordinator;
mod gate;
mod gate_items;
mod group_configs;
mod heartbeat;
mod init_producer_id;
mod join_group;
mod leave_group;
mod list_groups;
mod list_offsets;
mod list_transactions;
mod metadata;
mod offset_commit;
mod offset_delete;
mod offset_fetch;
mod offset_for_leader_epoch;
mod produce;
mod scram_credentials;
mod share_acknowledge;
mod share_fetch;
mod share_group_describe;
mod share_group_heartbeat;
mod share_group_offsets;
mod share_group_state;
mod sync_group;
mod txn_offset_commit;
mod write_txn_markers;

use crate::authorization::Caller;
use crate::dispatch::{Pending, respond, respond_fetch};
use crate::server::{Broker, Endpoint};
use gate::gated;
use gate_items::{filtered, split};
use kafka_protocol::messages::ApiKey;
use kafka_protocol::messages::{
    AlterConfigsResponse, ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse,
    CreatePartitionsResponse, CreateTopicsResponse, DeleteGroupsResponse, DeleteRecordsResponse,
    DeleteTopicsResponse, DescribeConfigsResponse, DescribeGroupsResponse,
    DescribeProducersResponse, DescribeTransactionsResponse, FindCoordinatorResponse,
    IncrementalAlterConfigsResponse, ListOffsetsResponse, OffsetCommitResponse,
    OffsetDeleteResponse, OffsetForLeaderEpochResponse, ShareGroupDescribeRequest,
    ShareGroupDescribeResponse, TxnOffsetCommitResponse,
};
use sluice_protocol::{ProtocolError, RequestFrame};
use std::sync::Arc;

/// Every API this broker serves, with the lowest and highest version it handles.
pub(crate) const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 12),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 7),
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 5),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DescribeCluster, 0, 2),
    (ApiKey::DescribeLogDirs, 1, 4),
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DescribeGroups, 0, 6),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::ConsumerGroupHeartbeat, 0, 1),
    (ApiKey::ConsumerGroupDescribe, 0, 1),
    (ApiKey::ShareGroupHeartbeat, 1, 1),
    (ApiKey::ShareGroupDescribe, 1, 1),
    (ApiKey::ShareFetch, 1, 1),
    (ApiKey::ShareAcknowledge, 1, 1),
    (ApiKey::ReadShareGroupState, 0, 0),
    (ApiKey::WriteShareGroupState, 0, 0),
    (ApiKey::DescribeShareGroupOffsets, 0, 0),
    (ApiKey::AlterShareGroupOffsets, 0, 0),
    (ApiKey::DeleteShareGroupOffsets, 0, 0),
    (ApiKey::DeleteShareGroupState, 0, 0),
    (ApiKey::InitProducerId, 0, 4),
    (ApiKey::AddPartitionsToTxn, 0, 4),
    (ApiKey::EndTxn, 0, 3),
    (ApiKey::AddOffsetsToTxn, 0, 3),
    (ApiKey::TxnOffsetCommit, 0, 3),
    (ApiKey::DescribeTransactions, 0, 0),
    (ApiKey::ListTransactions, 0, 1),
    (ApiKey::DescribeProducers, 0, 0),
    (ApiKey::WriteTxnMarkers, 1, 1),
    // Answered on the connection's reader, before dispatch (`authentication::Session`).
    (ApiKey::SaslHandshake, 0, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
    (ApiKey::DescribeUserScramCredentials, 0, 0),
    (ApiKey::AlterUserScramCredentials, 0, 0),
    (ApiKey::CreateAcls, 0, 3),
    (ApiKey::DescribeAcls, 0, 3),
    (ApiKey::DeleteAcls, 0, 3),
    (ApiKey::DescribeClientQuotas, 0, 1),
    (ApiKey::AlterClientQuotas, 0, 1),
];

pub(crate) fn supports(key: ApiKey, version: i16) -> bool {
    SUPPORTED
        .iter()
        .any(|&(k, min, max)| k == key && (min..=max).contains(&version))
}

/// Hands a request to its handler. Only called for entries of `SUPPORTED`.
pub(crate) fn route(
    broker: &Arc<Broker>,
    request: RequestFrame,
    endpoint: &Arc<Endpoint>,
    caller: &Caller,
) -> Result<Pending, ProtocolError> {
    let peer = caller.address;
    let b = broker.clone();
    let e = endpoint.clone();
    let c = caller.clone();
    let m = broker.metrics.clone();
    // Quotas are per user and client id.
    let client_id = request.header.client_id.clone().unwrap_or_default();
    // Most group APIs are handed only the group coordinators (`&b.groups`), and some
    // transaction APIs only theirs (`&b.transaction_coordinators`).
    match request.api_key {
        ApiKey::ApiVersions => respond(&m, request, api_versions::handle),
        ApiKey::Metadata => respond(&m, request, move |r, v| metadata::handle(&b, &c, r, v, &e)),
        ApiKey::Produce => respond(&m, request, move |r, v| {
            produce::handle(&b, &c, r, v, &e, &client_id)
        }),
        ApiKey::Fetch => respond_fetch(&m, request, move |r, v| {
            fetch::handle(b, &c, r, v, &client_id)
        }),
        ApiKey::ListOffsets => respond(&m, request, move |r, v| {
            split(
                r,
                |r| gate_items::list_offsets(&b, &c, r),
                |r| list_offsets::handle(&b, r, v),
                |response: &mut ListOffsetsResponse, refused| response.topics.extend(refused),
            )
        }),
        ApiKey::OffsetForLeaderEpoch => respond(&m, request, move |r, v| {
            split(
                r,
                |r| gate_items::offset_for_leader_epoch(&b, &c, r),
                |r| offset_for_leader_epoch::handle(&b, r, v),
                |response: &mut OffsetForLeaderEpochResponse, refused| {
                    response.topics.extend(refused)
                },
            )
        }),
        ApiKey::CreateTopics => respond(&m, request, move |r, v| {
            split(
                r,
                |r| gate_items::create_topics(&b, &c, r),
                |r| create_topics::handle(&b, r, v),
                |response: &mut CreateTopicsResponse, refused| response.topics.extend(refused),
            )
        }),
        ApiKey::DeleteTopics => respond(&m, request, move |r, v| {
            split(
                r,
                |r| gate_items::delete_topics(&b, &c, r),
                |r| delete_topics::handle(&b, r, v),
                |response: &mut DeleteTopicsResponse, refused| response.responses.extend(refused),
            )
        }),
        ApiKey::DeleteRecords => respond(&m, request, move |r, v| {
            split(
                r,
                |r| gate_items::delete_records(&b, &c, r),
                |r| delete_records::handle(&b, r, v),
                |response: &mut DeleteRecordsResponse, refused| response.topics.extend(refused),
            )
        }),
        ApiKey::CreatePartitions => respond(&m, request, move |r, v| {
            split(
                r,
                |r| gate_items::create_partitions(&b, &c, r),
                |r| create_partitions::handle(&b, r, v),
                |response: &mut CreatePartitionsResponse, refused| response.results.extend(refused),
            )
        }),
        ApiKey::DescribeConfigs => respond(&m, request, move |r, v| {
            split(
                r,
                |r| gate_items::describe_configs(&b, &c, r),
                |r| configs::describe(&b, r, v),
                |response: &mut DescribeConfigsResponse, refused| response.results.extend(refused),
            )
        }),
        ApiKey::AlterConfigs => respond(&m, request, move |r, v| {
            split(
                r,
                |r| gate_items::alter_configs(&b, &c, r),
                |r| configs::alter(&b, r, v),
                |response: &mut AlterConfigsResponse, refused| response.responses.extend(refused),
            )
        }),
        ApiKey::IncrementalAlterConfigs => respond(&m, request, move |r, v| {
            split(
                r,
                |r| gate_items::incremental_alter_configs(&b, &c, r),
                |r| configs::incremental_alter(&b, r, v),
                |response: &mut IncrementalAlterConfigsResponse, refused| {
                    response.responses.extend(refused)
                },
            )
        }),
        ApiKey::DescribeCluster => respond(&m, request, move |r, v| {
            describe_cluster::handle(&b, r, v, &e)
        }),
        ApiKey::DescribeLogDirs => respond(&m, request, move |r, v| {
            gated(gate::describe_log_dirs(&b, &c, &r), || {
                describe_log_dirs::handle(&b, r, v)
            })
        }),
        ApiKey::FindCoordinator => respond(&m, request, move |mut r, v| {
            let refused = gate_items::find_coordinator(&b, &c, &mut r, v);
            let whole = (v < 4 && !refused.is_empty()).then(|| {
                let mut response = FindCoordinatorResponse::default();
                gate_items::merge_coordinators(&mut response, refused.clone(), v);
                response
            });
            gated(whole, move || {
                let pending = find_coordinator::handle(&b, r, v, &e);
                filtered(pending, move |response| {
                    gate_items::merge_coordinators(response, refused, v)
                })
            })
        }),
        ApiKey::JoinGroup => {
            let client = join_group::Client::of(&request, peer);
            respond(&m, request, move |r, v| {
                gated(gate::join_group(&b, &c, &r), || {
                    join_group::handle(&b.groups, r, v, client)
                })
            })
        }
        ApiKey::ConsumerGroupHeartbeat => {
            let client = join_group::Client::of(&request, peer);
            respond(&m, request, move |r, v| {
                gated(gate::consumer_group_heartbeat(&b, &c, &r), || {
                    consumer_group_heartbeat::handle(&b, r, v, client)
                })
            })
        }
        ApiKey::ConsumerGroupDescribe => respond(&m, request, move |r, v| {
            split(
                r,
                |r: &mut ConsumerGroupDescribeRequest| {
                    gate_items::describable_groups(&b, &c, &mut r.group_ids)
                },
                |r| consumer_group_describe::handle(&b, r, v),
                |response: &mut ConsumerGroupDescribeResponse, refused| {
                    response
                        .groups
                        .extend(gate_items::consumer_groups_refused(refused))
                },
            )
        }),
        ApiKey::ShareGroupHeartbeat => {
            let client = join_group::Client::of(&request, peer);
            respond(&m, request, move |r, v| {
                gated(gate::share_group_heartbeat(&b, &c, &r), || {
                    share_group_heartbeat::handle(&b, r, v, client)
                })
            })
        }
        ApiKey::ShareGroupDescribe => respond(&m, request, move |r, v| {
            split(
                r,
                |r: &mut ShareGroupDescribeRequest| {
                    gate_items::describable_groups(&b, &c, &mut r.group_ids)
                },
                |r| share_group_describe::handle(&b, r, v),
                |response: &mut ShareGroupDescribeResponse, refused| {
                    response
                        .groups
                        .extend(gate_items::share_groups_refused(refused))
                },
            )
        }),
        ApiKey::ShareFetch => respond(&m, request, move |r, v| {
            gated(gate::share_fetch(&b, &c, &r), || {
                share_fetch::handle(&b, r, v)
            })
        }),
        ApiKey::ShareAcknowledge => respond(&m, request, move |r, v| {
            gated(gate::share_acknowledge(&b, &c, &r), || {
                share_acknowledge::handle(&b, r, v)
            })
        }),
        ApiKey::ReadShareGroupState => respond(&m, request, move |r, v| {
            gated(gate::read_share_group_state(&b, &c, &r), || {
                share_group_state::read(&b, r, v)
            })
        }),
        ApiKey::WriteShareGroupState => respond(&m, request, move |r, v| {
            gated(gate::write_share_group_state(&b, &c, &r), || {
                share_group_state::write(&b, r, v)
            })
        }),
        ApiKey::DescribeShareGroupOffsets => respond(&m, request, move |r, v| {
            let pending = share_group_offsets::describe(&b, r, v);
            filtered(pending, move |response| {
                gate_items::describe_share_group_offsets(&b, &c, response)
            })
        }),
        ApiKey::AlterShareGroupOffsets => respond(&m, request, move |r, v| {
            gated(gate::alter_share_group_offsets(&b, &c, &r), || {
                share_group_offsets::alter(&b, r, v)
            })
        }),
        ApiKey::DeleteShareGroupOffsets => respond(&m, request, move |r, v| {
            gated(gate::delete_share_group_offsets(&b, &c, &r), || {
                share_group_offsets::delete(&b, r, v)
            })
        }),
        ApiKey::DeleteShareGroupState => respond(&m, request, move |r, v| {
            gated(gate::delete_share_group_state(&b, &c, &r), || {
                share_group_state::delete(&b, r, v)
            })
        }),
        ApiKey::SyncGroup => respond(&m, request, move |r, v| {
            gated(gate::sync_group(&b, &c, &r), || {
                sync_group::handle(&b.groups, r, v)
            })
        }),
        ApiKey::Heartbeat => respond(&m, request, move |r, v| {
            gated(gate::heartbeat(&b, &c, &r), || {
                heartbeat::handle(&b.groups, r, v)
            })
        }),
        ApiKey::LeaveGroup => respond(&m, request, move |r, v| {
            gated(gate::leave_group(&b, &c, &r), || {
                leave_group::handle(&b.groups, r, v)
            })
        }),
        ApiKey::OffsetCommit => respond(&m, request, move |r, v| {
            split(
                r,
                |r| gate_items::offset_commit(&b, &c, r),
                |r| offset_commit::handle(&b.groups, r, v),
                |response: &mut OffsetCommitResponse, refused| response.topics.extend(refused),
            )
        }),
        ApiKey::OffsetFetch => respond(&m, request, move |r, v| {
            let groups = gate_items::offset_fetch_groups(&r);
            let pending = offset_fetch::handle(&b.groups, r, v);
            filtered(pending, move |response| {
                gate_items::offset_fetch(&b, &c, &groups, response)
            })
        }),
        ApiKey::ListGroups => respond(&m, request, move |r, v| {
            let pending = list_groups::handle(&b.groups, r, v);
            filtered(pending, move |response| {
                gate_items::list_groups(&b, &c, response)
            })
        }),
        ApiKey::DescribeGroups => respond(&m, request, move |r, v| {
            split(
                r,
                |r| gate_items::describe_groups(&b, &c, r),
                |r| describe_groups::handle(&b.groups, r, v),
                |response: &mut DescribeGroupsResponse, refused| response.groups.extend(refused),
            )
        }),
        ApiKey::DeleteGroups => respond(&m, request, move |r, v| {
            split(
                r,
                |r| gate_items::delete_groups(&b, &c, r),
                |r| delete_groups::handle(&b, r, v),
                |response: &mut DeleteGroupsResponse, refused| response.results.extend(refused),
            )
        }),
        ApiKey::OffsetDelete => respond(&m, request, move |r, v| {
            gated(gate::offset_delete(&b, &c, &r), || {
                split(
                    r,
                    |r| gate_items::offset_delete(&b, &c, r),
                    |r| offset_delete::handle(&b.groups, r, v),
                    |response: &mut OffsetDeleteResponse, refused| response.topics.extend(refused),
                )
            })
        }),
        ApiKey::InitProducerId => respond(&m, request, move |r, v| {
            gated(gate::init_producer_id(&b, &c, &r), || {
                init_producer_id::handle(&b, r, v)
            })
        }),
        ApiKey::AddPartitionsToTxn => respond(&m, request, move |r, v| {
            gated(gate::add_partitions_to_txn(&b, &c, &r, v), || {
                add_partitions_to_txn::handle(&b, r, v)
            })
        }),
        ApiKey::EndTxn => respond(&m, request, move |r, v| {
            gated(gate::end_txn(&b, &c, &r), || {
                end_txn::handle(&b.transaction_coordinators, r, v)
            })
        }),
        ApiKey::AddOffsetsToTxn => respond(&m, request, move |r, v| {
            gated(gate::add_offsets_to_txn(&b, &c, &r), || {
                add_offsets_to_txn::handle(&b, r, v)
            })
        }),
        ApiKey::TxnOffsetCommit => respond(&m, request, move |r, v| {
            split(
                r,
                |r| gate_items::txn_offset_commit(&b, &c, r),
                |r| txn_offset_commit::handle(&b, r, v),
                |response: &mut TxnOffsetCommitResponse, refused| response.topics.extend(refused),
            )
        }),
        ApiKey::DescribeTransactions => respond(&m, request, move |r, v| {
            split(
                r,
                |r| gate_items::describe_transactions(&b, &c, r),
                |r| describe_transactions::handle(&b.transaction_coordinators, r, v),
                |response: &mut DescribeTransactionsResponse, refused| {
                    response.transaction_states.extend(refused)
                },
            )
        }),
        ApiKey::ListTransactions => respond(&m, request, move |r, v| {
            let pending = list_transactions::handle(&b.transaction_coordinators, r, v);
            filtered(pending, move |response| {
                gate_items::list_transactions(&b, &c, response)
            })
        }),
        ApiKey::DescribeProducers => respond(&m, request, move |r, v| {
            split(
                r,
                |r| gate_items::describe_producers(&b, &c, r),
                |r| describe_producers::handle(&b, r, v),
                |response: &mut DescribeProducersResponse, refused| response.topics.extend(refused),
            )
        }),
        ApiKey::WriteTxnMarkers => respond(&m, request, move |r, v| {
            gated(gate::write_txn_markers(&b, &c, &r), || {
                write_txn_markers::handle(&b, r, v)
            })
        }),
        ApiKey::DescribeUserScramCredentials => respond(&m, request, move |r, v| {
            gated(gate::describe_scram(&b, &c, &r), || {
                scram_credentials::describe(&b, r, v)
            })
        }),
        ApiKey::AlterUserScramCredentials => respond(&m, request, move |r, v| {
            gated(gate::alter_scram(&b, &c, &r), || {
                scram_credentials::alter(&b, r, v)
            })
        }),
        ApiKey::CreateAcls => respond(&m, request, move |r, v| acls::create(&b, &c, r, v)),
        ApiKey::DescribeAcls => respond(&m, request, move |r, v| acls::describe(&b, &c, r, v)),
        ApiKey::DeleteAcls => respond(&m, request, move |r, v| acls::delete(&b, &c, r, v)),
        ApiKey::DescribeClientQuotas => respond(&m, request, move |r, v| {
            client_quotas::describe(&b, &c, r, v)
        }),
        ApiKey::AlterClientQuotas => {
            respond(&m, request, move |r, v| client_quotas::alter(&b, &c, r, v))
        }
        ApiKey::SaslHandshake | ApiKey::SaslAuthenticate => Err(ProtocolError::Malformed {
            what: "request",
            reason: "a SASL request past the connection's session".into(),
        }),
        other => unreachable!("route called for {other:?}, which SUPPORTED does not list"),
    }
}

/// The first of each run of items with the same key, in request order. An API that answers
/// per name answers a repeated name once: otherwise a small request naming one large thing
/// (a topic with 10,000 partitions, a group of 1,000 members) a million times demands an
/// answer of any size. Kafka does the same for Metadata; for DescribeGroups, DescribeConfigs
/// and the other describes it answers every repeat, which no client relies on.
pub(crate) fn first_of_each<T, K: Eq + std::hash::Hash>(
    items: impl IntoIterator<Item = T>,
    key: impl Fn(&T) -> K,
) -> Vec<T> {
    let mut seen = std::collections::HashSet::new();
    items
        .into_iter()
        .filter(|item| seen.insert(key(item)))
        .collect()
}

/// A future that is already done: for handlers that answer at once.
pub(crate) fn now<T>(value: T) -> std::future::Ready<Option<T>> {
    std::future::ready(Some(value))
}

#[cfg(test)]
mod tests {
    use super::SUPPORTED;

    /// The request fuzz target lists its decoders by hand: every API served must have one.
    #[test]
    fn every_served_api_is_fuzzed() {
        let target = include_str!("../../../../fuzz/fuzz_targets/request_decode.rs");
        for (key, _, _) in SUPPORTED {
            let arm = format!("ApiKey::{key:?} =>");
            assert!(
                target.contains(&arm),
                "fuzz/fuzz_targets/request_decode.rs lacks {arm}"
            );
        }
    }
}
