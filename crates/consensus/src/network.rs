//! Controller traffic over TCP: openraft's RPCs (AppendEntries, Vote, PreVote, a whole
//! snapshot) between the controllers, and controller commands handed to the active controller
//! by another node (`send_command`), on the controller listener, which carries nothing else.
//!
//! Wire format: each message is a frame `u32 length (big-endian) | payload`, the payload a
//! `Request` or `Response` in postcard. A connection carries one request at a time, answered
//! in order. Bounds: a frame over `CONTROLLER_FRAME_BYTES_MAX` closes the connection before
//! anything is allocated for it; a frame must arrive whole within `FRAME_ARRIVAL_TIMEOUT`
//! of its first byte; a connection idle for `IDLE_TIMEOUT` is closed (heartbeats keep live
//! ones busy); at most `CONNECTIONS_MAX` connections are served at once.
//!
//! Security: with `ControllerTls` (`controller_listener_security_protocol SSL`) every
//! connection is mutual TLS: the listener asks for a client certificate chained to the
//! truststore and refuses a connection without one, and a connecting node checks the other's
//! certificate against the host it dialled. The handshake must finish within
//! `FRAME_ARRIVAL_TIMEOUT`.
//!
//! Not owned here: who the peers are (the `BasicNode` address each voter registered), and
//! reading certificates (the binary hands in rustls configs).

use crate::{MetadataQuorum, QuorumError, Raft, TypeConfig};
use openraft::BasicNode;
use openraft::alias::{SnapshotMetaOf, SnapshotOf, VoteOf};
use openraft::error::{NetworkError, RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory, v2::RaftNetworkV2};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};
use sluice_controller::{ControllerCommand, ControllerReply};
use std::io::{self, Cursor};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// The largest frame either side accepts: a snapshot of the whole metadata goes as one.
pub const CONTROLLER_FRAME_BYTES_MAX: usize = 256 * 1024 * 1024;
const FRAME_ARRIVAL_TIMEOUT: Duration = Duration::from_secs(30);
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
const CONNECTIONS_MAX: usize = 64;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a handed-on command may take: a ReadIndex round and one commit, with room for an
/// election in between.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// Mutual TLS on the controller listener: what it serves, and how a node connects to others.
#[derive(Clone)]
pub struct ControllerTls {
    /// Asks for (and requires) a client certificate chained to the truststore.
    pub server: Arc<rustls::ServerConfig>,
    /// Trusts the truststore and shows this node's certificate.
    pub client: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for ControllerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControllerTls").finish_non_exhaustive()
    }
}

/// A connection between controllers: plain TCP or TLS over it.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send + Sync {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> Stream for T {}
type BoxStream = Box<dyn Stream>;

#[derive(Serialize, Deserialize)]
enum Request {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<TypeConfig>),
    PreVote(VoteRequest<TypeConfig>),
    Snapshot {
        vote: VoteOf<TypeConfig>,
        meta: SnapshotMetaOf<TypeConfig>,
        data: Vec<u8>,
    },
    /// A controller command handed on by a node that is not the active controller.
    Command(ControllerCommand),
    /// A broker that is not a controller asks to receive the metadata log (a learner).
    AddLearner {
        node_id: u64,
        address: String,
    },
}

#[derive(Serialize, Deserialize)]
enum Response {
    AppendEntries(AppendEntriesResponse<TypeConfig>),
    Vote(VoteResponse<TypeConfig>),
    Snapshot(SnapshotResponse<TypeConfig>),
    Command(Result<ControllerReply, QuorumError>),
    /// The receiving controller could not handle the request (it is shutting down, say).
    Refused(String),
}

async fn write_frame<T: Serialize>(stream: &mut BoxStream, message: &T) -> io::Result<()> {
    let payload = postcard::to_allocvec(message).map_err(invalid)?;
    if payload.len() > CONTROLLER_FRAME_BYTES_MAX {
        return Err(invalid(format!(
            "a {} byte controller message",
            payload.len()
        )));
    }
    let mut frame = Vec::with_capacity(4 + payload.len());
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(&payload);
    stream.write_all(&frame).await
}

