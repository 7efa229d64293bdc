//! DescribeGroups (v0–v6): state, protocol, and each member's metadata and assignment. An
//! unknown group is `Dead` (and, from v6, GROUP_ID_NOT_FOUND), as in Kafka.

use super::now;
use crate::server::Broker;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};
use kafka_protocol::protocol::StrBytes;
use std::sync::Arc;

pub(crate) fn handle(
    broker: &Arc<Broker>,
    request: DescribeGroupsRequest,
    version: i16,
) -> std::future::Ready<Option<DescribeGroupsResponse>> {
    let groups = request
        .groups
        .into_iter()
        .map(|id| {
            let d = broker.groups().read(&id.0, |c| c.describe_group(&id.0));
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
