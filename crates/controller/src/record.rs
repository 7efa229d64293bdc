//! The metadata records: every change to the cluster's metadata is one of these, applied in
//! log order by every broker (`MetadataImage::apply`). Names follow Kafka's KRaft records
//! (`RegisterBrokerRecord`, `TopicRecord`, `PartitionRecord`, `PartitionChangeRecord`,
//! `ConfigRecord`, `ProducerIdsRecord`, ...), trimmed to what Sluice uses.
//!
//! Encoding, as the metadata log stores a record: one byte of format version (1), then the
//! record in postcard (serde's compact format: varint integers, length-prefixed strings and
//! sequences, the enum variant as a varint index in the order declared below, so new variants
//! go at the end). Decoding refuses more than `METADATA_RECORD_BYTES_MAX` bytes, an unknown
//! version, and bytes left over.

use crate::ControllerError;
use crate::controller::{AclEntry, QuotaEntity, QuotaValue};
use serde::{Deserialize, Serialize};
use sluice_types::limits::METADATA_RECORD_BYTES_MAX;
use uuid::Uuid;

const FORMAT_VERSION: u8 = 1;

/// Where a broker listens, as clients reach it (one per listener name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub name: String,
    pub host: String,
    pub port: u16,
}

/// What a config record configures.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ConfigResource {
    Topic(String),
    Broker(i32),
    /// A group's configs (Kafka's GROUP resource): they exist whether or not the group does.
    Group(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetadataRecord {
    /// The cluster's id, the first record of a new cluster's log.
    ClusterId {
        cluster_id: String,
    },
    /// A broker (re)registered. Its broker epoch is the offset of this record in the log, so a
    /// later incarnation always has a larger one. A registered broker starts fenced.
    RegisterBroker {
        broker_id: i32,
        incarnation_id: Uuid,
        broker_epoch: i64,
        endpoints: Vec<Endpoint>,
        rack: Option<String>,
    },
    /// A broker fenced (`fenced: true`: its session expired, or it shut down) or unfenced.
    BrokerRegistrationChange {
        broker_id: i32,
        broker_epoch: i64,
        fenced: bool,
    },
    /// A topic and its id.
    Topic {
        name: String,
        topic_id: Uuid,
    },
    /// A partition as created: replicas, in-sync set, leader, both epochs.
    Partition {
        topic_id: Uuid,
        partition: i32,
        replicas: Vec<i32>,
        isr: Vec<i32>,
        leader: i32,
        leader_epoch: i32,
        partition_epoch: i32,
    },
    /// A partition's leadership or in-sync set changed; the record carries the whole new state
    /// (epochs included), so applying it needs nothing but the record.
    PartitionChange {
        topic_id: Uuid,
        partition: i32,
        isr: Vec<i32>,
        leader: i32,
        leader_epoch: i32,
        partition_epoch: i32,
    },
    RemoveTopic {
        topic_id: Uuid,
    },
    /// A config set (`Some`) or removed (`None`, back to its default).
    Config {
        resource: ConfigResource,
        name: String,
        value: Option<String>,
    },
    /// Producer ids below `next_producer_id` are handed out; the block just below it went to
    /// `broker_id`.
    ProducerIds {
        broker_id: i32,
        broker_epoch: i64,
        next_producer_id: i64,
    },
    /// The data directory a broker registered with (Kafka's `directory.id`), right after its
    /// `RegisterBroker`. Its own record, not a field of that one, so that logs written before
    /// it still decode.
    BrokerDirectory {
        broker_id: i32,
        broker_epoch: i64,
        directory_id: Uuid,
    },
    /// A user's SCRAM credential for one mechanism, created or replaced (Kafka's
    /// `UserScramCredentialRecord`): never the password, only what checks it. `mechanism` is
    /// Kafka's SCRAM type code (1 SCRAM-SHA-256, 2 SCRAM-SHA-512).
    UserScramCredential {
        name: String,
        mechanism: i8,
        salt: Vec<u8>,
        stored_key: Vec<u8>,
        server_key: Vec<u8>,
        iterations: i32,
    },
    /// A user's SCRAM credential for one mechanism removed (`RemoveUserScramCredentialRecord`).
    RemoveUserScramCredential {
        name: String,
        mechanism: i8,
    },
    /// An ACL (Kafka's `AccessControlEntryRecord`), with the id DeleteAcls removes it by.
    AccessControlEntry {
        id: Uuid,
        entry: AclEntry,
    },
    /// An ACL removed (`RemoveAccessControlEntryRecord`).
    RemoveAccessControlEntry {
        id: Uuid,
    },
    /// One quota of an entity set, or removed (`value: None`) (Kafka's `QuotaRecord`).
    ClientQuota {
        entity: QuotaEntity,
        key: String,
        value: Option<QuotaValue>,
    },
}

impl MetadataRecord {
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = vec![FORMAT_VERSION];
        let body = postcard::to_allocvec(self).expect("a metadata record always serializes");
        bytes.extend_from_slice(&body);
        bytes
    }

    pub fn decode(bytes: &[u8]) -> Result<MetadataRecord, ControllerError> {
        let corrupt = |why: String| Err(ControllerError::CorruptRecord(why));
        if bytes.len() > METADATA_RECORD_BYTES_MAX {
            return corrupt(format!("{} bytes, more than a record may be", bytes.len()));
        }
        let Some((&version, body)) = bytes.split_first() else {
            return corrupt("empty".into());
        };
        if version != FORMAT_VERSION {
            return corrupt(format!("unknown format version {version}"));
        }
        match postcard::take_from_bytes::<MetadataRecord>(body) {
            Ok((record, [])) => Ok(record),
            Ok((_, rest)) => corrupt(format!("{} bytes after the record", rest.len())),
            Err(e) => corrupt(e.to_string()),
        }
    }
}

