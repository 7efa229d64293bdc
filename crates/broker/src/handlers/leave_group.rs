//! LeaveGroup (v0–v5): one member (v0–v2) or a batch of them, by member id or, for static
//! members, by `group.instance.id` (v3+).

use crate::error::group_code;
use crate::groups::Groups;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};
use sluice_group::MemberRef;
use std::future::Future;
use std::sync::Arc;

pub(crate) fn handle(
    groups: &Arc<Groups>,
    request: LeaveGroupRequest,
    version: i16,
) -> impl Future<Output = Option<LeaveGroupResponse>> + Send + 'static + use<> {
    let group_id = request.group_id.0.to_string();
    let members: Vec<MemberRef> = if version >= 3 {
        request
            .members
            .iter()
            .map(|m| MemberRef {
                member_id: m.member_id.to_string(),
                group_instance_id: m.group_instance_id.as_ref().map(|s| s.to_string()),
                generation: -1,
            })
            .collect()
    } else {
        vec![MemberRef {
            member_id: request.member_id.to_string(),
            group_instance_id: None,
            generation: -1,
        }]
    };
    let groups = groups.clone();
    async move {
        let result = groups
            .execute(&group_id, |c, now| c.leave(&group_id, &members, now))
            .await
            .and_then(|r| r);
        let mut response = LeaveGroupResponse::default();
        match result {
            Err(e) => response.error_code = group_code(Some(&e)),
            Ok(results) if version >= 3 => {
                response.members = request
                    .members
                    .into_iter()
                    .zip(results)
                    .map(|(m, r)| {
                        MemberResponse::default()
                            .with_member_id(m.member_id)
                            .with_group_instance_id(m.group_instance_id)
                            .with_error_code(group_code(r.err().as_ref()))
                    })
                    .collect();
            }
            Ok(results) => {
                response.error_code =
                    group_code(results.into_iter().find_map(Result::err).as_ref());
            }
        }
        Some(response)
    }
}
