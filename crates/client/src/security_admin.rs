//! The security admin requests: SCRAM users (AlterUserScramCredentials,
//! DescribeUserScramCredentials: the password is salted and hashed here, only the salted
//! password leaves) and ACLs (CreateAcls, DescribeAcls, DeleteAcls), as plain values; and
//! their JSON forms by name (`AclNames`, `UserCredentials::to_json`), shared by the CLI's
//! `--format json`, the HTTP API and the console.

use crate::client::Client;
use crate::codes::UNACCEPTABLE_CREDENTIAL;
use crate::error::{ClientError, Result};
use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, CreateAclsRequest, DeleteAclsRequest, DescribeAclsRequest,
    DescribeUserScramCredentialsRequest,
};
use kafka_protocol::protocol::StrBytes;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sluice_acl::{
    ANY_CODE, CLUSTER_NAME, KafkaEnum, MATCH_CODE, Operation, PatternType, Permission, ResourceType,
};
use sluice_sasl::Mechanism;
use sluice_types::limits::{SCRAM_ITERATIONS_MAX, SCRAM_ITERATIONS_MIN};

/// Bytes of the salt made for a new credential.
const SALT_BYTES: usize = 32;

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// A fresh random salt.
fn salt() -> Vec<u8> {
    let mut salt = Vec::with_capacity(SALT_BYTES);
    while salt.len() < SALT_BYTES {
        salt.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    }
    salt.truncate(SALT_BYTES);
    salt
}

/// Creates or replaces `user`'s credential for a SCRAM mechanism.
pub async fn set_user_password(
    client: &mut Client,
    user: &str,
    mechanism: Mechanism,
    password: &str,
    iterations: i32,
) -> Result<()> {
    let code = mechanism
        .scram_type()
        .ok_or_else(|| ClientError::Invalid(format!("{mechanism} is not a SCRAM mechanism")))?;
    // Checked before the password is salted: the salting costs one HMAC per iteration, so an
    // unchecked count (2^31) would hold this task for hours. The broker refuses the same.
    let context = || format!("setting {user}'s {mechanism} credential");
    if iterations < SCRAM_ITERATIONS_MIN {
        ClientError::check(UNACCEPTABLE_CREDENTIAL, Some("Too few iterations"), context)?;
    }
    if iterations > SCRAM_ITERATIONS_MAX {
        ClientError::check(
            UNACCEPTABLE_CREDENTIAL,
            Some("Too many iterations"),
            context,
        )?;
    }
    let salt = salt();
    let salted =
        sluice_sasl::salted_password(mechanism, password.as_bytes(), &salt, iterations as u32);
    let upsertion = ScramCredentialUpsertion::default()
        .with_name(text(user))
        .with_mechanism(code)
        .with_iterations(iterations)
        .with_salt(salt.into())
        .with_salted_password(salted.into());
    let request = AlterUserScramCredentialsRequest::default().with_upsertions(vec![upsertion]);
    alter_credentials(client, request, || {
        format!("setting {user}'s {mechanism} credential")
    })
    .await
}

/// Sends an AlterUserScramCredentials; its first refusal as the error.
async fn alter_credentials(
    client: &mut Client,
    request: AlterUserScramCredentialsRequest,
    context: impl Fn() -> String,
) -> Result<()> {
    let (_, response) = client.any().send(&request, 0).await?;
    for r in &response.results {
        ClientError::check(r.error_code, r.error_message.as_deref(), &context)?;
    }
    Ok(())
}

/// Removes `user`'s credential for a SCRAM mechanism.
pub async fn delete_user(client: &mut Client, user: &str, mechanism: Mechanism) -> Result<()> {
    let code = mechanism
        .scram_type()
        .ok_or_else(|| ClientError::Invalid(format!("{mechanism} is not a SCRAM mechanism")))?;
    let deletion = ScramCredentialDeletion::default()
        .with_name(text(user))
        .with_mechanism(code);
    let request = AlterUserScramCredentialsRequest::default().with_deletions(vec![deletion]);
    alter_credentials(client, request, || {
        format!("deleting {user}'s {mechanism} credential")
    })
    .await
}

