//! `GET /v1/topics/{topic}/stream?from=...[&group=G]`: a live Server-Sent Events stream of a
//! topic's records, one event per record; every partition, or with `group` the partitions the
//! group assigns this stream as a KIP-848 member (starting at the group's committed offsets,
//! committing what it has sent before each next fetch, leaving the group when the client goes):
//!
//! ```text
//! event: record
//! id: 2-41                      partition-offset
//! data: {"partition":2,"offset":41,"timestamp":...,"key":...,"value":...,"headers":[...]}
//! ```
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
use sluice_client::json::record_to_json;
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
/// How long a stream's broker requests may take.
const BROKER_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StreamParams {
    /// earliest, latest (default), an offset, or @TIMESTAMP.
    from: Option<String>,
    /// Read as a member of this consumer group.
    group: Option<String>,
}

/// One stream's state between events.
struct Streaming {
    client: Client,
    topic: String,
    positions: BTreeMap<i32, i64>,
    ready: VecDeque<Event>,
    done: bool,
    member: Option<GroupMember>,
    _permit: OwnedSemaphorePermit,
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

#[utoipa::path(get, path = "/v1/topics/{topic}/stream", tag = "records", params(("topic" = String, Path), StreamParams), responses((status = 200, description = "Server-Sent Events: `event: record`, `id: partition-offset`, `data:` a record", content_type = "text/event-stream", body = String), (status = "4XX", description = "the request was refused", body = crate::api::ErrorBody), (status = "5XX", description = "the broker failed or is unavailable", body = crate::api::ErrorBody)))]
pub async fn stream(
    State(state): State<Arc<AppState>>,
    path: Result<Path<String>, PathRejection>,
    params: Result<Query<StreamParams>, QueryRejection>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let Path(topic) = path.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let Query(params) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let from = match params.from.as_deref() {
        None => Start::Latest,
        Some(text) => parse_start(text).map_err(ApiError::bad_request)?,
    };
    let permit = state
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
        })?;
    let mut client =
        Client::connect(&state.bootstrap, "sluice-http-stream", BROKER_TIMEOUT).await?;
    let (positions, member) = match params.group {
        None => (start_positions(&mut client, &topic, from).await?, None),
        Some(group) => {
            let reader = GroupReader::join(&mut client, &group, &topic, from).await?;
            (BTreeMap::new(), Some(GroupMember(Some(reader))))
        }
    };
    let streaming = Streaming {
        client,
        topic,
        positions,
        ready: VecDeque::new(),
        done: false,
        member,
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

async fn start_positions(
    client: &mut Client,
    topic: &str,
    from: Start,
) -> ApiResult<BTreeMap<i32, i64>> {
    let mut positions = BTreeMap::new();
    for p in client.partitions(topic, false).await? {
        positions.insert(p, start_offset(client, topic, p, from).await?);
    }
    Ok(positions)
}

impl Streaming {
    /// One long-polling fetch of every partition read; its records become events. A group
    /// member first commits what it sent and heartbeats.
    async fn fetch(&mut self) -> ApiResult<()> {
        if let Some(GroupMember(Some(reader))) = self.member.as_mut() {
            reader.positions = std::mem::take(&mut self.positions);
            let served = async {
                reader.commit().await?;
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
            let ready = &mut self.ready;
            let next = data::for_each_record(&records, f.offset, |r| {
                let json = record_to_json(None, Some(f.partition), r);
                ready.push_back(
                    Event::default()
                        .event("record")
                        .id(format!("{}-{}", f.partition, r.offset))
                        .data(json.to_string()),
                );
            })?;
            self.positions.insert(f.partition, next);
        }
        Ok(())
    }
}
