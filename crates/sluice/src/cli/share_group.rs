//! `sluice share-group ...`: list, describe (members; per partition start offset, lag, records
//! in flight, archived, delivery counts; dead letters), reset-offsets, delete of share groups
//! (KIP-932, docs/share-groups.md), over the Kafka protocol.

/// The group config naming a share group's dead-letter topic (KIP-1191).
const DLQ_TOPIC_CONFIG: &str = "errors.deadletterqueue.topic.name";

use super::{Output, Start, Target, parse_start, print_json};
use serde_json::json;
use sluice_client::Client;
use sluice_client::codes::UNKNOWN_TOPIC_OR_PARTITION;
use sluice_client::data::{EARLIEST, LATEST, list_offset};
use sluice_client::share_groups::InFlight;
use sluice_client::{admin, groups, share_groups};
use std::collections::BTreeMap;

#[derive(clap::Subcommand, Debug)]
pub enum ShareGroupCommand {
    /// List share groups with their state.
    ///
    /// Examples:
    ///   sluice share-group list
    ///   sluice share-group list --format json
    #[command(verbatim_doc_comment)]
    List {
        #[arg(long, value_enum, default_value_t)]
        format: Output,
    },
    /// Show a share group's members and, per partition, its start offset (below it every
    /// record is done), end offset, lag (records from the start offset on not yet done), the
    /// records in flight (delivered, not yet done), those archived past the start and the
    /// highest delivery count; and how many records its dead-letter topic holds.
    ///
    /// Examples:
    ///   sluice share-group describe workers
    ///   sluice share-group describe workers --topic jobs --format json
    #[command(verbatim_doc_comment)]
    Describe {
        group: String,
        /// The topic to show (default: those its members subscribe to).
        #[arg(long)]
        topic: Option<String>,
        #[arg(long, value_enum, default_value_t)]
        format: Output,
    },
    /// Move a share group's start offsets on a topic (a dry run unless --execute). Records
    /// in flight are forgotten; the group must have no members.
    ///
    /// Examples:
    ///   sluice share-group reset-offsets workers --topic jobs --to earliest
    ///   sluice share-group reset-offsets workers --topic jobs --to latest --execute
    #[command(verbatim_doc_comment)]
    ResetOffsets {
        group: String,
        #[arg(long)]
        topic: String,
        /// earliest, latest, an offset, or @TIMESTAMP (RFC 3339, or epoch ms).
        #[arg(long, value_parser = parse_start)]
        to: Start,
        #[arg(long)]
        execute: bool,
    },
    /// Delete a share group and its share-partitions' state (it must have no members); a
    /// group of that id reading again starts at share.auto.offset.reset.
    ///
    /// Example:
    ///   sluice share-group delete workers
    #[command(verbatim_doc_comment)]
    Delete { group: String },
}

pub async fn run(target: &Target, command: ShareGroupCommand) -> anyhow::Result<()> {
    let mut client = target.connect().await?;
    match command {
        ShareGroupCommand::List { format } => list(&mut client, format).await,
        ShareGroupCommand::Describe {
            group,
            topic,
            format,
        } => describe(&mut client, &group, topic.as_deref(), format).await,
        ShareGroupCommand::ResetOffsets {
            group,
            topic,
            to,
            execute,
        } => reset_offsets(&mut client, &group, &topic, to, execute).await,
        ShareGroupCommand::Delete { group } => {
            groups::delete_group(&mut client, &group).await?;
            println!("deleted share group {group}");
            Ok(())
        }
    }
}

async fn list(client: &mut Client, format: Output) -> anyhow::Result<()> {
    let listed: Vec<_> = groups::list_groups(client)
        .await?
        .into_iter()
        .filter(|g| g.group_type == "share")
        .collect();
    if format == Output::Json {
        let rows: Vec<_> = listed
            .iter()
            .map(|g| json!({"group": g.group_id, "state": g.state}))
            .collect();
        print_json(&json!(rows));
        return Ok(());
    }
    let width = listed
        .iter()
        .map(|g| g.group_id.len())
        .max()
        .unwrap_or(0)
        .max(5);
    println!("{:<width$}  STATE", "GROUP");
    for g in &listed {
        println!("{:<width$}  {}", g.group_id, g.state);
    }
    Ok(())
}