/// The SCRAM mechanism `name` names (SCRAM-SHA-512 or SCRAM-SHA-256).
pub fn scram_mechanism(name: &str) -> Result<Mechanism> {
    Mechanism::parse(name)
        .filter(|m| m.scram_type().is_some())
        .ok_or_else(|| {
            ClientError::Invalid(format!(
                "the mechanism is SCRAM-SHA-512 or SCRAM-SHA-256, not {name}"
            ))
        })
}

/// Removes `user`'s credential for `mechanism`, or every one it has (`None`); returns the
/// mechanisms removed. A user with no credential is Kafka's `RESOURCE_NOT_FOUND`.
pub async fn delete_user_credentials(
    client: &mut Client,
    user: &str,
    mechanism: Option<Mechanism>,
) -> Result<Vec<Mechanism>> {
    let mechanisms = match mechanism {
        Some(m) => vec![m],
        None => describe_users(client, &[user.to_string()])
            .await?
            .into_iter()
            .flat_map(|u| u.credentials.into_iter().map(|(m, _)| m))
            .collect(),
    };
    for m in &mechanisms {
        delete_user(client, user, *m).await?;
    }
    Ok(mechanisms)
}

/// A user's credentials: each mechanism and its iteration count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserCredentials {
    pub user: String,
    pub credentials: Vec<(Mechanism, i32)>,
}

impl UserCredentials {
    /// `{"user": "alice", "mechanisms": [{"mechanism": "SCRAM-SHA-512", "iterations": 4096}]}`
    pub fn to_json(&self) -> Value {
        let mechanisms: Vec<Value> = self
            .credentials
            .iter()
            .map(|(m, i)| json!({"mechanism": m.name(), "iterations": i}))
            .collect();
        json!({"user": self.user, "mechanisms": mechanisms})
    }
}

/// Every user with a SCRAM credential (`users` empty), or those named.
pub async fn describe_users(client: &mut Client, users: &[String]) -> Result<Vec<UserCredentials>> {
    let named = (!users.is_empty()).then(|| {
        users
            .iter()
            .map(|u| UserName::default().with_name(text(u)))
            .collect()
    });
    let request = DescribeUserScramCredentialsRequest::default().with_users(named);
    let (_, response) = client.any().send(&request, 0).await?;
    ClientError::check(
        response.error_code,
        response.error_message.as_deref(),
        || "describing users".to_string(),
    )?;
    let mut out = Vec::new();
    for r in response.results {
        ClientError::check(r.error_code, r.error_message.as_deref(), || {
            format!("describing user {}", r.user)
        })?;
        let credentials = r
            .credential_infos
            .iter()
            .filter_map(|c| Mechanism::from_scram_type(c.mechanism).map(|m| (m, c.iterations)))
            .collect();
        out.push(UserCredentials {
            user: r.user.to_string(),
            credentials,
        });
    }
    out.sort_by(|a, b| a.user.cmp(&b.user));
    Ok(out)
}

/// An ACL by Kafka's codes and names; as a filter, ANY (1) and `None` select every value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Acl {
    pub resource_type: i8,
    pub resource_name: Option<String>,
    pub pattern_type: i8,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: i8,
    pub permission: i8,
}

impl Acl {
    /// The ACL by name, every field present (`literal`, `write`, `allow`...).
    pub fn names(&self) -> AclNames {
        AclNames {
            principal: self.principal.clone(),
            host: self.host.clone(),
            resource_type: Some(name_of::<ResourceType>(self.resource_type)),
            resource_name: self.resource_name.clone(),
            pattern_type: Some(name_of::<PatternType>(self.pattern_type)),
            operation: Some(name_of::<Operation>(self.operation)),
            permission: Some(name_of::<Permission>(self.permission)),
        }
    }
}

/// A code's name, or the number when it has none here.
fn name_of<T: KafkaEnum>(code: i8) -> String {
    T::from_code(code).map_or_else(|| code.to_string(), |v| v.name().to_string())
}

