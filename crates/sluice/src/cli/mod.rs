//! The client commands of the `sluice` binary: `topic`, `produce`, `consume`, `group`,
//! `cluster`, `user`, `acl` talk to a cluster (over TLS and logged in with SASL when
//! `--tls-ca`, `--user` and the like say so) over the Kafka protocol through `sluice-client`, never by reading
//! data files, so they work against any Kafka-compatible broker; `sql` and `view` ask
//! `sluice serve`'s HTTP API, where views live (`views`, over `http_client`).
//!
//! Owns: argument shapes, output formats, exit codes and the hints in error messages. Not:
//! any protocol detail (that is `sluice-client`).
//!
//! Exit codes: 0 done; 1 the cluster refused or failed the request; 2 bad usage (clap's);
//! 3 no broker reachable; 4 the named topic or group does not exist.

pub mod acl;
pub mod cluster;
pub mod consume;
pub mod group;
mod http_client;
pub mod produce;
pub mod quota;
pub mod share_group;
pub mod topic;
pub mod user;
pub mod views;

use http_client::HttpFailure;
use sluice_client::codes::{
    GROUP_ID_NOT_FOUND, MESSAGE_TOO_LARGE, NON_EMPTY_GROUP, RECORD_LIST_TOO_LARGE,
    TOPIC_ALREADY_EXISTS, UNKNOWN_TOPIC_OR_PARTITION,
};
pub use sluice_client::position::{Start, parse_start, start_offset};
use sluice_client::security::{SaslLogin, Security, TlsOptions};
use sluice_client::{Client, ClientError};
use std::process::ExitCode;
use std::time::Duration;

/// Where the cluster is; shared by every client command.
#[derive(clap::Args, Debug, Clone)]
pub struct Target {
    /// Brokers to bootstrap from, HOST[:PORT][,HOST[:PORT]...]; a broker without a port is
    /// on 9092.
    #[arg(
        long,
        env = "SLUICE_BROKERS",
        default_value = "127.0.0.1:9092",
        global = true
    )]
    pub brokers: String,
    /// Seconds to wait for a broker to answer (a long-poll fetch adds its own wait).
    #[arg(long, default_value_t = 30, global = true, value_name = "SECONDS")]
    pub timeout: u64,
    /// The HTTP API of `sluice serve`, for `sql` and `view` (views live there).
    #[arg(
        long,
        env = "SLUICE_HTTP_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub http_url: String,
    /// PEM file of the CA certificates to trust: connect over TLS (an SSL or SASL_SSL listener)
    #[arg(long, env = "SLUICE_TLS_CA", global = true, value_name = "FILE")]
    pub tls_ca: Option<std::path::PathBuf>,
    /// PEM file of this client's certificate chain, for brokers that ask for one (with --tls-key)
    #[arg(long, env = "SLUICE_TLS_CERT", global = true, value_name = "FILE")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// PEM file of this client's private key (with --tls-cert)
    #[arg(long, env = "SLUICE_TLS_KEY", global = true, value_name = "FILE")]
    pub tls_key: Option<std::path::PathBuf>,
    /// Log in with SASL as this user (a SASL_PLAINTEXT or SASL_SSL listener)
    #[arg(long, env = "SLUICE_USER", global = true)]
    pub user: Option<String>,
    /// The user's password
    #[arg(long, env = "SLUICE_PASSWORD", global = true, hide_env_values = true)]
    pub password: Option<String>,
    /// SASL mechanism: SCRAM-SHA-512, SCRAM-SHA-256, PLAIN, or OAUTHBEARER (--password is then the token; --user may be left out)
    #[arg(
        long,
        env = "SLUICE_SASL_MECHANISM",
        default_value = "SCRAM-SHA-512",
        global = true
    )]
    pub sasl_mechanism: String,
}

/// Kafka's port, for a broker named without one (as kcat and rpk take it).
const KAFKA_PORT_DEFAULT: u16 = 9092;

