//! `sluice-bench`: end-to-end figures for Sluice, measured with an independent client
//! (librdkafka through the `rdkafka` crate) against the real `sluice` binary.
//!
//! Prints, per workload: records/s, MB/s, the broker's CPU seconds (total and per million
//! records) and its peak resident memory; and end-to-end latency percentiles at a fixed rate.
//! Client and broker share this machine, so figures are for comparison run against run, on
//! the same machine. See docs/benchmarks.md.

mod broker;
mod groups;
mod http;
mod load;
mod peer;
mod security;
mod txn;
mod versus;

use broker::BrokerProcess;
use clap::Parser;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser, Clone)]
#[command(about = "End-to-end Sluice benchmark over the Kafka protocol")]
struct Args {
    /// The sluice binary to measure (build it with `cargo build --release`).
    #[arg(long, default_value = "target/release/sluice")]
    sluice: PathBuf,
    /// Records per throughput workload.
    #[arg(long, default_value_t = 1_000_000)]
    records: u64,
    /// Seconds of each latency run (0 skips them).
    #[arg(long, default_value_t = 10)]
    latency_seconds: u64,
    /// Records per second of the latency runs.
    #[arg(long, default_value_t = 10_000)]
    latency_rate: u64,
    /// Consumers reading each workload at once (each reads every record); the consume rate
    /// printed is the total delivered. More than one shows what the broker serves when a
    /// single client is the limit.
    #[arg(long, default_value_t = 1)]
    consumers: usize,
    /// Passes per throughput workload; the figures printed are medians.
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Only these workloads (substring match on the name), e.g. `acks=all`.
    #[arg(long)]
    only: Option<String>,
    /// Members of the group workloads (`group settle`, `group commits`).
    #[arg(long, default_value_t = 10)]
    group_members: usize,
    /// A topic config for every topic the benchmark creates, e.g. `flush.ms=60000`; repeatable.
    #[arg(long = "topic-config", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    topic_configs: Vec<(String, String)>,
    /// Sluice nodes to measure, as one cluster on loopback (each a controller and a broker).
    /// Above one, every topic the benchmark creates has that many replicas and, unless
    /// `--topic-config` says otherwise, `min.insync.replicas` min(2, N): the replicated
    /// figures are `--brokers 3` beside `--brokers 1`.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=9))]
    brokers: u16,
    /// Keep each pass's topic instead of deleting it once measured. Every pass then writes
    /// into memory the machine has not used lately (see docs/benchmarks.md, "Fresh memory"),
    /// and the data directory grows by every pass (about 13 GB for a full run).
    #[arg(long)]
    keep_topics: bool,
    /// Run the throughput and latency workloads against this broker too, in alternating passes
    /// with Sluice: `kafka` is Apache Kafka 4.4 in KRaft combined mode, fetched from Maven
    /// Central (needs java and mvn). See docs/benchmarks.md, "Beside Apache Kafka".
    #[arg(long, value_parser = ["kafka"])]
    peer: Option<String>,
    /// Where Kafka's jars are kept (fetched there with Maven when missing).
    #[arg(long, default_value = "target/kafka-peer/lib")]
    kafka_lib: PathBuf,
    /// Kafka's heap (`-Xmx` and `-Xms`), as `kafka-server-start.sh` sets it.
    #[arg(long, default_value = "1G")]
    kafka_heap: String,
    /// With `--peer kafka`: skip Kafka's perf tools (`kafka-producer-perf-test`, ...).
    #[arg(long)]
    no_kafka_tools: bool,
    /// Listeners to run the throughput workloads through, comma-separated, in alternating
    /// passes on one broker: PLAINTEXT, SSL, SASL_SSL (SCRAM-SHA-512). With a secured one, the
    /// ratios to PLAINTEXT (when listed), connection set-up per listener and mechanism
    /// (OAUTHBEARER too) and TLS handshakes per second are printed as well. See
    /// docs/benchmarks.md, "Security".
    #[arg(long, value_delimiter = ',', default_value = "PLAINTEXT", value_parser = security::LISTENERS)]
    listener: Vec<String>,
    /// Measure nothing: start the brokers (Sluice, and the peer with `--peer`), print a line
    /// `sluice BOOTSTRAP` (and `kafka BOOTSTRAP`), and keep them up until stdin closes. For
    /// the scripts in `bench/scripts`, which take a bootstrap, to run beside Kafka.
    #[arg(long)]
    serve: bool,
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected KEY=VALUE, got {s:?}"))
}

