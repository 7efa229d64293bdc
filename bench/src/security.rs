//! `--listener`: the figures over TLS and SASL_SSL beside plaintext (issue 15). One broker
//! serves a PLAINTEXT listener (`--listen`), an SSL one and a SASL_SSL one (SCRAM-SHA-512 and
//! OAUTHBEARER), with certificates, a signing key and a JWKS made here with `openssl`; every
//! client this benchmark makes for a listener's address gets its security settings
//! (`client_config`).
//!
//! Also measured: connection set-up (a new client to its first Metadata answer) per listener
//! and mechanism, and TLS handshakes per second (`openssl s_time`, new sessions only).

use anyhow::Context;
use rdkafka::ClientConfig;
use rdkafka::client::{ClientContext, OAuthToken};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

pub const PLAINTEXT: &str = "PLAINTEXT";
pub const SSL: &str = "SSL";
pub const SASL_SSL: &str = "SASL_SSL";
pub const LISTENERS: [&str; 3] = [PLAINTEXT, SSL, SASL_SSL];

const ADMIN: &str = "admin";
const ADMIN_PASSWORD: &str = "bench-secret";

/// Client settings, as (key, value) pairs.
type Settings = Vec<(String, String)>;

/// Security settings of the clients of each address.
fn registry() -> &'static Mutex<HashMap<String, Settings>> {
    static REGISTRY: OnceLock<Mutex<HashMap<String, Settings>>> = OnceLock::new();
    REGISTRY.get_or_init(Mutex::default)
}

/// A client of `bootstrap`, with the security settings of its listener, if any.
pub fn client_config(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap);
    let registry = registry().lock().unwrap_or_else(|p| p.into_inner());
    for (key, value) in registry.get(bootstrap).into_iter().flatten() {
        config.set(key, value);
    }
    config
}

/// The files a secured broker needs, made in `dir`.
pub struct SecurityFiles {
    pub keystore: PathBuf,
    pub ca: PathBuf,
    pub jwt_key: PathBuf,
    pub jwks: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) -> anyhow::Result<Vec<u8>> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .context("running openssl (the secured listeners' certificates are made with it)")?;
    anyhow::ensure!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(out.stdout)
}

