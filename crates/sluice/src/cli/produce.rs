//! `sluice produce TOPIC`: one record per input line, from stdin or a file.

use super::{Target, key_value, now_ms};
use bytes::Bytes;
use sluice_client::Client;
use sluice_client::codes::INVALID_RECORD;
use sluice_client::data::{self, Acks};
use sluice_client::partitioner::partition_for_key;
use sluice_client::txn::TransactionalProducer;
use sluice_record::{Compression, Record, RecordHeader, encode_records_compressed};
use std::io::BufRead;
use std::path::PathBuf;

/// A batch is sent once it holds this many bytes of keys and values...
const BATCH_BYTES_TARGET: usize = 1024 * 1024;
/// ...or this many records.
const BATCH_RECORDS_MAX: usize = 10_000;
/// Longest input line (one record); longer lines stop the command before anything is read
/// into memory past it.
const LINE_BYTES_MAX: usize = sluice_types::limits::BATCH_BYTES_MAX_ABSOLUTE as usize;

#[derive(clap::Args, Debug)]
pub struct ProduceArgs {
    /// The topic (created on first use when the broker auto-creates topics).
    pub topic: String,
    /// Split each line at the first SEP into key and value (lines without it get no key).
    #[arg(long, short = 'K', value_name = "SEP")]
    pub key_separator: Option<String>,
    /// One key for every record.
    #[arg(long, short = 'k', conflicts_with = "key_separator")]
    pub key: Option<String>,
    /// An empty value is sent as null: a tombstone, which deletes its key on a compacted
    /// topic.
    #[arg(long, short = 'Z')]
    pub empty_as_null: bool,
    /// Compress batches: none, gzip, snappy, lz4 or zstd.
    #[arg(long, short = 'z', default_value = "none", value_parser = parse_compression)]
    pub compression: Compression,
    /// A header for every record, KEY=VALUE; repeatable.
    #[arg(long = "header", short = 'H', value_name = "KEY=VALUE", value_parser = key_value)]
    pub headers: Vec<(String, String)>,
    /// Send every record to this partition (default: by key, as Kafka's partitioner does;
    /// keyless records go to one partition per batch, in turn).
    #[arg(long, short = 'p')]
    pub partition: Option<i32>,
    /// Read records from this file instead of stdin (shows progress on a terminal).
    #[arg(long, short = 'f')]
    pub file: Option<PathBuf>,
    /// 0 (no answer), 1 (written by the leader) or all (durable: fsynced on Sluice).
    #[arg(long, default_value = "all", value_parser = ["0", "1", "all", "-1"])]
    pub acks: String,
    /// Write the whole input as one transaction of this transactional id: committed at the
    /// end, aborted on any failure, so read_committed consumers see all of it or none.
    #[arg(long, value_name = "ID", conflicts_with = "acks")]
    pub transactional_id: Option<String>,
}

fn parse_compression(s: &str) -> Result<Compression, String> {
    Ok(match s {
        "none" => Compression::None,
        "gzip" => Compression::Gzip,
        "snappy" => Compression::Snappy,
        "lz4" => Compression::Lz4,
        "zstd" => Compression::Zstd,
        _ => {
            return Err(format!(
                "expected none, gzip, snappy, lz4 or zstd, got {s:?}"
            ));
        }
    })
}

/// One record read from the input, waiting in its partition's batch.
struct Pending {
    key: Option<Vec<u8>>,
    /// `None`: a tombstone (`-Z` and an empty line).
    value: Option<Vec<u8>>,
    /// Its input line, counted from 1.
    line: u64,
}

struct Batches<'a> {
    topic: &'a str,
    acks: Acks,
    /// With `--transactional-id`: the producer whose open transaction every batch joins.
    transaction: Option<TransactionalProducer>,
    compression: Compression,
    headers: Vec<RecordHeader<'a>>,
    pending: Vec<Vec<Pending>>,
    pending_bytes: Vec<usize>,
    produced: u64,
}

