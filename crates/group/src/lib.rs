//! The consumer group coordinator, as a pure state machine: no I/O, no clock, no threads.
//!
//! Two group protocols share one coordinator and one set of committed offsets: the classic
//! one (JoinGroup/SyncGroup, client-side assignors; `classic.rs`) and KIP-848's
//! (ConsumerGroupHeartbeat, server-side assignors; `consumer.rs`, `assignor.rs`). Share groups'
//! membership (KIP-932, ShareGroupHeartbeat; `share.rs`) lives beside them, volatile.
//! Commands (join, sync, heartbeat, leave, commit, ...) come in with the current time and
//! return the records to append to `__consumer_offsets` and the replies to parked requests;
//! deadlines fire only when the caller ticks it. State is rebuilt at start by replaying the
//! partition's records. The broker owns the log, the timers and the wire types; this crate
//! knows none of them, which is what lets its tests drive joins, expiries and restarts
//! without a network or a sleep.

mod assignor;
mod classic;
mod consumer;
mod coordinator;
mod error;
mod member;
pub mod record;
mod share;
mod types;

pub use consumer::{TopicPartitionCounts, Topics};
pub use coordinator::{Effects, FetchedOffset, GroupCoordinator, OnWrite};
pub use error::GroupError;
pub use record::OffsetsRecord;
pub use sluice_types::partition_for;
pub use types::{
    Assignment, ConsumerGroupDescription, ConsumerHeartbeat, ConsumerHeartbeatResponse,
    ConsumerMemberDescription, GroupConfig, GroupDescription, GroupListing, JoinRequest,
    JoinResponse, JoinedMember, MemberDescription, MemberRef, OffsetToCommit, Protocol, Reply,
    ShareGroupDescription, ShareHeartbeat, ShareHeartbeatResponse, ShareMemberDescription,
    SyncRequest, SyncResponse, WaiterId,
};
