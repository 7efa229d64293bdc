//! A consumer group of the KIP-848 protocol: the coordinator assigns partitions itself and
//! each member moves towards its target one heartbeat at a time, without a group-wide pause.
//!
//! Epochs: the *group epoch* rises whenever membership, a subscription or a subscribed topic's
//! partition count changes; the *assignment epoch* is the group epoch the target assignment was
//! computed for (computed at once here, so the two are equal after every command); each
//! member's *member epoch* reaches the assignment epoch once it holds no partition that its
//! target gives to someone else. Reconciling one member:
//!
//! 1. It owns partitions outside its target: its assignment shrinks to the overlap and the rest
//!    wait in `pending_revocation` until a heartbeat shows it let them go (its epoch stays).
//! 2. Otherwise it moves to the assignment epoch and gets every target partition no other
//!    member still holds; the rest follow on later heartbeats, once released.
//!
//! A member that does not release within its rebalance timeout, or goes silent for the
//! session timeout, is removed. A static member leaving with epoch -2 keeps its place (and its
//! partitions, which nobody else gets) until its session times out; a new instance with the
//! same `group.instance.id` takes over without a rebalance.
//!
//! Persistence: the whole group is one snapshot record (`record::ConsumerGroupSnapshot`),
//! written whenever `dirty` is set; `from_snapshot` rebuilds it.

use crate::GroupError;
use crate::assignor::{self, MemberSpec};
use crate::record::{ConsumerGroupSnapshot, ConsumerMemberSnapshot};
use crate::types::{
    Assignment, ConsumerGroupDescription, ConsumerHeartbeat, ConsumerHeartbeatResponse,
    ConsumerMemberDescription, GroupConfig,
};
use sluice_types::limits::{
    CLIENT_ID_BYTES_MAX, GROUP_ID_BYTES_MAX, TOPIC_NAME_CHARS_MAX, TOPICS_MAX,
};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone)]
pub(crate) struct ConsumerMember {
    pub id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub subscribed: BTreeSet<String>,
    /// A regular expression subscription (KIP-848's `SubscribedTopicRegex`), matched against
    /// whole topic names, and the topics it matched at the last heartbeat.
    regex: Option<(String, regex::Regex)>,
    matched: BTreeSet<String>,
    pub server_assignor: Option<String>,
    pub member_epoch: i32,
    pub previous_epoch: i32,
    pub assigned: Assignment,
    pub pending_revocation: Assignment,
    /// Left with epoch -2: its place is kept until the session ends.
    pub left_static: bool,
    session_deadline_ms: i64,
    revocation_deadline_ms: Option<i64>,
    /// The assignment last sent to the member (volatile: after a restart it is sent again).
    sent: Option<Assignment>,
}

#[derive(Debug)]
pub(crate) struct ConsumerGroup {
    pub id: String,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub members: BTreeMap<String, ConsumerMember>,
    pub target: BTreeMap<String, Assignment>,
    /// Partition counts of the subscribed topics the target was computed from.
    partition_counts: BTreeMap<String, i32>,
    /// When the group epoch last moved (volatile).
    changed_at_ms: i64,
    pub dirty: bool,
}

/// The heartbeat interval members are given while their group settles: until every member
/// holds its target, and for one configured interval after the group last changed (so a member
/// that joined just before others hears about them quickly). Kafka always answers with the
/// configured interval (5 s by default), so a group that many members join at once takes
/// several intervals to settle; here it takes a few of these.
const SETTLING_HEARTBEAT_INTERVAL_MS: i32 = 100;

/// What the coordinator needs to know about topics, lent by the broker on each heartbeat.
pub trait Topics {
    /// The partition count of a topic, `None` if it does not exist.
    fn partition_count(&self, topic: &str) -> Option<i32>;
    /// Every topic a regular expression subscription may match (internal ones excluded).
    fn names(&self) -> Vec<String>;
}

/// A partition-count function is a topic view with no names to match (tests).
impl<F: Fn(&str) -> Option<i32>> Topics for F {
    fn partition_count(&self, topic: &str) -> Option<i32> {
        self(topic)
    }
    fn names(&self) -> Vec<String> {
        Vec::new()
    }
}