/// One partition of a share group: its start offset (-1: none yet), end offset, and what its
/// share coordinator keeps of the records in flight (`None`: nothing written yet).
struct Row {
    topic: String,
    partition: i32,
    start: i64,
    end: i64,
    in_flight: Option<InFlight>,
}

impl Row {
    /// Records from the start offset on not yet done: in flight or not yet delivered.
    fn lag(&self) -> Option<i64> {
        let done = self.in_flight.map_or(0, |f| f.acknowledged + f.archived);
        (self.start >= 0).then(|| (self.end - self.start - done).max(0))
    }

    fn json(&self) -> serde_json::Value {
        let f = self.in_flight.unwrap_or_default();
        json!({"topic": self.topic, "partition": self.partition, "start_offset": self.start,
               "end_offset": self.end, "lag": self.lag(), "in_flight": f.delivered,
               "archived": f.archived, "max_delivery_count": f.max_delivery_count})
    }
}

/// The group's dead-letter topic, if it names one, and how many records it holds.
async fn dead_letters(client: &mut Client, group: &str) -> anyhow::Result<Option<(String, i64)>> {
    let configs = admin::describe_group_configs(client, group).await?;
    let Some(topic) = configs
        .into_iter()
        .find(|c| c.name == DLQ_TOPIC_CONFIG)
        .and_then(|c| c.value)
        .filter(|v| !v.is_empty())
    else {
        return Ok(None);
    };
    let mut held = 0;
    let partitions = match client.partitions(&topic, false).await {
        Ok(partitions) => partitions,
        // Named but not created yet: nothing was written to it.
        Err(e) if e.code() == Some(UNKNOWN_TOPIC_OR_PARTITION) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    for partition in partitions {
        let end = list_offset(client, &topic, partition, LATEST).await?;
        let start = list_offset(client, &topic, partition, EARLIEST).await?;
        held += end - start;
    }
    Ok(Some((topic, held)))
}

async fn describe(
    client: &mut Client,
    group: &str,
    topic: Option<&str>,
    format: Output,
) -> anyhow::Result<()> {
    let described = share_groups::describe_share_group(client, group).await?;
    let asked = match topic {
        Some(t) => Some(vec![(t.to_string(), client.partitions(t, false).await?)]),
        None => None,
    };
    let starts = share_groups::share_group_offsets(client, group, asked.as_deref()).await?;
    let rows = rows(client, group, starts).await?;
    let dead = dead_letters(client, group).await?;
    if format == Output::Json {
        let members: Vec<_> = described
            .members
            .iter()
            .map(|m| {
                let parts: Vec<_> = m.partitions.iter().map(|(t, p)| json!({"topic": t, "partition": p})).collect();
                json!({"member": m.member_id, "client_id": m.client_id, "host": m.client_host, "partitions": parts})
            })
            .collect();
        let partitions: Vec<_> = rows.iter().map(Row::json).collect();
        let (dlq, letters) = dead.map_or((None, None), |(t, n)| (Some(t), Some(n)));
        print_json(
            &json!({"group": group, "state": described.state, "group_epoch": described.group_epoch,
                    "members": members, "partitions": partitions, "dead_letter_topic": dlq,
                    "dead_letters": letters}),
        );
        return Ok(());
    }
    println!("group         {group}");
    println!("state         {}", described.state);
    println!("members       {}", described.members.len());
    if let Some((topic, letters)) = &dead {
        println!("dead letters  {letters} on {topic}");
    }
    print_members(&described.members);
    print_rows(&rows);
    Ok(())
}

/// Each partition's row: its end offset and what its share coordinator keeps in flight.
async fn rows(
    client: &mut Client,
    group: &str,
    starts: BTreeMap<(String, i32), i64>,
) -> anyhow::Result<Vec<Row>> {
    let mut by_topic: BTreeMap<String, Vec<(i32, i64)>> = BTreeMap::new();
    for ((topic, partition), start) in starts {
        by_topic.entry(topic).or_default().push((partition, start));
    }
    let mut rows = Vec::new();
    for (topic, partitions) in by_topic {
        let topic_id = topic_id(client, &topic).await?;
        let indexes: Vec<i32> = partitions.iter().map(|(p, _)| *p).collect();
        let mut in_flight = share_groups::in_flight(client, group, topic_id, &indexes).await?;
        for (partition, start) in partitions {
            let end = list_offset(client, &topic, partition, LATEST).await?;
            rows.push(Row {
                topic: topic.clone(),
                partition,
                start,
                end,
                in_flight: in_flight.remove(&partition).flatten(),
            });
        }
    }
    Ok(rows)
}

async fn topic_id(client: &mut Client, topic: &str) -> anyhow::Result<uuid::Uuid> {
    let metadata = client.metadata(Some(&[topic.to_string()]), false).await?;
    metadata
        .topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.as_str() == topic))
        .map(|t| t.topic_id)
        .filter(|id| !id.is_nil())
        .ok_or_else(|| anyhow::anyhow!("the broker did not give topic {topic}'s id"))
}

