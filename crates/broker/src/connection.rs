//! One client connection: a reader task that frames and dispatches requests, and a writer
//! that sends responses in request order.
//!
//! Backpressure: at most `REQUESTS_IN_FLIGHT_PER_CONNECTION_MAX` responses, and at most
//! `socket.request.max.bytes` of their request frames, may be pending; the reader stops
//! reading until the writer catches up. Frames still arriving share one broker-wide budget
//! (`Broker::unfinished_frame_bytes`, and one of its own for frames of at most
//! `SMALL_FRAME_BYTES_MAX`).
//!
//! Timeouts: a connection with no request pending and no byte arriving for
//! `connections_max_idle_ms` is closed, and so is one whose frame, once begun, has not fully
//! arrived within `request_timeout_ms` (a client trickling one byte a second). A malformed
//! frame or a failed write ends the connection with one log line. On shutdown the reader stops taking new requests and the
//! writer answers the ones already taken.
//!
//! Authentication: every frame passes the connection's `Session` first (`authentication`),
//! which answers the SASL requests itself, closes a SASL listener's connection that sends
//! anything else before it has authenticated, and bounds what it may send until then.

use crate::authentication::{Admit, Session};
use crate::dispatch::{Pending, Reply, dispatch};
use crate::server::{Broker, Endpoint};
use bytes::{BufMut, Bytes, BytesMut};
use sluice_protocol::{FRAME_LENGTH_BYTES, frame_length};
use sluice_types::limits::{REQUESTS_IN_FLIGHT_PER_CONNECTION_MAX, SMALL_FRAME_BYTES_MAX};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader,
    BufWriter,
};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

pub(crate) async fn serve(
    broker: Arc<Broker>,
    stream: TcpStream,
    peer: SocketAddr,
    endpoint: Arc<Endpoint>,
    shutdown: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let (read_half, write_half) = stream.into_split();
    serve_halves(
        broker,
        (read_half, write_half),
        peer,
        endpoint,
        shutdown,
        None,
    )
    .await;
}

/// A connection over any stream (a TLS one): split, then served as a TCP one is.
/// `principal`: who the stream says the client is (a client certificate's subject).
pub(crate) async fn serve_stream<S>(
    broker: Arc<Broker>,
    stream: S,
    peer: SocketAddr,
    endpoint: Arc<Endpoint>,
    shutdown: CancellationToken,
    principal: Option<String>,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let halves = tokio::io::split(stream);
    serve_halves(broker, halves, peer, endpoint, shutdown, principal).await;
}

async fn serve_halves<R, W>(
    broker: Arc<Broker>,
    (read_half, write_half): (R, W),
    peer: SocketAddr,
    endpoint: Arc<Endpoint>,
    shutdown: CancellationToken,
    principal: Option<String>,
) where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (tx, rx) = mpsc::channel::<InFlight>(REQUESTS_IN_FLIGHT_PER_CONNECTION_MAX);
    let writer = tokio::spawn(write_responses(write_half, rx));
    let mut frames = FrameReader {
        reader: BufReader::with_capacity(64 * 1024, read_half),
        buffer: BytesMut::new(),
        // Bytes of request frames whose responses are not yet written: a pending response may
        // still borrow from its frame, so this is what bounds one connection's memory.
        pending_bytes: Arc::new(Semaphore::new(
            broker.config.request_frame_bytes_max as usize,
        )),
    };
    let internal = endpoint.name == crate::server::INTERNAL_LISTENER;
    let principal = match principal {
        Some(principal) => principal,
        None if internal => crate::authentication::INTERNAL.to_string(),
        None => crate::authentication::ANONYMOUS.to_string(),
    };
    let mut session = Session::new(&broker, endpoint.sasl, internal, &principal, peer);
    if endpoint.tls && broker.authentication.delegation_cluster_wide {
        session.offer_remote_delegation();
    }
    crate::dispatch::with_holds(async {
        loop {
            let frame_max = session.frame_bytes_max(broker.config.request_frame_bytes_max);
            let next = frames.next(&broker, &shutdown, frame_max);
            let read = match session.authenticate_by() {
                None => next.await,
                Some(by) => tokio::time::timeout_at(by.into(), next)
                    .await
                    .unwrap_or(Err(Stop::NotAuthenticated)),
            };
            let (frame, permit) = match read {
                Ok(read) => read,
                Err(stop) => {
                    stop.report(&broker, peer);
                    break;
                }
            };
            let (pending, then_close) = match session.admit(&broker, frame) {
                Admit::Dispatch(frame) => match dispatch(&broker, frame, &endpoint, session.caller()) {
                    Ok(pending) => (pending, false),
                    Err(e) => {
                        tracing::warn!(%peer, error = %e, "malformed request; closing connection");
                        break;
                    }
                },
                Admit::Answer(pending) => (pending, false),
                Admit::AnswerAndClose(pending) => (pending, true),
                Admit::Close(reason) => {
                    broker.metrics.connection_closed(reason);
                    break;
                }
            };
            if tx.send((pending, permit)).await.is_err() || then_close {
                break; // the writer failed, or the answer is the last
            }
            // A held request's work runs in its own task and its response is already queued:
            // at shutdown the reader stops without waiting for it (the writer still does).
            tokio::select! {
                _ = crate::dispatch::release_reader() => {}
                _ = shutdown.cancelled() => break,
            }
        }
    })
    .await;
    drop(tx);
    let _ = writer.await;
}

