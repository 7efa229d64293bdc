//! `ReplicaLog`: what the state machines need to know of a replica's log, and nothing more.
//! Storage's `Log` answers it in the broker; the simulation's in-memory log answers it in
//! tests. Every answer is about the log as it is now, volatile tail included.

pub trait ReplicaLog {
    fn log_start_offset(&self) -> i64;
    fn log_end_offset(&self) -> i64;
    /// How far the log is fsynced (storage's recovery point), at most the log end.
    fn durable_end_offset(&self) -> i64;
    /// The newest epoch in the leader-epoch cache, if any.
    fn latest_epoch(&self) -> Option<i32>;
    /// OffsetForLeaderEpoch: the newest epoch at or below `epoch` and the offset where it
    /// ended (the next epoch's start, or the log end for the latest); `None` when every
    /// epoch the log knows is newer than `epoch`.
    fn end_offset_for_epoch(&self, epoch: i32) -> Option<(i32, i64)>;
}
