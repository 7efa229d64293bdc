//! The coordinator's inputs and outputs: plain values, no wire types. The broker translates
//! Kafka messages into these and back.

use crate::GroupError;
use bytes::Bytes;

/// Names a parked JoinGroup or SyncGroup request; the broker chooses it and gets it back in the
/// `Reply` that answers the request, possibly from a later command or a deadline.
pub type WaiterId = u64;

/// Broker settings that bound what members may ask for.
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// `group.min.session.timeout.ms`
    pub session_timeout_ms_min: i32,
    /// `group.max.session.timeout.ms`
    pub session_timeout_ms_max: i32,
    /// `group.initial.rebalance.delay.ms`: how long the first rebalance of an empty group
    /// waits for more members, so that a fleet starting together settles in one rebalance.
    pub initial_rebalance_delay_ms: i32,
    /// `group.max.size`, at most `limits::GROUP_MEMBERS_MAX`.
    pub members_max: usize,
    /// `group.consumer.session.timeout.ms`: how long a KIP-848 member may go without a
    /// heartbeat.
    pub consumer_session_timeout_ms: i32,
    /// `group.consumer.heartbeat.interval.ms`: how often KIP-848 members are told to
    /// heartbeat.
    pub consumer_heartbeat_interval_ms: i32,
    /// `offsets.retention.minutes`, in ms: a group without members loses a committed offset
    /// this long after it was committed.
    pub offsets_retention_ms: i64,
}

impl Default for GroupConfig {
    /// Kafka 4's defaults, except `group.max.size` (unbounded in Kafka).
    fn default() -> Self {
        GroupConfig {
            session_timeout_ms_min: 6_000,
            session_timeout_ms_max: 1_800_000,
            initial_rebalance_delay_ms: 3_000,
            members_max: sluice_types::limits::GROUP_MEMBERS_MAX,
            consumer_session_timeout_ms: 45_000,
            consumer_heartbeat_interval_ms: 5_000,
            offsets_retention_ms: 7 * 24 * 60 * 60 * 1000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protocol {
    pub name: String,
    pub metadata: Bytes,
}

#[derive(Debug, Clone)]
pub struct JoinRequest {
    pub group_id: String,
    /// Empty for a member joining for the first time.
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<Protocol>,
    /// JoinGroup v4 and later (KIP-394): a new dynamic member first gets a member id with
    /// `MEMBER_ID_REQUIRED` and joins again with it.
    pub require_known_member_id: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub metadata: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JoinResponse {
    pub error: Option<GroupError>,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// Filled for the leader only: every member and its metadata for the chosen protocol.
    pub members: Vec<JoinedMember>,
}

impl JoinResponse {
    pub fn error_for(error: GroupError, member_id: &str) -> Self {
        JoinResponse {
            error: Some(error),
            generation: -1,
            member_id: member_id.to_owned(),
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone)]
pub struct SyncRequest {
    pub group_id: String,
    pub generation: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    /// Sent by the leader only: each member's assignment.
    pub assignments: Vec<(String, Bytes)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SyncResponse {
    pub error: Option<GroupError>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResponse {
    pub fn error_for(error: GroupError) -> Self {
        SyncResponse {
            error: Some(error),
            ..Default::default()
        }
    }
}

/// An answer to a parked request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Join(WaiterId, JoinResponse),
    Sync(WaiterId, SyncResponse),
}

/// Who sends a heartbeat, commit or leave: the member and the generation it believes in.
#[derive(Debug, Clone, Default)]
pub struct MemberRef {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub generation: i32,
}

#[derive(Debug, Clone)]
pub struct OffsetToCommit {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

/// A group as ListGroups shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    pub group_id: String,
    pub protocol_type: String,
    pub state: &'static str,
    /// `classic` or `consumer` (KIP-848).
    pub group_type: &'static str,
}

/// Partitions per topic name.
pub type Assignment = std::collections::BTreeMap<String, std::collections::BTreeSet<i32>>;

/// A ConsumerGroupHeartbeat (KIP-848). `None` fields are unchanged since the last heartbeat.
#[derive(Debug, Clone, Default)]
pub struct ConsumerHeartbeat {
    pub group_id: String,
    /// Empty on a first heartbeat of ConsumerGroupHeartbeat v0 (the coordinator names the
    /// member); v1 clients name themselves.
    pub member_id: String,
    /// 0 to join, -1 to leave, -2 for a static member to leave but keep its place.
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub subscribed_topics: Option<Vec<String>>,
    pub subscribed_regex: Option<String>,
    pub server_assignor: Option<String>,
    /// The partitions the member owns now.
    pub owned: Option<Assignment>,
    pub client_id: String,
    pub client_host: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConsumerHeartbeatResponse {
    pub error: Option<GroupError>,
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    /// The member's whole assignment, when it changed.
    pub assignment: Option<Assignment>,
}

impl ConsumerHeartbeatResponse {
    pub fn error_for(error: GroupError, member_id: &str) -> Self {
        ConsumerHeartbeatResponse {
            error: Some(error),
            member_id: member_id.to_owned(),
            member_epoch: -1,
            ..Default::default()
        }
    }
}

/// A KIP-848 member as ConsumerGroupDescribe shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerMemberDescription {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub member_epoch: i32,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topics: Vec<String>,
    pub subscribed_regex: Option<String>,
    pub assignment: Assignment,
    pub target_assignment: Assignment,
}

/// A KIP-848 group as ConsumerGroupDescribe shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroupDescription {
    pub group_id: String,
    /// `Empty`, `Reconciling` or `Stable` (as ListGroups names them).
    pub state: &'static str,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub assignor: String,
    pub members: Vec<ConsumerMemberDescription>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

/// A group as DescribeGroups shows it; an unknown group is `Dead` with no members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub group_id: String,
    pub state: &'static str,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<MemberDescription>,
}

/// A ShareGroupHeartbeat (KIP-932), with the group's settings the broker read for it.
#[derive(Debug, Clone, Default)]
pub struct ShareHeartbeat {
    pub group_id: String,
    /// Named by the member itself (v1).
    pub member_id: String,
    /// 0 to join, -1 to leave.
    pub member_epoch: i32,
    pub rack_id: Option<String>,
    /// `None`: unchanged since the last heartbeat.
    pub subscribed_topics: Option<Vec<String>>,
    pub client_id: String,
    pub client_host: String,
    /// The group's `share.session.timeout.ms`.
    pub session_timeout_ms: i32,
    /// The group's `share.heartbeat.interval.ms`.
    pub heartbeat_interval_ms: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ShareHeartbeatResponse {
    pub error: Option<GroupError>,
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    /// The member's whole assignment, when it changed.
    pub assignment: Option<Assignment>,
}

impl ShareHeartbeatResponse {
    pub fn error_for(error: GroupError, member_id: &str) -> Self {
        ShareHeartbeatResponse {
            error: Some(error),
            member_id: member_id.to_owned(),
            member_epoch: -1,
            ..Default::default()
        }
    }
}

/// A share group member as ShareGroupDescribe shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareMemberDescription {
    pub member_id: String,
    pub rack_id: Option<String>,
    pub member_epoch: i32,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topics: Vec<String>,
    pub assignment: Assignment,
}

/// A share group as ShareGroupDescribe shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareGroupDescription {
    pub group_id: String,
    /// `Empty` or `Stable`.
    pub state: &'static str,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub assignor: String,
    pub members: Vec<ShareMemberDescription>,
}
