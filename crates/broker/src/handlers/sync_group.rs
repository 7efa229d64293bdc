//! SyncGroup (v0–v5): followers park until the leader sends the assignment.

use crate::error::group_code;
use crate::groups::Groups;
use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};
use kafka_protocol::protocol::StrBytes;
use sluice_group::SyncRequest;
use std::future::Future;
use std::sync::Arc;

pub(crate) fn handle(
    groups: &Arc<Groups>,
    request: SyncGroupRequest,
    version: i16,
) -> impl Future<Output = Option<SyncGroupResponse>> + Send + 'static + use<> {
    let req = SyncRequest {
        group_id: request.group_id.0.to_string(),
        generation: request.generation_id,
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.map(|s| s.to_string()),
        protocol_type: request.protocol_type.map(|s| s.to_string()),
        protocol_name: request.protocol_name.map(|s| s.to_string()),
        assignments: request
            .assignments
            .into_iter()
            .map(|a| (a.member_id.to_string(), a.assignment))
            .collect(),
    };
    let groups = groups.clone();
    async move {
        let r = groups.sync(req).await;
        let mut response = SyncGroupResponse::default()
            .with_error_code(group_code(r.error.as_ref()))
            .with_assignment(r.assignment);
        if version >= 5 {
            response.protocol_type = r.protocol_type.map(StrBytes::from_string);
            response.protocol_name = r.protocol_name.map(StrBytes::from_string);
        }
        Some(response)
    }
}
