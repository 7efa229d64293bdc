//! Apache Kafka 4.4, the reference broker, run beside Sluice: one KRaft node in combined mode
//! (broker and controller) on loopback, in a fresh directory, from the Maven artifacts that
//! `bench/kafka/pom.xml` names; and Kafka's own perf tools (`kafka-producer-perf-test`,
//! `kafka-consumer-perf-test`) run as the shell scripts of Kafka's distribution run them.
//!
//! Owns: fetching the jars (Maven), the broker's settings (written down here, in `SERVER`),
//! starting it, and parsing what the tools print. Does not own the workloads (`versus.rs`).

use crate::broker::{BrokerProcess, free_loopback_address, wait_listening};
use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The broker's settings beyond the listeners and the log directory: Kafka's defaults, except
/// what a single node needs (internal topics of one replica) and no rebalance delay for the
/// first group member, which Kafka's own quick-start config also sets. Durability stays at
/// Kafka's default: the log is flushed by the OS, not per write (`flush.messages` unset).
const SERVER: &str = "\
process.roles=broker,controller
node.id=1
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
";

/// Warnings and errors only, to stderr: the broker's log file, and apart from the tools' figures
/// on stdout (the distribution logs INFO).
const LOG4J2: &str = "\
rootLogger.level = WARN
rootLogger.appenderRef.file.ref = FILE
appender.file.type = Console
appender.file.name = FILE
appender.file.target = SYSTEM_ERR
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
";

/// JVM options of `kafka-server-start.sh` and `kafka-run-class.sh` (heap, G1 settings).
const BROKER_JVM: &[&str] = &[
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-Djava.awt.headless=true",
];

/// Where Kafka's jars are, fetched with Maven on first use.
pub struct KafkaJars {
    lib: PathBuf,
}

impl KafkaJars {
    /// Copies Kafka 4.4's jars (broker, tools, Log4j) into `lib` unless they are there.
    pub fn fetch(lib: &Path) -> anyhow::Result<KafkaJars> {
        let marker = lib.join("kafka_2.13-4.4.0.jar");
        if !marker.exists() {
            eprintln!(
                "fetching Apache Kafka 4.4 from Maven Central into {}",
                lib.display()
            );
            let status = Command::new("mvn")
                .args([
                    "-q",
                    "-B",
                    "-f",
                    "bench/kafka/pom.xml",
                    "dependency:copy-dependencies",
                ])
                .arg(format!("-DoutputDirectory={}", lib.display()))
                .status()
                .context("running mvn (Maven is needed for --peer kafka)")?;
            anyhow::ensure!(
                status.success() && marker.exists(),
                "mvn could not fetch Kafka"
            );
        }
        Ok(KafkaJars {
            lib: lib.canonicalize()?,
        })
    }

    /// `java -cp <lib>/* CLASS`, with the JVM options given.
    fn java(&self, jvm: &[&str], class: &str, log4j2: &Path) -> Command {
        let mut command = Command::new("java");
        command
            .args(jvm)
            .arg(format!("-Dlog4j2.configurationFile={}", log4j2.display()))
            .arg("-cp")
            .arg(format!("{}/*", self.lib.display()))
            .arg(class);
        command
    }
}

/// A Kafka broker and the files its tools share.
pub struct KafkaBroker {
    pub process: BrokerProcess,
    jars: KafkaJars,
    log4j2: PathBuf,
}

impl KafkaBroker {
    /// Formats a fresh KRaft log directory and starts the broker with `heap` (`-Xmx`, `-Xms`).
    pub fn start(jars: KafkaJars, heap: &str) -> anyhow::Result<KafkaBroker> {
        let dir = tempfile::Builder::new()
            .prefix("kafka-bench")
            .tempdir_in(".")?;
        let bootstrap = free_loopback_address()?;
        let controller = free_loopback_address()?;
        let properties = dir.path().join("server.properties");
        let log4j2 = dir.path().join("log4j2.properties");
        std::fs::write(&log4j2, LOG4J2)?;
        std::fs::write(
            &properties,
            format!(
                "{SERVER}listeners=PLAINTEXT://{bootstrap},CONTROLLER://{controller}\n\
                 advertised.listeners=PLAINTEXT://{bootstrap}\n\
                 controller.quorum.bootstrap.servers={controller}\n\
                 log.dirs={}\n",
                dir.path().join("data").display()
            ),
        )?;
        let cluster_id = output(
            jars.java(&[], "kafka.tools.StorageTool", &log4j2)
                .arg("random-uuid"),
        )?;
        output(
            jars.java(&[], "kafka.tools.StorageTool", &log4j2)
                .args(["format", "--standalone", "-t", cluster_id.trim(), "-c"])
                .arg(&properties),
        )?;
        let log = std::fs::File::create(dir.path().join("kafka.log"))?;
        let xmx = format!("-Xmx{heap}");
        let xms = format!("-Xms{heap}");
        let mut jvm = vec![xmx.as_str(), xms.as_str()];
        jvm.extend_from_slice(BROKER_JVM);
        let child = jars
            .java(&jvm, "kafka.Kafka", &log4j2)
            .arg(&properties)
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting Kafka (java)")?;
        let child = wait_listening(child, &[&bootstrap], Duration::from_secs(60))?;
        let process = BrokerProcess::adopt(child, bootstrap, dir);
        wait_for_broker_registered(&process.bootstrap)?;
        Ok(KafkaBroker {
            process,
            jars,
            log4j2,
        })
    }