struct Workload {
    name: String,
    size: usize,
    partitions: i32,
    acks: &'static str,
    /// Producer settings beyond the defaults of `load::producer`.
    producer_extra: &'static [(&'static str, &'static str)],
}

fn workloads() -> Vec<Workload> {
    let mut out = Vec::new();
    for size in [100usize, 1024] {
        for partitions in [1, 8] {
            for acks in ["1", "all"] {
                let name = format!("{size}B p={partitions} acks={acks}");
                out.push(Workload {
                    name,
                    size,
                    partitions,
                    acks,
                    producer_extra: &[],
                });
            }
        }
    }
    out
}

/// The middle value (the upper of the two middle ones for an even count).
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// A workload or run label as part of a topic name.
fn topic_label(label: &str) -> String {
    label.replace(['=', '.', ' '], "-")
}

/// Creates `topic` (one partition, with `configs`) and measures end-to-end latency on it at
/// `--latency-rate` for `--latency-seconds`.
fn latency_on(
    bootstrap: &str,
    topic: &str,
    args: &Args,
    producer_extra: &[(&str, &str)],
) -> anyhow::Result<hdrhistogram::Histogram<u64>> {
    create_topic(bootstrap, topic, 1, args)?;
    load::latency(
        bootstrap,
        topic,
        args.latency_rate,
        Duration::from_secs(args.latency_seconds),
        producer_extra,
    )
}

fn admin(bootstrap: &str) -> anyhow::Result<AdminClient<DefaultClientContext>> {
    Ok(security::client_config(bootstrap).create()?)
}

fn delete_topic(bootstrap: &str, name: &str) -> anyhow::Result<()> {
    let admin = admin(bootstrap)?;
    let results = futures_executor::block_on(admin.delete_topics(&[name], &AdminOptions::new()))?;
    for r in results {
        r.map_err(|(t, e)| anyhow::anyhow!("deleting {t}: {e}"))?;
    }
    Ok(())
}

/// Creates `name` with `partitions`, `--brokers` replicas and the `--topic-config`s (with
/// several replicas, `min.insync.replicas` min(2, replicas) unless given).
fn create_topic(bootstrap: &str, name: &str, partitions: i32, args: &Args) -> anyhow::Result<()> {
    let admin = admin(bootstrap)?;
    let replicas = i32::from(args.brokers);
    let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(replicas));
    let min_insync = replicas.min(2).to_string();
    let given = |key: &str| args.topic_configs.iter().any(|(k, _)| k == key);
    if replicas > 1 && !given("min.insync.replicas") {
        topic = topic.set("min.insync.replicas", &min_insync);
    }
    for (key, value) in &args.topic_configs {
        topic = topic.set(key, value);
    }
    let results = futures_executor::block_on(admin.create_topics(&[topic], &AdminOptions::new()))?;
    for r in results {
        r.map_err(|(t, e)| anyhow::anyhow!("creating {t}: {e}"))?;
    }
    Ok(())
}

/// One produce-then-consume pass of a workload.
struct Run {
    produce_records_per_s: f64,
    produce_cpu_s_per_m: f64,
    /// This process's CPU (librdkafka's threads, mostly) per million records produced.
    client_produce_cpu_s_per_m: f64,
    /// Produce requests the broker answered, and its mean time on one (decoded to answered).
    produce_requests: u64,
    produce_request_ms: f64,
    /// Records/s streamed to all consumers together, after each one's first batch.
    consume_records_per_s: f64,
    consume_cpu_s_per_m: f64,
    /// The slowest consumer's wait from `assign` to its first batch.
    consume_first_records_ms: f64,
}

