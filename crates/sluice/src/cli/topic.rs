//! `sluice topic ...`: create, list, describe, alter-config, add-partitions, trim-prefix,
//! delete.

use super::{Output, Start, Target, key_value, parse_start, print_json};
use serde_json::json;
use sluice_client::admin::{self, NewTopic};
use sluice_client::codes::TOPIC_ALREADY_EXISTS;
use sluice_client::data::{self, EARLIEST, LATEST};
use sluice_client::units::human_bytes;
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
    ///   sluice topic list --format json
    #[command(verbatim_doc_comment)]
    List {
        /// Include internal topics.
        #[arg(long, short = 'i')]
        internal: bool,
        /// text: a table; json: one JSON document, for scripts.
        #[arg(long, value_enum, default_value_t)]
        format: Output,
    },
    /// Show a topic's partitions (leader, first and next offset) and configs.
    ///
    /// Examples:
    ///   sluice topic describe orders
    ///   sluice topic describe orders --format json
    #[command(verbatim_doc_comment)]
    Describe {
        name: String,
        /// text: tables; json: one JSON document, for scripts.
        #[arg(long, value_enum, default_value_t)]
        format: Output,
    },
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
    /// Delete the records before an offset (DeleteRecords): the partitions then start there.
    ///
    /// --offset takes an offset N, end (everything there is), -N (keep the last N records) or
    /// @TIME (delete what is older). Asks first on a terminal, unless --no-confirm.
    ///
    /// Examples:
    ///   sluice topic trim-prefix orders --offset 1500 --partitions 0,2
    ///   sluice topic trim-prefix orders --offset @-7d --no-confirm
    ///   sluice topic trim-prefix orders --offset -1000   # keep the last 1000 of each partition
    #[command(verbatim_doc_comment)]
    TrimPrefix {
        name: String,
        /// The new first offset of each partition (see above).
        #[arg(long, short = 'o', value_parser = parse_start, allow_hyphen_values = true)]
        offset: Start,
        /// Only these partitions (default: all of them).
        #[arg(long, short = 'p', value_delimiter = ',')]
        partitions: Vec<i32>,
        /// Do not ask for confirmation.
        #[arg(long, short = 'n')]
        no_confirm: bool,
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
        TopicCommand::List { internal, format } => list(&mut client, internal, format).await?,
        TopicCommand::Describe { name, format } => describe(&mut client, &name, format).await?,
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
        TopicCommand::TrimPrefix {
            name,
            offset,
            partitions,
            no_confirm,
        } => trim_prefix(&mut client, &name, offset, partitions, no_confirm).await?,
        TopicCommand::Delete { name } => {
            admin::delete_topic(&mut client, &name).await?;
            println!("deleted topic {name}");
        }
    }
    Ok(())
}

/// `trim-prefix`: works out each partition's new start, asks (on a terminal), deletes.
async fn trim_prefix(
    client: &mut Client,
    name: &str,
    to: Start,
    only: Vec<i32>,
    no_confirm: bool,
) -> anyhow::Result<()> {
    let all = client.partitions(name, false).await?;
    if let Some(missing) = only.iter().find(|p| !all.contains(p)) {
        anyhow::bail!("topic {name} has no partition {missing}");
    }
    let chosen = if only.is_empty() { all } else { only };
    let mut plan = Vec::with_capacity(chosen.len());
    for p in chosen {
        let offset = sluice_client::position::trim_offset(client, name, p, to).await?;
        plan.push((p, offset));
    }
    if !no_confirm && std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        for (p, offset) in &plan {
            let shown = if *offset == data::DELETE_TO_END {
                "the end".to_string()
            } else {
                offset.to_string()
            };
            println!("{name}-{p}: delete the records before {shown}");
        }
        print!("Go ahead? [y/N] ");
        std::io::Write::flush(&mut std::io::stdout())?;
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            println!("nothing deleted");
            return Ok(());
        }
    }
    println!("PARTITION  START");
    for (p, offset) in plan {
        let start = data::delete_records(client, name, p, offset).await?;
        println!("{p:<9}  {start}");
    }
    Ok(())
}

