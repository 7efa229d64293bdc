//! The single mapping from domain errors to Kafka error codes. Adding a variant to a domain
//! error enum forces a decision here.

use kafka_protocol::error::ResponseError;
use sluice_controller::ControllerError;
use sluice_coordinator::CoordinatorError;
use sluice_group::GroupError;
use sluice_replication::ReplicationError;
use sluice_share::ShareError;
use sluice_storage::StorageError;
use sluice_txn::TxnError;

/// The Kafka error for a storage error, and the message to send where the API has one.
pub(crate) fn storage_error(e: &StorageError) -> ResponseError {
    match e {
        StorageError::CorruptBatch(_)
        | StorageError::Damaged(_)
        | StorageError::CorruptOnDisk { .. } => ResponseError::CorruptMessage,
        StorageError::BatchTooLarge { .. } => ResponseError::MessageTooLarge,
        StorageError::InvalidRecord(_) => ResponseError::InvalidRecord,
        StorageError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        // Retriable for clients (Kafka's KafkaStorageException is), which is what a process
        // out of descriptors needs: the same request succeeds once some are free.
        StorageError::Offline(_) | StorageError::Io(_) | StorageError::ResourceExhausted(_) => {
            ResponseError::KafkaStorageError
        }
        StorageError::TopicExists(_) => ResponseError::TopicAlreadyExists,
        StorageError::UnknownTopic(_) | StorageError::UnknownPartition { .. } => {
            ResponseError::UnknownTopicOrPartition
        }
        StorageError::InvalidTopicName(_) => ResponseError::InvalidTopicException,
        StorageError::InvalidPartitions(_) => ResponseError::InvalidPartitions,
        StorageError::InvalidConfig(_) => ResponseError::InvalidConfig,
        StorageError::TooManyTopics(_) => ResponseError::PolicyViolation,
        StorageError::DataDirLocked { .. } => ResponseError::KafkaStorageError,
        StorageError::OutOfOrderSequence(_) => ResponseError::OutOfOrderSequenceNumber,
        StorageError::InvalidProducerEpoch(_) => ResponseError::InvalidProducerEpoch,
        StorageError::TooManyProducers(_) => ResponseError::PolicyViolation,
        StorageError::InvalidTxnState(_) => ResponseError::InvalidTxnState,
        StorageError::TransactionCoordinatorFenced(_) => {
            ResponseError::TransactionCoordinatorFenced
        }
        StorageError::NotLeaderOrFollower(_) => ResponseError::NotLeaderOrFollower,
    }
}

/// The Kafka error for a replication refusal (a follower's fetch, an `acks=all` append).
pub(crate) fn replication_error(e: &ReplicationError) -> ResponseError {
    match e {
        ReplicationError::FencedLeaderEpoch { .. } => ResponseError::FencedLeaderEpoch,
        ReplicationError::UnknownLeaderEpoch { .. } => ResponseError::UnknownLeaderEpoch,
        ReplicationError::NotLeaderOrFollower => ResponseError::NotLeaderOrFollower,
        ReplicationError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        ReplicationError::NotEnoughReplicas { .. } => ResponseError::NotEnoughReplicas,
        ReplicationError::NotEnoughReplicasAfterAppend { .. } => {
            ResponseError::NotEnoughReplicasAfterAppend
        }
        ReplicationError::InvalidUpdateVersion { .. } => ResponseError::InvalidUpdateVersion,
        ReplicationError::IneligibleReplica(_) => ResponseError::IneligibleReplica,
        ReplicationError::InvalidRequest(_) => ResponseError::InvalidRequest,
    }
}

/// A coordinator runtime's failure as the group coordinator's error: a shard unloaded means
/// the group moved (NOT_COORDINATOR, the client looks it up again); a log that refused the
/// write makes the coordinator unavailable for now.
pub(crate) fn coordinator_group_error(e: &CoordinatorError) -> GroupError {
    match e {
        CoordinatorError::Unloaded => GroupError::NotCoordinator,
        CoordinatorError::Log(_) | CoordinatorError::Record(_) => {
            GroupError::CoordinatorNotAvailable
        }
    }
}

/// The same for the transaction coordinator.
pub(crate) fn coordinator_txn_error(e: &CoordinatorError) -> TxnError {
    match e {
        CoordinatorError::Unloaded => TxnError::NotCoordinator,
        CoordinatorError::Log(_) | CoordinatorError::Record(_) => TxnError::CoordinatorNotAvailable,
    }
}

