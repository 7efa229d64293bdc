//! Sluice's storage engine: per-partition segmented logs of Kafka record batches.
//!
//! The ladder of names follows Kafka's storage layer, one responsibility each:
//! `LogSegment` (one file and its indexes) → `Log` (a partition's segments and offsets) →
//! `Partition` (a log behind a lock, with wake-up signals) → `LogManager` (the data directory
//! and its topics). The on-disk format is documented at the types that own it and summarised
//! in `docs/design/0001-storage.md`.
//!
//! Storage knows no Kafka API message and no socket. It never decodes a batch on the append or
//! read path; it checks batches (`sluice-record`) and stores them as received.

mod checkpoint;
mod compaction;
pub mod config;
mod damage;
mod error;
mod index;
pub mod leader_epoch;
mod log;
mod manager;
mod partition;
mod producer_ids;
mod producer_state;
mod read;
mod scan;
mod segment;
mod segment_file;

pub use compaction::{CleanPlan, CleanStats, Cleaned};
pub use config::{LogConfig, TOPIC_CONFIG_KEYS};
pub use damage::Damage;
pub use error::{Result, StorageError, is_resource_exhaustion};
pub use leader_epoch::{EpochEntry, LeaderEpochCache};
pub use log::{AbortedTxn, AppendInfo, AppendOrigin, FlushPlan, Log, ValidRecords};
pub use manager::{LogManager, Topic};
pub use partition::{Durability, Partition, ScrubReport};
pub use producer_state::ActiveProducer;
pub use read::{ReadPlan, set_read_verification};

/// Reads a producer-state snapshot as recovery does and encodes what it read; `Err` says what
/// is wrong with the bytes. For the `producer_snapshot` fuzz target: recovery itself reads
/// snapshots through `Log::open`.
#[doc(hidden)]
pub fn reencode_producer_snapshot(bytes: &[u8]) -> std::result::Result<Vec<u8>, String> {
    producer_state::ProducerStates::decode_snapshot(bytes).map(|s| s.encode_snapshot())
}
