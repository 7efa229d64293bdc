//! TLS for a listener (issue 15, docs/design/0006-security.md): the broker's certificate chain
//! and private key from one PEM file (Kafka's PEM keystore, `ssl.keystore.location`), client
//! certificates checked against the CA certificates of another (`ssl.truststore.location`) as
//! `ssl.client.auth` asks (`none`, `requested`, `required`); TLS 1.2 and 1.3 only, through
//! rustls with the ring provider.
//!
//! Owns: reading the PEM files into a rustls `ServerConfig` (again on SIGHUP or when they
//! change: `ReloadableTls`), and a client certificate's subject as its principal
//! (`certificate_principal`: `User:` and the name `ssl.principal.mapping.rules` makes of the
//! distinguished name in RFC 2253's form, `principal_mapping`). Not: the listeners and the
//! handshake's deadline (`server`), what a principal may do.

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Kafka's `ssl.client.auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAuth {
    /// No client certificate is asked for.
    #[default]
    None,
    /// One is asked for; a client without one is served, one with a bad one is refused.
    Requested,
    /// A client without a certificate the truststore vouches for is refused.
    Required,
}

impl ClientAuth {
    pub fn parse(text: &str) -> Result<ClientAuth, String> {
        match text {
            "none" => Ok(ClientAuth::None),
            "requested" => Ok(ClientAuth::Requested),
            "required" => Ok(ClientAuth::Required),
            other => Err(format!(
                "ssl_client_auth is none, requested or required, not {other:?}"
            )),
        }
    }
}

/// Where a TLS listener's certificates are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// PEM: the private key and the certificate chain, the broker's own first.
    pub keystore: PathBuf,
    /// PEM: the CA certificates client certificates must chain to.
    pub truststore: Option<PathBuf>,
    pub client_auth: ClientAuth,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {error}")]
    File { path: PathBuf, error: String },
    #[error("{0}")]
    Config(String),
}

fn file_error(path: &Path, error: impl std::fmt::Display) -> TlsError {
    TlsError::File {
        path: path.to_path_buf(),
        error: error.to_string(),
    }
}