/// The Kafka error for a controller's refusal.
pub(crate) fn controller_error(e: &ControllerError) -> ResponseError {
    match e {
        ControllerError::TopicExists(_) => ResponseError::TopicAlreadyExists,
        ControllerError::UnknownTopic(_) => ResponseError::UnknownTopicOrPartition,
        ControllerError::InvalidTopic(_) => ResponseError::InvalidTopicException,
        ControllerError::InvalidPartitions(_) => ResponseError::InvalidPartitions,
        ControllerError::InvalidReplicationFactor(_) => ResponseError::InvalidReplicationFactor,
        ControllerError::InvalidReplicaAssignment(_) => ResponseError::InvalidReplicaAssignment,
        ControllerError::BrokerNotRegistered(_) => ResponseError::BrokerIdNotRegistered,
        ControllerError::StaleBrokerEpoch { .. } => ResponseError::StaleBrokerEpoch,
        ControllerError::DuplicateBrokerRegistration(_) => {
            ResponseError::DuplicateBrokerRegistration
        }
        ControllerError::CorruptRecord(_) => ResponseError::UnknownServerError,
        ControllerError::InvalidRequest(_) => ResponseError::InvalidRequest,
        ControllerError::LimitReached(_) => ResponseError::PolicyViolation,
        ControllerError::UnknownTopicId(..) => ResponseError::UnknownTopicId,
        ControllerError::FencedLeaderEpoch { .. } => ResponseError::FencedLeaderEpoch,
        ControllerError::NotLeaderOrFollower => ResponseError::NotLeaderOrFollower,
        ControllerError::InvalidUpdateVersion { .. } => ResponseError::InvalidUpdateVersion,
        ControllerError::IneligibleReplica(_) => ResponseError::IneligibleReplica,
        ControllerError::DuplicateResource(_) => ResponseError::DuplicateResource,
        ControllerError::ResourceNotFound(_) => ResponseError::ResourceNotFound,
        ControllerError::UnacceptableCredential(_) => ResponseError::UnacceptableCredential,
        ControllerError::UnsupportedSaslMechanism(_) => ResponseError::UnsupportedSaslMechanism,
    }
}

/// The Kafka error for a group coordinator error.
pub(crate) fn group_error(e: &GroupError) -> ResponseError {
    match e {
        GroupError::InvalidGroupId => ResponseError::InvalidGroupId,
        GroupError::UnknownMemberId => ResponseError::UnknownMemberId,
        GroupError::MemberIdRequired => ResponseError::MemberIdRequired,
        GroupError::IllegalGeneration => ResponseError::IllegalGeneration,
        GroupError::RebalanceInProgress => ResponseError::RebalanceInProgress,
        GroupError::FencedInstanceId => ResponseError::FencedInstanceId,
        GroupError::InconsistentGroupProtocol => ResponseError::InconsistentGroupProtocol,
        GroupError::InvalidSessionTimeout => ResponseError::InvalidSessionTimeout,
        GroupError::GroupMaxSizeReached => ResponseError::GroupMaxSizeReached,
        GroupError::GroupIdNotFound => ResponseError::GroupIdNotFound,
        GroupError::NonEmptyGroup => ResponseError::NonEmptyGroup,
        GroupError::GroupSubscribedToTopic => ResponseError::GroupSubscribedToTopic,
        GroupError::InvalidTopic => ResponseError::InvalidTopicException,
        GroupError::OffsetMetadataTooLarge => ResponseError::OffsetMetadataTooLarge,
        GroupError::LimitReached(_) => ResponseError::PolicyViolation,
        GroupError::CoordinatorNotAvailable => ResponseError::CoordinatorNotAvailable,
        GroupError::NotCoordinator => ResponseError::NotCoordinator,
        GroupError::FencedMemberEpoch => ResponseError::FencedMemberEpoch,
        GroupError::StaleMemberEpoch => ResponseError::StaleMemberEpoch,
        GroupError::UnreleasedInstanceId => ResponseError::UnreleasedInstanceId,
        GroupError::UnsupportedAssignor => ResponseError::UnsupportedAssignor,
        GroupError::UnstableOffsetCommit => ResponseError::UnstableOffsetCommit,
        GroupError::InvalidRequest(_) => ResponseError::InvalidRequest,
        GroupError::InvalidRegularExpression(_) => ResponseError::InvalidRegularExpression,
    }
}

