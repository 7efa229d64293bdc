//! `ShardLog`: all a shard sees of its partition. The broker implements it over storage's
//! `Partition`; the runtime's tests over a vector of batches.

use crate::CoordinatorError;
use std::future::Future;
use std::pin::Pin;

/// The internal-topic partition a shard reads at load and appends to.
pub trait ShardLog: Send + Sync + 'static {
    /// The partition's index in its topic.
    fn index(&self) -> i32;
    /// The first offset still in the log.
    fn start_offset(&self) -> i64;
    /// Whole record batches from `offset` on, about `max_bytes` (at least one batch if any is
    /// there); empty at the end of the log.
    fn read(&self, offset: i64, max_bytes: usize) -> Result<bytes::Bytes, CoordinatorError>;
    /// Appends one batch as the broker's own write; the offset after it.
    fn append(&self, batch: &[u8], now_ms: i64) -> Result<i64, CoordinatorError>;
    /// Resolves true once everything below `offset` is fsynced, false if it never will be
    /// (the log failed).
    fn wait_durable(&self, offset: i64) -> Pin<Box<dyn Future<Output = bool> + Send + '_>>;
    /// Resolves true once everything below `offset` is on every in-sync replica of a
    /// partition that has followers (at once for a partition without), false if it never
    /// will be here (the partition moved, or lost its in-sync replicas).
    fn wait_replicated(&self, offset: i64) -> Pin<Box<dyn Future<Output = bool> + Send + '_>> {
        let _ = offset;
        Box::pin(std::future::ready(true))
    }
}