/// The rustls configuration `settings` describe, its files read now.
pub fn server_config(settings: &TlsSettings) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let path = &settings.keystore;
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(path, e))?;
    if chain.is_empty() {
        return Err(file_error(path, "no certificate in the file"));
    }
    let key = PrivateKeyDer::from_pem_file(path).map_err(|e| file_error(path, e))?;
    // ring, as the vetted dependencies choose (aws-lc is avoided); rustls 0.23.48 deprecates the
    // ring provider for lacking post-quantum key exchange, which Sluice therefore does not offer.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match settings.client_auth {
        ClientAuth::None => builder.with_no_client_auth(),
        auth => {
            let path = settings.truststore.as_deref().ok_or_else(|| {
                TlsError::Config(
                    "ssl_client_auth requested or required needs ssl_truststore_location".into(),
                )
            })?;
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(path).map_err(|e| file_error(path, e))? {
                let cert = cert.map_err(|e| file_error(path, e))?;
                roots.add(cert).map_err(|e| file_error(path, e))?;
            }
            if roots.is_empty() {
                return Err(file_error(path, "no CA certificate in the file"));
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if auth == ClientAuth::Requested {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            let verifier = verifier
                .build()
                .map_err(|e| TlsError::Config(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder
        .with_single_cert(chain, key)
        .map_err(|e| file_error(&settings.keystore, e))?;
    Ok(Arc::new(config))
}

/// A listener's TLS configuration, read again from its files when told (SIGHUP) or when they
/// change: each new connection takes the newest; a reload that fails keeps the last good one.
/// (The HTTP API's too: `RunningBroker::http_tls`.)
#[derive(Debug)]
pub struct ReloadableTls {
    pub listener: String,
    settings: TlsSettings,
    current: arc_swap::ArcSwap<rustls::ServerConfig>,
    /// The files' modification times when last read.
    read_at: std::sync::Mutex<Vec<Option<std::time::SystemTime>>>,
}

impl ReloadableTls {
    pub(crate) fn new(listener: &str, settings: TlsSettings) -> Result<ReloadableTls, TlsError> {
        let read_at = modified(&settings);
        let config = server_config(&settings)?;
        Ok(ReloadableTls {
            listener: listener.to_string(),
            settings,
            current: arc_swap::ArcSwap::new(config),
            read_at: std::sync::Mutex::new(read_at),
        })
    }

    /// A handshake with the newest configuration.
    pub(crate) fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.current())
    }

    /// The newest configuration.
    pub fn current(&self) -> Arc<rustls::ServerConfig> {
        self.current.load_full()
    }
}

impl crate::reload::Reloadable for ReloadableTls {
    fn what(&self) -> &'static str {
        "TLS certificates"
    }

    fn source(&self) -> String {
        format!("listener {}", self.listener)
    }

    /// Reads the files again; the new configuration serves the next connections.
    fn reload(&self) -> Result<(), String> {
        let read_at = modified(&self.settings);
        let config = server_config(&self.settings).map_err(|e| e.to_string())?;
        self.current.store(config);
        *self.read_at.lock().expect("tls lock") = read_at;
        Ok(())
    }

    fn changed_on_disk(&self) -> bool {
        *self.read_at.lock().expect("tls lock") != modified(&self.settings)
    }
}

/// The modification times of a listener's keystore and truststore.
fn modified(settings: &TlsSettings) -> Vec<Option<std::time::SystemTime>> {
    let files = std::iter::once(&settings.keystore).chain(settings.truststore.as_ref());
    files.map(|f| crate::reload::modified(f)).collect()
}

/// The principal of a client certificate: `User:` and the name `mapper` makes of its subject
/// (by default the subject as RFC 2253 writes it, `CN=client,OU=dev,O=example`); why not, when
/// the certificate cannot be read or no rule applies (the connection is then refused).
pub(crate) fn certificate_principal(
    der: &[u8],
    mapper: &crate::PrincipalMapper,
) -> Result<String, String> {
    let subject = certificate_subject(der).ok_or("an unreadable client certificate")?;
    match mapper.name(&subject) {
        Some(name) => Ok(format!("User:{name}")),
        None => Err(format!(
            "no ssl_principal_mapping_rules rule applies to {subject}"
        )),
    }
}

/// The subject of a certificate (DER) as RFC 2253 writes it, most specific part first, as
/// Java's `X500Principal.getName()` does.
fn certificate_subject(der: &[u8]) -> Option<String> {
    let (_, certificate) = x509_parser::parse_x509_certificate(der).ok()?;
    let mut parts = Vec::new();
    let rdns: Vec<_> = certificate.subject().iter().collect();
    for rdn in rdns.into_iter().rev() {
        let attributes: Vec<String> = rdn
            .iter()
            .map(|attribute| {
                let oid = attribute.attr_type().to_id_string();
                let name = rfc2253_keyword(&oid).map_or(oid.clone(), str::to_string);
                let value = attribute
                    .as_str()
                    .map(escape_rfc2253)
                    .unwrap_or_else(|_| format!("#{}", hex(attribute.as_slice())));
                format!("{name}={value}")
            })
            .collect();
        parts.push(attributes.join("+"));
    }
    Some(parts.join(","))
}

/// The attribute keywords RFC 2253 names (others are written as their dotted OID, as Java's
/// `X500Principal.getName()` does).
fn rfc2253_keyword(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.6" => "C",
        "2.5.4.9" => "STREET",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        _ => return None,
    })
}

/// RFC 2253's escapes: `,+"\<>;` anywhere, `#` and a space first, a space last.
fn escape_rfc2253(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Lower-case hexadecimal, two digits a byte.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::escape_rfc2253;

    #[test]
    fn rfc_2253_escapes() {
        assert_eq!(escape_rfc2253("client"), "client");
        assert_eq!(escape_rfc2253("a,b+c"), "a\\,b\\+c");
        assert_eq!(escape_rfc2253(" x "), "\\ x\\ ");
    }
}
