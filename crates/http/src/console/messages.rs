//! `/ui/topics/{topic}/messages`: the message browser. One partition at a time, from where
//! the reader says (`from`: earliest, latest, an offset, `-N` for the last N records, or
//! `@TIME`), at most `CONSOLE_RECORDS_PER_PAGE_MAX` records a page, optionally only those with
//! a key (in the partition Kafka's default partitioner puts that key, unless one is chosen).
//! Values that hold JSON are pretty-printed, other text shown as it is, binary as base64 or
//! hex. The live tail (script) follows `GET /v1/topics/{topic}/stream` and adds records as
//! they arrive. `/ui/topics/{topic}/produce`: a form that produces one record.
//!
//! Reads call `crate::records::fetch` (a page may take several: each reads at most what one
//! Fetch carries) and produce `crate::records::produce`, as the API does.

use super::view::{self, Binary, Shown};
use super::{Frame, html, see_other, url_part};
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
use sluice_types::limits::CONSOLE_RECORDS_PER_PAGE_MAX;
use std::sync::Arc;

/// Fetches one page may take before it shows what it has.
const FETCHES_PER_PAGE_MAX: usize = 32;

#[derive(Deserialize, Default)]
pub(crate) struct BrowseQuery {
    partition: Option<String>,
    from: Option<String>,
    key: Option<String>,
    max: Option<String>,
    binary: Option<String>,
    done: Option<String>,
}

pub(crate) struct Row {
    pub offset: i64,
    pub timestamp: String,
    pub key: Shown,
    pub value: Shown,
    pub headers: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "console/messages.html")]
struct Messages {
    frame: Frame,
    topic: String,
    base: String,
    /// Every partition, for the choice.
    partitions: Vec<i64>,
    partition: i64,
    from: String,
    key: String,
    max: usize,
    binary: &'static str,
    rows: Vec<Row>,
    next: Option<String>,
    high_watermark: i64,
}

pub(crate) async fn browse(
    State(state): State<Arc<AppState>>,
    Path(topic): Path<String>,
    Query(query): Query<BrowseQuery>,
) -> Response {
    let mut frame = Frame::new(format!("{topic}: messages"), "topics");
    if query.done.as_deref() == Some("produced") {
        frame.notice = Some("Produced: the record is the first shown".into());
    }
    let binary = Binary::parse(query.binary.as_deref());
    let from = nonempty(query.from.as_deref())
        .unwrap_or("earliest")
        .to_string();
    let key = nonempty(query.key.as_deref()).unwrap_or("").to_string();
    let mut page = Messages {
        frame,
        base: format!("/ui/topics/{}", url_part(&topic)),
        topic: topic.clone(),
        partitions: Vec::new(),
        partition: 0,
        from: from.clone(),
        key: key.clone(),
        max: 100,
        binary: binary.name(),
        rows: Vec::new(),
        next: None,
        high_watermark: 0,
    };
    let status = match read_page(&state, &mut page, &query, binary).await {
        Ok(()) => StatusCode::OK,
        Err(e) => {
            page.frame.failed(&e);
            e.status
        }
    };
    html(status, &page)
}

fn nonempty(text: Option<&str>) -> Option<&str> {
    text.map(str::trim).filter(|t| !t.is_empty())
}

/// Fills `page` with the records the query asks for.
async fn read_page(
    state: &Arc<AppState>,
    page: &mut Messages,
    query: &BrowseQuery,
    binary: Binary,
) -> Result<(), ApiError> {
    page.max = match nonempty(query.max.as_deref()) {
        None => 100,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=CONSOLE_RECORDS_PER_PAGE_MAX).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(format!("max is 1 to {CONSOLE_RECORDS_PER_PAGE_MAX}"))
            })?,
    };
    let path = Ok(Path(page.topic.clone()));
    let described = crate::topics::describe(State(state.clone()), path).await?;
    let partitions = described["partitions"].as_array().into_iter().flatten();
    page.partitions = partitions.filter_map(|p| p["partition"].as_i64()).collect();
    let count = page.partitions.len() as i32;
    page.partition = match nonempty(query.partition.as_deref()) {
        Some(text) => text
            .parse()
            .map_err(|_| ApiError::bad_request(format!("partition {text:?} is not a number")))?,
        None if !page.key.is_empty() && count > 0 => {
            let key = page.key.as_bytes();
            i64::from(sluice_client::partitioner::partition_for_key(key, count))
        }
        None => 0,
    };
    let mut from = page.from.clone();
    for _ in 0..FETCHES_PER_PAGE_MAX {
        let fetched = fetch(state, &page.topic, page.partition, &from, page.max).await?;
        page.high_watermark = fetched["high_watermark"].as_i64().unwrap_or(0);
        let records = fetched["records"].as_array().cloned().unwrap_or_default();
        let next = fetched["next_offset"].as_i64().unwrap_or(0);
        for record in &records {
            let wanted = page.key.is_empty() || record["key"].as_str() == Some(&page.key);
            if wanted && page.rows.len() < page.max {
                page.rows.push(row(record, binary));
            }
        }
        let at_end = records.is_empty() || next >= page.high_watermark;
        from = next.to_string();
        if at_end || page.rows.len() >= page.max {
            break;
        }
    }
    if from.parse::<i64>().is_ok_and(|n| n < page.high_watermark) {
        page.next = Some(from);
    }
    Ok(())
}

