//! `/v1/topics`: list, create, describe, delete.

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

#[utoipa::path(get, path = "/v1/topics", tag = "topics", responses((status = 200, description = "every topic", body = crate::api::TopicList), (status = "4XX", description = "the request was refused", body = crate::api::ErrorBody), (status = "5XX", description = "the broker failed or is unavailable", body = crate::api::ErrorBody)))]
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

#[utoipa::path(post, path = "/v1/topics", tag = "topics", request_body = CreateBody, responses((status = 201, description = "created", body = crate::api::TopicCreated), (status = "4XX", description = "the request was refused", body = crate::api::ErrorBody), (status = "5XX", description = "the broker failed or is unavailable", body = crate::api::ErrorBody)))]
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

#[utoipa::path(get, path = "/v1/topics/{topic}", tag = "topics", params(("topic" = String, Path)), responses((status = 200, description = "the topic", body = crate::api::TopicDescription), (status = "4XX", description = "the request was refused", body = crate::api::ErrorBody), (status = "5XX", description = "the broker failed or is unavailable", body = crate::api::ErrorBody)))]
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
    let mut configs = Map::new();
    for c in admin::describe_topic_configs(client, name).await? {
        let value = if c.sensitive { None } else { c.value };
        configs.insert(c.name, value.map_or(Value::Null, Value::String));
    }
    Ok(json!({
        "name": name,
        "id": t.topic_id.to_string(),
        "internal": t.is_internal,
        "partitions": partitions,
        "configs": configs,
    }))
}

#[utoipa::path(delete, path = "/v1/topics/{topic}", tag = "topics", params(("topic" = String, Path)), responses((status = 204, description = "deleted"), (status = "4XX", description = "the request was refused", body = crate::api::ErrorBody), (status = "5XX", description = "the broker failed or is unavailable", body = crate::api::ErrorBody)))]
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
