//! The broker under test: a child process (`sluice serve`, or Apache Kafka from `peer.rs`) on a
//! free loopback port with its own data directory, and its resource use read from /proc.

use anyhow::{Context, bail};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct BrokerProcess {
    child: Child,
    pub bootstrap: String,
    /// HOST:PORT of Sluice's HTTP API (metrics, the HTTP produce workload); Kafka has none.
    pub http: String,
    _data: tempfile::TempDir,
}

/// A free loopback port, as `127.0.0.1:PORT`.
pub fn free_loopback_address() -> anyhow::Result<String> {
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    Ok(format!("127.0.0.1:{port}"))
}

/// Waits until every address accepts connections, or kills the child and fails.
pub fn wait_listening(
    mut child: Child,
    addresses: &[&str],
    within: Duration,
) -> anyhow::Result<Child> {
    let deadline = Instant::now() + within;
    while addresses
        .iter()
        .any(|a| std::net::TcpStream::connect(a).is_err())
    {
        if Instant::now() > deadline || child.try_wait()?.is_some() {
            let _ = child.kill();
            let _ = child.wait();
            bail!("broker did not start listening on {addresses:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(child)
}

impl BrokerProcess {
    pub fn start(binary: &Path) -> anyhow::Result<BrokerProcess> {
        let data = tempfile::Builder::new()
            .prefix("sluice-bench")
            .tempdir_in(".")?;
        let bootstrap = free_loopback_address()?;
        let http = free_loopback_address()?;
        let child = Command::new(binary)
            .args([
                "serve",
                "--listen",
                &bootstrap,
                "--http-listen",
                &http,
                "--data-dir",
            ])
            .arg(data.path())
            .env("SLUICE_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let child = wait_listening(child, &[&bootstrap, &http], Duration::from_secs(20))?;
        Ok(BrokerProcess {
            child,
            bootstrap,
            http,
            _data: data,
        })
    }

    /// A broker started elsewhere (`peer.rs`), already listening; `http` is empty for Kafka.
    pub fn adopt(child: Child, bootstrap: String, data: tempfile::TempDir) -> BrokerProcess {
        BrokerProcess {
            child,
            bootstrap,
            http: String::new(),
            _data: data,
        }
    }

    /// User plus system CPU seconds the broker has used so far.
    pub fn cpu_seconds(&self) -> anyhow::Result<f64> {
        process_cpu_seconds(&self.child.id().to_string())
    }

    /// Produce requests answered so far, and the seconds the broker spent on them (from
    /// decoding a request until its answer is ready), read from its Prometheus metrics.
    /// Kafka has no such metrics endpoint here: (0, 0) for it.
    pub fn produce_requests(&self) -> anyhow::Result<(u64, f64)> {
        if self.http.is_empty() {
            return Ok((0, 0.0));
        }
        let metrics = crate::http::get(&self.http, "/metrics")?;
        let value = |name: &str| -> anyhow::Result<f64> {
            let prefix = format!("{name}{{api=\"Produce\"}} ");
            Ok(metrics
                .lines()
                .find_map(|l| l.strip_prefix(prefix.as_str()))
                .map(str::parse)
                .transpose()?
                .unwrap_or(0.0))
        };
        Ok((
            value("sluice_request_duration_seconds_count")? as u64,
            value("sluice_request_duration_seconds_sum")?,
        ))
    }

    /// Peak resident memory since the last reset, in MiB.
    pub fn peak_rss_mib(&self) -> anyhow::Result<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let line = status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .context("no VmHWM")?;
        let kib: f64 = line
            .split_whitespace()
            .nth(1)
            .context("VmHWM value")?
            .parse()?;
        Ok(kib / 1024.0)
    }

    /// Resets the peak resident memory counter (Linux clear_refs 5).
    pub fn reset_peak_rss(&self) {
        let _ = std::fs::write(format!("/proc/{}/clear_refs", self.child.id()), "5");
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        // SAFETY: sending a signal to our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

/// User plus system CPU seconds a process (`"self"`: this one) has used so far.
pub fn process_cpu_seconds(pid: &str) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after_name = stat.rsplit_once(')').context("malformed stat")?.1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // After the command name: state is field 3 of the full line, utime 14 and stime 15.
    let utime: f64 = fields[11].parse()?;
    let stime: f64 = fields[12].parse()?;
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok((utime + stime) / ticks)
}
