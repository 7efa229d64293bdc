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

/// The HTTP status for a Kafka error code from the broker.
fn status_for_kafka(code: i16) -> StatusCode {
    match code {
        // UNKNOWN_TOPIC_OR_PARTITION, GROUP_ID_NOT_FOUND
        3 | 69 => StatusCode::NOT_FOUND,
        // TOPIC_ALREADY_EXISTS, NON_EMPTY_GROUP
        36 | 68 => StatusCode::CONFLICT,
        // MESSAGE_TOO_LARGE, RECORD_LIST_TOO_LARGE
        10 | 18 => StatusCode::PAYLOAD_TOO_LARGE,
        // OFFSET_OUT_OF_RANGE, CORRUPT_MESSAGE, INVALID_TOPIC_EXCEPTION, INVALID_PARTITIONS,
        // INVALID_REPLICATION_FACTOR, INVALID_CONFIG, INVALID_REQUEST, INVALID_RECORD,
        // POLICY_VIOLATION, UNSUPPORTED_VERSION
        1 | 2 | 17 | 37 | 38 | 40 | 42 | 44 | 87 | 35 => StatusCode::BAD_REQUEST,
        // NOT_ENOUGH_REPLICAS, LEADER_NOT_AVAILABLE, NOT_LEADER_OR_FOLLOWER, REQUEST_TIMED_OUT,
        // COORDINATOR_NOT_AVAILABLE, KAFKA_STORAGE_ERROR
        19 | 5 | 6 | 7 | 15 | 56 => StatusCode::SERVICE_UNAVAILABLE,
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
