//! `MetadataImage`: the cluster's metadata as the records so far build it. Every broker keeps
//! one, applying each committed record in log order (`apply`); the active controller keeps
//! one too and decides from it. Applying is total: a record that names something the image
//! does not hold (which a correct log never has) changes nothing.

use crate::controller::{AclEntry, QuotaEntity, QuotaValue};
use crate::record::{ConfigResource, Endpoint, MetadataRecord};
use sluice_replication::PartitionRegistration;
use std::collections::BTreeMap;
use uuid::Uuid;

/// A registered broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerState {
    pub broker_id: i32,
    pub incarnation_id: Uuid,
    pub broker_epoch: i64,
    pub endpoints: Vec<Endpoint>,
    pub rack: Option<String>,
    /// A fenced broker leads nothing and joins no in-sync set; clients are not sent to it.
    pub fenced: bool,
    /// The data directory it registered with; `None` from a broker (or a log) older than
    /// directory ids.
    pub directory_id: Option<Uuid>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicImage {
    pub name: String,
    pub topic_id: Uuid,
    pub partitions: BTreeMap<i32, PartitionRegistration>,
}

/// A user's SCRAM credential for one mechanism (the salted password's keys, never the
/// password).
#[derive(Clone, PartialEq, Eq)]
pub struct ScramCredentialImage {
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
    pub iterations: i32,
}

/// Keys stay out of logs.
impl std::fmt::Debug for ScramCredentialImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramCredentialImage")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetadataImage {
    pub cluster_id: Option<String>,
    pub brokers: BTreeMap<i32, BrokerState>,
    pub topics: BTreeMap<Uuid, TopicImage>,
    topic_ids: BTreeMap<String, Uuid>,
    /// Non-default configs, by resource.
    pub configs: BTreeMap<ConfigResource, BTreeMap<String, String>>,
    /// The first producer id not yet handed out.
    pub next_producer_id: i64,
    /// SCRAM credentials by user and Kafka's mechanism type code.
    pub scram_credentials: BTreeMap<(String, i8), ScramCredentialImage>,
    /// ACLs by id.
    pub acls: BTreeMap<Uuid, AclEntry>,
    /// Client quotas by entity, each by key.
    pub client_quotas: BTreeMap<QuotaEntity, BTreeMap<String, QuotaValue>>,
}

impl MetadataImage {
    pub fn apply(&mut self, record: &MetadataRecord) {
        match record.clone() {
            MetadataRecord::ClusterId { cluster_id } => self.cluster_id = Some(cluster_id),
            MetadataRecord::RegisterBroker {
                broker_id,
                incarnation_id,
                broker_epoch,
                endpoints,
                rack,
            } => {
                let state = BrokerState {
                    broker_id,
                    incarnation_id,
                    broker_epoch,
                    endpoints,
                    rack,
                    fenced: true,
                    directory_id: None,
                };
                self.brokers.insert(broker_id, state);
            }
            MetadataRecord::BrokerRegistrationChange {
                broker_id,
                broker_epoch,
                fenced,
            } => {
                if let Some(b) = self.brokers.get_mut(&broker_id)
                    && b.broker_epoch == broker_epoch
                {
                    b.fenced = fenced;
                }
            }
            MetadataRecord::Topic { name, topic_id } => {
                self.topic_ids.insert(name.clone(), topic_id);
                let topic = TopicImage {
                    name,
                    topic_id,
                    partitions: BTreeMap::new(),
                };
                self.topics.insert(topic_id, topic);
            }
            MetadataRecord::Partition {
                topic_id,
                partition,
                replicas,
                isr,
                leader,
                leader_epoch,
                partition_epoch,
            } => {
                if let Some(t) = self.topics.get_mut(&topic_id) {
                    let registration = PartitionRegistration {
                        replicas,
                        isr,
                        leader,
                        leader_epoch,
                        partition_epoch,
                    };
                    t.partitions.insert(partition, registration);
                }
            }
            MetadataRecord::PartitionChange {
                topic_id,
                partition,
                isr,
                leader,
                leader_epoch,
                partition_epoch,
            } => {
                let found = self
                    .topics
                    .get_mut(&topic_id)
                    .and_then(|t| t.partitions.get_mut(&partition));
                if let Some(p) = found {
                    p.isr = isr;
                    p.leader = leader;
                    p.leader_epoch = leader_epoch;
                    p.partition_epoch = partition_epoch;
                }
            }
            MetadataRecord::RemoveTopic { topic_id } => {
                if let Some(t) = self.topics.remove(&topic_id) {
                    self.topic_ids.remove(&t.name);
                    self.configs.remove(&ConfigResource::Topic(t.name));
                }
            }
            MetadataRecord::Config {
                resource,
                name,
                value,
            } => {
                let configs = self.configs.entry(resource.clone()).or_default();
                match value {
                    Some(v) => {
                        configs.insert(name, v);
                    }
                    None => {
                        configs.remove(&name);
                    }
                }
                if configs.is_empty() {
                    self.configs.remove(&resource);
                }
            }
            MetadataRecord::ProducerIds {
                next_producer_id, ..
            } => self.next_producer_id = self.next_producer_id.max(next_producer_id),
            MetadataRecord::BrokerDirectory {
                broker_id,
                broker_epoch,
                directory_id,
            } => {
                if let Some(b) = self.brokers.get_mut(&broker_id)
                    && b.broker_epoch == broker_epoch
                {
                    b.directory_id = Some(directory_id);
                }
            }
            MetadataRecord::UserScramCredential {
                name,
                mechanism,
                salt,
                stored_key,
                server_key,
                iterations,
            } => {
                let credential = ScramCredentialImage {
                    salt,
                    stored_key,
                    server_key,
                    iterations,
                };
                self.scram_credentials.insert((name, mechanism), credential);
            }
            MetadataRecord::RemoveUserScramCredential { name, mechanism } => {
                self.scram_credentials.remove(&(name, mechanism));
            }
            MetadataRecord::AccessControlEntry { id, entry } => {
                self.acls.insert(id, entry);
            }
            MetadataRecord::RemoveAccessControlEntry { id } => {
                self.acls.remove(&id);
            }
            MetadataRecord::ClientQuota { entity, key, value } => match value {
                Some(value) => {
                    self.client_quotas
                        .entry(entity)
                        .or_default()
                        .insert(key, value);
                }
                None => {
                    if let Some(quotas) = self.client_quotas.get_mut(&entity) {
                        quotas.remove(&key);
                        if quotas.is_empty() {
                            self.client_quotas.remove(&entity);
                        }
                    }
                }
            },
        }
    }

