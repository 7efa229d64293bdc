//! From a request frame to the future of its response.
//!
//! `dispatch` runs on the connection's reader task, in request order. A handler does its
//! order-sensitive work (appending a produce's batches) before it returns, and returns a
//! future for the rest (waiting for an fsync, or for data to arrive); `dispatch` runs that
//! future once, up to its first wait, so that work a handler does inside it (a group or
//! transaction command) takes effect in request order too (`start`). The writer task awaits
//! the futures in order, so responses leave in request order while the reader goes on. A
//! handler whose order-sensitive work must wait (a produce whose batch another broker must
//! vouch for first) holds the reader until it is done (`hold_reader`).

use crate::authorization::Caller;
use crate::handlers;
use crate::metrics::{Metrics, ResponseErrors};
use crate::server::{Broker, Endpoint};
use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, FetchRequest, FetchResponse};
use kafka_protocol::protocol::{Decodable, Encodable};
use sluice_protocol::{
    ProtocolError, RequestFrame, decode_body, decode_request, encode_fetch_response,
    encode_response, peek_header,
};
use sluice_types::limits::{REQUEST_FRAME_BYTES_MAX_NOT_PRODUCE, RESPONSE_FRAME_BYTES_MAX};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// What the writer does with a finished request.
#[derive(Debug)]
pub(crate) enum Reply {
    Frame(Bytes),
    /// A frame in pieces, written one after another (a Fetch response around its records).
    Pieces(Vec<Bytes>),
    /// `acks=0` produce: Kafka sends no response at all.
    Nothing,
    /// The response could not be built; the connection is closed rather than left hanging.
    Close,
}

pub(crate) type Pending = Pin<Box<dyn Future<Output = Reply> + Send>>;

type Hold = Pin<Box<dyn Future<Output = ()> + Send>>;

tokio::task_local! {
    /// What the connection's reader must wait for before it reads the next request.
    static HOLDS: std::cell::RefCell<Vec<Hold>>;
    /// Set by a handler whose request is not measured against `request_percentage` (a
    /// follower's fetch).
    static QUOTA_EXEMPT: std::cell::Cell<bool>;
}

/// Runs a connection's reader loop with room for holds.
pub(crate) async fn with_holds<F: Future>(reader: F) -> F::Output {
    let reader = QUOTA_EXEMPT.scope(std::cell::Cell::new(false), reader);
    HOLDS
        .scope(std::cell::RefCell::new(Vec::new()), reader)
        .await
}

/// Called by a handler on the reader task: its request is not measured against the
/// caller's `request_percentage` (traffic between brokers).
pub(crate) fn exempt_from_request_quota() {
    let _ = QUOTA_EXEMPT.try_with(|exempt| exempt.set(true));
}

/// Whether the last request's handler said it is exempt; clears it for the next.
fn take_quota_exemption() -> bool {
    QUOTA_EXEMPT
        .try_with(|exempt| exempt.replace(false))
        .unwrap_or(false)
}

/// Called by a handler on the reader task: the connection reads its next request only once
/// `until` is done. False outside a connection's reader (nothing is held).
pub(crate) fn hold_reader(until: impl Future<Output = ()> + Send + 'static) -> bool {
    HOLDS
        .try_with(|holds| holds.borrow_mut().push(Box::pin(until)))
        .is_ok()
}

/// Waits for what the last request's handler held the reader for.
pub(crate) async fn release_reader() {
    let holds = HOLDS
        .try_with(|holds| std::mem::take(&mut *holds.borrow_mut()))
        .unwrap_or_default();
    for hold in holds {
        hold.await;
    }
}

