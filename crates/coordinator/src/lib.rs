//! The coordinator runtime, in the role of Kafka's `CoordinatorRuntime`: one runtime serves
//! every kind of coordinator that keeps its state in an internal topic (the group
//! coordinators of `__consumer_offsets`, the transaction coordinators of
//! `__transaction_state`). A coordinator kind is a `CoordinatorShard`: pure state, one value
//! per partition of its topic, rebuilt from that partition's records.
//!
//! The runtime owns what every kind needs and none should write twice:
//! - the shard table: a shard per internal partition this broker leads, found by Kafka's hash
//!   of a group or transactional id (`Runtime::of`);
//! - loading a shard when this broker becomes leader of its partition (its records replayed
//!   into a new state, `replay.rs`) and unloading it when it stops (`Runtime::load`,
//!   `Runtime::unload`, each with the partition's leader epoch, so a stale call changes
//!   nothing and a shard loaded in an older epoch is loaded afresh);
//! - the exclusive lock a command runs under (`Shard::serving`, refused once the shard is
//!   unloaded), and the append of its records as one batch while the lock is held, so the log's
//!   order is the order of decisions (`ShardGuard::append`); an unloaded shard appends nothing;
//! - the wait for durability, and a per-shard cancellation token and wake-up for the kind's
//!   timer.
//!
//! Not owned here: what a record means (`sluice-group`, `sluice-txn`), when leadership moves
//! (the broker's metadata publisher), and the files (the broker hands each shard its
//! partition as a `ShardLog`). The runtime knows neither storage nor any Kafka API type.

mod error;
mod log;
mod replay;
mod runtime;

pub use error::CoordinatorError;
pub use log::ShardLog;
pub use replay::{Replayed, keyed_batch};
pub use runtime::{CoordinatorShard, Runtime, Shard, ShardGuard};
