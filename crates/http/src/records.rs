//! `POST /v1/topics/{topic}/records`, `GET /v1/topics/{topic}/partitions/{p}/records` and
//! `DELETE` of the same (DeleteRecords).
//!
//! Produce body: `{"records":[{"key":..., "value":..., "headers":{...}, "partition":P}]}`.
//! With `value_format=text` (the default) a string `value` (or `key`) is stored as its UTF-8
//! bytes, any other JSON value as its JSON text; with `json` every value as its JSON text; with
//! `base64` a value is a base64 string. `value_base64` (`key_base64`) is always the bytes it
//! encodes; a missing or null value is a null value (a tombstone on a compacted topic). Reads
//! write values as their `value_format` asks (`sluice_client::json`). `headers` is an object of strings or a list
//! of `{"key","value"}`. Records without `partition` go by key (Kafka's murmur2) or, keyless,
//! to one partition per request. A partition's records go as batches of at most 512 KiB, so a
//! request of 10,000 records fits the default `max.message.bytes`. Every record is
//! acknowledged with `acks=all`: the answer comes once the records are durable.

use crate::error::{ApiError, ApiResult};
use crate::{AppState, body_json};
use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};
use sluice_client::Client;
use sluice_client::data::{self, Acks};
use sluice_client::json::{ValueFormat, decode_base64, record_to_json_as};
use sluice_client::partitioner::partition_for_key;
use sluice_client::position::{Start, parse_start, start_offset, trim_offset};
use sluice_record::{Record, RecordHeader, encode_records};
use sluice_types::limits::HTTP_RECORDS_PER_REQUEST_MAX;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProduceBody {
    records: Vec<InRecord>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct InRecord {
    key: Option<Value>,
    key_base64: Option<String>,
    value: Option<Value>,
    value_base64: Option<String>,
    headers: Option<InHeaders>,
    partition: Option<i32>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub(crate) enum InHeaders {
    Object(BTreeMap<String, String>),
    List(Vec<InHeader>),
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct InHeader {
    key: String,
    value: Option<String>,
}

/// A record ready to encode.
struct Outgoing {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<String>)>,
}

/// The bytes a `field` / `field_base64` pair stands for, `format` saying how a JSON value
/// becomes bytes: `text` stores a string as its UTF-8 and anything else as its JSON text;
/// `json` stores every value as its JSON text (a string keeps its quotes); `base64` takes a
/// string of base64.
fn bytes_of(
    field: &str,
    json: Option<Value>,
    base64: Option<String>,
    format: ValueFormat,
) -> ApiResult<Option<Vec<u8>>> {
    match (json, base64) {
        (Some(_), Some(_)) => Err(ApiError::bad_request(format!(
            "give {field} or {field}_base64, not both"
        ))),
        (None | Some(Value::Null), None) => Ok(None),
        (Some(Value::String(s)), None) if format == ValueFormat::Base64 => decode_base64(&s)
            .map(Some)
            .map_err(|e| ApiError::bad_request(format!("{field} (value_format=base64): {e}"))),
        (Some(_), None) if format == ValueFormat::Base64 => Err(ApiError::bad_request(format!(
            "{field}: with value_format=base64 a value is a base64 string"
        ))),
        (Some(Value::String(s)), None) if format == ValueFormat::Text => Ok(Some(s.into_bytes())),
        (Some(other), None) => Ok(Some(other.to_string().into_bytes())),
        (None, Some(b)) => decode_base64(&b)
            .map(Some)
            .map_err(|e| ApiError::bad_request(format!("{field}_base64: {e}"))),
    }
}

/// Produce records (acknowledged once durable, acks=all).
#[utoipa::path(post, path = "/v1/topics/{topic}/records", operation_id = "produce_records", tag = "records", params(("topic" = String, Path), ProduceParams), request_body = ProduceBody, responses((status = 200, description = "durable (acks=all)", body = crate::api::Produced), (status = "4XX", description = "the request was refused", body = crate::api::ErrorBody), (status = "5XX", description = "the broker failed or is unavailable", body = crate::api::ErrorBody)))]
pub async fn produce(
    State(state): State<Arc<AppState>>,
    path: Result<Path<String>, PathRejection>,
    params: Result<Query<ProduceParams>, QueryRejection>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<Json<Value>> {
    let Path(topic) = path.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let Query(params) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let format = value_format(params.value_format.as_deref())?;
    let body: ProduceBody = body_json(body)?;
    if body.records.is_empty() || body.records.len() > HTTP_RECORDS_PER_REQUEST_MAX {
        return Err(ApiError::bad_request(format!(
            "a produce carries 1 to {HTTP_RECORDS_PER_REQUEST_MAX} records, not {}",
            body.records.len()
        )));
    }
    let mut records = Vec::with_capacity(body.records.len());
    let mut chosen = Vec::with_capacity(body.records.len());
    for r in body.records {
        chosen.push(r.partition);
        records.push(Outgoing {
            key: bytes_of("key", r.key, r.key_base64, ValueFormat::Text)?,
            value: bytes_of("value", r.value, r.value_base64, format)?,
            headers: match r.headers {
                None => Vec::new(),
                Some(InHeaders::Object(map)) => {
                    map.into_iter().map(|(k, v)| (k, Some(v))).collect()
                }
                Some(InHeaders::List(list)) => list.into_iter().map(|h| (h.key, h.value)).collect(),
            },
        });
    }
    let offsets = state
        .pool
        .with(async |client: &mut Client| -> ApiResult<Vec<(i32, i64)>> {
            send_records(client, &topic, records, chosen).await
        })
        .await?;
    let offsets: Vec<Value> = offsets
        .into_iter()
        .map(|(partition, offset)| json!({"partition": partition, "offset": offset}))
        .collect();
    Ok(Json(json!({ "offsets": offsets })))
}

/// Groups records by partition, sends each partition's as batches of at most
/// `BATCH_BYTES_TARGET`, and returns each record's (partition, offset) in the order given.
/// Batches go one after another: if one fails, those before it are written (as with any
/// producer outside a transaction) and the error says which.
async fn send_records(
    client: &mut Client,
    topic: &str,
    records: Vec<Outgoing>,
    chosen: Vec<Option<i32>>,
) -> ApiResult<Vec<(i32, i64)>> {
    let partitions = client.partitions(topic, true).await?.len() as i32;
    let keyless = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0) as i32)
        .rem_euclid(partitions);
    let mut by_partition: BTreeMap<i32, Vec<usize>> = BTreeMap::new();
    for (i, (record, wanted)) in records.iter().zip(&chosen).enumerate() {
        let p = match (wanted, &record.key) {
            (Some(p), _) => *p,
            (None, Some(key)) => partition_for_key(key, partitions),
            (None, None) => keyless,
        };
        if !(0..partitions).contains(&p) {
            return Err(ApiError::bad_request(format!(
                "topic {topic} has partitions 0 to {}; there is no partition {p}",
                partitions - 1
            )));
        }
        by_partition.entry(p).or_default().push(i);
    }
    let timestamp = sluice_types::now_ms();
    let mut out = vec![(0, 0); records.len()];
    for (partition, indexes) in by_partition {
        for chunk in batches_of(&records, &indexes) {
            let base = send_batch(client, topic, partition, &records, chunk, timestamp).await?;
            for (n, &i) in chunk.iter().enumerate() {
                out[i] = (partition, base + n as i64);
            }
        }
    }
    Ok(out)
}

/// Largest batch the gateway builds, well under Kafka's default `max.message.bytes` (1 MiB):
/// a request's records for one partition go in as many batches as they need. (A single record
/// larger than this still goes alone, for topics that allow it.)
const BATCH_BYTES_TARGET: usize = 512 * 1024;

/// A record's encoded size, near enough: its bytes plus the varints around them.
fn encoded_bytes(record: &Outgoing) -> usize {
    let headers: usize = record
        .headers
        .iter()
        .map(|(k, v)| k.len() + v.as_ref().map_or(0, String::len) + 10)
        .sum();
    record.key.as_ref().map_or(0, Vec::len)
        + record.value.as_ref().map_or(0, Vec::len)
        + headers
        + 32
}

/// Splits `indexes` (records of one partition, in order) into runs of at most
/// `BATCH_BYTES_TARGET` encoded bytes each.
fn batches_of<'a>(records: &[Outgoing], indexes: &'a [usize]) -> Vec<&'a [usize]> {
    let mut runs = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (n, &i) in indexes.iter().enumerate() {
        let size = encoded_bytes(&records[i]);
        if n > start && bytes + size > BATCH_BYTES_TARGET {
            runs.push(&indexes[start..n]);
            (start, bytes) = (n, 0);
        }
        bytes += size;
    }
    runs.push(&indexes[start..]);
    runs
}

