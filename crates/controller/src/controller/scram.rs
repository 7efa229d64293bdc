//! SCRAM credentials as cluster metadata (Kafka's `ScramControlManager`):
//! AlterUserScramCredentials' deletions and upsertions become `UserScramCredential` and
//! `RemoveUserScramCredential` records, with Kafka's checks and answers per user; the
//! bootstrap administrator's credentials are written only where the user has none yet.
//!
//! Not owned here: deriving the keys from a salted password (the broker does, with the SASL
//! crate: the salted password never reaches the log) and the exchange that checks them.

use super::QuorumController;
use crate::error::ControllerError;
use crate::record::MetadataRecord;
use serde::{Deserialize, Serialize};
use sluice_types::limits::{SASL_USER_NAME_BYTES_MAX, SCRAM_ITERATIONS_MAX, SCRAM_ITERATIONS_MIN};
use std::collections::BTreeMap;

/// Kafka's SCRAM mechanism type codes: 1 SCRAM-SHA-256, 2 SCRAM-SHA-512.
const SCRAM_MECHANISMS: [i8; 2] = [1, 2];

/// A credential to create or replace, its keys already derived.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramUpsertion {
    pub name: String,
    pub mechanism: i8,
    pub iterations: i32,
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

/// Keys stay out of logs.
impl std::fmt::Debug for ScramUpsertion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramUpsertion")
            .field("name", &self.name)
            .field("mechanism", &self.mechanism)
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

/// A credential to remove.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramDeletion {
    pub name: String,
    pub mechanism: i8,
}

/// Each user's answer, in the order first named.
pub type UserResults = Vec<(String, Result<(), ControllerError>)>;

/// One user's part of an AlterUserScramCredentials.
enum Change<'a> {
    Delete(&'a ScramDeletion),
    Upsert(&'a ScramUpsertion),
}

impl QuorumController {
    /// The records of AlterUserScramCredentials and one answer per user named, in the order
    /// first named. A user named more than once is refused as a whole (DUPLICATE_RESOURCE),
    /// as Kafka does.
    pub fn alter_scram_credentials(
        &self,
        deletions: &[ScramDeletion],
        upsertions: &[ScramUpsertion],
    ) -> (Vec<MetadataRecord>, UserResults) {
        let mut named: Vec<&str> = Vec::new();
        let mut changes: BTreeMap<&str, Vec<Change>> = BTreeMap::new();
        let all = (deletions
            .iter()
            .map(|d| (d.name.as_str(), Change::Delete(d))))
        .chain(
            upsertions
                .iter()
                .map(|u| (u.name.as_str(), Change::Upsert(u))),
        );
        for (name, change) in all {
            let entry = changes.entry(name).or_default();
            if entry.is_empty() {
                named.push(name);
            }
            entry.push(change);
        }
        let mut records = Vec::new();
        let mut results = Vec::new();
        for name in named {
            let result = match &changes[name][..] {
                [change] => self.scram_change(change).map(|record| records.push(record)),
                _ => Err(ControllerError::DuplicateResource(
                    "A user credential cannot be altered twice in the same request".into(),
                )),
            };
            results.push((name.to_string(), result));
        }
        (records, results)
    }

    fn scram_change(&self, change: &Change) -> Result<MetadataRecord, ControllerError> {
        match change {
            Change::Delete(d) => {
                check_mechanism(d.mechanism)?;
                if !self
                    .image()
                    .scram_credentials
                    .contains_key(&(d.name.clone(), d.mechanism))
                {
                    return Err(ControllerError::ResourceNotFound(
                        "Attempt to delete a user credential that does not exist".into(),
                    ));
                }
                Ok(MetadataRecord::RemoveUserScramCredential {
                    name: d.name.clone(),
                    mechanism: d.mechanism,
                })
            }
            Change::Upsert(u) => {
                check_upsertion(u)?;
                Ok(upsertion_record(u))
            }
        }
    }

    /// The bootstrap administrator's credentials, for each user and mechanism that has none
    /// yet: stating them again at every start changes nothing, and a password changed since
    /// through the admin API stays changed. Invalid ones are left out (the binary checks them
    /// before it starts).
    pub fn bootstrap_scram(&self, credentials: &[ScramUpsertion]) -> Vec<MetadataRecord> {
        credentials
            .iter()
            .filter(|u| check_upsertion(u).is_ok())
            .filter(|u| {
                !self
                    .image()
                    .scram_credentials
                    .contains_key(&(u.name.clone(), u.mechanism))
            })
            .map(upsertion_record)
            .collect()
    }
}

fn check_mechanism(mechanism: i8) -> Result<(), ControllerError> {
    if SCRAM_MECHANISMS.contains(&mechanism) {
        Ok(())
    } else {
        Err(ControllerError::UnsupportedSaslMechanism(
            "Unknown SCRAM mechanism".into(),
        ))
    }
}

/// Kafka's checks of an upsertion, with its messages.
pub fn check_upsertion(u: &ScramUpsertion) -> Result<(), ControllerError> {
    let unacceptable = |why: &str| Err(ControllerError::UnacceptableCredential(why.into()));
    if u.name.is_empty() {
        return unacceptable("Username must not be empty");
    }
    if u.name.len() > SASL_USER_NAME_BYTES_MAX {
        return unacceptable("Username is too long");
    }
    check_mechanism(u.mechanism)?;
    if u.iterations < SCRAM_ITERATIONS_MIN {
        return unacceptable("Too few iterations");
    }
    if u.iterations > SCRAM_ITERATIONS_MAX {
        return unacceptable("Too many iterations");
    }
    if u.salt.is_empty() {
        return unacceptable("Salt must not be empty");
    }
    Ok(())
}

fn upsertion_record(u: &ScramUpsertion) -> MetadataRecord {
    MetadataRecord::UserScramCredential {
        name: u.name.clone(),
        mechanism: u.mechanism,
        salt: u.salt.clone(),
        stored_key: u.stored_key.clone(),
        server_key: u.server_key.clone(),
        iterations: u.iterations,
    }
}
