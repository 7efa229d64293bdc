//! The load: producing and consuming with librdkafka, and a fixed-rate latency probe.

use hdrhistogram::Histogram;
use rdkafka::Offset;
use rdkafka::TopicPartitionList;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DefaultProducerContext, Producer};
use rdkafka::types::RDKafkaErrorCode;
use std::time::{Duration, Instant};

pub fn producer(
    bootstrap: &str,
    acks: &str,
    extra: &[(&str, &str)],
) -> anyhow::Result<BaseProducer> {
    let mut config = crate::security::client_config(bootstrap);
    config
        .set("acks", acks)
        .set("linger.ms", "5")
        .set("batch.size", "1000000")
        .set("batch.num.messages", "100000")
        // librdkafka's default: a queue of all the records would have the client allocate
        // (and fault in) a fresh gigabyte for 1 KiB records, CPU taken from the broker.
        .set("queue.buffering.max.messages", "100000")
        .set("queue.buffering.max.kbytes", "1048576")
        .set("compression.type", "none");
    for (k, v) in extra {
        config.set(*k, *v);
    }
    Ok(config.create()?)
}

/// Sends one warm-up record, then `count` records of `size` bytes round-robin over
/// `partitions`; returns the time from the first of those to the acknowledgement of the last.
/// The warm-up keeps the client's start-up out of the figure, as `consume` does for its own:
/// an idempotent producer waits for a producer id first (about half a second in librdkafka,
/// whose id request waits on a 500 ms timer when no connection is up yet), which would
/// otherwise be counted against a one-second run. The topic holds `count + 1` records.
pub fn produce(
    p: &BaseProducer,
    topic: &str,
    partitions: i32,
    count: u64,
    size: usize,
) -> anyhow::Result<Duration> {
    let payload = vec![b'x'; size];
    p.send(
        BaseRecord::<(), [u8]>::to(topic)
            .payload(&payload)
            .partition(0),
    )
    .map_err(|(e, _)| anyhow::anyhow!("warm-up produce failed: {e}"))?;
    wait_acknowledged(p, Duration::from_secs(30))?;
    let start = Instant::now();
    for i in 0..count {
        let partition = (i % partitions as u64) as i32;
        loop {
            match p.send(
                BaseRecord::<(), [u8]>::to(topic)
                    .payload(&payload)
                    .partition(partition),
            ) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    // Queue full: take acknowledgements (see `wait_acknowledged` for why not a timeout).
                    p.poll(Duration::ZERO);
                    std::thread::sleep(Duration::from_micros(50));
                }
                Err((e, _)) => anyhow::bail!("produce failed: {e}"),
            }
        }
        if i % 1024 == 0 {
            p.poll(Duration::ZERO);
        }
    }
    wait_acknowledged(p, Duration::from_secs(120))?;
    Ok(start.elapsed())
}

/// Serves delivery reports until every record sent is acknowledged. Not `flush`: the `rdkafka`
/// crate's flush (and its `poll` with a timeout) runs in whole steps (100 ms for flush, the
/// full timeout for poll), which added up to 100 ms to every timed run; this polls without a
/// timeout and sleeps 50 µs between.
pub fn wait_acknowledged(p: &BaseProducer, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while p.in_flight_count() > 0 {
        anyhow::ensure!(
            Instant::now() < deadline,
            "records not acknowledged in time"
        );
        p.poll(Duration::ZERO);
        std::thread::sleep(Duration::from_micros(50));
    }
    Ok(())
}

/// Fetch sizes are librdkafka's defaults (1 MiB per partition, 50 MiB per response). Raising
/// the per-partition limit to 10 MiB made 1 KiB consumes slower, not faster (8 partitions:
/// 593 against 1,031 MB/s) and doubled the broker's peak memory (194 against 81 MiB): the
/// broker builds each response in memory (see docs/benchmarks.md, "Peak memory").
pub fn consumer(bootstrap: &str) -> anyhow::Result<BaseConsumer> {
    Ok(crate::security::client_config(bootstrap)
        .set("group.id", "sluice-bench")
        .set("enable.auto.commit", "false")
        .set("queued.min.messages", "1000000")
        .set("queued.max.messages.kbytes", "1048576")
        .set("fetch.queue.backoff.ms", "0")
        .create()?)
}

/// How one consumer's read went: the client's start-up (metadata, offset lookup and its
/// timers, the first fetch) is timed apart from the stream that follows it, as Kafka's
/// `kafka-consumer-perf-test` times its rebalance apart from fetching.
pub struct Consumed {
    /// From `assign` to the first batch of records in hand.
    pub first_records: Duration,
    /// Records received after that first batch.
    pub streamed: u64,
    /// From the first batch to the last record.
    pub streaming: Duration,
}