fn print_members(members: &[share_groups::ShareMember]) {
    if members.is_empty() {
        return;
    }
    println!();
    println!(
        "{:<24}  {:<19}  {:<19}  PARTITIONS",
        "MEMBER", "CLIENT-ID", "HOST"
    );
    for m in members {
        let list: Vec<String> = m
            .partitions
            .iter()
            .map(|(t, p)| format!("{t}-{p}"))
            .collect();
        println!(
            "{:<24}  {:<19}  {:<19}  {}",
            m.member_id,
            m.client_id,
            m.client_host,
            list.join(",")
        );
    }
}

fn print_rows(rows: &[Row]) {
    if rows.is_empty() {
        return;
    }
    let dash = |v: Option<i64>| v.map_or("-".to_string(), |v| v.to_string());
    println!();
    println!(
        "TOPIC                 PARTITION  START      END        LAG        IN-FLIGHT  ARCHIVED   MAX-DELIVERIES"
    );
    for r in rows {
        let start = dash((r.start >= 0).then_some(r.start));
        let f = r.in_flight;
        println!(
            "{:<20}  {:<9}  {:<9}  {:<9}  {:<9}  {:<9}  {:<9}  {}",
            r.topic,
            r.partition,
            start,
            r.end,
            dash(r.lag()),
            dash(f.map(|f| f.delivered)),
            dash(f.map(|f| f.archived)),
            dash(f.map(|f| i64::from(f.max_delivery_count))),
        );
    }
}

async fn reset_offsets(
    client: &mut Client,
    group: &str,
    topic: &str,
    to: Start,
    execute: bool,
) -> anyhow::Result<()> {
    let partitions = client.partitions(topic, false).await?;
    let asked = [(topic.to_string(), partitions.clone())];
    let current = share_groups::share_group_offsets(client, group, Some(&asked)).await?;
    let mut plan = BTreeMap::new();
    println!("PARTITION  CURRENT    NEW");
    for p in partitions {
        let new = sluice_client::position::reset_offset(client, topic, p, to).await?;
        let old = current.get(&(topic.to_string(), p)).copied().unwrap_or(-1);
        let old = if old < 0 {
            "-".to_string()
        } else {
            old.to_string()
        };
        println!("{p:<9}  {old:<9}  {new}");
        plan.insert(p, new);
    }
    if !execute {
        println!("dry run: nothing changed; add --execute to move the start offsets");
        return Ok(());
    }
    share_groups::alter_share_group_offsets(client, group, topic, &plan).await?;
    println!("moved the start offsets of share group {group} on {topic}");
    Ok(())
}
