//! `QuorumController`: the active controller's decisions. Each command reads the image and
//! answers with the records that carry it out; the image changes only when the log has
//! committed them and they come back through `replay`, as on every broker. The caller runs one
//! command at a time and replays its records before the next, so no decision rests on a record
//! that might not commit.
//!
//! Broker sessions, as KRaft keeps them (`BrokerHeartbeatManager`): a broker registers with an
//! incarnation id and gets a broker epoch; it starts fenced and is unfenced by a heartbeat that
//! says it has caught up with the metadata; a broker without a heartbeat for
//! `session_timeout_ms` is fenced, and so is one that asks to shut down. Fencing moves the
//! leadership of its partitions to another in-sync replica (the rules are
//! `sluice_replication::PartitionRegistration`'s), or leaves them without a leader until an
//! in-sync replica is back. Heartbeat times are the controller's own memory, not records: a
//! newly active controller gives every broker a full session (`become_active`).

use crate::error::ControllerError;
use crate::image::MetadataImage;
use crate::record::{ConfigResource, Endpoint, MetadataRecord};
use sluice_replication::{NO_LEADER, PartitionRegistration};
use sluice_types::limits;
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

mod acls;
mod alter_partition;
mod changes;
mod import;
mod quotas;
mod scram;

pub use acls::{AclEntry, AclFilterEntry};
pub use alter_partition::{AlterPartition, PartitionState};
pub use changes::{ConfigChanges, NewPartitions};
pub use import::ImportedTopic;
pub use quotas::{
    QUOTA_CLIENT_ID, QUOTA_KEYS, QUOTA_USER, QuotaAlteration, QuotaEntity, QuotaFilter, QuotaMatch,
    QuotaValue,
};
pub use scram::{ScramDeletion, ScramUpsertion, check_upsertion};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControllerConfig {
    /// `broker.session.timeout.ms`: a broker without a heartbeat this long is fenced.
    pub session_timeout_ms: i64,
    /// Producer ids handed to a broker at a time.
    pub producer_id_block_size: i64,
    /// `num.partitions` and `default.replication.factor`, for a request that names neither.
    pub default_partitions: i32,
    pub default_replication_factor: i16,
    /// The largest replication factor accepted (beyond the brokers available, which bound
    /// it too); a larger one is refused, never silently lowered.
    pub replication_factor_max: i16,
    /// `unclean.leader.election.enable` for topics that do not set it.
    pub unclean_leader_election_enable: bool,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            session_timeout_ms: 9_000,
            producer_id_block_size: 1_000,
            default_partitions: 1,
            default_replication_factor: 1,
            replication_factor_max: i16::MAX,
            unclean_leader_election_enable: false,
        }
    }
}

/// A broker registering (BrokerRegistration).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Registration {
    pub broker_id: i32,
    pub incarnation_id: Uuid,
    /// The broker's data directory (`directory.id`): a new one means the data the broker
    /// held is gone.
    pub directory_id: Uuid,
    pub endpoints: Vec<Endpoint>,
    pub rack: Option<String>,
}

/// A broker's heartbeat (BrokerHeartbeat).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BrokerHeartbeat {
    pub broker_id: i32,
    pub broker_epoch: i64,
    /// The broker has applied the metadata up to its own registration.
    pub caught_up: bool,
    /// The broker asks to stay fenced (it is not ready to serve).
    pub want_fence: bool,
    /// The broker is shutting down: fence it and move its leadership away (controlled
    /// shutdown).
    pub want_shutdown: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HeartbeatReply {
    /// Whether the broker is fenced once the heartbeat's records are committed.
    pub fenced: bool,
    /// Whether its shutdown may proceed: it leads nothing any more.
    pub shutdown_ready: bool,
}

/// A topic to create (CreateTopics).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NewTopic {
    pub name: String,
    /// -1: `default_partitions` (or the assignment's length).
    pub partitions: i32,
    /// -1: `default_replication_factor`.
    pub replication_factor: i16,
    /// Replicas per partition, if the request assigns them; otherwise placed round-robin.
    pub assignments: Vec<Vec<i32>>,
    /// Configs, already checked by the caller (storage knows the topic config keys).
    pub configs: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TopicCreated {
    pub topic_id: Uuid,
    pub partitions: i32,
    pub replication_factor: i16,
}

#[derive(Debug, Default)]
pub struct QuorumController {
    config: ControllerConfig,
    image: MetadataImage,
    last_heartbeat_ms: BTreeMap<i32, i64>,
    /// Brokers this controller has heard from since it became active. A session it only
    /// assumed (`become_active`) fences no one, but does not keep a new incarnation out
    /// either: the process that held it may be the one restarting.
    heard_from: BTreeSet<i32>,
    /// Where the next topic's round-robin placement starts, so topics spread their first
    /// partitions over different brokers.
    placement_start: usize,
}