/// Sends the records at `indexes` as one batch; returns the base offset it got.
async fn send_batch(
    client: &mut Client,
    topic: &str,
    partition: i32,
    records: &[Outgoing],
    indexes: &[usize],
    timestamp: i64,
) -> ApiResult<i64> {
    let batch: Vec<Record<'_>> = indexes
        .iter()
        .enumerate()
        .map(|(n, &i)| Record {
            offset: n as i64,
            timestamp,
            key: records[i].key.as_deref(),
            value: records[i].value.as_deref(),
            headers: records[i]
                .headers
                .iter()
                .map(|(k, v)| RecordHeader {
                    key: k.as_bytes(),
                    value: v.as_deref().map(str::as_bytes),
                })
                .collect(),
        })
        .collect();
    let encoded = Bytes::from(encode_records(&batch));
    Ok(data::produce(client, topic, partition, encoded, Acks::All)
        .await?
        .unwrap_or(-1))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ProduceParams {
    /// How each record's `value` becomes bytes: text (default: a string as its UTF-8, any other
    /// JSON as its JSON text), json (every value as its JSON text, so a reader asking for json
    /// gets it back as posted) or base64 (a base64 string).
    value_format: Option<String>,
}

/// `value_format`, text when absent.
pub(crate) fn value_format(name: Option<&str>) -> ApiResult<ValueFormat> {
    name.map_or(Ok(ValueFormat::Text), |n| {
        ValueFormat::parse(n).map_err(ApiError::bad_request)
    })
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct FetchParams {
    /// First offset wanted (default: the start of the partition).
    offset: Option<i64>,
    /// Where to start instead of `offset`: earliest, latest, an offset, -N (the last N
    /// records) or @TIME (RFC 3339, a date, epoch ms, or a time ago like @-1h).
    from: Option<String>,
    /// How values are written: text (default), json (the JSON they hold) or base64.
    value_format: Option<String>,
    /// Most records returned (default 100).
    max: Option<usize>,
    /// How long to wait for a record when there is none yet (default 0).
    wait_ms: Option<u64>,
}

/// Read a partition's records from an offset or a time.
#[utoipa::path(get, path = "/v1/topics/{topic}/partitions/{partition}/records", operation_id = "fetch_records", tag = "records", params(("topic" = String, Path), ("partition" = i32, Path), FetchParams), responses((status = 200, description = "records from the offset", body = crate::api::Records), (status = "4XX", description = "the request was refused", body = crate::api::ErrorBody), (status = "5XX", description = "the broker failed or is unavailable", body = crate::api::ErrorBody)))]
pub async fn fetch(
    State(state): State<Arc<AppState>>,
    path: Result<Path<(String, i32)>, PathRejection>,
    params: Result<Query<FetchParams>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Path((topic, partition)) = path.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let Query(params) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let (max, wait) = read_limits(params.max, params.wait_ms)?;
    if params.offset.is_some_and(|o| o < 0) {
        return Err(ApiError::bad_request("offset is not negative"));
    }
    let from = match (params.offset, params.from.as_deref()) {
        (Some(_), Some(_)) => return Err(ApiError::bad_request("give offset or from, not both")),
        (Some(offset), None) => Start::Offset(offset),
        (None, Some(text)) => parse_start(text).map_err(ApiError::bad_request)?,
        (None, None) => Start::Earliest,
    };
    let format = value_format(params.value_format.as_deref())?;
    let body = state
        .pool
        .with(async |client: &mut Client| -> ApiResult<Value> {
            let offset = start_offset(client, &topic, partition, from).await?;
            read_records(client, &topic, partition, offset, max, wait, format).await
        })
        .await?;
    Ok(Json(body))
}

/// Checks a read's `max` (default 100) and `wait_ms` (default 0) against their limits.
pub(crate) fn read_limits(
    max: Option<usize>,
    wait_ms: Option<u64>,
) -> ApiResult<(usize, Duration)> {
    let max = max.unwrap_or(100);
    if max == 0 || max > HTTP_RECORDS_PER_REQUEST_MAX {
        return Err(ApiError::bad_request(format!(
            "max is 1 to {HTTP_RECORDS_PER_REQUEST_MAX}"
        )));
    }
    let wait_ms = wait_ms.unwrap_or(0);
    if wait_ms > sluice_types::limits::FETCH_WAIT_MS_MAX {
        return Err(ApiError::bad_request(format!(
            "wait_ms is at most {}",
            sluice_types::limits::FETCH_WAIT_MS_MAX
        )));
    }
    Ok((max, Duration::from_millis(wait_ms)))
}

/// Up to `max` records from `offset`, as the fetch answer's JSON.
async fn read_records(
    client: &mut Client,
    topic: &str,
    partition: i32,
    offset: i64,
    max: usize,
    wait: Duration,
    format: ValueFormat,
) -> ApiResult<Value> {
    let fetched = data::fetch_partitions(client, topic, &[(partition, offset)], wait, 1024 * 1024)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::not_found(format!("no partition {partition} in {topic}")))?;
    let fetched = fetched.result?;
    let mut records = Vec::new();
    let mut next_offset = offset;
    data::for_each_record(&fetched.records, offset, |r| {
        if records.len() < max {
            records.push(record_to_json_as(None, None, r, format));
            next_offset = r.offset + 1;
        }
    })?;
    Ok(json!({
        "records": records,
        "next_offset": next_offset,
        "high_watermark": fetched.high_watermark,
    }))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeleteRecordsParams {
    /// The partition's new first offset: an offset N, `end` (everything there is), -N (keep the
    /// last N records) or @TIME (delete what is older).
    before: String,
}

/// Delete the records before an offset.
///
/// DeleteRecords: the partition then starts at `before`. An offset past the end is refused
/// with OFFSET_OUT_OF_RANGE.
#[utoipa::path(delete, path = "/v1/topics/{topic}/partitions/{partition}/records", operation_id = "delete_records", tag = "records", params(("topic" = String, Path), ("partition" = i32, Path), DeleteRecordsParams), responses((status = 200, description = "the partition's new start", body = crate::api::RecordsDeleted), (status = "4XX", description = "the request was refused", body = crate::api::ErrorBody), (status = "5XX", description = "the broker failed or is unavailable", body = crate::api::ErrorBody)))]
pub async fn delete_records(
    State(state): State<Arc<AppState>>,
    path: Result<Path<(String, i32)>, PathRejection>,
    params: Result<Query<DeleteRecordsParams>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Path((topic, partition)) = path.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let Query(params) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let before = parse_start(&params.before).map_err(ApiError::bad_request)?;
    let start = state
        .pool
        .with(async |client: &mut Client| -> ApiResult<i64> {
            let offset = trim_offset(client, &topic, partition, before).await?;
            Ok(data::delete_records(client, &topic, partition, offset).await?)
        })
        .await?;
    Ok(Json(
        json!({"partition": partition, "log_start_offset": start}),
    ))
}