fn run_workload(
    broker: &BrokerProcess,
    w: &Workload,
    topic: &str,
    args: &Args,
) -> anyhow::Result<Run> {
    run_workload_on(broker, &broker.bootstrap, w, topic, args)
}

/// `run_workload` through the listener at `bootstrap` (`--listener`).
fn run_workload_on(
    broker: &BrokerProcess,
    bootstrap: &str,
    w: &Workload,
    topic: &str,
    args: &Args,
) -> anyhow::Result<Run> {
    let (records, consumers) = (args.records, args.consumers);
    create_topic(bootstrap, topic, w.partitions, args)?;
    let millions = records as f64 / 1e6;
    let cpu_before = broker.cpu_seconds()?;
    let client_cpu_before = broker::process_cpu_seconds("self")?;
    let p = load::producer(bootstrap, w.acks, w.producer_extra)?;
    let requests_before = broker.produce_requests()?;
    let produced = load::produce(&p, topic, w.partitions, records, w.size)?;
    let requests_after = broker.produce_requests()?;
    drop(p);
    // Less the warm-up record's request.
    let produce_requests = (requests_after.0 - requests_before.0).saturating_sub(1);
    let produce_cpu = broker.cpu_seconds()? - cpu_before;
    let client_produce_cpu = broker::process_cpu_seconds("self")? - client_cpu_before;
    let cpu_before = broker.cpu_seconds()?;
    // Each consumer reads every record; the rate is the sum of their streaming rates.
    let consumed = std::thread::scope(|scope| -> anyhow::Result<Vec<load::Consumed>> {
        let readers: Vec<_> = (0..consumers.max(1))
            .map(|_| {
                // The warm-up record, then the measured ones.
                scope.spawn(|| load::consume(bootstrap, topic, w.partitions, records + 1))
            })
            .collect();
        readers
            .into_iter()
            .map(|reader| {
                reader
                    .join()
                    .map_err(|_| anyhow::anyhow!("consumer thread panicked"))?
            })
            .collect()
    })?;
    let delivered = records * consumers.max(1) as u64;
    let consume_cpu = broker.cpu_seconds()? - cpu_before;
    let first_records = consumed.iter().map(|c| c.first_records).max();
    if !args.keep_topics {
        delete_topic(bootstrap, topic)?;
    }
    Ok(Run {
        produce_records_per_s: records as f64 / produced.as_secs_f64(),
        produce_cpu_s_per_m: produce_cpu / millions,
        client_produce_cpu_s_per_m: client_produce_cpu / millions,
        produce_requests,
        produce_request_ms: (requests_after.1 - requests_before.1) * 1e3
            / (requests_after.0 - requests_before.0).max(1) as f64,
        consume_records_per_s: consumed.iter().map(load::Consumed::records_per_s).sum(),
        consume_cpu_s_per_m: consume_cpu / (delivered as f64 / 1e6),
        consume_first_records_ms: first_records.unwrap_or_default().as_secs_f64() * 1e3,
    })
}

