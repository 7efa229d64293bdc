//! How nodes reach each other. The controller listener: plain TCP, or mutual TLS
//! (`controller_listener_security_protocol SSL`) with the listeners' keystore and truststore,
//! the same certificate serving and connecting. Brokers (Kafka's `inter.broker.listener.name` and
//! `sasl.mechanism.inter.broker.protocol`): the listener whose registered endpoint the other
//! brokers are reached at, and the client side of it: TLS trusting `ssl_truststore_location`
//! and showing this broker's `ssl_keystore_location` as its client certificate (an SSL listener
//! asking for client certificates takes its subject as the principal), and on a SASL listener
//! a login as `inter_broker_sasl_username`. The replica fetchers, the transaction and share
//! peers, and the in-process clients' connections to other brokers (views, the HTTP API) all
//! use it.
//!
//! Not owned here: the listeners themselves (`listeners.rs`), serving them (the broker).

use crate::listeners::Listeners;
use crate::settings::ServeSettings;
use anyhow::Context;
use sluice_broker::InterBroker;
use sluice_broker::tls::{ClientAuth, TlsSettings};
use sluice_client::security::{SaslLogin, Security, TlsOptions};
use sluice_sasl::Mechanism;

pub(crate) fn inter_broker(
    settings: &ServeSettings,
    listeners: &Listeners,
) -> anyhow::Result<InterBroker> {
    let name = settings.inter_broker_listener_name.trim();
    let (tls, sasl) = match name {
        "PLAINTEXT" => (false, false),
        _ => {
            let listener = listeners
                .secured
                .iter()
                .find(|l| l.name == name)
                .with_context(|| {
                    format!("inter_broker_listener_name {name} names no listener of `listeners`")
                })?;
            (listener.tls.is_some(), listener.sasl)
        }
    };
    let login = login(settings, name, sasl)?;
    let tls = match tls {
        false => None,
        true => Some(client_tls(
            settings,
            &format!("inter_broker_listener_name {name}"),
        )?),
    };
    Ok(InterBroker {
        listener: name.to_string(),
        security: Security {
            tls,
            sasl: login,
            ..Security::default()
        },
    })
}

/// The SASL login on a SASL inter-broker listener; settings for one elsewhere are refused
/// rather than ignored.
fn login(settings: &ServeSettings, name: &str, sasl: bool) -> anyhow::Result<Option<SaslLogin>> {
    let user = settings.inter_broker_sasl_username.as_deref();
    let password = settings.inter_broker_sasl_password.as_deref();
    if !sasl {
        anyhow::ensure!(
            user.is_none() && password.is_none(),
            "inter_broker_sasl_username and _password are for a SASL inter-broker listener, and inter_broker_listener_name is {name}"
        );
        return Ok(None);
    }
    let (Some(user), Some(password)) = (user, password) else {
        anyhow::bail!(
            "inter_broker_listener_name {name} needs inter_broker_sasl_username and inter_broker_sasl_password (SLUICE_INTER_BROKER_SASL_PASSWORD): the user brokers log in to each other as"
        );
    };
    let text = settings.sasl_mechanism_inter_broker_protocol.trim();
    let mechanism = Mechanism::parse(text)
        .filter(|m| *m != Mechanism::OAuthBearer)
        .with_context(|| {
            format!("sasl_mechanism_inter_broker_protocol: {text} is not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512")
        })?;
    anyhow::ensure!(
        settings.sasl_mechanisms()?.contains(&mechanism),
        "sasl_mechanism_inter_broker_protocol {text} is not in sasl_enabled_mechanisms"
    );
    Ok(Some(SaslLogin {
        mechanism,
        user: user.to_string(),
        password: password.to_string(),
    }))
}

