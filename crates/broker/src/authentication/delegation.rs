//! What the in-process HTTP API asks of the broker to act for its callers (issue 15, slice 7):
//! whether an HTTP Basic password is the user's (checked as PLAIN is, against the SCRAM
//! credentials of the metadata log), the subject of a bearer token (OAUTHBEARER's check), the
//! principal of a client certificate, and the secret its Kafka connections show on the
//! in-process listener to act as the caller (`DELEGATE_MECHANISM`), so that the broker's ACLs
//! decide what an HTTP request may do.

use super::ImageCredentials;
use super::session::unix_now_ms;
use crate::server::Broker;
use sluice_acl::Operation;
use sluice_sasl::{Mechanism, Step, plain_message};
use std::sync::Arc;

/// The broker's checks of HTTP callers (`RunningBroker::caller_checks`).
#[derive(Clone)]
pub struct CallerChecks {
    broker: Arc<Broker>,
}

impl std::fmt::Debug for CallerChecks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallerChecks").finish_non_exhaustive()
    }
}

impl CallerChecks {
    pub(crate) fn new(broker: Arc<Broker>) -> CallerChecks {
        CallerChecks { broker }
    }

    /// Whether `password` is `user`'s. Costs what a PLAIN login does (the credential's
    /// iterations): callers cache the answer.
    pub fn password_is(&self, user: &str, password: &str) -> bool {
        let image = self.broker.published_image();
        let auth = &self.broker.authentication;
        let credentials = ImageCredentials::new(&image, auth);
        let mut exchange = auth.exchange(Mechanism::Plain);
        let message = plain_message(user, password);
        matches!(
            exchange.step(&message, &credentials, unix_now_ms()),
            Ok(Step::Done { .. })
        )
    }

    /// A fingerprint of `user`'s SCRAM credentials as the published image holds them (0: none):
    /// it changes when a password is set or a credential deleted, so a cached check of an
    /// HTTP Basic password is dropped at once rather than when it expires.
    pub fn credentials_stamp(&self, user: &str) -> u64 {
        use std::hash::{Hash, Hasher};
        let image = self.broker.published_image();
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        let mut any = false;
        let from = (user.to_string(), i8::MIN);
        for ((name, mechanism), c) in image.scram_credentials.range(from..) {
            if name != user {
                break;
            }
            any = true;
            (
                mechanism,
                &c.salt,
                &c.stored_key,
                &c.server_key,
                c.iterations,
            )
                .hash(&mut hasher);
        }
        if any { hasher.finish().max(1) } else { 0 }
    }

    /// The subject of a valid OAUTHBEARER token, and when it expires (Unix ms); `None` when no
    /// JWKS is configured or the token fails any check.
    pub fn token_subject(&self, token: &str) -> Option<(String, u64)> {
        let jwks = self.broker.authentication.jwks.as_ref()?;
        let valid = jwks.validator().validate(token, unix_now_ms()).ok()?;
        Some((valid.subject, valid.expires_at_unix_ms))
    }

    /// The principal of a client certificate (DER), as an SSL listener takes it (`None`: no
    /// `ssl_principal_mapping_rules` rule applies).
    pub fn certificate_principal(&self, der: &[u8]) -> Option<String> {
        let mapper = &self.broker.config.ssl_principal_mapping;
        crate::tls::certificate_principal(der, mapper).ok()
    }

    /// Whether `principal` may ALTER the cluster (super users included).
    pub fn may_alter_cluster(&self, principal: &str) -> bool {
        let caller = crate::authorization::Caller::new(
            principal,
            std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        );
        self.broker.allows_cluster(&caller, Operation::Alter)
    }

    /// What the in-process listener's connections show to act for a caller.
    pub fn delegation_secret(&self) -> String {
        self.broker.authentication.delegation_secret().to_string()
    }
}
