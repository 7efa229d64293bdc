//! `/ui/topics`: every topic with its partitions, the bytes this broker keeps of it and its
//! rates in and out, and a form to create one; `/ui/topics/{topic}`: its partitions (leader,
//! offsets, records), its configs with a form to set or remove one, a form to add partitions,
//! and deletion, which asks for the topic's name again. Each calls the API's handler of the
//! same action (`crate::topics`).

use super::history::{parse, total_by};
use super::{Frame, html, see_other, url_part, view};
use crate::AppState;
use crate::error::ApiError;
use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

pub(crate) struct TopicRow {
    pub name: String,
    pub link: String,
    pub partitions: u64,
    pub internal: bool,
    pub size: String,
    pub rate_in: String,
    pub rate_out: String,
}

#[derive(Template)]
#[template(path = "console/topics.html")]
struct TopicList {
    frame: Frame,
    topics: Vec<TopicRow>,
}

/// What a form that redirected here did (`?done=`), told as a fixed notice.
#[derive(Deserialize, Default)]
pub(crate) struct Done {
    done: Option<String>,
    topic: Option<String>,
}

impl Done {
    fn notice(&self) -> Option<String> {
        let topic = self.topic.as_deref().unwrap_or("");
        Some(match self.done.as_deref()? {
            "created" => "Topic created".to_string(),
            "deleted" => format!("Topic {topic} deleted"),
            "config" => "Config changed".to_string(),
            "partitions" => "Partitions added".to_string(),
            _ => return None,
        })
    }
}

pub(crate) async fn list(State(state): State<Arc<AppState>>, Query(done): Query<Done>) -> Response {
    let mut frame = Frame::new("Topics", "topics");
    frame.notice = done.notice();
    list_page(&state, frame, StatusCode::OK).await
}

async fn list_page(state: &Arc<AppState>, mut frame: Frame, status: StatusCode) -> Response {
    let sizes = total_by(
        &parse(&(state.metrics)()),
        "sluice_partition_size_bytes",
        "topic",
    );
    let rates = state.history.topic_rates();
    let mut topics = Vec::new();
    match crate::topics::list(State(state.clone())).await {
        Ok(listed) => {
            for t in listed["topics"].as_array().into_iter().flatten() {
                let name = t["name"].as_str().unwrap_or("").to_string();
                let (rate_in, rate_out) = rates.get(&name).copied().unwrap_or((0.0, 0.0));
                topics.push(TopicRow {
                    link: format!("/ui/topics/{}", url_part(&name)),
                    partitions: t["partitions"].as_u64().unwrap_or(0),
                    internal: t["internal"].as_bool().unwrap_or(false),
                    size: view::bytes(sizes.get(&name).copied().unwrap_or(0.0)),
                    rate_in: view::rate(rate_in),
                    rate_out: view::rate(rate_out),
                    name,
                });
            }
        }
        Err(e) => frame.failed(&e),
    }
    html(status, &TopicList { frame, topics })
}

#[derive(Deserialize)]
pub(crate) struct CreateForm {
    name: String,
    #[serde(default)]
    partitions: String,
    #[serde(default)]
    replication_factor: String,
}

/// A form's number field: empty is "not given".
fn optional_number<T: std::str::FromStr>(field: &str, text: &str) -> Result<Option<T>, ApiError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .map_err(|_| ApiError::bad_request(format!("{field}: {text:?} is not a number")))
}

pub(crate) async fn create(
    State(state): State<Arc<AppState>>,
    Form(form): Form<CreateForm>,
) -> Response {
    let created = async {
        let partitions: Option<i32> = optional_number("partitions", &form.partitions)?;
        let factor: Option<i16> = optional_number("replication factor", &form.replication_factor)?;
        let mut body = json!({"name": form.name.trim()});
        if let Some(p) = partitions {
            body["partitions"] = p.into();
        }
        if let Some(f) = factor {
            body["replication_factor"] = f.into();
        }
        let body = Ok(Bytes::from(body.to_string()));
        crate::topics::create(State(state.clone()), body).await
    };
    match created.await {
        Ok(_) => see_other(&format!(
            "/ui/topics/{}?done=created",
            url_part(form.name.trim())
        )),
        Err(e) => {
            let mut frame = Frame::new("Topics", "topics");
            frame.failed(&e);
            list_page(&state, frame, e.status).await
        }
    }
}

pub(crate) struct PartitionRow {
    pub partition: i64,
    pub leader: i64,
    pub log_start_offset: i64,
    pub end_offset: i64,
    pub records: i64,
    pub size: String,
    pub browse: String,
}

#[derive(Template)]
#[template(path = "console/topic.html")]
struct TopicPage {
    frame: Frame,
    name: String,
    base: String,
    id: String,
    internal: bool,
    partitions: Vec<PartitionRow>,
    configs: Vec<(String, String)>,
}

pub(crate) async fn page(
    State(state): State<Arc<AppState>>,
    Path(topic): Path<String>,
    Query(done): Query<Done>,
) -> Response {
    let mut frame = Frame::new(topic.clone(), "topics");
    frame.notice = done.notice();
    topic_page(&state, &topic, frame, StatusCode::OK).await
}

