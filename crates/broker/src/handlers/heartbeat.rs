//! Heartbeat (v0–v4): keeps a member's session alive and tells it when to rejoin.

use crate::error::group_code;
use crate::groups::Groups;
use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};
use sluice_group::{Effects, MemberRef};
use std::future::Future;
use std::sync::Arc;

pub(crate) fn handle(
    groups: &Arc<Groups>,
    request: HeartbeatRequest,
    _version: i16,
) -> impl Future<Output = Option<HeartbeatResponse>> + Send + 'static + use<> {
    let group_id = request.group_id.0.to_string();
    let who = MemberRef {
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.map(|s| s.to_string()),
        generation: request.generation_id,
    };
    let groups = groups.clone();
    async move {
        let result = groups
            .execute(&group_id, |c, now| {
                (Effects::default(), c.heartbeat(&group_id, &who, now))
            })
            .await
            .and_then(|r| r);
        Some(HeartbeatResponse::default().with_error_code(group_code(result.err().as_ref())))
    }
}
