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
    let (url, authority) = parse_url(target)?;
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
    let response = send(url, authority, method, path, body).await?;
    let status = response.status();
    let text = read_all(url, response).await?;
    if status.is_success() {
        return Ok(text);
    }
    Err(refusal(url, status, &text).into())
}

/// The base URL and its `host:port` from `--http-url`.
fn parse_url(target: &Target) -> anyhow::Result<(&str, &str)> {
    let url = target.http_url.trim_end_matches('/');
    match url.strip_prefix("http://").filter(|a| !a.contains('/')) {
        Some(authority) => Ok((url, authority)),
        None => anyhow::bail!(
            "--http-url {url}: expected http://HOST:PORT (the HTTP API serves plain HTTP)"
        ),
    }
}

/// Connects and sends one request; the response with its body still to read.
async fn send(
    url: &str,
    authority: &str,
    method: &str,
    path: &str,
    body: Option<String>,
) -> anyhow::Result<hyper::Response<hyper::body::Incoming>> {
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
    // The connection is driven by a task of its own; it ends when the response is dropped.
    tokio::spawn(connection);
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header(HOST, authority)
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.unwrap_or_default())))?;
    Ok(sender
        .send_request(request)
        .await
        .map_err(|e| unreachable(e.to_string()))?)
}

/// A whole answer, up to `ANSWER_BYTES_MAX`.
async fn read_all(
    url: &str,
    response: hyper::Response<hyper::body::Incoming>,
) -> anyhow::Result<String> {
    let bytes = Limited::new(response.into_body(), ANSWER_BYTES_MAX)
        .collect()
        .await
        .map_err(|e| HttpFailure::Unreachable {
            url: url.to_string(),
            error: format!("reading the answer: {e}"),
        })?
        .to_bytes();
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// An error answer as a refusal: the API's error code and message.
fn refusal(url: &str, status: hyper::StatusCode, text: &str) -> HttpFailure {
    let (error_code, message) = match serde_json::from_str::<serde_json::Value>(text) {
        Ok(body) => (
            body["error_code"].as_str().unwrap_or("UNKNOWN").to_string(),
            body["message"].as_str().unwrap_or(text).to_string(),
        ),
        // Not the API's error format: something else answers at that address.
        Err(_) => (
            "NOT_SLUICE".to_string(),
            format!("{url} answered HTTP {status} that is not Sluice's API: {text:.200}"),
        ),
    };
    HttpFailure::Refused {
        status: status.as_u16(),
        error_code,
        message,
    }
}

/// Opens a Server-Sent Events stream at `path` and hands `on_event` each event's name and data
/// until it answers false or the stream ends. The connection and the answer's headers take the
/// command's timeout; the stream itself lasts as long as it is read.
pub async fn events(
    target: &Target,
    path: &str,
    mut on_event: impl FnMut(&str, &str) -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    let (url, authority) = parse_url(target)?;
    let timeout = Duration::from_secs(target.timeout.max(1));
    let response = tokio::time::timeout(timeout, send(url, authority, "GET", path, None))
        .await
        .map_err(|_| HttpFailure::Unreachable {
            url: url.to_string(),
            error: format!("no answer within {} s", timeout.as_secs()),
        })??;
    let status = response.status();
    if !status.is_success() {
        let text = read_all(url, response).await?;
        return Err(refusal(url, status, &text).into());
    }
    let mut body = response.into_body();
    let mut pending = String::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| HttpFailure::Unreachable {
            url: url.to_string(),
            error: format!("the stream broke: {e}"),
        })?;
        let Some(data) = frame.data_ref() else {
            continue;
        };
        pending.push_str(&String::from_utf8_lossy(data));
        while let Some(end) = pending.find("\n\n") {
            let block: String = pending.drain(..end + 2).collect();
            let (mut event, mut data) = ("message", Vec::new());
            for line in block.lines() {
                if let Some(name) = line.strip_prefix("event:") {
                    event = name.trim();
                } else if let Some(text) = line.strip_prefix("data:") {
                    data.push(text.strip_prefix(' ').unwrap_or(text));
                }
            }
            if !data.is_empty() && !on_event(event, &data.join("\n"))? {
                return Ok(());
            }
        }
        if pending.len() > ANSWER_BYTES_MAX {
            anyhow::bail!("{url}: an event over {ANSWER_BYTES_MAX} bytes");
        }
    }
    Ok(())
}
