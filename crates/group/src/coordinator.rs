//! The group coordinator of one `__consumer_offsets` partition: every group whose id hashes to
//! it, and their committed offsets.
//!
//! Each command takes the current time and returns `Effects`: the records to append to the
//! partition and the replies to parked requests. The broker appends the records and, once
//! they are durable, sends the replies. Committed offsets change only by applying an offset
//! record (`replay` at load, the same function after a commit); group records are snapshots
//! of a rebalance's outcome, replayed at load. Deadlines (session expiry, the end of a join
//! phase) fire only when the broker calls `tick` with a time past `next_deadline_ms`.

use crate::GroupError;
use crate::classic::{ClassicGroup, GroupState};
use crate::consumer::{ConsumerGroup, TopicPartitionCounts};
use crate::record::{CommittedOffset, OffsetsRecord};
use crate::share::ShareGroup;
use crate::types::{
    ConsumerGroupDescription, ConsumerHeartbeat, ConsumerHeartbeatResponse, GroupConfig,
    GroupDescription, GroupListing, JoinRequest, JoinResponse, MemberDescription, MemberRef,
    OffsetToCommit, Reply, ShareGroupDescription, ShareHeartbeat, ShareHeartbeatResponse,
    SyncRequest, SyncResponse, WaiterId,
};
use sluice_types::limits::{
    CLIENT_ID_BYTES_MAX, GROUP_COMMITTED_PARTITIONS_MAX, GROUP_ID_BYTES_MAX,
    GROUP_MEMBER_METADATA_BYTES_MAX, GROUP_PROTOCOLS_PER_MEMBER_MAX, GROUPS_MAX,
    OFFSET_METADATA_BYTES_MAX, TOPIC_NAME_CHARS_MAX,
};
use std::collections::{BTreeMap, HashMap, HashSet};

/// How offsets are committed: directly (OffsetCommit) or in a transaction (TxnOffsetCommit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Commit {
    Direct,
    Transactional,
}

/// What a command asks the broker to do: append `records`, then send `replies`.
#[derive(Debug, Default)]
pub struct Effects {
    pub records: Vec<OffsetsRecord>,
    pub replies: Vec<Reply>,
    /// Write the records as a transactional batch of this producer (id, epoch): offsets
    /// committed in a transaction (TxnOffsetCommit) take effect at its commit marker.
    pub producer: Option<(i64, i16)>,
    /// What the records do to the coordinator once written: the caller hands them back to
    /// `GroupCoordinator::written` after the write succeeded, and only then. A commit whose
    /// write failed leaves the committed offsets as they were.
    pub on_write: Option<OnWrite>,
}

/// The change an offset command's records make once they are in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnWrite {
    /// Offsets committed (OffsetCommit) or deleted (OffsetDelete) take effect.
    ApplyOffsets,
    /// Offsets committed in this producer's transaction (TxnOffsetCommit) wait for its marker.
    PendInTransaction(i64),
}

type Offsets = BTreeMap<(String, i32), CommittedOffset>;

#[derive(Debug, Default)]
pub struct GroupCoordinator {
    config: GroupConfig,
    groups: HashMap<String, ClassicGroup>,
    /// KIP-848 groups. A group id names a classic group or a consumer group, never both; an
    /// empty group of one kind turns into the other when a member of the other kind joins.
    consumer_groups: HashMap<String, ConsumerGroup>,
    /// Share groups (KIP-932): a group id names a share group or a group of another kind,
    /// never both. Volatile (`share.rs`).
    share_groups: HashMap<String, ShareGroup>,
    offsets: HashMap<String, Offsets>,
    /// Offsets committed in open transactions, by producer id, keyed by (group, topic,
    /// partition): applied when the transaction commits, dropped when it aborts.
    pending_txn_offsets: HashMap<i64, BTreeMap<(String, String, i32), OffsetsRecord>>,
}

/// An offset commit's records, and a result per offset (invalid ones get no record).
type CommitRecords = (Vec<OffsetsRecord>, Vec<Result<(), GroupError>>);

/// A committed offset as OffsetFetch returns it; `offset` -1 when none is committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedOffset {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    /// An open transaction holds an offset for this partition that may replace `offset`
    /// (KIP-447: a fetch that requires a stable offset is told to retry).
    pub unstable: bool,
}