impl Batches<'_> {
    async fn add(
        &mut self,
        client: &mut Client,
        partition: i32,
        record: Pending,
    ) -> anyhow::Result<bool> {
        let p = partition as usize;
        self.pending_bytes[p] +=
            record.value.as_ref().map_or(0, Vec::len) + record.key.as_ref().map_or(0, Vec::len);
        self.pending[p].push(record);
        let full = self.pending_bytes[p] >= BATCH_BYTES_TARGET
            || self.pending[p].len() >= BATCH_RECORDS_MAX;
        if full {
            self.send(client, partition).await?;
        }
        Ok(full)
    }

    async fn send(&mut self, client: &mut Client, partition: i32) -> anyhow::Result<()> {
        let p = partition as usize;
        if self.pending[p].is_empty() {
            return Ok(());
        }
        let timestamp = now_ms();
        let records: Vec<Record<'_>> = self.pending[p]
            .iter()
            .enumerate()
            .map(|(i, r)| Record {
                offset: i as i64,
                timestamp,
                key: r.key.as_deref(),
                value: r.value.as_deref(),
                headers: self.headers.clone(),
            })
            .collect();
        let count = records.len() as u64;
        let sent = match self.transaction.as_mut() {
            Some(txn) => txn
                .send(client, self.topic, partition, &records)
                .await
                .map(|_| ()),
            None => {
                let batch = Bytes::from(encode_records_compressed(&records, self.compression));
                data::produce(client, self.topic, partition, batch, self.acks)
                    .await
                    .map(|_| ())
            }
        };
        sent.map_err(|e| self.explain(partition, e))?;
        self.produced += count;
        self.pending[p].clear();
        self.pending_bytes[p] = 0;
        Ok(())
    }

    async fn send_all(&mut self, client: &mut Client) -> anyhow::Result<()> {
        for partition in 0..self.pending.len() {
            self.send(client, partition as i32).await?;
        }
        Ok(())
    }

    /// A refused batch, with the line to blame when a compacted topic refused a keyless record.
    fn explain(&self, partition: i32, e: sluice_client::ClientError) -> anyhow::Error {
        let keyless = self.pending[partition as usize]
            .iter()
            .find(|r| r.key.is_none());
        match keyless {
            Some(record) if e.code() == Some(INVALID_RECORD) => anyhow::Error::from(e).context(
                format!(
                    "line {} has no key, and {} is compacted (it keeps the latest record per key): give every line a key with --key-separator SEP or --key KEY",
                    record.line, self.topic
                ),
            ),
            _ => e.into(),
        }
    }

    /// The first input line not known to be written: every line before it was acknowledged.
    fn first_unwritten_line(&self) -> Option<u64> {
        self.pending.iter().flatten().map(|r| r.line).min()
    }
}

pub async fn run(target: &Target, args: ProduceArgs) -> anyhow::Result<()> {
    let mut client = target.connect().await?;
    let partitions = client.partitions(&args.topic, true).await?.len() as i32;
    if let Some(p) = args.partition {
        anyhow::ensure!(
            (0..partitions).contains(&p),
            "topic {} has partitions 0 to {}; there is no partition {p}",
            args.topic,
            partitions - 1
        );
    }
    let acks = match args.acks.as_str() {
        "0" => Acks::None,
        "1" => Acks::Leader,
        _ => Acks::All,
    };
    let transaction = match &args.transactional_id {
        None => None,
        Some(id) => {
            let mut producer = TransactionalProducer::init(&mut client, id, TRANSACTION_TIMEOUT)
                .await?
                .with_compression(args.compression);
            producer.begin();
            Some(producer)
        }
    };
    let mut batches = Batches {
        topic: &args.topic,
        acks,
        transaction,
        compression: args.compression,
        headers: args
            .headers
            .iter()
            .map(|(k, v)| RecordHeader {
                key: k.as_bytes(),
                value: Some(v.as_bytes()),
            })
            .collect(),
        pending: (0..partitions).map(|_| Vec::new()).collect(),
        pending_bytes: vec![0; partitions as usize],
        produced: 0,
    };
    let (input, progress) = open_input(args.file.as_deref())?;
    let result = produce_lines(
        &mut client,
        &args,
        partitions,
        input,
        &progress,
        &mut batches,
    )
    .await;
    progress.finish_and_clear();
    if let Some(txn) = batches.transaction.as_mut() {
        return end_transaction(txn, result, batches.produced, &args.topic).await;
    }
    if let Err(e) = result {
        let resume = match (acks, batches.first_unwritten_line()) {
            (Acks::None, _) => "with --acks 0 nothing is known to be written".to_string(),
            (_, Some(line)) => format!(
                "every line before line {line} was written; resume from line {line} (tail -n +{line})"
            ),
            (_, None) => "every line read was written".to_string(),
        };
        return Err(e.context(format!(
            "{} records were written to {}; {resume}",
            batches.produced, args.topic
        )));
    }
    eprintln!("produced {} records to {}", batches.produced, args.topic);
    Ok(())
}

/// How long the input's transaction may stay open before the coordinator aborts it (Kafka's
/// default `transaction.max.timeout.ms`, the most a broker allows unless told otherwise).
const TRANSACTION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(900);

/// Commits the input's transaction when every line was sent, else aborts it, and says so.
async fn end_transaction(
    txn: &mut TransactionalProducer,
    result: anyhow::Result<()>,
    produced: u64,
    topic: &str,
) -> anyhow::Result<()> {
    match result {
        Ok(()) => {
            txn.commit().await?;
            eprintln!("produced {produced} records to {topic} in one committed transaction");
            Ok(())
        }
        Err(e) => {
            let aborted = match txn.abort().await {
                Ok(()) => "the transaction was aborted".to_string(),
                Err(abort) => format!(
                    "aborting the transaction failed too ({abort}); the coordinator aborts it when it times out"
                ),
            };
            Err(e.context(format!(
                "nothing was committed to {topic}: {aborted}, so read_committed consumers see none of the input; run the command again from line 1"
            )))
        }
    }
}

