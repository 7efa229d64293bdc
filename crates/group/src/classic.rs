//! A classic (JoinGroup/SyncGroup) group and its rebalance protocol, as Kafka's group
//! coordinator runs it:
//!
//! ```text
//!   Empty ──join──▶ PreparingRebalance ──all joined / deadline──▶ CompletingRebalance
//!     ▲                 ▲        │                                      │ leader's SyncGroup
//!     └──last member────┤        └──no member left──▶ Empty             ▼
//!        leaves         └──────────join, leave, expiry, new metadata── Stable
//! ```
//! The join phase ends when every known member has sent JoinGroup (and no member id handed
//! out with `MEMBER_ID_REQUIRED` is still unused), or at the rebalance deadline, when members
//! that did not rejoin are dropped (static members stay until their session expires). The
//! first rebalance of an empty group waits `group.initial.rebalance.delay.ms` for more members.
//!
//! Only the outcome of a rebalance (generation, protocol, leader, members and assignments) is
//! persistent, as a `GroupMetadata` record that the coordinator writes whenever `dirty` is set;
//! who is waiting on which request is volatile, as in Kafka: after a restart, clients rejoin.

use crate::GroupError;
use crate::member::Member;
use crate::record::GroupMetadata;
use crate::types::{
    GroupConfig, JoinRequest, JoinResponse, JoinedMember, MemberRef, Reply, SyncRequest,
    SyncResponse, WaiterId,
};
use sluice_types::limits::GROUP_ID_BYTES_MAX;
use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
}

impl GroupState {
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
        }
    }
}

#[derive(Debug)]
pub(crate) struct ClassicGroup {
    pub id: String,
    pub state: GroupState,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub generation: i32,
    pub leader: Option<String>,
    /// In join order; the first member to join becomes the leader when there is none.
    pub members: Vec<Member>,
    /// Member ids handed out with `MEMBER_ID_REQUIRED`, each with its deadline.
    pub pending: HashMap<String, i64>,
    /// When the join phase ends whoever has rejoined by then.
    pub join_deadline_ms: Option<i64>,
    /// Set during the initial delay: when it started, to cap its extensions.
    initial_delay_started_ms: Option<i64>,
    /// When members that have not sent SyncGroup are dropped.
    pub sync_deadline_ms: Option<i64>,
    pub state_timestamp_ms: i64,
    /// The persistent part changed: write a GroupMetadata record.
    pub dirty: bool,
}

/// Kafka's member id, `<client.id>-<uuid>`, with the client id cut so the id stays within
/// `GROUP_ID_BYTES_MAX` (a member id is stored in the group's record).
fn new_member_id(client_id: &str) -> String {
    const UUID_AND_DASH_BYTES: usize = 37;
    let mut cut = client_id
        .len()
        .min(GROUP_ID_BYTES_MAX - UUID_AND_DASH_BYTES);
    while !client_id.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}-{}", &client_id[..cut], uuid::Uuid::new_v4())
}

impl ClassicGroup {
    pub fn new(id: String, now_ms: i64) -> ClassicGroup {
        ClassicGroup {
            id,
            state: GroupState::Empty,
            protocol_type: None,
            protocol: None,
            generation: 0,
            leader: None,
            members: Vec::new(),
            pending: HashMap::new(),
            join_deadline_ms: None,
            initial_delay_started_ms: None,
            sync_deadline_ms: None,
            state_timestamp_ms: now_ms,
            dirty: false,
        }
    }

    pub fn member_index(&self, id: &str) -> Option<usize> {
        self.members.iter().position(|m| m.id == id)
    }

    fn static_member_index(&self, instance_id: &str) -> Option<usize> {
        self.members
            .iter()
            .position(|m| m.instance_id.as_deref() == Some(instance_id))
    }