/// The topic config that allows electing a replica outside the in-sync set.
const UNCLEAN_ELECTION: &str = "unclean.leader.election.enable";

/// Whether `topic` allows unclean leader election in `image`: its config, else `default`.
fn unclean_allowed(image: &MetadataImage, topic: &str, default: bool) -> bool {
    let resource = ConfigResource::Topic(topic.to_string());
    match image
        .configs
        .get(&resource)
        .and_then(|c| c.get(UNCLEAN_ELECTION))
    {
        Some(value) => value.trim() == "true",
        None => default,
    }
}

impl QuorumController {
    pub fn new(config: ControllerConfig) -> QuorumController {
        QuorumController {
            config,
            ..QuorumController::default()
        }
    }

    pub fn image(&self) -> &MetadataImage {
        &self.image
    }

    /// A committed record, in log order (this controller's own, or found in the log).
    pub fn replay(&mut self, record: &MetadataRecord) {
        self.image.apply(record);
    }

    /// This controller became the active one: every registered broker gets a full session
    /// from now, since heartbeats sent to the previous controller are not known here.
    pub fn become_active(&mut self, now_ms: i64) {
        self.last_heartbeat_ms = self.image.brokers.keys().map(|&b| (b, now_ms)).collect();
        self.heard_from.clear();
    }

    /// The first records of a new cluster: its id.
    pub fn bootstrap(&self, cluster_id: &str) -> Vec<MetadataRecord> {
        if self.image.cluster_id.is_some() {
            return Vec::new();
        }
        vec![MetadataRecord::ClusterId {
            cluster_id: cluster_id.to_string(),
        }]
    }

    /// A broker (re)registers: the same incarnation gets its epoch back; a new incarnation
    /// gets a new epoch and starts fenced, its old one's leadership moved away; an incarnation
    /// that differs from one whose session is still alive is refused (two processes with one
    /// id). Returns the records and the broker epoch.
    pub fn register_broker(
        &mut self,
        registration: Registration,
        now_ms: i64,
    ) -> Result<(Vec<MetadataRecord>, i64), ControllerError> {
        let id = registration.broker_id;
        if let Some(known) = self.image.brokers.get(&id) {
            if known.incarnation_id == registration.incarnation_id {
                let epoch = known.broker_epoch;
                self.heard(id, now_ms);
                return Ok((Vec::new(), epoch));
            }
            let alive =
                !known.fenced && self.heard_from.contains(&id) && !self.session_expired(id, now_ms);
            if alive {
                return Err(ControllerError::DuplicateBrokerRegistration(id));
            }
        }
        let broker_epoch = self.image.next_broker_epoch();
        // A data directory other than the one registered before holds none of what the broker
        // had: it must not lead that data, nor count as holding it.
        let lost_data = self
            .image
            .brokers
            .get(&id)
            .and_then(|b| b.directory_id)
            .is_some_and(|known| known != registration.directory_id);
        // Whatever the old incarnation led moves away first, with new epochs: the restarted
        // process must not resume an epoch whose unsynced tail it may have lost.
        let mut records = self.fence_records(id, lost_data);
        records.push(MetadataRecord::RegisterBroker {
            broker_id: id,
            incarnation_id: registration.incarnation_id,
            broker_epoch,
            endpoints: registration.endpoints,
            rack: registration.rack,
        });
        records.push(MetadataRecord::BrokerDirectory {
            broker_id: id,
            broker_epoch,
            directory_id: registration.directory_id,
        });
        self.heard(id, now_ms);
        Ok((records, broker_epoch))
    }

    pub fn heartbeat(
        &mut self,
        heartbeat: BrokerHeartbeat,
        now_ms: i64,
    ) -> Result<(Vec<MetadataRecord>, HeartbeatReply), ControllerError> {
        let id = heartbeat.broker_id;
        let broker = self
            .image
            .brokers
            .get(&id)
            .ok_or(ControllerError::BrokerNotRegistered(id))?;
        if broker.broker_epoch != heartbeat.broker_epoch {
            return Err(ControllerError::StaleBrokerEpoch {
                broker: id,
                epoch: heartbeat.broker_epoch,
                current: broker.broker_epoch,
            });
        }
        let fenced = broker.fenced;
        self.heard(id, now_ms);
        let (records, fenced_after) = if heartbeat.want_shutdown {
            (self.fence_records(id, false), true)
        } else if fenced && heartbeat.caught_up && !heartbeat.want_fence {
            (self.unfence_records(id), false)
        } else {
            (Vec::new(), fenced)
        };
        let reply = HeartbeatReply {
            fenced: fenced_after,
            shutdown_ready: heartbeat.want_shutdown && !self.leads_anything(id, &records),
        };
        Ok((records, reply))
    }