pub type TopicPartitionCounts<'a> = &'a dyn Topics;

fn compile(regex: &str) -> Result<regex::Regex, GroupError> {
    if regex.len() > sluice_types::limits::GROUP_SUBSCRIPTION_REGEX_BYTES_MAX {
        return Err(GroupError::InvalidRegularExpression("too long".into()));
    }
    // Kafka (RE2/J `matches()`) matches the whole name.
    regex::Regex::new(&format!("^(?:{regex})$"))
        .map_err(|e| GroupError::InvalidRegularExpression(e.to_string()))
}

impl ConsumerGroup {
    pub fn new(id: String) -> ConsumerGroup {
        ConsumerGroup {
            id,
            group_epoch: 0,
            assignment_epoch: 0,
            members: BTreeMap::new(),
            target: BTreeMap::new(),
            partition_counts: BTreeMap::new(),
            changed_at_ms: 0,
            dirty: false,
        }
    }

    pub fn state(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if self.group_epoch > self.assignment_epoch {
            "Assigning"
        } else if self
            .members
            .values()
            .any(|m| m.member_epoch != self.assignment_epoch || !m.pending_revocation.is_empty())
        {
            "Reconciling"
        } else {
            "Stable"
        }
    }

    pub fn heartbeat(
        &mut self,
        req: ConsumerHeartbeat,
        config: &GroupConfig,
        topics: TopicPartitionCounts<'_>,
        now_ms: i64,
    ) -> ConsumerHeartbeatResponse {
        let new_regex = match self.check_request(&req) {
            Ok(regex) => regex,
            Err(e) => return ConsumerHeartbeatResponse::error_for(e, &req.member_id),
        };
        let result = match req.member_epoch {
            -1 | -2 => return self.leave(&req),
            0 => self.join(&req, config, now_ms),
            epoch if epoch > 0 => self.check_member(&req, epoch),
            _ => Err(GroupError::InvalidRequest("member epoch below -2")),
        };
        let member_id = match result {
            Ok(id) => id,
            Err(e) => return ConsumerHeartbeatResponse::error_for(e, &req.member_id),
        };
        let joined = req.member_epoch == 0;
        let epoch_before = self.group_epoch;
        self.update_member(&member_id, &req, new_regex, config, now_ms);
        self.refresh_target(topics);
        self.reconcile(&member_id, req.owned.as_ref(), now_ms);
        if self.group_epoch != epoch_before || joined {
            self.changed_at_ms = now_ms;
        }
        let heartbeat_interval_ms = self.heartbeat_interval_ms(config, now_ms);
        let member = self.members.get_mut(&member_id).expect("updated above");
        let changed = member.sent.as_ref() != Some(&member.assigned);
        let reported_differs = req.owned.as_ref().is_some_and(|o| o != &member.assigned);
        let assignment = (joined || changed || reported_differs).then(|| member.assigned.clone());
        if changed {
            member.sent.clone_from(&assignment);
        }
        ConsumerHeartbeatResponse {
            error: None,
            member_id,
            member_epoch: member.member_epoch,
            heartbeat_interval_ms,
            assignment,
        }
    }