    /// Finds the member a request speaks for, applying Kafka's static-membership fencing: a
    /// known `group.instance.id` with another member id is a fenced (older) instance.
    pub fn find_member(&self, who: &MemberRef) -> Result<usize, GroupError> {
        if let Some(instance) = who.group_instance_id.as_deref()
            && let Some(i) = self.static_member_index(instance)
        {
            if self.members[i].id != who.member_id {
                return Err(GroupError::FencedInstanceId);
            }
            return Ok(i);
        }
        self.member_index(&who.member_id)
            .ok_or(GroupError::UnknownMemberId)
    }

    fn set_state(&mut self, state: GroupState, now_ms: i64) {
        self.state = state;
        self.state_timestamp_ms = now_ms;
    }

    /// True when the group may take a member offering `req`'s protocols.
    fn accepts_protocols(&self, req: &JoinRequest) -> bool {
        if self.members.is_empty() {
            return true;
        }
        self.protocol_type.as_deref() == Some(req.protocol_type.as_str())
            && req
                .protocols
                .iter()
                .any(|p| self.members.iter().all(|m| m.supports(&p.name)))
    }

    pub fn join(
        &mut self,
        req: JoinRequest,
        waiter: WaiterId,
        config: &GroupConfig,
        now_ms: i64,
        out: &mut Vec<Reply>,
    ) {
        if !self.accepts_protocols(&req) {
            let e = JoinResponse::error_for(GroupError::InconsistentGroupProtocol, &req.member_id);
            return out.push(Reply::Join(waiter, e));
        }
        if req.member_id.is_empty() {
            self.join_new(req, waiter, config, now_ms, out);
        } else {
            self.join_known(req, waiter, config, now_ms, out);
        }
    }

    fn join_new(
        &mut self,
        req: JoinRequest,
        waiter: WaiterId,
        config: &GroupConfig,
        now_ms: i64,
        out: &mut Vec<Reply>,
    ) {
        let new_id = new_member_id(&req.client_id);
        if let Some(instance) = req.group_instance_id.as_deref()
            && let Some(i) = self.static_member_index(instance)
        {
            return self.replace_static_member(i, new_id, req, waiter, config, now_ms, out);
        }
        if self.members.len() + self.pending.len() >= config.members_max {
            let e = JoinResponse::error_for(GroupError::GroupMaxSizeReached, "");
            return out.push(Reply::Join(waiter, e));
        }
        if req.require_known_member_id && req.group_instance_id.is_none() {
            self.pending
                .insert(new_id.clone(), now_ms + i64::from(req.session_timeout_ms));
            let e = JoinResponse::error_for(GroupError::MemberIdRequired, &new_id);
            return out.push(Reply::Join(waiter, e));
        }
        self.add_member(new_id, &req, waiter, config, now_ms, out);
    }

    fn join_known(
        &mut self,
        req: JoinRequest,
        waiter: WaiterId,
        config: &GroupConfig,
        now_ms: i64,
        out: &mut Vec<Reply>,
    ) {
        if self.pending.remove(&req.member_id).is_some() {
            let id = req.member_id.clone();
            return self.add_member(id, &req, waiter, config, now_ms, out);
        }
        let who = MemberRef {
            member_id: req.member_id.clone(),
            group_instance_id: req.group_instance_id.clone(),
            generation: -1,
        };
        let i = match self.find_member(&who) {
            Ok(i) => i,
            Err(e) => {
                return out.push(Reply::Join(
                    waiter,
                    JoinResponse::error_for(e, &req.member_id),
                ));
            }
        };
        let unchanged = self.members[i].protocols == req.protocols;
        let is_leader = self.leader.as_deref() == Some(req.member_id.as_str());
        self.members[i].heard_from(now_ms);
        match self.state {
            GroupState::PreparingRebalance => {
                self.members[i].update(&req);
                self.park_join(i, waiter, out);
                self.try_complete_join(now_ms, out);
            }
            GroupState::CompletingRebalance | GroupState::Stable
                if unchanged && !(self.state == GroupState::Stable && is_leader) =>
            {
                // The member lost its JoinGroup answer: give it the current generation again.
                let response = self.join_response(i, is_leader);
                out.push(Reply::Join(waiter, response));
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.members[i].update(&req);
                self.park_join(i, waiter, out);
                self.prepare_rebalance(config, now_ms, out);
            }
            GroupState::Empty => {
                let e = JoinResponse::error_for(GroupError::UnknownMemberId, &req.member_id);
                out.push(Reply::Join(waiter, e));
            }
        }
    }