/// Idempotent produce against plain `acks=all`, 100-byte records: passes cycle through the
/// arms so that all meet the same machine (see "Fresh memory" in docs/benchmarks.md), and the
/// cost is the median of each cycle's ratio. The middle arm, plain with one request in flight,
/// shows what the client's pipelining is worth: librdkafka's idempotent producer keeps one
/// Produce request in flight per partition whatever `max.in.flight` says (it compares its
/// count of in-flight *records* with the limit of 5 *requests*; see docs/benchmarks.md).
fn run_idempotence_cost(broker: &BrokerProcess, args: &Args) -> anyhow::Result<()> {
    const ARMS: [(&str, &[(&str, &str)]); 3] = [
        ("acks=all", &[]),
        ("acks=all in-flight=1", &[("max.in.flight", "1")]),
        ("idempotent", &[("enable.idempotence", "true")]),
    ];
    for partitions in [1, 8] {
        // runs[arm][pass]
        let mut runs: Vec<Vec<Run>> = ARMS.iter().map(|_| Vec::new()).collect();
        for pass in 0..args.repeat.max(1) {
            for (arm, (name, extra)) in ARMS.iter().enumerate() {
                let w = Workload {
                    name: format!("100B p={partitions} {name}"),
                    size: 100,
                    partitions,
                    acks: "all",
                    producer_extra: extra,
                };
                let topic = format!("idem-{arm}-{partitions}-{pass}");
                runs[arm].push(run_workload(broker, &w, &topic, args)?);
            }
        }
        let mut line = format!("idempotence p={partitions}:");
        for (arm, (name, _)) in ARMS.iter().enumerate() {
            let of = |f: fn(&Run) -> f64| median(runs[arm].iter().map(f).collect());
            line += &format!(
                " {name} {:.0} r/s (CPU s/M broker {:.3}, client {:.3}; {:.0} Produce requests, broker {:.2} ms each);",
                of(|r| r.produce_records_per_s),
                of(|r| r.produce_cpu_s_per_m),
                of(|r| r.client_produce_cpu_s_per_m),
                of(|r| r.produce_requests as f64),
                of(|r| r.produce_request_ms),
            );
        }
        let ratio = |over: usize| {
            let ratios: Vec<f64> = runs[2]
                .iter()
                .zip(&runs[over])
                .map(|(i, p)| i.produce_records_per_s / p.produce_records_per_s)
                .collect();
            let shown: Vec<f64> = ratios
                .iter()
                .map(|r| (r * 1000.0).round() / 1000.0)
                .collect();
            format!("{:.3} {shown:?}", median(ratios))
        };
        println!(
            "{line} idempotent/acks=all {}, idempotent/in-flight=1 {} (medians of {} cycles)",
            ratio(0),
            ratio(1),
            runs[2].len()
        );
    }
    Ok(())
}

/// Transactional produce: transactions of 100 and of 1,000 records of 100 bytes to one
/// partition, from 1, 4 and 8 producers at once; median of `--repeat` passes.
fn run_transactions(broker: &BrokerProcess, args: &Args) -> anyhow::Result<()> {
    for (records, producers, transactions) in [
        (100u64, 1usize, 1_000u64),
        (100, 4, 500),
        (100, 8, 250),
        (1_000, 1, 200),
    ] {
        let mut rates = Vec::new();
        let mut cpu = Vec::new();
        for r in 0..args.repeat.max(1) {
            let topic = format!("txn-{records}-{producers}-{r}");
            create_topic(&broker.bootstrap, &topic, 1, args)?;
            let cpu_before = broker.cpu_seconds()?;
            let run = txn::run(
                &broker.bootstrap,
                &topic,
                producers,
                transactions,
                records,
                100,
            )?;
            let total_records = (run.transactions * records) as f64;
            rates.push(run.transactions as f64 / run.elapsed.as_secs_f64());
            cpu.push((broker.cpu_seconds()? - cpu_before) / (total_records / 1e6));
            if !args.keep_topics {
                delete_topic(&broker.bootstrap, &topic)?;
            }
        }
        let mut sorted = rates.clone();
        sorted.sort_by(f64::total_cmp);
        cpu.sort_by(f64::total_cmp);
        let median = sorted[sorted.len() / 2];
        println!(
            "transactions of {records} x 100 B, {producers} producer(s): {median:.0} transactions/s, {:.0} records/s, broker CPU {:.2} s per million records (median of {}; runs {:?})",
            median * records as f64,
            cpu[cpu.len() / 2],
            rates.len(),
            rates.iter().map(|r| r.round() as i64).collect::<Vec<_>>()
        );
    }
    Ok(())
}

/// Partitions of the group workloads' topic (the figure: 10 members over 60).
const GROUP_PARTITIONS: usize = 60;
const COMMIT_SECONDS: u64 = 5;