    /// Time passes: brokers whose session expired are fenced.
    pub fn tick(&mut self, now_ms: i64) -> Vec<MetadataRecord> {
        // One broker per tick: its records are replayed before the next is judged, so each
        // fencing sees the leadership the last one moved.
        match self.first_expired(now_ms) {
            Some(id) => self.fence_records(id, false),
            None => Vec::new(),
        }
    }

    /// Whether `tick` at `now_ms` would fence anyone: a look that decides nothing, so the
    /// caller can skip the round trip a decision costs when no session has run out.
    pub fn sessions_expired(&self, now_ms: i64) -> bool {
        self.first_expired(now_ms).is_some()
    }

    fn first_expired(&self, now_ms: i64) -> Option<i32> {
        let unfenced = self.image.brokers.values().filter(|b| !b.fenced);
        unfenced
            .map(|b| b.broker_id)
            .find(|&id| self.session_expired(id, now_ms))
    }

    fn heard(&mut self, broker_id: i32, now_ms: i64) {
        self.last_heartbeat_ms.insert(broker_id, now_ms);
        self.heard_from.insert(broker_id);
    }

    fn session_expired(&self, broker_id: i32, now_ms: i64) -> bool {
        let last = self.last_heartbeat_ms.get(&broker_id).copied();
        last.is_none_or(|at| now_ms - at > self.config.session_timeout_ms)
    }

    /// Fences `broker_id` (if registered and not fenced yet) and moves its leadership; with
    /// `lost_data`, it also leaves every in-sync set it is in, even as the last member
    /// (`PartitionRegistration::lose_replica`).
    fn fence_records(&self, broker_id: i32, lost_data: bool) -> Vec<MetadataRecord> {
        let Some(broker) = self.image.brokers.get(&broker_id) else {
            return Vec::new();
        };
        let mut records = Vec::new();
        if !broker.fenced {
            records.push(MetadataRecord::BrokerRegistrationChange {
                broker_id,
                broker_epoch: broker.broker_epoch,
                fenced: true,
            });
        }
        let eligible = |b: i32| b != broker_id && self.image.is_unfenced(b);
        records.extend(self.partition_changes(|topic, p| {
            let fenced = p.fence(broker_id, eligible);
            let lost = lost_data && p.lose_replica(broker_id);
            let unclean = p.leader == NO_LEADER && self.unclean(topic) && p.elect_unclean(eligible);
            fenced || lost || unclean
        }));
        records
    }

    /// Unfences `broker_id` and gives leaderless partitions it holds in sync a leader.
    fn unfence_records(&self, broker_id: i32) -> Vec<MetadataRecord> {
        let broker = &self.image.brokers[&broker_id];
        let mut records = vec![MetadataRecord::BrokerRegistrationChange {
            broker_id,
            broker_epoch: broker.broker_epoch,
            fenced: false,
        }];
        let eligible = |b: i32| b == broker_id || self.image.is_unfenced(b);
        records.extend(self.partition_changes(|topic, p| {
            p.elect_if_leaderless(eligible) || (self.unclean(topic) && p.elect_unclean(eligible))
        }));
        records
    }

    /// Whether `topic` allows unclean leader election (its config, else the controller's).
    fn unclean(&self, topic: &str) -> bool {
        unclean_allowed(
            &self.image,
            topic,
            self.config.unclean_leader_election_enable,
        )
    }

    /// A `PartitionChange` for every partition `change` changed (it works on a copy).
    fn partition_changes(
        &self,
        mut change: impl FnMut(&str, &mut PartitionRegistration) -> bool,
    ) -> Vec<MetadataRecord> {
        let mut records = Vec::new();
        for topic in self.image.topics.values() {
            for (&index, registration) in &topic.partitions {
                let mut changed = registration.clone();
                if change(&topic.name, &mut changed) {
                    records.push(MetadataRecord::PartitionChange {
                        topic_id: topic.topic_id,
                        partition: index,
                        isr: changed.isr,
                        leader: changed.leader,
                        leader_epoch: changed.leader_epoch,
                        partition_epoch: changed.partition_epoch,
                    });
                }
            }
        }
        records
    }