/// Reads one frame; `None` when the peer closed the connection between frames.
async fn read_frame<T: for<'de> Deserialize<'de>>(stream: &mut BoxStream) -> io::Result<Option<T>> {
    let mut len = [0u8; 4];
    match stream.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > CONTROLLER_FRAME_BYTES_MAX {
        return Err(invalid(format!("a frame of {len} bytes")));
    }
    let mut payload = vec![0u8; len];
    tokio::time::timeout(FRAME_ARRIVAL_TIMEOUT, stream.read_exact(&mut payload))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "a frame did not arrive in time"))??;
    postcard::from_bytes(&payload).map(Some).map_err(invalid)
}

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

/// Serves controller RPCs for `quorum` on `listener` (over mutual TLS with `tls`) until the
/// task running it is aborted (which aborts every connection it serves).
pub async fn serve(listener: TcpListener, quorum: Arc<MetadataQuorum>, tls: Option<ControllerTls>) {
    let permits = Arc::new(Semaphore::new(CONNECTIONS_MAX));
    let acceptor = tls.map(|t| tokio_rustls::TlsAcceptor::from(t.server));
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "too many controller connections; closing this one");
            continue;
        };
        let quorum = quorum.clone();
        let acceptor = acceptor.clone();
        connections.spawn(async move {
            let served = async {
                let stream = accept(stream, acceptor).await?;
                serve_connection(stream, quorum).await
            };
            if let Err(e) = served.await {
                tracing::debug!(%peer, error = %e, "controller connection closed");
            }
            drop(permit);
        });
    }
}

/// The accepted connection, after its TLS handshake when the listener speaks TLS.
async fn accept(
    stream: TcpStream,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
) -> io::Result<BoxStream> {
    stream.set_nodelay(true)?;
    let Some(acceptor) = acceptor else {
        return Ok(Box::new(stream));
    };
    let handshake = tokio::time::timeout(FRAME_ARRIVAL_TIMEOUT, acceptor.accept(stream));
    let tls = handshake
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake"))??;
    Ok(Box::new(tls))
}

async fn serve_connection(mut stream: BoxStream, quorum: Arc<MetadataQuorum>) -> io::Result<()> {
    loop {
        let request = tokio::time::timeout(IDLE_TIMEOUT, read_frame::<Request>(&mut stream))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "idle"))??;
        let Some(request) = request else {
            return Ok(());
        };
        let response = handle(&quorum, request).await;
        write_frame(&mut stream, &response).await?;
    }
}

async fn handle(quorum: &MetadataQuorum, request: Request) -> Response {
    let refused = |e: &dyn std::fmt::Display| Response::Refused(e.to_string());
    let raft: &Raft = quorum.raft();
    match request {
        Request::Command(command) => {
            // Run here, never handed on again: a node that is not the active controller
            // answers NotController and the sender asks again.
            Response::Command(quorum.execute(command, sluice_types::now_ms()).await)
        }
        Request::AddLearner { node_id, address } => {
            let added = quorum.add_learner(node_id, address).await;
            Response::Command(added.map(|()| ControllerReply::Done))
        }
        Request::AppendEntries(rpc) => match raft.append_entries(rpc).await {
            Ok(r) => Response::AppendEntries(r),
            Err(e) => refused(&e),
        },
        Request::Vote(rpc) => match raft.vote(rpc).await {
            Ok(r) => Response::Vote(r),
            Err(e) => refused(&e),
        },
        Request::PreVote(rpc) => match raft.pre_vote(rpc).await {
            Ok(r) => Response::Vote(r),
            Err(e) => refused(&e),
        },
        Request::Snapshot { vote, meta, data } => {
            let snapshot = SnapshotOf::<TypeConfig, Cursor<Vec<u8>>> {
                meta,
                snapshot: Cursor::new(data),
            };
            match raft.install_full_snapshot(vote, snapshot).await {
                Ok(r) => Response::Snapshot(r),
                Err(e) => refused(&e),
            }
        }
    }
}

