//! The cluster's metadata as a pure state machine, in the role of Kafka's KRaft controller:
//! the metadata is a sequence of `MetadataRecord`s, every broker applies them in order to a
//! `MetadataImage`, and the active controller turns commands (a broker registering or
//! heartbeating, CreateTopics, DeleteTopics, CreatePartitions, config changes, a producer-id
//! block wanted, a partition leader's AlterPartition, SCRAM credentials: `ControllerCommand`) into the records that carry them out. It does no I/O,
//! reads no clock (time is an argument, as in the group and transaction coordinators) and
//! knows no wire type.
//!
//! Not owned here: the log that orders and replicates the records (the consensus crate, on
//! openraft), the network, and the rules of one partition's leadership and in-sync set, which
//! are `sluice_replication::PartitionRegistration`'s.

mod command;
mod controller;
mod error;
mod image;
mod record;

pub use command::{ControllerCommand, ControllerReply};
pub use controller::{
    AclEntry, AclFilterEntry, AlterPartition, BrokerHeartbeat, ConfigChanges, ControllerConfig,
    HeartbeatReply, ImportedTopic, NewPartitions, NewTopic, PartitionState, QUOTA_CLIENT_ID,
    QUOTA_KEYS, QUOTA_USER, QuorumController, QuotaAlteration, QuotaEntity, QuotaFilter,
    QuotaMatch, QuotaValue, Registration, ScramDeletion, ScramUpsertion, TopicCreated,
    check_upsertion,
};
pub use error::ControllerError;
pub use image::{BrokerState, MetadataImage, ScramCredentialImage, TopicImage};
pub use record::{ConfigResource, Endpoint, MetadataRecord};
/// A partition's registration as the image holds it (its rules are the replication crate's).
pub use sluice_replication::{NO_LEADER, PartitionRegistration};
