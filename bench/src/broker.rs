//! The broker under test: a child process (`sluice serve`, or Apache Kafka from `peer.rs`) on a
//! free loopback port with its own data directory, or several `sluice serve` forming one
//! cluster (`--brokers N`), and its resource use read from /proc (summed over the processes).

use anyhow::{Context, bail};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct BrokerProcess {
    /// One process per node: one, or the nodes of a cluster (`start_cluster`).
    children: Vec<Child>,
    /// Every node's Kafka listener, comma-separated (a bootstrap list).
    pub bootstrap: String,
    /// HOST:PORT of the first node's HTTP API (metrics, the HTTP produce workload); Kafka has
    /// none.
    pub http: String,
    /// Every node's HTTP API, for metrics summed over the nodes.
    https: Vec<String>,
    _data: Vec<tempfile::TempDir>,
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

/// The secured listeners of a broker started with `start_secured`.
pub struct Secured {
    pub ssl: String,
    pub sasl_ssl: String,
    pub files: crate::security::SecurityFiles,
}

impl BrokerProcess {
    pub fn start(binary: &Path) -> anyhow::Result<BrokerProcess> {
        BrokerProcess::start_with(binary, |_| Ok(Vec::new()))
    }

    /// One broker with SSL and SASL_SSL listeners beside its PLAINTEXT one (`--listener`).
    pub fn start_secured(binary: &Path) -> anyhow::Result<(BrokerProcess, Secured)> {
        let (ssl, sasl_ssl) = (free_loopback_address()?, free_loopback_address()?);
        let mut files = None;
        let broker = BrokerProcess::start_with(binary, |dir| {
            let made = crate::security::SecurityFiles::make(dir)?;
            let env = made.broker_env(&ssl, &sasl_ssl);
            files = Some(made);
            Ok(env)
        })?;
        let files = files.context("the security files")?;
        files.register(&ssl, &sasl_ssl);
        Ok((
            broker,
            Secured {
                ssl,
                sasl_ssl,
                files,
            },
        ))
    }

    /// One broker, its environment beside the defaults from `env` (given its data directory).
    fn start_with(
        binary: &Path,
        env: impl FnOnce(&Path) -> anyhow::Result<Vec<(String, String)>>,
    ) -> anyhow::Result<BrokerProcess> {
        let data = tempfile::Builder::new()
            .prefix("sluice-bench")
            .tempdir_in(".")?;
        let bootstrap = free_loopback_address()?;
        let http = free_loopback_address()?;
        let extra = env(data.path())?;
        let listening: Vec<String> = extra
            .iter()
            .filter(|(k, _)| k == "SLUICE_LISTENERS")
            .flat_map(|(_, v)| {
                v.split(',')
                    .filter_map(|l| l.split_once("://"))
                    .map(|(_, a)| a.to_string())
            })
            .collect();
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
            .envs(extra)
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let mut addresses: Vec<&str> = vec![&bootstrap, &http];
        addresses.extend(listening.iter().map(String::as_str));
        let child = wait_listening(child, &addresses, Duration::from_secs(20))?;
        Ok(BrokerProcess {
            children: vec![child],
            bootstrap,
            https: vec![http.clone()],
            http,
            _data: vec![data],
        })
    }

    /// `nodes` Sluice processes on loopback forming one cluster, each a controller (a voter
    /// of the metadata log) and a broker, once every one of them is a live broker.
    pub fn start_cluster(binary: &Path, nodes: usize) -> anyhow::Result<BrokerProcess> {
        if nodes <= 1 {
            return BrokerProcess::start(binary);
        }
        let addresses = |n: usize| -> anyhow::Result<Vec<String>> {
            (0..n).map(|_| free_loopback_address()).collect()
        };
        let kafka: Vec<String> = addresses(nodes)?;
        let https: Vec<String> = addresses(nodes)?;
        let controllers: Vec<String> = addresses(nodes)?;
        let voters: Vec<String> = controllers
            .iter()
            .enumerate()
            .map(|(i, a)| format!("{}@{a}", i + 1))
            .collect();
        let mut cluster = BrokerProcess {
            children: Vec::new(),
            bootstrap: kafka.join(","),
            http: https[0].clone(),
            https: https.clone(),
            _data: Vec::new(),
        };
        for i in 0..nodes {
            let data = tempfile::Builder::new()
                .prefix("sluice-bench")
                .tempdir_in(".")?;
            let node_id = (i + 1).to_string();
            let child = Command::new(binary)
                .args(["serve", "--node-id", &node_id, "--listen", &kafka[i]])
                .args([
                    "--http-listen",
                    &https[i],
                    "--controller-listen",
                    &controllers[i],
                ])
                .args(["--controllers", &voters.join(","), "--data-dir"])
                .arg(data.path())
                .env("SLUICE_LOG", "warn")
                .stdout(Stdio::null())
                .spawn()
                .with_context(|| format!("starting {}", binary.display()))?;
            // Kept at once, so that a failure below stops every node started.
            cluster.children.push(child);
            cluster._data.push(data);
        }
        cluster.wait_brokers(nodes, Duration::from_secs(60))?;
        Ok(cluster)
    }

    /// Waits until Metadata names `count` live brokers.
    fn wait_brokers(&mut self, count: usize, within: Duration) -> anyhow::Result<()> {
        use rdkafka::consumer::{BaseConsumer, Consumer};
        let client: BaseConsumer = crate::security::client_config(&self.bootstrap).create()?;
        let deadline = Instant::now() + within;
        loop {
            let live = client
                .fetch_metadata(None, Duration::from_secs(2))
                .map_or(0, |m| m.brokers().len());
            if live == count {
                return Ok(());
            }
            for child in &mut self.children {
                if let Some(status) = child.try_wait()? {
                    bail!("a cluster node exited ({status})");
                }
            }
            if Instant::now() > deadline {
                bail!("{live} of {count} brokers live after {within:?}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A broker started elsewhere (`peer.rs`), already listening; `http` is empty for Kafka.
    pub fn adopt(child: Child, bootstrap: String, data: tempfile::TempDir) -> BrokerProcess {
        BrokerProcess {
            children: vec![child],
            bootstrap,
            http: String::new(),
            https: Vec::new(),
            _data: vec![data],
        }
    }

    /// User plus system CPU seconds the broker has used so far (summed over the nodes).
    pub fn cpu_seconds(&self) -> anyhow::Result<f64> {
        self.children
            .iter()
            .map(|c| process_cpu_seconds(&c.id().to_string()))
            .sum()
    }

    /// Produce requests answered so far, and the seconds the broker spent on them (from
    /// decoding a request until its answer is ready), read from its Prometheus metrics and
    /// summed over the nodes. Kafka has no such metrics endpoint here: (0, 0) for it.
    pub fn produce_requests(&self) -> anyhow::Result<(u64, f64)> {
        let mut total = (0, 0.0);
        for http in &self.https {
            let (count, seconds) = produce_requests_of(http)?;
            total = (total.0 + count, total.1 + seconds);
        }
        Ok(total)
    }

    /// Peak resident memory since the last reset, in MiB (summed over the nodes).
    pub fn peak_rss_mib(&self) -> anyhow::Result<f64> {
        self.children.iter().map(|c| peak_rss_mib_of(c.id())).sum()
    }

    /// Resets the peak resident memory counter (Linux clear_refs 5).
    pub fn reset_peak_rss(&self) {
        for c in &self.children {
            let _ = std::fs::write(format!("/proc/{}/clear_refs", c.id()), "5");
        }
    }
}

fn produce_requests_of(http: &str) -> anyhow::Result<(u64, f64)> {
    let metrics = crate::http::get(http, "/metrics")?;
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

fn peak_rss_mib_of(pid: u32) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
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

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        for child in &mut self.children {
            // SAFETY: sending a signal to our own child.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        }
        for child in &mut self.children {
            let _ = child.wait();
        }
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