    fn join(
        &mut self,
        req: &ConsumerHeartbeat,
        config: &GroupConfig,
        now_ms: i64,
    ) -> Result<String, GroupError> {
        if req.subscribed_topics.is_none() && req.subscribed_regex.is_none() {
            return Err(GroupError::InvalidRequest(
                "a joining member must send its subscribed topic names or regex",
            ));
        }
        if req
            .server_assignor
            .as_deref()
            .is_some_and(|a| !assignor::is_supported(a))
        {
            return Err(GroupError::UnsupportedAssignor);
        }
        let member_id = if req.member_id.is_empty() {
            uuid::Uuid::new_v4().to_string()
        } else {
            req.member_id.clone()
        };
        if let Some(instance) = &req.instance_id
            && let Some(old) = self.static_member(instance)
        {
            if !self.members[&old].left_static && old != member_id {
                return Err(GroupError::UnreleasedInstanceId);
            }
            // The new instance takes the old one's place, epoch and partitions: no rebalance.
            let mut member = self.members.remove(&old).expect("found above");
            member.id.clone_from(&member_id);
            member.left_static = false;
            member.sent = None;
            if let Some(target) = self.target.remove(&old) {
                self.target.insert(member_id.clone(), target);
            }
            self.members.insert(member_id.clone(), member);
            self.dirty = true;
            return Ok(member_id);
        }
        if self.members.len() >= config.members_max && !self.members.contains_key(&member_id) {
            return Err(GroupError::GroupMaxSizeReached);
        }
        // A member rejoining with epoch 0 (after being fenced) starts over.
        self.members.insert(
            member_id.clone(),
            ConsumerMember {
                id: member_id.clone(),
                instance_id: req.instance_id.clone(),
                rack_id: None,
                client_id: req.client_id.clone(),
                client_host: req.client_host.clone(),
                rebalance_timeout_ms: req.rebalance_timeout_ms.max(0),
                subscribed: BTreeSet::new(),
                regex: None,
                matched: BTreeSet::new(),
                server_assignor: None,
                member_epoch: 0,
                previous_epoch: -1,
                assigned: Assignment::new(),
                pending_revocation: Assignment::new(),
                left_static: false,
                session_deadline_ms: now_ms,
                revocation_deadline_ms: None,
                sent: None,
            },
        );
        self.bump_epoch();
        Ok(member_id)
    }

    fn heartbeat_interval_ms(&self, config: &GroupConfig, now_ms: i64) -> i32 {
        let configured = config.consumer_heartbeat_interval_ms;
        let settling =
            self.state() != "Stable" || now_ms - self.changed_at_ms < i64::from(configured);
        if settling {
            configured.min(SETTLING_HEARTBEAT_INTERVAL_MS)
        } else {
            configured
        }
    }

    fn static_member(&self, instance: &str) -> Option<String> {
        self.members
            .values()
            .find(|m| m.instance_id.as_deref() == Some(instance))
            .map(|m| m.id.clone())
    }

    fn check_member(&self, req: &ConsumerHeartbeat, epoch: i32) -> Result<String, GroupError> {
        let member = self
            .members
            .get(&req.member_id)
            .ok_or(GroupError::UnknownMemberId)?;
        if epoch == member.member_epoch {
            return Ok(member.id.clone());
        }
        // The answer that moved the member to its current epoch may have been lost: Kafka
        // accepts the previous epoch when the member owns nothing it should not.
        let owns_only_assigned = req
            .owned
            .as_ref()
            .is_some_and(|owned| is_subset(owned, &member.assigned));
        if epoch == member.previous_epoch && owns_only_assigned {
            return Ok(member.id.clone());
        }
        Err(GroupError::FencedMemberEpoch)
    }

    /// Bounds every string that will be persisted, and compiles a regex the member did not
    /// already have (once per change, not per heartbeat).
    fn check_request(
        &self,
        req: &ConsumerHeartbeat,
    ) -> Result<Option<(String, regex::Regex)>, GroupError> {
        let ids = [
            Some(&req.member_id),
            req.instance_id.as_ref(),
            req.rack_id.as_ref(),
        ];
        if ids
            .into_iter()
            .flatten()
            .any(|id| id.len() > GROUP_ID_BYTES_MAX)
        {
            return Err(GroupError::LimitReached(
                "member, instance or rack id length",
            ));
        }
        if req.client_id.len().max(req.client_host.len()) > CLIENT_ID_BYTES_MAX {
            return Err(GroupError::LimitReached("client id length"));
        }
        if let Some(topics) = &req.subscribed_topics
            && (topics.len() > TOPICS_MAX
                || topics
                    .iter()
                    .any(|t| t.is_empty() || t.len() > TOPIC_NAME_CHARS_MAX))
        {
            return Err(GroupError::InvalidTopic);
        }
        let Some(r) = &req.subscribed_regex else {
            return Ok(None);
        };
        let current = self
            .members
            .get(&req.member_id)
            .and_then(|m| m.regex.as_ref());
        if current.is_some_and(|(old, _)| old == r) {
            return Ok(None);
        }
        Ok(Some((r.clone(), compile(r)?)))
    }

