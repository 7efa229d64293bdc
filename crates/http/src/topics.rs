//! `/v1/topics`: list, create, describe, delete; a topic's configs (`PATCH`, JSON Merge Patch:
//! a string, number or boolean sets a key, `null` removes the topic's own value) and its
//! partition count (`POST .../partitions`).

use crate::error::{ApiError, ApiResult};
use crate::{AppState, body_json};
use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sluice_client::admin::{self, NewTopic};
use sluice_client::data::{self, EARLIEST, LATEST};
use sluice_client::{Client, ClientError};
use std::collections::BTreeMap;
use std::sync::Arc;

/// List topics.
#[utoipa::path(get, path = "/v1/topics", operation_id = "list_topics", tag = "topics", responses((status = 200, description = "every topic", body = crate::api::TopicList), (status = "4XX", description = "the request was refused", body = crate::api::ErrorBody), (status = "5XX", description = "the broker failed or is unavailable", body = crate::api::ErrorBody)))]
pub async fn list(State(state): State<Arc<AppState>>) -> ApiResult<Json<Value>> {
    let topics = state
        .pool
        .with(async |client: &mut Client| -> ApiResult<Vec<Value>> {
            let metadata = client.metadata(None, false).await?;
            let mut topics: Vec<Value> = metadata
                .topics
                .iter()
                .filter_map(|t| {
                    Some(json!({
                        "name": t.name.as_ref()?.to_string(),
                        "partitions": t.partitions.len(),
                        "internal": t.is_internal,
                    }))
                })
                .collect();
            topics.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
            Ok(topics)
        })
        .await?;
    Ok(Json(json!({ "topics": topics })))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateBody {
    name: String,
    partitions: Option<i32>,
    replication_factor: Option<i16>,
    #[serde(default)]
    configs: BTreeMap<String, String>,
}

/// Create a topic.
#[utoipa::path(post, path = "/v1/topics", operation_id = "create_topic", tag = "topics", request_body = CreateBody, responses((status = 201, description = "created", body = crate::api::TopicCreated), (status = "4XX", description = "the request was refused", body = crate::api::ErrorBody), (status = "5XX", description = "the broker failed or is unavailable", body = crate::api::ErrorBody)))]
pub async fn create(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let body: CreateBody = body_json(body)?;
    let topic = NewTopic {
        name: body.name.clone(),
        partitions: body.partitions,
        replication_factor: body.replication_factor,
        configs: body.configs.into_iter().collect(),
    };
    let partitions = state
        .pool
        .with(async |client: &mut Client| -> ApiResult<i32> {
            Ok(admin::create_topic(client, &topic).await?)
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"name": body.name, "partitions": partitions})),
    ))
}

/// Describe a topic: partitions with their offsets, and every config.
#[utoipa::path(get, path = "/v1/topics/{topic}", operation_id = "describe_topic", tag = "topics", params(("topic" = String, Path)), responses((status = 200, description = "the topic", body = crate::api::TopicDescription), (status = "4XX", description = "the request was refused", body = crate::api::ErrorBody), (status = "5XX", description = "the broker failed or is unavailable", body = crate::api::ErrorBody)))]
pub async fn describe(
    State(state): State<Arc<AppState>>,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<Value>> {
    let Path(name) = path.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let body = state
        .pool
        .with(async |client: &mut Client| -> ApiResult<Value> {
            describe_topic(client, &name).await
        })
        .await?;
    Ok(Json(body))
}

async fn describe_topic(client: &mut Client, name: &str) -> ApiResult<Value> {
    let metadata = client.metadata(Some(&[name.to_string()]), false).await?;
    let t = metadata
        .topics
        .first()
        .ok_or_else(|| ApiError::not_found(format!("no topic {name}")))?;
    ClientError::check(t.error_code, None, || format!("describing topic {name}"))?;
    let mut leaders: Vec<(i32, i32)> = t
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.leader_id.0))
        .collect();
    leaders.sort_unstable();
    let mut partitions = Vec::with_capacity(leaders.len());
    for (partition, leader) in leaders {
        let start = data::list_offset(client, name, partition, EARLIEST).await?;
        let end = data::list_offset(client, name, partition, LATEST).await?;
        partitions.push(json!({
            "partition": partition,
            "leader": leader,
            "log_start_offset": start,
            "end_offset": end,
        }));
    }
    let configs = configs_of(client, name).await?;
    Ok(json!({
        "name": name,
        "id": t.topic_id.to_string(),
        "internal": t.is_internal,
        "partitions": partitions,
        "configs": configs,
    }))
}

