//! The client commands of the `sluice` binary: `topic`, `produce`, `consume`, `cluster`.
//! Each talks to a cluster over the Kafka protocol through `sluice-client`, never by reading
//! data files, so it works against any Kafka-compatible broker.
//!
//! Owns: argument shapes, output formats, exit codes and the hints in error messages. Not:
//! any protocol detail (that is `sluice-client`).
//!
//! Exit codes: 0 done; 1 the cluster refused or failed the request; 2 bad usage (clap's);
//! 3 no broker reachable; 4 the named topic or group does not exist.

pub mod cluster;
pub mod consume;
pub mod group;
pub mod membership;
pub mod produce;
pub mod topic;

use sluice_client::data::{self, EARLIEST, LATEST};
use sluice_client::{Client, ClientError};
use std::process::ExitCode;
use std::time::Duration;

/// Where the cluster is; shared by every client command.
#[derive(clap::Args, Debug, Clone)]
pub struct Target {
    /// Brokers to bootstrap from, HOST:PORT[,HOST:PORT...].
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
}

impl Target {
    pub async fn connect(&self) -> anyhow::Result<Client> {
        let timeout = Duration::from_secs(self.timeout.max(1));
        Ok(Client::connect(&self.brokers, "sluice-cli", timeout).await?)
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
    match e.downcast_ref::<ClientError>() {
        Some(ClientError::Connect { .. }) | Some(ClientError::Timeout { .. }) => (
            3,
            Some(format!(
                "is a broker running at {}? Start one with `sluice serve`, or point --brokers (or SLUICE_BROKERS) at your cluster",
                target.brokers
            )),
        ),
        Some(err) if err.code() == Some(3) => (
            4,
            Some("`sluice topic list` shows the topics there are".to_string()),
        ),
        Some(err) if err.code() == Some(69) => (
            4,
            Some("`sluice group list` shows the groups there are".to_string()),
        ),
        Some(err) if err.code() == Some(36) => (
            1,
            Some("`sluice topic describe NAME` shows it; `--if-not-exists` makes creating it again a no-op".to_string()),
        ),
        _ => (1, None),
    }
}

/// Parses `KEY=VALUE`.
pub fn key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Where consumption starts, in every partition read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    Earliest,
    Latest,
    Offset(i64),
    Timestamp(i64),
}

pub fn parse_start(s: &str) -> Result<Start, String> {
    match s {
        "earliest" | "beginning" | "start" => Ok(Start::Earliest),
        "latest" | "end" => Ok(Start::Latest),
        _ => {
            if let Some(ts) = s.strip_prefix('@') {
                return parse_timestamp(ts).map(Start::Timestamp);
            }
            match s.parse::<i64>() {
                Ok(offset) if offset >= 0 => Ok(Start::Offset(offset)),
                _ => Err(format!(
                    "expected earliest, latest, an offset or @TIMESTAMP, got {s:?}"
                )),
            }
        }
    }
}

/// RFC 3339 (`2026-11-23T09:00:00Z`, `2026-11-23T10:00:00+01:00`) or milliseconds since the epoch.
pub fn parse_timestamp(s: &str) -> Result<i64, String> {
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    let at = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("{s:?} is neither epoch milliseconds nor an RFC 3339 time: {e}"))?;
    Ok((at.unix_timestamp_nanos() / 1_000_000) as i64)
}

pub async fn start_offset(
    client: &mut Client,
    topic: &str,
    partition: i32,
    from: Start,
) -> anyhow::Result<i64> {
    Ok(match from {
        Start::Earliest => data::list_offset(client, topic, partition, EARLIEST).await?,
        Start::Latest => data::list_offset(client, topic, partition, LATEST).await?,
        Start::Offset(offset) => offset,
        Start::Timestamp(ts) => data::list_offset(client, topic, partition, ts).await?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts() {
        assert_eq!(parse_start("earliest"), Ok(Start::Earliest));
        assert_eq!(parse_start("latest"), Ok(Start::Latest));
        assert_eq!(parse_start("42"), Ok(Start::Offset(42)));
        assert_eq!(
            parse_start("@1700000000000"),
            Ok(Start::Timestamp(1_700_000_000_000))
        );
        assert_eq!(
            parse_start("@2023-11-14T22:13:20Z"),
            Ok(Start::Timestamp(1_700_000_000_000))
        );
        assert_eq!(
            parse_start("@2023-11-14T23:13:20+01:00"),
            Ok(Start::Timestamp(1_700_000_000_000))
        );
        assert!(parse_start("-1").is_err());
        assert!(parse_start("@yesterday").is_err());
        assert!(parse_start("soon").is_err());
    }
}
