//! `sluice topic ...`: create, list, describe, alter-config, add-partitions, delete.

use super::{Target, key_value};
use sluice_client::admin::{self, NewTopic};
use sluice_client::data::{self, EARLIEST, LATEST};
use sluice_client::{Client, ClientError};

#[derive(clap::Subcommand, Debug)]
pub enum TopicCommand {
    /// Create a topic.
    ///
    /// Examples:
    ///   sluice topic create orders
    ///   sluice topic create orders --partitions 6 --config retention.ms=86400000
    ///   sluice topic create users --config cleanup.policy=compact --if-not-exists
    #[command(verbatim_doc_comment)]
    Create {
        name: String,
        /// Partitions (default: the broker's num.partitions).
        #[arg(long, short = 'p')]
        partitions: Option<i32>,
        /// Replicas per partition (default: the broker's default.replication.factor).
        #[arg(long, short = 'r')]
        replication_factor: Option<i16>,
        /// A topic config, e.g. retention.ms=3600000; repeatable.
        #[arg(long = "config", short = 'c', value_name = "KEY=VALUE", value_parser = key_value)]
        configs: Vec<(String, String)>,
        /// Succeed without change when the topic already exists.
        #[arg(long)]
        if_not_exists: bool,
    },
    /// List topics, with their partition counts.
    ///
    /// Examples:
    ///   sluice topic list
    ///   sluice topic list --internal      # include __consumer_offsets
    #[command(verbatim_doc_comment)]
    List {
        /// Include internal topics.
        #[arg(long, short = 'i')]
        internal: bool,
    },
    /// Show a topic's partitions (leader, first and next offset) and configs.
    ///
    /// Example:
    ///   sluice topic describe orders
    #[command(verbatim_doc_comment)]
    Describe { name: String },
    /// Set or remove topic configs.
    ///
    /// Examples:
    ///   sluice topic alter-config orders --set retention.ms=3600000 --set cleanup.policy=delete
    ///   sluice topic alter-config orders --delete retention.ms    # back to the default
    #[command(verbatim_doc_comment)]
    AlterConfig {
        name: String,
        /// KEY=VALUE to set; repeatable.
        #[arg(long, value_name = "KEY=VALUE", value_parser = key_value)]
        set: Vec<(String, String)>,
        /// KEY to remove (the default applies again); repeatable.
        #[arg(long, value_name = "KEY")]
        delete: Vec<String>,
    },
    /// Grow a topic to a total number of partitions (partitions are never removed).
    ///
    /// Example:
    ///   sluice topic add-partitions orders --total 12
    #[command(verbatim_doc_comment)]
    AddPartitions {
        name: String,
        /// The partition count afterwards.
        #[arg(long)]
        total: i32,
    },
    /// Delete a topic and all its records.
    ///
    /// Example:
    ///   sluice topic delete orders
    #[command(verbatim_doc_comment)]
    Delete { name: String },
}

pub async fn run(target: &Target, command: TopicCommand) -> anyhow::Result<()> {
    let mut client = target.connect().await?;
    match command {
        TopicCommand::Create {
            name,
            partitions,
            replication_factor,
            configs,
            if_not_exists,
        } => {
            let topic = NewTopic {
                name: name.clone(),
                partitions,
                replication_factor,
                configs,
            };
            match admin::create_topic(&mut client, &topic).await {
                Ok(count) => println!("created topic {name} with {count} partitions"),
                Err(e) if if_not_exists && e.code() == Some(TOPIC_ALREADY_EXISTS) => {
                    println!("topic {name} already exists");
                }
                Err(e) => return Err(e.into()),
            }
        }
        TopicCommand::List { internal } => list(&mut client, internal).await?,
        TopicCommand::Describe { name } => describe(&mut client, &name).await?,
        TopicCommand::AlterConfig { name, set, delete } => {
            anyhow::ensure!(
                !set.is_empty() || !delete.is_empty(),
                "nothing to change: give --set KEY=VALUE or --delete KEY"
            );
            admin::alter_topic_configs(&mut client, &name, &set, &delete).await?;
            println!(
                "updated {} config(s) of topic {name}",
                set.len() + delete.len()
            );
        }
        TopicCommand::AddPartitions { name, total } => {
            admin::create_partitions(&mut client, &name, total).await?;
            println!("topic {name} now has {total} partitions");
        }
        TopicCommand::Delete { name } => {
            admin::delete_topic(&mut client, &name).await?;
            println!("deleted topic {name}");
        }
    }
    Ok(())
}

