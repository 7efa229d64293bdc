//! `sluice acl add|list|remove`: Kafka's ACLs (docs/security.md), rpk-like flags, through
//! CreateAcls, DescribeAcls and DeleteAcls.

use super::{Output, Target, print_json};
use serde_json::json;
use sluice_acl::{
    ANY_CODE, CLUSTER_NAME, MATCH_CODE, Operation, PatternType, Permission, ResourceType,
};
use sluice_client::security_admin::{self, Acl};

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
    /// describe_configs, alter_configs, idempotent_write; may be repeated.
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

const OPERATIONS: &[(&str, Operation)] = &[
    ("all", Operation::All),
    ("read", Operation::Read),
    ("write", Operation::Write),
    ("create", Operation::Create),
    ("delete", Operation::Delete),
    ("alter", Operation::Alter),
    ("describe", Operation::Describe),
    ("cluster_action", Operation::ClusterAction),
    ("describe_configs", Operation::DescribeConfigs),
    ("alter_configs", Operation::AlterConfigs),
    ("idempotent_write", Operation::IdempotentWrite),
];

fn operation_code(name: &str) -> anyhow::Result<i8> {
    let wanted = name.to_ascii_lowercase().replace('-', "_");
    let found = OPERATIONS
        .iter()
        .find(|(n, _)| *n == wanted.replace("clusteraction", "cluster_action"));
    found.map(|(_, o)| o.code()).ok_or_else(|| {
        let names: Vec<&str> = OPERATIONS.iter().map(|(n, _)| *n).collect();
        anyhow::anyhow!("--operation {name}: one of {}", names.join(", "))
    })
}

fn operation_name(code: i8) -> String {
    OPERATIONS
        .iter()
        .find(|(_, o)| o.code() == code)
        .map_or(code.to_string(), |(n, _)| n.to_string())
}

fn pattern_code(name: &str, filter: bool) -> anyhow::Result<i8> {
    match name.to_ascii_lowercase().as_str() {
        "literal" => Ok(PatternType::Literal.code()),
        "prefixed" => Ok(PatternType::Prefixed.code()),
        "any" if filter => Ok(ANY_CODE),
        "match" if filter => Ok(MATCH_CODE),
        other => anyhow::bail!(
            "--resource-pattern-type {other}: literal or prefixed{}",
            if filter { " (or any, match)" } else { "" }
        ),
    }
}

impl AclArgs {
    /// Every (resource type, name) named.
    fn resources(&self) -> Vec<(i8, String)> {
        let mut out: Vec<(i8, String)> = Vec::new();
        out.extend(
            self.topic
                .iter()
                .map(|t| (ResourceType::Topic.code(), t.clone())),
        );
        out.extend(
            self.group
                .iter()
                .map(|g| (ResourceType::Group.code(), g.clone())),
        );
        out.extend(
            self.transactional_id
                .iter()
                .map(|t| (ResourceType::TransactionalId.code(), t.clone())),
        );
        if self.cluster {
            out.push((ResourceType::Cluster.code(), CLUSTER_NAME.to_string()));
        }
        out
    }

    /// Every (principal, host, permission) named.
    fn grants(&self) -> Vec<(String, String, i8)> {
        let hosts = |given: &[String]| -> Vec<String> {
            if given.is_empty() {
                vec!["*".into()]
            } else {
                given.to_vec()
            }
        };
        let mut out = Vec::new();
        for p in &self.allow_principal {
            for h in hosts(&self.allow_host) {
                out.push((p.clone(), h, Permission::Allow.code()));
            }
        }
        for p in &self.deny_principal {
            for h in hosts(&self.deny_host) {
                out.push((p.clone(), h, Permission::Deny.code()));
            }
        }
        out
    }

