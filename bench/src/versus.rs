//! `sluice-bench --peer kafka`: the same workloads against Sluice and Apache Kafka 4.4 on the
//! same machine, in alternating passes (each pass visits every broker, starting with a
//! different one), so that both meet the same noise. Kafka runs twice over: at its defaults
//! (the OS flushes the log when it likes) and with `flush.messages=1` on every topic (an fsync
//! per append), so durable is compared with durable. Three phases:
//! - Sluice's own librdkafka workloads (`run_workload`): 100 B and 1 KiB, 1 and 8 partitions,
//!   `acks=1` and `acks=all`; broker CPU per million records and peak memory;
//! - Kafka's `kafka-producer-perf-test` and `kafka-consumer-perf-test` on the same workloads;
//! - end-to-end latency at `--latency-rate` records/s.
//!
//! Prints medians per broker and, per figure, the median of the per-pass ratios Sluice/Kafka.

use crate::broker::BrokerProcess;
use crate::peer::KafkaBroker;
use crate::{
    Args, Run, Workload, create_topic, delete_topic, latency_on, median, run_workload, topic_label,
    workloads,
};

/// One broker as measured: where it is, what its writes promise, and the topic configs that
/// make it so.
struct Target<'a> {
    name: &'static str,
    durability: &'static str,
    broker: &'a BrokerProcess,
    args: Args,
}

const SLUICE_DURABILITY: &str = "acks=all answered after fsync; acks=1 after write()";
const KAFKA_DURABILITY: &str = "Kafka defaults: no fsync per write (OS flushes)";
const KAFKA_FLUSH_DURABILITY: &str = "flush.messages=1: fsync per append, then answered";

fn targets<'a>(args: &Args, sluice: &'a BrokerProcess, kafka: &'a KafkaBroker) -> Vec<Target<'a>> {
    let mut flushed = args.clone();
    flushed
        .topic_configs
        .push(("flush.messages".to_owned(), "1".to_owned()));
    vec![
        Target {
            name: "sluice",
            durability: SLUICE_DURABILITY,
            broker: sluice,
            args: args.clone(),
        },
        Target {
            name: "kafka",
            durability: KAFKA_DURABILITY,
            broker: &kafka.process,
            args: args.clone(),
        },
        Target {
            name: "kafka flush=1",
            durability: KAFKA_FLUSH_DURABILITY,
            broker: &kafka.process,
            args: flushed,
        },
    ]
}

/// Pass `pass` visits the targets starting at a different one each time.
fn rotated(count: usize, pass: usize) -> impl Iterator<Item = usize> {
    (0..count).map(move |i| (i + pass) % count)
}

/// `figures[target][pass]`: the median of Sluice's over each Kafka target's, pass by pass.
fn ratios(figures: &[Vec<f64>]) -> String {
    (1..figures.len())
        .map(|k| {
            let per_pass: Vec<f64> = figures[0]
                .iter()
                .zip(&figures[k])
                .map(|(s, o)| s / o)
                .collect();
            format!("{:.2}x", median(per_pass))
        })
        .collect::<Vec<_>>()
        .join(" / ")
}

pub fn run(args: &Args, sluice: &BrokerProcess, kafka: &KafkaBroker) -> anyhow::Result<()> {
    let wanted = |name: &str| args.only.as_deref().is_none_or(|o| name.contains(o));
    let targets = targets(args, sluice, kafka);
    println!("brokers, and what an acknowledged write has survived:");
    for t in &targets {
        println!("  {:<14} {}", t.name, t.durability);
    }
    println!("ratios are Sluice over kafka / over kafka flush=1, medians of per-pass ratios\n");
    let chosen: Vec<Workload> = workloads()
        .into_iter()
        .filter(|w| wanted(&w.name))
        .collect();
    if let Some(first) = chosen.first() {
        warm_up(&targets, first)?;
    }
    for w in &chosen {
        client_workload(args, &targets, w)?;
    }
    if !args.no_kafka_tools {
        for w in &chosen {
            kafka_tools_workload(args, &targets, kafka, w)?;
        }
    }
    if args.latency_seconds > 0 {
        for (label, extra) in crate::LATENCY_RUNS.iter().take(2) {
            latency(args, &targets, label, extra)?;
        }
    }
    Ok(())
}

/// One unmeasured pass on every target first: a JVM runs its first minute interpreted and
/// compiling, and neither broker should be measured on its first page cache misses.
fn warm_up(targets: &[Target], w: &Workload) -> anyhow::Result<()> {
    for (i, t) in targets.iter().enumerate() {
        let mut brief = t.args.clone();
        brief.records = brief.records.min(WARM_UP_RECORDS);
        run_workload(t.broker, w, &format!("warm-up-{i}"), &brief)?;
    }
    Ok(())
}

/// Records of the warm-up pass on each target.
const WARM_UP_RECORDS: u64 = 500_000;