async fn list(client: &mut Client, internal: bool, format: Output) -> anyhow::Result<()> {
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
    if format == Output::Json {
        let topics: Vec<serde_json::Value> = rows
            .iter()
            .map(|(name, partitions, internal)| {
                json!({"name": name, "partitions": partitions, "internal": internal})
            })
            .collect();
        print_json(&json!(topics));
        return Ok(());
    }
    let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0).max(5);
    println!("{:<width$}  PARTITIONS", "TOPIC");
    for (name, partitions, is_internal) in rows {
        let note = if is_internal { "  (internal)" } else { "" };
        println!("{name:<width$}  {partitions}{note}");
    }
    Ok(())
}

/// One partition as `describe` shows it.
struct PartitionRow {
    partition: i32,
    leader: i32,
    replicas: Vec<i32>,
    isr: Vec<i32>,
    log_start: i64,
    end: i64,
    size_bytes: Option<i64>,
}

async fn describe(client: &mut Client, name: &str, format: Output) -> anyhow::Result<()> {
    let metadata = client.metadata(Some(&[name.to_string()]), false).await?;
    let topic = metadata
        .topics
        .first()
        .ok_or_else(|| anyhow::anyhow!("the broker's Metadata answer names no topic"))?;
    ClientError::check(topic.error_code, None, || {
        format!("describing topic {name}")
    })?;
    let mut partitions: Vec<_> = topic.partitions.iter().collect();
    partitions.sort_by_key(|p| p.partition_index);
    let indexes: Vec<i32> = partitions.iter().map(|p| p.partition_index).collect();
    // Brokers without DescribeLogDirs (or that refuse it) just leave the size out.
    let sizes = admin::partition_sizes(client, name, &indexes)
        .await
        .unwrap_or_default();
    let mut rows = Vec::with_capacity(partitions.len());
    for p in partitions {
        let index = p.partition_index;
        rows.push(PartitionRow {
            partition: index,
            leader: p.leader_id.0,
            replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
            isr: p.isr_nodes.iter().map(|b| b.0).collect(),
            log_start: data::list_offset(client, name, index, EARLIEST).await?,
            end: data::list_offset(client, name, index, LATEST).await?,
            size_bytes: sizes.get(&index).copied(),
        });
    }
    let configs = admin::describe_topic_configs(client, name).await?;
    if format == Output::Json {
        let partitions: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| {
                json!({
                    "partition": r.partition,
                    "leader": r.leader,
                    "replicas": r.replicas,
                    "isr": r.isr,
                    "log_start_offset": r.log_start,
                    "end_offset": r.end,
                    "records": r.end - r.log_start,
                    "size_bytes": r.size_bytes,
                })
            })
            .collect();
        let configs: Vec<serde_json::Value> = configs
            .iter()
            .map(|c| {
                let value = if c.sensitive { None } else { c.value.clone() };
                json!({"name": c.name, "value": value, "source": source_name(c.source), "sensitive": c.sensitive})
            })
            .collect();
        print_json(&json!({
            "name": name,
            "id": topic.topic_id.to_string(),
            "internal": topic.is_internal,
            "partitions": partitions,
            "configs": configs,
        }));
        return Ok(());
    }
    println!("topic       {name}");
    println!("id          {}", topic.topic_id);
    println!("partitions  {}", rows.len());
    println!(
        "internal    {}",
        if topic.is_internal { "yes" } else { "no" }
    );
    println!();
    println!("PARTITION  LEADER  LOG-START  END        RECORDS    SIZE");
    for r in &rows {
        let size = r
            .size_bytes
            .map_or("-".to_string(), |b| human_bytes(b as f64));
        println!(
            "{:<9}  {:<6}  {:<9}  {:<9}  {:<9}  {size}",
            r.partition,
            r.leader,
            r.log_start,
            r.end,
            r.end - r.log_start
        );
    }
    println!();
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