    /// Records that rebuild this image from an empty one: a snapshot of the metadata, which
    /// lets the log before it go.
    pub fn to_records(&self) -> Vec<MetadataRecord> {
        let mut records = Vec::new();
        if let Some(cluster_id) = &self.cluster_id {
            records.push(MetadataRecord::ClusterId {
                cluster_id: cluster_id.clone(),
            });
        }
        for b in self.brokers.values() {
            records.push(MetadataRecord::RegisterBroker {
                broker_id: b.broker_id,
                incarnation_id: b.incarnation_id,
                broker_epoch: b.broker_epoch,
                endpoints: b.endpoints.clone(),
                rack: b.rack.clone(),
            });
            if let Some(directory_id) = b.directory_id {
                records.push(MetadataRecord::BrokerDirectory {
                    broker_id: b.broker_id,
                    broker_epoch: b.broker_epoch,
                    directory_id,
                });
            }
            if !b.fenced {
                records.push(MetadataRecord::BrokerRegistrationChange {
                    broker_id: b.broker_id,
                    broker_epoch: b.broker_epoch,
                    fenced: false,
                });
            }
        }
        for t in self.topics.values() {
            records.push(MetadataRecord::Topic {
                name: t.name.clone(),
                topic_id: t.topic_id,
            });
            for (&partition, p) in &t.partitions {
                records.push(MetadataRecord::Partition {
                    topic_id: t.topic_id,
                    partition,
                    replicas: p.replicas.clone(),
                    isr: p.isr.clone(),
                    leader: p.leader,
                    leader_epoch: p.leader_epoch,
                    partition_epoch: p.partition_epoch,
                });
            }
        }
        for (resource, configs) in &self.configs {
            for (name, value) in configs {
                records.push(MetadataRecord::Config {
                    resource: resource.clone(),
                    name: name.clone(),
                    value: Some(value.clone()),
                });
            }
        }
        if self.next_producer_id > 0 {
            records.push(MetadataRecord::ProducerIds {
                broker_id: -1,
                broker_epoch: -1,
                next_producer_id: self.next_producer_id,
            });
        }
        for ((name, mechanism), c) in &self.scram_credentials {
            records.push(MetadataRecord::UserScramCredential {
                name: name.clone(),
                mechanism: *mechanism,
                salt: c.salt.clone(),
                stored_key: c.stored_key.clone(),
                server_key: c.server_key.clone(),
                iterations: c.iterations,
            });
        }
        for (id, entry) in &self.acls {
            records.push(MetadataRecord::AccessControlEntry {
                id: *id,
                entry: entry.clone(),
            });
        }
        for (entity, quotas) in &self.client_quotas {
            for (key, value) in quotas {
                records.push(MetadataRecord::ClientQuota {
                    entity: entity.clone(),
                    key: key.clone(),
                    value: Some(*value),
                });
            }
        }
        records
    }

    pub fn topic(&self, name: &str) -> Option<&TopicImage> {
        self.topic_ids.get(name).and_then(|id| self.topics.get(id))
    }

    pub fn partition(&self, topic: &str, index: i32) -> Option<&PartitionRegistration> {
        self.topic(topic).and_then(|t| t.partitions.get(&index))
    }

    /// Brokers that may lead and hold replicas, by id.
    pub fn unfenced_brokers(&self) -> Vec<i32> {
        self.brokers
            .values()
            .filter(|b| !b.fenced)
            .map(|b| b.broker_id)
            .collect()
    }

    pub fn is_unfenced(&self, broker_id: i32) -> bool {
        self.brokers.get(&broker_id).is_some_and(|b| !b.fenced)
    }

    /// The broker epoch the next registration gets: above every one given before, so an
    /// incarnation is told from every earlier one.
    pub fn next_broker_epoch(&self) -> i64 {
        self.brokers
            .values()
            .map(|b| b.broker_epoch + 1)
            .max()
            .unwrap_or(1)
    }
}
