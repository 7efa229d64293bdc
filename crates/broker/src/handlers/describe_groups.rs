//! DescribeGroups (v0–v6): state, protocol, and each member's metadata and assignment. An
//! unknown group is `Dead` (and, from v6, GROUP_ID_NOT_FOUND), as in Kafka. A KIP-848 group is
//! shown as Kafka shows it here: protocol type `consumer`, its assignor as the protocol, and
//! each member's subscription and assignment in the classic consumer protocol's encoding, so
//! tools that compute lag from DescribeGroups see both kinds alike.

use super::{first_of_each, now};
use crate::groups::Groups;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{
    ConsumerProtocolAssignment, ConsumerProtocolSubscription, TopicName,
};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};
use kafka_protocol::protocol::Encodable;
use kafka_protocol::protocol::StrBytes;
use sluice_group::{GroupDescription, MemberDescription};
use std::sync::Arc;

pub(crate) fn handle(
    groups: &Arc<Groups>,
    request: DescribeGroupsRequest,
    version: i16,
) -> std::future::Ready<Option<DescribeGroupsResponse>> {
    let groups = first_of_each(request.groups, |id| id.0.clone())
        .into_iter()
        .map(|id| {
            let described = groups.read(&id.0, |c| {
                c.describe_consumer_group(&id.0)
                    .map_or_else(|| c.describe_group(&id.0), consumer_as_classic)
            });
            let d = match described {
                Ok(d) => d,
                Err(e) => {
                    return DescribedGroup::default()
                        .with_group_id(id)
                        .with_error_code(crate::error::group_code(Some(&e)));
                }
            };
            let members = d
                .members
                .into_iter()
                .map(|m| {
                    DescribedGroupMember::default()
                        .with_member_id(StrBytes::from_string(m.member_id))
                        .with_group_instance_id(if version >= 4 {
                            m.group_instance_id.map(StrBytes::from_string)
                        } else {
                            None
                        })
                        .with_client_id(StrBytes::from_string(m.client_id))
                        .with_client_host(StrBytes::from_string(m.client_host))
                        .with_member_metadata(m.metadata)
                        .with_member_assignment(m.assignment)
                })
                .collect();
            let mut group = DescribedGroup::default()
                .with_group_id(id)
                .with_group_state(StrBytes::from_static_str(d.state))
                .with_protocol_type(StrBytes::from_string(d.protocol_type))
                .with_protocol_data(StrBytes::from_string(d.protocol))
                .with_members(members);
            if version >= 6 && d.state == "Dead" {
                group.error_code = ResponseError::GroupIdNotFound.code();
                group.error_message = Some(StrBytes::from_static_str("group not found"));
            }
            group
        })
        .collect();
    now(DescribeGroupsResponse::default().with_groups(groups))
}

fn consumer_as_classic(d: sluice_group::ConsumerGroupDescription) -> GroupDescription {
    GroupDescription {
        group_id: d.group_id,
        state: d.state,
        protocol_type: "consumer".to_owned(),
        protocol: d.assignor,
        members: d
            .members
            .into_iter()
            .map(|m| MemberDescription {
                member_id: m.member_id,
                group_instance_id: m.instance_id,
                client_id: m.client_id,
                client_host: m.client_host,
                metadata: encode_versioned(
                    &ConsumerProtocolSubscription::default().with_topics(
                        m.subscribed_topics
                            .into_iter()
                            .map(StrBytes::from_string)
                            .collect(),
                    ),
                ),
                assignment: encode_versioned(
                    &ConsumerProtocolAssignment::default().with_assigned_partitions(
                        m.assignment
                            .into_iter()
                            .map(|(topic, ps)| {
                                TopicPartition::default()
                                    .with_topic(TopicName(StrBytes::from_string(topic)))
                                    .with_partitions(ps.into_iter().collect())
                            })
                            .collect(),
                    ),
                ),
            })
            .collect(),
    }
}

/// The classic consumer protocol's encoding: a version (0 here), then the message.
fn encode_versioned(message: &impl Encodable) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i16(0);
    match message.encode(&mut buf, 0) {
        Ok(()) => buf.freeze(),
        Err(_) => Bytes::new(),
    }
}
