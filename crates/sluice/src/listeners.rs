//! `listeners` and `advertised_listeners` (Kafka's `listeners` and `advertised.listeners`):
//! `NAME://HOST:PORT` entries. `PLAINTEXT` is the plaintext client listener (it replaces
//! `listen`, which is the PLAINTEXT listener when none is named; brokers reach each other
//! there); `SSL` is a TLS listener, with the `ssl_keystore_location`, `ssl_truststore_location`
//! and `ssl_client_auth` settings; `SASL_PLAINTEXT` asks for SASL authentication first, and
//! `SASL_SSL` both. Names are the security protocols themselves for now
//! (`listener.security.protocol.map` comes later, docs/design/0006-security.md); another name
//! is refused with what is served.
//!
//! Not owned here: binding and serving them (the broker).

use crate::settings::{ServeSettings, resolve};
use anyhow::Context;
use sluice_broker::SecuredListener;
use sluice_broker::tls::{ClientAuth, TlsSettings};
use std::collections::BTreeMap;

/// The listeners the settings name.
#[derive(Debug, Default)]
pub(crate) struct Listeners {
    /// The PLAINTEXT listener's address, when `listeners` names one.
    pub plaintext: Option<String>,
    /// What PLAINTEXT clients are told, when `advertised_listeners` names it.
    pub plaintext_advertised: Option<String>,
    /// SSL, SASL_PLAINTEXT and SASL_SSL.
    pub secured: Vec<SecuredListener>,
}

/// Splits `NAME://HOST:PORT`.
fn entry(text: &str) -> anyhow::Result<(&str, &str)> {
    text.split_once("://")
        .filter(|(name, address)| !name.is_empty() && !address.is_empty())
        .with_context(|| format!("a listener is NAME://HOST:PORT, not {text:?}"))
}

/// `HOST:PORT` (the host may be `[v6]`) as its parts.
pub(crate) fn host_port(text: &str) -> anyhow::Result<(String, u16)> {
    let (host, port) = text
        .rsplit_once(':')
        .with_context(|| format!("expected HOST:PORT, not {text:?}"))?;
    let port = port.parse().with_context(|| format!("{text}: bad port"))?;
    Ok((host.trim_matches(['[', ']']).to_string(), port))
}

pub(crate) fn parse(settings: &ServeSettings) -> anyhow::Result<Listeners> {
    let mut bound: BTreeMap<&str, &str> = BTreeMap::new();
    for text in &settings.listeners {
        let (name, address) = entry(text)?;
        anyhow::ensure!(
            matches!(name, "PLAINTEXT" | "SSL" | "SASL_PLAINTEXT" | "SASL_SSL"),
            "listener {name}: the listeners served are PLAINTEXT, SSL, SASL_PLAINTEXT and SASL_SSL"
        );
        anyhow::ensure!(
            bound.insert(name, address).is_none(),
            "listener {name} is named twice"
        );
    }
    let mut advertised: BTreeMap<&str, &str> = BTreeMap::new();
    for text in &settings.advertised_listeners {
        let (name, address) = entry(text)?;
        anyhow::ensure!(
            bound.contains_key(name) || (name == "PLAINTEXT" && bound.is_empty()),
            "advertised listener {name} names no listener"
        );
        advertised.insert(name, address);
    }
    let mut listeners = Listeners {
        plaintext: bound.get("PLAINTEXT").map(|a| a.to_string()),
        plaintext_advertised: advertised.get("PLAINTEXT").map(|a| a.to_string()),
        secured: Vec::new(),
    };
    for name in ["SSL", "SASL_PLAINTEXT", "SASL_SSL"] {
        if let Some(address) = bound.get(name) {
            let listener = secured_listener(settings, name, address, advertised.get(name))?;
            listeners.secured.push(listener);
        }
    }
    Ok(listeners)
}

