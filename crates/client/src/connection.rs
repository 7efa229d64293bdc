//! `Connection`: one TCP connection to one broker, and the API versions it supports.
//!
//! Requests go one at a time (send, then read the answer): the CLI never needs more, and a
//! pipelined connection can come when replication does. On connect, ApiVersions (v3, or v0
//! when the broker refuses v3) learns the broker's range for every API; each request then goes
//! at the highest version both sides support, capped by what the caller builds.
//!
//! A connection may speak TLS and log in with SASL (`security`): the TLS handshake comes
//! first, then ApiVersions, then the login.
//!
//! Owns: framing, correlation ids, timeouts, the response size limit. Not: retries, leader
//! lookup (that is `Client`).

use crate::codes::UNSUPPORTED_VERSION;
use crate::error::{ClientError, Result};
use crate::security::Security;
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::protocol::{Request, StrBytes};
use sluice_protocol::{FRAME_LENGTH_BYTES, decode_response, encode_request};
use sluice_types::limits::CLIENT_RESPONSE_FRAME_BYTES_MAX;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// A TCP stream to `address`, bound to `local` first when given.
async fn open_stream(address: &str, local: Option<IpAddr>) -> std::io::Result<TcpStream> {
    let Some(local) = local else {
        return TcpStream::connect(address).await;
    };
    let mut targets = tokio::net::lookup_host(address).await?;
    let target = targets.find(|a| a.is_ipv4() == local.is_ipv4());
    let target = target.ok_or_else(|| std::io::Error::other("no address of the same family"))?;
    let socket = match local {
        IpAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        IpAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.bind(SocketAddr::new(local, 0))?;
    socket.connect(target).await
}

/// What a connection reads and writes: a TCP stream, or TLS over one.
trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + Sync {}
impl<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + Sync> Stream for S {}

pub struct Connection {
    address: String,
    stream: BufReader<Box<dyn Stream>>,
    client_id: String,
    next_correlation_id: i32,
    /// The broker's (min, max) version per API key.
    versions: HashMap<i16, (i16, i16)>,
    timeout: Duration,
}

impl Connection {
    /// Connects to `address` (`host:port`) and learns the broker's API versions.
    pub async fn connect(address: &str, client_id: &str, timeout: Duration) -> Result<Connection> {
        Connection::connect_from(address, None, client_id, timeout).await
    }

    /// As `connect`, leaving from `local` (any port) when given: a broker's connections to
    /// other brokers leave from its own listener's address, so a network cut between two
    /// addresses cuts them too.
    pub async fn connect_from(
        address: &str,
        local: Option<IpAddr>,
        client_id: &str,
        timeout: Duration,
    ) -> Result<Connection> {
        let plain = Security::default();
        Connection::connect_secured(address, local, client_id, timeout, &plain).await
    }

    /// As `connect_from`, over TLS and logged in as `security` says.
    pub async fn connect_secured(
        address: &str,
        local: Option<IpAddr>,
        client_id: &str,
        timeout: Duration,
        security: &Security,
    ) -> Result<Connection> {
        let connect = open_stream(address, local);
        let stream = match tokio::time::timeout(timeout, connect).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => {
                return Err(ClientError::Connect {
                    address: address.to_string(),
                    error,
                });
            }
            Err(_) => return Err(timed_out(address, timeout)),
        };
        let _ = stream.set_nodelay(true);
        let stream: Box<dyn Stream> = match &security.tls {
            None => Box::new(stream),
            Some(config) => {
                let connector = tokio_rustls::TlsConnector::from(config.clone());
                let name = crate::security::server_name(address)?;
                let handshake = tokio::time::timeout(timeout, connector.connect(name, stream));
                match handshake.await {
                    Ok(Ok(tls)) => Box::new(tls),
                    Ok(Err(error)) => {
                        return Err(ClientError::Connect {
                            address: address.to_string(),
                            error,
                        });
                    }
                    Err(_) => return Err(timed_out(address, timeout)),
                }
            }
        };
        let mut connection = Connection {
            address: address.to_string(),
            stream: BufReader::new(stream),
            client_id: client_id.to_string(),
            next_correlation_id: 0,
            versions: HashMap::new(),
            timeout,
        };
        connection.negotiate().await?;
        if let Some(login) = &security.sasl {
            connection.login(login).await?;
        }
        if let Some(delegation) = &security.delegation {
            connection.delegate(delegation).await?;
        }
        Ok(connection)
    }

    async fn negotiate(&mut self) -> Result<()> {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("sluice-cli"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let mut response: ApiVersionsResponse =
            self.round_trip(ApiKey::ApiVersions, 3, &request).await?;
        if response.error_code == UNSUPPORTED_VERSION {
            response = self
                .round_trip(ApiKey::ApiVersions, 0, &ApiVersionsRequest::default())
                .await?;
        }
        let address = self.address.clone();
        ClientError::check(response.error_code, None, || {
            format!("ApiVersions to {address}")
        })?;
        self.versions = response
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        Ok(())
    }

    /// How many Kafka APIs the broker advertised.
    pub fn api_count(&self) -> usize {
        self.versions.len()
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    /// The version `R` would go at, given that the caller builds it for versions up to
    /// `max_version`; `None` when the broker supports none of them.
    pub fn version_for<R: Request>(&self, max_version: i16) -> Option<i16> {
        let &(broker_min, broker_max) = self.versions.get(&R::KEY)?;
        let version = broker_max.min(max_version).min(R::VERSIONS.max);
        (version >= broker_min.max(R::VERSIONS.min)).then_some(version)
    }

    /// Sends `request` at the highest version up to `max_version` the broker supports and
    /// returns that version with the response.
    pub async fn send<R: Request>(
        &mut self,
        request: &R,
        max_version: i16,
    ) -> Result<(i16, R::Response)> {
        let (key, version) = self.negotiated::<R>(max_version)?;
        let response = self.round_trip(key, version, request).await?;
        Ok((version, response))
    }

    /// Sends a request that has no response (a Produce with `acks=0`).
    pub async fn send_without_response<R: Request>(
        &mut self,
        request: &R,
        max_version: i16,
    ) -> Result<()> {
        let (key, version) = self.negotiated::<R>(max_version)?;
        let correlation_id = self.take_correlation_id();
        let frame = encode_request(key, version, correlation_id, &self.client_id, request)?;
        self.write(&frame).await
    }

    /// `R`'s API key and the version it goes at, or why it cannot go.
    fn negotiated<R: Request>(&self, max_version: i16) -> Result<(ApiKey, i16)> {
        let key = api_key::<R>()?;
        let version =
            self.version_for::<R>(max_version)
                .ok_or_else(|| ClientError::UnsupportedApi {
                    address: self.address.clone(),
                    api: format!("{key:?}"),
                    ours: format!("{}-{}", R::VERSIONS.min, max_version),
                })?;
        Ok((key, version))
    }

    /// Like `send`, with a longer deadline for a request the broker may hold (a long-poll
    /// fetch holds it up to its `max_wait_ms`).
    pub async fn send_waiting<R: Request>(
        &mut self,
        request: &R,
        max_version: i16,
        broker_wait: Duration,
    ) -> Result<(i16, R::Response)> {
        let normal = self.timeout;
        self.timeout = normal + broker_wait;
        let result = self.send(request, max_version).await;
        self.timeout = normal;
        result
    }

    async fn round_trip<T, R>(&mut self, key: ApiKey, version: i16, request: &T) -> Result<R>
    where
        T: kafka_protocol::protocol::Encodable,
        R: kafka_protocol::protocol::Decodable,
    {
        let correlation_id = self.take_correlation_id();
        let frame = encode_request(key, version, correlation_id, &self.client_id, request)?;
        self.write(&frame).await?;
        let body = self.read_frame().await?;
        let (got, response) = decode_response(body, key, version)?;
        if got != correlation_id {
            return Err(ClientError::CorrelationMismatch {
                address: self.address.clone(),
                expected: correlation_id,
                got,
            });
        }
        Ok(response)
    }

    fn take_correlation_id(&mut self) -> i32 {
        let id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        id
    }

    async fn write(&mut self, frame: &Bytes) -> Result<()> {
        let write = self.stream.get_mut().write_all(frame);
        match tokio::time::timeout(self.timeout, write).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(source)) => Err(self.io(source)),
            Err(_) => Err(timed_out(&self.address, self.timeout)),
        }
    }

    async fn read_frame(&mut self) -> Result<Bytes> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut prefix = [0u8; FRAME_LENGTH_BYTES];
        let read = tokio::time::timeout_at(deadline, self.stream.read_exact(&mut prefix)).await;
        match read {
            Ok(Ok(_)) => {}
            Ok(Err(source)) => return Err(self.io(source)),
            Err(_) => return Err(timed_out(&self.address, self.timeout)),
        }
        if &prefix == b"HTTP" {
            return Err(ClientError::HttpNotKafka {
                address: self.address.clone(),
            });
        }
        let length = i64::from(i32::from_be_bytes(prefix));
        if !(0..=i64::from(CLIENT_RESPONSE_FRAME_BYTES_MAX)).contains(&length) {
            return Err(ClientError::ResponseTooLarge {
                address: self.address.clone(),
                length,
                max: CLIENT_RESPONSE_FRAME_BYTES_MAX,
            });
        }
        let mut body = BytesMut::zeroed(length as usize);
        let read = tokio::time::timeout_at(deadline, self.stream.read_exact(&mut body)).await;
        match read {
            Ok(Ok(_)) => Ok(body.freeze()),
            Ok(Err(source)) => Err(self.io(source)),
            Err(_) => Err(timed_out(&self.address, self.timeout)),
        }
    }

    fn io(&self, error: std::io::Error) -> ClientError {
        ClientError::Io {
            address: self.address.clone(),
            error,
        }
    }
}

fn api_key<R: Request>() -> Result<ApiKey> {
    ApiKey::try_from(R::KEY)
        .map_err(|_| ClientError::Invalid(format!("unknown API key {}", R::KEY)))
}

fn timed_out(address: &str, timeout: Duration) -> ClientError {
    ClientError::Timeout {
        address: address.to_string(),
        timeout_ms: timeout.as_millis() as u64,
    }
}
