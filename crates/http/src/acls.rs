//! `/v1/acls`: Kafka's ACLs listed, added and removed by name (the JSON form of
//! `sluice acl list --format json`, `security_admin::AclNames`), through the same client
//! calls as `sluice acl`: DescribeAcls, CreateAcls and DeleteAcls, which the broker checks
//! as the caller's (`DESCRIBE` and `ALTER` on the cluster).

use crate::error::{ApiError, ApiResult};
use crate::{AppState, body_json};
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sluice_client::Client;
use sluice_client::security_admin::{self, Acl, AclNames};
use std::sync::Arc;

/// An ACL by name, or as a filter (query parameters) the ACLs it selects: a field left out
/// selects every value.
#[derive(Debug, Default, Serialize, Deserialize, utoipa::ToSchema, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AclFields {
    /// `User:alice`.
    pub(crate) principal: Option<String>,
    /// An IP address, or `*` (default when adding: any).
    pub(crate) host: Option<String>,
    /// `topic`, `group`, `cluster`, `transactional-id`, `delegation-token` or `user`.
    pub(crate) resource_type: Option<String>,
    /// Not needed for the cluster.
    pub(crate) resource_name: Option<String>,
    /// `literal` (default when adding) or `prefixed`; a filter also takes `any` (its default)
    /// and `match` (every ACL that applies to `resource_name`).
    pub(crate) pattern_type: Option<String>,
    /// `all`, `read`, `write`, `create`, `delete`, `alter`, `describe`, `cluster_action`,
    /// `describe_configs`, `alter_configs`, `idempotent_write`, `create_tokens`,
    /// `describe_tokens` or `two_phase_commit`.
    pub(crate) operation: Option<String>,
    /// `allow` (default when adding) or `deny`.
    pub(crate) permission: Option<String>,
}

impl From<AclFields> for AclNames {
    fn from(f: AclFields) -> AclNames {
        AclNames {
            principal: f.principal,
            host: f.host,
            resource_type: f.resource_type,
            resource_name: f.resource_name,
            pattern_type: f.pattern_type,
            operation: f.operation,
            permission: f.permission,
        }
    }
}

fn filter_of(params: Result<Query<AclFields>, QueryRejection>) -> ApiResult<(AclNames, Acl)> {
    let Query(fields) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let names = AclNames::from(fields);
    let filter = names.filter().map_err(ApiError::bad_request)?;
    Ok((names, filter))
}

/// List the ACLs a filter selects (no parameters: every ACL).
#[utoipa::path(get, path = "/v1/acls", operation_id = "list_acls", tag = "security", params(AclFields), responses((status = 200, description = "the ACLs selected", body = crate::api::AclList), (status = "4XX", description = "the request was refused", body = crate::api::ErrorBody), (status = "5XX", description = "the broker failed or is unavailable", body = crate::api::ErrorBody)))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    params: Result<Query<AclFields>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let (_, filter) = filter_of(params)?;
    let acls = state
        .pool
        .with(async |client: &mut Client| -> ApiResult<_> {
            Ok(security_admin::describe_acls(client, &filter).await?)
        })
        .await?;
    let acls: Vec<AclNames> = acls.iter().map(Acl::names).collect();
    Ok(Json(json!({ "acls": acls })))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AddAcls {
    acls: Vec<AclFields>,
}

/// Add ACLs.
///
/// All or none: a field that cannot be read refuses the request before any ACL is sent.
#[utoipa::path(post, path = "/v1/acls", operation_id = "add_acls", tag = "security", request_body = AddAcls, responses((status = 201, description = "added", body = crate::api::AclsAdded), (status = "4XX", description = "the request was refused", body = crate::api::ErrorBody), (status = "5XX", description = "the broker failed or is unavailable", body = crate::api::ErrorBody)))]
pub async fn add(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let body: AddAcls = body_json(body)?;
    if body.acls.is_empty() {
        return Err(ApiError::bad_request("acls: name at least one ACL"));
    }
    let acls = body
        .acls
        .into_iter()
        .map(|fields| AclNames::from(fields).binding())
        .collect::<Result<Vec<Acl>, String>>()
        .map_err(ApiError::bad_request)?;
    state
        .pool
        .with(async |client: &mut Client| -> ApiResult<()> {
            Ok(security_admin::create_acls(client, &acls).await?)
        })
        .await?;
    Ok((StatusCode::CREATED, Json(json!({ "added": acls.len() }))))
}

/// Remove the ACLs a filter selects.
///
/// The filter must name a principal, a resource type or a resource name: an empty one would
/// remove every ACL.
#[utoipa::path(delete, path = "/v1/acls", operation_id = "remove_acls", tag = "security", params(AclFields), responses((status = 200, description = "how many were removed", body = crate::api::AclsRemoved), (status = "4XX", description = "the request was refused", body = crate::api::ErrorBody), (status = "5XX", description = "the broker failed or is unavailable", body = crate::api::ErrorBody)))]
pub async fn remove(
    State(state): State<Arc<AppState>>,
    params: Result<Query<AclFields>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let (names, filter) = filter_of(params)?;
    if names.principal.is_none() && names.resource_type.is_none() && names.resource_name.is_none() {
        return Err(ApiError::bad_request(
            "name a principal, resource_type or resource_name to remove by (nothing named would remove every ACL)",
        ));
    }
    let removed = state
        .pool
        .with(async |client: &mut Client| -> ApiResult<_> {
            Ok(security_admin::delete_acls(client, &filter).await?)
        })
        .await?;
    Ok(Json(json!({ "removed": removed })))
}
