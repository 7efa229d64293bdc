//! `sluice consume TOPIC...`: print records from a starting point, to the end or following,
//! alone or as a member of a consumer group.
//!
//! Owns: which partitions are read and from where, the output formats, riding through a
//! broker restart (reconnecting with back-off). Not: the protocol (`sluice-client`).

mod template;

use super::{Start, Target, parse_start, start_offset};
use sluice_client::codes::OFFSET_OUT_OF_RANGE;
use sluice_client::data::{self, EARLIEST, FetchOptions, Isolation, LATEST};
use sluice_client::groups;
use sluice_client::member::{GroupMember, TopicPartition, rejoin_settles};
use sluice_client::{Client, ClientError};
use sluice_record::Record;
use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;
use template::{Template, parse_template};

/// How long one fetch waits for new records while following.
const FOLLOW_WAIT: Duration = Duration::from_millis(500);
/// Bytes one fetch may bring back per partition.
const PARTITION_FETCH_BYTES: i32 = 1024 * 1024;
/// Waits between attempts to reach the cluster again: doubling from the first to the last.
const RECONNECT_BACKOFF_FIRST: Duration = Duration::from_millis(100);
const RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(5);

#[derive(clap::Args, Debug)]
pub struct ConsumeArgs {
    /// The topics to read; with --regex (or a name starting with ^, as kcat takes it),
    /// patterns that whole topic names must match.
    #[arg(required = true, value_name = "TOPIC")]
    pub topics: Vec<String>,
    /// TOPIC arguments are regular expressions (internal topics never match).
    #[arg(long, short = 'r')]
    pub regex: bool,
    /// Where to start in each partition: beginning, end, an offset N, -N for the last N
    /// records, or @TIME (RFC 3339, a date 2026-12-04, epoch ms, or a time ago: @-1h).
    #[arg(
        long = "offset",
        short = 'o',
        visible_alias = "from",
        default_value = "beginning",
        value_parser = parse_start,
        allow_hyphen_values = true
    )]
    pub from: Start,
    /// Stop after this many records.
    #[arg(short = 'n', long = "count", value_name = "N")]
    pub count: Option<u64>,
    /// Keep waiting for new records instead of stopping at the end; rides through broker
    /// restarts.
    #[arg(long)]
    pub follow: bool,
    /// text: each value on its own line; json: one object per line with topic, partition,
    /// offset, timestamp, key, value and headers.
    #[arg(long, default_value = "text", value_parser = ["text", "json"], conflicts_with = "template")]
    pub format: String,
    /// Print each record through a template (kcat's tokens): %t topic, %p partition,
    /// %o offset, %T timestamp, %k key, %K key length, %s or %v value, %S or %V value length,
    /// %h headers; escapes \n \t \r \0 \\. Example: -f '%p:%o %k=%v\n'
    #[arg(long = "fmt", short = 'f', value_name = "TEMPLATE", value_parser = parse_template)]
    pub template: Option<Template>,
    /// Only this partition of each topic (default: all of them).
    #[arg(long, short = 'p', conflicts_with = "group")]
    pub partition: Option<i32>,
    /// read_uncommitted (default) or read_committed: only committed transactions' records.
    #[arg(long, default_value = "read_uncommitted", value_parser = ["read_uncommitted", "read_committed"])]
    pub isolation: String,
    /// Read as a member of this consumer group (KIP-848 protocol): the broker assigns the
    /// partitions, reading starts at the group's committed offsets (else at --offset), and
    /// what is printed is committed.
    #[arg(long, short = 'g')]
    pub group: Option<String>,
}

/// How a record is printed.
enum Printer {
    Text,
    Json,
    Template(Template),
}

impl Printer {
    fn print(
        &self,
        out: &mut impl Write,
        topic: &str,
        partition: i32,
        r: &Record<'_>,
    ) -> std::io::Result<()> {
        match self {
            Printer::Template(template) => template.render(out, topic, partition, r),
            Printer::Json => {
                let object = sluice_client::json::record_to_json(Some(topic), Some(partition), r);
                serde_json::to_writer(&mut *out, &object)?;
                out.write_all(b"\n")
            }
            Printer::Text => {
                out.write_all(r.value.unwrap_or_default())?;
                out.write_all(b"\n")
            }
        }
    }
}

