//! `ClientError`: everything a request through `sluice-client` can end in. Kafka error codes
//! stay codes (with Kafka's name for them) so callers can tell a retriable one.

use kafka_protocol::ResponseError;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    // The I/O error is part of the message rather than a `source`, so that error chains
    // (anyhow's `{:#}`) do not print it twice.
    #[error("cannot reach {address}: {error}")]
    Connect {
        address: String,
        error: std::io::Error,
    },
    #[error("connection to {address} failed: {error}")]
    Io {
        address: String,
        error: std::io::Error,
    },
    #[error("no answer from {address} within {timeout_ms} ms")]
    Timeout { address: String, timeout_ms: u64 },
    #[error(transparent)]
    Protocol(#[from] sluice_protocol::ProtocolError),
    #[error("{address} answered with a frame of {length} bytes, over the limit of {max}")]
    ResponseTooLarge {
        address: String,
        length: i64,
        max: u32,
    },
    #[error(
        "{address} answered in HTTP: that is an HTTP server, not a Kafka listener (Sluice's HTTP API is on 8080 and its Kafka listener on 9092 unless set otherwise)"
    )]
    HttpNotKafka { address: String },
    #[error("{address} answered correlation id {got}, expected {expected}")]
    CorrelationMismatch {
        address: String,
        expected: i32,
        got: i32,
    },
    #[error("{address} does not support {api} (versions {ours}); is it a Kafka broker?")]
    UnsupportedApi {
        address: String,
        api: String,
        ours: String,
    },
    #[error("{context}: {name} (error code {code}){}", message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Kafka {
        context: String,
        code: i16,
        name: String,
        message: Option<String>,
    },
    #[error("{0}")]
    Invalid(String),
}

impl ClientError {
    /// A Kafka error code from a response, as an error; `Ok` for code 0.
    pub fn check(code: i16, message: Option<&str>, context: impl FnOnce() -> String) -> Result<()> {
        if code == 0 {
            return Ok(());
        }
        Err(ClientError::Kafka {
            context: context(),
            code,
            name: error_name(code),
            message: message.filter(|m| !m.is_empty()).map(str::to_string),
        })
    }

    /// True for a Kafka error code the protocol marks retriable (a leader moving, say).
    pub fn is_retriable(&self) -> bool {
        self.code()
            .and_then(ResponseError::try_from_code)
            .is_some_and(|e| e.is_retriable())
    }

    /// True when the connection itself failed (refused, reset, closed, silent), as when a broker
    /// restarts: connecting again later may succeed.
    pub fn is_connection_lost(&self) -> bool {
        matches!(
            self,
            ClientError::Connect { .. } | ClientError::Io { .. } | ClientError::Timeout { .. }
        )
    }

    /// The Kafka error code, when the broker answered with one.
    pub fn code(&self) -> Option<i16> {
        match self {
            ClientError::Kafka { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// Kafka's name for an error code (`UNKNOWN_TOPIC_OR_PARTITION`), or the number itself.
pub fn error_name(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        None => "NONE".to_string(),
        Some(ResponseError::Unknown(_)) => format!("UNKNOWN_ERROR_CODE_{code}"),
        Some(e) => screaming_snake(&e.to_string()),
    }
}

fn screaming_snake(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 8);
    for (i, c) in camel.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

pub type Result<T> = std::result::Result<T, ClientError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_names() {
        assert_eq!(error_name(3), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(error_name(36), "TOPIC_ALREADY_EXISTS");
        assert_eq!(error_name(-1), "UNKNOWN_SERVER_ERROR");
        assert_eq!(error_name(9999), "UNKNOWN_ERROR_CODE_9999");
    }
}