/// Reads one connection's request frames, under its limits and timeouts.
struct FrameReader<R> {
    reader: BufReader<R>,
    buffer: BytesMut,
    pending_bytes: Arc<Semaphore>,
}

/// Why a connection stops reading.
enum Stop {
    /// The client closed the connection, or the broker is shutting down.
    Closed,
    /// Nothing arrived for `connections_max_idle_ms` while no response was pending.
    Idle,
    /// A frame, once begun, did not arrive whole within `request_timeout_ms`.
    TimedOut { length: Option<usize> },
    /// A length prefix out of bounds.
    BadLength(sluice_protocol::ProtocolError),
    /// A SASL listener's connection did not authenticate within `request_timeout_ms`.
    NotAuthenticated,
}

impl Stop {
    fn report(self, broker: &Broker, peer: SocketAddr) {
        match self {
            Stop::Closed => {}
            Stop::Idle => {
                tracing::debug!(%peer, "closing idle connection (connections_max_idle_ms)");
                broker.metrics.connection_closed("idle");
            }
            Stop::TimedOut { length } => {
                tracing::debug!(%peer, ?length, "closing connection: frame not sent within request_timeout_ms");
                broker.metrics.connection_closed("request_timeout");
            }
            Stop::BadLength(e) => tracing::warn!(%peer, error = %e, "closing connection"),
            Stop::NotAuthenticated => {
                tracing::info!(%peer, "closing connection: not authenticated within request_timeout_ms");
                broker
                    .metrics
                    .connection_closed("sasl_authentication_timeout");
            }
        }
    }
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// The next request frame, of at most `max` bytes, with its share of the connection's
    /// pending-bytes budget.
    async fn next(
        &mut self,
        broker: &Broker,
        shutdown: &CancellationToken,
        max: u32,
    ) -> Result<(Bytes, OwnedSemaphorePermit), Stop> {
        let configured = broker.config.request_frame_bytes_max;
        let idle_max = Duration::from_millis(broker.config.connections_max_idle_ms);
        let frame_time_max = Duration::from_millis(broker.config.request_timeout_ms);
        let pending = &self.pending_bytes;
        let idle = || pending.available_permits() == configured as usize;
        match next_frame_start(&mut self.reader, idle_max, idle, shutdown).await {
            FrameStart::Begun => {}
            FrameStart::Closed => return Err(Stop::Closed),
            FrameStart::Idle => return Err(Stop::Idle),
        }
        let mut prefix = [0u8; FRAME_LENGTH_BYTES];
        match within(frame_time_max, self.reader.read_exact(&mut prefix)).await {
            Some(Ok(_)) => {}
            Some(Err(_)) => return Err(Stop::Closed),
            None => return Err(Stop::TimedOut { length: None }),
        }
        let length = frame_length(prefix, max).map_err(Stop::BadLength)?;
        let permit = (self.pending_bytes.clone())
            .acquire_many_owned(length as u32)
            .await
            .map_err(|_| Stop::Closed)?;
        // The frame's time runs from here, waiting for the shared budget included: a frame
        // queued behind stalled ones is dropped at `request_timeout_ms` like they are, instead
        // of starting a fresh timer when its turn comes (eight stalled frames would otherwise
        // hold the connection for four timeouts in a row).
        let read = self.read_under_budget(broker, length);
        match within(frame_time_max, read).await {
            Some(Ok(frame)) => Ok((frame, permit)),
            Some(Err(_)) => Err(Stop::Closed), // the client closed the connection mid-frame
            None => Err(Stop::TimedOut {
                length: Some(length),
            }),
        }
    }

