//! `Membership`: one consumer-group member reading some topics, through the KIP-848 protocol
//! (ConsumerGroupHeartbeat): the broker assigns partitions and the member only reports what
//! it owns. Heartbeats go over a connection of their own to the coordinator, so a fetch
//! long-polling on the leader never delays them. Used by `sluice consume --group` and the
//! HTTP API's group streams.

use crate::classic::ClassicMembership;
use crate::codes::{
    FENCED_MEMBER_EPOCH, GROUP_ID_NOT_FOUND, STALE_MEMBER_EPOCH, UNKNOWN_MEMBER_ID,
};
use crate::groups::{self, Heartbeat, Member};
use crate::{Client, ClientError, Connection, Result};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;

/// The member epoch that leaves the group.
const LEAVE_EPOCH: i32 = -1;

/// A topic and partition.
pub type TopicPartition = (String, i32);

pub struct Membership {
    group: String,
    /// The subscribed topics, by the ids assignments name them with.
    topics: BTreeMap<uuid::Uuid, String>,
    member_id: String,
    epoch: i32,
    coordinator: Connection,
    next_heartbeat: Instant,
    assigned: Vec<TopicPartition>,
}

impl Membership {
    /// Finds the coordinator of `group`; the first `poll` joins, subscribed to `topics`.
    pub async fn new(client: &mut Client, group: &str, topics: &[String]) -> Result<Membership> {
        let ids = topic_ids(client, topics).await?;
        let coordinator = coordinator_of(client, group).await?;
        Ok(Membership {
            group: group.to_string(),
            topics: ids,
            member_id: uuid::Uuid::new_v4().simple().to_string(),
            epoch: 0,
            coordinator,
            next_heartbeat: Instant::now(),
            assigned: Vec::new(),
        })
    }

    /// Finds the group's coordinator again and opens a new connection to it (after a broker
    /// restart or a coordinator move); the member keeps its id and epoch, and the next
    /// heartbeat, due at once, learns whether the group still knows them.
    pub async fn reconnect(&mut self, client: &mut Client) -> Result<()> {
        self.coordinator = coordinator_of(client, &self.group).await?;
        self.next_heartbeat = Instant::now();
        Ok(())
    }

    /// True once the broker has answered a join.
    pub fn joined(&self) -> bool {
        self.epoch > 0
    }

    pub fn next_heartbeat(&self) -> Instant {
        self.next_heartbeat
    }

    /// Heartbeats when one is due. Returns the member's partitions when they changed (all of
    /// them, not the difference).
    pub async fn poll(&mut self) -> Result<Option<Vec<TopicPartition>>> {
        if Instant::now() < self.next_heartbeat {
            return Ok(None);
        }
        let topics: Vec<String> = self.topics.values().cloned().collect();
        let owned = self.owned();
        let response = groups::consumer_group_heartbeat(
            &mut self.coordinator,
            Heartbeat {
                group: &self.group,
                member_id: &self.member_id,
                member_epoch: self.epoch,
                topics: (self.epoch == 0).then_some(&topics[..]),
                owned: Some(owned),
            },
        )
        .await?;
        if matches!(response.error_code, UNKNOWN_MEMBER_ID | FENCED_MEMBER_EPOCH) {
            // Fenced: give up every partition and join again.
            self.epoch = 0;
            self.assigned.clear();
            self.next_heartbeat = Instant::now();
            return Ok(Some(Vec::new()));
        }
        ClientError::check(
            response.error_code,
            response.error_message.as_deref(),
            || format!("heartbeat to group {}", self.group),
        )?;
        if let Some(id) = response.member_id.filter(|id| !id.is_empty()) {
            self.member_id = id.to_string();
        }
        self.epoch = response.member_epoch;
        let interval = Duration::from_millis(response.heartbeat_interval_ms.max(100) as u64);
        self.next_heartbeat = Instant::now() + interval;
        let Some(assignment) = response.assignment else {
            return Ok(None);
        };
        let mut mine: Vec<TopicPartition> = assignment
            .topic_partitions
            .into_iter()
            .filter_map(|tp| Some((self.topics.get(&tp.topic_id)?.clone(), tp.partitions)))
            .flat_map(|(topic, partitions)| partitions.into_iter().map(move |p| (topic.clone(), p)))
            .collect();
        mine.sort_unstable();
        self.assigned = mine.clone();
        Ok(Some(mine))
    }

