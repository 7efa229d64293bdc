//! JoinGroup (v0–v9). The request parks until the group's join phase ends; the coordinator
//! (`sluice_group`) decides everything, this file only translates.

use crate::error::group_code;
use crate::groups::Groups;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};
use kafka_protocol::protocol::StrBytes;
use sluice_group::{JoinRequest, JoinResponse, Protocol};
use std::future::Future;
use std::sync::Arc;

/// Who sent the request, as DescribeGroups reports it.
pub(crate) struct Client {
    pub id: String,
    pub host: String,
}

impl Client {
    pub(crate) fn of(request: &sluice_protocol::RequestFrame, peer: std::net::SocketAddr) -> Self {
        Client {
            id: request
                .header
                .client_id
                .as_ref()
                .map(|c| c.to_string())
                .unwrap_or_default(),
            host: format!("/{}", peer.ip()),
        }
    }
}

pub(crate) fn handle(
    groups: &Arc<Groups>,
    request: JoinGroupRequest,
    version: i16,
    client: Client,
) -> impl Future<Output = Option<JoinGroupResponse>> + Send + 'static + use<> {
    let req = JoinRequest {
        group_id: request.group_id.0.to_string(),
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.map(|s| s.to_string()),
        client_id: client.id,
        client_host: client.host,
        session_timeout_ms: request.session_timeout_ms,
        // v0 has no rebalance timeout: the session timeout served as both.
        rebalance_timeout_ms: if version >= 1 {
            request.rebalance_timeout_ms
        } else {
            request.session_timeout_ms
        },
        protocol_type: request.protocol_type.to_string(),
        protocols: request
            .protocols
            .into_iter()
            .map(|p| Protocol {
                name: p.name.to_string(),
                metadata: p.metadata,
            })
            .collect(),
        require_known_member_id: version >= 4,
    };
    let groups = groups.clone();
    async move { Some(to_wire(groups.join(req).await, version)) }
}

fn to_wire(r: JoinResponse, version: i16) -> JoinGroupResponse {
    let members = r
        .members
        .into_iter()
        .map(|m| {
            JoinGroupResponseMember::default()
                .with_member_id(StrBytes::from_string(m.member_id))
                .with_group_instance_id(if version >= 5 {
                    m.group_instance_id.map(StrBytes::from_string)
                } else {
                    None
                })
                .with_metadata(m.metadata)
        })
        .collect();
    JoinGroupResponse::default()
        .with_error_code(group_code(r.error.as_ref()))
        .with_generation_id(r.generation)
        .with_protocol_type(if version >= 7 {
            r.protocol_type.map(StrBytes::from_string)
        } else {
            None
        })
        .with_protocol_name(match (version >= 7, r.protocol_name) {
            (true, name) => name.map(StrBytes::from_string),
            // Before v7 the field is not nullable.
            (false, name) => Some(StrBytes::from_string(name.unwrap_or_default())),
        })
        .with_leader(StrBytes::from_string(r.leader))
        .with_member_id(StrBytes::from_string(r.member_id))
        .with_members(members)
}
