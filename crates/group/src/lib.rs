//! The consumer group coordinator, as a pure state machine: no I/O, no clock, no threads.
//!
//! Commands (join, sync, heartbeat, leave, commit, ...) come in with the current time and
//! return the records to append to `__consumer_offsets` and the replies to parked requests;
//! deadlines fire only when the caller ticks it. State is rebuilt at start by replaying the
//! partition's records. The broker owns the log, the timers and the wire types; this crate
//! knows none of them, which is what lets its tests drive joins, expiries and restarts
//! without a network or a sleep.

mod classic;
mod coordinator;
mod error;
mod member;
pub mod record;
mod types;

pub use coordinator::{Effects, FetchedOffset, GroupCoordinator, partition_for};
pub use error::GroupError;
pub use record::OffsetsRecord;
pub use types::{
    GroupConfig, GroupDescription, GroupListing, JoinRequest, JoinResponse, JoinedMember,
    MemberDescription, MemberRef, OffsetToCommit, Protocol, Reply, SyncRequest, SyncResponse,
    WaiterId,
};