fn secured_listener(
    settings: &ServeSettings,
    name: &str,
    address: &str,
    advertised: Option<&&str>,
) -> anyhow::Result<SecuredListener> {
    let bound = resolve(address).with_context(|| format!("listener {name}://{address}"))?;
    let (advertised_host, advertised_port) = match advertised {
        Some(text) => {
            host_port(text).with_context(|| format!("advertised listener {name}://{text}"))?
        }
        None => (bound.ip().to_string(), bound.port()),
    };
    let tls = match name {
        "SSL" | "SASL_SSL" => Some(tls_settings(settings, name)?),
        _ => None,
    };
    Ok(SecuredListener {
        name: name.into(),
        address: bound,
        advertised_host,
        advertised_port,
        tls,
        sasl: name.starts_with("SASL_"),
    })
}

pub(crate) fn tls_settings(settings: &ServeSettings, name: &str) -> anyhow::Result<TlsSettings> {
    let keystore = settings.ssl_keystore_location.clone().with_context(|| {
        format!("listener {name} needs ssl_keystore_location (a PEM file: private key and certificate chain)")
    })?;
    let client_auth = ClientAuth::parse(&settings.ssl_client_auth).map_err(anyhow::Error::msg)?;
    Ok(TlsSettings {
        keystore,
        truststore: settings.ssl_truststore_location.clone(),
        client_auth,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(listeners: &[&str], advertised: &[&str]) -> ServeSettings {
        ServeSettings {
            listeners: listeners.iter().map(|s| s.to_string()).collect(),
            advertised_listeners: advertised.iter().map(|s| s.to_string()).collect(),
            ssl_keystore_location: Some("/keys/broker.pem".into()),
            ..ServeSettings::default()
        }
    }

    #[test]
    fn plaintext_and_ssl_listeners_with_their_advertised_addresses() {
        let parsed = parse(&settings(
            &["PLAINTEXT://127.0.0.1:9092", "SSL://0.0.0.0:9093"],
            &["SSL://kafka.example.com:19093"],
        ))
        .unwrap();
        assert_eq!(parsed.plaintext.as_deref(), Some("127.0.0.1:9092"));
        assert_eq!(parsed.plaintext_advertised, None);
        let [tls] = &parsed.secured[..] else {
            panic!("one TLS listener")
        };
        assert_eq!(tls.name, "SSL");
        assert_eq!(tls.address.port(), 9093);
        assert_eq!(
            (tls.advertised_host.as_str(), tls.advertised_port),
            ("kafka.example.com", 19093)
        );
        assert_eq!(tls.tls.as_ref().unwrap().client_auth, ClientAuth::None);
        assert!(!tls.sasl);
    }

    #[test]
    fn what_is_not_served_or_not_whole_is_refused() {
        for (listeners, advertised) in [
            (&["SASL_GSSAPI://0.0.0.0:9094"][..], &[][..]),
            (&["PLAINTEXT://a:1", "PLAINTEXT://b:2"][..], &[][..]),
            (&["PLAINTEXT:/a:1"][..], &[][..]),
            (&["PLAINTEXT://127.0.0.1:9092"][..], &["SSL://x:1"][..]),
        ] {
            assert!(
                parse(&settings(listeners, advertised)).is_err(),
                "{listeners:?} {advertised:?}"
            );
        }
        let mut no_keys = settings(&["SSL://127.0.0.1:9093"], &[]);
        no_keys.ssl_keystore_location = None;
        assert!(parse(&no_keys).is_err(), "SSL needs a keystore");
        assert!(
            parse(&settings(&[], &[])).unwrap().secured.is_empty(),
            "none: --listen alone"
        );
        let mut sasl_ssl = settings(&["SASL_SSL://127.0.0.1:9094"], &[]);
        sasl_ssl.ssl_keystore_location = None;
        assert!(parse(&sasl_ssl).is_err(), "SASL_SSL needs a keystore");
    }

    #[test]
    fn sasl_listeners_ask_for_authentication_with_or_without_tls() {
        let parsed = parse(&settings(
            &[
                "SASL_PLAINTEXT://127.0.0.1:9094",
                "SASL_SSL://127.0.0.1:9095",
            ],
            &[],
        ))
        .unwrap();
        let shape: Vec<(&str, bool, bool)> = parsed
            .secured
            .iter()
            .map(|l| (l.name.as_str(), l.tls.is_some(), l.sasl))
            .collect();
        assert_eq!(
            shape,
            vec![("SASL_PLAINTEXT", false, true), ("SASL_SSL", true, true)]
        );
    }
}
