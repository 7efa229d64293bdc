//! The single mapping from domain errors to Kafka error codes. Adding a variant to a domain
//! error enum forces a decision here.

use kafka_protocol::error::ResponseError;
use sluice_storage::StorageError;

/// The Kafka error for a storage error, and the message to send where the API has one.
pub(crate) fn storage_error(e: &StorageError) -> ResponseError {
    match e {
        StorageError::CorruptBatch(_) => ResponseError::CorruptMessage,
        StorageError::BatchTooLarge { .. } => ResponseError::MessageTooLarge,
        StorageError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        StorageError::Offline(_) | StorageError::Io(_) => ResponseError::KafkaStorageError,
        StorageError::TopicExists(_) => ResponseError::TopicAlreadyExists,
        StorageError::UnknownTopic(_) | StorageError::UnknownPartition { .. } => {
            ResponseError::UnknownTopicOrPartition
        }
        StorageError::InvalidTopicName(_) => ResponseError::InvalidTopicException,
        StorageError::InvalidPartitions(_) => ResponseError::InvalidPartitions,
        StorageError::InvalidConfig(_) => ResponseError::InvalidConfig,
        StorageError::TooManyTopics(_) => ResponseError::PolicyViolation,
        StorageError::DataDirLocked { .. } => ResponseError::KafkaStorageError,
    }
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
    }
}