    /// Parks a member's JoinGroup; an older parked one (a retry) is answered as superseded.
    fn park_join(&mut self, i: usize, waiter: WaiterId, out: &mut Vec<Reply>) {
        let member = &mut self.members[i];
        if let Some(old) = member.join_waiter.replace(waiter) {
            let e = JoinResponse::error_for(GroupError::RebalanceInProgress, &member.id);
            out.push(Reply::Join(old, e));
        }
    }

    fn add_member(
        &mut self,
        id: String,
        req: &JoinRequest,
        waiter: WaiterId,
        config: &GroupConfig,
        now_ms: i64,
        out: &mut Vec<Reply>,
    ) {
        if self.members.is_empty() {
            self.protocol_type = Some(req.protocol_type.clone());
        }
        if self.leader.is_none() {
            self.leader = Some(id.clone());
        }
        let mut member = Member::new(id, req, now_ms);
        member.join_waiter = Some(waiter);
        self.members.push(member);
        match self.state {
            GroupState::PreparingRebalance => {
                self.extend_initial_delay(config, now_ms);
                self.try_complete_join(now_ms, out);
            }
            _ => self.prepare_rebalance(config, now_ms, out),
        }
    }

    /// KIP-345: a static member restarting takes over its old member id's place. In a stable
    /// group whose protocol would not change, that costs no rebalance: the member gets the
    /// current generation and then its old assignment through SyncGroup.
    #[allow(clippy::too_many_arguments)]
    fn replace_static_member(
        &mut self,
        i: usize,
        new_id: String,
        req: JoinRequest,
        waiter: WaiterId,
        config: &GroupConfig,
        now_ms: i64,
        out: &mut Vec<Reply>,
    ) {
        let old_id = std::mem::replace(&mut self.members[i].id, new_id.clone());
        let leader_before = self.leader.clone().unwrap_or_default();
        if self.leader.as_deref() == Some(old_id.as_str()) {
            self.leader = Some(new_id.clone());
        }
        let member = &mut self.members[i];
        if let Some(old) = member.join_waiter.take() {
            out.push(Reply::Join(
                old,
                JoinResponse::error_for(GroupError::FencedInstanceId, &old_id),
            ));
        }
        if let Some(old) = member.sync_waiter.take() {
            out.push(Reply::Sync(
                old,
                SyncResponse::error_for(GroupError::FencedInstanceId),
            ));
        }
        member.update(&req);
        member.heard_from(now_ms);
        match self.state {
            GroupState::Stable if self.select_protocol() == self.protocol => {
                self.dirty = true;
                let mut response = self.join_response(i, false);
                response.leader = leader_before;
                out.push(Reply::Join(waiter, response));
            }
            GroupState::PreparingRebalance => {
                self.members[i].join_waiter = Some(waiter);
                self.try_complete_join(now_ms, out);
            }
            _ => {
                self.members[i].join_waiter = Some(waiter);
                self.prepare_rebalance(config, now_ms, out);
            }
        }
    }

    fn join_response(&self, i: usize, with_members: bool) -> JoinResponse {
        let protocol = self.protocol.as_deref().unwrap_or_default();
        JoinResponse {
            error: None,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            member_id: self.members[i].id.clone(),
            members: if with_members {
                self.members
                    .iter()
                    .map(|m| JoinedMember {
                        member_id: m.id.clone(),
                        group_instance_id: m.instance_id.clone(),
                        metadata: m.metadata_for(protocol),
                    })
                    .collect()
            } else {
                Vec::new()
            },
        }
    }