impl GroupCoordinator {
    pub fn new(config: GroupConfig) -> GroupCoordinator {
        GroupCoordinator {
            config,
            ..Default::default()
        }
    }

    pub fn join(&mut self, req: JoinRequest, waiter: WaiterId, now_ms: i64) -> Effects {
        let mut fx = Effects::default();
        if let Err(e) = self.check_join(&req) {
            let reply = Reply::Join(waiter, JoinResponse::error_for(e, &req.member_id));
            fx.replies.push(reply);
            return fx;
        }
        if self.share_groups.contains_key(&req.group_id) {
            let e = GroupError::InconsistentGroupProtocol;
            let reply = Reply::Join(waiter, JoinResponse::error_for(e, &req.member_id));
            fx.replies.push(reply);
            return fx;
        }
        if let Some(other) = self.consumer_groups.get(&req.group_id) {
            if !other.members.is_empty() {
                let e = GroupError::InconsistentGroupProtocol;
                fx.replies.push(Reply::Join(
                    waiter,
                    JoinResponse::error_for(e, &req.member_id),
                ));
                return fx;
            }
            self.consumer_groups.remove(&req.group_id);
        }
        let group = match group_or_create(&mut self.groups, &req.group_id, now_ms) {
            Ok(g) => g,
            Err(e) => {
                let reply = Reply::Join(waiter, JoinResponse::error_for(e, &req.member_id));
                fx.replies.push(reply);
                return fx;
            }
        };
        group.join(req, waiter, &self.config, now_ms, &mut fx.replies);
        self.settle(&mut fx);
        fx
    }

    fn check_join(&self, req: &JoinRequest) -> Result<(), GroupError> {
        check_group_id(&req.group_id)?;
        let session = self.config.session_timeout_ms_min..=self.config.session_timeout_ms_max;
        if !session.contains(&req.session_timeout_ms) {
            return Err(GroupError::InvalidSessionTimeout);
        }
        if req.protocol_type.is_empty() || req.protocols.is_empty() {
            return Err(GroupError::InconsistentGroupProtocol);
        }
        if req.protocols.len() > GROUP_PROTOCOLS_PER_MEMBER_MAX
            || req
                .protocols
                .iter()
                .any(|p| p.metadata.len() > GROUP_MEMBER_METADATA_BYTES_MAX)
        {
            return Err(GroupError::LimitReached("member protocols"));
        }
        // Protocol names and type end up in the group's record.
        let names =
            std::iter::once(&req.protocol_type).chain(req.protocols.iter().map(|p| &p.name));
        if names.into_iter().any(|n| n.len() > GROUP_ID_BYTES_MAX) {
            return Err(GroupError::LimitReached("protocol name length"));
        }
        let ids = [
            Some(req.member_id.as_str()),
            req.group_instance_id.as_deref(),
        ];
        if ids.iter().flatten().any(|id| id.len() > GROUP_ID_BYTES_MAX) {
            return Err(GroupError::LimitReached("member or instance id length"));
        }
        if req.client_id.len().max(req.client_host.len()) > CLIENT_ID_BYTES_MAX {
            return Err(GroupError::LimitReached("client id length"));
        }
        Ok(())
    }

    pub fn sync(&mut self, req: SyncRequest, waiter: WaiterId, now_ms: i64) -> Effects {
        let mut fx = Effects::default();
        let too_big = req
            .assignments
            .iter()
            .any(|(_, a)| a.len() > GROUP_MEMBER_METADATA_BYTES_MAX);
        match self.groups.get_mut(&req.group_id) {
            _ if too_big => {
                let e = GroupError::LimitReached("assignment size");
                fx.replies
                    .push(Reply::Sync(waiter, SyncResponse::error_for(e)));
            }
            None => {
                let e = SyncResponse::error_for(GroupError::UnknownMemberId);
                fx.replies.push(Reply::Sync(waiter, e));
            }
            Some(group) => group.sync(req, waiter, now_ms, &mut fx.replies),
        }
        self.settle(&mut fx);
        fx
    }

    pub fn heartbeat(
        &mut self,
        group_id: &str,
        who: &MemberRef,
        now_ms: i64,
    ) -> Result<(), GroupError> {
        self.groups
            .get_mut(group_id)
            .ok_or(GroupError::UnknownMemberId)?
            .heartbeat(who, now_ms)
    }