/// Sluice's librdkafka workload against each target, `--repeat` alternating passes.
fn client_workload(args: &Args, targets: &[Target], w: &Workload) -> anyhow::Result<()> {
    let mut runs: Vec<Vec<Run>> = targets.iter().map(|_| Vec::new()).collect();
    for t in targets {
        t.broker.reset_peak_rss();
    }
    for pass in 0..args.repeat.max(1) {
        for i in rotated(targets.len(), pass) {
            let topic = format!("versus-{}-{pass}-{i}", topic_label(&w.name));
            runs[i].push(run_workload(
                targets[i].broker,
                w,
                &topic,
                &targets[i].args,
            )?);
        }
    }
    let of = |i: usize, f: fn(&Run) -> f64| median(runs[i].iter().map(f).collect());
    let all = |f: fn(&Run) -> f64| -> Vec<Vec<f64>> {
        runs.iter().map(|r| r.iter().map(f).collect()).collect()
    };
    println!("librdkafka {}:", w.name);
    for (i, t) in targets.iter().enumerate() {
        let (produce, consume) = (
            of(i, |r| r.produce_records_per_s),
            of(i, |r| r.consume_records_per_s),
        );
        println!(
            "  {:<14} produce {:>9.0} r/s {:>7.1} MB/s  consume {:>9.0} r/s {:>7.1} MB/s  CPU s/M {:.3} + {:.3}  peak {:.0} MiB",
            t.name,
            produce,
            produce * w.size as f64 / 1e6,
            consume,
            consume * w.size as f64 / 1e6,
            of(i, |r| r.produce_cpu_s_per_m),
            of(i, |r| r.consume_cpu_s_per_m),
            t.broker.peak_rss_mib()?,
        );
    }
    println!(
        "  ratio          produce {}  consume {}  CPU per million (produce) {}",
        ratios(&all(|r| r.produce_records_per_s)),
        ratios(&all(|r| r.consume_records_per_s)),
        ratios(&all(|r| r.produce_cpu_s_per_m)),
    );
    Ok(())
}

/// Kafka's perf tools (from Kafka's jars) against each target.
fn kafka_tools_workload(
    args: &Args,
    targets: &[Target],
    kafka: &KafkaBroker,
    w: &Workload,
) -> anyhow::Result<()> {
    // [target][pass]: produce r/s, p50 and p99 ms of the producer's own latency, consume r/s.
    let mut produce: Vec<Vec<f64>> = targets.iter().map(|_| Vec::new()).collect();
    let mut p50 = produce.clone();
    let mut p99 = produce.clone();
    let mut consume = produce.clone();
    for pass in 0..args.repeat.max(1) {
        for i in rotated(targets.len(), pass) {
            let t = &targets[i];
            let topic = format!("tools-{}-{pass}-{i}", topic_label(&w.name));
            let bootstrap = &t.broker.bootstrap;
            create_topic(bootstrap, &topic, w.partitions, &t.args)?;
            let p = kafka.producer_perf(bootstrap, &topic, args.records, w.size, w.acks)?;
            produce[i].push(p.records_per_s);
            p50[i].push(p.p50_ms);
            p99[i].push(p.p99_ms);
            consume[i].push(kafka.consumer_perf(bootstrap, &topic, args.records)?);
            if !args.keep_topics {
                delete_topic(bootstrap, &topic)?;
            }
        }
    }
    println!(
        "kafka-producer-perf-test / kafka-consumer-perf-test {}:",
        w.name
    );
    for (i, t) in targets.iter().enumerate() {
        println!(
            "  {:<14} produce {:>9.0} r/s (p50 of the tool's own latency {:.0} ms, p99 {:.0} ms)  consume {:>9.0} r/s",
            t.name,
            median(produce[i].clone()),
            median(p50[i].clone()),
            median(p99[i].clone()),
            median(consume[i].clone()),
        );
    }
    println!(
        "  ratio          produce {}  consume {}",
        ratios(&produce),
        ratios(&consume)
    );
    Ok(())
}

/// End-to-end latency (produce to consume) at a fixed rate, alternating passes.
fn latency(
    args: &Args,
    targets: &[Target],
    label: &str,
    extra: &[(&str, &str)],
) -> anyhow::Result<()> {
    // [target][pass] of (p50, p99, p99.9) in ms.
    let mut figures: Vec<Vec<[f64; 3]>> = targets.iter().map(|_| Vec::new()).collect();
    for pass in 0..args.repeat.max(1) {
        for i in rotated(targets.len(), pass) {
            let t = &targets[i];
            let topic = format!("latency-{}-{pass}-{i}", topic_label(label));
            let bootstrap = &t.broker.bootstrap;
            let hist = latency_on(bootstrap, &topic, &t.args, extra)?;
            let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
            figures[i].push([ms(0.5), ms(0.99), ms(0.999)]);
            if !args.keep_topics {
                delete_topic(bootstrap, &topic)?;
            }
        }
    }
    println!("latency {label} at {} records/s:", args.latency_rate);
    let column = |q: usize| -> Vec<Vec<f64>> {
        figures
            .iter()
            .map(|f| f.iter().map(|x| x[q]).collect())
            .collect()
    };
    for (i, t) in targets.iter().enumerate() {
        let of = |q: usize| median(column(q)[i].clone());
        println!(
            "  {:<14} p50 {:.2} ms  p99 {:.2} ms  p99.9 {:.2} ms",
            t.name,
            of(0),
            of(1),
            of(2)
        );
    }
    println!(
        "  ratio          p50 {}  p99 {}  (below 1: Sluice is faster)",
        ratios(&column(0)),
        ratios(&column(1))
    );
    Ok(())
}