    /// Reads a frame body once its bytes fit the broker-wide budget of frames still arriving.
    /// A client that announces a large frame and stalls holds its share only until its frame
    /// times out. Large and small frames have budgets of their own, so frames stalled at the
    /// large budget never hold back the small requests most clients send.
    async fn read_under_budget(
        &mut self,
        broker: &Broker,
        length: usize,
    ) -> std::io::Result<Bytes> {
        let budget = if length > SMALL_FRAME_BYTES_MAX {
            &broker.unfinished_frame_bytes
        } else {
            &broker.unfinished_small_frame_bytes
        };
        let _unfinished = budget
            .acquire_many(length as u32)
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))?;
        read_frame(&mut self.reader, &mut self.buffer, length).await
    }
}

enum FrameStart {
    /// The first bytes of a frame are here.
    Begun,
    /// The client closed the connection, or the broker is shutting down.
    Closed,
    /// Nothing arrived for `connections_max_idle_ms` while no response was pending.
    Idle,
}

/// Waits for the first byte of the next frame. A connection counts as idle only while none of
/// its requests awaits a response (a long-poll fetch is not idleness).
async fn next_frame_start(
    reader: &mut (impl AsyncBufRead + Unpin),
    idle_max: Duration,
    idle: impl Fn() -> bool,
    shutdown: &CancellationToken,
) -> FrameStart {
    loop {
        tokio::select! {
            // `fill_buf` is cancel safe: nothing is consumed until the frame is read.
            r = reader.fill_buf() => {
                return match r {
                    Ok(bytes) if !bytes.is_empty() => FrameStart::Begun,
                    _ => FrameStart::Closed,
                };
            }
            _ = tokio::time::sleep(idle_max) => {
                if idle() {
                    return FrameStart::Idle;
                }
            }
            _ = shutdown.cancelled() => return FrameStart::Closed,
        }
    }
}

/// `future`'s output, or None if it took longer than `limit`.
async fn within<T>(limit: Duration, future: impl Future<Output = T>) -> Option<T> {
    tokio::time::timeout(limit, future).await.ok()
}

/// Reads a frame body of `length` bytes (already checked against the limit) into a buffer
/// that is not zeroed first.
async fn read_frame(
    reader: &mut (impl AsyncRead + Unpin),
    buffer: &mut BytesMut,
    length: usize,
) -> std::io::Result<Bytes> {
    // `reserve` reuses the buffer's allocation once the previous frame's views are dropped
    // (a produce's batches are written before the next frame is read), so a busy connection
    // stops taking fresh pages from the kernel for every frame.
    buffer.clear();
    buffer.reserve(length);
    while buffer.len() < length {
        let remaining = length - buffer.len();
        if reader
            .read_buf(&mut (&mut *buffer).limit(remaining))
            .await?
            == 0
        {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
    Ok(buffer.split_to(length).freeze())
}
/// A request on its way out: the future of its response, and its share of the frame budget,
/// released once the response is written.
type InFlight = (Pending, OwnedSemaphorePermit);

async fn write_responses<W: AsyncWrite + Unpin>(write_half: W, mut rx: mpsc::Receiver<InFlight>) {
    let mut out = BufWriter::with_capacity(64 * 1024, write_half);
    while let Some((pending, _frame_bytes)) = rx.recv().await {
        match pending.await {
            Reply::Frame(frame) => {
                if out.write_all(&frame).await.is_err() {
                    return;
                }
            }
            Reply::Pieces(pieces) => {
                // Pieces larger than the buffer (record bytes) go to the socket directly.
                for piece in pieces {
                    if out.write_all(&piece).await.is_err() {
                        return;
                    }
                }
            }
            Reply::Nothing => {}
            Reply::Close => break,
        }
        if rx.is_empty() && out.flush().await.is_err() {
            return;
        }
    }
    let _ = out.flush().await;
    let _ = out.shutdown().await;
}
