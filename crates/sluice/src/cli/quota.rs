//! `sluice quota set|list`: client quotas (docs/security.md, "Quotas") through
//! AlterClientQuotas and DescribeClientQuotas. An entity is a user, a client id, or both, each
//! by name or as the default of its type.

use super::{Output, Target, print_json};
use serde_json::json;
use sluice_client::client_quotas::{self, EntityQuotas, QuotaEntity};

/// Which entity a quota command names, as rpk names it: `--name user=alice`,
/// `--name client-id=billing`, `--default user`, `--default client-id` (`--user` is the
/// login's).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct EntityArgs {
    /// TYPE=NAME: user=alice or client-id=billing; may be repeated (one of each type).
    #[arg(long, value_name = "TYPE=NAME")]
    name: Vec<String>,
    /// TYPE: user or client-id: the default of that type (every user, or client id, without
    /// a quota of its own); may be repeated.
    #[arg(long, value_name = "TYPE")]
    default: Vec<String>,
}

const ENTITY_TYPES: [&str; 2] = ["user", "client-id"];

impl EntityArgs {
    fn entity(&self) -> anyhow::Result<QuotaEntity> {
        let mut entity = QuotaEntity::new();
        let mut add = |entity_type: &str, name: Option<String>| {
            anyhow::ensure!(
                ENTITY_TYPES.contains(&entity_type),
                "{entity_type}: the entity types are user and client-id"
            );
            anyhow::ensure!(
                entity.insert(entity_type.to_string(), name).is_none(),
                "{entity_type} is named twice"
            );
            Ok(())
        };
        for pair in &self.name {
            let (entity_type, name) = pair
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("--name {pair}: TYPE=NAME, as user=alice"))?;
            add(entity_type, Some(name.to_string()))?;
        }
        for entity_type in &self.default {
            add(entity_type, None)?;
        }
        Ok(entity)
    }
}

#[derive(clap::Subcommand, Debug)]
pub enum QuotaCommand {
    /// Set or remove an entity's quotas: producer_byte_rate and consumer_byte_rate (bytes per
    /// second), request_percentage (of one handler thread's time).
    ///
    /// Examples:
    ///   sluice quota set --name user=alice producer_byte_rate=1048576 consumer_byte_rate=2097152
    ///   sluice quota set --default client-id request_percentage=50
    ///   sluice quota set --name user=alice --name client-id=billing --remove producer_byte_rate
    #[command(verbatim_doc_comment)]
    Set {
        #[command(flatten)]
        entity: EntityArgs,
        /// KEY=VALUE quotas to set.
        quotas: Vec<String>,
        /// Quota keys to remove; may be repeated.
        #[arg(long)]
        remove: Vec<String>,
    },
    /// List the quotas of the entities that name at least what is given (nothing: all).
    ///
    /// Examples:
    ///   sluice quota list
    ///   sluice quota list --name user=alice --format json
    #[command(verbatim_doc_comment)]
    List {
        #[command(flatten)]
        entity: EntityArgs,
        #[arg(long, value_enum, default_value_t)]
        format: Output,
    },
}

fn parse_quota(text: &str) -> anyhow::Result<(String, f64)> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| anyhow::anyhow!("{text}: a quota is KEY=VALUE"))?;
    let value: f64 = value
        .trim()
        .parse()
        .map_err(|_| anyhow::anyhow!("{text}: the value is a number"))?;
    Ok((key.trim().to_string(), value))
}

fn entity_text(entity: &QuotaEntity) -> String {
    entity
        .iter()
        .map(|(t, n)| format!("{t}={}", n.as_deref().unwrap_or("<default>")))
        .collect::<Vec<_>>()
        .join(",")
}

fn print(all: &[EntityQuotas], format: Output) {
    match format {
        Output::Json => print_json(&json!(
            all.iter()
                .map(|e| json!({"entity": e.entity, "quotas": e.quotas}))
                .collect::<Vec<_>>()
        )),
        Output::Text => {
            println!("{:<40} QUOTAS", "ENTITY");
            for e in all {
                let quotas: Vec<String> =
                    e.quotas.iter().map(|(k, v)| format!("{k}={v}")).collect();
                println!("{:<40} {}", entity_text(&e.entity), quotas.join(" "));
            }
        }
    }
}

pub async fn run(target: &Target, command: QuotaCommand) -> anyhow::Result<()> {
    let mut client = target.connect().await?;
    match command {
        QuotaCommand::Set {
            entity,
            quotas,
            remove,
        } => {
            let entity = entity.entity()?;
            anyhow::ensure!(
                !entity.is_empty(),
                "name an entity: --name user=NAME, --name client-id=ID, --default user or --default client-id"
            );
            anyhow::ensure!(
                !quotas.is_empty() || !remove.is_empty(),
                "name a KEY=VALUE to set or a --remove KEY"
            );
            let set = quotas
                .iter()
                .map(|q| parse_quota(q))
                .collect::<anyhow::Result<Vec<_>>>()?;
            client_quotas::alter(&mut client, &entity, &set, &remove).await?;
            println!("quotas of {} altered", entity_text(&entity));
        }
        QuotaCommand::List { entity, format } => {
            let all = client_quotas::describe(&mut client, &entity.entity()?).await?;
            print(&all, format);
        }
    }
    Ok(())
}
