//! `GET /v1/topics/{topic}/stream?from=...[&group=G[&ack=explicit]][&value_format=json]`: a
//! live Server-Sent Events stream of a topic's records, one event per record; every partition,
//! or with `group` the partitions the group assigns this stream as a KIP-848 member (starting at
//! the group's committed offsets, leaving the group when the client goes):
//!
//! ```text
//! event: record
//! id: 0:17,1:9,2:42             every partition's next offset, this record included
//! data: {"partition":2,"offset":41,"timestamp":...,"key":...,"value":...,"headers":[...]}
//! ```
//! An event's id says where the stream stands once that event is handled, so a client that
//! reconnects with `Last-Event-ID` (as browsers' EventSource do by themselves) goes on right
//! after it; partitions the id does not name start at `from`.
//!
//! A group stream commits what it has sent before each next fetch (`ack=auto`, the default).
//! With `ack=explicit` it commits only what the client acknowledged: its first event is
//! `event: member` with `{"group","stream_id"}`, and `POST
//! /v1/groups/{group}/streams/{stream_id}/ack` `{"event_id": ID}` acknowledges everything up to
//! and including that event. A reader that crashes loses nothing: what it did not acknowledge
//! goes to the group's next member.
//!
//! A stream holds a broker connection of its own (not the pool's) while the client listens,
//! long-polling one Fetch at a time; at most `HTTP_STREAMS_MAX` run at once. A broker error
//! ends the stream with an `event: error` whose data is the usual error JSON.

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use serde::Deserialize;
use sluice_client::Client;
use sluice_client::data;
use sluice_client::json::{ValueFormat, record_to_json_as};
use sluice_client::member::GroupReader;
use sluice_client::position::{Start, parse_start, start_offset};
use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OwnedSemaphorePermit;

/// How long one fetch of a stream waits for new records.
const STREAM_FETCH_WAIT: Duration = Duration::from_secs(1);
/// Bytes one fetch may bring back per partition.
const PARTITION_FETCH_BYTES: i32 = 1024 * 1024;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StreamParams {
    /// earliest, latest (default), an offset, -N (the last N records), or @TIME.
    from: Option<String>,
    /// Read as a member of this consumer group.
    group: Option<String>,
    /// With `group`: auto (default: commit what was sent) or explicit (commit what the client
    /// acknowledged at /v1/groups/{group}/streams/{stream_id}/ack).
    ack: Option<String>,
    /// How values are written: text (default), json (the JSON they hold) or base64.
    value_format: Option<String>,
}

/// One stream's state between events.
struct Streaming {
    client: Client,
    topic: String,
    positions: BTreeMap<i32, i64>,
    ready: VecDeque<Event>,
    done: bool,
    member: Option<GroupMember>,
    format: ValueFormat,
    /// With `ack=explicit`: the positions the client acknowledged, and the registration that
    /// routes its acknowledgements here (removed when the stream ends).
    acknowledged: Option<(tokio::sync::watch::Receiver<BTreeMap<i32, i64>>, AckRoute)>,
    _permit: OwnedSemaphorePermit,
}

/// The streams that take acknowledgements, by stream id.
#[derive(Default)]
pub(crate) struct AckRoutes(
    std::sync::Mutex<
        std::collections::HashMap<String, tokio::sync::watch::Sender<BTreeMap<i32, i64>>>,
    >,
);