/// Creates a topic of `GROUP_PARTITIONS` and runs one group over it.
fn group_run(
    broker: &BrokerProcess,
    args: &Args,
    topic: &str,
    members: usize,
    protocol: &str,
    commits: Option<(u64, groups::CommitStyle)>,
) -> anyhow::Result<(groups::Settled, Option<f64>)> {
    create_topic(&broker.bootstrap, topic, GROUP_PARTITIONS as i32, args)?;
    groups::settle_and_commit(
        &broker.bootstrap,
        topic,
        GROUP_PARTITIONS,
        members,
        protocol,
        commits,
    )
}

fn run_group_workloads(
    broker: &BrokerProcess,
    args: &Args,
    wanted: impl Fn(&str) -> bool,
) -> anyhow::Result<()> {
    let members = args.group_members.clamp(1, GROUP_PARTITIONS);
    for protocol in ["classic", "consumer"] {
        let name = format!("group settle {protocol}");
        if !wanted(&name) {
            continue;
        }
        let mut times = Vec::new();
        for r in 0..args.repeat.max(1) {
            let topic = format!("group-{protocol}-{r}");
            let (settled, _) = group_run(broker, args, &topic, members, protocol, None)?;
            times.push(settled.after_last_join.as_secs_f64() * 1e3);
        }
        times.sort_by(f64::total_cmp);
        println!(
            "{name}: {members} members over {GROUP_PARTITIONS} partitions settle {:.0} ms after the last join (median of {}; runs {:?})",
            times[times.len() / 2],
            times.len(),
            times.iter().map(|t| t.round() as i64).collect::<Vec<_>>()
        );
    }
    for (name, style) in [
        ("group commits sync", groups::CommitStyle::Sync),
        ("group commits pipelined", groups::CommitStyle::Pipelined),
    ] {
        if !wanted(name) {
            continue;
        }
        let topic = format!("group-commits-{}", name.replace(' ', "-"));
        let cpu_before = broker.cpu_seconds()?;
        let commits = Some((COMMIT_SECONDS, style));
        let (_, rate) = group_run(broker, args, &topic, members, "consumer", commits)?;
        let rate = rate.unwrap_or_default();
        let cpu = broker.cpu_seconds()? - cpu_before;
        println!(
            "{name}: {rate:.0} OffsetCommits/s answered from {members} members ({} partitions each), broker CPU {:.2} s in all",
            GROUP_PARTITIONS / members,
            cpu
        );
    }
    Ok(())
}

/// The latency runs: librdkafka's defaults (acks=all, linger.ms=5), then without linger.
const LATENCY_RUNS: [(&str, &[(&str, &str)]); 3] = [
    ("defaults", &[]),
    ("linger.ms=0", &[("linger.ms", "0")]),
    ("linger.ms=0 acks=1", &[("linger.ms", "0"), ("acks", "1")]),
];

/// Connections posting at once in the HTTP produce workload.
const HTTP_CONNECTIONS: usize = 4;
/// Records per HTTP produce request (the figure).
const HTTP_BATCH_RECORDS: usize = 100;

/// HTTP produce: batches of 100 records of 100 bytes, `--records` in all, median of
/// `--repeat` passes on fresh topics.
fn run_http_produce(broker: &BrokerProcess, args: &Args) -> anyhow::Result<()> {
    let batches = (args.records as usize / HTTP_BATCH_RECORDS).max(1);
    let mut rates = Vec::new();
    let mut cpu = Vec::new();
    for r in 0..args.repeat.max(1) {
        let topic = format!("http-{r}");
        create_topic(&broker.bootstrap, &topic, 1, args)?;
        let cpu_before = broker.cpu_seconds()?;
        let elapsed = http::produce(
            &broker.http,
            &topic,
            HTTP_CONNECTIONS,
            batches,
            HTTP_BATCH_RECORDS,
            100,
        )?;
        let records = (batches * HTTP_BATCH_RECORDS) as f64;
        rates.push(records / elapsed.as_secs_f64());
        cpu.push((broker.cpu_seconds()? - cpu_before) / (records / 1e6));
        if !args.keep_topics {
            delete_topic(&broker.bootstrap, &topic)?;
        }
    }
    rates.sort_by(f64::total_cmp);
    cpu.sort_by(f64::total_cmp);
    println!(
        "http produce: {:.0} records/s in requests of {HTTP_BATCH_RECORDS} records of 100 B over {HTTP_CONNECTIONS} connections (acks=all), broker CPU {:.2} s per million (median of {}; runs {:?})",
        rates[rates.len() / 2],
        cpu[cpu.len() / 2],
        rates.len(),
        rates.iter().map(|r| r.round() as i64).collect::<Vec<_>>()
    );
    Ok(())
}