/// Opens clients to the other controllers, at the address each registered, from `local`
/// when set, over mutual TLS with `tls`.
#[derive(Debug, Clone, Default)]
pub struct ControllerNetwork {
    local: Option<IpAddr>,
    tls: Option<ControllerTls>,
}

impl ControllerNetwork {
    /// Connections leave from `local` (this node's controller-listener address), so a
    /// network cut between two addresses (`ip rule ... blackhole`) cuts them too.
    pub fn from_address(local: Option<IpAddr>) -> ControllerNetwork {
        ControllerNetwork { local, tls: None }
    }

    /// Connections speak mutual TLS.
    pub fn with_tls(mut self, tls: Option<ControllerTls>) -> ControllerNetwork {
        self.tls = tls;
        self
    }

    /// The same network, leaving from `local` instead.
    pub(crate) fn leaving_from(&self, local: Option<IpAddr>) -> ControllerNetwork {
        ControllerNetwork {
            local,
            tls: self.tls.clone(),
        }
    }

    fn client(&self, target: u64, addr: &str) -> PeerClient {
        PeerClient {
            target,
            addr: addr.to_string(),
            network: self.clone(),
            stream: None,
        }
    }

    /// A connection to `address`, after its TLS handshake when the network speaks TLS.
    async fn connect(&self, address: &str) -> io::Result<BoxStream> {
        let stream = connect_from(address, self.local).await?;
        stream.set_nodelay(true)?;
        let Some(tls) = &self.tls else {
            return Ok(Box::new(stream));
        };
        let host = address
            .rsplit_once(':')
            .map_or(address, |(host, _)| host)
            .trim_matches(['[', ']']);
        let name = rustls::pki_types::ServerName::try_from(host.to_string())
            .map_err(|e| invalid(format!("{host} as a TLS server name: {e}")))?;
        let connector = tokio_rustls::TlsConnector::from(tls.client.clone());
        Ok(Box::new(connector.connect(name, stream).await?))
    }
}

impl RaftNetworkFactory<TypeConfig> for ControllerNetwork {
    type Network = PeerClient;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> PeerClient {
        self.client(target, &node.addr)
    }
}

/// The specific IP address of `address` (`host:port`), if it names one: the address
/// connections to other nodes leave from. None for a wildcard (`0.0.0.0`, `::`) or a name.
pub fn specific_ip(address: &str) -> Option<IpAddr> {
    let ip = address.parse::<SocketAddr>().ok()?.ip();
    (!ip.is_unspecified()).then_some(ip)
}

/// Connects to `address` from `local` (any port) when given, else from wherever the system
/// routes.
async fn connect_from(address: &str, local: Option<IpAddr>) -> io::Result<TcpStream> {
    let Some(local) = local else {
        return TcpStream::connect(address).await;
    };
    let target = tokio::net::lookup_host(address)
        .await?
        .find(|a| a.is_ipv4() == local.is_ipv4())
        .ok_or_else(|| io::Error::other(format!("{address} has no address like {local}")))?;
    let socket = if local.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.bind(SocketAddr::new(local, 0))?;
    socket.connect(target).await
}

/// One controller's connection to another; reconnected after any failure.
pub struct PeerClient {
    target: u64,
    addr: String,
    /// Where connections leave from, and their TLS.
    network: ControllerNetwork,
    stream: Option<BoxStream>,
}

