//! The metadata records: every change to the cluster's metadata is one of these, applied in
//! log order by every broker (`MetadataImage::apply`). Names follow Kafka's KRaft records
//! (`RegisterBrokerRecord`, `TopicRecord`, `PartitionRecord`, `PartitionChangeRecord`,
//! `ConfigRecord`, `ProducerIdsRecord`, ...), trimmed to what Sluice uses.

use uuid::Uuid;

/// Where a broker listens, as clients reach it (one per listener name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub name: String,
    pub host: String,
    pub port: u16,
}

/// What a config record configures.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum ConfigResource {
    Topic(String),
    Broker(i32),
}

#[derive(Debug, Clone, PartialEq, Eq)]
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
}