pub async fn run(target: &Target, args: ConsumeArgs) -> anyhow::Result<()> {
    let mut client = target.connect().await?;
    let topics = topics_to_read(&mut client, &args.topics, args.regex).await?;
    let isolation = match args.isolation.as_str() {
        "read_committed" => Isolation::ReadCommitted,
        _ => Isolation::ReadUncommitted,
    };
    let printer = match (args.template, args.format.as_str()) {
        (Some(template), _) => Printer::Template(template),
        (None, "json") => Printer::Json,
        (None, _) => Printer::Text,
    };
    let mut reader = Reader {
        from: args.from,
        follow: args.follow,
        isolation,
        printer,
        limit: args.count.unwrap_or(u64::MAX),
        printed: 0,
        out: std::io::BufWriter::new(std::io::stdout().lock()),
        positions: BTreeMap::new(),
        ends: BTreeMap::new(),
    };
    let patience = Patience {
        forever: args.follow,
        timeout: Duration::from_secs(target.timeout.max(1)),
    };
    let Some(group) = &args.group else {
        let mut partitions = Vec::new();
        for topic in &topics {
            partitions.extend(partitions_to_read(&mut client, topic, args.partition).await?);
        }
        let mut added = false;
        return patience
            .ride_through(&mut client, None, async |client, _| {
                if !added {
                    reader.add(client, &partitions, &BTreeMap::new()).await?;
                    added = true;
                }
                if reader.limit_reached() || reader.wanted().is_empty() {
                    return Ok(Flow::Done);
                }
                reader.fetch_once(client).await.map(|f| f.flow())
            })
            .await;
    };
    let mut member = GroupMember::new(&mut client, group, &topics).await?;
    let result = tokio::select! {
        r = patience.ride_through(&mut client, Some(&mut member), async |client, member| {
            let member = member.expect("a group member");
            member_step(client, member, &mut reader, group).await
        }) => r,
        _ = tokio::signal::ctrl_c() => Ok(()),
    };
    member.leave().await;
    result
}

/// What the reading loop does next.
enum Flow {
    Continue,
    Done,
}

/// How long the reading loop keeps trying to reach the cluster again when the connection is
/// lost: forever when following, else up to `--timeout`.
struct Patience {
    forever: bool,
    timeout: Duration,
}

impl Patience {
    /// Runs `step` until it is done. A lost connection, or an error the protocol calls
    /// retriable (a leader or coordinator moving), reconnects with back-off and steps again.
    async fn ride_through<F>(
        &self,
        client: &mut Client,
        mut member: Option<&mut GroupMember>,
        mut step: F,
    ) -> anyhow::Result<()>
    where
        F: AsyncFnMut(&mut Client, Option<&mut GroupMember>) -> anyhow::Result<Flow>,
    {
        let mut backoff = RECONNECT_BACKOFF_FIRST;
        let mut failing_since: Option<tokio::time::Instant> = None;
        loop {
            let error = match step(client, member.as_deref_mut()).await {
                Ok(Flow::Done) => return Ok(()),
                Ok(Flow::Continue) => {
                    backoff = RECONNECT_BACKOFF_FIRST;
                    failing_since = None;
                    continue;
                }
                Err(e) if recoverable(&e) => e,
                Err(e) => return Err(e),
            };
            let since = *failing_since.get_or_insert_with(tokio::time::Instant::now);
            if !self.forever && since.elapsed() >= self.timeout {
                return Err(error);
            }
            eprintln!("{error:#}; trying again in {} ms", backoff.as_millis());
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(RECONNECT_BACKOFF_MAX);
            if let Err(e) = reconnect(client, member.as_deref_mut()).await
                && !recoverable(&e)
            {
                return Err(e);
            }
        }
    }
}

async fn reconnect(client: &mut Client, member: Option<&mut GroupMember>) -> anyhow::Result<()> {
    client.reconnect().await?;
    if let Some(member) = member {
        member.reconnect(client).await?;
    }
    Ok(())
}

/// A lost connection, or a Kafka error that says "try again" (a leader or coordinator moved).
fn recoverable(e: &anyhow::Error) -> bool {
    e.downcast_ref::<ClientError>()
        .is_some_and(|e| e.is_connection_lost() || e.is_retriable())
}