impl Consumed {
    pub fn records_per_s(&self) -> f64 {
        self.streamed as f64 / self.streaming.as_secs_f64().max(1e-9)
    }
}

/// Reads `count` records from the start of the topic. Uses librdkafka's
/// batch consume (`rd_kafka_consume_batch_queue`), which the safe `rdkafka` API does not
/// expose: polling one message at a time caps a single consumer thread well below what the
/// broker serves.
pub fn consume(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    count: u64,
) -> anyhow::Result<Consumed> {
    let c = consumer(bootstrap)?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    c.assign(&tpl)?;
    let start = Instant::now();
    let deadline = start + Duration::from_secs(300);
    let mut seen = 0u64;
    let mut first: Option<(Instant, u64)> = None;
    // SAFETY: the queue and messages come from this live consumer and are destroyed here,
    // each exactly once, before the consumer is dropped.
    unsafe {
        let queue = rdkafka_sys::rd_kafka_queue_get_consumer(c.client().native_ptr());
        anyhow::ensure!(!queue.is_null(), "no consumer queue");
        let mut batch: Vec<*mut rdkafka_sys::rd_kafka_message_t> =
            vec![std::ptr::null_mut(); 10_000];
        let mut failure = None;
        while seen < count && Instant::now() < deadline && failure.is_none() {
            let n = rdkafka_sys::rd_kafka_consume_batch_queue(
                queue,
                100,
                batch.as_mut_ptr(),
                batch.len(),
            );
            let received = &batch[..n.max(0) as usize];
            for &m in received {
                if (*m).err == rdkafka_sys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
                    seen += 1;
                } else if failure.is_none() {
                    failure = Some(format!("{:?}", (*m).err));
                }
                rdkafka_sys::rd_kafka_message_destroy(m);
            }
            if first.is_none() && seen > 0 {
                first = Some((Instant::now(), seen));
            }
        }
        rdkafka_sys::rd_kafka_queue_destroy(queue);
        if let Some(e) = failure {
            anyhow::bail!("consume failed: {e}");
        }
    }
    anyhow::ensure!(seen >= count, "consumed only {seen} of {count}");
    let (first_at, first_count) = first.unwrap_or((start, 0));
    Ok(Consumed {
        first_records: first_at - start,
        streamed: seen - first_count,
        streaming: first_at.elapsed(),
    })
}

/// Produces at `rate` records/s for `duration`, each carrying its send time, while a consumer
/// reads them; returns the end-to-end latency histogram in microseconds.
pub fn latency(
    bootstrap: &str,
    topic: &str,
    rate: u64,
    duration: Duration,
    producer_extra: &[(&str, &str)],
) -> anyhow::Result<Histogram<u64>> {
    let epoch = Instant::now();
    let p: BaseProducer<DefaultProducerContext> = {
        let mut config = crate::security::client_config(bootstrap);
        for (k, v) in producer_extra {
            config.set(*k, *v);
        }
        config.create()?
    };
    let c = consumer(bootstrap)?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::End)?;
    c.assign(&tpl)?;
    // Let the consumer settle at the end of the log before the clock starts.
    for _ in 0..20 {
        c.poll(Duration::from_millis(50));
    }
    let total = rate * duration.as_secs();
    let consumer_thread = std::thread::spawn(move || -> anyhow::Result<Histogram<u64>> {
        let mut hist = Histogram::<u64>::new(3)?;
        let deadline = Instant::now() + duration + Duration::from_secs(30);
        let mut seen = 0;
        while seen < total && Instant::now() < deadline {
            if let Some(m) = c.poll(Duration::from_millis(100)) {
                let m = m?;
                let sent = u64::from_be_bytes(m.payload().unwrap_or(&[0; 8])[..8].try_into()?);
                let now = epoch.elapsed().as_micros() as u64;
                hist.record(now.saturating_sub(sent))?;
                seen += 1;
            }
        }
        anyhow::ensure!(seen == total, "latency consumer saw {seen} of {total}");
        Ok(hist)
    });
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let start = Instant::now();
    for i in 0..total {
        let due = start + interval * i as u32;
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let mut payload = [0u8; 100];
        payload[..8].copy_from_slice(&(epoch.elapsed().as_micros() as u64).to_be_bytes());
        p.send(
            BaseRecord::<(), [u8]>::to(topic)
                .payload(&payload[..])
                .partition(0),
        )
        .map_err(|(e, _)| e)?;
        p.poll(Duration::ZERO);
    }
    p.flush(Duration::from_secs(30))?;
    consumer_thread
        .join()
        .map_err(|_| anyhow::anyhow!("consumer thread panicked"))?
}
