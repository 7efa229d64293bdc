//! `sluice share-group ...`: list, describe (members, start offsets, lag), reset-offsets, delete of
//! share groups (KIP-932, docs/share-groups.md), over the Kafka protocol.

use super::{Output, Start, Target, parse_start, print_json};
use serde_json::json;
use sluice_client::Client;
use sluice_client::data::{LATEST, list_offset};
use sluice_client::{groups, share_groups};
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
    /// record is done), end offset and lag (records from the start offset on, in flight or not
    /// yet delivered).
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

/// One partition of a share group: its start offset (-1: none yet), end offset and lag.
struct Row {
    topic: String,
    partition: i32,
    start: i64,
    end: i64,
}

impl Row {
    fn lag(&self) -> Option<i64> {
        (self.start >= 0).then(|| (self.end - self.start).max(0))
    }
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
    let mut rows = Vec::with_capacity(starts.len());
    for ((topic, partition), start) in starts {
        let end = list_offset(client, &topic, partition, LATEST).await?;
        rows.push(Row {
            topic,
            partition,
            start,
            end,
        });
    }
    if format == Output::Json {
        let members: Vec<_> = described
            .members
            .iter()
            .map(|m| {
                let parts: Vec<_> = m.partitions.iter().map(|(t, p)| json!({"topic": t, "partition": p})).collect();
                json!({"member": m.member_id, "client_id": m.client_id, "host": m.client_host, "partitions": parts})
            })
            .collect();
        let partitions: Vec<_> = rows
            .iter()
            .map(|r| json!({"topic": r.topic, "partition": r.partition, "start_offset": r.start, "end_offset": r.end, "lag": r.lag()}))
            .collect();
        print_json(
            &json!({"group": group, "state": described.state, "group_epoch": described.group_epoch, "members": members, "partitions": partitions}),
        );
        return Ok(());
    }
    println!("group     {group}");
    println!("state     {}", described.state);
    println!("members   {}", described.members.len());
    if !described.members.is_empty() {
        println!();
        println!(
            "{:<24}  {:<19}  {:<19}  PARTITIONS",
            "MEMBER", "CLIENT-ID", "HOST"
        );
        for m in &described.members {
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
    if !rows.is_empty() {
        println!();
        println!("TOPIC                 PARTITION  START      END        LAG");
        for r in &rows {
            let start = if r.start < 0 {
                "-".to_string()
            } else {
                r.start.to_string()
            };
            let lag = r.lag().map_or("-".to_string(), |l| l.to_string());
            println!(
                "{:<20}  {:<9}  {:<9}  {:<9}  {lag}",
                r.topic, r.partition, start, r.end
            );
        }
    }
    Ok(())
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