/// The Kafka error for a transaction coordinator error. `fenced_code` says whether the
/// request's version knows PRODUCER_FENCED (KIP-588); older ones get INVALID_PRODUCER_EPOCH.
pub(crate) fn txn_error(e: &TxnError, fenced_code: bool) -> ResponseError {
    match e {
        TxnError::InvalidProducerIdMapping => ResponseError::InvalidProducerIdMapping,
        TxnError::ProducerFenced if fenced_code => ResponseError::ProducerFenced,
        TxnError::ProducerFenced => ResponseError::InvalidProducerEpoch,
        TxnError::InvalidTransactionTimeout => ResponseError::InvalidTransactionTimeout,
        TxnError::ConcurrentTransactions => ResponseError::ConcurrentTransactions,
        TxnError::InvalidTxnState(_) => ResponseError::InvalidTxnState,
        TxnError::InvalidTransactionalId => ResponseError::InvalidRequest,
        TxnError::LimitReached(_) => ResponseError::PolicyViolation,
        TxnError::NotCoordinator => ResponseError::NotCoordinator,
        TxnError::ProducerIdUnavailable | TxnError::CoordinatorNotAvailable => {
            ResponseError::CoordinatorNotAvailable
        }
    }
}

/// The error code of a transaction command's result (0 on success).
pub(crate) fn txn_code<T>(result: &Result<T, TxnError>, fenced_code: bool) -> i16 {
    result
        .as_ref()
        .err()
        .map_or(0, |e| txn_error(e, fenced_code).code())
}

/// The Kafka error for a share-partition's refusal of an acknowledgement.
pub(crate) fn share_error(e: &ShareError) -> ResponseError {
    match e {
        ShareError::InvalidRecordState { .. } => ResponseError::InvalidRecordState,
        ShareError::InvalidRanges => ResponseError::InvalidRequest,
        ShareError::DamagedState(_) => ResponseError::UnknownServerError,
    }
}

/// The Kafka error for a share-partition state refused by its share coordinator.
pub(crate) fn share_state_error(e: &crate::share_coordinators::ShareStateError) -> ResponseError {
    use crate::share_coordinators::ShareStateError;
    match e {
        ShareStateError::NotCoordinator => ResponseError::NotCoordinator,
        ShareStateError::NotAvailable(_) => ResponseError::CoordinatorNotAvailable,
        ShareStateError::FencedLeaderEpoch { .. } => ResponseError::FencedLeaderEpoch,
        ShareStateError::FencedStateEpoch { .. } => ResponseError::FencedStateEpoch,
    }
}

/// The Kafka error for a share session step refused (`shares::session`).
pub(crate) fn share_session_error(e: crate::shares::session::SessionError) -> ResponseError {
    use crate::shares::session::SessionError;
    match e {
        SessionError::NotFound => ResponseError::ShareSessionNotFound,
        SessionError::InvalidEpoch => ResponseError::InvalidShareSessionEpoch,
        SessionError::LimitReached => ResponseError::ShareSessionLimitReached,
        SessionError::InvalidRequest(_) => ResponseError::InvalidRequest,
    }
}

/// The error code of an optional group error (`None`: success, code 0).
pub(crate) fn group_code(e: Option<&GroupError>) -> i16 {
    e.map_or(0, |e| group_error(e).code())
}

pub(crate) fn code(e: &StorageError) -> i16 {
    storage_error(e).code()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_errors_map_to_kafka_codes() {
        assert_eq!(code(&StorageError::UnknownTopic("t".into())), 3);
        assert_eq!(code(&StorageError::BatchTooLarge { bytes: 2, max: 1 }), 10);
        assert_eq!(code(&StorageError::InvalidConfig("x".into())), 40);
        assert_eq!(code(&StorageError::Offline("x".into())), 56);
        assert_eq!(code(&StorageError::OutOfOrderSequence("x".into())), 45);
        assert_eq!(code(&StorageError::InvalidProducerEpoch("x".into())), 47);
        assert_eq!(code(&StorageError::InvalidTxnState("x".into())), 48);
        assert_eq!(
            code(&StorageError::TransactionCoordinatorFenced("x".into())),
            52
        );
    }

    #[test]
    fn group_errors_map_to_kafka_codes() {
        assert_eq!(group_code(None), 0);
        assert_eq!(group_code(Some(&GroupError::IllegalGeneration)), 22);
        assert_eq!(group_code(Some(&GroupError::UnknownMemberId)), 25);
        assert_eq!(group_code(Some(&GroupError::RebalanceInProgress)), 27);
        assert_eq!(group_code(Some(&GroupError::MemberIdRequired)), 79);
        assert_eq!(group_code(Some(&GroupError::FencedInstanceId)), 82);
    }
}
