//! Requests about a view kept by another node of the cluster, carried there.
//!
//! On a cluster each table and view runs on one node (the view engine decides which and says
//! so through `ViewsService::home`). A request to `/v1/sql` or `/v1/views/{v}...` that reaches
//! another node is sent on, as it came, to the home node's HTTP API, and its answer (a Server-
//! Sent Events stream included) comes back through this one: clients may ask any node. A
//! forwarded request carries `x-sluice-forwarded` and is answered where it lands, so a request
//! crosses at most one hop even while a view is moving.
//!
//! Owns: the routing decision's plumbing and the proxy. Not: where views live (the engine).

use crate::AppState;
use crate::error::ApiError;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use sluice_types::limits::HTTP_BODY_BYTES_MAX;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Marks a request one node sent on to another.
pub(crate) const FORWARDED: &str = "x-sluice-forwarded";
/// How long connecting to the home node may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the home node may take to start answering: the longest `wait_ms` and then some.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(90);

/// The views' routes' layer: sends a request about a view kept elsewhere to its home node.
pub(crate) async fn route_views(
    State(state): State<Arc<AppState>>,
    path: Result<Path<HashMap<String, String>>, PathRejection>,
    request: Request,
    next: Next,
) -> Response {
    let Some(views) = state.views.clone() else {
        return next.run(request).await;
    };
    if request.headers().contains_key(FORWARDED) {
        return next.run(request).await;
    }
    let view = path
        .ok()
        .and_then(|Path(params)| params.get("view").cloned());
    let (request, home) = match view {
        Some(view) => {
            let home = views.home(&view).await;
            (request, home)
        }
        None if request.uri().path() == "/v1/sql" => {
            let (parts, body) = request.into_parts();
            let Ok(bytes) = axum::body::to_bytes(body, HTTP_BODY_BYTES_MAX).await else {
                return ApiError::bad_request("the body could not be read").into_response();
            };
            let sql = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v.get("sql").and_then(|s| s.as_str()).map(str::to_string));
            let home = match sql {
                Some(sql) => views.home_of_statement(&sql).await,
                None => None,
            };
            (Request::from_parts(parts, Body::from(bytes)), home)
        }
        None => (request, None),
    };
    match home {
        None => next.run(request).await,
        Some(base) => match forward(&base, request).await {
            Ok(response) => response,
            Err(e) => e.into_response(),
        },
    }
}

/// Sends `request` to the HTTP API at `base` (`http://host:port`) and returns its answer.
async fn forward(base: &str, request: Request) -> Result<Response, ApiError> {
    let unavailable = |why: String| ApiError {
        status: StatusCode::SERVICE_UNAVAILABLE,
        error_code: "VIEW_NODE_UNAVAILABLE".into(),
        message: format!(
            "the node keeping this view ({base}) cannot be reached: {why}; if it is down, another node takes the view over within seconds"
        ),
    };
    let Some(authority) = base
        .strip_prefix("http://")
        .map(|a| a.trim_end_matches('/'))
    else {
        return Err(ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            error_code: "VIEW_NODE_UNAVAILABLE".into(),
            message: format!(
                "{base} keeps this view, and its HTTP API is not known here yet (it has just started): ask again in a moment"
            ),
        });
    };
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(authority))
        .await
        .map_err(|_| unavailable("connecting timed out".into()))?
        .map_err(|e| unavailable(e.to_string()))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    // Drives the connection until the answer's body (a stream, perhaps) is done.
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let (mut parts, body) = request.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    parts.uri = path
        .parse::<Uri>()
        .map_err(|e| unavailable(e.to_string()))?;
    let host = HeaderValue::from_str(authority).map_err(|e| unavailable(e.to_string()))?;
    parts.headers.insert(header::HOST, host);
    parts
        .headers
        .insert(FORWARDED, HeaderValue::from_static("1"));
    let answer = tokio::time::timeout(
        ANSWER_TIMEOUT,
        sender.send_request(Request::from_parts(parts, body)),
    )
    .await
    .map_err(|_| unavailable("it did not answer in time".into()))?
    .map_err(|e| unavailable(e.to_string()))?;
    Ok(answer.map(Body::new))
}
