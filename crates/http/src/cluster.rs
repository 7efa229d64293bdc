//! `GET /v1/cluster`: the cluster as Metadata describes it to a client: its id, the active
//! controller and the live brokers with their addresses (the console's overview shows it).

use crate::AppState;
use crate::error::ApiResult;
use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};
use sluice_client::Client;
use std::sync::Arc;

/// Describe the cluster.
#[utoipa::path(get, path = "/v1/cluster", operation_id = "describe_cluster", tag = "cluster", responses((status = 200, description = "the cluster's id, controller and brokers", body = crate::api::ClusterDescription), (status = "4XX", description = "the request was refused", body = crate::api::ErrorBody), (status = "5XX", description = "the broker failed or is unavailable", body = crate::api::ErrorBody)))]
pub async fn describe(State(state): State<Arc<AppState>>) -> ApiResult<Json<Value>> {
    let body = state
        .pool
        .with(async |client: &mut Client| -> ApiResult<Value> {
            let metadata = client.metadata(Some(&[]), false).await?;
            let mut brokers: Vec<Value> = metadata
                .brokers
                .iter()
                .map(|b| {
                    json!({
                        "id": b.node_id.0,
                        "host": b.host.to_string(),
                        "port": b.port,
                        "rack": b.rack.as_ref().map(ToString::to_string),
                    })
                })
                .collect();
            brokers.sort_by_key(|b| b["id"].as_i64());
            Ok(json!({
                "cluster_id": metadata.cluster_id.as_ref().map(ToString::to_string),
                "controller": metadata.controller_id.0,
                "brokers": brokers,
            }))
        })
        .await?;
    Ok(Json(body))
}
