//! Transactional produce: producers each run transactions of a fixed number of records
//! (begin, send, commit), librdkafka's transactional producer doing the protocol work
//! (AddPartitionsToTxn, Produce, EndTxn).

use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(30);

/// What a run measured.
pub struct TxnRun {
    pub elapsed: Duration,
    pub transactions: u64,
}

/// `producers` transactional producers (one thread each, transactional ids `<topic>-<i>`)
/// each commit `transactions` transactions of `records` records of `size` bytes to `topic`.
/// Producers are initialised before the clock starts.
pub fn run(
    bootstrap: &str,
    topic: &str,
    producers: usize,
    transactions: u64,
    records: u64,
    size: usize,
) -> anyhow::Result<TxnRun> {
    let clients: Vec<BaseProducer> = (0..producers)
        .map(|i| -> anyhow::Result<BaseProducer> {
            let p: BaseProducer = crate::security::client_config(bootstrap)
                .set("transactional.id", format!("{topic}-{i}"))
                .set("linger.ms", "0")
                .set("compression.type", "none")
                .create()?;
            p.init_transactions(TIMEOUT)?;
            Ok(p)
        })
        .collect::<anyhow::Result<_>>()?;
    let start = Instant::now();
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let threads: Vec<_> = clients
            .iter()
            .map(|p| scope.spawn(move || one_producer(p, topic, transactions, records, size)))
            .collect();
        for t in threads {
            t.join()
                .map_err(|_| anyhow::anyhow!("producer thread panicked"))??;
        }
        Ok(())
    })?;
    Ok(TxnRun {
        elapsed: start.elapsed(),
        transactions: transactions * producers as u64,
    })
}

fn one_producer(
    p: &BaseProducer,
    topic: &str,
    transactions: u64,
    records: u64,
    size: usize,
) -> anyhow::Result<()> {
    let payload = vec![b'x'; size];
    for _ in 0..transactions {
        p.begin_transaction()?;
        for _ in 0..records {
            loop {
                match p.send(
                    BaseRecord::<(), [u8]>::to(topic)
                        .payload(&payload)
                        .partition(0),
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
        }
        // Every record acknowledged first: left to commit_transaction, the delivery reports
        // cost 100 ms per transaction (10 transactions/s, measured).
        crate::load::wait_acknowledged(p, TIMEOUT)?;
        p.commit_transaction(TIMEOUT)?;
    }
    Ok(())
}
