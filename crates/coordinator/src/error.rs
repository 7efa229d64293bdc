//! The one error type of the coordinator runtime.

/// Why a shard could not be loaded or could not write.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CoordinatorError {
    /// The partition refused a read or an append (a full disk, a log taken offline).
    #[error("the log: {0}")]
    Log(String),
    /// A batch read back at load is damaged beyond the log's own checks.
    #[error("a batch in the log: {0}")]
    Record(#[from] sluice_record::RecordError),
    /// The shard was unloaded (this broker no longer leads its partition): the command must
    /// go to the new coordinator.
    #[error("the coordinator moved: its partition is no longer led here")]
    Unloaded,
}