    /// Whether `broker_id` still leads a partition once `records` apply.
    fn leads_anything(&self, broker_id: i32, records: &[MetadataRecord]) -> bool {
        let mut image = self.image.clone();
        records.iter().for_each(|r| image.apply(r));
        image
            .topics
            .values()
            .flat_map(|t| t.partitions.values())
            .any(|p| p.leader == broker_id)
    }

    /// CreateTopics: each topic's records, or why not. Topics named twice in one request, or
    /// already present, are refused.
    pub fn create_topics(
        &mut self,
        topics: &[NewTopic],
    ) -> (
        Vec<MetadataRecord>,
        Vec<Result<TopicCreated, ControllerError>>,
    ) {
        let mut records = Vec::new();
        let mut results = Vec::new();
        let mut named: Vec<&str> = Vec::new();
        for topic in topics {
            let result = if named.contains(&topic.name.as_str()) {
                Err(ControllerError::TopicExists(topic.name.clone()))
            } else {
                self.create_topic(topic, &mut records)
            };
            named.push(&topic.name);
            results.push(result);
        }
        (records, results)
    }

    fn create_topic(
        &mut self,
        topic: &NewTopic,
        records: &mut Vec<MetadataRecord>,
    ) -> Result<TopicCreated, ControllerError> {
        sluice_types::validate_topic_name(&topic.name)
            .map_err(|e| ControllerError::InvalidTopic(e.to_string()))?;
        if self.image.topic(&topic.name).is_some() {
            return Err(ControllerError::TopicExists(topic.name.clone()));
        }
        if self.image.topics.len() >= limits::TOPICS_MAX {
            return Err(ControllerError::LimitReached(
                "topics in the cluster".into(),
            ));
        }
        let assignments = if topic.assignments.is_empty() {
            self.place(topic)?
        } else {
            self.check_assignments(topic)?
        };
        let topic_id = Uuid::new_v4();
        records.push(MetadataRecord::Topic {
            name: topic.name.clone(),
            topic_id,
        });
        for (index, replicas) in assignments.iter().enumerate() {
            let registration = PartitionRegistration::new(replicas.clone());
            records.push(MetadataRecord::Partition {
                topic_id,
                partition: index as i32,
                replicas: registration.replicas,
                isr: registration.isr,
                leader: registration.leader,
                leader_epoch: registration.leader_epoch,
                partition_epoch: registration.partition_epoch,
            });
        }
        for (name, value) in &topic.configs {
            records.push(MetadataRecord::Config {
                resource: ConfigResource::Topic(topic.name.clone()),
                name: name.clone(),
                value: Some(value.clone()),
            });
        }
        Ok(TopicCreated {
            topic_id,
            partitions: assignments.len() as i32,
            replication_factor: assignments[0].len() as i16,
        })
    }

    /// Round-robin placement over the unfenced brokers: partition `p`'s replicas are the
    /// `replication_factor` brokers from `(start + p)` on, so leaders spread evenly and each
    /// topic starts one broker further on.
    fn place(&mut self, topic: &NewTopic) -> Result<Vec<Vec<i32>>, ControllerError> {
        let partitions = match topic.partitions {
            -1 => self.config.default_partitions,
            n => n,
        };
        if !(1..=limits::PARTITIONS_PER_TOPIC_MAX).contains(&partitions) {
            return Err(ControllerError::InvalidPartitions(partitions));
        }
        let factor = self.replication_factor(topic.replication_factor)?;
        self.place_replicas(partitions as usize, factor)
    }

    /// Replicas for `count` new partitions of `factor` replicas each, round-robin over the
    /// unfenced brokers from where the last placement left off.
    pub(crate) fn place_replicas(
        &mut self,
        count: usize,
        factor: usize,
    ) -> Result<Vec<Vec<i32>>, ControllerError> {
        let brokers = self.image.unfenced_brokers();
        if brokers.len() < factor {
            return Err(ControllerError::InvalidReplicationFactor(format!(
                "replication factor {factor} is larger than the {} available broker(s)",
                brokers.len()
            )));
        }
        let start = self.placement_start;
        self.placement_start = self.placement_start.wrapping_add(1);
        Ok((0..count)
            .map(|p| {
                (0..factor)
                    .map(|r| brokers[(start + p + r) % brokers.len()])
                    .collect()
            })
            .collect())
    }

    fn replication_factor(&self, requested: i16) -> Result<usize, ControllerError> {
        let factor = match requested {
            -1 => self.config.default_replication_factor,
            n => n,
        };
        if factor < 1 || factor > self.config.replication_factor_max {
            return Err(ControllerError::InvalidReplicationFactor(format!(
                "replication factor {factor} is not supported: at most {}",
                self.config.replication_factor_max
            )));
        }
        Ok(factor as usize)
    }

