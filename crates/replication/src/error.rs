//! The replication core's one error enum; each variant names the Kafka error code it stands
//! for. Once the broker runs replication (the replicated-partitions issue), its single mapping
//! (`sluice_broker::error`) turns them into those codes.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplicationError {
    /// The request's leader epoch is older than the replica's (FENCED_LEADER_EPOCH).
    #[error("the leader epoch {request} is older than the current {current}")]
    FencedLeaderEpoch { request: i32, current: i32 },
    /// The request's leader epoch is newer than the replica knows (UNKNOWN_LEADER_EPOCH).
    #[error("the leader epoch {request} is newer than the current {current}")]
    UnknownLeaderEpoch { request: i32, current: i32 },
    /// The request went to a replica that does not lead the partition, or came from one that
    /// is not a replica of it (NOT_LEADER_OR_FOLLOWER).
    #[error("not the leader or a follower of this partition")]
    NotLeaderOrFollower,
    /// The fetch offset lies outside the leader's log (OFFSET_OUT_OF_RANGE).
    #[error("offset {offset} is outside the log [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange {
        offset: i64,
        log_start_offset: i64,
        log_end_offset: i64,
    },
    /// Fewer in-sync replicas than `min.insync.replicas` before an `acks=all` append
    /// (NOT_ENOUGH_REPLICAS).
    #[error("{isr} in-sync replicas, fewer than min.insync.replicas {min}")]
    NotEnoughReplicas { isr: usize, min: usize },
    /// The append is replicated, but the in-sync set shrank below `min.insync.replicas` on
    /// the way (NOT_ENOUGH_REPLICAS_AFTER_APPEND).
    #[error("{isr} in-sync replicas after the append, fewer than min.insync.replicas {min}")]
    NotEnoughReplicasAfterAppend { isr: usize, min: usize },
    /// An AlterPartition against a partition epoch that has moved on (INVALID_UPDATE_VERSION).
    #[error("partition epoch {request} is not the current {current}")]
    InvalidUpdateVersion { request: i32, current: i32 },
    /// A proposed in-sync set names a replica that may not join it (INELIGIBLE_REPLICA).
    #[error("replica {0} may not join the in-sync set")]
    IneligibleReplica(i32),
    /// A request that breaks a rule of the protocol (INVALID_REQUEST).
    #[error("invalid request: {0}")]
    InvalidRequest(&'static str),
}
