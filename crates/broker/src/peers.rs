//! Requests from this broker to the others, as a Kafka client of theirs (`sluice-client`):
//! one connection per peer broker, kept and reused, to its registered client listener, leaving
//! from this broker's own listener address when it names one (so a network cut between two
//! addresses cuts these connections too). Today only transactions use it (WriteTxnMarkers to
//! partition leaders, AddPartitionsToTxn `verify_only` to coordinators).
//!
//! Not owned here: what is sent (the caller builds the request), and where brokers are (the
//! metadata image).

use crate::server::CLIENT_LISTENER;
use sluice_client::Connection;
use std::collections::HashMap;
use std::time::Duration;

/// How long connecting to a peer or waiting for its answer may take.
const PEER_TIMEOUT: Duration = Duration::from_secs(10);

/// The connections to peer brokers, by broker id.
#[derive(Default)]
pub(crate) struct Peers {
    idle: std::sync::Mutex<HashMap<i32, Connection>>,
    /// The address connections leave from (this broker's listener's, unless a wildcard).
    local: Option<std::net::IpAddr>,
}

impl std::fmt::Debug for Peers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peers")
            .field("idle", &self.lock().len())
            .finish()
    }
}

impl Peers {
    /// Connections leave from `listen`'s address, unless it is a wildcard.
    pub(crate) fn from_listener(listen: std::net::SocketAddr) -> Peers {
        let ip = listen.ip();
        Peers {
            idle: Default::default(),
            local: (!ip.is_unspecified()).then_some(ip),
        }
    }

    /// Sends `request` to broker `broker_id` (at `address`, its client listener) and returns
    /// its response. A connection that fails is dropped; the next request opens another.
    pub(crate) async fn send<R: kafka_protocol::protocol::Request>(
        &self,
        broker_id: i32,
        address: &str,
        request: &R,
    ) -> Result<R::Response, String> {
        let kept = self.lock().remove(&broker_id);
        let mut connection = match kept {
            Some(c) if c.address() == address => c,
            _ => Connection::connect_from(address, self.local, "sluice-broker", PEER_TIMEOUT)
                .await
                .map_err(|e| e.to_string())?,
        };
        let (_, response) = connection
            .send(request, R::VERSIONS.max)
            .await
            .map_err(|e| e.to_string())?;
        self.lock().insert(broker_id, connection);
        Ok(response)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i32, Connection>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The client listener address (`host:port`) of broker `broker_id` in `image`, if it is
/// registered and unfenced.
pub(crate) fn address_of(
    image: &sluice_controller::MetadataImage,
    broker_id: i32,
) -> Option<String> {
    let broker = image.brokers.get(&broker_id).filter(|b| !b.fenced)?;
    let e = broker
        .endpoints
        .iter()
        .find(|e| e.name == CLIENT_LISTENER)?;
    Some(format!("{}:{}", e.host, e.port))
}