impl PeerClient {
    /// Sends `request` and reads the answer, within `timeout`. A failure drops the
    /// connection (the next call opens a new one) and tells whether the peer was reached.
    async fn call(&mut self, request: &Request, timeout: Duration) -> Result<Response, CallError> {
        let result = tokio::time::timeout(timeout, self.exchange(request)).await;
        let result = match result {
            Ok(r) => r,
            Err(_) => Err(CallError::Network(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("controller {} did not answer in time", self.target),
            ))),
        };
        if result.is_err() {
            self.stream = None;
        }
        result
    }

    async fn exchange(&mut self, request: &Request) -> Result<Response, CallError> {
        let stream = match &mut self.stream {
            Some(s) => s,
            None => {
                let connect = self.network.connect(&self.addr);
                let stream = tokio::time::timeout(CONNECT_TIMEOUT, connect)
                    .await
                    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))
                    .and_then(|r| r)
                    .map_err(CallError::Unreachable)?;
                self.stream.insert(stream)
            }
        };
        write_frame(stream, request)
            .await
            .map_err(CallError::Network)?;
        match read_frame::<Response>(stream).await {
            Ok(Some(Response::Refused(why))) => Err(CallError::Network(io::Error::other(why))),
            Ok(Some(response)) => Ok(response),
            Ok(None) => Err(CallError::Network(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the controller closed the connection",
            ))),
            Err(e) => Err(CallError::Network(e)),
        }
    }
}

enum CallError {
    Unreachable(io::Error),
    Network(io::Error),
}

impl From<CallError> for RPCError<TypeConfig> {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Unreachable(e) => RPCError::Unreachable(Unreachable::new(&e)),
            CallError::Network(e) => RPCError::Network(NetworkError::new(&e)),
        }
    }
}

impl From<CallError> for StreamingError<TypeConfig> {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Unreachable(e) => StreamingError::Unreachable(Unreachable::new(&e)),
            CallError::Network(e) => StreamingError::Network(NetworkError::new(&e)),
        }
    }
}

fn unexpected() -> CallError {
    CallError::Network(invalid("an answer of the wrong kind"))
}

impl RaftNetworkV2<TypeConfig> for PeerClient {
    type SnapshotData = Cursor<Vec<u8>>;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self
            .call(&Request::AppendEntries(rpc), option.hard_ttl())
            .await?
        {
            Response::AppendEntries(r) => Ok(r),
            _ => Err(unexpected().into()),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self.call(&Request::Vote(rpc), option.hard_ttl()).await? {
            Response::Vote(r) => Ok(r),
            _ => Err(unexpected().into()),
        }
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self.call(&Request::PreVote(rpc), option.hard_ttl()).await? {
            Response::Vote(r) => Ok(r),
            _ => Err(unexpected().into()),
        }
    }

    async fn full_snapshot(
        &mut self,
        vote: VoteOf<TypeConfig>,
        snapshot: SnapshotOf<TypeConfig, Self::SnapshotData>,
        _cancel: impl std::future::Future<Output = ReplicationClosed> + Send + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let request = Request::Snapshot {
            vote,
            meta: snapshot.meta,
            data: snapshot.snapshot.into_inner(),
        };
        match self.call(&request, option.hard_ttl()).await? {
            Response::Snapshot(r) => Ok(r),
            _ => Err(unexpected().into()),
        }
    }
}

/// Hands `command` to the active controller `leader` at `address` and returns its answer.
pub(crate) async fn send_command(
    (leader, address): (u64, &str),
    network: &ControllerNetwork,
    command: &ControllerCommand,
) -> Result<ControllerReply, QuorumError> {
    call(leader, address, network, Request::Command(command.clone())).await
}

/// Asks controller `target` at `address` to add this node as a learner.
pub(crate) async fn send_add_learner(
    target: u64,
    address: &str,
    network: &ControllerNetwork,
    node_id: u64,
    own_address: &str,
) -> Result<(), QuorumError> {
    let request = Request::AddLearner {
        node_id,
        address: own_address.to_string(),
    };
    let network = network.leaving_from(specific_ip(own_address));
    call(target, address, &network, request).await.map(|_| ())
}

async fn call(
    leader: u64,
    address: &str,
    network: &ControllerNetwork,
    request: Request,
) -> Result<ControllerReply, QuorumError> {
    let mut peer = network.client(leader, address);
    let unreachable = |why: String| QuorumError::Unreachable { leader, why };
    match peer.call(&request, COMMAND_TIMEOUT).await {
        Ok(Response::Command(answer)) => answer,
        Ok(_) => Err(unreachable("an answer of the wrong kind".into())),
        Err(CallError::Unreachable(e) | CallError::Network(e)) => Err(unreachable(e.to_string())),
    }
}
