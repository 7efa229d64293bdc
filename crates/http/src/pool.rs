//! `ClientPool`: Kafka connections from the gateway to the broker, reused across requests.
//! A client that failed is dropped rather than returned, so a broken connection is never
//! handed out twice. Idle clients are capped; busy ones are not (each HTTP request holds one
//! for its duration, and axum bounds concurrent requests by its connections).

use sluice_client::Client;
use std::sync::Mutex;
use std::time::Duration;

/// Idle connections kept for reuse.
const IDLE_CLIENTS_MAX: usize = 32;
/// How long a request through the gateway may wait for the broker.
const BROKER_TIMEOUT: Duration = Duration::from_secs(30);

pub struct ClientPool {
    bootstrap: String,
    idle: Mutex<Vec<Client>>,
}

impl ClientPool {
    pub fn new(bootstrap: String) -> ClientPool {
        ClientPool {
            bootstrap,
            idle: Mutex::new(Vec::new()),
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
        let mut client = self.take().await?;
        let result = work(&mut client).await;
        if result.is_ok() {
            self.give_back(client);
        }
        result
    }
}