    fn update_member(
        &mut self,
        id: &str,
        req: &ConsumerHeartbeat,
        new_regex: Option<(String, regex::Regex)>,
        config: &GroupConfig,
        now: i64,
    ) {
        let member = self.members.get_mut(id).expect("checked");
        member.session_deadline_ms = now + i64::from(config.consumer_session_timeout_ms);
        let mut changed = false;
        if let Some(topics) = &req.subscribed_topics {
            let topics: BTreeSet<String> = topics.iter().cloned().collect();
            changed |= topics != member.subscribed;
            member.subscribed = topics;
        }
        if new_regex.is_some() {
            member.regex = new_regex;
            changed = true;
        }
        if req.server_assignor.is_some() && req.server_assignor != member.server_assignor {
            member.server_assignor.clone_from(&req.server_assignor);
            changed = true;
        }
        if req.rack_id.is_some() {
            member.rack_id.clone_from(&req.rack_id);
        }
        if req.rebalance_timeout_ms > 0 {
            member.rebalance_timeout_ms = req.rebalance_timeout_ms;
        }
        if changed {
            self.bump_epoch();
        }
    }

    fn bump_epoch(&mut self) {
        self.group_epoch += 1;
        self.dirty = true;
    }

    /// Recomputes the target if the group epoch moved, a regex matched other topics, or a
    /// subscribed topic changed size.
    fn refresh_target(&mut self, topics: TopicPartitionCounts<'_>) {
        if self.members.values().any(|m| m.regex.is_some()) {
            let names = topics.names();
            let mut changed = false;
            for m in self.members.values_mut() {
                let Some((_, regex)) = &m.regex else { continue };
                let matched: BTreeSet<String> = names
                    .iter()
                    .filter(|n| regex.is_match(n))
                    .cloned()
                    .collect();
                changed |= matched != m.matched;
                m.matched = matched;
            }
            if changed {
                self.bump_epoch();
            }
        }
        let subscribed: BTreeSet<&String> = self
            .members
            .values()
            .flat_map(|m| m.subscribed.iter().chain(&m.matched))
            .collect();
        let counts: BTreeMap<String, i32> = subscribed
            .into_iter()
            .filter_map(|t| topics.partition_count(t).map(|n| (t.clone(), n)))
            .collect();
        if counts != self.partition_counts {
            self.partition_counts = counts;
            self.bump_epoch();
        }
        if self.group_epoch == self.assignment_epoch {
            return;
        }
        let assignor = self.assignor();
        let effective: BTreeMap<&String, BTreeSet<String>> = self
            .members
            .iter()
            .map(|(id, m)| (id, m.subscribed.union(&m.matched).cloned().collect()))
            .collect();
        let specs: BTreeMap<String, MemberSpec<'_>> = effective
            .iter()
            .map(|(id, subscribed)| {
                let spec = MemberSpec {
                    subscribed,
                    previous: self.target.get(*id),
                };
                ((*id).clone(), spec)
            })
            .collect();
        self.target = assignor::assign(&assignor, &specs, &self.partition_counts);
        self.assignment_epoch = self.group_epoch;
        self.dirty = true;
    }

