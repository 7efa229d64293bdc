//! `/ui`: the cluster at a glance: its id, the active controller and the live brokers (from
//! `GET /v1/cluster`), how many topics and partitions (`GET /v1/topics`), and this broker's
//! own figures from its metrics: disk used by partitions and free, under-replicated and
//! offline partitions, connections, and throughput in and out now and over the last hour.

use super::history::{Series, parse, total};
use super::{Frame, chart, html, view};
use crate::AppState;
use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;
use std::sync::Arc;

pub(crate) struct BrokerRow {
    pub id: i64,
    pub address: String,
    pub rack: String,
    pub controller: bool,
}

#[derive(Template)]
#[template(path = "console/overview.html")]
struct Overview {
    frame: Frame,
    cluster_id: String,
    brokers: Vec<BrokerRow>,
    topics: usize,
    internal_topics: usize,
    partitions: u64,
    figures: Vec<(&'static str, String)>,
    rate_in: String,
    rate_out: String,
    chart: String,
}

pub(crate) async fn page(State(state): State<Arc<AppState>>) -> Response {
    let mut frame = Frame::new("Overview", "overview");
    let (mut cluster_id, mut brokers) = (String::new(), Vec::new());
    match crate::cluster::describe(State(state.clone())).await {
        Ok(cluster) => {
            cluster_id = cluster["cluster_id"].as_str().unwrap_or("").to_string();
            brokers = broker_rows(&cluster);
        }
        Err(e) => frame.failed(&e),
    }
    let (mut topics, mut internal_topics, mut partitions) = (0, 0, 0);
    match crate::topics::list(State(state.clone())).await {
        Ok(listed) => {
            for t in listed["topics"].as_array().into_iter().flatten() {
                if t["internal"].as_bool() == Some(true) {
                    internal_topics += 1;
                } else {
                    topics += 1;
                }
                partitions += t["partitions"].as_u64().unwrap_or(0);
            }
        }
        Err(e) => frame.failed(&e),
    }
    let series = parse(&(state.metrics)());
    let (produced, fetched) = state.history.throughput();
    let last = |points: &[(i64, f64)]| points.last().map_or(0.0, |p| p.1);
    let page = Overview {
        frame,
        cluster_id,
        brokers,
        topics,
        internal_topics,
        partitions,
        figures: figures(&series),
        rate_in: view::rate(last(&produced)),
        rate_out: view::rate(last(&fetched)),
        chart: chart::render(
            "Bytes produced and fetched per second, this broker, last hour",
            &[
                chart::Line {
                    legend: "produced",
                    class: "line-in",
                    points: &produced,
                },
                chart::Line {
                    legend: "fetched",
                    class: "line-out",
                    points: &fetched,
                },
            ],
            view::rate,
        ),
    };
    html(StatusCode::OK, &page)
}

fn broker_rows(cluster: &Value) -> Vec<BrokerRow> {
    let controller = cluster["controller"].as_i64().unwrap_or(-1);
    let brokers = cluster["brokers"].as_array().into_iter().flatten();
    brokers
        .map(|b| {
            let id = b["id"].as_i64().unwrap_or(-1);
            BrokerRow {
                id,
                address: format!(
                    "{}:{}",
                    b["host"].as_str().unwrap_or(""),
                    b["port"].as_i64().unwrap_or(0)
                ),
                rack: b["rack"].as_str().unwrap_or("").to_string(),
                controller: id == controller,
            }
        })
        .collect()
}

/// This broker's figures, by name, from its metrics.
fn figures(series: &[Series]) -> Vec<(&'static str, String)> {
    let sum = |name: &str| total(series, name);
    vec![
        (
            "Disk used by partitions",
            view::bytes(sum("sluice_partition_size_bytes")),
        ),
        (
            "Disk free",
            format!(
                "{} of {}",
                view::bytes(sum("sluice_data_dir_free_bytes")),
                view::bytes(sum("sluice_data_dir_total_bytes"))
            ),
        ),
        (
            "Partitions led here",
            view::count(sum("sluice_leader_partitions")),
        ),
        (
            "Under-replicated partitions",
            view::count(sum("sluice_under_replicated_partitions")),
        ),
        (
            "Offline partitions",
            view::count(sum("sluice_offline_partitions")),
        ),
        ("Kafka connections", view::count(sum("sluice_connections"))),
    ]
}
