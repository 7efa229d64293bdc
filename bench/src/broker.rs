//! The broker under test: a `sluice serve` child process on a free loopback port with its own
//! data directory, and its resource use read from /proc.

use anyhow::{Context, bail};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct BrokerProcess {
    child: Child,
    pub bootstrap: String,
    /// HOST:PORT of the HTTP API.
    pub http: String,
    _data: tempfile::TempDir,
}

impl BrokerProcess {
    pub fn start(binary: &Path) -> anyhow::Result<BrokerProcess> {
        let data = tempfile::Builder::new()
            .prefix("sluice-bench")
            .tempdir_in(".")?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let bootstrap = format!("127.0.0.1:{port}");
        let http_port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let http = format!("127.0.0.1:{http_port}");
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
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&bootstrap).is_err()
            || std::net::TcpStream::connect(&http).is_err()
        {
            if Instant::now() > deadline {
                let mut child = child;
                let _ = child.kill();
                let _ = child.wait();
                bail!("broker did not start listening on {bootstrap} and {http}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(BrokerProcess {
            child,
            bootstrap,
            http,
            _data: data,
        })
    }

    /// User plus system CPU seconds the broker has used so far.
    pub fn cpu_seconds(&self) -> anyhow::Result<f64> {
        process_cpu_seconds(&self.child.id().to_string())
    }

    /// Produce requests answered so far, and the seconds the broker spent on them (from
    /// decoding a request until its answer is ready), read from its Prometheus metrics.
    pub fn produce_requests(&self) -> anyhow::Result<(u64, f64)> {
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