/// An ACL, or a filter of ACLs, by the names people type and read: the JSON form of
/// `sluice acl list --format json`, `GET /v1/acls` and `POST /v1/acls`. Names are matched in
/// any case and with `-` or `_` alike (Kafka's `TRANSACTIONAL_ID` reads too).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AclNames {
    /// `User:alice`.
    pub principal: Option<String>,
    /// An IP address, or `*` (any).
    pub host: Option<String>,
    /// `topic`, `group`, `cluster`, `transactional-id`, `delegation-token` or `user`.
    pub resource_type: Option<String>,
    pub resource_name: Option<String>,
    /// `literal` or `prefixed`; a filter also takes `any` and `match`.
    pub pattern_type: Option<String>,
    /// `all`, `read`, `write`, `create`, `delete`, `alter`, `describe`, `cluster_action`,
    /// `describe_configs`, `alter_configs`, `idempotent_write`...
    pub operation: Option<String>,
    /// `allow` or `deny`.
    pub permission: Option<String>,
}

/// `name`'s code among `T`'s names, or an error that lists them.
fn code_of<T: KafkaEnum>(field: &str, name: &str) -> std::result::Result<i8, String> {
    T::from_name(name)
        .map(T::code)
        .ok_or_else(|| format!("{field} {name:?}: one of {}", names::<T>().join(", ")))
}

/// Every name `T` takes.
fn names<T: KafkaEnum>() -> Vec<&'static str> {
    T::ALL.iter().map(|v| v.name()).collect()
}

/// The names an ACL's resource type takes (for forms and messages).
pub fn resource_type_names() -> Vec<&'static str> {
    names::<ResourceType>()
}

/// The names an ACL's operation takes (for forms and messages).
pub fn operation_names() -> Vec<&'static str> {
    names::<Operation>()
}

fn is_any(name: &str) -> bool {
    name.eq_ignore_ascii_case("any")
}

/// A filter's field: Kafka's ANY when left out or `any`, else the code of its name.
fn any_or<T: KafkaEnum>(field: &str, given: &Option<String>) -> std::result::Result<i8, String> {
    match given.as_deref() {
        None => Ok(ANY_CODE),
        Some(name) if is_any(name) => Ok(ANY_CODE),
        Some(name) => code_of::<T>(field, name),
    }
}

impl AclNames {
    /// The new ACL these names give: a principal, a resource type, an operation and (but for
    /// the cluster) a resource name are needed; the host defaults to `*`, the pattern type to
    /// `literal`, the permission to `allow`.
    pub fn binding(&self) -> std::result::Result<Acl, String> {
        let needed = |field: &Option<String>, what: &str| {
            field
                .clone()
                .ok_or_else(|| format!("an ACL needs a {what}"))
        };
        let resource_type = code_of::<ResourceType>(
            "resource_type",
            &needed(&self.resource_type, "resource_type")?,
        )?;
        let resource_name = match &self.resource_name {
            None if resource_type == ResourceType::Cluster.code() => CLUSTER_NAME.to_string(),
            other => needed(other, "resource_name")?,
        };
        let pattern = self.pattern_type.as_deref().unwrap_or("literal");
        let pattern_type = PatternType::from_name(pattern)
            .ok_or_else(|| format!("pattern_type {pattern:?}: literal or prefixed"))?;
        Ok(Acl {
            resource_type,
            resource_name: Some(resource_name),
            pattern_type: pattern_type.code(),
            principal: Some(needed(&self.principal, "principal")?),
            host: Some(self.host.clone().unwrap_or_else(|| "*".into())),
            operation: code_of::<Operation>("operation", &needed(&self.operation, "operation")?)?,
            permission: code_of::<Permission>(
                "permission",
                self.permission.as_deref().unwrap_or("allow"),
            )?,
        })
    }

