//! DescribeUserScramCredentials (v0) and AlterUserScramCredentials (v0): the SCRAM users, kept
//! in the metadata log. Describe answers from this broker's published image; Alter derives the
//! stored and server keys from each salted password (which goes no further), runs the change
//! on the active controller, and answers once this broker's image shows it, so a client that
//! created a user here can log in as it here at once.
//!
//! Not checked yet: who may do this (ALTER / DESCRIBE on the cluster comes with ACL
//! enforcement, slice 4 of docs/design/0006-security.md).

use crate::controller_client::{CONTROLLER_WAIT_MAX, NotDone};
use crate::handlers::{first_of_each, now};
use crate::server::Broker;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_user_scram_credentials_request::ScramCredentialUpsertion;
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use kafka_protocol::protocol::StrBytes;
use sluice_controller::{
    ControllerCommand, ControllerReply, MetadataImage, ScramDeletion, ScramUpsertion,
};
use sluice_sasl::{Mechanism, ScramCredential};
use sluice_types::limits::SCRAM_SECRET_BYTES_MAX;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;

pub(crate) fn describe(
    broker: &Arc<Broker>,
    request: DescribeUserScramCredentialsRequest,
    _version: i16,
) -> impl Future<Output = Option<DescribeUserScramCredentialsResponse>> + Send + 'static + use<> {
    let image = broker.published_image();
    let named: Vec<String> = request
        .users
        .unwrap_or_default()
        .into_iter()
        .map(|u| u.name.to_string())
        .collect();
    let results = if named.is_empty() {
        let users: Vec<&String> = image.scram_credentials.keys().map(|(u, _)| u).collect();
        first_of_each(users, |u| *u)
            .into_iter()
            .map(|u| described(&image, u))
            .collect()
    } else {
        let mut times: HashMap<&str, usize> = HashMap::new();
        for u in &named {
            *times.entry(u).or_default() += 1;
        }
        first_of_each(named.iter(), |u| *u)
            .into_iter()
            .map(|u| {
                if times[u.as_str()] > 1 {
                    user_error(
                        u,
                        ResponseError::DuplicateResource,
                        "Cannot describe SCRAM credentials for the same user twice in a single request",
                    )
                } else {
                    described(&image, u)
                }
            })
            .collect()
    };
    now(DescribeUserScramCredentialsResponse::default().with_results(results))
}

fn described(image: &MetadataImage, user: &str) -> DescribeUserScramCredentialsResult {
    let infos: Vec<CredentialInfo> = image
        .scram_credentials
        .range((user.to_string(), i8::MIN)..=(user.to_string(), i8::MAX))
        .map(|((_, mechanism), c)| {
            CredentialInfo::default()
                .with_mechanism(*mechanism)
                .with_iterations(c.iterations)
        })
        .collect();
    if infos.is_empty() {
        return user_error(
            user,
            ResponseError::ResourceNotFound,
            "Attempt to describe a user credential that does not exist",
        );
    }
    DescribeUserScramCredentialsResult::default()
        .with_user(StrBytes::from_string(user.to_string()))
        .with_credential_infos(infos)
}

fn user_error(
    user: &str,
    error: ResponseError,
    message: &str,
) -> DescribeUserScramCredentialsResult {
    DescribeUserScramCredentialsResult::default()
        .with_user(StrBytes::from_string(user.to_string()))
        .with_error_code(error.code())
        .with_error_message(Some(StrBytes::from_string(message.to_string())))
}

pub(crate) fn alter(
    broker: &Arc<Broker>,
    request: AlterUserScramCredentialsRequest,
    _version: i16,
) -> impl Future<Output = Option<AlterUserScramCredentialsResponse>> + Send + 'static + use<> {
    let broker = broker.clone();
    async move {
        let deletions: Vec<ScramDeletion> = request
            .deletions
            .iter()
            .map(|d| ScramDeletion {
                name: d.name.to_string(),
                mechanism: d.mechanism,
            })
            .collect();
        // A secret too large to keep is refused here, for its user; the controller answers
        // the rest.
        let mut refused: Vec<(String, Result<(), NotDone>)> = Vec::new();
        let mut upsertions = Vec::new();
        for u in &request.upsertions {
            match upsertion(u) {
                Ok(upsertion) => upsertions.push(upsertion),
                Err(e) => refused.push((u.name.to_string(), Err(e))),
            }
        }
        let mut results = run(&broker, deletions, upsertions).await;
        results.extend(refused);
        let results = results
            .into_iter()
            .map(|(user, result)| {
                let r = AlterUserScramCredentialsResult::default()
                    .with_user(StrBytes::from_string(user));
                match result {
                    Ok(()) => r,
                    Err(e) => r
                        .with_error_code(e.error.code())
                        .with_error_message(Some(StrBytes::from_string(e.message))),
                }
            })
            .collect();
        Some(AlterUserScramCredentialsResponse::default().with_results(results))
    }
}

