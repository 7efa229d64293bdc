//! Changes to what exists: more partitions for a topic (CreatePartitions) and configs
//! (AlterConfigs, IncrementalAlterConfigs). Like every command they answer records, and the
//! image changes only when the records are replayed. Config names and values are checked by
//! the caller (storage knows the topic config keys); the controller checks that the resource
//! exists. Turning `unclean.leader.election.enable` on elects a leader at once for the
//! topic's partitions that have none, as Kafka does.

use super::QuorumController;
use crate::error::ControllerError;
use crate::record::{ConfigResource, MetadataRecord};
use serde::{Deserialize, Serialize};
use sluice_replication::PartitionRegistration;
use sluice_types::limits;
use std::collections::BTreeSet;

/// A topic grown to `total` partitions (CreatePartitions).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewPartitions {
    pub topic: String,
    pub total: i32,
    /// The replicas of each new partition, if the request assigns them; otherwise they are
    /// placed round-robin with the topic's replication factor.
    pub assignments: Vec<Vec<i32>>,
}

/// The config changes of one resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigChanges {
    pub resource: ConfigResource,
    /// AlterConfigs replaces the whole set: every config not in `set` goes back to its default.
    pub replace: bool,
    pub set: Vec<(String, String)>,
    /// Configs back to their defaults (IncrementalAlterConfigs' DELETE).
    pub remove: Vec<String>,
}

impl QuorumController {
    /// CreatePartitions: each topic's new partitions, or why not. A topic named twice in one
    /// request is refused the second time.
    pub fn create_partitions(
        &mut self,
        changes: &[NewPartitions],
    ) -> (Vec<MetadataRecord>, Vec<Result<(), ControllerError>>) {
        let mut records = Vec::new();
        let mut named = BTreeSet::new();
        let mut results = Vec::new();
        for change in changes {
            let result = if named.insert(change.topic.as_str()) {
                self.grow(change, &mut records)
            } else {
                Err(ControllerError::InvalidRequest(format!(
                    "topic {} named twice",
                    change.topic
                )))
            };
            results.push(result);
        }
        (records, results)
    }

    /// Unclean elections that `config_records` allow: a leaderless partition of a topic that
    /// may now elect uncleanly gets its first live replica as leader.
    fn unclean_elections(&self, config_records: &[MetadataRecord]) -> Vec<MetadataRecord> {
        let names_it = |r: &MetadataRecord| matches!(r, MetadataRecord::Config { name, .. } if name == super::UNCLEAN_ELECTION);
        if !config_records.iter().any(names_it) {
            return Vec::new();
        }
        let mut after = self.image.clone();
        config_records.iter().for_each(|r| after.apply(r));
        let default = self.config.unclean_leader_election_enable;
        let eligible = |b: i32| self.image.is_unfenced(b);
        self.partition_changes(|topic, p| {
            p.leader == sluice_replication::NO_LEADER
                && super::unclean_allowed(&after, topic, default)
                && p.elect_unclean(eligible)
        })
    }

    fn grow(
        &mut self,
        change: &NewPartitions,
        records: &mut Vec<MetadataRecord>,
    ) -> Result<(), ControllerError> {
        let topic = self
            .image
            .topic(&change.topic)
            .ok_or_else(|| ControllerError::UnknownTopic(change.topic.clone()))?;
        let current = topic.partitions.len() as i32;
        if change.total <= current || change.total > limits::PARTITIONS_PER_TOPIC_MAX {
            return Err(ControllerError::InvalidPartitions(change.total));
        }
        let topic_id = topic.topic_id;
        let factor = topic
            .partitions
            .values()
            .next()
            .map_or(1, |p| p.replicas.len());
        let count = (change.total - current) as usize;
        let assignments = if change.assignments.is_empty() {
            self.place_replicas(count, factor)?
        } else if change.assignments.len() != count {
            return Err(ControllerError::InvalidReplicaAssignment(format!(
                "{} assignments for {count} new partitions",
                change.assignments.len()
            )));
        } else {
            self.check_replica_lists(&change.assignments, factor)?;
            change.assignments.clone()
        };
        for (offset, replicas) in assignments.into_iter().enumerate() {
            let registration = PartitionRegistration::new(replicas);
            records.push(MetadataRecord::Partition {
                topic_id,
                partition: current + offset as i32,
                replicas: registration.replicas,
                isr: registration.isr,
                leader: registration.leader,
                leader_epoch: registration.leader_epoch,
                partition_epoch: registration.partition_epoch,
            });
        }
        Ok(())
    }

    /// AlterConfigs and IncrementalAlterConfigs: each resource's config records, or why not.
    pub fn alter_configs(
        &self,
        changes: &[ConfigChanges],
    ) -> (Vec<MetadataRecord>, Vec<Result<(), ControllerError>>) {
        let mut records = Vec::new();
        let mut results = Vec::new();
        for change in changes {
            let result = self.check_resource(&change.resource);
            if result.is_ok() {
                records.extend(self.config_records(change));
            }
            results.push(result);
        }
        let elections = self.unclean_elections(&records);
        records.extend(elections);
        (records, results)
    }

    fn check_resource(&self, resource: &ConfigResource) -> Result<(), ControllerError> {
        match resource {
            ConfigResource::Topic(name) if self.image.topic(name).is_none() => {
                Err(ControllerError::UnknownTopic(name.clone()))
            }
            ConfigResource::Broker(id) if !self.image.brokers.contains_key(id) => Err(
                ControllerError::InvalidRequest(format!("broker {id} is not registered")),
            ),
            ConfigResource::Group(id)
                if id.is_empty() || id.len() > sluice_types::limits::GROUP_ID_BYTES_MAX =>
            {
                Err(ControllerError::InvalidRequest(format!(
                    "a group id of {} bytes",
                    id.len()
                )))
            }
            _ => Ok(()),
        }
    }

    fn config_records(&self, change: &ConfigChanges) -> Vec<MetadataRecord> {
        let record = |name: &str, value: Option<&String>| MetadataRecord::Config {
            resource: change.resource.clone(),
            name: name.to_string(),
            value: value.cloned(),
        };
        let current = self.image.configs.get(&change.resource);
        let mut records = Vec::new();
        if change.replace {
            let kept: BTreeSet<&str> = change.set.iter().map(|(n, _)| n.as_str()).collect();
            let dropped = current.into_iter().flat_map(|c| c.keys());
            for name in dropped.filter(|n| !kept.contains(n.as_str())) {
                records.push(record(name, None));
            }
        }
        for (name, value) in &change.set {
            records.push(record(name, Some(value)));
        }
        for name in &change.remove {
            if current.is_some_and(|c| c.contains_key(name)) {
                records.push(record(name, None));
            }
        }
        records
    }
}
