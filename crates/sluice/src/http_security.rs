//! The HTTP API's authentication and TLS (issue 15, docs/security.md, "The HTTP API"):
//! `http_auth` (`none`, or any of `basic`, `bearer`, `mtls`) and `http_tls` (the listeners'
//! keystore, truststore and `ssl_client_auth`), read from the settings and handed to the HTTP
//! crate with the broker's checks of a caller's credentials.

use crate::settings::ServeSettings;
use anyhow::Context;
use sluice_broker::tls::{ClientAuth, TlsSettings};
use std::net::SocketAddr;
use std::sync::Arc;

/// Which credentials `http_auth` takes; all false: `none`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct HttpAuthModes {
    pub basic: bool,
    pub bearer: bool,
    pub certificate: bool,
}

impl HttpAuthModes {
    pub(crate) fn any(self) -> bool {
        self.basic || self.bearer || self.certificate
    }
}

/// `http_auth` for an HTTP API on `address`: `none` (said), empty (then only loopback), or a
/// comma-separated list of `basic`, `bearer`, `mtls`.
pub(crate) fn http_auth_modes(
    address: SocketAddr,
    http_auth: &str,
) -> anyhow::Result<HttpAuthModes> {
    let mut modes = HttpAuthModes::default();
    match http_auth.trim() {
        "none" => return Ok(modes),
        "" => {
            anyhow::ensure!(
                address.ip().is_loopback(),
                "the HTTP API on {address} would serve anyone who reaches it without authentication: \
                 pass --http-auth basic (or bearer, mtls) to authenticate its callers, or --http-auth none \
                 to accept that, or keep it on loopback (docs/security.md)"
            );
            return Ok(modes);
        }
        list => {
            for mode in list.split(',').map(str::trim) {
                match mode {
                    "basic" => modes.basic = true,
                    "bearer" => modes.bearer = true,
                    "mtls" => modes.certificate = true,
                    other => anyhow::bail!(
                        "--http-auth {other}: none, or any of basic, bearer, mtls (comma-separated)"
                    ),
                }
            }
        }
    }
    Ok(modes)
}

/// The broker's checks, as the HTTP crate asks them.
struct BrokerChecks(sluice_broker::CallerChecks);

impl sluice_http::CallerChecks for BrokerChecks {
    fn password_is(&self, user: &str, password: &str) -> bool {
        self.0.password_is(user, password)
    }

    fn credentials_stamp(&self, user: &str) -> u64 {
        self.0.credentials_stamp(user)
    }

    fn token_subject(&self, token: &str) -> Option<String> {
        self.0.token_subject(token).map(|(subject, _)| subject)
    }

    fn certificate_principal(&self, der: &[u8]) -> Option<String> {
        self.0.certificate_principal(der)
    }

    fn may_alter_cluster(&self, principal: &str) -> bool {
        self.0.may_alter_cluster(principal)
    }
}

/// What `HttpOptions` takes for `modes`, with the broker's checks.
pub(crate) fn http_auth(
    modes: HttpAuthModes,
    checks: sluice_broker::CallerChecks,
) -> Option<sluice_http::HttpAuth> {
    modes.any().then(|| sluice_http::HttpAuth {
        basic: modes.basic,
        bearer: modes.bearer,
        certificate: modes.certificate,
        delegation_secret: checks.delegation_secret(),
        checks: Arc::new(BrokerChecks(checks)),
    })
}

/// The HTTP API's TLS configuration (`http_tls`): the listeners' keystore and truststore; with
/// `mtls`, client certificates are asked for (required if `ssl_client_auth` says so).
pub(crate) fn http_tls(
    settings: &ServeSettings,
    modes: HttpAuthModes,
) -> anyhow::Result<Option<TlsSettings>> {
    if !settings.http_tls {
        anyhow::ensure!(
            !modes.certificate,
            "--http-auth mtls needs --http-tls (client certificates come with TLS)"
        );
        return Ok(None);
    }
    let mut tls: TlsSettings = crate::listeners::tls_settings(settings, "HTTP (http_tls)")?;
    if modes.certificate {
        anyhow::ensure!(
            tls.truststore.is_some(),
            "--http-auth mtls needs ssl_truststore_location (the CA certificates client certificates chain to)"
        );
        if tls.client_auth == ClientAuth::None {
            tls.client_auth = ClientAuth::Requested;
        }
    }
    // Read now, so a keystore that does not read stops the start with a clear error; the
    // broker reads it again with the listeners' (`RunningBroker::http_tls`).
    sluice_broker::tls::server_config(&tls).context("http_tls")?;
    Ok(Some(tls))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_auth_is_none_a_list_of_ways_or_unsaid_on_loopback_only() {
        let loopback: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let anywhere: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        assert_eq!(
            http_auth_modes(anywhere, "none").unwrap(),
            HttpAuthModes::default()
        );
        assert!(http_auth_modes(anywhere, "").is_err());
        assert_eq!(
            http_auth_modes(loopback, "").unwrap(),
            HttpAuthModes::default()
        );
        let modes = http_auth_modes(anywhere, "basic, mtls").unwrap();
        assert!(modes.basic && modes.certificate && !modes.bearer && modes.any());
        assert!(http_auth_modes(anywhere, "basic,kerberos").is_err());
    }
}