fn upsertion(u: &ScramCredentialUpsertion) -> Result<ScramUpsertion, NotDone> {
    let unacceptable = |message: &str| NotDone {
        error: ResponseError::UnacceptableCredential,
        message: message.to_string(),
    };
    if u.salt.len() > SCRAM_SECRET_BYTES_MAX || u.salted_password.len() > SCRAM_SECRET_BYTES_MAX {
        return Err(unacceptable("Salt or salted password is too long"));
    }
    if u.salted_password.is_empty() {
        return Err(unacceptable("Salted password must not be empty"));
    }
    // An unknown mechanism goes on without keys: the controller refuses it with Kafka's error.
    let (stored_key, server_key) = match Mechanism::from_scram_type(u.mechanism) {
        Some(mechanism) => {
            let c = ScramCredential::from_salted_password(
                mechanism,
                u.salt.to_vec(),
                &u.salted_password,
                u.iterations,
            );
            (c.stored_key, c.server_key)
        }
        None => (Vec::new(), Vec::new()),
    };
    Ok(ScramUpsertion {
        name: u.name.to_string(),
        mechanism: u.mechanism,
        iterations: u.iterations,
        salt: u.salt.to_vec(),
        stored_key,
        server_key,
    })
}

/// Runs the change on the controller and waits until this broker's image shows each change
/// that was made.
async fn run(
    broker: &Broker,
    deletions: Vec<ScramDeletion>,
    upsertions: Vec<ScramUpsertion>,
) -> Vec<(String, Result<(), NotDone>)> {
    if deletions.is_empty() && upsertions.is_empty() {
        return Vec::new();
    }
    let mut users: Vec<String> = deletions.iter().map(|d| d.name.clone()).collect();
    users.extend(upsertions.iter().map(|u| u.name.clone()));
    let users = first_of_each(users, |u| u.clone());
    let deleted: Vec<(String, i8)> = deletions
        .iter()
        .map(|d| (d.name.clone(), d.mechanism))
        .collect();
    let stored: BTreeMap<(String, i8), Vec<u8>> = upsertions
        .iter()
        .map(|u| ((u.name.clone(), u.mechanism), u.stored_key.clone()))
        .collect();
    let command = ControllerCommand::AlterScramCredentials {
        deletions,
        upsertions,
    };
    let results = match broker.submit(command, CONTROLLER_WAIT_MAX).await {
        Ok(ControllerReply::ScramCredentialsAltered(results)) => results
            .into_iter()
            .map(|(user, r)| (user, r.map_err(|e| NotDone::from(&e))))
            .collect::<Vec<_>>(),
        Ok(other) => {
            let e = NotDone {
                error: ResponseError::UnknownServerError,
                message: format!("unexpected controller answer {other:?}"),
            };
            return users.into_iter().map(|u| (u, Err(e.clone()))).collect();
        }
        Err(e) => return users.into_iter().map(|u| (u, Err(e.clone()))).collect(),
    };
    let done: Vec<&String> = results
        .iter()
        .filter(|(_, r)| r.is_ok())
        .map(|(u, _)| u)
        .collect();
    let shown =
        broker
            .wait_published(CONTROLLER_WAIT_MAX, |image| {
                let gone = deleted
                    .iter()
                    .filter(|(u, _)| done.contains(&u))
                    .all(|key| !image.scram_credentials.contains_key(key));
                let there = stored.iter().filter(|((u, _), _)| done.contains(&u)).all(
                    |(key, stored_key)| {
                        image
                            .scram_credentials
                            .get(key)
                            .is_some_and(|c| &c.stored_key == stored_key)
                    },
                );
                gone && there
            })
            .await;
    if !shown {
        tracing::warn!("SCRAM credential changes not yet shown on this broker");
    }
    results
}
