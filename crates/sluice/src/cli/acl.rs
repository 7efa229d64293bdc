//! `sluice acl add|list|remove`: Kafka's ACLs (docs/security.md), rpk-like flags, through
//! CreateAcls, DescribeAcls and DeleteAcls.

use super::{Output, Target, print_json};
use serde_json::json;
use sluice_acl::{CLUSTER_NAME, PatternType, Permission, ResourceType};
use sluice_client::security_admin::{self, Acl, AclNames};

/// Who and what an ACL command names.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct AclArgs {
    /// Principals allowed (User:alice); may be repeated.
    #[arg(long)]
    allow_principal: Vec<String>,
    /// Principals denied; may be repeated.
    #[arg(long)]
    deny_principal: Vec<String>,
    /// Hosts (IP addresses) the allow applies from (default: any, *).
    #[arg(long)]
    allow_host: Vec<String>,
    /// Hosts the deny applies from (default: any, *).
    #[arg(long)]
    deny_host: Vec<String>,
    /// Operations: all, read, write, create, delete, alter, describe, cluster_action,
    /// describe_configs, alter_configs, idempotent_write, create_tokens, describe_tokens,
    /// two_phase_commit; may be repeated.
    #[arg(long)]
    operation: Vec<String>,
    /// Topics; may be repeated.
    #[arg(long)]
    topic: Vec<String>,
    /// Consumer or share groups; may be repeated.
    #[arg(long)]
    group: Vec<String>,
    /// Transactional ids; may be repeated.
    #[arg(long)]
    transactional_id: Vec<String>,
    /// The cluster itself.
    #[arg(long)]
    cluster: bool,
    /// literal or prefixed (list and remove also take any and match).
    #[arg(long, default_value = "literal")]
    resource_pattern_type: String,
}

#[derive(clap::Subcommand, Debug)]
pub enum AclCommand {
    /// Add ACLs: each principal, host, operation and resource named.
    ///
    /// Examples:
    ///   sluice acl add --allow-principal User:alice --operation write --topic orders- --resource-pattern-type prefixed
    ///   sluice acl add --allow-principal User:bob --operation read --topic orders-eu --group billing
    ///   sluice acl add --deny-principal User:alice --operation write --topic orders-secret
    #[command(verbatim_doc_comment)]
    Add {
        #[command(flatten)]
        args: AclArgs,
    },
    /// List the ACLs that match what is named (nothing named: every ACL).
    ///
    /// Examples:
    ///   sluice acl list
    ///   sluice acl list --topic orders-eu --resource-pattern-type match --format json
    #[command(verbatim_doc_comment)]
    List {
        #[command(flatten)]
        args: AclArgs,
        #[arg(long, value_enum, default_value_t)]
        format: Output,
    },
    /// Remove the ACLs that match what is named (at least a principal or a resource).
    ///
    /// Example:
    ///   sluice acl remove --allow-principal User:alice --topic orders- --resource-pattern-type prefixed
    #[command(verbatim_doc_comment)]
    Remove {
        #[command(flatten)]
        args: AclArgs,
    },
}

impl AclArgs {
    /// Every (resource type, name) named.
    fn resources(&self) -> Vec<(ResourceType, String)> {
        let named = |t: ResourceType, names: &[String]| -> Vec<(ResourceType, String)> {
            names.iter().map(|n| (t, n.clone())).collect()
        };
        let mut out = named(ResourceType::Topic, &self.topic);
        out.extend(named(ResourceType::Group, &self.group));
        out.extend(named(ResourceType::TransactionalId, &self.transactional_id));
        if self.cluster {
            out.push((ResourceType::Cluster, CLUSTER_NAME.to_string()));
        }
        out
    }

    /// Every (principal, host, permission) named; the host `None` when none is named (any
    /// host: `*` in a new ACL, every host in a filter).
    fn grants(&self) -> Vec<(String, Option<String>, Permission)> {
        let hosts = |given: &[String]| -> Vec<Option<String>> {
            if given.is_empty() {
                vec![None]
            } else {
                given.iter().cloned().map(Some).collect()
            }
        };
        let mut out = Vec::new();
        for p in &self.allow_principal {
            for h in hosts(&self.allow_host) {
                out.push((p.clone(), h, Permission::Allow));
            }
        }
        for p in &self.deny_principal {
            for h in hosts(&self.deny_host) {
                out.push((p.clone(), h, Permission::Deny));
            }
        }
        out
    }