impl SecurityFiles {
    /// A CA, the broker's certificate for 127.0.0.1 (key and chain in one PEM file), an RSA
    /// key for tokens and its JWKS.
    pub fn make(dir: &Path) -> anyhow::Result<SecurityFiles> {
        let days = ["-days", "2"];
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=bench-ca",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                days[0],
                days[1],
            ],
        )?;
        std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n")?;
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=broker",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
            ],
        )?;
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.pem",
                "-extfile",
                "san.ext",
                days[0],
                days[1],
            ],
        )?;
        let keystore = dir.join("keystore.pem");
        let mut pem = std::fs::read(dir.join("server.key"))?;
        pem.extend(std::fs::read(dir.join("server.pem"))?);
        std::fs::write(&keystore, pem)?;
        openssl(dir, &["genrsa", "-out", "jwt.key", "2048"])?;
        let modulus = String::from_utf8(openssl(
            dir,
            &["rsa", "-in", "jwt.key", "-noout", "-modulus"],
        )?)?;
        let hex = modulus.trim().trim_start_matches("Modulus=");
        let n: Vec<u8> = (0..hex.len() / 2)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16))
            .collect::<Result<_, _>>()?;
        let jwks = dir.join("jwks.json");
        std::fs::write(
            &jwks,
            format!(
                r#"{{"keys":[{{"kty":"RSA","use":"sig","alg":"RS256","kid":"bench","n":"{}","e":"AQAB"}}]}}"#,
                b64url(&n)
            ),
        )?;
        Ok(SecurityFiles {
            keystore,
            ca: dir.join("ca.pem"),
            jwt_key: dir.join("jwt.key"),
            jwks,
        })
    }

    /// The broker's settings for an SSL listener on `ssl` and a SASL_SSL one on `sasl_ssl`.
    pub fn broker_env(&self, ssl: &str, sasl_ssl: &str) -> Vec<(String, String)> {
        let path = |p: &Path| p.display().to_string();
        vec![
            (
                "SLUICE_LISTENERS".into(),
                format!("SSL://{ssl},SASL_SSL://{sasl_ssl}"),
            ),
            ("SLUICE_SSL_KEYSTORE_LOCATION".into(), path(&self.keystore)),
            (
                "SLUICE_SASL_ENABLED_MECHANISMS".into(),
                "SCRAM-SHA-512,OAUTHBEARER".into(),
            ),
            (
                "SLUICE_SASL_BOOTSTRAP_SCRAM".into(),
                format!(r#"SCRAM-SHA-512=[name={ADMIN},password="{ADMIN_PASSWORD}"]"#),
            ),
            (
                "SLUICE_SASL_OAUTHBEARER_JWKS_ENDPOINT_URL".into(),
                path(&self.jwks),
            ),
        ]
    }

    /// Registers the clients' settings of each listener.
    pub fn register(&self, ssl: &str, sasl_ssl: &str) {
        let ca = self.ca.display().to_string();
        let mut registry = registry().lock().unwrap_or_else(|p| p.into_inner());
        let tls = vec![
            ("security.protocol".to_string(), "SSL".to_string()),
            ("ssl.ca.location".to_string(), ca.clone()),
        ];
        registry.insert(ssl.to_string(), tls);
        registry.insert(sasl_ssl.to_string(), scram_settings(&ca));
    }

    /// A JWT for `subject`, signed RS256 by the key the JWKS holds, good for an hour.
    pub fn token(&self, subject: &str) -> anyhow::Result<String> {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)?
            .as_secs();
        let header = b64url(br#"{"alg":"RS256","typ":"JWT","kid":"bench"}"#);
        let claims = format!(r#"{{"sub":"{subject}","iat":{now},"exp":{}}}"#, now + 3600);
        let message = format!("{header}.{}", b64url(claims.as_bytes()));
        let mut child = Command::new("openssl")
            .args(["dgst", "-sha256", "-sign"])
            .arg(&self.jwt_key)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()?;
        use std::io::Write;
        child
            .stdin
            .take()
            .context("openssl's stdin")?
            .write_all(message.as_bytes())?;
        let out = child.wait_with_output()?;
        anyhow::ensure!(out.status.success(), "openssl dgst failed");
        Ok(format!("{message}.{}", b64url(&out.stdout)))
    }
}

fn scram_settings(ca: &str) -> Vec<(String, String)> {
    [
        ("security.protocol", "SASL_SSL"),
        ("ssl.ca.location", ca),
        ("sasl.mechanism", "SCRAM-SHA-512"),
        ("sasl.username", ADMIN),
        ("sasl.password", ADMIN_PASSWORD),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// base64url without padding (RFC 7515).
fn b64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// A client context that hands librdkafka a fixed OAUTHBEARER token.
struct Bearer(String);

impl ClientContext for Bearer {
    const ENABLE_REFRESH_OAUTH_TOKEN: bool = true;

    fn generate_oauth_token(
        &self,
        _config: Option<&str>,
    ) -> Result<OAuthToken, Box<dyn std::error::Error>> {
        let lifetime_ms = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)?
            .as_millis() as i64
            + 3_600_000;
        Ok(OAuthToken {
            token: self.0.clone(),
            principal_name: "bench".into(),
            lifetime_ms,
        })
    }
}

impl ConsumerContext for Bearer {}

/// The median time from a new client to its first Metadata answer, over `count` clients.
fn set_up_ms(
    count: usize,
    make: impl Fn() -> anyhow::Result<Box<dyn FnOnce() -> anyhow::Result<()>>>,
) -> anyhow::Result<f64> {
    let mut times = Vec::with_capacity(count);
    for _ in 0..count {
        let started = Instant::now();
        let connect = make()?;
        connect()?;
        times.push(started.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// Waits for the client's first Metadata answer, serving its callbacks meanwhile (librdkafka
/// asks for an OAUTHBEARER token through them).
fn first_metadata<C: ConsumerContext + 'static>(consumer: BaseConsumer<C>) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let _ = consumer.poll(Duration::ZERO);
        if consumer
            .fetch_metadata(None, Duration::from_millis(200))
            .is_ok()
        {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "no Metadata answer within 10 s");
    }
}

/// Connection set-up per listener and mechanism, and TLS handshakes per second.
pub fn connection_figures(
    files: &SecurityFiles,
    plaintext: &str,
    ssl: &str,
    sasl_ssl: &str,
) -> anyhow::Result<()> {
    const CLIENTS: usize = 50;
    let through = |address: &str, what: &str| {
        set_up_ms(CLIENTS, || {
            let c: BaseConsumer = client_config(address).create()?;
            Ok(Box::new(move || first_metadata(c)))
        })
        .with_context(|| format!("a client of the {what} listener"))
    };
    let plain = through(plaintext, PLAINTEXT)?;
    let tls = through(ssl, SSL)?;
    let scram = through(sasl_ssl, "SASL_SSL (SCRAM-SHA-512)")?;
    let token = files.token("bench")?;
    let ca = files.ca.display().to_string();
    let bearer = set_up_ms(CLIENTS, || {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", sasl_ssl)
            .set("security.protocol", "SASL_SSL")
            .set("ssl.ca.location", &ca)
            .set("sasl.mechanism", "OAUTHBEARER");
        let c: BaseConsumer<Bearer> = config.create_with_context(Bearer(token.clone()))?;
        Ok(Box::new(move || first_metadata(c)))
    })
    .context("a client of the SASL_SSL listener (OAUTHBEARER)")?;
    println!(
        "connection set-up, a new client to its first Metadata answer (median of {CLIENTS}): PLAINTEXT {plain:.1} ms, SSL {tls:.1} ms, SASL_SSL SCRAM-SHA-512 {scram:.1} ms, SASL_SSL OAUTHBEARER {bearer:.1} ms"
    );
    let handshakes = handshakes_per_second(ssl, Duration::from_secs(10))?;
    println!(
        "TLS handshakes (openssl s_time, new sessions, one client at a time): {handshakes:.0} per second"
    );
    Ok(())
}

/// `openssl s_time -new` against `address` for `time`: full handshakes per second.
fn handshakes_per_second(address: &str, time: Duration) -> anyhow::Result<f64> {
    let out = Command::new("openssl")
        .args(["s_time", "-connect", address, "-new", "-time"])
        .arg(time.as_secs().to_string())
        .output()
        .context("running openssl s_time")?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "1234 connections in 5.00s; 246.80 connections/user sec, ..." then a line
    // "1234 connections in 6 real seconds, ..."
    let line = text
        .lines()
        .find(|l| l.contains("connections in") && l.contains("real seconds"))
        .with_context(|| format!("openssl s_time said: {text}"))?;
    let mut words = line.split_whitespace();
    let count: f64 = words.next().context("a count")?.parse()?;
    let seconds: f64 = words.nth(2).context("seconds")?.parse()?;
    Ok(count / seconds.max(1.0))
}