    /// The owned partitions by topic id, as a heartbeat reports them.
    fn owned(&self) -> Vec<(uuid::Uuid, Vec<i32>)> {
        self.topics
            .iter()
            .map(|(id, topic)| {
                let partitions = self
                    .assigned
                    .iter()
                    .filter(|(t, _)| t == topic)
                    .map(|(_, p)| *p)
                    .collect();
                (*id, partitions)
            })
            .collect()
    }

    /// Commits the next offsets to read of the given partitions.
    pub async fn commit(&mut self, offsets: &BTreeMap<TopicPartition, i64>) -> Result<()> {
        let member = Member {
            member_id: self.member_id.clone(),
            epoch: self.epoch,
        };
        groups::commit_offsets(&mut self.coordinator, &self.group, &member, offsets).await
    }

    /// Leaves the group so its partitions move to other members at once.
    pub async fn leave(&mut self) {
        if !self.joined() {
            return;
        }
        let result = groups::consumer_group_heartbeat(
            &mut self.coordinator,
            Heartbeat {
                group: &self.group,
                member_id: &self.member_id,
                member_epoch: LEAVE_EPOCH,
                topics: None,
                owned: None,
            },
        )
        .await;
        if let Err(e) = result {
            tracing::warn!(group = %self.group, error = %e, "leaving the group failed; its session will time out");
        }
    }
}

/// `topics` by the ids the broker gave them (assignments name topics by id).
pub(crate) async fn topic_ids(
    client: &mut Client,
    topics: &[String],
) -> Result<BTreeMap<uuid::Uuid, String>> {
    let metadata = client.metadata(Some(topics), false).await?;
    let mut ids = BTreeMap::new();
    for topic in topics {
        let id = metadata
            .topics
            .iter()
            .find(|t| t.name.as_ref().is_some_and(|n| n.as_str() == topic))
            .map(|t| t.topic_id)
            .filter(|id| !id.is_nil())
            .ok_or_else(|| {
                ClientError::Invalid(format!(
                    "the broker did not give topic {topic}'s id (group members need Metadata v10 or later)"
                ))
            })?;
        ids.insert(id, topic.clone());
    }
    Ok(ids)
}

/// A connection of its own to `group`'s coordinator.
pub(crate) async fn coordinator_of(client: &mut Client, group: &str) -> Result<Connection> {
    let node = groups::coordinator(client, group).await?;
    client.dedicated(node).await
}

/// A commit (or heartbeat) error that the next heartbeat settles by rejoining: the member's
/// epoch (or classic generation) moved on or the group forgot it.
pub fn rejoin_settles(e: &ClientError) -> bool {
    e.code().is_some_and(|c| {
        matches!(
            c,
            STALE_MEMBER_EPOCH | FENCED_MEMBER_EPOCH | UNKNOWN_MEMBER_ID
        ) || crate::classic::rejoin_settles(c)
    })
}

/// A member of a consumer group by either protocol: KIP-848 first; `poll` switches to the
/// classic protocol when the group turns out to have live classic members (`is_classic` tells
/// the caller, which may say so).
pub enum GroupMember {
    Consumer(Membership),
    Classic(ClassicMembership),
}

impl GroupMember {
    /// A member of `group` subscribed to `topics`, by the KIP-848 protocol to begin with.
    pub async fn new(client: &mut Client, group: &str, topics: &[String]) -> Result<GroupMember> {
        Ok(GroupMember::Consumer(
            Membership::new(client, group, topics).await?,
        ))
    }

    /// See `Membership::poll`; a KIP-848 member that meets a classic group becomes a classic
    /// member (its partitions so far: none).
    pub async fn poll(&mut self, client: &mut Client) -> Result<Option<Vec<TopicPartition>>> {
        match self {
            GroupMember::Classic(m) => m.poll(client).await,
            GroupMember::Consumer(m) => match m.poll().await {
                Err(e) if e.code() == Some(GROUP_ID_NOT_FOUND) => {
                    let topics: Vec<String> = m.topics.values().cloned().collect();
                    tracing::info!(group = %m.group, "the group has classic members; joining it with JoinGroup");
                    let classic = ClassicMembership::new(client, &m.group, &topics).await?;
                    *self = GroupMember::Classic(classic);
                    Box::pin(self.poll(client)).await
                }
                other => other,
            },
        }
    }

    pub async fn commit(&mut self, offsets: &BTreeMap<TopicPartition, i64>) -> Result<()> {
        match self {
            GroupMember::Consumer(m) => m.commit(offsets).await,
            GroupMember::Classic(m) => m.commit(offsets).await,
        }
    }

    pub async fn reconnect(&mut self, client: &mut Client) -> Result<()> {
        match self {
            GroupMember::Consumer(m) => m.reconnect(client).await,
            GroupMember::Classic(m) => m.reconnect(client).await,
        }
    }

