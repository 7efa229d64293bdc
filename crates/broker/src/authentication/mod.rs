//! SASL authentication on the broker (issue 15, docs/design/0006-security.md, docs/security.md):
//! what a SASL listener's connections must do before anything but ApiVersions, answered on the
//! connection's reader in request order.
//!
//! - `Authentication` (this file): the broker-wide part: the mechanisms offered, the
//!   re-authentication interval, the secret behind unknown users' stand-in salts, fresh nonces,
//!   the failed-login buckets per source address, and the credentials read from the published
//!   metadata image.
//! - `session`: one connection's state: SaslHandshake (v0: the raw tokens that follow; v1:
//!   SaslAuthenticate), the exchange, the principal, re-authentication (KIP-368), and what is
//!   refused or closed, with the audit line and metric of each failure.
//! - `failures`: the buckets.
//! - `jwks`: the identity provider's keys OAUTHBEARER tokens are checked against.
//!
//! Not owned here: the mechanisms themselves (`sluice_sasl`), where credentials are kept (the
//! metadata image, written by AlterUserScramCredentials), and what a principal may do.

mod failures;
mod jwks;
mod session;

pub(crate) use jwks::ReloadableJwks;
pub(crate) use session::{Admit, Session};

use ring::rand::{SecureRandom, SystemRandom};
use sluice_controller::MetadataImage;
use sluice_sasl::{Credentials, Mechanism, ScramCredential, TokenValidator};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Instant;

/// The principal of a connection that has not authenticated (a PLAINTEXT or SSL listener's),
/// as Kafka names it.
pub(crate) const ANONYMOUS: &str = "User:ANONYMOUS";

/// The principal of the in-process loopback listener (the HTTP gateway and the view engine),
/// allowed everything: until the HTTP API authenticates its callers (slice 7 of the security
/// design), it stands for them.
pub(crate) const INTERNAL: &str = "User:sluice-internal";

pub(crate) struct Authentication {
    pub mechanisms: Vec<Mechanism>,
    pub reauth_ms: u64,
    random: SystemRandom,
    /// Unknown users' stand-in salts are derived from it: the same for this broker's life.
    unknown_user_secret: Vec<u8>,
    failures: Mutex<failures::FailedLogins>,
    /// OAUTHBEARER's keys, when configured.
    jwks: Option<Arc<ReloadableJwks>>,
}

/// The secret stays out of logs.
impl std::fmt::Debug for Authentication {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authentication")
            .field("mechanisms", &self.mechanisms)
            .field("reauth_ms", &self.reauth_ms)
            .finish_non_exhaustive()
    }
}

impl Authentication {
    pub(crate) fn new(
        mechanisms: Vec<Mechanism>,
        reauth_ms: u64,
        jwks: Option<Arc<ReloadableJwks>>,
    ) -> Authentication {
        let random = SystemRandom::new();
        let mut unknown_user_secret = vec![0; 32];
        random
            .fill(&mut unknown_user_secret)
            .expect("the system's random source");
        Authentication {
            mechanisms,
            reauth_ms,
            random,
            unknown_user_secret,
            failures: Mutex::default(),
            jwks,
        }
    }

    /// A fresh SCRAM server nonce: 18 random bytes, base64 (printable, no comma).
    fn nonce(&self) -> String {
        use base64::Engine;
        let mut bytes = [0u8; 18];
        self.random
            .fill(&mut bytes)
            .expect("the system's random source");
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    fn exchange(&self, mechanism: Mechanism) -> sluice_sasl::Exchange {
        sluice_sasl::Exchange::new(mechanism, self.nonce(), self.unknown_user_secret.clone())
    }

    fn may_try(&self, address: IpAddr) -> bool {
        let mut failures = self.failures.lock().expect("failures lock");
        failures.may_try(address, Instant::now())
    }

    fn failed(&self, address: IpAddr) {
        let mut failures = self.failures.lock().expect("failures lock");
        failures.failed(address, Instant::now());
    }
}

/// The credentials the metadata image holds and the OAUTHBEARER keys in service, as the
/// exchange asks for them.
pub(crate) struct ImageCredentials<'a> {
    pub image: &'a MetadataImage,
    pub tokens: Option<Arc<TokenValidator>>,
}

impl<'a> ImageCredentials<'a> {
    pub(crate) fn new(image: &'a MetadataImage, authentication: &Authentication) -> Self {
        ImageCredentials {
            image,
            tokens: authentication.jwks.as_ref().map(|j| j.validator()),
        }
    }
}

impl Credentials for ImageCredentials<'_> {
    fn token_validator(&self) -> Option<&TokenValidator> {
        self.tokens.as_deref()
    }

    fn scram(&self, user: &str, mechanism: Mechanism) -> Option<ScramCredential> {
        let code = mechanism.scram_type()?;
        let c = self
            .image
            .scram_credentials
            .get(&(user.to_string(), code))?;
        Some(ScramCredential {
            mechanism,
            salt: c.salt.clone(),
            stored_key: c.stored_key.clone(),
            server_key: c.server_key.clone(),
            iterations: c.iterations,
        })
    }
}