impl Target {
    pub async fn connect(&self) -> anyhow::Result<Client> {
        let timeout = Duration::from_secs(self.timeout.max(1));
        let security = self.security()?;
        Ok(Client::connect_with(&self.addresses(), "sluice-cli", timeout, security).await?)
    }

    /// TLS when a CA or a client certificate is given; a SASL login when a user is.
    pub fn security(&self) -> anyhow::Result<Security> {
        let tls = if self.tls_ca.is_some() || self.tls_cert.is_some() || self.tls_key.is_some() {
            let options = TlsOptions {
                ca: self.tls_ca.clone(),
                certificate: self.tls_cert.clone(),
                key: self.tls_key.clone(),
            };
            Some(options.client_config()?)
        } else {
            None
        };
        let mechanism = || {
            sluice_sasl::Mechanism::parse(&self.sasl_mechanism).ok_or_else(|| {
                anyhow::anyhow!(
                    "--sasl-mechanism is SCRAM-SHA-512, SCRAM-SHA-256, PLAIN or OAUTHBEARER, not {}",
                    self.sasl_mechanism
                )
            })
        };
        let sasl = match (&self.user, &self.password) {
            (None, None) => None,
            // OAUTHBEARER: the password is the token, which names the principal itself.
            (user, Some(token)) if mechanism()? == sluice_sasl::Mechanism::OAuthBearer => {
                Some(SaslLogin {
                    mechanism: sluice_sasl::Mechanism::OAuthBearer,
                    user: user.clone().unwrap_or_default(),
                    password: token.clone(),
                })
            }
            (Some(user), Some(password)) => Some(SaslLogin {
                mechanism: mechanism()?,
                user: user.clone(),
                password: password.clone(),
            }),
            (Some(_), None) => anyhow::bail!("--user needs --password (or SLUICE_PASSWORD)"),
            (None, Some(_)) => anyhow::bail!("--password needs --user"),
        };
        Ok(Security {
            tls,
            sasl,
            ..Security::default()
        })
    }

    /// `--brokers` with every broker's port: one named without a port (`host`, `[::1]`) is on
    /// 9092.
    pub fn addresses(&self) -> String {
        let with_port = |entry: &str| {
            let entry = entry.trim();
            let has_port = match entry.rsplit_once(':') {
                // `[v6]:port`, or `host:port` with no other colon (a bare IPv6 address has many).
                Some((host, port)) => {
                    !port.is_empty()
                        && port.bytes().all(|b| b.is_ascii_digit())
                        && (host.ends_with(']') || !host.contains(':'))
                }
                None => false,
            };
            if has_port {
                entry.to_string()
            } else if entry.contains(':') && !entry.starts_with('[') {
                format!("[{entry}]:{KAFKA_PORT_DEFAULT}")
            } else {
                format!("{entry}:{KAFKA_PORT_DEFAULT}")
            }
        };
        let entries: Vec<String> = self.brokers.split(',').map(with_port).collect();
        entries.join(",")
    }
}

/// Runs one client command on a single-threaded runtime and maps its outcome to an exit code.
pub fn run<F>(command: &str, target: &Target, work: F) -> ExitCode
where
    F: std::future::Future<Output = anyhow::Result<()>>,
{
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("sluice {command}: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(work) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sluice {command}: {e:#}");
            let (code, hint) = classify(&e, target);
            if let Some(hint) = hint {
                eprintln!("hint: {hint}");
            }
            ExitCode::from(code)
        }
    }
}

