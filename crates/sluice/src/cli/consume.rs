//! `sluice consume TOPIC`: print records from a starting point, to the end or following.

use super::{Start, Target, parse_start, start_offset};
use sluice_client::Client;
use sluice_client::data::{self, EARLIEST, LATEST};
use sluice_client::groups;
use sluice_client::member::{Membership, rejoin_settles};
use sluice_record::Record;
use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

/// How long one fetch waits for new records while following.
const FOLLOW_WAIT: Duration = Duration::from_millis(500);
/// Bytes one fetch may bring back per partition.
const PARTITION_FETCH_BYTES: i32 = 1024 * 1024;
/// Kafka's OFFSET_OUT_OF_RANGE (retention moved the start past our position).
const OFFSET_OUT_OF_RANGE: i16 = 1;

#[derive(clap::Args, Debug)]
pub struct ConsumeArgs {
    /// The topic to read.
    pub topic: String,
    /// Where to start: earliest, latest, an offset, or @TIMESTAMP (RFC 3339, or epoch ms).
    #[arg(long, default_value = "earliest", value_parser = parse_start)]
    pub from: Start,
    /// Stop after this many records.
    #[arg(short = 'n', long = "count", value_name = "N")]
    pub count: Option<u64>,
    /// Keep waiting for new records instead of stopping at the end.
    #[arg(long)]
    pub follow: bool,
    /// text: each value on its own line; json: one object per line with topic, partition,
    /// offset, timestamp, key, value and headers.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    pub format: String,
    /// Only this partition (default: all of them).
    #[arg(long, short = 'p', conflicts_with = "group")]
    pub partition: Option<i32>,
    /// Read as a member of this consumer group (KIP-848 protocol): the broker assigns the
    /// partitions, reading starts at the group's committed offsets (else at --from), and
    /// what is printed is committed.
    #[arg(long, short = 'g')]
    pub group: Option<String>,
}

pub async fn run(target: &Target, args: ConsumeArgs) -> anyhow::Result<()> {
    let mut client = target.connect().await?;
    let partitions = partitions_to_read(&mut client, &args.topic, args.partition).await?;
    let stdout = std::io::stdout();
    let mut reader = Reader {
        topic: &args.topic,
        from: args.from,
        follow: args.follow,
        json: args.format == "json",
        limit: args.count.unwrap_or(u64::MAX),
        printed: 0,
        out: std::io::BufWriter::new(stdout.lock()),
        positions: BTreeMap::new(),
        ends: BTreeMap::new(),
    };
    let Some(group) = &args.group else {
        reader
            .add(&mut client, &partitions, &BTreeMap::new())
            .await?;
        while !reader.limit_reached() && !reader.wanted().is_empty() {
            if reader.fetch_once(&mut client).await?.is_none() {
                break;
            }
        }
        return Ok(());
    };
    let mut member = Membership::new(&mut client, group, &args.topic).await?;
    let result = tokio::select! {
        r = consume_as_member(&mut client, &mut member, &mut reader, group) => r,
        _ = tokio::signal::ctrl_c() => Ok(()),
    };
    member.leave().await;
    result
}

/// The loop of `--group`: heartbeat, take up newly assigned partitions at their committed
/// offsets, fetch, print, commit what was printed.
async fn consume_as_member(
    client: &mut Client,
    member: &mut Membership,
    reader: &mut Reader<'_>,
    group: &str,
) -> anyhow::Result<()> {
    loop {
        if let Some(assigned) = member.poll().await? {
            reader.positions.retain(|p, _| assigned.contains(p));
            reader.ends.retain(|p, _| assigned.contains(p));
            let new: Vec<i32> = assigned
                .into_iter()
                .filter(|p| !reader.positions.contains_key(p))
                .collect();
            let committed = committed_offsets(client, group, reader.topic, &new).await?;
            reader.add(client, &new, &committed).await?;
        }
        if reader.limit_reached() {
            return Ok(());
        }
        if reader.wanted().is_empty() {
            if !reader.follow && member.joined() {
                return Ok(());
            }
            tokio::time::sleep_until(member.next_heartbeat()).await;
            continue;
        }
        let Some(advanced) = reader.fetch_once(client).await? else {
            return Ok(());
        };
        if advanced.is_empty() {
            continue;
        }
        match member.commit(&advanced).await {
            Ok(()) => {}
            Err(e) if rejoin_settles(&e) => {
                eprintln!("commit refused ({e}); the next heartbeat rejoins");
            }
            Err(e) => return Err(e.into()),
        }
    }
}

async fn committed_offsets(
    client: &mut Client,
    group: &str,
    topic: &str,
    partitions: &[i32],
) -> anyhow::Result<BTreeMap<i32, i64>> {
    if partitions.is_empty() {
        return Ok(BTreeMap::new());
    }
    let asked = [(topic.to_string(), partitions.to_vec())];
    let committed = groups::committed_offsets(client, group, Some(&asked)).await?;
    Ok(committed.into_iter().map(|((_, p), o)| (p, o)).collect())
}

