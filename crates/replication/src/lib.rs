//! Partition replication as pure state machines, the way `sluice-group` and `sluice-txn` are
//! the coordinators: the caller hands them requests, responses, what its log looks like
//! (`ReplicaLog`) and the time; they answer with decisions and `Effect`s for the caller to
//! carry out (append, fsync, truncate, move the high watermark, send a fetch, propose an
//! in-sync set). They do no I/O, read no clock, spawn nothing and know no wire type.
//!
//! The protocol is Kafka's, with one rule stronger (see `follower`):
//! - followers fetch from the leader (`FetchRequest`: replica id, current leader epoch, fetch
//!   offset, last fetched epoch); a fetch whose last epoch the leader's log does not end the
//!   same way is answered with the diverging epoch, and the follower truncates;
//! - **a follower's fetch offset is durable**: it fsyncs what it appended before it fetches
//!   again, so the offset it reports is on its disk, and the high watermark (the minimum over
//!   the in-sync replicas, the leader's own fsynced offset included) means "on disk on every
//!   in-sync replica";
//! - the leader proposes in-sync set changes (AlterPartition) checked by the controller against
//!   the leader and partition epochs (`partition`), and counts a proposed member for the high
//!   watermark before the controller agrees (Kafka's "maximal ISR").
//!
//! Not owned here: the bytes (storage appends and reads them), the network, the metadata log
//! (the controller quorum), and the last stable offset (storage computes it from the high
//! watermark and the transaction markers).
//!
//! `tests/simulation.rs` drives replicas, a controller and a faulty network through seeded
//! runs and checks the safety properties at every step.

mod error;
mod follower;
mod leader;
mod log;
mod partition;

pub use error::ReplicationError;
pub use follower::{FetchData, FetchResponse, Follower, FollowerConfig};
pub use leader::{FetchAnswer, Leader, LeaderConfig};
pub use log::ReplicaLog;
pub use partition::{AlterPartitionRequest, NO_LEADER, PartitionRegistration};

/// What a state machine asks its caller to do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Leader or follower: move the log's high watermark up to this offset.
    AdvanceHighWatermark(i64),
    /// Leader: ask the controller to change the in-sync set.
    AlterPartition(AlterPartitionRequest),
    /// Follower: send this fetch to the leader.
    SendFetch(FetchRequest),
    /// Follower: append the records of the fetch response just handled (with their offsets
    /// and epochs), then fsync them and report it with `Follower::on_flushed`.
    AppendAndFlush,
    /// Follower: fsync the log's unsynced tail and report it with `Follower::on_flushed`.
    Flush,
    /// Follower: cut the log back to this offset (durably) before fetching again.
    TruncateTo(i64),
    /// Follower: empty the log and start it at this offset (the leader's log starts past this
    /// replica's end).
    TruncateFullyAndStartAt(i64),
    /// Follower: move the log start offset up to this offset, as the leader's has moved.
    AdvanceLogStartOffset(i64),
}

/// A follower's fetch, as the Fetch API carries it (one partition).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchRequest {
    /// Lets the follower match an answer to the fetch it is waiting for (the correlation id).
    pub request_id: u64,
    pub replica_id: i32,
    /// The leader epoch the follower follows; the leader refuses one not its own.
    pub current_leader_epoch: i32,
    /// The follower's log end offset: everything below it is fsynced on the follower.
    pub fetch_offset: i64,
    /// The epoch of the follower's last batch (its epoch cache's latest), if it has any.
    pub last_fetched_epoch: Option<i32>,
}