    /// `kafka-producer-perf-test`: `records` of `size` bytes at full speed with `acks`.
    pub fn producer_perf(
        &self,
        target: &str,
        topic: &str,
        records: u64,
        size: usize,
        acks: &str,
    ) -> anyhow::Result<ProducerPerf> {
        let out = output(
            self.jars
                .java(
                    &[],
                    "org.apache.kafka.tools.ProducerPerformance",
                    &self.log4j2,
                )
                .args(["--topic", topic, "--throughput", "-1"])
                .args(["--num-records", &records.to_string()])
                .args(["--record-size", &size.to_string()])
                .arg("--producer-props")
                .arg(format!("bootstrap.servers={target}"))
                .arg(format!("acks={acks}")),
        )?;
        ProducerPerf::parse(&out)
    }

    /// `kafka-consumer-perf-test`: reads `records` of `topic` in a fresh group; returns the
    /// records/s of its fetch phase (`fetch.nMsg.sec`: after the group formed).
    pub fn consumer_perf(&self, target: &str, topic: &str, records: u64) -> anyhow::Result<f64> {
        let out = output(
            self.jars
                .java(
                    &[],
                    "org.apache.kafka.tools.ConsumerPerformance",
                    &self.log4j2,
                )
                .args(["--bootstrap-server", target, "--topic", topic])
                .args(["--num-records", &records.to_string()])
                .args(["--timeout", "60000"]),
        )?;
        parse_consumer_perf(&out)
    }
}

/// The summary line of `kafka-producer-perf-test`.
pub struct ProducerPerf {
    pub records_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

impl ProducerPerf {
    /// `N records sent, R records/sec (M MB/sec), A ms avg latency, X ms max latency,
    /// P ms 50th, P ms 95th, P ms 99th, P ms 99.9th.`
    fn parse(out: &str) -> anyhow::Result<ProducerPerf> {
        let line = out
            .lines()
            .rev()
            .find(|l| l.contains("records sent") && l.contains("50th"))
            .with_context(|| format!("no summary in kafka-producer-perf-test's output:\n{out}"))?;
        let number_before = |label: &str| -> anyhow::Result<f64> {
            let head = &line[..line.find(label).context("label")?];
            let word = head.split_whitespace().last().context("number")?;
            Ok(word.trim_start_matches('(').parse()?)
        };
        Ok(ProducerPerf {
            records_per_s: number_before("records/sec")?,
            p50_ms: number_before("ms 50th")?,
            p99_ms: number_before("ms 99th")?,
        })
    }
}

/// `start.time, end.time, MB, MB.sec, nMsg, nMsg.sec, rebalance.time.ms, fetch.time.ms,
/// fetch.MB.sec, fetch.nMsg.sec`: the last field of the line after the header.
fn parse_consumer_perf(out: &str) -> anyhow::Result<f64> {
    let mut lines = out.lines().skip_while(|l| !l.starts_with("start.time"));
    lines.next();
    let row = lines
        .next()
        .with_context(|| format!("no figures in kafka-consumer-perf-test's output:\n{out}"))?;
    let fields: Vec<&str> = row.split(',').map(str::trim).collect();
    anyhow::ensure!(
        fields.len() == 10,
        "unexpected kafka-consumer-perf-test row {row:?}"
    );
    let consumed: f64 = fields[4].parse()?;
    anyhow::ensure!(
        consumed > 0.0,
        "kafka-consumer-perf-test consumed nothing: {row:?}"
    );
    Ok(fields[9].parse()?)
}

/// Runs a command to completion; its stdout, or an error with both streams.
fn output(command: &mut Command) -> anyhow::Result<String> {
    let done = command.stdin(Stdio::null()).output()?;
    let stdout = String::from_utf8_lossy(&done.stdout).into_owned();
    if !done.status.success() {
        bail!(
            "{command:?} failed ({}):\n{stdout}\n{}",
            done.status,
            String::from_utf8_lossy(&done.stderr)
        );
    }
    Ok(stdout)
}

/// A KRaft broker accepts connections before it has registered with its controller; topics
/// can be created only once Metadata lists it.
fn wait_for_broker_registered(bootstrap: &str) -> anyhow::Result<()> {
    let consumer = crate::load::consumer(bootstrap)?;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        use rdkafka::consumer::Consumer;
        if let Ok(metadata) = consumer.fetch_metadata(None, Duration::from_secs(2))
            && !metadata.brokers().is_empty()
        {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            bail!("Kafka at {bootstrap} never listed a broker in Metadata");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_kafka_4_4_tools_print() {
        let produced = "1000000 records sent, 177556.818182 records/sec (16.93 MB/sec), \
            1194.28 ms avg latency, 1879.00 ms max latency, 1176 ms 50th, 1762 ms 95th, \
            1854 ms 99th, 1876 ms 99.9th.\n";
        let p = ProducerPerf::parse(produced).unwrap();
        assert_eq!(p.records_per_s, 177556.818182);
        assert_eq!(p.p50_ms, 1176.0);
        assert_eq!(p.p99_ms, 1854.0);
        let consumed = "Warning: --messages is deprecated.\n\
            start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec\n\
            2026-12-05 00:38:40:233, 2026-12-05 00:38:41:985, 95.3674, 54.4335, 1000000, 570776.2557, 679, 1073, 88.8792, 931966.4492\n";
        assert_eq!(parse_consumer_perf(consumed).unwrap(), 931966.4492);
        assert!(parse_consumer_perf("start.time, end.time\n").is_err());
    }
}