    /// Every combination of a resource (or none), a grant (or none) and an operation (or
    /// none) named, by name.
    fn combinations(&self, pattern_type: &str) -> Vec<AclNames> {
        let resources: Vec<Option<(ResourceType, String)>> = match self.resources() {
            r if r.is_empty() => vec![None],
            r => r.into_iter().map(Some).collect(),
        };
        let grants: Vec<Option<(String, Option<String>, Permission)>> = match self.grants() {
            g if g.is_empty() => vec![None],
            g => g.into_iter().map(Some).collect(),
        };
        let operations: Vec<Option<String>> = match &self.operation[..] {
            [] => vec![None],
            ops => ops.iter().cloned().map(Some).collect(),
        };
        let mut out = Vec::new();
        for resource in &resources {
            for grant in &grants {
                for operation in &operations {
                    out.push(AclNames {
                        resource_type: resource.as_ref().map(|(t, _)| t.name().to_string()),
                        resource_name: resource.as_ref().map(|(_, n)| n.clone()),
                        pattern_type: Some(pattern_type.to_string()),
                        principal: grant.as_ref().map(|(p, _, _)| p.clone()),
                        host: grant.as_ref().and_then(|(_, h, _)| h.clone()),
                        operation: operation.clone(),
                        permission: grant.as_ref().map(|(_, _, p)| p.name().to_string()),
                    });
                }
            }
        }
        out
    }

    /// The ACLs to add: every combination named.
    fn bindings(&self) -> anyhow::Result<Vec<Acl>> {
        anyhow::ensure!(
            !self.resources().is_empty(),
            "name a resource: --topic, --group, --transactional-id or --cluster"
        );
        anyhow::ensure!(
            !self.grants().is_empty(),
            "name a principal: --allow-principal or --deny-principal"
        );
        anyhow::ensure!(!self.operation.is_empty(), "name an operation: --operation");
        anyhow::ensure!(
            PatternType::from_name(&self.resource_pattern_type).is_some(),
            "--resource-pattern-type {}: literal or prefixed",
            self.resource_pattern_type
        );
        self.combinations(&self.resource_pattern_type)
            .iter()
            .map(|names| names.binding().map_err(|e| anyhow::anyhow!("{e}")))
            .collect()
    }

    /// The filters of list and remove: each resource (or any) by each principal (or any) by
    /// each operation (or any). Nothing named but the default `literal`: any pattern type.
    fn filters(&self) -> anyhow::Result<Vec<Acl>> {
        let pattern_type = match self.resource_pattern_type.as_str() {
            "literal" if self.resources().is_empty() => "any",
            other => other,
        };
        self.combinations(pattern_type)
            .iter()
            .map(|names| names.filter().map_err(|e| anyhow::anyhow!("{e}")))
            .collect()
    }
}

fn print(acls: &[Acl], format: Output) {
    let rows: Vec<AclNames> = acls.iter().map(Acl::names).collect();
    match format {
        Output::Json => print_json(&json!(rows)),
        Output::Text => {
            let field = |s: &Option<String>| s.clone().unwrap_or_default();
            println!(
                "{:<24} {:<16} {:<16} {:<24} {:<9} {:<16} PERMISSION",
                "PRINCIPAL", "HOST", "RESOURCE-TYPE", "RESOURCE-NAME", "PATTERN", "OPERATION"
            );
            for a in &rows {
                println!(
                    "{:<24} {:<16} {:<16} {:<24} {:<9} {:<16} {}",
                    field(&a.principal),
                    field(&a.host),
                    field(&a.resource_type),
                    field(&a.resource_name),
                    field(&a.pattern_type),
                    field(&a.operation),
                    field(&a.permission)
                );
            }
        }
    }
}

pub async fn run(target: &Target, command: AclCommand) -> anyhow::Result<()> {
    let mut client = target.connect().await?;
    match command {
        AclCommand::Add { args } => {
            let acls = args.bindings()?;
            security_admin::create_acls(&mut client, &acls).await?;
            println!("added {} ACL(s)", acls.len());
        }
        AclCommand::List { args, format } => {
            let mut all = Vec::new();
            for filter in args.filters()? {
                all.extend(security_admin::describe_acls(&mut client, &filter).await?);
            }
            all.sort();
            all.dedup();
            print(&all, format);
        }
        AclCommand::Remove { args } => {
            anyhow::ensure!(
                !args.resources().is_empty() || !args.grants().is_empty(),
                "name a principal or a resource to remove by (nothing named would remove every ACL)"
            );
            let mut removed = 0;
            for filter in args.filters()? {
                removed += security_admin::delete_acls(&mut client, &filter).await?;
            }
            println!("removed {removed} ACL(s)");
        }
    }
    Ok(())
}