/// The exit code for an error, and what the user might do about it.
fn classify(e: &anyhow::Error, target: &Target) -> (u8, Option<String>) {
    if let Some(failure) = e.downcast_ref::<HttpFailure>() {
        return classify_http(failure, target);
    }
    match e.downcast_ref::<ClientError>() {
        Some(ClientError::Connect { .. }) | Some(ClientError::Timeout { .. }) => (
            3,
            Some(format!(
                "is a broker running at {}? Start one with `sluice serve`, or point --brokers (or SLUICE_BROKERS) at your cluster",
                target.addresses()
            )),
        ),
        Some(ClientError::HttpNotKafka { .. }) => (
            3,
            Some("point --brokers (or SLUICE_BROKERS) at the Kafka listener (port 9092 unless set otherwise), not the HTTP API".to_string()),
        ),
        Some(err) if err.code() == Some(NON_EMPTY_GROUP) => (
            1,
            Some("the group has active members: stop its consumers first (`sluice group describe GROUP` lists them), then try again".to_string()),
        ),
        Some(err) if matches!(err.code(), Some(MESSAGE_TOO_LARGE | RECORD_LIST_TOO_LARGE)) => (
            1,
            Some("the batch is larger than the topic accepts: raise the topic's max.message.bytes (`sluice topic alter-config TOPIC --set max.message.bytes=N`; the broker-wide default is message.max.bytes), or send smaller records".to_string()),
        ),
        Some(err) if err.code() == Some(UNKNOWN_TOPIC_OR_PARTITION) => (
            4,
            Some("`sluice topic list` shows the topics there are".to_string()),
        ),
        Some(err) if err.code() == Some(GROUP_ID_NOT_FOUND) => (
            4,
            Some("`sluice group list` shows the groups there are".to_string()),
        ),
        Some(err) if err.code() == Some(TOPIC_ALREADY_EXISTS) => (
            1,
            Some("`sluice topic describe NAME` shows it; `--if-not-exists` makes creating it again a no-op".to_string()),
        ),
        _ => (1, None),
    }
}

/// The exit code and hint for a failure of the HTTP API (`sql`, `view`): unreachable is 3, a
/// table or view that does not exist 4.
fn classify_http(failure: &HttpFailure, target: &Target) -> (u8, Option<String>) {
    match failure {
        HttpFailure::Unreachable { .. } => (
            3,
            Some(format!(
                "is `sluice serve` running with its HTTP API at {}? Point --http-url (or SLUICE_HTTP_URL) at it",
                target.http_url
            )),
        ),
        HttpFailure::Refused { error_code, .. } if error_code == "VIEWS_OFF" => (
            1,
            Some("that server runs without views: start it with --views on (the default)".into()),
        ),
        HttpFailure::Refused { status: 404, .. } => (
            4,
            Some("`sluice view list` shows the tables and views there are".into()),
        ),
        HttpFailure::Refused { .. } => (1, None),
    }
}

/// How a listing or description prints: a table for people, or one JSON document for scripts.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Output {
    #[default]
    Text,
    Json,
}

/// Prints `value` as one pretty JSON document (for `--format json`).
pub fn print_json(value: &serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("a JSON value always serializes")
    );
}

/// Parses `KEY=VALUE`.
pub fn key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

pub use sluice_types::now_ms;

#[cfg(test)]
mod tests {
    use super::Target;

    fn addresses(brokers: &str) -> String {
        let target = Target {
            brokers: brokers.to_string(),
            timeout: 1,
            http_url: String::new(),
            tls_ca: None,
            tls_cert: None,
            tls_key: None,
            user: None,
            password: None,
            sasl_mechanism: "SCRAM-SHA-512".into(),
        };
        target.addresses()
    }

    #[test]
    fn a_broker_without_a_port_is_on_9092() {
        assert_eq!(addresses("kafka-1"), "kafka-1:9092");
        assert_eq!(addresses("kafka-1:19092"), "kafka-1:19092");
        assert_eq!(addresses("a, b:1,c"), "a:9092,b:1,c:9092");
        assert_eq!(addresses("[::1]"), "[::1]:9092");
        assert_eq!(addresses("[::1]:9093"), "[::1]:9093");
        assert_eq!(addresses("::1"), "[::1]:9092");
        assert_eq!(addresses("10.0.0.7"), "10.0.0.7:9092");
    }
}
