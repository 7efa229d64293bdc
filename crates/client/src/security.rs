//! How a connection protects and identifies itself (issue 15, docs/security.md): TLS through
//! rustls (ring provider; the CA certificates to trust, a client certificate and key for mTLS,
//! PEM files), and a SASL login (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) after ApiVersions:
//! SaslHandshake v1, then SaslAuthenticate for each message.
//!
//! Owns: the client's TLS config and the login conversation. Not: the mechanisms' messages
//! (`sluice_sasl`), the broker's side.

use crate::connection::Connection;
use crate::error::{ClientError, Result};
use bytes::Bytes;
use kafka_protocol::messages::{SaslAuthenticateRequest, SaslHandshakeRequest};
use kafka_protocol::protocol::StrBytes;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use sluice_sasl::{Mechanism, ScramClient};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where a client's TLS material is.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// PEM: CA certificates to trust (the system's are not read).
    pub ca: Option<PathBuf>,
    /// PEM: the client's certificate chain and its key, for mTLS.
    pub certificate: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// A SASL login.
#[derive(Clone)]
pub struct SaslLogin {
    pub mechanism: Mechanism,
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for SaslLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaslLogin")
            .field("mechanism", &self.mechanism)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// Acting for a caller on a broker's in-process listener (its HTTP API's connections): the
/// broker's delegation secret and the caller's principal (`User:alice`).
#[derive(Clone)]
pub struct Delegation {
    pub secret: String,
    pub principal: String,
}

/// The Sluice-only mechanism of the in-process listener.
const DELEGATE_MECHANISM: &str = "SLUICE-DELEGATE";

/// How every connection of a client is made: plain, TLS, SASL, or both.
#[derive(Clone, Default)]
pub struct Security {
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub sasl: Option<SaslLogin>,
    pub delegation: Option<Delegation>,
    /// How brokers other than the bootstrap ones are reached, where that differs: a broker's
    /// in-process clients bootstrap on its plain loopback listener and reach the other brokers
    /// through their inter-broker listener, with its TLS and login.
    pub elsewhere: Option<Arc<Security>>,
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Security")
            .field("tls", &self.tls.is_some())
            .field("sasl", &self.sasl)
            .field(
                "delegation",
                &self.delegation.as_ref().map(|d| &d.principal),
            )
            .field("elsewhere", &self.elsewhere)
            .finish()
    }
}

fn pem_error(path: &Path, error: impl std::fmt::Display) -> ClientError {
    ClientError::Invalid(format!("{}: {error}", path.display()))
}

impl TlsOptions {
    /// The rustls config: TLS 1.2 and 1.3, the given CAs, a client certificate if given.
    pub fn client_config(&self) -> Result<Arc<rustls::ClientConfig>> {
        let mut roots = rustls::RootCertStore::empty();
        if let Some(ca) = &self.ca {
            for cert in CertificateDer::pem_file_iter(ca).map_err(|e| pem_error(ca, e))? {
                let cert = cert.map_err(|e| pem_error(ca, e))?;
                roots.add(cert).map_err(|e| pem_error(ca, e))?;
            }
        }
        #[allow(deprecated)] // rustls 0.23's ring provider, as the broker takes it
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| ClientError::Invalid(format!("TLS: {e}")))?
            .with_root_certificates(roots);
        let config = match (&self.certificate, &self.key) {
            (Some(cert), Some(key)) => {
                let chain = CertificateDer::pem_file_iter(cert)
                    .map_err(|e| pem_error(cert, e))?
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(|e| pem_error(cert, e))?;
                let key = PrivateKeyDer::from_pem_file(key).map_err(|e| pem_error(key, e))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| ClientError::Invalid(format!("TLS client certificate: {e}")))?
            }
            (None, None) => builder.with_no_client_auth(),
            _ => {
                return Err(ClientError::Invalid(
                    "a client certificate needs both --tls-cert and --tls-key".into(),
                ));
            }
        };
        Ok(Arc::new(config))
    }
}