/// One turn of `--group`: heartbeat, take up newly assigned partitions at their committed
/// offsets, fetch, print, commit what was printed.
async fn member_step(
    client: &mut Client,
    member: &mut GroupMember,
    reader: &mut Reader,
    group: &str,
) -> anyhow::Result<Flow> {
    let was_classic = member.is_classic();
    let polled = member.poll(client).await?;
    if member.is_classic() && !was_classic {
        eprintln!(
            "group {group} has members using the classic protocol (JoinGroup/SyncGroup); joining it the same way, with the range or round-robin assignor"
        );
    }
    if let Some(assigned) = polled {
        reader.positions.retain(|p, _| assigned.contains(p));
        reader.ends.retain(|p, _| assigned.contains(p));
        let new: Vec<TopicPartition> = assigned
            .into_iter()
            .filter(|p| !reader.positions.contains_key(p))
            .collect();
        let committed = committed_offsets(client, group, &new).await?;
        reader.add(client, &new, &committed).await?;
    }
    if reader.limit_reached() {
        return Ok(Flow::Done);
    }
    if reader.wanted().is_empty() {
        if !reader.follow && member.joined() {
            return Ok(Flow::Done);
        }
        tokio::time::sleep_until(member.next_heartbeat()).await;
        return Ok(Flow::Continue);
    }
    let Fetch::Printed(advanced) = reader.fetch_once(client).await? else {
        return Ok(Flow::Done);
    };
    if advanced.is_empty() {
        return Ok(Flow::Continue);
    }
    match member.commit(&advanced).await {
        Ok(()) => {}
        Err(e) if rejoin_settles(&e) => {
            eprintln!("commit refused ({e}); the next heartbeat rejoins");
        }
        Err(e) => return Err(e.into()),
    }
    Ok(Flow::Continue)
}

async fn committed_offsets(
    client: &mut Client,
    group: &str,
    partitions: &[TopicPartition],
) -> anyhow::Result<BTreeMap<TopicPartition, i64>> {
    if partitions.is_empty() {
        return Ok(BTreeMap::new());
    }
    let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for (topic, partition) in partitions {
        by_topic.entry(topic.clone()).or_default().push(*partition);
    }
    let asked: Vec<(String, Vec<i32>)> = by_topic.into_iter().collect();
    Ok(groups::committed_offsets(client, group, Some(&asked)).await?)
}

/// What one fetch did.
enum Fetch {
    /// Printed; the new positions of the partitions that moved.
    Printed(BTreeMap<TopicPartition, i64>),
    /// Output is closed (`| head`).
    OutputClosed,
}

impl Fetch {
    fn flow(self) -> Flow {
        match self {
            Fetch::Printed(_) => Flow::Continue,
            Fetch::OutputClosed => Flow::Done,
        }
    }
}

/// What is being read and where each partition stands.
struct Reader {
    from: Start,
    follow: bool,
    isolation: Isolation,
    printer: Printer,
    limit: u64,
    printed: u64,
    out: std::io::BufWriter<std::io::StdoutLock<'static>>,
    /// Next offset to print, per partition.
    positions: BTreeMap<TopicPartition, i64>,
    /// Without --follow: where each partition ended when it was taken up.
    ends: BTreeMap<TopicPartition, i64>,
}

impl Reader {
    /// Starts reading `partitions`: at the committed offset when there is one, else `--offset`.
    /// A start past the end is said so, and moves to the end.
    async fn add(
        &mut self,
        client: &mut Client,
        partitions: &[TopicPartition],
        committed: &BTreeMap<TopicPartition, i64>,
    ) -> anyhow::Result<()> {
        for tp in partitions {
            let (topic, p) = (tp.0.as_str(), tp.1);
            let mut position = match committed.get(tp) {
                Some(&offset) => offset,
                None => start_offset(client, topic, p, self.from).await?,
            };
            let end = data::list_offset_isolated(client, topic, p, LATEST, self.isolation).await?;
            if position > end {
                eprintln!(
                    "{topic}-{p}: offset {position} is past the end ({end}); going on from the end"
                );
                position = end;
            }
            self.positions.insert(tp.clone(), position);
            if !self.follow {
                self.ends.insert(tp.clone(), end);
            }
        }
        Ok(())
    }

    fn limit_reached(&self) -> bool {
        self.printed >= self.limit
    }

    /// Partitions with something left to read, and where.
    fn wanted(&self) -> Vec<(&str, i32, i64)> {
        self.positions
            .iter()
            .filter(|(tp, offset)| self.ends.get(*tp).is_none_or(|end| *offset < end))
            .map(|((topic, p), o)| (topic.as_str(), *p, *o))
            .collect()
    }

