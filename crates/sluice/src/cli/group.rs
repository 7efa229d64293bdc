//! `sluice group ...`: list, describe (members and lag), reset-offsets, delete.

use super::{Output, Start, Target, parse_start, print_json};
use serde_json::json;
use sluice_client::Client;
use sluice_client::groups;

#[derive(clap::Subcommand, Debug)]
pub enum GroupCommand {
    /// List consumer groups with their state and protocol.
    ///
    /// Examples:
    ///   sluice group list
    ///   sluice group list --format json
    #[command(verbatim_doc_comment)]
    List {
        /// text: a table; json: one JSON document, for scripts.
        #[arg(long, value_enum, default_value_t)]
        format: Output,
    },
    /// Show a group's members and, per partition, committed offset, end offset and lag.
    ///
    /// Examples:
    ///   sluice group describe billing
    ///   sluice group describe billing --format json   # the HTTP API's GET /v1/groups/{group}
    #[command(verbatim_doc_comment)]
    Describe {
        group: String,
        /// text: tables; json: one JSON document, for scripts.
        #[arg(long, value_enum, default_value_t)]
        format: Output,
    },
    /// Move a group's committed offsets for a topic (a dry run unless --execute).
    ///
    /// The group must have no active members (stop its consumers first), as in Kafka.
    ///
    /// Examples:
    ///   sluice group reset-offsets billing --topic orders --to earliest
    ///   sluice group reset-offsets billing --topic orders --to @2026-11-23T09:00:00Z --execute
    #[command(verbatim_doc_comment)]
    ResetOffsets {
        group: String,
        #[arg(long)]
        topic: String,
        /// earliest, latest, an offset, or @TIMESTAMP (RFC 3339, or epoch ms).
        #[arg(long, value_parser = parse_start)]
        to: Start,
        /// Apply the change (without it, only show what would change).
        #[arg(long)]
        execute: bool,
    },
    /// Delete a group and its committed offsets (it must have no active members).
    ///
    /// Example:
    ///   sluice group delete billing
    #[command(verbatim_doc_comment)]
    Delete { group: String },
}

pub async fn run(target: &Target, command: GroupCommand) -> anyhow::Result<()> {
    let mut client = target.connect().await?;
    match command {
        GroupCommand::List { format } => list(&mut client, format).await,
        GroupCommand::Describe { group, format } => describe(&mut client, &group, format).await,
        GroupCommand::ResetOffsets {
            group,
            topic,
            to,
            execute,
        } => reset_offsets(&mut client, &group, &topic, to, execute).await,
        GroupCommand::Delete { group } => {
            groups::delete_group(&mut client, &group).await?;
            println!("deleted group {group}");
            Ok(())
        }
    }
}

async fn list(client: &mut Client, format: Output) -> anyhow::Result<()> {
    let listed = groups::list_groups(client).await?;
    let kind = |g: &groups::ListedGroup| {
        if g.group_type.is_empty() {
            g.protocol_type.clone()
        } else {
            g.group_type.clone()
        }
    };
    if format == Output::Json {
        let rows: Vec<serde_json::Value> = listed
            .iter()
            .map(|g| json!({"group": g.group_id, "state": g.state, "type": kind(g)}))
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
    println!("{:<width$}  {:<20}  TYPE", "GROUP", "STATE");
    for g in &listed {
        println!("{:<width$}  {:<20}  {}", g.group_id, g.state, kind(g));
    }
    Ok(())
}

async fn describe(client: &mut Client, group: &str, format: Output) -> anyhow::Result<()> {
    let report = groups::report(client, group).await?;
    if format == Output::Json {
        print_json(&report.to_json());
        return Ok(());
    }
    println!("group     {group}");
    println!("state     {}", report.state);
    println!("protocol  {} {}", report.protocol_type, report.protocol);
    println!("members   {}", report.members.len());
    if !report.members.is_empty() {
        println!();
        println!(
            "MEMBER                                    CLIENT-ID            HOST                 PARTITIONS"
        );
        for m in &report.members {
            let list: Vec<String> = m
                .partitions
                .iter()
                .map(|(t, p)| format!("{t}-{p}"))
                .collect();
            println!(
                "{:<40}  {:<19}  {:<19}  {}",
                m.member_id,
                m.client_id,
                m.client_host,
                if list.is_empty() {
                    "-".to_string()
                } else {
                    list.join(",")
                }
            );
        }
    }
    if report.partitions.is_empty() {
        return Ok(());
    }
    println!();
    println!("TOPIC                 PARTITION  COMMITTED  END        LAG        MEMBER");
    for row in &report.partitions {
        let text = |v: Option<i64>| v.map_or("-".to_string(), |v| v.to_string());
        println!(
            "{:<20}  {:<9}  {:<9}  {:<9}  {:<9}  {}",
            row.topic,
            row.partition,
            text(row.committed),
            row.end_offset,
            text(row.lag()),
            row.owner.as_deref().unwrap_or("-")
        );
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
    let plan = groups::plan_reset(client, group, topic, to).await?;
    println!("PARTITION  CURRENT    NEW");
    for row in &plan {
        let old = row.current.map_or("-".to_string(), |o| o.to_string());
        println!("{:<9}  {old:<9}  {}", row.partition, row.new);
    }
    if !execute {
        println!("dry run: nothing changed; add --execute to commit these offsets");
        return Ok(());
    }
    groups::execute_reset(client, group, topic, &plan).await?;
    println!("committed new offsets for group {group} on {topic}");
    Ok(())
}