    /// Starts a join phase: everyone must rejoin by the deadline.
    fn prepare_rebalance(&mut self, config: &GroupConfig, now_ms: i64, out: &mut Vec<Reply>) {
        if self.state == GroupState::CompletingRebalance {
            for m in &mut self.members {
                m.assignment = bytes::Bytes::new();
                if let Some(w) = m.sync_waiter.take() {
                    out.push(Reply::Sync(
                        w,
                        SyncResponse::error_for(GroupError::RebalanceInProgress),
                    ));
                }
            }
        }
        let delay = i64::from(config.initial_rebalance_delay_ms);
        if self.state == GroupState::Empty && delay > 0 {
            self.initial_delay_started_ms = Some(now_ms);
            self.join_deadline_ms = Some(now_ms + delay.min(self.rebalance_timeout_ms()));
        } else {
            self.initial_delay_started_ms = None;
            self.join_deadline_ms = Some(now_ms + self.rebalance_timeout_ms());
        }
        self.sync_deadline_ms = None;
        self.set_state(GroupState::PreparingRebalance, now_ms);
        self.try_complete_join(now_ms, out);
    }

    /// Each member joining during the initial delay restarts it, up to the rebalance timeout.
    fn extend_initial_delay(&mut self, config: &GroupConfig, now_ms: i64) {
        if let Some(started) = self.initial_delay_started_ms {
            let cap = started + self.rebalance_timeout_ms();
            let wanted = now_ms + i64::from(config.initial_rebalance_delay_ms);
            self.join_deadline_ms = Some(wanted.min(cap));
        }
    }

    fn rebalance_timeout_ms(&self) -> i64 {
        self.members
            .iter()
            .map(|m| i64::from(m.rebalance_timeout_ms))
            .max()
            .unwrap_or(0)
    }

    fn try_complete_join(&mut self, now_ms: i64, out: &mut Vec<Reply>) {
        let all_joined = self.members.iter().all(|m| m.join_waiter.is_some());
        if self.state == GroupState::PreparingRebalance
            && self.initial_delay_started_ms.is_none()
            && all_joined
            && self.pending.is_empty()
        {
            self.complete_join(now_ms, out);
        }
    }

    /// Ends the join phase: drops dynamic members that did not rejoin, starts the next
    /// generation and answers every parked JoinGroup (the leader with the member list).
    fn complete_join(&mut self, now_ms: i64, out: &mut Vec<Reply>) {
        self.members
            .retain(|m| m.join_waiter.is_some() || m.instance_id.is_some());
        self.join_deadline_ms = None;
        self.initial_delay_started_ms = None;
        self.generation += 1;
        self.dirty = true;
        if !self.members.iter().any(|m| m.join_waiter.is_some()) {
            // Nobody (or only static members that did not rejoin) left to lead: the group
            // empties, and static members wait in it no longer.
            self.members.clear();
            self.protocol = None;
            self.leader = None;
            self.set_state(GroupState::Empty, now_ms);
            return;
        }
        self.protocol = self.select_protocol();
        let leader_joined = self
            .leader
            .as_deref()
            .and_then(|l| self.member_index(l))
            .is_some_and(|i| self.members[i].join_waiter.is_some());
        if !leader_joined {
            self.leader = self
                .members
                .iter()
                .find(|m| m.join_waiter.is_some())
                .map(|m| m.id.clone());
        }
        let deadline = now_ms + self.rebalance_timeout_ms();
        self.sync_deadline_ms = Some(deadline);
        self.set_state(GroupState::CompletingRebalance, now_ms);
        for i in 0..self.members.len() {
            let Some(waiter) = self.members[i].join_waiter.take() else {
                continue;
            };
            self.members[i].heard_from(now_ms);
            let is_leader = self.leader.as_deref() == Some(self.members[i].id.as_str());
            out.push(Reply::Join(waiter, self.join_response(i, is_leader)));
        }
    }

