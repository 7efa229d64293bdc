//! `/v1/users`: SCRAM users listed, created (or given a new password) and deleted, through the
//! same client calls as `sluice user` (`sluice_client::security_admin`). The password is
//! salted and hashed here; only the salted password reaches the broker, which checks the
//! caller may `ALTER` (or `DESCRIBE`) the cluster.

use crate::error::{ApiError, ApiResult};
use crate::{AppState, body_json};
use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};
use sluice_client::Client;
use sluice_client::security_admin;
use sluice_types::limits::SCRAM_ITERATIONS_MIN;
use std::sync::Arc;

/// List the users with a SCRAM credential.
#[utoipa::path(get, path = "/v1/users", operation_id = "list_users", tag = "security", responses((status = 200, description = "every user and its mechanisms", body = crate::api::UserList), (status = "4XX", description = "the request was refused", body = crate::api::ErrorBody), (status = "5XX", description = "the broker failed or is unavailable", body = crate::api::ErrorBody)))]
pub async fn list(State(state): State<Arc<AppState>>) -> ApiResult<Json<Value>> {
    let users = state
        .pool
        .with(async |client: &mut Client| -> ApiResult<_> {
            Ok(security_admin::describe_users(client, &[]).await?)
        })
        .await?;
    let users: Vec<Value> = users
        .iter()
        .map(security_admin::UserCredentials::to_json)
        .collect();
    Ok(Json(json!({ "users": users })))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SetPassword {
    password: String,
    /// SCRAM-SHA-512 (default) or SCRAM-SHA-256.
    mechanism: Option<String>,
    /// PBKDF2 iterations, 4096 (default) to 16384.
    iterations: Option<i32>,
}

/// Create a user, or set a user's password, for one SCRAM mechanism.
#[utoipa::path(put, path = "/v1/users/{user}", operation_id = "set_user_password", tag = "security", params(("user" = String, Path)), request_body = SetPassword, responses((status = 200, description = "the credential is set", body = crate::api::UserCredentialSet), (status = "4XX", description = "the request was refused", body = crate::api::ErrorBody), (status = "5XX", description = "the broker failed or is unavailable", body = crate::api::ErrorBody)))]
pub async fn set_password(
    State(state): State<Arc<AppState>>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<Json<Value>> {
    let Path(user) = path.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let body: SetPassword = body_json(body)?;
    let mechanism =
        security_admin::scram_mechanism(body.mechanism.as_deref().unwrap_or("SCRAM-SHA-512"))
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
    // Kafka's least, as `sluice user create` defaults to.
    let iterations = body.iterations.unwrap_or(SCRAM_ITERATIONS_MIN);
    state
        .pool
        .with(async |client: &mut Client| -> ApiResult<()> {
            Ok(security_admin::set_user_password(
                client,
                &user,
                mechanism,
                &body.password,
                iterations,
            )
            .await?)
        })
        .await?;
    Ok(Json(json!({
        "user": user,
        "mechanism": mechanism.name(),
        "iterations": iterations,
    })))
}

#[derive(Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeleteParams {
    /// Only this mechanism's credential (default: every one the user has).
    pub(crate) mechanism: Option<String>,
}

/// Delete a user's credentials.
///
/// A user with no credential answers 404 `RESOURCE_NOT_FOUND`.
#[utoipa::path(delete, path = "/v1/users/{user}", operation_id = "delete_user", tag = "security", params(("user" = String, Path), DeleteParams), responses((status = 200, description = "the credentials deleted", body = crate::api::UserDeleted), (status = "4XX", description = "the request was refused", body = crate::api::ErrorBody), (status = "5XX", description = "the broker failed or is unavailable", body = crate::api::ErrorBody)))]
pub async fn delete(
    State(state): State<Arc<AppState>>,
    path: Result<Path<String>, PathRejection>,
    params: Result<Query<DeleteParams>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Path(user) = path.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let Query(params) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let mechanism = params
        .mechanism
        .as_deref()
        .map(security_admin::scram_mechanism)
        .transpose()
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let deleted = state
        .pool
        .with(async |client: &mut Client| -> ApiResult<_> {
            Ok(security_admin::delete_user_credentials(client, &user, mechanism).await?)
        })
        .await?;
    let deleted: Vec<&str> = deleted.iter().map(|m| m.name()).collect();
    Ok(Json(json!({ "user": user, "deleted": deleted })))
}
