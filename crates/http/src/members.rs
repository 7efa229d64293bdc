//! Consumer-group members for HTTP clients that cannot hold a stream:
//!
//! - `POST /v1/groups/{group}/members` `{"topic": T, "from"?: "earliest"}` joins `group` as a
//!   KIP-848 member reading `T`; 201 `{"member_id"}`.
//! - `GET /v1/groups/{group}/members/{id}/records?max=&wait_ms=` returns records of the
//!   partitions the group assigned this member, each with its `partition`, from where the
//!   member stands (the group's committed offsets at first).
//! - `POST /v1/groups/{group}/members/{id}/commit` commits everything returned so far; 204.
//! - `DELETE /v1/groups/{group}/members/{id}` leaves the group; 204.
//!
//! The gateway heartbeats for its members between requests (a sweep every second) and lets a
//! member go (leaving the group) after `MEMBER_IDLE` without a request. At most
//! `HTTP_MEMBERS_MAX` members at once; each holds a broker connection.

use crate::error::{ApiError, ApiResult};
use crate::{AppState, body_json};
use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};
use sluice_client::Client;
use sluice_client::data;
use sluice_client::json::record_to_json_as;
use sluice_client::member::GroupReader;
use sluice_client::position::{Start, parse_start};
use sluice_types::limits::HTTP_MEMBERS_MAX;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// A member that sees no request for this long is let go.
pub(crate) const MEMBER_IDLE: Duration = Duration::from_secs(60);
/// How often the gateway heartbeats for its members and looks for idle ones.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

pub(crate) struct HttpMember {
    group: String,
    topic: String,
    client: Client,
    reader: GroupReader,
    last_request: Instant,
    _slot: Slot,
}

type Shared<M> = Arc<tokio::sync::Mutex<M>>;

/// A member and the principal that made it (`None` without `http_auth`).
type Owned<M> = (Option<String>, Shared<M>);

/// Members the gateway holds for polling clients, by id: consumer-group members here,
/// share-group members in `share_queue`. At most `HTTP_MEMBERS_MAX` of each kind. With
/// `http_auth`, a member is reached only by the principal that made it (its id alone is not
/// enough): another caller is told there is no such member.
pub(crate) struct Registry<M> {
    /// Each member by id, with the principal that made it.
    by_id: Mutex<HashMap<String, Owned<M>>>,
    slots: Arc<tokio::sync::Semaphore>,
}

impl<M> Default for Registry<M> {
    fn default() -> Registry<M> {
        Registry {
            by_id: Mutex::default(),
            slots: Arc::new(tokio::sync::Semaphore::new(HTTP_MEMBERS_MAX)),
        }
    }
}

/// A member's place among `HTTP_MEMBERS_MAX`, given back when the member is dropped.
pub(crate) type Slot = tokio::sync::OwnedSemaphorePermit;

impl<M> Registry<M> {
    /// A place for one more member, or 503 when all are taken.
    pub(crate) fn slot(&self) -> ApiResult<Slot> {
        self.slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| ApiError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                error_code: "TOO_MANY_MEMBERS".into(),
                message: format!("{HTTP_MEMBERS_MAX} members are open, the most this server keeps"),
            })
    }

    /// Holds `member` for the caller of the request being handled.
    pub(crate) fn insert(&self, id: String, member: M) {
        let owner = crate::auth::current_caller();
        self.by_id
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, (owner, Arc::new(tokio::sync::Mutex::new(member))));
    }

    /// The member `id`, if the request's caller made it.
    pub(crate) fn get(&self, group: &str, id: &str) -> ApiResult<Shared<M>> {
        let caller = crate::auth::current_caller();
        let by_id = self.by_id.lock().unwrap_or_else(|p| p.into_inner());
        let found = by_id.get(id).filter(|(owner, _)| *owner == caller);
        found.map(|(_, member)| member.clone()).ok_or_else(|| {
            ApiError::not_found(format!(
                "no member {id} in group {group} here (it may have been let go after {} s idle)",
                MEMBER_IDLE.as_secs()
            ))
        })
    }

    pub(crate) fn remove(&self, id: &str) -> Option<Shared<M>> {
        self.by_id
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id)
            .map(|(_, member)| member)
    }

    fn all(&self) -> Vec<(String, Shared<M>)> {
        let by_id = self.by_id.lock().unwrap_or_else(|p| p.into_inner());
        by_id
            .iter()
            .map(|(k, (_, member))| (k.clone(), member.clone()))
            .collect()
    }
}

/// What the sweep does for a member it holds.
pub(crate) trait Held: Send + 'static {
    fn last_request(&self) -> Instant;
    /// Keeps the member in its group between requests.
    fn heartbeat(&mut self) -> impl Future<Output = ()> + Send;
    /// Leaves the group: the member was idle too long.
    fn let_go(&mut self) -> impl Future<Output = ()> + Send;
}

impl Held for HttpMember {
    fn last_request(&self) -> Instant {
        self.last_request
    }

    async fn heartbeat(&mut self) {
        if let Err(e) = self.reader.refresh(&mut self.client).await {
            tracing::warn!(group = %self.group, error = %e, "heartbeat for an HTTP member failed");
        }
    }

    async fn let_go(&mut self) {
        self.reader.membership.leave().await;
    }
}

/// Heartbeats for idle members and lets go of those idle too long. Runs until the API stops.
pub(crate) async fn sweep(state: Arc<AppState>) {
    let mut interval = tokio::time::interval(SWEEP_INTERVAL);
    loop {
        interval.tick().await;
        sweep_once(&state.members).await;
        sweep_once(&state.share_members).await;
    }
}

