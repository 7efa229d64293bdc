//! The one error type of the storage crate. The broker maps each variant to a Kafka error
//! code in its single mapping table.

use sluice_record::RecordError;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("corrupt record batch: {0}")]
    CorruptBatch(#[from] RecordError),
    #[error("record batch of {bytes} bytes exceeds max.message.bytes {max}")]
    BatchTooLarge { bytes: usize, max: u32 },
    #[error("invalid record: {0}")]
    InvalidRecord(String),
    #[error("offset {offset} is out of range [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange {
        offset: i64,
        log_start_offset: i64,
        log_end_offset: i64,
    },
    #[error("partition is offline after an I/O failure: {0}")]
    Offline(String),
    #[error("topic '{0}' already exists")]
    TopicExists(String),
    #[error("unknown topic '{0}'")]
    UnknownTopic(String),
    #[error("unknown partition {partition} of topic '{topic}'")]
    UnknownPartition { topic: String, partition: i32 },
    #[error("invalid topic name: {0}")]
    InvalidTopicName(#[from] sluice_types::TopicNameError),
    #[error("invalid partition count: {0}")]
    InvalidPartitions(String),
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    #[error("too many topics: the limit is {0}")]
    TooManyTopics(usize),
    #[error("data directory {path} is locked by another process")]
    DataDirLocked { path: String },
    #[error("out of order sequence: {0}")]
    OutOfOrderSequence(String),
    #[error("invalid producer epoch: {0}")]
    InvalidProducerEpoch(String),
    #[error("too many producers: a partition keeps the state of at most {0}")]
    TooManyProducers(usize),
    #[error("invalid transaction state: {0}")]
    InvalidTxnState(String),
    /// A transaction marker from a coordinator older than the one that last wrote a marker
    /// for the producer: a coordinator that lost its role and does not know it yet.
    #[error("transaction coordinator fenced: {0}")]
    TransactionCoordinatorFenced(String),
    /// A read met bytes that are not a valid batch at `position` of the segment at
    /// `segment_base_offset` (`Partition::read_batches` turns it into `Damaged`).
    #[error("damaged batch at byte {position} of segment {segment_base_offset}")]
    CorruptOnDisk {
        segment_base_offset: i64,
        position: u64,
    },
    /// Bytes on disk that should hold these offsets do not hold valid batches.
    #[error("damaged log: {0}")]
    Damaged(String),
    /// A leader's append on a log that follows another replica, or a follower's copy from a
    /// leader this log no longer follows (its epoch moved on).
    #[error("not the leader or a follower of this epoch: {0}")]
    NotLeaderOrFollower(String),
    #[error("out of a resource the process shares, try again: {0}")]
    ResourceExhausted(String),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// An error that says the process ran out of something it shares (descriptors, memory), not
/// that the disk failed: the file's state is known and the same call can succeed later, so it
/// refuses the one request and never takes a partition offline.
pub fn is_resource_exhaustion(e: &std::io::Error) -> bool {
    use rustix::io::Errno;
    [Errno::MFILE, Errno::NFILE, Errno::NOMEM, Errno::NOBUFS]
        .iter()
        .any(|errno| e.raw_os_error() == Some(errno.raw_os_error()))
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;