    /// The ACLs to add: every combination named.
    fn bindings(&self) -> anyhow::Result<Vec<Acl>> {
        let pattern = pattern_code(&self.resource_pattern_type, false)?;
        let (resources, grants) = (self.resources(), self.grants());
        anyhow::ensure!(
            !resources.is_empty(),
            "name a resource: --topic, --group, --transactional-id or --cluster"
        );
        anyhow::ensure!(
            !grants.is_empty(),
            "name a principal: --allow-principal or --deny-principal"
        );
        anyhow::ensure!(!self.operation.is_empty(), "name an operation: --operation");
        let mut out = Vec::new();
        for (resource_type, name) in &resources {
            for (principal, host, permission) in &grants {
                for op in &self.operation {
                    out.push(Acl {
                        resource_type: *resource_type,
                        resource_name: Some(name.clone()),
                        pattern_type: pattern,
                        principal: Some(principal.clone()),
                        host: Some(host.clone()),
                        operation: operation_code(op)?,
                        permission: *permission,
                    });
                }
            }
        }
        Ok(out)
    }

    /// The filters of list and remove: each resource (or any) by each principal (or any) by
    /// each operation (or any).
    fn filters(&self) -> anyhow::Result<Vec<Acl>> {
        let pattern = match self.resource_pattern_type.as_str() {
            "literal" if self.resources().is_empty() => ANY_CODE,
            other => pattern_code(other, true)?,
        };
        let resources: Vec<(i8, Option<String>)> = match self.resources() {
            r if r.is_empty() => vec![(ANY_CODE, None)],
            r => r.into_iter().map(|(t, n)| (t, Some(n))).collect(),
        };
        let grants: Vec<(Option<String>, Option<String>, i8)> = match self.grants() {
            g if g.is_empty() => vec![(None, None, ANY_CODE)],
            g => g
                .into_iter()
                .map(|(p, h, perm)| (Some(p), (h != "*").then_some(h), perm))
                .collect(),
        };
        let operations: Vec<i8> = match &self.operation[..] {
            [] => vec![ANY_CODE],
            ops => ops
                .iter()
                .map(|o| operation_code(o))
                .collect::<anyhow::Result<_>>()?,
        };
        let mut out = Vec::new();
        for (resource_type, name) in &resources {
            for (principal, host, permission) in &grants {
                for operation in &operations {
                    out.push(Acl {
                        resource_type: *resource_type,
                        resource_name: name.clone(),
                        pattern_type: pattern,
                        principal: principal.clone(),
                        host: host.clone(),
                        operation: *operation,
                        permission: *permission,
                    });
                }
            }
        }
        Ok(out)
    }
}

fn resource_type_name(code: i8) -> &'static str {
    match ResourceType::from_code(code) {
        Some(ResourceType::Topic) => "topic",
        Some(ResourceType::Group) => "group",
        Some(ResourceType::Cluster) => "cluster",
        Some(ResourceType::TransactionalId) => "transactional-id",
        Some(ResourceType::DelegationToken) => "delegation-token",
        Some(ResourceType::User) => "user",
        None => "unknown",
    }
}

fn pattern_name(code: i8) -> &'static str {
    match PatternType::from_code(code) {
        Some(PatternType::Literal) => "literal",
        Some(PatternType::Prefixed) => "prefixed",
        None => "unknown",
    }
}

fn permission_name(code: i8) -> &'static str {
    if code == Permission::Deny.code() {
        "deny"
    } else {
        "allow"
    }
}

fn print(acls: &[Acl], format: Output) {
    let field = |s: &Option<String>| s.clone().unwrap_or_default();
    match format {
        Output::Json => print_json(&json!(
            acls.iter()
                .map(|a| json!({
                    "principal": field(&a.principal),
                    "host": field(&a.host),
                    "resource_type": resource_type_name(a.resource_type),
                    "resource_name": field(&a.resource_name),
                    "pattern_type": pattern_name(a.pattern_type),
                    "operation": operation_name(a.operation),
                    "permission": permission_name(a.permission),
                }))
                .collect::<Vec<_>>()
        )),
        Output::Text => {
            println!(
                "{:<24} {:<16} {:<16} {:<24} {:<9} {:<16} PERMISSION",
                "PRINCIPAL", "HOST", "RESOURCE-TYPE", "RESOURCE-NAME", "PATTERN", "OPERATION"
            );
            for a in acls {
                println!(
                    "{:<24} {:<16} {:<16} {:<24} {:<9} {:<16} {}",
                    field(&a.principal),
                    field(&a.host),
                    resource_type_name(a.resource_type),
                    field(&a.resource_name),
                    pattern_name(a.pattern_type),
                    operation_name(a.operation),
                    permission_name(a.permission)
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