/// The name the broker's certificate must carry: the host of `address` (`host:port`).
pub(crate) fn server_name(address: &str) -> Result<ServerName<'static>> {
    let host = address
        .rsplit_once(':')
        .map_or(address, |(host, _)| host)
        .trim_matches(['[', ']']);
    ServerName::try_from(host.to_string())
        .map_err(|e| ClientError::Invalid(format!("{host} as a TLS server name: {e}")))
}

/// A fresh SCRAM client nonce: random printable characters.
fn client_nonce() -> String {
    use base64::Engine;
    let bytes = *uuid::Uuid::new_v4().as_bytes();
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes)
}

/// Highest SaslHandshake and SaslAuthenticate versions this client builds.
const SASL_HANDSHAKE_VERSION: i16 = 1;
const SASL_AUTHENTICATE_VERSION: i16 = 2;

impl Connection {
    /// Logs in on a connection that has negotiated its versions.
    pub(crate) async fn login(&mut self, login: &SaslLogin) -> Result<()> {
        let address = self.address().to_string();
        let handshake = SaslHandshakeRequest::default()
            .with_mechanism(StrBytes::from_static_str(login.mechanism.name()));
        let (_, answer) = self.send(&handshake, SASL_HANDSHAKE_VERSION).await?;
        ClientError::check(answer.error_code, None, || {
            format!("SASL {} to {address}", login.mechanism)
        })?;
        match login.mechanism {
            Mechanism::Plain => {
                let message = sluice_sasl::plain_message(&login.user, &login.password);
                self.authenticate_step(message, login).await?;
            }
            Mechanism::OAuthBearer => {
                let message = sluice_sasl::oauthbearer_message(&login.password);
                self.authenticate_step(message, login).await?;
            }
            mechanism => {
                let mut scram =
                    ScramClient::new(mechanism, &login.user, &login.password, client_nonce());
                let server_first = self.authenticate_step(scram.first_message(), login).await?;
                let last = scram
                    .final_message(&server_first)
                    .map_err(|e| ClientError::Invalid(format!("SASL to {address}: {e}")))?;
                let server_final = self.authenticate_step(last, login).await?;
                scram
                    .verify_server_final(&server_final)
                    .map_err(|e| ClientError::Invalid(format!("SASL to {address}: {e}")))?;
            }
        }
        Ok(())
    }

    /// Acts for `delegation.principal` on a broker's in-process listener.
    pub(crate) async fn delegate(&mut self, delegation: &Delegation) -> Result<()> {
        let address = self.address().to_string();
        let handshake = SaslHandshakeRequest::default()
            .with_mechanism(StrBytes::from_static_str(DELEGATE_MECHANISM));
        let (_, answer) = self.send(&handshake, SASL_HANDSHAKE_VERSION).await?;
        ClientError::check(answer.error_code, None, || {
            format!("delegation to {address}")
        })?;
        let mut token = delegation.secret.clone().into_bytes();
        token.push(0);
        token.extend_from_slice(delegation.principal.as_bytes());
        let request = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(token));
        let (_, answer) = self.send(&request, SASL_AUTHENTICATE_VERSION).await?;
        ClientError::check(answer.error_code, answer.error_message.as_deref(), || {
            format!("delegation to {address}")
        })
    }

    async fn authenticate_step(&mut self, message: Vec<u8>, login: &SaslLogin) -> Result<Bytes> {
        let address = self.address().to_string();
        let request = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(message));
        let (_, answer) = self.send(&request, SASL_AUTHENTICATE_VERSION).await?;
        let message = answer.error_message.as_deref().map(str::to_string);
        ClientError::check(answer.error_code, message.as_deref(), || {
            format!("SASL {} as {} to {address}", login.mechanism, login.user)
        })?;
        Ok(answer.auth_bytes)
    }
}
