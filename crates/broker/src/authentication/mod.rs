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
//! - `delegation`: the checks the in-process HTTP API makes of its callers, and the secret
//!   with which its connections act for them.
//!
//! Not owned here: the mechanisms themselves (`sluice_sasl`), where credentials are kept (the
//! metadata image, written by AlterUserScramCredentials), and what a principal may do.

mod delegation;
mod failures;
mod jwks;
mod session;

pub use delegation::CallerChecks;
pub(crate) use jwks::ReloadableJwks;
pub(crate) use session::{Admit, Session};

use ring::rand::{SecureRandom, SystemRandom};
use sluice_controller::MetadataImage;
use sluice_sasl::{Credentials, Mechanism, ScramCredential, TokenValidator};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Instant;

/// The Sluice-only SASL mechanism of the in-process listener: the HTTP API, having
/// authenticated its caller itself, shows the broker's delegation secret and the caller's
/// principal, and the connection acts as that principal (so the broker's ACLs decide what an
/// HTTP request may do). Offered on no other listener.
pub(crate) const DELEGATE_MECHANISM: &str = "SLUICE-DELEGATE";

/// The delegation secret every broker sharing `inter_broker_password` makes alike: an
/// HMAC-SHA-256 of a fixed label under it, so the password itself is never sent.
fn cluster_delegation_secret(inter_broker_password: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, inter_broker_password.as_bytes());
    let tag = ring::hmac::sign(&key, b"sluice-delegate-v1");
    crate::tls::hex(tag.as_ref())
}

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
    /// What the in-process HTTP API shows to act for its caller (`DELEGATE_MECHANISM`): made
    /// from the inter-broker SASL password when there is one, so every broker of the cluster
    /// has the same and the gateway may act for its caller on the other brokers too (over their
    /// SASL_SSL listener); otherwise random, made at start, and it never leaves the process.
    delegation_secret: String,
    /// Whether `delegation_secret` is the cluster's (made from the inter-broker password).
    pub delegation_cluster_wide: bool,
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
        inter_broker_password: Option<&str>,
    ) -> Authentication {
        let random = SystemRandom::new();
        let delegation_secret = match inter_broker_password {
            Some(password) => cluster_delegation_secret(password),
            None => {
                let mut delegation = [0u8; 32];
                random
                    .fill(&mut delegation)
                    .expect("the system's random source");
                crate::tls::hex(&delegation)
            }
        };
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
            delegation_secret,
            delegation_cluster_wide: inter_broker_password.is_some(),
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

    pub(crate) fn exchange(&self, mechanism: Mechanism) -> sluice_sasl::Exchange {
        sluice_sasl::Exchange::new(mechanism, self.nonce(), self.unknown_user_secret.clone())
    }

    /// The secret of `DELEGATE_MECHANISM`.
    pub(crate) fn delegation_secret(&self) -> &str {
        &self.delegation_secret
    }

    /// Whether `token` is `secret NUL principal` with this broker's secret; the principal.
    fn delegated(&self, token: &[u8]) -> Option<String> {
        use subtle::ConstantTimeEq;
        let at = token.iter().position(|&b| b == 0)?;
        let (secret, principal) = (&token[..at], &token[at + 1..]);
        if !bool::from(secret.ct_eq(self.delegation_secret.as_bytes())) {
            return None;
        }
        let principal = std::str::from_utf8(principal).ok()?;
        let valid = principal.starts_with("User:")
            && principal.len() > "User:".len()
            && principal.len() <= sluice_types::limits::SASL_USER_NAME_BYTES_MAX;
        valid.then(|| principal.to_string())
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