/// Delete a topic and all its records.
#[utoipa::path(delete, path = "/v1/topics/{topic}", operation_id = "delete_topic", tag = "topics", params(("topic" = String, Path)), responses((status = 204, description = "deleted"), (status = "4XX", description = "the request was refused", body = crate::api::ErrorBody), (status = "5XX", description = "the broker failed or is unavailable", body = crate::api::ErrorBody)))]
pub async fn delete(
    State(state): State<Arc<AppState>>,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<StatusCode> {
    let Path(name) = path.map_err(|e| ApiError::bad_request(e.body_text()))?;
    state
        .pool
        .with(async |client: &mut Client| -> ApiResult<()> {
            Ok(admin::delete_topic(client, &name).await?)
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Change a topic's configs.
///
/// The body is a JSON Merge Patch (RFC 7396) of the topic's configs: a string, number or
/// boolean sets the key; `null` removes the topic's own value, so the default applies again.
/// Answers every config afterwards (IncrementalAlterConfigs, then DescribeConfigs).
#[utoipa::path(patch, path = "/v1/topics/{topic}/configs", operation_id = "alter_topic_configs", tag = "topics", params(("topic" = String, Path)), request_body(content = BTreeMap<String, Option<String>>, description = "config name -> new value, or null to remove it"), responses((status = 200, description = "every config afterwards (null for a sensitive one)", body = BTreeMap<String, Option<String>>), (status = "4XX", description = "the request was refused", body = crate::api::ErrorBody), (status = "5XX", description = "the broker failed or is unavailable", body = crate::api::ErrorBody)))]
pub async fn alter_configs(
    State(state): State<Arc<AppState>>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<Json<Value>> {
    let Path(name) = path.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let patch: Map<String, Value> = body_json(body)?;
    if patch.is_empty() {
        return Err(ApiError::bad_request(
            "nothing to change: give {\"key\": \"value\"} to set, {\"key\": null} to remove",
        ));
    }
    let (mut set, mut delete) = (Vec::new(), Vec::new());
    for (key, value) in patch {
        match value {
            Value::Null => delete.push(key),
            Value::String(s) => set.push((key, s)),
            Value::Number(n) => set.push((key, n.to_string())),
            Value::Bool(b) => set.push((key, b.to_string())),
            other => {
                return Err(ApiError::bad_request(format!(
                    "{key}: a config value is a string, number, boolean or null, not {other}"
                )));
            }
        }
    }
    let configs = state
        .pool
        .with(async |client: &mut Client| -> ApiResult<Value> {
            admin::alter_topic_configs(client, &name, &set, &delete).await?;
            configs_of(client, &name).await
        })
        .await?;
    Ok(Json(configs))
}

/// Every config of `name`: its value, `null` when sensitive or unset.
async fn configs_of(client: &mut Client, name: &str) -> ApiResult<Value> {
    let mut configs = Map::new();
    for c in admin::describe_topic_configs(client, name).await? {
        let value = if c.sensitive { None } else { c.value };
        configs.insert(c.name, value.map_or(Value::Null, Value::String));
    }
    Ok(Value::Object(configs))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PartitionsBody {
    /// The partition count afterwards (partitions are never removed).
    total: i32,
}

/// Grow a topic to a total number of partitions.
///
/// Partitions are never removed; a total below the current count is refused with
/// INVALID_PARTITIONS (CreatePartitions).
#[utoipa::path(post, path = "/v1/topics/{topic}/partitions", operation_id = "add_topic_partitions", tag = "topics", params(("topic" = String, Path)), request_body = PartitionsBody, responses((status = 200, description = "grown", body = crate::api::TopicCreated), (status = "4XX", description = "the request was refused", body = crate::api::ErrorBody), (status = "5XX", description = "the broker failed or is unavailable", body = crate::api::ErrorBody)))]
pub async fn add_partitions(
    State(state): State<Arc<AppState>>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<Json<Value>> {
    let Path(name) = path.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let body: PartitionsBody = body_json(body)?;
    state
        .pool
        .with(async |client: &mut Client| -> ApiResult<()> {
            Ok(admin::create_partitions(client, &name, body.total).await?)
        })
        .await?;
    Ok(Json(json!({"name": name, "partitions": body.total})))
}