    /// The assignor most members asked for, `uniform` when none did.
    pub fn assignor(&self) -> String {
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some(a) = &m.server_assignor {
                *votes.entry(a).or_default() += 1;
            }
        }
        votes
            .into_iter()
            .max_by_key(|(name, n)| (*n, std::cmp::Reverse(*name)))
            .map_or(assignor::DEFAULT_ASSIGNOR.to_owned(), |(name, _)| {
                name.to_owned()
            })
    }

    /// Moves one member towards its target (see the module doc).
    fn reconcile(&mut self, id: &str, owned: Option<&Assignment>, now_ms: i64) {
        let target = self.target.get(id).cloned().unwrap_or_default();
        let epoch = self.assignment_epoch;
        let member = self.members.get_mut(id).expect("member exists");
        if let Some(owned) = owned
            && !member.pending_revocation.is_empty()
            && intersection(owned, &member.pending_revocation).is_empty()
        {
            member.pending_revocation.clear();
            member.revocation_deadline_ms = None;
            self.dirty = true;
        }
        if !member.pending_revocation.is_empty() {
            return;
        }
        let revoke = difference(&member.assigned, &target);
        if !revoke.is_empty() {
            member.assigned = intersection(&member.assigned, &target);
            member.pending_revocation = revoke;
            let timeout = i64::from(member.rebalance_timeout_ms);
            member.revocation_deadline_ms = Some(now_ms + timeout);
            self.dirty = true;
            return;
        }
        if member.member_epoch != epoch {
            member.previous_epoch = member.member_epoch;
            member.member_epoch = epoch;
            self.dirty = true;
        }
        let missing = difference(&target, &member.assigned);
        if missing.is_empty() {
            return;
        }
        // Only what no other member still holds (assigned or being revoked) can be handed out.
        let mut held_by_others = Assignment::new();
        for m in self.members.values().filter(|m| m.id != id) {
            extend(&mut held_by_others, &m.assigned);
            extend(&mut held_by_others, &m.pending_revocation);
        }
        let free = difference(&missing, &held_by_others);
        if !free.is_empty() {
            let member = self.members.get_mut(id).expect("member exists");
            extend(&mut member.assigned, &free);
            self.dirty = true;
        }
    }

    fn leave(&mut self, req: &ConsumerHeartbeat) -> ConsumerHeartbeatResponse {
        let Some(member) = self.members.get_mut(&req.member_id) else {
            return ConsumerHeartbeatResponse::error_for(
                GroupError::UnknownMemberId,
                &req.member_id,
            );
        };
        if req.member_epoch == -2 && member.instance_id.is_some() {
            member.left_static = true;
            self.dirty = true;
        } else {
            self.members.remove(&req.member_id);
            self.target.remove(&req.member_id);
            self.bump_epoch();
        }
        ConsumerHeartbeatResponse {
            member_id: req.member_id.clone(),
            member_epoch: req.member_epoch,
            ..Default::default()
        }
    }

    /// Removes members whose session ended or who held partitions past their rebalance
    /// timeout; the target is recomputed at the next heartbeat.
    pub fn expire(&mut self, now_ms: i64) {
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| {
                m.session_deadline_ms <= now_ms
                    || m.revocation_deadline_ms.is_some_and(|d| d <= now_ms)
            })
            .map(|m| m.id.clone())
            .collect();
        for id in gone {
            self.members.remove(&id);
            self.target.remove(&id);
            self.bump_epoch();
            self.changed_at_ms = now_ms;
        }
    }

    pub fn next_deadline_ms(&self) -> Option<i64> {
        self.members
            .values()
            .flat_map(|m| [Some(m.session_deadline_ms), m.revocation_deadline_ms])
            .flatten()
            .min()
    }

    /// Validates the member and epoch of an OffsetCommit (or OffsetFetch v9).
    pub fn check_commit(&self, member_id: &str, epoch: i32) -> Result<(), GroupError> {
        let member = self
            .members
            .get(member_id)
            .ok_or(GroupError::UnknownMemberId)?;
        match epoch.cmp(&member.member_epoch) {
            std::cmp::Ordering::Equal => Ok(()),
            std::cmp::Ordering::Greater => Err(GroupError::FencedMemberEpoch),
            std::cmp::Ordering::Less => Err(GroupError::StaleMemberEpoch),
        }
    }

    pub fn describe(&self) -> ConsumerGroupDescription {
        ConsumerGroupDescription {
            group_id: self.id.clone(),
            state: self.state(),
            group_epoch: self.group_epoch,
            assignment_epoch: self.assignment_epoch,
            assignor: self.assignor(),
            members: self
                .members
                .values()
                .map(|m| ConsumerMemberDescription {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    rack_id: m.rack_id.clone(),
                    member_epoch: m.member_epoch,
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    subscribed_topics: m.subscribed.iter().cloned().collect(),
                    subscribed_regex: m.regex.as_ref().map(|(r, _)| r.clone()),
                    assignment: m.assigned.clone(),
                    target_assignment: self.target.get(&m.id).cloned().unwrap_or_default(),
                })
                .collect(),
        }
    }

    pub fn subscribes_to(&self, topic: &str) -> bool {
        self.members
            .values()
            .any(|m| m.subscribed.contains(topic) || m.matched.contains(topic))
    }

    pub fn to_snapshot(&self) -> ConsumerGroupSnapshot {
        ConsumerGroupSnapshot {
            group_epoch: self.group_epoch,
            assignment_epoch: self.assignment_epoch,
            partition_counts: self.partition_counts.clone(),
            target: self.target.clone(),
            members: self
                .members
                .values()
                .map(|m| ConsumerMemberSnapshot {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    rack_id: m.rack_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    subscribed: m.subscribed.iter().cloned().collect(),
                    server_assignor: m.server_assignor.clone(),
                    member_epoch: m.member_epoch,
                    previous_epoch: m.previous_epoch,
                    assigned: m.assigned.clone(),
                    pending_revocation: m.pending_revocation.clone(),
                    left_static: m.left_static,
                    subscribed_regex: m.regex.as_ref().map(|(r, _)| r.clone()),
                })
                .collect(),
        }
    }

    /// Rebuilds a group from its snapshot; every member must heartbeat within its session.
    pub fn from_snapshot(
        id: String,
        s: ConsumerGroupSnapshot,
        config: &GroupConfig,
        now_ms: i64,
    ) -> ConsumerGroup {
        let deadline = now_ms + i64::from(config.consumer_session_timeout_ms);
        ConsumerGroup {
            id,
            group_epoch: s.group_epoch,
            assignment_epoch: s.assignment_epoch,
            partition_counts: s.partition_counts,
            target: s.target,
            members: s
                .members
                .into_iter()
                .map(|m| {
                    let member = ConsumerMember {
                        id: m.member_id.clone(),
                        instance_id: m.instance_id,
                        rack_id: m.rack_id,
                        client_id: m.client_id,
                        client_host: m.client_host,
                        rebalance_timeout_ms: m.rebalance_timeout_ms,
                        subscribed: m.subscribed.into_iter().collect(),
                        regex: m
                            .subscribed_regex
                            .and_then(|r| compile(&r).ok().map(|c| (r, c))),
                        matched: BTreeSet::new(),
                        server_assignor: m.server_assignor,
                        member_epoch: m.member_epoch,
                        previous_epoch: m.previous_epoch,
                        assigned: m.assigned,
                        revocation_deadline_ms: (!m.pending_revocation.is_empty())
                            .then_some(now_ms + i64::from(m.rebalance_timeout_ms)),
                        pending_revocation: m.pending_revocation,
                        left_static: m.left_static,
                        session_deadline_ms: deadline,
                        sent: None,
                    };
                    (m.member_id, member)
                })
                .collect(),
            changed_at_ms: now_ms,
            dirty: false,
        }
    }
}

fn extend(into: &mut Assignment, from: &Assignment) {
    for (t, ps) in from {
        into.entry(t.clone()).or_default().extend(ps);
    }
}

fn intersection(a: &Assignment, b: &Assignment) -> Assignment {
    a.iter()
        .filter_map(|(t, ps)| {
            let common: BTreeSet<i32> = b.get(t).map(|q| ps & q).unwrap_or_default();
            (!common.is_empty()).then(|| (t.clone(), common))
        })
        .collect()
}

fn difference(a: &Assignment, b: &Assignment) -> Assignment {
    a.iter()
        .filter_map(|(t, ps)| {
            let rest: BTreeSet<i32> = match b.get(t) {
                Some(q) => ps - q,
                None => ps.clone(),
            };
            (!rest.is_empty()).then(|| (t.clone(), rest))
        })
        .collect()
}

fn is_subset(a: &Assignment, b: &Assignment) -> bool {
    difference(a, b).is_empty()
}