async fn topic_page(
    state: &Arc<AppState>,
    topic: &str,
    mut frame: Frame,
    status: StatusCode,
) -> Response {
    let sizes = partition_sizes(state, topic);
    let described = crate::topics::describe(State(state.clone()), Ok(Path(topic.to_string())));
    let base = format!("/ui/topics/{}", url_part(topic));
    let (mut id, mut internal, mut partitions, mut configs) = Default::default();
    let mut status = status;
    match described.await {
        Ok(t) => {
            id = t["id"].as_str().unwrap_or("").to_string();
            internal = t["internal"].as_bool().unwrap_or(false);
            partitions = partition_rows(&t, &sizes, &base);
            configs = config_rows(&t["configs"]);
        }
        Err(e) => {
            frame.failed(&e);
            status = e.status;
        }
    }
    let page = TopicPage {
        frame,
        name: topic.to_string(),
        base,
        id,
        internal,
        partitions,
        configs,
    };
    html(status, &page)
}

/// This broker's bytes of each partition of `topic`, from its metrics.
fn partition_sizes(state: &AppState, topic: &str) -> BTreeMap<i64, f64> {
    parse(&(state.metrics)())
        .into_iter()
        .filter(|s| s.name == "sluice_partition_size_bytes" && s.label("topic") == Some(topic))
        .filter_map(|s| Some((s.label("partition")?.parse().ok()?, s.value)))
        .collect()
}

fn partition_rows(topic: &Value, sizes: &BTreeMap<i64, f64>, base: &str) -> Vec<PartitionRow> {
    let partitions = topic["partitions"].as_array().into_iter().flatten();
    partitions
        .map(|p| {
            let number = |k: &str| p[k].as_i64().unwrap_or(-1);
            let partition = number("partition");
            let (start, end) = (number("log_start_offset"), number("end_offset"));
            PartitionRow {
                partition,
                leader: number("leader"),
                log_start_offset: start,
                end_offset: end,
                records: (end - start).max(0),
                size: sizes
                    .get(&partition)
                    .map_or("-".into(), |b| view::bytes(*b)),
                browse: format!("{base}/messages?partition={partition}&from=-100"),
            }
        })
        .collect()
}

fn config_rows(configs: &Value) -> Vec<(String, String)> {
    let Some(configs) = configs.as_object() else {
        return Vec::new();
    };
    configs
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("(hidden)").to_string()))
        .collect()
}

#[derive(Deserialize)]
pub(crate) struct ConfigForm {
    key: String,
    #[serde(default)]
    value: String,
    /// `set` or `remove`.
    action: String,
}

pub(crate) async fn alter_config(
    State(state): State<Arc<AppState>>,
    Path(topic): Path<String>,
    Form(form): Form<ConfigForm>,
) -> Response {
    let value = match form.action.as_str() {
        "remove" => Value::Null,
        _ => Value::String(form.value.trim().to_string()),
    };
    let patch = json!({ form.key.trim(): value });
    let body = Ok(Bytes::from(patch.to_string()));
    let path = Ok(Path(topic.clone()));
    let answer = crate::topics::alter_configs(State(state.clone()), path, body).await;
    after(&state, &topic, answer.map(|_| ()), "config").await
}

#[derive(Deserialize)]
pub(crate) struct PartitionsForm {
    total: String,
}

pub(crate) async fn add_partitions(
    State(state): State<Arc<AppState>>,
    Path(topic): Path<String>,
    Form(form): Form<PartitionsForm>,
) -> Response {
    let grown = async {
        let total: i32 = optional_number("partitions", &form.total)?
            .ok_or_else(|| ApiError::bad_request("give the number of partitions wanted"))?;
        let body = Ok(Bytes::from(json!({ "total": total }).to_string()));
        let path = Ok(Path(topic.clone()));
        crate::topics::add_partitions(State(state.clone()), path, body).await
    };
    let answer = grown.await.map(|_| ());
    after(&state, &topic, answer, "partitions").await
}

/// After an action on `topic`: its page again (a redirect saying what was `done`), or the
/// page with the API's refusal.
async fn after(
    state: &Arc<AppState>,
    topic: &str,
    answer: Result<(), ApiError>,
    done: &str,
) -> Response {
    match answer {
        Ok(()) => see_other(&format!("/ui/topics/{}?done={done}", url_part(topic))),
        Err(e) => {
            let mut frame = Frame::new(topic, "topics");
            frame.failed(&e);
            topic_page(state, topic, frame, e.status).await
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct DeleteForm {
    #[serde(default)]
    confirm: String,
}

pub(crate) async fn delete(
    State(state): State<Arc<AppState>>,
    Path(topic): Path<String>,
    Form(form): Form<DeleteForm>,
) -> Response {
    if form.confirm.trim() != topic {
        let refused = ApiError::bad_request(format!(
            "not deleted: type the topic's name, {topic}, to confirm"
        ));
        return after(&state, &topic, Err(refused), "").await;
    }
    let path = Ok(Path(topic.clone()));
    match crate::topics::delete(State(state.clone()), path).await {
        Ok(_) => see_other(&format!(
            "/ui/topics?done=deleted&topic={}",
            url_part(&topic)
        )),
        Err(e) => after(&state, &topic, Err(e), "").await,
    }
}