    /// True once the member speaks the classic protocol.
    pub fn is_classic(&self) -> bool {
        matches!(self, GroupMember::Classic(_))
    }

    pub fn joined(&self) -> bool {
        match self {
            GroupMember::Consumer(m) => m.joined(),
            GroupMember::Classic(m) => m.joined(),
        }
    }

    pub fn next_heartbeat(&self) -> Instant {
        match self {
            GroupMember::Consumer(m) => m.next_heartbeat(),
            GroupMember::Classic(m) => m.next_heartbeat(),
        }
    }

    pub async fn leave(&mut self) {
        match self {
            GroupMember::Consumer(m) => m.leave().await,
            GroupMember::Classic(m) => m.leave().await,
        }
    }
}

/// A group member's reading state over `Membership`: where it stands in each assigned
/// partition and what it has committed. Shared by the HTTP API's group streams and polling
/// members.
pub struct GroupReader {
    pub membership: Membership,
    group: String,
    topic: String,
    from: crate::position::Start,
    /// Next offset to hand out, per assigned partition.
    pub positions: BTreeMap<i32, i64>,
    committed: BTreeMap<i32, i64>,
}

impl GroupReader {
    pub async fn join(
        client: &mut Client,
        group: &str,
        topic: &str,
        from: crate::position::Start,
    ) -> Result<GroupReader> {
        Ok(GroupReader {
            membership: Membership::new(client, group, &[topic.to_string()]).await?,
            group: group.to_string(),
            topic: topic.to_string(),
            from,
            positions: BTreeMap::new(),
            committed: BTreeMap::new(),
        })
    }

    /// Commits the positions that moved since the last commit; a commit the next heartbeat
    /// settles (the epoch moved on) is left for later.
    pub async fn commit(&mut self) -> Result<()> {
        let moved: BTreeMap<i32, i64> = self
            .positions
            .iter()
            .filter(|(p, o)| self.committed.get(p) != Some(o))
            .map(|(p, o)| (*p, *o))
            .collect();
        if moved.is_empty() {
            return Ok(());
        }
        let offsets = moved
            .iter()
            .map(|(p, o)| ((self.topic.clone(), *p), *o))
            .collect();
        match self.membership.commit(&offsets).await {
            Ok(()) => {
                self.committed.extend(moved);
                Ok(())
            }
            Err(e) if rejoin_settles(&e) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Commits `offsets` (next offsets to read, by partition) of the partitions still assigned:
    /// a reader that acknowledges explicitly commits what its client processed, not what it
    /// was sent. A commit the next heartbeat settles is left out, as in `commit`.
    pub async fn commit_acknowledged(&mut self, offsets: &BTreeMap<i32, i64>) -> Result<()> {
        let owned: BTreeMap<TopicPartition, i64> = offsets
            .iter()
            .filter(|(p, o)| self.positions.contains_key(p) && self.committed.get(p) != Some(o))
            .map(|(p, o)| ((self.topic.clone(), *p), *o))
            .collect();
        if owned.is_empty() {
            return Ok(());
        }
        match self.membership.commit(&owned).await {
            Ok(()) => {
                self.committed
                    .extend(owned.into_iter().map(|((_, p), o)| (p, o)));
                Ok(())
            }
            Err(e) if rejoin_settles(&e) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Heartbeats when due and takes up a new assignment: new partitions start at the
    /// group's committed offsets, else at `from`.
    pub async fn refresh(&mut self, client: &mut Client) -> Result<()> {
        let Some(assigned) = self.membership.poll().await? else {
            return Ok(());
        };
        let assigned: Vec<i32> = assigned
            .into_iter()
            .filter(|(t, _)| *t == self.topic)
            .map(|(_, p)| p)
            .collect();
        self.positions.retain(|p, _| assigned.contains(p));
        self.committed.retain(|p, _| assigned.contains(p));
        let new: Vec<i32> = assigned
            .into_iter()
            .filter(|p| !self.positions.contains_key(p))
            .collect();
        if new.is_empty() {
            return Ok(());
        }
        let asked = [(self.topic.clone(), new.clone())];
        let committed = groups::committed_offsets(client, &self.group, Some(&asked)).await?;
        for p in new {
            let offset = match committed.get(&(self.topic.clone(), p)) {
                Some(&o) => o,
                None => crate::position::start_offset(client, &self.topic, p, self.from).await?,
            };
            self.positions.insert(p, offset);
            self.committed.insert(p, offset);
        }
        Ok(())
    }
}