    /// LeaveGroup: a result per member, or one for the whole request.
    pub fn leave(
        &mut self,
        group_id: &str,
        members: &[MemberRef],
        now_ms: i64,
    ) -> (Effects, Result<Vec<Result<(), GroupError>>, GroupError>) {
        let mut fx = Effects::default();
        let Some(group) = self.groups.get_mut(group_id) else {
            return (fx, Err(GroupError::UnknownMemberId));
        };
        let results = members
            .iter()
            .map(|who| group.leave(who, &self.config, now_ms, &mut fx.replies))
            .collect();
        self.settle(&mut fx);
        (fx, Ok(results))
    }

    /// OffsetCommit: a result per partition, or one for the whole request. The offsets take
    /// effect once their records are written (`Effects::on_write`).
    pub fn commit_offsets(
        &mut self,
        group_id: &str,
        who: &MemberRef,
        offsets: Vec<OffsetToCommit>,
        now_ms: i64,
    ) -> (Effects, Result<Vec<Result<(), GroupError>>, GroupError>) {
        let mut fx = Effects::default();
        let (records, results) =
            match self.checked_offset_records(group_id, who, offsets, Commit::Direct, now_ms) {
                Ok(checked) => checked,
                Err(e) => return (fx, Err(e)),
            };
        fx.records = records;
        fx.on_write = Some(OnWrite::ApplyOffsets);
        (fx, Ok(results))
    }

    /// The records of an `Effects` were written: they take effect as its `on_write` says.
    pub fn written(&mut self, records: &[OffsetsRecord], on_write: OnWrite) -> Effects {
        for record in records {
            match on_write {
                OnWrite::ApplyOffsets => self.apply_offset(record.clone()),
                OnWrite::PendInTransaction(producer_id) => {
                    self.replay_txn_offset(producer_id, record.clone())
                }
            }
        }
        // Offsets gone (expired, deleted) may leave a group with nothing to keep: its
        // tombstone follows, to be written as any command's records are.
        let mut follow_up = Effects::default();
        self.settle(&mut follow_up);
        follow_up
    }

    /// TxnOffsetCommit: checked as OffsetCommit is (member and generation, when given), but
    /// the offsets wait for the producer's transaction to end: its commit marker applies them
    /// (`complete_txn`), an abort drops them.
    pub fn txn_commit_offsets(
        &mut self,
        group_id: &str,
        who: &MemberRef,
        producer: (i64, i16),
        offsets: Vec<OffsetToCommit>,
        now_ms: i64,
    ) -> (Effects, Result<Vec<Result<(), GroupError>>, GroupError>) {
        let mut fx = Effects::default();
        let checked =
            self.checked_offset_records(group_id, who, offsets, Commit::Transactional, now_ms);
        let (records, results) = match checked {
            Ok(checked) => checked,
            Err(e) => return (fx, Err(e)),
        };
        fx.records = records;
        fx.producer = Some(producer);
        fx.on_write = Some(OnWrite::PendInTransaction(producer.0));
        (fx, Ok(results))
    }

    /// Notes an offset committed in producer `producer_id`'s open transaction (replay at start,
    /// and TxnOffsetCommit).
    pub fn replay_txn_offset(&mut self, producer_id: i64, record: OffsetsRecord) {
        if let OffsetsRecord::Offset {
            group,
            topic,
            partition,
            ..
        } = &record
        {
            let key = (group.clone(), topic.clone(), *partition);
            self.pending_txn_offsets
                .entry(producer_id)
                .or_default()
                .insert(key, record);
        }
    }

    /// The producer's transaction ended here (its marker is in this partition): committed
    /// offsets take effect, aborted ones are dropped.
    pub fn complete_txn(&mut self, producer_id: i64, commit: bool) {
        let Some(pending) = self.pending_txn_offsets.remove(&producer_id) else {
            return;
        };
        if commit {
            for record in pending.into_values() {
                self.apply_offset(record);
            }
        }
    }

