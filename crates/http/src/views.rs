//! `/v1/sql` and `/v1/views`: SQL statements, and tables' and views' rows by key and in pages,
//! each answer with the source position it reflects (issue 19; docs/views.md).
//!
//! The views themselves are kept by the view engine, which this crate does not know: the
//! binary hands in a `ViewsService`, and the routes only carry requests to it and its JSON
//! answers back (written by the engine, so DECIMALs keep their digits). `min_position` with
//! `wait_ms` waits until the view reflects a position (read-your-writes after a produce).
//!
//! Owns: the routes, their parameters, the waits. Not: views (the engine).

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// Next offset per (topic, partition) a view reflects.
pub type Positions = BTreeMap<(String, i32), i64>;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A view's change events: (event name, JSON data), ending after an `error` event.
pub type ChangeStream = Pin<Box<dyn futures::Stream<Item = (&'static str, String)> + Send>>;

/// A refusal of the view engine: the HTTP status, an error code and a message.
#[derive(Debug)]
pub struct ViewsFailure {
    pub status: u16,
    pub error_code: &'static str,
    pub message: String,
}

/// What the routes need of the view engine. Answers are JSON text.
pub trait ViewsService: Send + Sync + std::fmt::Debug {
    /// Runs one SQL statement.
    fn execute<'a>(&'a self, sql: &'a str) -> BoxFuture<'a, Result<String, ViewsFailure>>;
    /// Every table and view.
    fn list(&self) -> String;
    fn describe(&self, name: &str) -> Result<String, ViewsFailure>;
    fn drop_view<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<String, ViewsFailure>>;
    fn rebuild<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<String, ViewsFailure>>;
    fn row_by_key(&self, name: &str, key: &str) -> Result<String, ViewsFailure>;
    fn rows(
        &self,
        name: &str,
        prefix: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<String, ViewsFailure>;
    /// `name`'s changes from now on, after every row first with `snapshot`.
    fn changes(&self, name: &str, snapshot: bool) -> Result<ChangeStream, ViewsFailure>;
    /// Follows the positions `name` reflects.
    fn positions(
        &self,
        name: &str,
    ) -> Result<tokio::sync::watch::Receiver<Positions>, ViewsFailure>;
    /// The HTTP API (`http://host:port`) of the node keeping `name`, when that is another node
    /// of the cluster: requests about it go there (`forward`); any other text names a node
    /// whose API is not known yet (the request is refused with 503).
    fn home<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Option<String>>;
    /// The same for a statement: the node keeping what it creates, drops, describes or queries.
    fn home_of_statement<'a>(&'a self, sql: &'a str) -> BoxFuture<'a, Option<String>>;
}

impl From<ViewsFailure> for ApiError {
    fn from(f: ViewsFailure) -> ApiError {
        ApiError {
            status: StatusCode::from_u16(f.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            error_code: f.error_code.into(),
            message: f.message,
        }
    }
}

/// Longest `wait_ms` a read waits for `min_position`.
const WAIT_MS_MAX: u64 = 60_000;
/// Positions one `min_position` may name.
const MIN_POSITIONS_MAX: usize = 1_000;
/// Rows a page holds unless `limit` says otherwise.
const ROWS_DEFAULT: usize = 100;

fn service(state: &AppState) -> ApiResult<&Arc<dyn ViewsService>> {
    state.views.as_ref().ok_or_else(|| ApiError {
        status: StatusCode::NOT_FOUND,
        error_code: "VIEWS_OFF".into(),
        message: "views are off on this server (--views off)".into(),
    })
}

/// The `{view}` of a route's path.
fn view_name(path: Result<Path<String>, PathRejection>) -> ApiResult<String> {
    let Path(name) = path.map_err(|e| ApiError::bad_request(e.body_text()))?;
    Ok(name)
}

fn json_text(body: String) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct SqlBody {
    /// One statement: CREATE TABLE, CREATE [OR REPLACE] MATERIALIZED VIEW, SELECT, SHOW,
    /// DESCRIBE or DROP.
    sql: String,
}

/// Run one SQL statement.
///
/// CREATE answers `{"created", "kind"}` (with `"replaced": true` when CREATE OR REPLACE
/// replaced a view), DROP `{"dropped"}`, SHOW a list, DESCRIBE the
/// definition and counters, SELECT `{"columns", "rows", "position"}`. Unsupported SQL is a 400
/// that names the construct.
#[utoipa::path(post, path = "/v1/sql", operation_id = "run_sql", tag = "views", request_body = SqlBody, responses((status = 200, description = "the statement's answer", body = crate::api::SqlAnswer), (status = "4XX", description = "the statement was refused", body = crate::api::ErrorBody), (status = "5XX", description = "the broker failed or is unavailable", body = crate::api::ErrorBody)))]
pub async fn sql(State(state): State<Arc<AppState>>, body: Bytes) -> ApiResult<Response> {
    let views = service(&state)?;
    let body: SqlBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("expected {{\"sql\": \"...\"}}: {e}")))?;
    Ok(json_text(views.execute(&body.sql).await?))
}

/// List tables and views.
#[utoipa::path(get, path = "/v1/views", operation_id = "list_views", tag = "views", responses((status = 200, description = "every table and view", body = crate::api::ViewList), (status = "4XX", description = "the request was refused", body = crate::api::ErrorBody)))]
pub async fn list(State(state): State<Arc<AppState>>) -> ApiResult<Response> {
    Ok(json_text(service(&state)?.list()))
}

/// Describe a table or view: its SQL, columns, state, counters and position.
#[utoipa::path(get, path = "/v1/views/{view}", operation_id = "describe_view", tag = "views", params(("view" = String, Path)), responses((status = 200, description = "the definition and its state", body = crate::api::ViewDescription), (status = "4XX", description = "the request was refused", body = crate::api::ErrorBody)))]
pub async fn describe(
    State(state): State<Arc<AppState>>,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    let name = view_name(path)?;
    Ok(json_text(service(&state)?.describe(&name)?))
}

/// Drop a table or view: its engine, checkpoint, group and output topic.
#[utoipa::path(delete, path = "/v1/views/{view}", operation_id = "drop_view", tag = "views", params(("view" = String, Path)), responses((status = 200, description = "dropped", body = crate::api::SqlAnswer), (status = "4XX", description = "the request was refused", body = crate::api::ErrorBody), (status = "5XX", description = "the broker failed or is unavailable", body = crate::api::ErrorBody)))]
pub async fn drop_view(
    State(state): State<Arc<AppState>>,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    let name = view_name(path)?;
    Ok(json_text(service(&state)?.drop_view(&name).await?))
}

/// Rebuild a table or view from its source's start.
///
/// The new state is folded beside the running one, which keeps answering until the new one
/// has caught up; then the view goes on from it. Nothing is published for the replay.
/// Answers once done: `{"rebuilt", "position"}`.
#[utoipa::path(post, path = "/v1/views/{view}/rebuild", operation_id = "rebuild_view", tag = "views", params(("view" = String, Path)), responses((status = 200, description = "rebuilt", body = crate::api::SqlAnswer), (status = "4XX", description = "the request was refused", body = crate::api::ErrorBody), (status = "5XX", description = "the broker failed or is unavailable", body = crate::api::ErrorBody)))]
pub async fn rebuild(
    State(state): State<Arc<AppState>>,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    let name = view_name(path)?;
    Ok(json_text(service(&state)?.rebuild(&name).await?))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Freshness {
    /// Wait until the view reflects this position: `topic:partition:offset` (the offset a
    /// produce answered), several separated by commas.
    min_position: Option<String>,
    /// How long to wait for `min_position` (ms, at most 60000; default 0: answer 504 at once
    /// when it is not reached).
    wait_ms: Option<u64>,
}

/// One row by key.
///
/// The key is the row's key text: a text key as is, a number as written, several keys as a
/// JSON array (`["a",7]`). `row` is null when there is none.
#[utoipa::path(get, path = "/v1/views/{view}/keys/{key}", operation_id = "get_view_row", tag = "views", params(("view" = String, Path), ("key" = String, Path), Freshness), responses((status = 200, description = "the row (or null) and the position it reflects", body = crate::api::ViewRow), (status = "4XX", description = "the request was refused", body = crate::api::ErrorBody), (status = 504, description = "min_position was not reached within wait_ms", body = crate::api::ErrorBody)))]
pub async fn row(
    State(state): State<Arc<AppState>>,
    path: Result<Path<(String, String)>, PathRejection>,
    params: Result<Query<Freshness>, QueryRejection>,
) -> ApiResult<Response> {
    let Path((name, key)) = path.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let Query(freshness) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let views = service(&state)?;
    wait_for(views.as_ref(), &name, &freshness).await?;
    Ok(json_text(views.row_by_key(&name, &key)?))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RowsParams {
    /// Only rows whose key text starts with this.
    prefix: Option<String>,
    /// Rows after this key text (the last key of the previous page).
    after: Option<String>,
    /// Rows in the page (default 100, at most 10000).
    limit: Option<usize>,
    min_position: Option<String>,
    wait_ms: Option<u64>,
}

/// Rows in key order, a page at a time.
#[utoipa::path(get, path = "/v1/views/{view}/rows", operation_id = "list_view_rows", tag = "views", params(("view" = String, Path), RowsParams), responses((status = 200, description = "a page of rows; `more` when others follow", body = crate::api::ViewRows), (status = "4XX", description = "the request was refused", body = crate::api::ErrorBody), (status = 504, description = "min_position was not reached within wait_ms", body = crate::api::ErrorBody)))]
pub async fn rows(
    State(state): State<Arc<AppState>>,
    path: Result<Path<String>, PathRejection>,
    params: Result<Query<RowsParams>, QueryRejection>,
) -> ApiResult<Response> {
    let name = view_name(path)?;
    let Query(params) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let views = service(&state)?;
    let freshness = Freshness {
        min_position: params.min_position,
        wait_ms: params.wait_ms,
    };
    wait_for(views.as_ref(), &name, &freshness).await?;
    let limit = params.limit.unwrap_or(ROWS_DEFAULT);
    if limit == 0 {
        return Err(ApiError::bad_request("limit is at least 1"));
    }
    Ok(json_text(views.rows(
        &name,
        params.prefix.as_deref(),
        params.after.as_deref(),
        limit,
    )?))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ChangesParams {
    /// Every row first (`row` events), then a `position` event, then the changes.
    snapshot: Option<bool>,
}

/// Follow a table's or view's changes as Server-Sent Events.
///
/// `event: row`, data `{"key": key text, "row": {...} | null}` (null: the row left the view);
/// after each commit's rows (and after the snapshot) `event: position`, data `{"position":
/// {...}}`. A stream that falls behind the view ends with `event: error`: reconnect with
/// `snapshot=true`.
#[utoipa::path(get, path = "/v1/views/{view}/changes", operation_id = "follow_view_changes", tag = "views", params(("view" = String, Path), ChangesParams), responses((status = 200, description = "Server-Sent Events: `row` and `position` events", content_type = "text/event-stream", body = String), (status = "4XX", description = "the request was refused", body = crate::api::ErrorBody), (status = "5XX", description = "too many streams are open", body = crate::api::ErrorBody)))]
pub async fn changes(
    State(state): State<Arc<AppState>>,
    path: Result<Path<String>, PathRejection>,
    params: Result<Query<ChangesParams>, QueryRejection>,
) -> ApiResult<Sse<impl futures::Stream<Item = Result<Event, Infallible>>>> {
    let name = view_name(path)?;
    let Query(params) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let views = service(&state)?;
    let permit = crate::stream::stream_permit(&state)?;
    let events = views.changes(&name, params.snapshot.unwrap_or(false))?;
    let events = events.map(move |(event, data)| {
        let _open = &permit; // The stream counts against HTTP_STREAMS_MAX while it lives.
        Ok(Event::default().event(event).data(data))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

/// Waits until view `name` reflects every position of `min_position`, for `wait_ms` at most.
async fn wait_for(views: &dyn ViewsService, name: &str, freshness: &Freshness) -> ApiResult<()> {
    let Some(text) = &freshness.min_position else {
        return Ok(());
    };
    let wanted = parse_positions(text).map_err(ApiError::bad_request)?;
    let wait = Duration::from_millis(freshness.wait_ms.unwrap_or(0).min(WAIT_MS_MAX));
    let mut positions = views.positions(name)?;
    let reached = |now: &Positions| {
        wanted
            .iter()
            .all(|(tp, offset)| now.get(tp).is_some_and(|at| at > offset))
    };
    let waited = tokio::time::timeout(wait, positions.wait_for(reached))
        .await
        .is_ok_and(|r| r.is_ok());
    match waited {
        true => Ok(()),
        false if reached(&positions.borrow()) => Ok(()),
        false => Err(ApiError {
            status: StatusCode::GATEWAY_TIMEOUT,
            error_code: "POSITION_NOT_REACHED".into(),
            message: format!(
                "view {name} does not reflect {text} yet (waited {} ms)",
                wait.as_millis()
            ),
        }),
    }
}

/// A (topic, partition) and an offset in it.
type Position = ((String, i32), i64);

/// `topic:partition:offset[,...]`: the offset of a record the view must reflect.
fn parse_positions(text: &str) -> Result<Vec<Position>, String> {
    if text.split(',').count() > MIN_POSITIONS_MAX {
        return Err(format!(
            "min_position names more than {MIN_POSITIONS_MAX} positions"
        ));
    }
    text.split(',')
        .map(|one| {
            let bad = || format!("min_position {one:?}: expected topic:partition:offset");
            let mut parts = one.rsplitn(3, ':');
            let offset = parts.next().and_then(|o| o.parse().ok()).ok_or_else(bad)?;
            let partition = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
            let topic = parts.next().filter(|t| !t.is_empty()).ok_or_else(bad)?;
            Ok(((topic.to_string(), partition), offset))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_read_from_the_right() {
        assert_eq!(
            parse_positions("payments:0:41,a:b:2:7").unwrap(),
            vec![(("payments".into(), 0), 41), (("a:b".into(), 2), 7)]
        );
        assert!(parse_positions("payments:0").is_err());
        assert!(parse_positions(":0:1").is_err());
        assert!(parse_positions(&vec!["t:0:1"; MIN_POSITIONS_MAX + 1].join(",")).is_err());
    }
}