/// Reads every input line into its partition's batch, sending batches as they fill, then the
/// rest.
async fn produce_lines(
    client: &mut Client,
    args: &ProduceArgs,
    partitions: i32,
    mut input: Box<dyn BufRead>,
    progress: &indicatif::ProgressBar,
    batches: &mut Batches<'_>,
) -> anyhow::Result<()> {
    // Keyless records stick to one partition per batch, starting anywhere, as Kafka's sticky
    // partitioner does.
    let mut keyless_partition = (now_ms() % i64::from(partitions)) as i32;
    let mut line = Vec::new();
    let mut line_number = 0u64;
    while read_line(&mut input, &mut line)? {
        line_number += 1;
        progress.inc(line.len() as u64);
        strip_line_end(&mut line);
        let mut record = split_record(&line, args.key_separator.as_deref(), line_number);
        if let Some(key) = &args.key {
            record.key = Some(key.as_bytes().to_vec());
        }
        if args.empty_as_null && record.value.as_ref().is_some_and(Vec::is_empty) {
            record.value = None;
        }
        let partition = match (args.partition, &record.key) {
            (Some(p), _) => p,
            (None, Some(key)) => partition_for_key(key, partitions),
            (None, None) => keyless_partition,
        };
        let sent = batches.add(client, partition, record).await?;
        if sent && partition == keyless_partition {
            keyless_partition = (keyless_partition + 1) % partitions;
        }
    }
    batches.send_all(client).await
}

fn open_input(
    file: Option<&std::path::Path>,
) -> anyhow::Result<(Box<dyn BufRead>, indicatif::ProgressBar)> {
    match file {
        None => Ok((
            Box::new(std::io::BufReader::new(std::io::stdin())),
            indicatif::ProgressBar::hidden(),
        )),
        Some(path) => {
            let f = std::fs::File::open(path)
                .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))?;
            let size = f.metadata().map(|m| m.len()).unwrap_or(0);
            let bar = indicatif::ProgressBar::new(size);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            Ok((Box::new(std::io::BufReader::with_capacity(1 << 20, f)), bar))
        }
    }
}

/// Reads one line (with its `\n`) into `line`; false at the end of input. A line longer than
/// `LINE_BYTES_MAX` is an error, found before more of it is held in memory.
fn read_line(input: &mut dyn BufRead, line: &mut Vec<u8>) -> anyhow::Result<bool> {
    line.clear();
    let mut limited = std::io::Read::take(input, LINE_BYTES_MAX as u64 + 1);
    let n = limited.read_until(b'\n', line)?;
    anyhow::ensure!(
        n <= LINE_BYTES_MAX,
        "an input line is longer than {LINE_BYTES_MAX} bytes, the largest record this command sends"
    );
    Ok(n > 0)
}

fn strip_line_end(line: &mut Vec<u8>) {
    if line.last() == Some(&b'\n') {
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
    }
}

fn split_record(line: &[u8], separator: Option<&str>, number: u64) -> Pending {
    if let Some(sep) = separator.map(str::as_bytes).filter(|s| !s.is_empty())
        && let Some(at) = line.windows(sep.len()).position(|w| w == sep)
    {
        return Pending {
            key: Some(line[..at].to_vec()),
            value: Some(line[at + sep.len()..].to_vec()),
            line: number,
        };
    }
    Pending {
        key: None,
        value: Some(line.to_vec()),
        line: number,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_the_first_separator_only() {
        let r = split_record(b"k:v:w", Some(":"), 1);
        assert_eq!(r.key.as_deref(), Some(&b"k"[..]));
        assert_eq!(r.value.as_deref(), Some(&b"v:w"[..]));
        let r = split_record(b"no-separator", Some("::"), 2);
        assert_eq!((r.key, r.value), (None, Some(b"no-separator".to_vec())));
        let r = split_record(b":empty-key", Some(":"), 3);
        assert_eq!(
            (r.key.as_deref(), r.value.as_deref(), r.line),
            (Some(&b""[..]), Some(&b"empty-key"[..]), 3)
        );
    }

    #[test]
    fn line_ends_go() {
        for (input, expected) in [
            (&b"a\r\n"[..], &b"a"[..]),
            (b"a\n", b"a"),
            (b"a", b"a"),
            (b"\n", b""),
        ] {
            let mut line = input.to_vec();
            strip_line_end(&mut line);
            assert_eq!(line, expected);
        }
    }
}