async fn sweep_once<M: Held>(registry: &Registry<M>) {
    for (id, shared) in registry.all() {
        // A member busy with a request heartbeats through it.
        let Ok(mut member) = shared.try_lock() else {
            continue;
        };
        if member.last_request().elapsed() >= MEMBER_IDLE {
            registry.remove(&id);
            member.let_go().await;
            continue;
        }
        member.heartbeat().await;
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct JoinBody {
    topic: String,
    from: Option<String>,
}

/// Join a group as a member that polls for records.
#[utoipa::path(post, path = "/v1/groups/{group}/members", operation_id = "join_group", tag = "groups", params(("group" = String, Path)), request_body = JoinBody, responses((status = 201, description = "joined", body = crate::api::MemberJoined), (status = "4XX", description = "the request was refused", body = crate::api::ErrorBody), (status = "5XX", description = "the broker failed or is unavailable", body = crate::api::ErrorBody)))]
pub async fn join(
    State(state): State<Arc<AppState>>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let Path(group) = path.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let body: JoinBody = body_json(body)?;
    let from = match body.from.as_deref() {
        None => Start::Latest,
        Some(text) => parse_start(text).map_err(ApiError::bad_request)?,
    };
    let slot = state.members.slot()?;
    let mut client = state.pool.connect("sluice-http-member").await?;
    client.partitions(&body.topic, false).await?;
    let mut reader = GroupReader::join(&mut client, &group, &body.topic, from).await?;
    reader.refresh(&mut client).await?;
    let id = uuid::Uuid::new_v4().simple().to_string();
    let member = HttpMember {
        group: group.clone(),
        topic: body.topic,
        client,
        reader,
        last_request: Instant::now(),
        _slot: slot,
    };
    state.members.insert(id.clone(), member);
    Ok((
        StatusCode::CREATED,
        Json(json!({"member_id": id, "group": group})),
    ))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PollParams {
    /// How values are written: text (default), json (the JSON they hold) or base64.
    value_format: Option<String>,
    max: Option<usize>,
    wait_ms: Option<u64>,
}

/// Read records of a member's assigned partitions.
#[utoipa::path(get, path = "/v1/groups/{group}/members/{member}/records", operation_id = "poll_member_records", tag = "groups", params(("group" = String, Path), ("member" = String, Path), PollParams), responses((status = 200, description = "records of the assigned partitions", body = crate::api::MemberRecords), (status = "4XX", description = "the request was refused", body = crate::api::ErrorBody), (status = "5XX", description = "the broker failed or is unavailable", body = crate::api::ErrorBody)))]
pub async fn poll(
    State(state): State<Arc<AppState>>,
    path: Result<Path<(String, String)>, PathRejection>,
    params: Result<Query<PollParams>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Path((group, id)) = path.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let Query(params) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let (max, wait) = crate::records::read_limits(params.max, params.wait_ms)?;
    let format = crate::records::value_format(params.value_format.as_deref())?;
    let shared = state.members.get(&group, &id)?;
    let mut member = shared.lock().await;
    member.last_request = Instant::now();
    let m = &mut *member;
    m.reader.refresh(&mut m.client).await?;
    let wanted: Vec<(i32, i64)> = m.reader.positions.iter().map(|(p, o)| (*p, *o)).collect();
    if wanted.is_empty() {
        tokio::time::sleep(wait.min(Duration::from_secs(1))).await;
        return Ok(Json(json!({"records": [], "assigned": []})));
    }
    let fetched =
        data::fetch_partitions(&mut m.client, &m.topic, &wanted, wait, 1024 * 1024).await?;
    let mut records = Vec::new();
    for f in fetched {
        let fetched = f.result?;
        let mut last = None;
        let next = data::for_each_record(&fetched.records, f.offset, |r| {
            if records.len() < max {
                records.push(record_to_json_as(None, Some(f.partition), r, format));
                last = Some(r.offset);
            }
        })?;
        let full = records.len() >= max;
        let position = match (full, last) {
            (true, Some(offset)) => offset + 1,
            (true, None) => f.offset,
            (false, _) => next,
        };
        m.reader.positions.insert(f.partition, position);
    }
    let assigned: Vec<i32> = m.reader.positions.keys().copied().collect();
    Ok(Json(json!({"records": records, "assigned": assigned})))
}

/// Commit everything the member was given so far.
#[utoipa::path(post, path = "/v1/groups/{group}/members/{member}/commit", operation_id = "commit_member_offsets", tag = "groups", params(("group" = String, Path), ("member" = String, Path)), responses((status = 204, description = "committed"), (status = "4XX", description = "the request was refused", body = crate::api::ErrorBody), (status = "5XX", description = "the broker failed or is unavailable", body = crate::api::ErrorBody)))]
pub async fn commit(
    State(state): State<Arc<AppState>>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> ApiResult<StatusCode> {
    let Path((group, id)) = path.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let shared = state.members.get(&group, &id)?;
    let mut member = shared.lock().await;
    member.last_request = Instant::now();
    member.reader.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Leave the group.
#[utoipa::path(delete, path = "/v1/groups/{group}/members/{member}", operation_id = "leave_group", tag = "groups", params(("group" = String, Path), ("member" = String, Path)), responses((status = 204, description = "left the group"), (status = "4XX", description = "the request was refused", body = crate::api::ErrorBody), (status = "5XX", description = "the broker failed or is unavailable", body = crate::api::ErrorBody)))]
pub async fn leave(
    State(state): State<Arc<AppState>>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> ApiResult<StatusCode> {
    let Path((group, id)) = path.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let shared = state.members.get(&group, &id)?;
    state.members.remove(&id);
    shared.lock().await.reader.membership.leave().await;
    Ok(StatusCode::NO_CONTENT)
}
