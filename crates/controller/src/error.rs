//! The controller's one error enum; each variant names the Kafka error code it stands for,
//! which the broker's single mapping gives the client.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum ControllerError {
    /// TOPIC_ALREADY_EXISTS.
    #[error("topic {0} already exists")]
    TopicExists(String),
    /// UNKNOWN_TOPIC_OR_PARTITION.
    #[error("topic {0} does not exist")]
    UnknownTopic(String),
    /// INVALID_TOPIC_EXCEPTION.
    #[error("invalid topic name: {0}")]
    InvalidTopic(String),
    /// INVALID_PARTITIONS.
    #[error("invalid partition count {0}")]
    InvalidPartitions(i32),
    /// INVALID_REPLICATION_FACTOR.
    #[error("{0}")]
    InvalidReplicationFactor(String),
    /// INVALID_REPLICA_ASSIGNMENT.
    #[error("{0}")]
    InvalidReplicaAssignment(String),
    /// BROKER_ID_NOT_REGISTERED (a heartbeat from a broker the controller does not know).
    #[error("broker {0} is not registered")]
    BrokerNotRegistered(i32),
    /// STALE_BROKER_EPOCH (a heartbeat from an older incarnation of the broker).
    #[error("broker {broker}'s epoch {epoch} is not its current {current}")]
    StaleBrokerEpoch {
        broker: i32,
        epoch: i64,
        current: i64,
    },
    /// DUPLICATE_BROKER_REGISTRATION (another live incarnation holds the id).
    #[error("broker {0} is registered by another live incarnation")]
    DuplicateBrokerRegistration(i32),
    /// A metadata record that cannot be decoded (a damaged log entry).
    #[error("corrupt metadata record: {0}")]
    CorruptRecord(String),
    /// INVALID_REQUEST (a topic named twice, a broker that is not registered).
    #[error("{0}")]
    InvalidRequest(String),
    /// UNKNOWN_TOPIC_ID (a partition named by a topic id the image does not hold).
    #[error("no partition {1} of a topic with id {0}")]
    UnknownTopicId(String, i32),
    /// FENCED_LEADER_EPOCH (a proposal from an older leader epoch).
    #[error("leader epoch {request} is older than the current {current}")]
    FencedLeaderEpoch { request: i32, current: i32 },
    /// NOT_LEADER_OR_FOLLOWER (a proposal from a broker that does not lead the partition).
    #[error("not the leader of this partition")]
    NotLeaderOrFollower,
    /// INVALID_UPDATE_VERSION (a proposal against a partition epoch that has moved on).
    #[error("partition epoch {request} is not the current {current}")]
    InvalidUpdateVersion { request: i32, current: i32 },
    /// INELIGIBLE_REPLICA (a proposed in-sync replica that is fenced or not a replica).
    #[error("replica {0} may not join the in-sync set")]
    IneligibleReplica(i32),
    /// DUPLICATE_RESOURCE (a user named twice in one AlterUserScramCredentials).
    #[error("{0}")]
    DuplicateResource(String),
    /// RESOURCE_NOT_FOUND (a SCRAM credential to delete that does not exist).
    #[error("{0}")]
    ResourceNotFound(String),
    /// UNACCEPTABLE_CREDENTIAL (a SCRAM credential out of Kafka's bounds).
    #[error("{0}")]
    UnacceptableCredential(String),
    /// UNSUPPORTED_SASL_MECHANISM (a SCRAM mechanism type Kafka does not define).
    #[error("{0}")]
    UnsupportedSaslMechanism(String),
    /// A limit of `sluice_types::limits` (POLICY_VIOLATION).
    #[error("limit reached: {0}")]
    LimitReached(String),
}