/// How a record shows in logs (openraft prints the entries it handles).
impl std::fmt::Display for MetadataRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MetadataRecord::ClusterId { cluster_id } => write!(f, "cluster id {cluster_id}"),
            MetadataRecord::RegisterBroker {
                broker_id,
                broker_epoch,
                ..
            } => write!(f, "register broker {broker_id} at epoch {broker_epoch}"),
            MetadataRecord::BrokerRegistrationChange {
                broker_id, fenced, ..
            } => write!(f, "broker {broker_id} fenced={fenced}"),
            MetadataRecord::Topic { name, topic_id } => write!(f, "topic {name} ({topic_id})"),
            MetadataRecord::Partition {
                topic_id,
                partition,
                leader,
                ..
            } => write!(f, "partition {topic_id}-{partition} led by {leader}"),
            MetadataRecord::PartitionChange {
                topic_id,
                partition,
                leader,
                leader_epoch,
                ..
            } => write!(
                f,
                "partition {topic_id}-{partition} led by {leader} in epoch {leader_epoch}"
            ),
            MetadataRecord::RemoveTopic { topic_id } => write!(f, "remove topic {topic_id}"),
            MetadataRecord::Config { resource, name, .. } => {
                write!(f, "config {name} of {resource:?}")
            }
            MetadataRecord::ProducerIds {
                next_producer_id, ..
            } => write!(f, "producer ids below {next_producer_id} handed out"),
            MetadataRecord::BrokerDirectory {
                broker_id,
                directory_id,
                ..
            } => write!(f, "broker {broker_id} on directory {directory_id}"),
            MetadataRecord::UserScramCredential {
                name, mechanism, ..
            } => write!(f, "SCRAM credential of {name} (mechanism {mechanism})"),
            MetadataRecord::RemoveUserScramCredential { name, mechanism } => {
                write!(
                    f,
                    "remove SCRAM credential of {name} (mechanism {mechanism})"
                )
            }
            MetadataRecord::AccessControlEntry { id, entry } => write!(
                f,
                "ACL {id}: {} {} on {}",
                entry.principal, entry.operation, entry.resource_name
            ),
            MetadataRecord::RemoveAccessControlEntry { id } => write!(f, "remove ACL {id}"),
            MetadataRecord::ClientQuota { entity, key, value } => match value {
                Some(v) => write!(f, "quota {key}={} for {:?}", v.0, entity.parts()),
                None => write!(f, "remove quota {key} of {:?}", entity.parts()),
            },
        }
    }
}
