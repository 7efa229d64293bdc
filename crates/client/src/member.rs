//! `Membership`: one consumer-group member reading one topic, through the KIP-848 protocol
//! (ConsumerGroupHeartbeat): the broker assigns partitions and the member only reports what
//! it owns. Heartbeats go over a connection of their own to the coordinator, so a fetch
//! long-polling on the leader never delays them. Used by `sluice consume --group` and the
//! HTTP API's group streams.

use crate::groups::{self, Heartbeat, Member};
use crate::{Client, ClientError, Connection, Result};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;

/// KIP-848 error codes that mean "join again with epoch 0".
const UNKNOWN_MEMBER_ID: i16 = 25;
const FENCED_MEMBER_EPOCH: i16 = 110;
const STALE_MEMBER_EPOCH: i16 = 113;
/// The member epoch that leaves the group.
const LEAVE_EPOCH: i32 = -1;

pub struct Membership {
    group: String,
    topic: String,
    topic_id: uuid::Uuid,
    member_id: String,
    epoch: i32,
    coordinator: Connection,
    next_heartbeat: Instant,
    assigned: Vec<i32>,
}

impl Membership {
    /// Finds the coordinator of `group`; the first `poll` joins.
    pub async fn new(client: &mut Client, group: &str, topic: &str) -> Result<Membership> {
        let metadata = client.metadata(Some(&[topic.to_string()]), false).await?;
        let topic_id = metadata
            .topics
            .first()
            .map(|t| t.topic_id)
            .filter(|id| !id.is_nil())
            .ok_or_else(|| {
                ClientError::Invalid(format!(
                    "the broker did not give topic {topic}'s id (group members need Metadata v10 or later)"
                ))
            })?;
        let node = groups::coordinator(client, group).await?;
        let coordinator = client.dedicated(node).await?;
        Ok(Membership {
            group: group.to_string(),
            topic: topic.to_string(),
            topic_id,
            member_id: uuid::Uuid::new_v4().simple().to_string(),
            epoch: 0,
            coordinator,
            next_heartbeat: Instant::now(),
            assigned: Vec::new(),
        })
    }

    /// True once the broker has answered a join.
    pub fn joined(&self) -> bool {
        self.epoch > 0
    }

    pub fn next_heartbeat(&self) -> Instant {
        self.next_heartbeat
    }

    /// Heartbeats when one is due. Returns the member's partitions of the topic when they
    /// changed (all of them, not the difference).
    pub async fn poll(&mut self) -> Result<Option<Vec<i32>>> {
        if Instant::now() < self.next_heartbeat {
            return Ok(None);
        }
        let topics = [self.topic.clone()];
        let response = groups::consumer_group_heartbeat(
            &mut self.coordinator,
            Heartbeat {
                group: &self.group,
                member_id: &self.member_id,
                member_epoch: self.epoch,
                topics: (self.epoch == 0).then_some(&topics[..]),
                owned: Some(vec![(self.topic_id, self.assigned.clone())]),
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
        let mut mine: Vec<i32> = assignment
            .topic_partitions
            .into_iter()
            .filter(|tp| tp.topic_id == self.topic_id)
            .flat_map(|tp| tp.partitions)
            .collect();
        mine.sort_unstable();
        self.assigned = mine.clone();
        Ok(Some(mine))
    }

    /// Commits the next offsets to read of the given partitions.
    pub async fn commit(&mut self, offsets: &BTreeMap<i32, i64>) -> Result<()> {
        let offsets = offsets
            .iter()
            .map(|(p, o)| ((self.topic.clone(), *p), *o))
            .collect();
        let member = Member {
            member_id: self.member_id.clone(),
            epoch: self.epoch,
        };
        groups::commit_offsets(&mut self.coordinator, &self.group, &member, &offsets).await
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

/// A commit (or heartbeat) error that the next heartbeat settles by rejoining: the member's
/// epoch moved on or the group forgot it.
pub fn rejoin_settles(e: &ClientError) -> bool {
    e.code().is_some_and(|c| {
        matches!(
            c,
            STALE_MEMBER_EPOCH | FENCED_MEMBER_EPOCH | UNKNOWN_MEMBER_ID
        )
    })
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
            membership: Membership::new(client, group, topic).await?,
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
        match self.membership.commit(&moved).await {
            Ok(()) => {
                self.committed.extend(moved);
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