/// One row of the throughput table: the medians of `runs`, then `suffix`.
fn print_throughput_row(name: &str, w: &Workload, runs: &[Run], peak_mib: f64, suffix: &str) {
    let of = |f: fn(&Run) -> f64| median(runs.iter().map(f).collect());
    let mb = |records_per_s: f64| records_per_s * w.size as f64 / 1e6;
    let produce = of(|r| r.produce_records_per_s);
    let consume = of(|r| r.consume_records_per_s);
    println!(
        "{:<24} {:>11.0} {:>8.1} {:>10.3} {:>11.0} {:>8.1} {:>10.3} {:>9.0} {:>9.1}{suffix}",
        name,
        produce,
        mb(produce),
        of(|r| r.produce_cpu_s_per_m),
        consume,
        mb(consume),
        of(|r| r.consume_cpu_s_per_m),
        of(|r| r.consume_first_records_ms),
        peak_mib
    );
}

fn print_throughput_header() {
    println!(
        "{:<24} {:>11} {:>8} {:>10} {:>11} {:>8} {:>10} {:>9} {:>9}",
        "workload",
        "produce r/s",
        "MB/s",
        "CPU s/M",
        "consume r/s",
        "MB/s",
        "CPU s/M",
        "first ms",
        "peak MiB"
    );
}

/// `--listener`: the throughput workloads through each listener named, in alternating passes
/// on one broker, with their ratios to PLAINTEXT; then connection set-up and handshakes.
fn run_listeners(args: &Args) -> anyhow::Result<()> {
    let (broker, secured) = BrokerProcess::start_secured(&args.sluice)?;
    let address = |listener: &str| match listener {
        security::SSL => secured.ssl.clone(),
        security::SASL_SSL => secured.sasl_ssl.clone(),
        _ => broker.bootstrap.clone(),
    };
    println!(
        "sluice-bench --listener {}: {} records per workload, median of {} alternating passes, broker {}",
        args.listener.join(","),
        args.records,
        args.repeat,
        args.sluice.display()
    );
    let wanted = |name: &str| args.only.as_deref().is_none_or(|o| name.contains(o));
    print_throughput_header();
    for (i, w) in workloads()
        .iter()
        .enumerate()
        .filter(|(_, w)| wanted(&w.name))
    {
        // runs[listener][pass]
        let mut runs: Vec<Vec<Run>> = args.listener.iter().map(|_| Vec::new()).collect();
        for pass in 0..args.repeat.max(1) {
            for (l, listener) in args.listener.iter().enumerate() {
                let topic = format!("bench-{i}-{}-{pass}", listener.to_lowercase());
                runs[l].push(run_workload_on(
                    &broker,
                    &address(listener),
                    w,
                    &topic,
                    args,
                )?);
            }
        }
        let medians: Vec<(f64, f64)> = runs
            .iter()
            .map(|r| {
                (
                    median(r.iter().map(|r| r.produce_records_per_s).collect()),
                    median(r.iter().map(|r| r.consume_records_per_s).collect()),
                )
            })
            .collect();
        let plain = args.listener.iter().position(|l| l == security::PLAINTEXT);
        for (l, listener) in args.listener.iter().enumerate() {
            let (produce, consume) = medians[l];
            let ratio = plain.map_or(String::new(), |p| {
                format!(
                    "  ({:.2} and {:.2} of PLAINTEXT)",
                    produce / medians[p].0,
                    consume / medians[p].1
                )
            });
            let name = format!("{} {listener}", w.name);
            print_throughput_row(&name, w, &runs[l], broker.peak_rss_mib()?, &ratio);
        }
    }
    if args.listener.iter().any(|l| l != security::PLAINTEXT) && wanted("connection") {
        security::connection_figures(
            &secured.files,
            &broker.bootstrap,
            &secured.ssl,
            &secured.sasl_ssl,
        )?;
    }
    Ok(())
}