    /// The filter these names give: a field left out (or `any`) selects every value, a name
    /// given only that one (as Kafka's, a host `*` selects the ACLs for any host, not every
    /// host); the pattern type defaults to `any` and also takes `match` (every ACL that
    /// applies to the resource name: literal, `*` and prefixes).
    pub fn filter(&self) -> std::result::Result<Acl, String> {
        let pattern_type = match self.pattern_type.as_deref() {
            None => ANY_CODE,
            Some(name) if is_any(name) => ANY_CODE,
            Some(name) if name.eq_ignore_ascii_case("match") => MATCH_CODE,
            Some(name) => PatternType::from_name(name)
                .map(PatternType::code)
                .ok_or_else(|| format!("pattern_type {name:?}: literal, prefixed, any or match"))?,
        };
        Ok(Acl {
            resource_type: any_or::<ResourceType>("resource_type", &self.resource_type)?,
            resource_name: self.resource_name.clone(),
            pattern_type,
            principal: self.principal.clone(),
            host: self.host.clone(),
            operation: any_or::<Operation>("operation", &self.operation)?,
            permission: any_or::<Permission>("permission", &self.permission)?,
        })
    }
}

fn some_text(s: &Option<String>) -> Option<StrBytes> {
    s.as_deref().map(text)
}

pub async fn create_acls(client: &mut Client, acls: &[Acl]) -> Result<()> {
    let creations = acls
        .iter()
        .map(|a| {
            AclCreation::default()
                .with_resource_type(a.resource_type)
                .with_resource_name(text(a.resource_name.as_deref().unwrap_or_default()))
                .with_resource_pattern_type(a.pattern_type)
                .with_principal(text(a.principal.as_deref().unwrap_or_default()))
                .with_host(text(a.host.as_deref().unwrap_or("*")))
                .with_operation(a.operation)
                .with_permission_type(a.permission)
        })
        .collect();
    let request = CreateAclsRequest::default().with_creations(creations);
    let (_, response) = client.any().send(&request, 3).await?;
    for r in &response.results {
        ClientError::check(r.error_code, r.error_message.as_deref(), || {
            "creating ACLs".to_string()
        })?;
    }
    Ok(())
}

/// The ACLs `filter` selects.
pub async fn describe_acls(client: &mut Client, filter: &Acl) -> Result<Vec<Acl>> {
    let request = DescribeAclsRequest::default()
        .with_resource_type_filter(filter.resource_type)
        .with_resource_name_filter(some_text(&filter.resource_name))
        .with_pattern_type_filter(filter.pattern_type)
        .with_principal_filter(some_text(&filter.principal))
        .with_host_filter(some_text(&filter.host))
        .with_operation(filter.operation)
        .with_permission_type(filter.permission);
    let (_, response) = client.any().send(&request, 3).await?;
    ClientError::check(
        response.error_code,
        response.error_message.as_deref(),
        || "describing ACLs".to_string(),
    )?;
    let mut out = Vec::new();
    for resource in response.resources {
        for a in resource.acls {
            out.push(Acl {
                resource_type: resource.resource_type,
                resource_name: Some(resource.resource_name.to_string()),
                pattern_type: resource.pattern_type,
                principal: Some(a.principal.to_string()),
                host: Some(a.host.to_string()),
                operation: a.operation,
                permission: a.permission_type,
            });
        }
    }
    out.sort();
    Ok(out)
}

/// Deletes the ACLs `filter` selects; returns how many.
pub async fn delete_acls(client: &mut Client, filter: &Acl) -> Result<usize> {
    let f = DeleteAclsFilter::default()
        .with_resource_type_filter(filter.resource_type)
        .with_resource_name_filter(some_text(&filter.resource_name))
        .with_pattern_type_filter(filter.pattern_type)
        .with_principal_filter(some_text(&filter.principal))
        .with_host_filter(some_text(&filter.host))
        .with_operation(filter.operation)
        .with_permission_type(filter.permission);
    let request = DeleteAclsRequest::default().with_filters(vec![f]);
    let (_, response) = client.any().send(&request, 3).await?;
    let mut deleted = 0;
    for r in &response.filter_results {
        ClientError::check(r.error_code, r.error_message.as_deref(), || {
            "deleting ACLs".to_string()
        })?;
        deleted += r.matching_acls.len();
    }
    Ok(deleted)
}