/// What is being read and where each partition stands.
struct Reader<'a> {
    topic: &'a str,
    from: Start,
    follow: bool,
    json: bool,
    limit: u64,
    printed: u64,
    out: std::io::BufWriter<std::io::StdoutLock<'static>>,
    /// Next offset to print, per partition.
    positions: BTreeMap<i32, i64>,
    /// Without --follow: where each partition ended when it was taken up.
    ends: BTreeMap<i32, i64>,
}

impl Reader<'_> {
    /// Starts reading `partitions`: at the committed offset when there is one, else `--from`.
    async fn add(
        &mut self,
        client: &mut Client,
        partitions: &[i32],
        committed: &BTreeMap<i32, i64>,
    ) -> anyhow::Result<()> {
        for &p in partitions {
            let position = match committed.get(&p) {
                Some(&offset) => offset,
                None => start_offset(client, self.topic, p, self.from).await?,
            };
            self.positions.insert(p, position);
            if !self.follow {
                let end = data::list_offset(client, self.topic, p, LATEST).await?;
                self.ends.insert(p, end);
            }
        }
        Ok(())
    }

    fn limit_reached(&self) -> bool {
        self.printed >= self.limit
    }

    /// Partitions with something left to read, and where.
    fn wanted(&self) -> Vec<(i32, i64)> {
        self.positions
            .iter()
            .filter(|(p, offset)| self.ends.get(p).is_none_or(|end| *offset < end))
            .map(|(p, o)| (*p, *o))
            .collect()
    }

    /// One fetch of every wanted partition, printed. Returns the new positions of the
    /// partitions that moved, or `None` when output is closed (`| head`).
    async fn fetch_once(
        &mut self,
        client: &mut Client,
    ) -> anyhow::Result<Option<BTreeMap<i32, i64>>> {
        let wanted = self.wanted();
        let fetched = data::fetch_partitions(
            client,
            self.topic,
            &wanted,
            FOLLOW_WAIT,
            PARTITION_FETCH_BYTES,
        )
        .await?;
        let mut advanced = BTreeMap::new();
        for f in fetched {
            let fetched = match f.result {
                Ok(fetched) => fetched,
                Err(e) if e.code() == Some(OFFSET_OUT_OF_RANGE) => {
                    let start =
                        data::list_offset(client, self.topic, f.partition, EARLIEST).await?;
                    eprintln!(
                        "partition {}: offset {} is gone (retention); going on from {start}",
                        f.partition, f.offset
                    );
                    self.positions.insert(f.partition, start);
                    continue;
                }
                Err(e) if e.is_retriable() => {
                    client.forget_leaders();
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let Some(next) = self.print_fetched(f.partition, f.offset, &fetched.records)? else {
                return Ok(None);
            };
            if next != f.offset {
                self.positions.insert(f.partition, next);
                advanced.insert(f.partition, next);
            }
        }
        match self.out.flush() {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(None),
            Err(e) => Err(e.into()),
            Ok(()) => Ok(Some(advanced)),
        }
    }

    /// Prints the records of one partition's fetch from `offset`, up to its end and the
    /// limit. Returns the partition's next position (after the last record printed, when
    /// printing stopped early), or `None` when output is closed.
    fn print_fetched(
        &mut self,
        partition: i32,
        offset: i64,
        records: &[u8],
    ) -> anyhow::Result<Option<i64>> {
        let end = self.ends.get(&partition).copied().unwrap_or(i64::MAX);
        let (topic, json, limit) = (self.topic, self.json, self.limit);
        let (out, printed) = (&mut self.out, &mut self.printed);
        let mut write_error = None;
        let mut stopped_at = None;
        let next = data::for_each_record(records, offset, |r| {
            if stopped_at.is_some() || write_error.is_some() {
                return;
            }
            if *printed >= limit || r.offset >= end {
                stopped_at = Some(r.offset);
                return;
            }
            match print_record(out, topic, partition, r, json) {
                Ok(()) => *printed += 1,
                Err(e) => write_error = Some(e),
            }
        })?;
        match write_error {
            Some(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(None),
            Some(e) => Err(e.into()),
            None => Ok(Some(stopped_at.unwrap_or(next))),
        }
    }
}

async fn partitions_to_read(
    client: &mut Client,
    topic: &str,
    only: Option<i32>,
) -> anyhow::Result<Vec<i32>> {
    let all = client.partitions(topic, false).await?;
    match only {
        None => Ok(all),
        Some(p) if all.contains(&p) => Ok(vec![p]),
        Some(p) => anyhow::bail!(
            "topic {topic} has {} partitions; there is no partition {p}",
            all.len()
        ),
    }
}

fn print_record(
    out: &mut impl Write,
    topic: &str,
    partition: i32,
    r: &Record<'_>,
    json: bool,
) -> std::io::Result<()> {
    if json {
        let object = sluice_client::json::record_to_json(Some(topic), Some(partition), r);
        serde_json::to_writer(&mut *out, &object)?;
    } else {
        out.write_all(r.value.unwrap_or_default())?;
    }
    out.write_all(b"\n")
}