/// Decodes a frame's header and hands it to its handler. An error closes the connection, and
/// so does a frame too large for its API (decoding a request's arrays costs up to 32 bytes per
/// element of one or two bytes, so only Produce, whose records stay bytes, may be large).
pub(crate) fn dispatch(
    broker: &Arc<Broker>,
    frame: Bytes,
    endpoint: &Arc<Endpoint>,
    caller: &Caller,
) -> Result<Pending, ProtocolError> {
    if let Some((key, version, correlation_id)) = peek_header(&frame)
        && key == ApiKey::ApiVersions as i16
        && !handlers::supports(ApiKey::ApiVersions, version)
    {
        // KIP-511: a client newer than us asks with a version we do not know; answer in v0
        // with UNSUPPORTED_VERSION and our ranges, without decoding the rest.
        return Ok(ready(handlers::api_versions::unsupported_version_reply(
            correlation_id,
        )));
    }
    if let Some((key, _, _)) = peek_header(&frame)
        && key != ApiKey::Produce as i16
        && frame.len() > REQUEST_FRAME_BYTES_MAX_NOT_PRODUCE
    {
        return Err(ProtocolError::Malformed {
            what: "request",
            reason: format!(
                "a request other than Produce of {} bytes (more than {REQUEST_FRAME_BYTES_MAX_NOT_PRODUCE})",
                frame.len()
            ),
        });
    }
    let request = decode_request(frame)?;
    let version = request.header.request_api_version;
    if !handlers::supports(request.api_key, version) {
        return Err(ProtocolError::Malformed {
            what: "request",
            reason: format!(
                "{:?} v{version} is not supported (see ApiVersions)",
                request.api_key
            ),
        });
    }
    let api = request.api_key;
    let started = std::time::Instant::now();
    let measured = crate::quotas::RequestTime::start(broker, api, caller, &request.header);
    take_quota_exemption();
    let pending = handlers::route(broker, request, endpoint, caller)?;
    let metrics = broker.metrics.clone();
    let pending: Pending = Box::pin(async move {
        let reply = pending.await;
        metrics.request_done(api, started.elapsed());
        reply
    });
    let pending = match measured {
        Some(measured) if !take_quota_exemption() => {
            measured.around(pending, started.elapsed(), broker.clone())
        }
        _ => pending,
    };
    Ok(start(pending))
}

/// Runs a request's future up to its first wait now, on the reader task: whatever a handler
/// changes before it waits (a group's or a transaction's state, and the records that say so)
/// then takes effect in request order, as a produce's append does, and a Produce pipelined
/// after an AddPartitionsToTxn finds its partition in the transaction, as in Kafka. The first
/// poll's waker does nothing: a future registers the waker of its latest poll (the
/// `Future::poll` contract, which tokio's timers, channels and `Notify` keep), and the writer
/// polls it again with its own.
fn start(mut pending: Pending) -> Pending {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match pending.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(reply) => ready(reply),
        std::task::Poll::Pending => pending,
    }
}

pub(crate) fn ready(reply: Reply) -> Pending {
    Box::pin(std::future::ready(reply))
}

/// As `respond`, for Fetch: the response is written in pieces around its record bytes, which
/// are sent as storage read them instead of being copied into a response buffer.
pub(crate) fn respond_fetch<Fut>(
    metrics: &Arc<Metrics>,
    request: RequestFrame,
    handle: impl FnOnce(FetchRequest, i16) -> Fut,
) -> Result<Pending, ProtocolError>
where
    Fut: Future<Output = Option<FetchResponse>> + Send + 'static,
{
    let version = request.header.request_api_version;
    let correlation_id = request.header.correlation_id;
    let body = decode_body::<FetchRequest>(request.body, version)?;
    let response = handle(body, version);
    let metrics = metrics.clone();
    Ok(Box::pin(async move {
        let Some(response) = response.await else {
            return Reply::Nothing;
        };
        metrics.response_errors(ApiKey::Fetch, &response);
        match encode_fetch_response(version, correlation_id, response, RESPONSE_FRAME_BYTES_MAX) {
            Ok(pieces) => Reply::Pieces(pieces),
            Err(e) => {
                tracing::error!(version, error = %e, "cannot encode a fetch response; closing connection");
                Reply::Close
            }
        }
    }))
}

/// Decodes the body as `Req`, runs `handle` now, and returns the future of the encoded
/// response. `handle`'s own future yields `None` when no response is due (`acks=0`).
pub(crate) fn respond<Req, Resp, Fut>(
    metrics: &Arc<Metrics>,
    request: RequestFrame,
    handle: impl FnOnce(Req, i16) -> Fut,
) -> Result<Pending, ProtocolError>
where
    Req: Decodable,
    Resp: Encodable + ResponseErrors + Send + 'static,
    Fut: Future<Output = Option<Resp>> + Send + 'static,
{
    let version = request.header.request_api_version;
    let correlation_id = request.header.correlation_id;
    let api_key = request.api_key;
    let body = decode_body::<Req>(request.body, version)?;
    let response = handle(body, version);
    let metrics = metrics.clone();
    Ok(Box::pin(async move {
        let Some(response) = response.await else {
            return Reply::Nothing;
        };
        metrics.response_errors(api_key, &response);
        match encode_response(api_key, version, correlation_id, &response) {
            Ok(frame) => Reply::Frame(frame),
            Err(e) => {
                tracing::error!(?api_key, version, error = %e, "cannot encode response; closing connection");
                Reply::Close
            }
        }
    }))
}