impl AckRoutes {
    fn lock(
        &self,
    ) -> std::sync::MutexGuard<
        '_,
        std::collections::HashMap<String, tokio::sync::watch::Sender<BTreeMap<i32, i64>>>,
    > {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A stream's place in `AckRoutes`, given up when the stream ends.
struct AckRoute {
    routes: Arc<AppState>,
    stream_id: String,
}

impl Drop for AckRoute {
    fn drop(&mut self) {
        self.routes.stream_acks.lock().remove(&self.stream_id);
    }
}

/// `partition:next_offset` pairs, comma-separated: an event's id.
fn positions_id(positions: &BTreeMap<i32, i64>) -> String {
    let pairs: Vec<String> = positions.iter().map(|(p, o)| format!("{p}:{o}")).collect();
    pairs.join(",")
}

/// Parses an event id back into positions.
fn parse_positions_id(id: &str) -> ApiResult<BTreeMap<i32, i64>> {
    let bad = || {
        ApiError::bad_request(format!(
            "{id:?} is not an event id of this stream (partition:offset,...)"
        ))
    };
    let pairs = id.split(',').filter(|p| !p.is_empty());
    if pairs.clone().count() > sluice_types::limits::PARTITIONS_PER_TOPIC_MAX as usize {
        return Err(ApiError::bad_request(format!(
            "an event id names at most {} partitions",
            sluice_types::limits::PARTITIONS_PER_TOPIC_MAX
        )));
    }
    let mut positions = BTreeMap::new();
    for pair in pairs {
        let (p, o) = pair.split_once(':').ok_or_else(bad)?;
        let (p, o) = (
            p.parse::<i32>().map_err(|_| bad())?,
            o.parse::<i64>().map_err(|_| bad())?,
        );
        if p < 0 || o < 0 {
            return Err(bad());
        }
        positions.insert(p, o);
    }
    Ok(positions)
}

/// A stream's group membership; dropping it (the client went away) leaves the group so its
/// partitions move on at once.
struct GroupMember(Option<GroupReader>);

impl Drop for GroupMember {
    fn drop(&mut self) {
        if let Some(mut reader) = self.0.take() {
            tokio::spawn(async move { reader.membership.leave().await });
        }
    }
}

/// A place among the `HTTP_STREAMS_MAX` open streams (records' and views' alike), held for the
/// stream's life; 503 when they are all taken.
pub(crate) fn stream_permit(state: &AppState) -> ApiResult<tokio::sync::OwnedSemaphorePermit> {
    state
        .streams
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            error_code: "TOO_MANY_STREAMS".into(),
            message: format!(
                "{} streams are open, the most this server keeps",
                sluice_types::limits::HTTP_STREAMS_MAX
            ),
        })
}