/// Trusting the truststore's CAs (the other brokers' certificates chain to them), with this
/// broker's keystore as its client certificate.
fn client_tls(
    settings: &ServeSettings,
    name: &str,
) -> anyhow::Result<std::sync::Arc<rustls::ClientConfig>> {
    let ca = settings.ssl_truststore_location.clone().with_context(|| {
        format!("{name} needs ssl_truststore_location: the CA the nodes' certificates chain to")
    })?;
    let keystore = settings.ssl_keystore_location.clone();
    let options = TlsOptions {
        ca: Some(ca),
        certificate: keystore.clone(),
        key: keystore,
    };
    options
        .client_config()
        .with_context(|| format!("{name}: the client side of TLS"))
}

/// The controller listener's mutual TLS, when `controller_listener_security_protocol` is SSL:
/// a client certificate chained to the truststore is required, and the keystore serves and
/// connects.
pub(crate) fn controller_tls(
    settings: &ServeSettings,
) -> anyhow::Result<Option<sluice_cluster::ControllerTls>> {
    match settings.controller_listener_security_protocol.trim() {
        "PLAINTEXT" => return Ok(None),
        "SSL" => {}
        other => anyhow::bail!(
            "controller_listener_security_protocol {other}: PLAINTEXT or SSL (mutual TLS)"
        ),
    }
    let keystore = settings.ssl_keystore_location.clone().context(
        "controller_listener_security_protocol SSL needs ssl_keystore_location (this node's key and certificate)",
    )?;
    let truststore = settings.ssl_truststore_location.clone().context(
        "controller_listener_security_protocol SSL needs ssl_truststore_location (the CA the nodes' certificates chain to)",
    )?;
    let server = sluice_broker::tls::server_config(&TlsSettings {
        keystore: keystore.clone(),
        truststore: Some(truststore),
        client_auth: ClientAuth::Required,
    })
    .context("the controller listener's TLS")?;
    let client = client_tls(settings, "the controller listener")?;
    Ok(Some(sluice_cluster::ControllerTls { server, client }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(listeners: &[&str], name: &str) -> ServeSettings {
        ServeSettings {
            listeners: listeners.iter().map(|s| s.to_string()).collect(),
            inter_broker_listener_name: name.into(),
            ..ServeSettings::default()
        }
    }

    fn parsed(settings: &ServeSettings) -> anyhow::Result<InterBroker> {
        let listeners = crate::listeners::parse(settings)?;
        inter_broker(settings, &listeners)
    }

    #[test]
    fn plaintext_by_default_and_a_sasl_listener_needs_a_login() {
        let plain = parsed(&ServeSettings::default()).unwrap();
        assert_eq!(plain.listener, "PLAINTEXT");
        assert!(plain.security.tls.is_none() && plain.security.sasl.is_none());

        let mut sasl = settings(&["SASL_PLAINTEXT://127.0.0.1:0"], "SASL_PLAINTEXT");
        assert!(parsed(&sasl).is_err(), "no user");
        sasl.inter_broker_sasl_username = Some("broker".into());
        sasl.inter_broker_sasl_password = Some("secret".into());
        let login = parsed(&sasl).unwrap().security.sasl.unwrap();
        assert_eq!(
            (login.mechanism, login.user.as_str()),
            (Mechanism::ScramSha512, "broker")
        );
        sasl.sasl_mechanism_inter_broker_protocol = "PLAIN".into();
        assert!(parsed(&sasl).is_err(), "PLAIN is not enabled");
        sasl.sasl_mechanism_inter_broker_protocol = "OAUTHBEARER".into();
        assert!(parsed(&sasl).is_err(), "brokers do not log in with tokens");
    }

    #[test]
    fn what_names_no_listener_or_does_not_apply_is_refused() {
        assert!(parsed(&settings(&[], "SSL")).is_err());
        let plain = ServeSettings {
            inter_broker_sasl_username: Some("broker".into()),
            ..ServeSettings::default()
        };
        assert!(parsed(&plain).is_err(), "a login on a PLAINTEXT listener");
    }
}