    /// The protocol every member supports that most members list first among those.
    fn select_protocol(&self) -> Option<String> {
        let first = self.members.first()?;
        let candidates: Vec<&str> = first
            .protocols
            .iter()
            .map(|p| p.name.as_str())
            .filter(|name| self.members.iter().all(|m| m.supports(name)))
            .collect();
        let mut votes = vec![0usize; candidates.len()];
        for m in &self.members {
            if let Some(c) = m
                .protocols
                .iter()
                .find_map(|p| candidates.iter().position(|c| *c == p.name))
            {
                votes[c] += 1;
            }
        }
        let best = (0..candidates.len()).max_by_key(|&c| (votes[c], std::cmp::Reverse(c)))?;
        Some(candidates[best].to_owned())
    }

    pub fn sync(&mut self, req: SyncRequest, waiter: WaiterId, now_ms: i64, out: &mut Vec<Reply>) {
        match self.check_sync(&req) {
            Ok(i) => self.members[i].heard_from(now_ms),
            Err(e) => return out.push(Reply::Sync(waiter, SyncResponse::error_for(e))),
        }
        let i = self.member_index(&req.member_id).expect("checked above");
        match self.state {
            GroupState::CompletingRebalance => {
                self.members[i].sync_waiter = Some(waiter);
                if self.leader.as_deref() == Some(req.member_id.as_str()) {
                    self.take_assignment(req.assignments, now_ms, out);
                }
            }
            GroupState::Stable => out.push(Reply::Sync(waiter, self.sync_response(i))),
            GroupState::PreparingRebalance => out.push(Reply::Sync(
                waiter,
                SyncResponse::error_for(GroupError::RebalanceInProgress),
            )),
            GroupState::Empty => out.push(Reply::Sync(
                waiter,
                SyncResponse::error_for(GroupError::UnknownMemberId),
            )),
        }
    }

    fn check_sync(&self, req: &SyncRequest) -> Result<usize, GroupError> {
        let i = self.find_member(&MemberRef {
            member_id: req.member_id.clone(),
            group_instance_id: req.group_instance_id.clone(),
            generation: req.generation,
        })?;
        if req.generation != self.generation {
            return Err(GroupError::IllegalGeneration);
        }
        let type_ok = req.protocol_type.is_none() || req.protocol_type == self.protocol_type;
        let name_ok = req.protocol_name.is_none() || req.protocol_name == self.protocol;
        if !(type_ok && name_ok) {
            return Err(GroupError::InconsistentGroupProtocol);
        }
        Ok(i)
    }

    fn take_assignment(
        &mut self,
        assignments: Vec<(String, bytes::Bytes)>,
        now_ms: i64,
        out: &mut Vec<Reply>,
    ) {
        let mut by_member: HashMap<String, bytes::Bytes> = assignments.into_iter().collect();
        for m in &mut self.members {
            m.assignment = by_member.remove(&m.id).unwrap_or_default();
        }
        self.sync_deadline_ms = None;
        self.set_state(GroupState::Stable, now_ms);
        self.dirty = true;
        for i in 0..self.members.len() {
            if let Some(w) = self.members[i].sync_waiter.take() {
                out.push(Reply::Sync(w, self.sync_response(i)));
            }
        }
    }

    fn sync_response(&self, i: usize) -> SyncResponse {
        SyncResponse {
            error: None,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            assignment: self.members[i].assignment.clone(),
        }
    }

    pub fn heartbeat(&mut self, who: &MemberRef, now_ms: i64) -> Result<(), GroupError> {
        if self.state == GroupState::Empty {
            return Err(GroupError::UnknownMemberId);
        }
        let i = self.find_member(who)?;
        self.members[i].heard_from(now_ms);
        if self.state == GroupState::PreparingRebalance {
            return Err(GroupError::RebalanceInProgress);
        }
        if who.generation != self.generation {
            return Err(GroupError::IllegalGeneration);
        }
        Ok(())
    }

