//! `ApiError`: every HTTP error answer, `{"error_code": "...", "message": "..."}` with a
//! status that says whose fault it was. Kafka error codes keep Kafka's names. A request the
//! API cannot understand is always a 4xx.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use sluice_client::ClientError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub error_code: String,
    pub message: String,
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            error_code: "INVALID_REQUEST".into(),
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::NOT_FOUND,
            error_code: "NOT_FOUND".into(),
            message: message.into(),
        }
    }
}

impl From<ClientError> for ApiError {
    fn from(e: ClientError) -> ApiError {
        let message = e.to_string();
        match &e {
            ClientError::Kafka { code, name, .. } => ApiError {
                status: status_for_kafka(*code),
                error_code: name.clone(),
                message,
            },
            ClientError::Connect { .. } | ClientError::Io { .. } | ClientError::Timeout { .. } => {
                ApiError {
                    status: StatusCode::SERVICE_UNAVAILABLE,
                    error_code: "BROKER_UNAVAILABLE".into(),
                    message,
                }
            }
            _ => ApiError {
                status: StatusCode::BAD_GATEWAY,
                error_code: "BROKER_ERROR".into(),
                message,
            },
        }
    }
}

/// The HTTP status for a Kafka error code from the broker: what the request got wrong is a
/// 4xx, what the broker could not do right now a 503, anything else a 502.
fn status_for_kafka(code: i16) -> StatusCode {
    match code {
        // UNKNOWN_TOPIC_OR_PARTITION, UNKNOWN_MEMBER_ID, GROUP_ID_NOT_FOUND, RESOURCE_NOT_FOUND,
        // TRANSACTIONAL_ID_NOT_FOUND
        3 | 25 | 69 | 91 | 105 => StatusCode::NOT_FOUND,
        // ILLEGAL_GENERATION, REBALANCE_IN_PROGRESS, TOPIC_ALREADY_EXISTS, NON_EMPTY_GROUP,
        // MEMBER_ID_REQUIRED, GROUP_MAX_SIZE_REACHED, FENCED_INSTANCE_ID, FENCED_MEMBER_EPOCH,
        // DUPLICATE_RESOURCE, UNRELEASED_INSTANCE_ID, STALE_MEMBER_EPOCH, INVALID_RECORD_STATE
        22 | 27 | 36 | 68 | 79 | 81 | 82 | 92 | 110 | 111 | 113 | 121 => StatusCode::CONFLICT,
        // MESSAGE_TOO_LARGE, RECORD_LIST_TOO_LARGE
        10 | 18 => StatusCode::PAYLOAD_TOO_LARGE,
        // TOPIC_, GROUP_, CLUSTER_AUTHORIZATION_FAILED
        29..=31 => StatusCode::FORBIDDEN,
        // OFFSET_OUT_OF_RANGE, CORRUPT_MESSAGE, OFFSET_METADATA_TOO_LARGE, INVALID_TOPIC_EXCEPTION,
        // INCONSISTENT_GROUP_PROTOCOL, INVALID_GROUP_ID, INVALID_SESSION_TIMEOUT,
        // INVALID_COMMIT_OFFSET_SIZE, UNSUPPORTED_VERSION, INVALID_PARTITIONS,
        // INVALID_REPLICATION_FACTOR, INVALID_REPLICA_ASSIGNMENT, INVALID_CONFIG,
        // INVALID_REQUEST, INVALID_RECORD, POLICY_VIOLATION, INVALID_TIMESTAMP,
        // UNSUPPORTED_SASL_MECHANISM, UNACCEPTABLE_CREDENTIAL, UNSUPPORTED_ASSIGNOR
        1 | 2 | 12 | 17 | 23 | 24 | 26 | 28 | 32 | 33 | 35 | 37 | 38 | 39 | 40 | 42 | 44 | 87
        | 93 | 112 => StatusCode::BAD_REQUEST,
        // LEADER_NOT_AVAILABLE, NOT_LEADER_OR_FOLLOWER, REQUEST_TIMED_OUT,
        // COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR,
        // NOT_ENOUGH_REPLICAS, KAFKA_STORAGE_ERROR
        5 | 6 | 7 | 14 | 15 | 16 | 19 | 56 => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_GATEWAY,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error_code": self.error_code, "message": self.message});
        (self.status, Json(body)).into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
