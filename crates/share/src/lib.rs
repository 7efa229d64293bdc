//! `sluice-share`: share groups (KIP-932, issue 18; the plan is docs/design/0005-share-groups.md).
//!
//! So far the pure core: a group's configuration (`config`) and one share-partition's in-flight records, with Kafka's states,
//! delivery counts, acquisition locks and start offset, and Sluice's per-key order and retry
//! back-off (`partition`), proven under a seeded simulation (`tests/simulation.rs`).
//!
//! Owns: what a share-partition decides. Not: reading the log, membership, persisting state
//! or writing dead letters; no I/O and no clock (time is an argument).

pub mod config;
pub mod partition;
pub mod record;

pub use config::{
    AutoOffsetReset, ConfigError, GROUP_CONFIG_KEYS, GroupConfigKey, KeyType, ShareGroupConfig,
};
pub use partition::{
    AckType, Acknowledgement, ArchiveReason, DeadLetter, Delivery, IN_FLIGHT_RECORDS_MAX, KeyHash,
    MemberId, Offered, RecordState, ShareConfig, ShareError, SharePartition, StateBatch,
};
pub use record::{ShareStateKey, ShareStateRecord, ShareStateValue};