const TOPIC_ALREADY_EXISTS: i16 = 36;

async fn list(client: &mut Client, internal: bool) -> anyhow::Result<()> {
    let metadata = client.metadata(None, false).await?;
    let mut rows: Vec<(String, usize, bool)> = metadata
        .topics
        .iter()
        .filter(|t| internal || !t.is_internal)
        .filter_map(|t| {
            Some((
                t.name.as_ref()?.to_string(),
                t.partitions.len(),
                t.is_internal,
            ))
        })
        .collect();
    rows.sort();
    let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0).max(5);
    println!("{:<width$}  PARTITIONS", "TOPIC");
    for (name, partitions, is_internal) in rows {
        let note = if is_internal { "  (internal)" } else { "" };
        println!("{name:<width$}  {partitions}{note}");
    }
    Ok(())
}

async fn describe(client: &mut Client, name: &str) -> anyhow::Result<()> {
    let metadata = client.metadata(Some(&[name.to_string()]), false).await?;
    let topic = metadata
        .topics
        .first()
        .ok_or_else(|| anyhow::anyhow!("the broker's Metadata answer names no topic"))?;
    ClientError::check(topic.error_code, None, || {
        format!("describing topic {name}")
    })?;
    let mut partitions: Vec<(i32, i32)> = topic
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.leader_id.0))
        .collect();
    partitions.sort();
    println!("topic       {name}");
    println!("id          {}", topic.topic_id);
    println!("partitions  {}", partitions.len());
    println!(
        "internal    {}",
        if topic.is_internal { "yes" } else { "no" }
    );
    println!();
    let indexes: Vec<i32> = partitions.iter().map(|(p, _)| *p).collect();
    // Brokers without DescribeLogDirs (or that refuse it) just leave the size out.
    let sizes = admin::partition_sizes(client, name, &indexes)
        .await
        .unwrap_or_default();
    println!("PARTITION  LEADER  LOG-START  END        RECORDS    SIZE");
    for (partition, leader) in partitions {
        let start = data::list_offset(client, name, partition, EARLIEST).await?;
        let end = data::list_offset(client, name, partition, LATEST).await?;
        let size = sizes
            .get(&partition)
            .map_or("-".to_string(), |b| human_bytes(*b));
        println!(
            "{partition:<9}  {leader:<6}  {start:<9}  {end:<9}  {:<9}  {size}",
            end - start
        );
    }
    println!();
    let configs = admin::describe_topic_configs(client, name).await?;
    let width = configs
        .iter()
        .map(|c| c.name.len())
        .max()
        .unwrap_or(0)
        .max(6);
    println!("{:<width$}  {:<20}  SOURCE", "CONFIG", "VALUE");
    for c in configs {
        let value = match (&c.value, c.sensitive) {
            (_, true) => "(sensitive)".to_string(),
            (Some(v), false) => v.clone(),
            (None, false) => "-".to_string(),
        };
        println!("{:<width$}  {value:<20}  {}", c.name, source_name(c.source));
    }
    Ok(())
}

/// Bytes for people: `512 B`, `1.5 KiB`, `3.2 GiB`.
fn human_bytes(bytes: i64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Kafka's `ConfigSource` numbers, as words.
fn source_name(source: i8) -> &'static str {
    match source {
        1 => "topic",
        2..=4 => "broker (dynamic)",
        5 => "broker",
        6 => "default",
        _ => "unknown",
    }
}
