//! `/v1/groups`: consumer groups with their members and, per partition, committed offset, log
//! end offset and lag (the same report as `sluice group describe`).

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use serde_json::{Value, json};
use sluice_client::Client;
use sluice_client::groups;
use std::sync::Arc;

#[utoipa::path(get, path = "/v1/groups", tag = "groups", responses((status = 200, description = "every group", body = crate::api::GroupList), (status = "4XX", description = "the request was refused", body = crate::api::ErrorBody), (status = "5XX", description = "the broker failed or is unavailable", body = crate::api::ErrorBody)))]
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

#[utoipa::path(get, path = "/v1/groups/{group}", tag = "groups", params(("group" = String, Path)), responses((status = 200, description = "members and lag", body = crate::api::GroupDescription), (status = "4XX", description = "the request was refused", body = crate::api::ErrorBody), (status = "5XX", description = "the broker failed or is unavailable", body = crate::api::ErrorBody)))]
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