/// One fetch through the API's handler.
async fn fetch(
    state: &Arc<AppState>,
    topic: &str,
    partition: i64,
    from: &str,
    max: usize,
) -> Result<Value, ApiError> {
    let partition = i32::try_from(partition)
        .map_err(|_| ApiError::bad_request(format!("no partition {partition}")))?;
    let params = serde_json::from_value(json!({ "from": from, "max": max }))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let path = Ok(Path((topic.to_string(), partition)));
    let fetched = crate::records::fetch(State(state.clone()), path, Ok(Query(params))).await?;
    Ok(fetched.0)
}

fn row(record: &Value, binary: Binary) -> Row {
    let headers = record["headers"].as_array().into_iter().flatten();
    Row {
        offset: record["offset"].as_i64().unwrap_or(-1),
        timestamp: view::timestamp(record["timestamp"].as_i64().unwrap_or(0)),
        key: view::shown(record, "key", binary),
        value: view::shown(record, "value", binary),
        headers: headers
            .map(|h| {
                (
                    view::shown(h, "key", binary).text,
                    view::shown(h, "value", binary).text,
                )
            })
            .collect(),
    }
}

#[derive(Template)]
#[template(path = "console/produce.html")]
struct Produce {
    frame: Frame,
    topic: String,
    base: String,
    key: String,
    value: String,
    partition: String,
    headers: String,
}

impl Produce {
    /// The form for `topic`, filled with `form` (what was posted, to post again).
    fn page(topic: String, form: ProduceForm) -> Produce {
        Produce {
            frame: Frame::new(format!("{topic}: produce"), "topics"),
            base: format!("/ui/topics/{}", url_part(&topic)),
            topic,
            key: form.key,
            value: form.value,
            partition: form.partition,
            headers: form.headers,
        }
    }
}

pub(crate) async fn produce_form(Path(topic): Path<String>) -> Response {
    html(
        StatusCode::OK,
        &Produce::page(topic, ProduceForm::default()),
    )
}

#[derive(Deserialize, Default)]
pub(crate) struct ProduceForm {
    #[serde(default)]
    key: String,
    #[serde(default)]
    value: String,
    #[serde(default)]
    partition: String,
    /// `name=value` per line.
    #[serde(default)]
    headers: String,
}

pub(crate) async fn produce(
    State(state): State<Arc<AppState>>,
    Path(topic): Path<String>,
    Form(form): Form<ProduceForm>,
) -> Response {
    match produce_record(&state, &topic, &form).await {
        Ok((partition, offset)) => see_other(&format!(
            "/ui/topics/{}/messages?partition={partition}&from={offset}&done=produced",
            url_part(&topic)
        )),
        Err(e) => {
            let mut page = Produce::page(topic, form);
            page.frame.failed(&e);
            html(e.status, &page)
        }
    }
}

/// The record the form describes, produced through the API's handler: where it went.
async fn produce_record(
    state: &Arc<AppState>,
    topic: &str,
    form: &ProduceForm,
) -> Result<(i64, i64), ApiError> {
    let mut record = json!({ "value": form.value });
    if !form.key.is_empty() {
        record["key"] = form.key.clone().into();
    }
    if let Some(text) = nonempty(Some(&form.partition)) {
        let partition: i32 = text
            .parse()
            .map_err(|_| ApiError::bad_request(format!("partition {text:?} is not a number")))?;
        record["partition"] = partition.into();
    }
    let mut headers = Vec::new();
    for line in form
        .headers
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
    {
        let (name, value) = line.split_once('=').ok_or_else(|| {
            ApiError::bad_request(format!("header {line:?}: write it as name=value"))
        })?;
        headers.push(json!({"key": name.trim(), "value": value.trim()}));
    }
    if !headers.is_empty() {
        record["headers"] = headers.into();
    }
    let body = Ok(Bytes::from(json!({ "records": [record] }).to_string()));
    let params =
        serde_json::from_value(json!({})).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let path = Ok(Path(topic.to_string()));
    let produced =
        crate::records::produce(State(state.clone()), path, Ok(Query(params)), body).await?;
    let first = &produced["offsets"][0];
    Ok((
        first["partition"].as_i64().unwrap_or(0),
        first["offset"].as_i64().unwrap_or(0),
    ))
}
