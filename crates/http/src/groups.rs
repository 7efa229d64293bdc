//! `/v1/groups`: consumer groups with their members and, per partition, committed offset, log
//! end offset and lag (the same report as `sluice group describe`); deleting a group and
//! resetting its offsets (the same code as `sluice group delete` and `reset-offsets`).

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};
use sluice_client::Client;
use sluice_client::groups;
use sluice_client::position::parse_start;
use std::sync::Arc;

/// List consumer groups.
#[utoipa::path(get, path = "/v1/groups", operation_id = "list_groups", tag = "groups", responses((status = 200, description = "every group", body = crate::api::GroupList), (status = "4XX", description = "the request was refused", body = crate::api::ErrorBody), (status = "5XX", description = "the broker failed or is unavailable", body = crate::api::ErrorBody)))]
pub async fn list(State(state): State<Arc<AppState>>) -> ApiResult<Json<Value>> {
    let listed = state
        .pool
        .with(async |client: &mut Client| -> ApiResult<_> {
            Ok(groups::list_groups(client).await?)
        })
        .await?;
    let groups: Vec<Value> = listed
        .into_iter()
        .map(|g| {
            json!({
                "group": g.group_id,
                "state": g.state,
                "protocol_type": g.protocol_type,
                "type": g.group_type,
            })
        })
        .collect();
    Ok(Json(json!({ "groups": groups })))
}

/// Describe a group: members, and per partition the committed offset, end offset and lag.
#[utoipa::path(get, path = "/v1/groups/{group}", operation_id = "describe_group", tag = "groups", params(("group" = String, Path)), responses((status = 200, description = "members and lag", body = crate::api::GroupDescription), (status = "4XX", description = "the request was refused", body = crate::api::ErrorBody), (status = "5XX", description = "the broker failed or is unavailable", body = crate::api::ErrorBody)))]
pub async fn describe(
    State(state): State<Arc<AppState>>,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<Value>> {
    let Path(group) = path.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let report = state
        .pool
        .with(async |client: &mut Client| -> ApiResult<_> {
            Ok(groups::report(client, &group).await?)
        })
        .await?;
    Ok(Json(report.to_json()))
}

/// Delete a group and its committed offsets.
///
/// Only a group with no active members can be deleted (Kafka's rule): otherwise 409
/// NON_EMPTY_GROUP.
#[utoipa::path(delete, path = "/v1/groups/{group}", operation_id = "delete_group", tag = "groups", params(("group" = String, Path)), responses((status = 204, description = "deleted"), (status = "4XX", description = "the request was refused", body = crate::api::ErrorBody), (status = "5XX", description = "the broker failed or is unavailable", body = crate::api::ErrorBody)))]
pub async fn delete(
    State(state): State<Arc<AppState>>,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<StatusCode> {
    let Path(group) = path.map_err(|e| ApiError::bad_request(e.body_text()))?;
    state
        .pool
        .with(async |client: &mut Client| -> ApiResult<()> {
            Ok(groups::delete_group(client, &group).await?)
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResetBody {
    /// The topic whose partitions move.
    topic: String,
    /// earliest, latest, an offset N, -N (the last N records), or @TIME.
    to: String,
    /// Only say where the group would go (default false: commit it).
    #[serde(default)]
    dry_run: bool,
}

/// Reset a group's committed offsets on a topic.
///
/// As `kafka-consumer-groups --reset-offsets`: every partition of the topic moves to `to`; an
/// explicit offset outside the log moves to its nearest end. Committing needs a group with no
/// active members (else 409 NON_EMPTY_GROUP); `dry_run` only answers the plan.
#[utoipa::path(post, path = "/v1/groups/{group}/reset-offsets", operation_id = "reset_group_offsets", tag = "groups", params(("group" = String, Path)), request_body = ResetBody, responses((status = 200, description = "the plan, and whether it was committed", body = crate::api::OffsetReset), (status = "4XX", description = "the request was refused", body = crate::api::ErrorBody), (status = "5XX", description = "the broker failed or is unavailable", body = crate::api::ErrorBody)))]
pub async fn reset_offsets(
    State(state): State<Arc<AppState>>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<Json<Value>> {
    let Path(group) = path.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let body: ResetBody = crate::body_json(body)?;
    let to = parse_start(&body.to).map_err(ApiError::bad_request)?;
    let plan = state
        .pool
        .with(async |client: &mut Client| -> ApiResult<_> {
            let plan = groups::plan_reset(client, &group, &body.topic, to).await?;
            if !body.dry_run {
                groups::execute_reset(client, &group, &body.topic, &plan).await?;
            }
            Ok(plan)
        })
        .await?;
    let partitions: Vec<Value> = plan
        .iter()
        .map(|r| json!({"partition": r.partition, "current": r.current, "new": r.new}))
        .collect();
    Ok(Json(json!({
        "group": group,
        "topic": body.topic,
        "executed": !body.dry_run,
        "partitions": partitions,
    })))
}
