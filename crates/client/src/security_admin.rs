//! The security admin requests: SCRAM users (AlterUserScramCredentials,
//! DescribeUserScramCredentials: the password is salted and hashed here, only the salted
//! password leaves) and ACLs (CreateAcls, DescribeAcls, DeleteAcls), as plain values.

use crate::client::Client;
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
use sluice_sasl::Mechanism;

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
    let salt = salt();
    let salted = sluice_sasl::salted_password(
        mechanism,
        password.as_bytes(),
        &salt,
        iterations.max(1) as u32,
    );
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

/// A user's credentials: each mechanism and its iteration count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserCredentials {
    pub user: String,
    pub credentials: Vec<(Mechanism, i32)>,
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
