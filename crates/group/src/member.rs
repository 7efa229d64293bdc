//! One member of a classic group: what it offered in its last JoinGroup, what it was
//! assigned, and which of its requests are parked.

use crate::record::MemberMetadata;
use crate::types::{JoinRequest, Protocol, WaiterId};
use bytes::Bytes;

#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocols: Vec<Protocol>,
    pub assignment: Bytes,
    /// A JoinGroup of this member waits for the join phase to end.
    pub join_waiter: Option<WaiterId>,
    /// A SyncGroup of this member waits for the leader's assignment.
    pub sync_waiter: Option<WaiterId>,
    /// The member is removed if nothing is heard from it by then (and nothing of it is parked).
    pub heartbeat_deadline_ms: i64,
}

impl Member {
    pub fn new(id: String, req: &JoinRequest, now_ms: i64) -> Member {
        Member {
            id,
            instance_id: req.group_instance_id.clone(),
            client_id: req.client_id.clone(),
            client_host: req.client_host.clone(),
            session_timeout_ms: req.session_timeout_ms,
            rebalance_timeout_ms: req.rebalance_timeout_ms,
            protocols: req.protocols.clone(),
            assignment: Bytes::new(),
            join_waiter: None,
            sync_waiter: None,
            heartbeat_deadline_ms: now_ms + i64::from(req.session_timeout_ms),
        }
    }

    /// Takes what a (re)join says about the member.
    pub fn update(&mut self, req: &JoinRequest) {
        self.client_id.clone_from(&req.client_id);
        self.client_host.clone_from(&req.client_host);
        self.session_timeout_ms = req.session_timeout_ms;
        self.rebalance_timeout_ms = req.rebalance_timeout_ms;
        self.protocols.clone_from(&req.protocols);
    }

    pub fn heard_from(&mut self, now_ms: i64) {
        self.heartbeat_deadline_ms = now_ms + i64::from(self.session_timeout_ms);
    }

    pub fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|p| p.name == protocol)
            .map(|p| p.metadata.clone())
            .unwrap_or_default()
    }

    pub fn supports(&self, protocol: &str) -> bool {
        self.protocols.iter().any(|p| p.name == protocol)
    }

    /// A parked request keeps a member alive: its client is waiting on us, not silent.
    pub fn is_waiting(&self) -> bool {
        self.join_waiter.is_some() || self.sync_waiter.is_some()
    }

    pub fn to_record(&self, protocol: Option<&str>) -> MemberMetadata {
        MemberMetadata {
            member_id: self.id.clone(),
            group_instance_id: self.instance_id.clone(),
            client_id: self.client_id.clone(),
            client_host: self.client_host.clone(),
            rebalance_timeout_ms: self.rebalance_timeout_ms,
            session_timeout_ms: self.session_timeout_ms,
            subscription: protocol.map(|p| self.metadata_for(p)).unwrap_or_default(),
            assignment: self.assignment.clone(),
        }
    }

    pub fn from_record(m: MemberMetadata, protocol: Option<&str>, now_ms: i64) -> Member {
        Member {
            protocols: protocol
                .map(|name| {
                    vec![Protocol {
                        name: name.to_owned(),
                        metadata: m.subscription.clone(),
                    }]
                })
                .unwrap_or_default(),
            id: m.member_id,
            instance_id: m.group_instance_id,
            client_id: m.client_id,
            client_host: m.client_host,
            session_timeout_ms: m.session_timeout_ms,
            rebalance_timeout_ms: m.rebalance_timeout_ms,
            assignment: m.assignment,
            join_waiter: None,
            sync_waiter: None,
            heartbeat_deadline_ms: now_ms + i64::from(m.session_timeout_ms),
        }
    }
}
