//! `sluice consume TOPIC`: print records from a starting point, to the end or following.

use super::Target;
use base64::Engine;
use sluice_client::data::{self, EARLIEST, LATEST};
use sluice_client::{Client, ClientError};
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
/// Without --follow, stops at the end of each partition as it was when the command started.
///
/// Examples:
///   sluice consume orders                      # everything there is, then exit
///   sluice consume orders --from latest --follow
///   sluice consume orders --from @2026-11-23T09:00:00Z -n 10 --format json
///   sluice consume orders --partition 2 --from 1500
#[command(verbatim_doc_comment)]
pub struct ConsumeArgs {
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
    #[arg(long, short = 'p')]
    pub partition: Option<i32>,
}

/// Where consumption starts, in every partition read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    Earliest,
    Latest,
    Offset(i64),
    Timestamp(i64),
}

pub fn parse_start(s: &str) -> Result<Start, String> {
    match s {
        "earliest" | "beginning" | "start" => Ok(Start::Earliest),
        "latest" | "end" => Ok(Start::Latest),
        _ => {
            if let Some(ts) = s.strip_prefix('@') {
                return parse_timestamp(ts).map(Start::Timestamp);
            }
            match s.parse::<i64>() {
                Ok(offset) if offset >= 0 => Ok(Start::Offset(offset)),
                _ => Err(format!(
                    "expected earliest, latest, an offset or @TIMESTAMP, got {s:?}"
                )),
            }
        }
    }
}

/// RFC 3339 (`2026-11-23T09:00:00Z`, `2026-11-23T10:00:00+01:00`) or milliseconds since the epoch.
pub fn parse_timestamp(s: &str) -> Result<i64, String> {
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    let at = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("{s:?} is neither epoch milliseconds nor an RFC 3339 time: {e}"))?;
    Ok((at.unix_timestamp_nanos() / 1_000_000) as i64)
}