/// Stream a topic's records as Server-Sent Events.
#[utoipa::path(get, path = "/v1/topics/{topic}/stream", operation_id = "stream_records", tag = "records", params(("topic" = String, Path), StreamParams), responses((status = 200, description = "Server-Sent Events: `event: record`, `id: partition-offset`, `data:` a record", content_type = "text/event-stream", body = String), (status = "4XX", description = "the request was refused", body = crate::api::ErrorBody), (status = "5XX", description = "the broker failed or is unavailable", body = crate::api::ErrorBody)))]
pub async fn stream(
    State(state): State<Arc<AppState>>,
    path: Result<Path<String>, PathRejection>,
    params: Result<Query<StreamParams>, QueryRejection>,
    headers: axum::http::HeaderMap,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let Path(topic) = path.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let Query(params) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let from = match params.from.as_deref() {
        None => Start::Latest,
        Some(text) => parse_start(text).map_err(ApiError::bad_request)?,
    };
    let format = crate::records::value_format(params.value_format.as_deref())?;
    let explicit = match (params.ack.as_deref(), &params.group) {
        (None | Some("auto"), _) => false,
        (Some("explicit"), Some(_)) => true,
        (Some("explicit"), None) => {
            return Err(ApiError::bad_request(
                "ack=explicit is for a group stream: add group=G",
            ));
        }
        (Some(other), _) => {
            return Err(ApiError::bad_request(format!(
                "ack is auto or explicit, not {other:?}"
            )));
        }
    };
    let resume = match headers.get("last-event-id") {
        None => BTreeMap::new(),
        Some(value) => parse_positions_id(value.to_str().map_err(|_| {
            ApiError::bad_request("Last-Event-ID is not an event id of this stream")
        })?)?,
    };
    let permit = stream_permit(&state)?;
    let mut client = state.pool.connect("sluice-http-stream").await?;
    let mut ready = VecDeque::new();
    let mut acknowledged = None;
    let (positions, member) = match params.group {
        None => (
            start_positions(&mut client, &topic, from, &resume).await?,
            None,
        ),
        Some(group) => {
            let reader = GroupReader::join(&mut client, &group, &topic, from).await?;
            if explicit {
                let stream_id = uuid::Uuid::new_v4().simple().to_string();
                let (sender, receiver) = tokio::sync::watch::channel(BTreeMap::new());
                state.stream_acks.lock().insert(stream_id.clone(), sender);
                let data = serde_json::json!({"group": group, "stream_id": stream_id});
                ready.push_back(Event::default().event("member").data(data.to_string()));
                let route = AckRoute {
                    routes: state.clone(),
                    stream_id,
                };
                acknowledged = Some((receiver, route));
            }
            (BTreeMap::new(), Some(GroupMember(Some(reader))))
        }
    };
    let streaming = Streaming {
        client,
        topic,
        positions,
        ready,
        done: false,
        member,
        format,
        acknowledged,
        _permit: permit,
    };
    let events = futures::stream::unfold(streaming, |mut s| async move {
        loop {
            if let Some(event) = s.ready.pop_front() {
                return Some((Ok(event), s));
            }
            if s.done {
                return None;
            }
            if let Err(e) = s.fetch().await {
                let body = serde_json::json!({"error_code": e.error_code, "message": e.message});
                s.ready
                    .push_back(Event::default().event("error").data(body.to_string()));
                s.done = true;
            }
        }
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

/// Where each partition starts: where `resume` (a `Last-Event-ID`) left it, else at `from`.
async fn start_positions(
    client: &mut Client,
    topic: &str,
    from: Start,
    resume: &BTreeMap<i32, i64>,
) -> ApiResult<BTreeMap<i32, i64>> {
    let mut positions = BTreeMap::new();
    for p in client.partitions(topic, false).await? {
        let position = match resume.get(&p) {
            Some(&offset) => offset,
            None => start_offset(client, topic, p, from).await?,
        };
        positions.insert(p, position);
    }
    Ok(positions)
}

#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AckBody {
    /// The id of the last event the client has handled: it and every event before it are
    /// acknowledged.
    event_id: String,
}

/// Acknowledge a group stream's events up to one (`ack=explicit`).
///
/// The stream commits the acknowledged positions before its next fetch. Acknowledging an
/// older event than one already acknowledged changes nothing.
#[utoipa::path(post, path = "/v1/groups/{group}/streams/{stream}/ack", operation_id = "ack_stream_events", tag = "records", params(("group" = String, Path), ("stream" = String, Path)), request_body = AckBody, responses((status = 204, description = "acknowledged; committed before the stream's next fetch"), (status = "4XX", description = "the request was refused", body = crate::api::ErrorBody), (status = "5XX", description = "the broker failed or is unavailable", body = crate::api::ErrorBody)))]
pub async fn ack(
    State(state): State<Arc<AppState>>,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Result<bytes::Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<StatusCode> {
    let Path((group, stream_id)) = path.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let body: AckBody = crate::body_json(body)?;
    let positions = parse_positions_id(&body.event_id)?;
    let routes = state.stream_acks.lock();
    let sender = routes.get(&stream_id).ok_or_else(|| {
        ApiError::not_found(format!(
            "no stream {stream_id} of group {group} takes acknowledgements here (it ended, or was opened without ack=explicit)"
        ))
    })?;
    sender.send_modify(|acked| {
        for (p, o) in positions {
            let entry = acked.entry(p).or_insert(o);
            *entry = (*entry).max(o);
        }
    });
    Ok(StatusCode::NO_CONTENT)
}

impl Streaming {
    /// One long-polling fetch of every partition read; its records become events. A group
    /// member first commits what it sent and heartbeats.
    async fn fetch(&mut self) -> ApiResult<()> {
        if let Some(GroupMember(Some(reader))) = self.member.as_mut() {
            reader.positions = std::mem::take(&mut self.positions);
            let acknowledged = self
                .acknowledged
                .as_mut()
                .map(|(receiver, _)| receiver.borrow_and_update().clone());
            let served = async {
                match &acknowledged {
                    None => reader.commit().await?,
                    Some(acked) => reader.commit_acknowledged(acked).await?,
                }
                reader.refresh(&mut self.client).await
            }
            .await;
            self.positions = reader.positions.clone();
            served?;
            if self.positions.is_empty() {
                tokio::time::sleep_until(reader.membership.next_heartbeat()).await;
                return Ok(());
            }
        }
        let wanted: Vec<(i32, i64)> = self.positions.iter().map(|(p, o)| (*p, *o)).collect();
        let fetched = data::fetch_partitions(
            &mut self.client,
            &self.topic,
            &wanted,
            STREAM_FETCH_WAIT,
            PARTITION_FETCH_BYTES,
        )
        .await?;
        for f in fetched {
            let records = f.result?.records;
            let (ready, positions, format) = (&mut self.ready, &mut self.positions, self.format);
            let next = data::for_each_record(&records, f.offset, |r| {
                positions.insert(f.partition, r.offset + 1);
                let json = record_to_json_as(None, Some(f.partition), r, format);
                ready.push_back(
                    Event::default()
                        .event("record")
                        .id(positions_id(positions))
                        .data(json.to_string()),
                );
            })?;
            self.positions.insert(f.partition, next);
        }
        Ok(())
    }
}
