//! A share group's membership (KIP-932): who reads which partitions. Any number of members
//! may read one partition (the share-partition's locks keep them apart), so there is no
//! revocation: a member gets its new assignment on its next heartbeat, and its member epoch
//! moves to the group's then.
//!
//! Assignment (Kafka's simple assignor, deterministic): per subscribed topic, its members in
//! id order and its partitions in index order are paired round-robin over the larger count,
//! so every member gets a partition and every partition a member, and when members outnumber
//! partitions each partition is read by several.
//!
//! Epochs: the group epoch rises when a member joins or leaves, a subscription changes or a
//! subscribed topic's partition count does; each member's epoch reaches it at its next
//! heartbeat (a heartbeat with the epoch before that is taken too: its answer was lost).
//!
//! Membership is volatile: a coordinator that moves or restarts starts the group empty, and
//! its members, told UNKNOWN_MEMBER_ID, join again. What a share group has read is the
//! share-partitions' state, not this.

use crate::GroupError;
use crate::consumer::TopicPartitionCounts;
use crate::types::{
    Assignment, ShareGroupDescription, ShareHeartbeat, ShareHeartbeatResponse,
    ShareMemberDescription,
};
use sluice_types::limits::{
    CLIENT_ID_BYTES_MAX, GROUP_ID_BYTES_MAX, TOPIC_NAME_CHARS_MAX, TOPICS_MAX,
};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone)]
struct ShareMember {
    rack_id: Option<String>,
    client_id: String,
    client_host: String,
    subscribed: BTreeSet<String>,
    member_epoch: i32,
    previous_epoch: i32,
    assigned: Assignment,
    session_deadline_ms: i64,
    /// The assignment last sent (volatile: sent again after a restart).
    sent: Option<Assignment>,
}

#[derive(Debug)]
pub(crate) struct ShareGroup {
    pub id: String,
    group_epoch: i32,
    members: BTreeMap<String, ShareMember>,
    /// Each member's assignment for the group epoch.
    target: BTreeMap<String, Assignment>,
    /// Partition counts of the subscribed topics the target was computed from.
    partition_counts: BTreeMap<String, i32>,
    /// Every topic a member subscribed to since this coordinator loaded the group: where its
    /// share-partitions' state may be (DescribeShareGroupOffsets, DeleteGroups).
    topics_seen: BTreeSet<String>,
}

impl ShareGroup {
    pub fn new(id: String) -> ShareGroup {
        ShareGroup {
            id,
            group_epoch: 0,
            members: BTreeMap::new(),
            target: BTreeMap::new(),
            partition_counts: BTreeMap::new(),
            topics_seen: BTreeSet::new(),
        }
    }

