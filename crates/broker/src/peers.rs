//! Requests from this broker to the others, as a Kafka client of theirs (`sluice-client`):
//! one connection per peer broker, kept and reused, to its registered inter-broker listener
//! (`inter_broker_listener_name`, secured as `BrokerConfig::inter_broker` says), leaving
//! from this broker's own listener address when it names one (so a network cut between two
//! addresses cuts these connections too). Today only transactions use it (WriteTxnMarkers to
//! partition leaders, AddPartitionsToTxn `verify_only` to coordinators).
//!
//! Not owned here: what is sent (the caller builds the request), and where brokers are (the
//! metadata image).

use sluice_client::Connection;
use sluice_client::security::Security;
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
    /// TLS and the SASL login of the inter-broker listener.
    security: Security,
}

impl std::fmt::Debug for Peers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peers")
            .field("idle", &self.lock().len())
            .finish()
    }
}

impl Peers {
    /// Connections leave from `listen`'s address, unless it is a wildcard, secured as
    /// `security` says.
    pub(crate) fn from_listener(listen: std::net::SocketAddr, security: Security) -> Peers {
        let ip = listen.ip();
        Peers {
            idle: Default::default(),
            local: (!ip.is_unspecified()).then_some(ip),
            security,
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
            _ => {
                let (local, security) = (self.local, &self.security);
                Connection::connect_secured(address, local, "sluice-broker", PEER_TIMEOUT, security)
                    .await
                    .map_err(|e| e.to_string())?
            }
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

/// The address (`host:port`) of broker `broker_id`'s listener `listener` in `image` (the
/// inter-broker one, `InterBroker::listener`), if it is registered and unfenced.
pub(crate) fn address_of(
    image: &sluice_controller::MetadataImage,
    broker_id: i32,
    listener: &str,
) -> Option<String> {
    let broker = image.brokers.get(&broker_id).filter(|b| !b.fenced)?;
    let e = broker.endpoints.iter().find(|e| e.name == listener)?;
    Some(format!("{}:{}", e.host, e.port))
}

impl crate::server::Broker {
    /// Where broker `broker_id` is reached from this one: its inter-broker listener.
    pub(crate) fn peer_address(
        &self,
        image: &sluice_controller::MetadataImage,
        broker_id: i32,
    ) -> Option<String> {
        address_of(image, broker_id, &self.config.inter_broker.listener)
    }
}
