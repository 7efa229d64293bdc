//! A small HTTP/1.1 client for the commands that ask `sluice serve`'s HTTP API (`sql`, `view`):
//! one request per connection, answers read up to a size cap, the whole exchange under the
//! command's `--timeout`.
//!
//! Owns: the exchange and its failures (`HttpFailure`, which the exit codes read). Not: what
//! the routes mean (`views`).

use super::Target;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::Request;
use hyper::header::{CONTENT_TYPE, HOST};
use std::time::Duration;

/// The largest answer read: a view's answer is at most 16 MiB of rows, plus its framing.
const ANSWER_BYTES_MAX: usize = 32 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum HttpFailure {
    #[error("cannot reach the HTTP API at {url}: {error}")]
    Unreachable { url: String, error: String },
    /// The API answered an error: its status, error code and message.
    #[error("{message} ({error_code}, HTTP {status})")]
    Refused {
        status: u16,
        error_code: String,
        message: String,
    },
}

impl HttpFailure {
    /// A refusal of the command's own (a key without a row), read as the API's 404.
    pub fn not_found(message: String) -> HttpFailure {
        HttpFailure::Refused {
            status: 404,
            error_code: "NOT_FOUND".into(),
            message,
        }
    }
}

/// `method path` with a JSON `body`, answered within the command's timeout; the answer's body
/// when it is a success.
pub async fn call(
    target: &Target,
    method: &str,
    path: &str,
    body: Option<String>,
) -> anyhow::Result<String> {
    call_waiting(target, method, path, body, Duration::ZERO).await
}

/// As `call`, for a request that itself waits up to `wait` (a `min_position`).
pub async fn call_waiting(
    target: &Target,
    method: &str,
    path: &str,
    body: Option<String>,
    wait: Duration,
) -> anyhow::Result<String> {
    let url = target.http_url.trim_end_matches('/');
    let authority = url.strip_prefix("http://").filter(|a| !a.contains('/'));
    let Some(authority) = authority else {
        anyhow::bail!(
            "--http-url {url}: expected http://HOST:PORT (the HTTP API serves plain HTTP)"
        );
    };
    let timeout = Duration::from_secs(target.timeout.max(1)) + wait;
    let exchange = exchange(url, authority, method, path, body);
    match tokio::time::timeout(timeout, exchange).await {
        Ok(answer) => answer,
        Err(_) => Err(HttpFailure::Unreachable {
            url: url.to_string(),
            error: format!("no answer within {} s", timeout.as_secs()),
        }
        .into()),
    }
}

async fn exchange(
    url: &str,
    authority: &str,
    method: &str,
    path: &str,
    body: Option<String>,
) -> anyhow::Result<String> {
    let unreachable = |error: String| HttpFailure::Unreachable {
        url: url.to_string(),
        error,
    };
    let stream = tokio::net::TcpStream::connect(authority)
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| unreachable(e.to_string()))?;
    let connection = tokio::spawn(connection);
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header(HOST, authority)
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.unwrap_or_default())))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let status = response.status();
    let bytes = Limited::new(response.into_body(), ANSWER_BYTES_MAX)
        .collect()
        .await
        .map_err(|e| unreachable(format!("reading the answer: {e}")))?
        .to_bytes();
    connection.abort();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    if status.is_success() {
        return Ok(text);
    }
    let (error_code, message) = match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(body) => (
            body["error_code"].as_str().unwrap_or("UNKNOWN").to_string(),
            body["message"].as_str().unwrap_or(&text).to_string(),
        ),
        // Not the API's error format: something else answers at that address.
        Err(_) => (
            "NOT_SLUICE".to_string(),
            format!("{url} answered HTTP {status} that is not Sluice's API: {text:.200}"),
        ),
    };
    Err(HttpFailure::Refused {
        status: status.as_u16(),
        error_code,
        message,
    }
    .into())
}
