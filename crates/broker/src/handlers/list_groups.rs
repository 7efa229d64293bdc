//! ListGroups (v0–v5), with the state (v4+) and type (v5+: `classic` or `consumer`) filters.

use super::now;
use crate::groups::Groups;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};
use kafka_protocol::protocol::StrBytes;
use std::sync::Arc;

pub(crate) fn handle(
    groups: &Arc<Groups>,
    request: ListGroupsRequest,
    version: i16,
) -> std::future::Ready<Option<ListGroupsResponse>> {
    let wanted = |filter: &[StrBytes], value: &str| {
        filter.is_empty() || filter.iter().any(|f| f.eq_ignore_ascii_case(value))
    };
    let groups = groups
        .read_all(|c| c.list_groups())
        .into_iter()
        .filter(|g| wanted(&request.states_filter, g.state))
        .filter(|g| wanted(&request.types_filter, g.group_type))
        .map(|g| {
            let mut listed = ListedGroup::default()
                .with_group_id(GroupId(StrBytes::from_string(g.group_id)))
                .with_protocol_type(StrBytes::from_string(g.protocol_type));
            if version >= 4 {
                listed.group_state = StrBytes::from_static_str(g.state);
            }
            if version >= 5 {
                listed.group_type = StrBytes::from_static_str(g.group_type);
            }
            listed
        })
        .collect();
    now(ListGroupsResponse::default().with_groups(groups))
}