/// `--serve`: the brokers' addresses on stdout, then up until stdin closes.
fn serve(args: &Args, broker: &BrokerProcess) -> anyhow::Result<()> {
    use std::io::{Read, Write};
    let kafka = match args.peer {
        Some(_) => Some(peer::KafkaBroker::start(
            peer::KafkaJars::fetch(&args.kafka_lib)?,
            &args.kafka_heap,
        )?),
        None => None,
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "sluice {}", broker.bootstrap)?;
    if let Some(kafka) = &kafka {
        writeln!(out, "kafka {}", kafka.process.bootstrap)?;
    }
    out.flush()?;
    drop(out);
    let mut rest = Vec::new();
    std::io::stdin().read_to_end(&mut rest)?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.peer.is_some() && args.brokers > 1 {
        anyhow::bail!("--peer runs one Sluice node beside one Kafka broker: leave --brokers out");
    }
    if args.listener != [security::PLAINTEXT] {
        anyhow::ensure!(
            args.brokers == 1 && args.peer.is_none() && !args.serve,
            "--listener measures one Sluice broker: leave --brokers, --peer and --serve out"
        );
        return run_listeners(&args);
    }
    let broker = BrokerProcess::start_cluster(&args.sluice, usize::from(args.brokers))?;
    if args.serve {
        return serve(&args, &broker);
    }
    if args.peer.is_some() {
        let kafka =
            peer::KafkaBroker::start(peer::KafkaJars::fetch(&args.kafka_lib)?, &args.kafka_heap)?;
        println!(
            "sluice-bench --peer kafka: {} records per workload, {} alternating passes, Sluice {} beside Apache Kafka 4.4 (heap {})",
            args.records,
            args.repeat,
            args.sluice.display(),
            args.kafka_heap
        );
        return versus::run(&args, &broker, &kafka);
    }
    let wanted = |name: &str| args.only.as_deref().is_none_or(|o| name.contains(o));
    println!(
        "sluice-bench: {} records per workload, median of {} passes, broker {}, {} node(s), topics of {} replica(s) (CPU and peak memory summed over the nodes)",
        args.records,
        args.repeat,
        args.sluice.display(),
        args.brokers,
        args.brokers
    );
    let throughput: Vec<(usize, Workload)> = workloads()
        .into_iter()
        .enumerate()
        .filter(|(_, w)| wanted(&w.name))
        .collect();
    if !throughput.is_empty() {
        print_throughput_header();
    }
    for (i, w) in &throughput {
        let mut runs = Vec::with_capacity(args.repeat);
        broker.reset_peak_rss();
        for r in 0..args.repeat.max(1) {
            runs.push(run_workload(&broker, w, &format!("bench-{i}-{r}"), &args)?);
        }
        print_throughput_row(&w.name, w, &runs, broker.peak_rss_mib()?, "");
    }
    if wanted("idempotence") {
        run_idempotence_cost(&broker, &args)?;
    }
    if wanted("transactions") {
        run_transactions(&broker, &args)?;
    }
    run_group_workloads(&broker, &args, wanted)?;
    if wanted("http produce") {
        run_http_produce(&broker, &args)?;
    }
    for (label, extra) in LATENCY_RUNS {
        let name = format!("latency {label}");
        if !wanted(&name) || args.latency_seconds == 0 {
            continue;
        }
        let topic = format!("latency-{}", topic_label(label));
        let hist = latency_on(&broker.bootstrap, &topic, &args, extra)?;
        let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
        println!(
            "{name} at {} records/s: p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms ({} records)",
            args.latency_rate,
            ms(0.5),
            ms(0.99),
            ms(0.999),
            hist.max() as f64 / 1000.0,
            hist.len()
        );
    }
    Ok(())
}