    /// One fetch of every wanted partition, printed.
    async fn fetch_once(&mut self, client: &mut Client) -> anyhow::Result<Fetch> {
        let options = FetchOptions {
            max_wait: FOLLOW_WAIT,
            partition_max_bytes: PARTITION_FETCH_BYTES,
            isolation: self.isolation,
        };
        let fetched = data::fetch_many(client, &self.wanted(), options).await?;
        let mut advanced = BTreeMap::new();
        for f in fetched {
            let tp = (f.topic, f.partition);
            let fetched = match f.result {
                Ok(fetched) => fetched,
                Err(e) if e.code() == Some(OFFSET_OUT_OF_RANGE) => {
                    let position = self.out_of_range(client, &tp, f.offset).await?;
                    self.positions.insert(tp, position);
                    continue;
                }
                Err(e) if e.is_retriable() => {
                    client.forget_leaders();
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let Some(next) = self.print_fetched(&tp, f.offset, &fetched)? else {
                return Ok(Fetch::OutputClosed);
            };
            if next != f.offset {
                self.positions.insert(tp.clone(), next);
                advanced.insert(tp, next);
            }
        }
        match self.out.flush() {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(Fetch::OutputClosed),
            Err(e) => Err(e.into()),
            Ok(()) => Ok(Fetch::Printed(advanced)),
        }
    }

    /// Where to go on from a position the broker says is out of range: the end when it is
    /// past the end, the log's new start when retention deleted it.
    async fn out_of_range(
        &self,
        client: &mut Client,
        (topic, p): &TopicPartition,
        offset: i64,
    ) -> anyhow::Result<i64> {
        let end = data::list_offset_isolated(client, topic, *p, LATEST, self.isolation).await?;
        if offset > end {
            eprintln!(
                "{topic}-{p}: offset {offset} is past the end ({end}); going on from the end"
            );
            return Ok(end);
        }
        let start = data::list_offset(client, topic, *p, EARLIEST).await?;
        eprintln!("{topic}-{p}: offset {offset} is gone (retention); going on from {start}");
        Ok(start)
    }

    /// Prints the records of one partition's fetch from `offset`, up to its end and the
    /// limit. Returns the partition's next position (after the last record printed, when
    /// printing stopped early), or `None` when output is closed.
    fn print_fetched(
        &mut self,
        tp: &TopicPartition,
        offset: i64,
        fetched: &data::Fetched,
    ) -> anyhow::Result<Option<i64>> {
        let end = self.ends.get(tp).copied().unwrap_or(i64::MAX);
        let (printer, limit) = (&self.printer, self.limit);
        let (out, printed) = (&mut self.out, &mut self.printed);
        let mut write_error = None;
        let mut stopped_at = None;
        let next =
            data::for_each_committed_record(&fetched.records, offset, &fetched.aborted, |r| {
                if stopped_at.is_some() || write_error.is_some() {
                    return;
                }
                if *printed >= limit || r.offset >= end {
                    stopped_at = Some(r.offset);
                    return;
                }
                match printer.print(out, &tp.0, tp.1, r) {
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

/// The topics named, or with `--regex` (or a `^` name) every non-internal topic a pattern
/// matches whole.
async fn topics_to_read(
    client: &mut Client,
    names: &[String],
    regex: bool,
) -> anyhow::Result<Vec<String>> {
    let is_pattern = |name: &String| regex || name.starts_with('^');
    if !names.iter().any(is_pattern) {
        let mut topics = names.to_vec();
        topics.dedup();
        return Ok(topics);
    }
    let metadata = client.metadata(None, false).await?;
    let existing: Vec<String> = metadata
        .topics
        .iter()
        .filter(|t| !t.is_internal)
        .filter_map(|t| t.name.as_ref().map(|n| n.to_string()))
        .collect();
    let mut topics = Vec::new();
    for name in names {
        if !is_pattern(name) {
            topics.push(name.clone());
            continue;
        }
        let pattern = regex::Regex::new(&format!("^(?:{name})$"))
            .map_err(|e| anyhow::anyhow!("{name:?} is not a regular expression: {e}"))?;
        topics.extend(existing.iter().filter(|t| pattern.is_match(t)).cloned());
    }
    topics.sort();
    topics.dedup();
    if topics.is_empty() {
        return Err(ClientError::Kafka {
            context: format!("matching {}", names.join(" ")),
            code: 3,
            name: "UNKNOWN_TOPIC_OR_PARTITION".into(),
            message: Some("no topic matches".into()),
        }
        .into());
    }
    Ok(topics)
}

async fn partitions_to_read(
    client: &mut Client,
    topic: &str,
    only: Option<i32>,
) -> anyhow::Result<Vec<TopicPartition>> {
    let all = client.partitions(topic, false).await?;
    match only {
        None => Ok(all.into_iter().map(|p| (topic.to_string(), p)).collect()),
        Some(p) if all.contains(&p) => Ok(vec![(topic.to_string(), p)]),
        Some(p) => anyhow::bail!(
            "topic {topic} has {} partitions; there is no partition {p}",
            all.len()
        ),
    }
}