    fn check_assignments(&self, topic: &NewTopic) -> Result<Vec<Vec<i32>>, ControllerError> {
        if topic.partitions != -1 || topic.replication_factor != -1 {
            return Err(ControllerError::InvalidReplicaAssignment(
                "an assignment comes without a partition count or replication factor".into(),
            ));
        }
        let count = topic.assignments.len() as i32;
        if count > limits::PARTITIONS_PER_TOPIC_MAX {
            return Err(ControllerError::InvalidPartitions(count));
        }
        let factor = topic.assignments[0].len();
        self.replication_factor(factor as i16)?;
        self.check_replica_lists(&topic.assignments, factor)?;
        Ok(topic.assignments.clone())
    }

    /// Replica lists a request assigns: `factor` distinct registered brokers each.
    pub(crate) fn check_replica_lists(
        &self,
        lists: &[Vec<i32>],
        factor: usize,
    ) -> Result<(), ControllerError> {
        let wrong = |why: String| Err(ControllerError::InvalidReplicaAssignment(why));
        for replicas in lists {
            if replicas.len() != factor {
                return wrong(format!("every partition needs {factor} replica(s)"));
            }
            if let Some(b) = replicas
                .iter()
                .find(|b| !self.image.brokers.contains_key(b))
            {
                return wrong(format!("broker {b} does not exist"));
            }
            let mut distinct = replicas.clone();
            distinct.sort_unstable();
            distinct.dedup();
            if distinct.len() != replicas.len() {
                return wrong("a partition names a broker twice".into());
            }
        }
        Ok(())
    }

    /// DeleteTopics: the records that remove each named topic, or why not.
    pub fn delete_topics(
        &mut self,
        names: &[String],
    ) -> (Vec<MetadataRecord>, Vec<Result<Uuid, ControllerError>>) {
        let mut records = Vec::new();
        let mut results = Vec::new();
        for name in names {
            let found = self.image.topic(name).map(|t| t.topic_id);
            let removed = records.iter().any(|r| {
                matches!(r, MetadataRecord::RemoveTopic { topic_id } if Some(*topic_id) == found)
            });
            match found {
                Some(topic_id) if !removed => {
                    records.push(MetadataRecord::RemoveTopic { topic_id });
                    results.push(Ok(topic_id));
                }
                _ => results.push(Err(ControllerError::UnknownTopic(name.clone()))),
            }
        }
        (records, results)
    }

    /// A block of producer ids for a broker: `(first, count)`, unique across the cluster.
    pub fn allocate_producer_ids(
        &mut self,
        broker_id: i32,
        broker_epoch: i64,
    ) -> Result<(Vec<MetadataRecord>, (i64, i64)), ControllerError> {
        self.check_broker_epoch(broker_id, broker_epoch)?;
        let first = self.image.next_producer_id;
        let count = self.config.producer_id_block_size;
        let record = MetadataRecord::ProducerIds {
            broker_id,
            broker_epoch,
            next_producer_id: first + count,
        };
        Ok((vec![record], (first, count)))
    }

    /// A request of `broker_id` in `broker_epoch` is from its current incarnation.
    pub(crate) fn check_broker_epoch(
        &self,
        broker_id: i32,
        broker_epoch: i64,
    ) -> Result<(), ControllerError> {
        let broker = self
            .image
            .brokers
            .get(&broker_id)
            .ok_or(ControllerError::BrokerNotRegistered(broker_id))?;
        if broker.broker_epoch != broker_epoch {
            return Err(ControllerError::StaleBrokerEpoch {
                broker: broker_id,
                epoch: broker_epoch,
                current: broker.broker_epoch,
            });
        }
        Ok(())
    }

    /// Ids below `below` are taken (a data directory handed them out before the metadata log
    /// kept producer ids): the next block starts at or above it.
    pub fn reserve_producer_ids(&self, below: i64) -> Vec<MetadataRecord> {
        if below <= self.image.next_producer_id {
            return Vec::new();
        }
        vec![MetadataRecord::ProducerIds {
            broker_id: -1,
            broker_epoch: -1,
            next_producer_id: below,
        }]
    }

    /// Whether any partition is without a leader (for the callers' reports).
    pub fn leaderless_partitions(&self) -> usize {
        self.image
            .topics
            .values()
            .flat_map(|t| t.partitions.values())
            .filter(|p| p.leader == NO_LEADER)
            .count()
    }
}