    /// Every topic a member subscribed to since the group was loaded here.
    pub fn topics_seen(&self) -> &BTreeSet<String> {
        &self.topics_seen
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn state(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else {
            "Stable"
        }
    }

    /// ShareGroupHeartbeat: join (epoch 0), stay (the member's epoch), leave (epoch -1).
    pub fn heartbeat(
        &mut self,
        req: ShareHeartbeat,
        members_max: usize,
        topics: TopicPartitionCounts<'_>,
        now_ms: i64,
    ) -> ShareHeartbeatResponse {
        if let Err(e) = check(&req) {
            return ShareHeartbeatResponse::error_for(e, &req.member_id);
        }
        let mut changed = false;
        match req.member_epoch {
            -1 => {
                if self.members.remove(&req.member_id).is_some() {
                    self.bump(topics);
                }
                return ShareHeartbeatResponse {
                    member_id: req.member_id,
                    member_epoch: -1,
                    heartbeat_interval_ms: req.heartbeat_interval_ms,
                    ..Default::default()
                };
            }
            0 => {
                let Some(subscribed) = req.subscribed_topics.as_ref().filter(|s| !s.is_empty())
                else {
                    let e = GroupError::InvalidRequest("a joining member must subscribe to topics");
                    return ShareHeartbeatResponse::error_for(e, &req.member_id);
                };
                let rejoin = self.members.contains_key(&req.member_id);
                if !rejoin && self.members.len() >= members_max {
                    let e = GroupError::GroupMaxSizeReached;
                    return ShareHeartbeatResponse::error_for(e, &req.member_id);
                }
                let member = ShareMember {
                    rack_id: req.rack_id.clone(),
                    client_id: req.client_id.clone(),
                    client_host: req.client_host.clone(),
                    subscribed: subscribed.iter().cloned().collect(),
                    member_epoch: 0,
                    previous_epoch: 0,
                    assigned: Assignment::new(),
                    session_deadline_ms: 0,
                    sent: None,
                };
                self.members.insert(req.member_id.clone(), member);
                changed = true;
            }
            epoch => {
                let Some(member) = self.members.get_mut(&req.member_id) else {
                    return ShareHeartbeatResponse::error_for(
                        GroupError::UnknownMemberId,
                        &req.member_id,
                    );
                };
                if epoch != member.member_epoch && epoch != member.previous_epoch {
                    return ShareHeartbeatResponse::error_for(
                        GroupError::FencedMemberEpoch,
                        &req.member_id,
                    );
                }
                if let Some(topics) = &req.subscribed_topics {
                    let subscribed: BTreeSet<String> = topics.iter().cloned().collect();
                    if subscribed != member.subscribed {
                        member.subscribed = subscribed;
                        changed = true;
                    }
                }
                if epoch == member.previous_epoch && epoch != member.member_epoch {
                    member.sent = None; // the answer that moved it on was lost
                }
            }
        }
        if changed || self.partition_counts != self.counts(topics) {
            self.bump(topics);
        }
        self.answer(
            &req.member_id,
            req.session_timeout_ms,
            req.heartbeat_interval_ms,
            now_ms,
        )
    }

    /// The member catches up with the group epoch and is told its assignment if it changed.
    fn answer(
        &mut self,
        member_id: &str,
        session_timeout_ms: i32,
        heartbeat_interval_ms: i32,
        now_ms: i64,
    ) -> ShareHeartbeatResponse {
        let target = self.target.get(member_id).cloned().unwrap_or_default();
        let member = self.members.get_mut(member_id).expect("a member answers");
        if member.member_epoch != self.group_epoch {
            member.previous_epoch = member.member_epoch;
            member.member_epoch = self.group_epoch;
        }
        member.assigned = target;
        member.session_deadline_ms = now_ms.saturating_add(i64::from(session_timeout_ms));
        let assignment = (member.sent.as_ref() != Some(&member.assigned)).then(|| {
            member.sent = Some(member.assigned.clone());
            member.assigned.clone()
        });
        ShareHeartbeatResponse {
            error: None,
            member_id: member_id.to_owned(),
            member_epoch: member.member_epoch,
            heartbeat_interval_ms,
            assignment,
        }
    }

    /// Partition counts of every topic some member subscribes to (0 for one that is missing).
    fn counts(&self, topics: TopicPartitionCounts<'_>) -> BTreeMap<String, i32> {
        self.members
            .values()
            .flat_map(|m| m.subscribed.iter())
            .map(|t| (t.clone(), topics.partition_count(t).unwrap_or(0)))
            .collect()
    }

    /// A new group epoch and the target assignment for it.
    fn bump(&mut self, topics: TopicPartitionCounts<'_>) {
        self.group_epoch = self.group_epoch.saturating_add(1);
        self.partition_counts = self.counts(topics);
        let subscribed = self.partition_counts.keys().cloned();
        self.topics_seen.extend(subscribed);
        self.target = assign(&self.members, &self.partition_counts);
    }

    /// Members silent past their session leave (the partition counts known stand); returns
    /// whether any did.
    pub fn expire(&mut self, now_ms: i64) -> bool {
        let before = self.members.len();
        self.members.retain(|_, m| m.session_deadline_ms > now_ms);
        let expired = self.members.len() != before;
        if expired {
            let counts = self.partition_counts.clone();
            self.bump(&|topic: &str| counts.get(topic).copied());
        }
        expired
    }

    pub fn next_deadline_ms(&self) -> Option<i64> {
        self.members.values().map(|m| m.session_deadline_ms).min()
    }

    pub fn describe(&self) -> ShareGroupDescription {
        ShareGroupDescription {
            group_id: self.id.clone(),
            state: self.state(),
            group_epoch: self.group_epoch,
            assignment_epoch: self.group_epoch,
            assignor: "simple".to_owned(),
            members: self
                .members
                .iter()
                .map(|(id, m)| ShareMemberDescription {
                    member_id: id.clone(),
                    rack_id: m.rack_id.clone(),
                    member_epoch: m.member_epoch,
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    subscribed_topics: m.subscribed.iter().cloned().collect(),
                    assignment: m.assigned.clone(),
                })
                .collect(),
        }
    }
}

fn check(req: &ShareHeartbeat) -> Result<(), GroupError> {
    if req.member_id.is_empty() || req.member_id.len() > GROUP_ID_BYTES_MAX {
        return Err(GroupError::InvalidRequest(
            "a member must send its member id",
        ));
    }
    if req.client_id.len() > CLIENT_ID_BYTES_MAX {
        return Err(GroupError::InvalidRequest("client id too long"));
    }
    if let Some(topics) = &req.subscribed_topics {
        if topics.len() > TOPICS_MAX {
            return Err(GroupError::InvalidRequest("too many subscribed topics"));
        }
        if topics
            .iter()
            .any(|t| t.is_empty() || t.chars().count() > TOPIC_NAME_CHARS_MAX)
        {
            return Err(GroupError::InvalidTopic);
        }
    }
    Ok(())
}

/// The simple assignor (the module doc).
fn assign(
    members: &BTreeMap<String, ShareMember>,
    counts: &BTreeMap<String, i32>,
) -> BTreeMap<String, Assignment> {
    let mut out: BTreeMap<String, Assignment> = members
        .keys()
        .map(|id| (id.clone(), Assignment::new()))
        .collect();
    for (topic, &partitions) in counts {
        let readers: Vec<&String> = members
            .iter()
            .filter(|(_, m)| m.subscribed.contains(topic))
            .map(|(id, _)| id)
            .collect();
        let partitions = usize::try_from(partitions).unwrap_or(0);
        if readers.is_empty() || partitions == 0 {
            continue;
        }
        for i in 0..readers.len().max(partitions) {
            let member = readers[i % readers.len()];
            let assignment = out.get_mut(member).expect("every member has an entry");
            assignment
                .entry(topic.clone())
                .or_default()
                .insert((i % partitions) as i32);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn join(id: &str, topics: &[&str]) -> ShareHeartbeat {
        ShareHeartbeat {
            group_id: "g".into(),
            member_id: id.into(),
            member_epoch: 0,
            rack_id: None,
            subscribed_topics: Some(topics.iter().map(|t| t.to_string()).collect()),
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout_ms: 45_000,
            heartbeat_interval_ms: 5_000,
        }
    }

    fn beat(id: &str, epoch: i32) -> ShareHeartbeat {
        ShareHeartbeat {
            member_epoch: epoch,
            subscribed_topics: None,
            ..join(id, &[])
        }
    }

    fn two_partitions(topic: &str) -> Option<i32> {
        (topic == "t").then_some(2)
    }

    fn partitions(a: &Option<Assignment>) -> Vec<i32> {
        a.as_ref().unwrap()["t"].iter().copied().collect()
    }

    #[test]
    fn members_share_partitions_and_catch_up_at_their_next_heartbeat() {
        let mut g = ShareGroup::new("g".into());
        let a = g.heartbeat(join("a", &["t"]), 10, &two_partitions, 0);
        assert_eq!((a.member_epoch, partitions(&a.assignment)), (1, vec![0, 1]));
        let b = g.heartbeat(join("b", &["t"]), 10, &two_partitions, 1);
        assert_eq!((b.member_epoch, partitions(&b.assignment)), (2, vec![1]));
        let c = g.heartbeat(join("c", &["t"]), 10, &two_partitions, 2);
        assert_eq!(partitions(&c.assignment), vec![0]);
        // "a" still sends epoch 1; it moves to 3 with partition 0 only.
        let a = g.heartbeat(beat("a", 1), 10, &two_partitions, 3);
        assert_eq!((a.member_epoch, partitions(&a.assignment)), (3, vec![0]));
        // Nothing changed since: no assignment is sent.
        let a = g.heartbeat(beat("a", 3), 10, &two_partitions, 4);
        assert_eq!((a.member_epoch, a.assignment), (3, None));
        // An epoch from before the last one is fenced.
        let fenced = g.heartbeat(beat("c", 1), 10, &two_partitions, 5);
        assert_eq!(fenced.error, Some(GroupError::FencedMemberEpoch));
    }

    #[test]
    fn leaving_expiring_and_the_size_limit() {
        let mut g = ShareGroup::new("g".into());
        g.heartbeat(join("a", &["t"]), 2, &two_partitions, 0);
        g.heartbeat(join("b", &["t"]), 2, &two_partitions, 0);
        let full = g.heartbeat(join("c", &["t"]), 2, &two_partitions, 0);
        assert_eq!(full.error, Some(GroupError::GroupMaxSizeReached));
        let left = g.heartbeat(beat("b", -1), 2, &two_partitions, 1);
        assert_eq!((left.error, left.member_epoch), (None, -1));
        // "a" was told [0, 1] when alone and holds it again: nothing new is sent.
        let a = g.heartbeat(beat("a", 1), 2, &two_partitions, 2);
        assert_eq!((a.member_epoch, a.assignment), (3, None));
        assert!(!g.expire(45_001));
        assert!(g.expire(45_002));
        assert!(g.is_empty());
        let gone = g.heartbeat(beat("a", a.member_epoch), 2, &two_partitions, 45_003);
        assert_eq!(gone.error, Some(GroupError::UnknownMemberId));
    }

    #[test]
    fn a_join_must_subscribe_and_name_itself() {
        let mut g = ShareGroup::new("g".into());
        let none = g.heartbeat(join("a", &[]), 10, &two_partitions, 0);
        assert!(matches!(none.error, Some(GroupError::InvalidRequest(_))));
        let nameless = g.heartbeat(join("", &["t"]), 10, &two_partitions, 0);
        assert!(matches!(
            nameless.error,
            Some(GroupError::InvalidRequest(_))
        ));
    }
}