    /// An offset commit checked against the member and generation, then its records and a
    /// result per offset (OffsetCommit and TxnOffsetCommit).
    fn checked_offset_records(
        &mut self,
        group_id: &str,
        who: &MemberRef,
        offsets: Vec<OffsetToCommit>,
        commit: Commit,
        now_ms: i64,
    ) -> Result<CommitRecords, GroupError> {
        self.check_commit(group_id, who, commit, now_ms)?;
        Ok(self.offset_records(group_id, offsets, now_ms))
    }

    /// The records of an offset commit, and a result per offset (invalid ones get none).
    fn offset_records(
        &self,
        group_id: &str,
        offsets: Vec<OffsetToCommit>,
        now_ms: i64,
    ) -> (Vec<OffsetsRecord>, Vec<Result<(), GroupError>>) {
        let mut fx = Effects::default();
        let committed = self.offsets.get(group_id).map_or(0, BTreeMap::len);
        let mut results = Vec::with_capacity(offsets.len());
        for o in offsets {
            let metadata = o.metadata.unwrap_or_default();
            if o.topic.is_empty() || o.topic.len() > TOPIC_NAME_CHARS_MAX {
                results.push(Err(GroupError::InvalidTopic));
                continue;
            }
            if metadata.len() > OFFSET_METADATA_BYTES_MAX {
                results.push(Err(GroupError::OffsetMetadataTooLarge));
                continue;
            }
            if committed + fx.records.len() >= GROUP_COMMITTED_PARTITIONS_MAX {
                results.push(Err(GroupError::LimitReached("committed partitions")));
                continue;
            }
            fx.records.push(OffsetsRecord::Offset {
                group: group_id.to_owned(),
                topic: o.topic,
                partition: o.partition,
                value: Some(CommittedOffset {
                    offset: o.offset,
                    leader_epoch: o.leader_epoch,
                    metadata,
                    commit_timestamp_ms: now_ms,
                }),
            });
            results.push(Ok(()));
        }
        (fx.records, results)
    }

    fn check_commit(
        &mut self,
        group_id: &str,
        who: &MemberRef,
        commit: Commit,
        now_ms: i64,
    ) -> Result<(), GroupError> {
        check_group_id(group_id)?;
        let simple = who.generation < 0 && who.member_id.is_empty();
        // TxnOffsetCommit need not name a member (its fields came in v3): a transactional
        // commit that names none is taken whatever the group's state, as Kafka's
        // `validateOffsetCommit` takes it (aiokafka and faust send v0).
        let unchecked_txn = simple && commit == Commit::Transactional;
        if let Some(group) = self.consumer_groups.get(group_id) {
            if simple && group.members.is_empty() || unchecked_txn {
                return Ok(());
            }
            return group.check_commit(&who.member_id, who.generation);
        }
        let Some(group) = self.groups.get_mut(group_id) else {
            if !simple {
                return Err(GroupError::IllegalGeneration);
            }
            if self.groups.len() >= GROUPS_MAX {
                return Err(GroupError::LimitReached("groups"));
            }
            let group = ClassicGroup::new(group_id.to_owned(), now_ms);
            self.groups.insert(group_id.to_owned(), group);
            return Ok(());
        };
        if simple && group.state == GroupState::Empty || unchecked_txn {
            return Ok(());
        }
        let i = group.find_member(who)?;
        if who.generation != group.generation {
            return Err(GroupError::IllegalGeneration);
        }
        if group.state == GroupState::CompletingRebalance {
            return Err(GroupError::RebalanceInProgress);
        }
        group.members[i].heard_from(now_ms);
        Ok(())
    }

    /// Whether an open transaction holds an offset of `group` for this partition.
    fn has_pending_txn_offset(&self, group: &str, topic: &str, partition: i32) -> bool {
        if self.pending_txn_offsets.is_empty() {
            return false;
        }
        let key = (group.to_owned(), topic.to_owned(), partition);
        self.pending_txn_offsets
            .values()
            .any(|offsets| offsets.contains_key(&key))
    }

