//! `listeners` and `advertised_listeners` (Kafka's `listeners` and `advertised.listeners`):
//! `NAME://HOST:PORT` entries. `PLAINTEXT` is the plaintext client listener (it replaces
//! `listen`, which is the PLAINTEXT listener when none is named; brokers reach each other
//! there); `SSL` is a TLS listener, with the
//! `ssl_keystore_location`, `ssl_truststore_location` and `ssl_client_auth` settings. Names are
//! the security protocols themselves for now (`listener.security.protocol.map` and SASL come
//! later, docs/design/0006-security.md); another name is refused with what is served.
//!
//! Not owned here: binding and serving them (the broker).

use crate::settings::{ServeSettings, resolve};
use anyhow::Context;
use sluice_broker::TlsListener;
use sluice_broker::tls::{ClientAuth, TlsSettings};
use std::collections::BTreeMap;

/// The listeners the settings name.
#[derive(Debug, Default)]
pub(crate) struct Listeners {
    /// The PLAINTEXT listener's address, when `listeners` names one.
    pub plaintext: Option<String>,
    /// What PLAINTEXT clients are told, when `advertised_listeners` names it.
    pub plaintext_advertised: Option<String>,
    pub tls: Vec<TlsListener>,
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
            matches!(name, "PLAINTEXT" | "SSL"),
            "listener {name}: the listeners served are PLAINTEXT and SSL (SASL comes with authentication)"
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
        tls: Vec::new(),
    };
    if let Some(address) = bound.get("SSL") {
        listeners
            .tls
            .push(tls_listener(settings, address, advertised.get("SSL"))?);
    }
    Ok(listeners)
}

fn tls_listener(
    settings: &ServeSettings,
    address: &str,
    advertised: Option<&&str>,
) -> anyhow::Result<TlsListener> {
    let bound = resolve(address).with_context(|| format!("listener SSL://{address}"))?;
    let (advertised_host, advertised_port) = match advertised {
        Some(text) => {
            host_port(text).with_context(|| format!("advertised listener SSL://{text}"))?
        }
        None => (bound.ip().to_string(), bound.port()),
    };
    let keystore = settings.ssl_keystore_location.clone().context(
        "listener SSL needs ssl_keystore_location (a PEM file: private key and certificate chain)",
    )?;
    let client_auth = ClientAuth::parse(&settings.ssl_client_auth).map_err(anyhow::Error::msg)?;
    Ok(TlsListener {
        name: "SSL".into(),
        address: bound,
        advertised_host,
        advertised_port,
        tls: TlsSettings {
            keystore,
            truststore: settings.ssl_truststore_location.clone(),
            client_auth,
        },
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
        let [tls] = &parsed.tls[..] else {
            panic!("one TLS listener")
        };
        assert_eq!(tls.name, "SSL");
        assert_eq!(tls.address.port(), 9093);
        assert_eq!(
            (tls.advertised_host.as_str(), tls.advertised_port),
            ("kafka.example.com", 19093)
        );
        assert_eq!(tls.tls.client_auth, ClientAuth::None);
    }

    #[test]
    fn what_is_not_served_or_not_whole_is_refused() {
        for (listeners, advertised) in [
            (&["SASL_SSL://0.0.0.0:9094"][..], &[][..]),
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
            parse(&settings(&[], &[])).unwrap().tls.is_empty(),
            "none: --listen alone"
        );
    }
}