pub async fn run(target: &Target, args: ConsumeArgs) -> anyhow::Result<()> {
    let mut client = target.connect().await?;
    let partitions = partitions_to_read(&mut client, &args.topic, args.partition).await?;
    let mut positions = BTreeMap::new();
    let mut ends = BTreeMap::new();
    for &p in &partitions {
        positions.insert(
            p,
            start_offset(&mut client, &args.topic, p, args.from).await?,
        );
        if !args.follow {
            ends.insert(
                p,
                data::list_offset(&mut client, &args.topic, p, LATEST).await?,
            );
        }
    }
    let json = args.format == "json";
    let mut printed = 0u64;
    let limit = args.count.unwrap_or(u64::MAX);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    while printed < limit {
        let wanted: Vec<(i32, i64)> = positions
            .iter()
            .filter(|(p, offset)| ends.get(p).is_none_or(|end| *offset < end))
            .map(|(p, o)| (*p, *o))
            .collect();
        if wanted.is_empty() {
            break;
        }
        let fetched = data::fetch_partitions(
            &mut client,
            &args.topic,
            &wanted,
            FOLLOW_WAIT,
            PARTITION_FETCH_BYTES,
        )
        .await?;
        for f in fetched {
            let fetched = match f.result {
                Ok(fetched) => fetched,
                Err(e) if e.code() == Some(OFFSET_OUT_OF_RANGE) => {
                    let start =
                        data::list_offset(&mut client, &args.topic, f.partition, EARLIEST).await?;
                    eprintln!(
                        "partition {}: offset {} is gone (retention); going on from {start}",
                        f.partition, f.offset
                    );
                    positions.insert(f.partition, start);
                    continue;
                }
                Err(e) if e.is_retriable() => {
                    client.forget_leaders();
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let end = ends.get(&f.partition).copied().unwrap_or(i64::MAX);
            let mut write_error = None;
            let next = data::for_each_record(&fetched.records, f.offset, |r| {
                if printed >= limit || r.offset >= end || write_error.is_some() {
                    return;
                }
                if let Err(e) = print_record(&mut out, &args.topic, f.partition, r, json) {
                    write_error = Some(e);
                }
                printed += 1;
            })?;
            if let Some(e) = write_error {
                if e.kind() == std::io::ErrorKind::BrokenPipe {
                    return Ok(()); // `| head` closed the pipe: done
                }
                return Err(e.into());
            }
            positions.insert(f.partition, next);
        }
        if let Err(e) = out.flush() {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                return Ok(());
            }
            return Err(e.into());
        }
    }
    Ok(())
}

async fn partitions_to_read(
    client: &mut Client,
    topic: &str,
    only: Option<i32>,
) -> anyhow::Result<Vec<i32>> {
    let metadata = client.metadata(Some(&[topic.to_string()]), false).await?;
    let t = metadata
        .topics
        .first()
        .ok_or_else(|| anyhow::anyhow!("the broker's Metadata answer names no topic"))?;
    ClientError::check(t.error_code, None, || format!("looking up topic {topic}"))?;
    let mut all: Vec<i32> = t.partitions.iter().map(|p| p.partition_index).collect();
    all.sort_unstable();
    match only {
        None => Ok(all),
        Some(p) if all.contains(&p) => Ok(vec![p]),
        Some(p) => anyhow::bail!(
            "topic {topic} has {} partitions; there is no partition {p}",
            all.len()
        ),
    }
}

async fn start_offset(
    client: &mut Client,
    topic: &str,
    partition: i32,
    from: Start,
) -> anyhow::Result<i64> {
    Ok(match from {
        Start::Earliest => data::list_offset(client, topic, partition, EARLIEST).await?,
        Start::Latest => data::list_offset(client, topic, partition, LATEST).await?,
        Start::Offset(offset) => offset,
        Start::Timestamp(ts) => data::list_offset(client, topic, partition, ts).await?,
    })
}

fn print_record(
    out: &mut impl Write,
    topic: &str,
    partition: i32,
    r: &Record<'_>,
    json: bool,
) -> std::io::Result<()> {
    if !json {
        out.write_all(r.value.unwrap_or_default())?;
        return out.write_all(b"\n");
    }
    let mut object = serde_json::Map::new();
    object.insert("topic".into(), topic.into());
    object.insert("partition".into(), partition.into());
    object.insert("offset".into(), r.offset.into());
    object.insert("timestamp".into(), r.timestamp.into());
    put_bytes(&mut object, "key", r.key);
    put_bytes(&mut object, "value", r.value);
    let headers: Vec<serde_json::Value> = r
        .headers
        .iter()
        .map(|h| {
            let mut header = serde_json::Map::new();
            put_bytes(&mut header, "key", Some(h.key));
            put_bytes(&mut header, "value", h.value);
            serde_json::Value::Object(header)
        })
        .collect();
    object.insert("headers".into(), headers.into());
    serde_json::to_writer(&mut *out, &serde_json::Value::Object(object))?;
    out.write_all(b"\n")
}

/// `name`: the bytes as a string when they are UTF-8, else `name_base64`; null when absent.
fn put_bytes(
    object: &mut serde_json::Map<String, serde_json::Value>,
    name: &str,
    bytes: Option<&[u8]>,
) {
    match bytes.map(std::str::from_utf8) {
        None => {
            object.insert(name.into(), serde_json::Value::Null);
        }
        Some(Ok(text)) => {
            object.insert(name.into(), text.into());
        }
        Some(Err(_)) => {
            let encoded =
                base64::engine::general_purpose::STANDARD.encode(bytes.unwrap_or_default());
            object.insert(format!("{name}_base64"), encoded.into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts() {
        assert_eq!(parse_start("earliest"), Ok(Start::Earliest));
        assert_eq!(parse_start("latest"), Ok(Start::Latest));
        assert_eq!(parse_start("42"), Ok(Start::Offset(42)));
        assert_eq!(
            parse_start("@1700000000000"),
            Ok(Start::Timestamp(1_700_000_000_000))
        );
        assert_eq!(
            parse_start("@2023-11-14T22:13:20Z"),
            Ok(Start::Timestamp(1_700_000_000_000))
        );
        assert_eq!(
            parse_start("@2023-11-14T23:13:20+01:00"),
            Ok(Start::Timestamp(1_700_000_000_000))
        );
        assert!(parse_start("-1").is_err());
        assert!(parse_start("@yesterday").is_err());
        assert!(parse_start("soon").is_err());
    }
}