    /// LeaveGroup for one member (by member id, or by instance id for a static member).
    pub fn leave(
        &mut self,
        who: &MemberRef,
        config: &GroupConfig,
        now_ms: i64,
        out: &mut Vec<Reply>,
    ) -> Result<(), GroupError> {
        if who.group_instance_id.is_none() && self.pending.remove(&who.member_id).is_some() {
            self.try_complete_join(now_ms, out);
            return Ok(());
        }
        let i = match (&who.group_instance_id, who.member_id.is_empty()) {
            (Some(instance), true) => self
                .static_member_index(instance)
                .ok_or(GroupError::UnknownMemberId)?,
            _ => self.find_member(who)?,
        };
        self.remove_member(i, config, now_ms, out);
        Ok(())
    }

    fn remove_member(&mut self, i: usize, config: &GroupConfig, now_ms: i64, out: &mut Vec<Reply>) {
        let member = self.members.remove(i);
        if let Some(w) = member.join_waiter {
            out.push(Reply::Join(
                w,
                JoinResponse::error_for(GroupError::UnknownMemberId, &member.id),
            ));
        }
        if let Some(w) = member.sync_waiter {
            out.push(Reply::Sync(
                w,
                SyncResponse::error_for(GroupError::UnknownMemberId),
            ));
        }
        if self.leader.as_deref() == Some(member.id.as_str()) {
            self.leader = None;
        }
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(config, now_ms, out)
            }
            GroupState::PreparingRebalance => self.try_complete_join(now_ms, out),
            GroupState::Empty => {}
        }
    }

    /// Applies every deadline that has passed.
    pub fn expire(&mut self, config: &GroupConfig, now_ms: i64, out: &mut Vec<Reply>) {
        let before = self.pending.len();
        self.pending.retain(|_, deadline| *deadline > now_ms);
        if self.pending.len() != before {
            self.try_complete_join(now_ms, out);
        }
        while let Some(i) = self
            .members
            .iter()
            .position(|m| !m.is_waiting() && m.heartbeat_deadline_ms <= now_ms)
        {
            self.remove_member(i, config, now_ms, out);
        }
        if self.state == GroupState::PreparingRebalance
            && self.join_deadline_ms.is_some_and(|d| d <= now_ms)
        {
            self.complete_join(now_ms, out);
        }
        if self.state == GroupState::CompletingRebalance
            && self.sync_deadline_ms.is_some_and(|d| d <= now_ms)
        {
            // The leader never sent its assignment, or members never asked for theirs.
            self.members.retain(|m| m.sync_waiter.is_some());
            if self
                .leader
                .as_deref()
                .and_then(|l| self.member_index(l))
                .is_none()
            {
                self.leader = None;
            }
            self.prepare_rebalance(config, now_ms, out);
        }
    }

    /// The earliest deadline this group has, for the broker's timer.
    pub fn next_deadline_ms(&self) -> Option<i64> {
        let members = self
            .members
            .iter()
            .filter(|m| !m.is_waiting())
            .map(|m| m.heartbeat_deadline_ms);
        let pending = self.pending.values().copied();
        members
            .chain(pending)
            .chain(self.join_deadline_ms)
            .chain(self.sync_deadline_ms)
            .min()
    }

    pub fn to_record(&self) -> GroupMetadata {
        GroupMetadata {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: self.protocol.clone(),
            leader: self.leader.clone(),
            state_timestamp_ms: self.state_timestamp_ms,
            members: self
                .members
                .iter()
                .map(|m| m.to_record(self.protocol.as_deref()))
                .collect(),
        }
    }

    /// Rebuilds a group from its last GroupMetadata record: stable with its members (who must
    /// heartbeat within their session timeout), or empty.
    pub fn from_record(id: String, record: GroupMetadata, now_ms: i64) -> ClassicGroup {
        let mut group = ClassicGroup::new(id, now_ms);
        group.generation = record.generation;
        group.protocol_type = Some(record.protocol_type).filter(|t| !t.is_empty());
        group.protocol = record.protocol;
        group.leader = record.leader;
        group.members = record
            .members
            .into_iter()
            .map(|m| Member::from_record(m, group.protocol.as_deref(), now_ms))
            .collect();
        group.state = if group.members.is_empty() {
            GroupState::Empty
        } else {
            GroupState::Stable
        };
        group
    }
}
