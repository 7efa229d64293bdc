//! `ClientPool`: Kafka connections from the gateway to the broker, reused across requests.
//! A client that failed is dropped rather than returned, so a broken connection is never
//! handed out twice. Both are capped: at most `HTTP_BROKER_CONNECTIONS_MAX` requests (long
//! polls included) use a connection at once, and a request that waits `POOL_WAIT` for one
//! is answered 503; at most `IDLE_CLIENTS_MAX` idle connections are kept.

use sluice_client::{Client, ClientError};
use sluice_types::limits::HTTP_BROKER_CONNECTIONS_MAX;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::Semaphore;

/// Idle connections kept for reuse.
const IDLE_CLIENTS_MAX: usize = 32;
/// How long a request through the gateway may wait for the broker.
const BROKER_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a request may wait for one of the pool's connections to be free.
const POOL_WAIT: Duration = Duration::from_secs(10);

pub struct ClientPool {
    bootstrap: String,
    idle: Mutex<Vec<Client>>,
    in_use: Semaphore,
}

impl ClientPool {
    pub fn new(bootstrap: String) -> ClientPool {
        ClientPool {
            bootstrap,
            idle: Mutex::new(Vec::new()),
            in_use: Semaphore::new(HTTP_BROKER_CONNECTIONS_MAX),
        }
    }

    /// An idle client, or a new connection.
    pub async fn take(&self) -> sluice_client::Result<Client> {
        let reused = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        match reused {
            Some(client) => Ok(client),
            None => Client::connect(&self.bootstrap, "sluice-http", BROKER_TIMEOUT).await,
        }
    }

    /// Returns a client that finished its work cleanly.
    pub fn give_back(&self, client: Client) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < IDLE_CLIENTS_MAX {
            idle.push(client);
        }
    }

    /// Runs `work` with a pooled client, returning the client only when `work` succeeded.
    pub async fn with<T, E>(
        &self,
        work: impl AsyncFnOnce(&mut Client) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<sluice_client::ClientError>,
    {
        let Ok(Ok(_permit)) = tokio::time::timeout(POOL_WAIT, self.in_use.acquire()).await else {
            return Err(ClientError::Timeout {
                address: format!(
                    "{} (all {HTTP_BROKER_CONNECTIONS_MAX} of the gateway's broker connections are busy)",
                    self.bootstrap
                ),
                timeout_ms: POOL_WAIT.as_millis() as u64,
            }
            .into());
        };
        let mut client = self.take().await?;
        let result = work(&mut client).await;
        if result.is_ok() {
            self.give_back(client);
        }
        result
    }
}