    /// OffsetFetch: `partitions` `None` means every partition the group has committed.
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        partitions: Option<&[(String, Vec<i32>)]>,
    ) -> Vec<FetchedOffset> {
        let empty = Offsets::new();
        let committed = self.offsets.get(group_id).unwrap_or(&empty);
        let fetched = |topic: &str, partition: i32| {
            let c = committed.get(&(topic.to_owned(), partition));
            FetchedOffset {
                topic: topic.to_owned(),
                partition,
                offset: c.map_or(-1, |c| c.offset),
                leader_epoch: c.map_or(-1, |c| c.leader_epoch),
                metadata: c.map(|c| c.metadata.clone()).unwrap_or_default(),
                unstable: self.has_pending_txn_offset(group_id, topic, partition),
            }
        };
        match partitions {
            Some(wanted) => wanted
                .iter()
                .flat_map(|(t, ps)| ps.iter().map(|&p| fetched(t, p)))
                .collect(),
            None => committed.keys().map(|(t, p)| fetched(t, *p)).collect(),
        }
    }

    pub fn list_groups(&self) -> Vec<GroupListing> {
        let mut out: Vec<GroupListing> = self
            .groups
            .values()
            .map(|g| GroupListing {
                group_id: g.id.clone(),
                protocol_type: g.protocol_type.clone().unwrap_or_default(),
                state: g.state.name(),
                group_type: "classic",
            })
            .chain(self.consumer_groups.values().map(|g| GroupListing {
                group_id: g.id.clone(),
                protocol_type: "consumer".to_owned(),
                state: g.state(),
                group_type: "consumer",
            }))
            .chain(self.share_groups.values().map(|g| GroupListing {
                group_id: g.id.clone(),
                protocol_type: "share".to_owned(),
                state: g.state(),
                group_type: "share",
            }))
            .collect();
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        out
    }

    pub fn describe_group(&self, group_id: &str) -> GroupDescription {
        let Some(g) = self.groups.get(group_id) else {
            return GroupDescription {
                group_id: group_id.to_owned(),
                state: "Dead",
                protocol_type: String::new(),
                protocol: String::new(),
                members: Vec::new(),
            };
        };
        let protocol = g.protocol.clone().unwrap_or_default();
        GroupDescription {
            group_id: g.id.clone(),
            state: g.state.name(),
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            members: g
                .members
                .iter()
                .map(|m| MemberDescription {
                    member_id: m.id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: m.metadata_for(&protocol),
                    assignment: m.assignment.clone(),
                })
                .collect(),
            protocol,
        }
    }

    /// DeleteGroups: only groups without members; their offsets go with them.
    pub fn delete_groups(
        &mut self,
        group_ids: &[String],
    ) -> (Effects, Vec<Result<(), GroupError>>) {
        let mut fx = Effects::default();
        let results = group_ids
            .iter()
            .map(|id| {
                if let Some(group) = self.share_groups.get(id) {
                    if !group.is_empty() {
                        return Err(GroupError::NonEmptyGroup);
                    }
                    self.share_groups.remove(id);
                    return Ok(());
                }
                let tombstone = if let Some(group) = self.consumer_groups.get(id) {
                    if !group.members.is_empty() {
                        return Err(GroupError::NonEmptyGroup);
                    }
                    self.consumer_groups.remove(id);
                    OffsetsRecord::ConsumerGroup {
                        group: id.clone(),
                        value: None,
                    }
                } else {
                    let group = self.groups.get(id).ok_or(GroupError::GroupIdNotFound)?;
                    if group.state != GroupState::Empty {
                        return Err(GroupError::NonEmptyGroup);
                    }
                    self.groups.remove(id);
                    OffsetsRecord::Group {
                        group: id.clone(),
                        value: None,
                    }
                };
                let offsets = self.offsets.remove(id).unwrap_or_default();
                for (topic, partition) in offsets.into_keys() {
                    fx.records.push(OffsetsRecord::Offset {
                        group: id.clone(),
                        topic,
                        partition,
                        value: None,
                    });
                }
                fx.records.push(tombstone);
                Ok(())
            })
            .collect();
        (fx, results)
    }

    /// OffsetDelete: refused per partition while members of the group subscribe to its topic
    /// (`subscribed_topics`, which the broker reads from the members' metadata).
    pub fn delete_offsets(
        &mut self,
        group_id: &str,
        partitions: &[(String, i32)],
        subscribed_topics: &HashSet<String>,
    ) -> (Effects, Result<Vec<Result<(), GroupError>>, GroupError>) {
        let mut fx = Effects::default();
        let consumer = self.consumer_groups.get(group_id);
        let subscribed = |topic: &String| match consumer {
            Some(g) => g.subscribes_to(topic),
            None => subscribed_topics.contains(topic),
        };
        let active = match (consumer, self.groups.get(group_id)) {
            (Some(g), _) => !g.members.is_empty(),
            (None, Some(g)) => g.state != GroupState::Empty,
            (None, None) => return (fx, Err(GroupError::GroupIdNotFound)),
        };
        let blocked: Vec<bool> = partitions
            .iter()
            .map(|(topic, _)| active && subscribed(topic))
            .collect();
        let mut results = Vec::with_capacity(partitions.len());
        for ((topic, partition), blocked) in partitions.iter().zip(blocked) {
            if blocked {
                results.push(Err(GroupError::GroupSubscribedToTopic));
                continue;
            }
            let record = OffsetsRecord::Offset {
                group: group_id.to_owned(),
                topic: topic.clone(),
                partition: *partition,
                value: None,
            };
            fx.records.push(record);
            results.push(Ok(()));
        }
        fx.on_write = Some(OnWrite::ApplyOffsets);
        (fx, Ok(results))
    }

    /// Expires committed offsets of groups without members once `offsets_retention_ms` has
    /// passed since their commit, writing a tombstone for each (Kafka's offset expiry, with the
    /// commit time as the clock). The offsets go once the tombstones are written (`written`),
    /// which then forgets a group left with neither members nor offsets.
    pub fn expire_offsets(&mut self, now_ms: i64) -> Effects {
        let mut fx = Effects::default();
        let retention = self.config.offsets_retention_ms;
        let idle = |id: &String| {
            let classic_idle = self
                .groups
                .get(id)
                .is_none_or(|g| g.state == GroupState::Empty && g.pending.is_empty());
            let consumer_idle = self
                .consumer_groups
                .get(id)
                .is_none_or(|g| g.members.is_empty());
            classic_idle && consumer_idle
        };
        let expired: Vec<OffsetsRecord> = self
            .offsets
            .iter()
            .filter(|(id, _)| idle(id))
            .flat_map(|(id, offsets)| {
                offsets
                    .iter()
                    .filter(|(_, c)| c.commit_timestamp_ms.saturating_add(retention) <= now_ms)
                    .map(|((topic, partition), _)| OffsetsRecord::Offset {
                        group: id.clone(),
                        topic: topic.clone(),
                        partition: *partition,
                        value: None,
                    })
            })
            .collect();
        if !expired.is_empty() {
            fx.records = expired;
            fx.on_write = Some(OnWrite::ApplyOffsets);
        }
        fx
    }

    /// Fires every deadline at or before `now_ms`.
    pub fn tick(&mut self, now_ms: i64) -> Effects {
        let mut fx = Effects::default();
        for group in self.groups.values_mut() {
            if group.next_deadline_ms().is_some_and(|d| d <= now_ms) {
                group.expire(&self.config, now_ms, &mut fx.replies);
            }
        }
        for group in self.consumer_groups.values_mut() {
            if group.next_deadline_ms().is_some_and(|d| d <= now_ms) {
                group.expire(now_ms);
            }
        }
        for group in self.share_groups.values_mut() {
            if group.next_deadline_ms().is_some_and(|d| d <= now_ms) {
                group.expire(now_ms);
            }
        }
        self.settle(&mut fx);
        fx
    }

    /// ConsumerGroupHeartbeat (KIP-848). `topics` gives a topic's partition count.
    pub fn consumer_heartbeat(
        &mut self,
        req: ConsumerHeartbeat,
        topics: TopicPartitionCounts<'_>,
        now_ms: i64,
    ) -> (Effects, ConsumerHeartbeatResponse) {
        let mut fx = Effects::default();
        if let Err(e) = check_group_id(&req.group_id) {
            return (fx, ConsumerHeartbeatResponse::error_for(e, &req.member_id));
        }
        if self.share_groups.contains_key(&req.group_id) {
            let e = GroupError::GroupIdNotFound;
            return (fx, ConsumerHeartbeatResponse::error_for(e, &req.member_id));
        }
        if let Some(classic) = self.groups.get(&req.group_id) {
            if !classic.members.is_empty() || !classic.pending.is_empty() {
                let e = GroupError::GroupIdNotFound;
                return (fx, ConsumerHeartbeatResponse::error_for(e, &req.member_id));
            }
            self.groups.remove(&req.group_id);
        }
        if !self.consumer_groups.contains_key(&req.group_id) {
            if self.groups.len() + self.consumer_groups.len() >= GROUPS_MAX {
                let e = GroupError::LimitReached("groups");
                return (fx, ConsumerHeartbeatResponse::error_for(e, &req.member_id));
            }
            let group = ConsumerGroup::new(req.group_id.clone());
            self.consumer_groups.insert(req.group_id.clone(), group);
        }
        let group = self
            .consumer_groups
            .get_mut(&req.group_id)
            .expect("inserted above");
        let response = group.heartbeat(req, &self.config, topics, now_ms);
        self.settle(&mut fx);
        (fx, response)
    }

    pub fn describe_consumer_group(&self, group_id: &str) -> Option<ConsumerGroupDescription> {
        self.consumer_groups
            .get(group_id)
            .map(ConsumerGroup::describe)
    }

    /// OffsetFetch v9 names the member that asks: in a KIP-848 group it must be current.
    pub fn check_fetching_member(
        &self,
        group_id: &str,
        member_id: &str,
        epoch: i32,
    ) -> Result<(), GroupError> {
        match self.consumer_groups.get(group_id) {
            Some(group) if epoch >= 0 => group.check_commit(member_id, epoch),
            _ => Ok(()),
        }
    }

    pub fn next_deadline_ms(&self) -> Option<i64> {
        let classic = self
            .groups
            .values()
            .filter_map(ClassicGroup::next_deadline_ms);
        let consumer = self
            .consumer_groups
            .values()
            .filter_map(ConsumerGroup::next_deadline_ms);
        let share = self
            .share_groups
            .values()
            .filter_map(ShareGroup::next_deadline_ms);
        classic.chain(consumer).chain(share).min()
    }

    /// ShareGroupHeartbeat (KIP-932). `topics` gives a topic's partition count.
    pub fn share_heartbeat(
        &mut self,
        req: ShareHeartbeat,
        topics: TopicPartitionCounts<'_>,
        now_ms: i64,
    ) -> (Effects, ShareHeartbeatResponse) {
        let fx = Effects::default();
        if let Err(e) = check_group_id(&req.group_id) {
            return (fx, ShareHeartbeatResponse::error_for(e, &req.member_id));
        }
        if self.groups.contains_key(&req.group_id)
            || self.consumer_groups.contains_key(&req.group_id)
        {
            let e = GroupError::GroupIdNotFound;
            return (fx, ShareHeartbeatResponse::error_for(e, &req.member_id));
        }
        if !self.share_groups.contains_key(&req.group_id) {
            if req.member_epoch != 0 {
                let e = GroupError::UnknownMemberId;
                return (fx, ShareHeartbeatResponse::error_for(e, &req.member_id));
            }
            if self.groups.len() + self.consumer_groups.len() + self.share_groups.len()
                >= GROUPS_MAX
            {
                let e = GroupError::LimitReached("groups");
                return (fx, ShareHeartbeatResponse::error_for(e, &req.member_id));
            }
            let group = ShareGroup::new(req.group_id.clone());
            self.share_groups.insert(req.group_id.clone(), group);
        }
        let group = self
            .share_groups
            .get_mut(&req.group_id)
            .expect("inserted above");
        let response = group.heartbeat(req, self.config.members_max, topics, now_ms);
        (fx, response)
    }

    pub fn describe_share_group(&self, group_id: &str) -> Option<ShareGroupDescription> {
        self.share_groups.get(group_id).map(ShareGroup::describe)
    }

    /// Whether share group `group_id` has no members, and the topics its members subscribed
    /// to since it was loaded here; `None` if there is no group of that id, GROUP_ID_NOT_FOUND
    /// if it is a group of another kind.
    pub fn share_group_topics(
        &self,
        group_id: &str,
    ) -> Result<Option<(bool, Vec<String>)>, GroupError> {
        if self.groups.contains_key(group_id) || self.consumer_groups.contains_key(group_id) {
            return Err(GroupError::GroupIdNotFound);
        }
        Ok(self.share_groups.get(group_id).map(|g| {
            let topics = g.topics_seen().iter().cloned().collect();
            (g.is_empty(), topics)
        }))
    }

    /// Rebuilds state from one `__consumer_offsets` record, in log order.
    pub fn replay(&mut self, record: OffsetsRecord, now_ms: i64) {
        match record {
            r @ OffsetsRecord::Offset { .. } => self.apply_offset(r),
            OffsetsRecord::Group { group, value: None } => {
                self.groups.remove(&group);
            }
            OffsetsRecord::Group {
                group,
                value: Some(metadata),
            } => {
                let g = ClassicGroup::from_record(group.clone(), metadata, now_ms);
                self.groups.insert(group, g);
            }
            OffsetsRecord::ConsumerGroup { group, value: None } => {
                self.consumer_groups.remove(&group);
            }
            OffsetsRecord::ConsumerGroup {
                group,
                value: Some(snapshot),
            } => {
                let g = ConsumerGroup::from_snapshot(group.clone(), snapshot, &self.config, now_ms);
                self.groups.remove(&group);
                self.consumer_groups.insert(group, g);
            }
        }
    }

    fn apply_offset(&mut self, record: OffsetsRecord) {
        let OffsetsRecord::Offset {
            group,
            topic,
            partition,
            value,
        } = record
        else {
            return;
        };
        match value {
            Some(v) => {
                if !self.groups.contains_key(&group) && !self.consumer_groups.contains_key(&group) {
                    // Offsets committed without a group (simple consumers) still belong to one.
                    let empty = ClassicGroup::new(group.clone(), v.commit_timestamp_ms);
                    self.groups.insert(group.clone(), empty);
                }
                self.offsets
                    .entry(group)
                    .or_default()
                    .insert((topic, partition), v);
            }
            None => {
                if let Some(o) = self.offsets.get_mut(&group) {
                    o.remove(&(topic, partition));
                    if o.is_empty() {
                        self.offsets.remove(&group);
                    }
                }
            }
        }
    }

    /// After a command: writes a group record for every group whose outcome changed, and
    /// forgets groups left with neither members nor offsets (writing their tombstone).
    fn settle(&mut self, fx: &mut Effects) {
        let mut gone = Vec::new();
        for group in self.groups.values_mut() {
            let unused = group.state == GroupState::Empty
                && group.members.is_empty()
                && group.pending.is_empty()
                && !self.offsets.contains_key(&group.id);
            if unused {
                gone.push(group.id.clone());
                continue;
            }
            if std::mem::take(&mut group.dirty) {
                fx.records.push(OffsetsRecord::Group {
                    group: group.id.clone(),
                    value: Some(group.to_record()),
                });
            }
        }
        for id in gone {
            let group = self.groups.remove(&id).expect("listed above");
            if group.generation > 0 {
                fx.records.push(OffsetsRecord::Group {
                    group: id,
                    value: None,
                });
            }
        }
        let mut gone = Vec::new();
        for group in self.consumer_groups.values_mut() {
            if group.members.is_empty() && !self.offsets.contains_key(&group.id) {
                gone.push(group.id.clone());
            } else if std::mem::take(&mut group.dirty) {
                fx.records.push(OffsetsRecord::ConsumerGroup {
                    group: group.id.clone(),
                    value: Some(group.to_snapshot()),
                });
            }
        }
        for id in gone {
            let group = self.consumer_groups.remove(&id).expect("listed above");
            // A group whose first heartbeat was refused never had a record to delete.
            if group.group_epoch > 0 {
                fx.records.push(OffsetsRecord::ConsumerGroup {
                    group: id,
                    value: None,
                });
            }
        }
    }
}

fn group_or_create<'a>(
    groups: &'a mut HashMap<String, ClassicGroup>,
    group_id: &str,
    now_ms: i64,
) -> Result<&'a mut ClassicGroup, GroupError> {
    if !groups.contains_key(group_id) {
        if groups.len() >= GROUPS_MAX {
            return Err(GroupError::LimitReached("groups"));
        }
        let group = ClassicGroup::new(group_id.to_owned(), now_ms);
        groups.insert(group_id.to_owned(), group);
    }
    Ok(groups.get_mut(group_id).expect("inserted above"))
}

fn check_group_id(id: &str) -> Result<(), GroupError> {
    if id.is_empty() || id.len() > GROUP_ID_BYTES_MAX {
        return Err(GroupError::InvalidGroupId);
    }
    Ok(())
}
