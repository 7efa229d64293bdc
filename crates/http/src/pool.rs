//! `ClientPool`: Kafka connections from the gateway to the broker, reused across requests.
//! A client that failed is dropped rather than returned, so a broken connection is never
//! handed out twice. Both are capped: at most `HTTP_BROKER_CONNECTIONS_MAX` requests (long
//! polls included) use a connection at once, and a request that waits `POOL_WAIT` for one
//! is answered 503; at most `IDLE_CLIENTS_MAX` idle connections are kept. With `http_auth`,
//! connections act for the caller of the request they serve (`auth::caller_security`) and are
//! reused only for the same caller.

use crate::auth::{HttpAuth, caller_security, current_caller};
use sluice_client::security::Security;
use sluice_client::{Client, ClientError};
use sluice_types::limits::HTTP_BROKER_CONNECTIONS_MAX;
use std::collections::HashMap;
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
    auth: Option<HttpAuth>,
    /// How connections not acting for a caller are secured.
    security: Security,
    /// Idle clients by the principal they act for (`None`: the in-process listener's own).
    idle: Mutex<HashMap<Option<String>, Vec<Client>>>,
    in_use: Semaphore,
}

impl ClientPool {
    pub fn new(bootstrap: String, auth: Option<HttpAuth>, security: Security) -> ClientPool {
        ClientPool {
            bootstrap,
            auth,
            security,
            idle: Mutex::new(HashMap::new()),
            in_use: Semaphore::new(HTTP_BROKER_CONNECTIONS_MAX),
        }
    }

    /// A new connection for the request being handled (acting for its caller).
    pub async fn connect(&self, client_id: &str) -> sluice_client::Result<Client> {
        let security = caller_security(self.auth.as_ref(), &self.security);
        Client::connect_with(&self.bootstrap, client_id, BROKER_TIMEOUT, security).await
    }

    /// An idle client of the request's caller, or a new connection.
    pub async fn take(&self) -> sluice_client::Result<Client> {
        let reused = {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            idle.get_mut(&current_caller()).and_then(Vec::pop)
        };
        match reused {
            Some(client) => Ok(client),
            None => self.connect("sluice-http").await,
        }
    }

    /// Returns a client that finished its work cleanly (for the request's caller).
    pub fn give_back(&self, client: Client) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        idle.retain(|_, clients| !clients.is_empty());
        if idle.values().map(Vec::len).sum::<usize>() < IDLE_CLIENTS_MAX {
            idle.entry(current_caller()).or_default().push(client);
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
