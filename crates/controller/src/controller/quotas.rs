//! Client quotas as cluster metadata (Kafka's `ClientQuotaControlManager`): AlterClientQuotas'
//! entries become `ClientQuota` records, with Kafka's checks and an answer per entity; the
//! image keeps each entity's quotas, which DescribeClientQuotas filters (`QuotaFilter`) and
//! every broker enforces.
//!
//! Entities are Kafka's: a user, a client id, or a user and a client id, each by name or as the
//! default of its type. The keys are the ones Sluice enforces: `producer_byte_rate` and
//! `consumer_byte_rate` (bytes per second, whole numbers) and `request_percentage` (the share
//! of one handler thread's time). Kafka's `controller_mutation_rate` and the `ip` entity's
//! `connection_creation_rate` are refused with INVALID_REQUEST rather than kept and not
//! enforced.
//!
//! Not owned here: enforcing the quotas (the broker's `quotas`).

use super::QuorumController;
use crate::error::ControllerError;
use crate::record::MetadataRecord;
use serde::{Deserialize, Serialize};
use sluice_types::limits::{CLIENT_ID_BYTES_MAX, QUOTA_ENTITIES_MAX, SASL_USER_NAME_BYTES_MAX};
use std::collections::{BTreeMap, BTreeSet};

/// Kafka's entity types.
pub const QUOTA_USER: &str = "user";
pub const QUOTA_CLIENT_ID: &str = "client-id";
const QUOTA_IP: &str = "ip";

/// The keys Sluice enforces, and whether a value must be a whole number.
pub const QUOTA_KEYS: [(&str, bool); 3] = [
    ("producer_byte_rate", true),
    ("consumer_byte_rate", true),
    ("request_percentage", false),
];

/// Who a quota applies to. `Some(None)`: the default of that type (every user, or every
/// client id, without a quota of its own).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct QuotaEntity {
    pub user: Option<Option<String>>,
    pub client_id: Option<Option<String>>,
}

impl QuotaEntity {
    /// From Kafka's (type, name) pairs, with Kafka's checks and messages.
    pub fn from_parts(parts: &[(String, Option<String>)]) -> Result<QuotaEntity, ControllerError> {
        let invalid = |why: String| Err(ControllerError::InvalidRequest(why));
        if parts.is_empty() {
            return invalid("Invalid empty client quota entity".into());
        }
        let mut entity = QuotaEntity::default();
        for (entity_type, name) in parts {
            let (slot, bytes_max) = match entity_type.as_str() {
                QUOTA_USER => (&mut entity.user, SASL_USER_NAME_BYTES_MAX),
                QUOTA_CLIENT_ID => (&mut entity.client_id, CLIENT_ID_BYTES_MAX),
                QUOTA_IP => {
                    return invalid(
                        "Sluice has no ip quotas (connection_creation_rate); max_connections_per_ip bounds connections per address".into(),
                    );
                }
                other => return invalid(format!("Unhandled client quota entity type: {other}")),
            };
            if slot.is_some() {
                return invalid(format!(
                    "Invalid empty client quota entity, duplicate entity entry {entity_type}"
                ));
            }
            if name.as_deref().is_some_and(str::is_empty) {
                return invalid(format!("Empty {entity_type} not supported"));
            }
            if name.as_ref().is_some_and(|n| n.len() > bytes_max) {
                return invalid(format!("{entity_type} name too long"));
            }
            *slot = Some(name.clone());
        }
        Ok(entity)
    }

    /// Kafka's (type, name) pairs, the user first.
    pub fn parts(&self) -> Vec<(&'static str, Option<String>)> {
        let mut parts = Vec::with_capacity(2);
        if let Some(user) = &self.user {
            parts.push((QUOTA_USER, user.clone()));
        }
        if let Some(client_id) = &self.client_id {
            parts.push((QUOTA_CLIENT_ID, client_id.clone()));
        }
        parts
    }
}

/// A quota's value: finite and positive (checked before it is written), so equality holds.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, Deserialize)]
pub struct QuotaValue(pub f64);

impl Eq for QuotaValue {}

/// One entity's changes in an AlterClientQuotas: each key set to a value, or removed (`None`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaAlteration {
    pub entity: Vec<(String, Option<String>)>,
    pub ops: Vec<(String, Option<QuotaValue>)>,
}

/// How a DescribeClientQuotas component matches an entity's name of its type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuotaMatch {
    /// Exactly this name.
    Exact(String),
    /// The default of the type.
    Default,
    /// Any name or the default, as long as the entity has the type.
    Any,
}

/// DescribeClientQuotas' filter: components by entity type; `strict`: an entity with a type no
/// component names does not match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaFilter {
    pub components: Vec<(String, QuotaMatch)>,
    pub strict: bool,
}

impl QuotaFilter {
    /// Kafka's checks of a filter: known types, each named once.
    pub fn check(&self) -> Result<(), ControllerError> {
        let mut seen = BTreeSet::new();
        for (entity_type, _) in &self.components {
            if ![QUOTA_USER, QUOTA_CLIENT_ID, QUOTA_IP].contains(&entity_type.as_str()) {
                return Err(ControllerError::InvalidRequest(format!(
                    "Custom entity type {entity_type} not supported"
                )));
            }
            if !seen.insert(entity_type.as_str()) {
                return Err(ControllerError::InvalidRequest(format!(
                    "Duplicate {entity_type} filter component entity type"
                )));
            }
        }
        Ok(())
    }

    pub fn matches(&self, entity: &QuotaEntity) -> bool {
        let slot = |entity_type: &str| match entity_type {
            QUOTA_USER => entity.user.as_ref(),
            QUOTA_CLIENT_ID => entity.client_id.as_ref(),
            _ => None,
        };
        let each =
            self.components
                .iter()
                .all(|(entity_type, wanted)| match (slot(entity_type), wanted) {
                    (None, _) => false,
                    (Some(_), QuotaMatch::Any) => true,
                    (Some(name), QuotaMatch::Default) => name.is_none(),
                    (Some(name), QuotaMatch::Exact(n)) => name.as_deref() == Some(n.as_str()),
                });
        let types = entity.parts().len();
        each && (!self.strict || types == self.components.len())
    }
}

impl QuorumController {
    /// The records of AlterClientQuotas and one answer per entity, in order. An entity named
    /// twice, or a key named twice for one entity, is refused, as Kafka does; an entity with one
    /// bad key changes nothing.
    pub fn alter_client_quotas(
        &self,
        alterations: &[QuotaAlteration],
    ) -> (Vec<MetadataRecord>, Vec<Result<(), ControllerError>>) {
        let mut records = Vec::new();
        let mut seen: BTreeSet<QuotaEntity> = BTreeSet::new();
        let mut entities = self.image().client_quotas.len();
        let results = alterations
            .iter()
            .map(|alteration| {
                let entity = QuotaEntity::from_parts(&alteration.entity)?;
                if !seen.insert(entity.clone()) {
                    return Err(ControllerError::InvalidRequest(format!(
                        "Ignoring duplicate entity {:?}",
                        entity.parts()
                    )));
                }
                let current = self.image().client_quotas.get(&entity);
                if current.is_none() {
                    if entities >= QUOTA_ENTITIES_MAX {
                        return Err(ControllerError::LimitReached(format!(
                            "a cluster keeps quotas for at most {QUOTA_ENTITIES_MAX} entities"
                        )));
                    }
                    entities += 1;
                }
                let changes = entity_records(&entity, current, &alteration.ops)?;
                records.extend(changes);
                Ok(())
            })
            .collect();
        (records, results)
    }
}

/// The records of one entity's ops, or the first refusal.
fn entity_records(
    entity: &QuotaEntity,
    current: Option<&BTreeMap<String, QuotaValue>>,
    ops: &[(String, Option<QuotaValue>)],
) -> Result<Vec<MetadataRecord>, ControllerError> {
    let mut keys = BTreeSet::new();
    let mut records = Vec::new();
    for (key, value) in ops {
        if !keys.insert(key.as_str()) {
            return Err(ControllerError::InvalidRequest(format!(
                "Duplicate quota key {key} not updating quota for this entity"
            )));
        }
        let present = current.and_then(|c| c.get(key));
        match value {
            None if present.is_none() => {}
            Some(v) if present == Some(v) => check_value(key, *v)?,
            value => {
                if let Some(v) = value {
                    check_value(key, *v)?;
                }
                records.push(MetadataRecord::ClientQuota {
                    entity: entity.clone(),
                    key: key.clone(),
                    value: *value,
                });
            }
        }
    }
    Ok(records)
}

/// Kafka's check of a key and value, and Sluice's: the value is positive.
fn check_value(key: &str, value: QuotaValue) -> Result<(), ControllerError> {
    let invalid = |why: String| Err(ControllerError::InvalidRequest(why));
    let Some((_, whole)) = QUOTA_KEYS.iter().find(|(k, _)| *k == key) else {
        return match key {
            "controller_mutation_rate" => invalid(
                "controller_mutation_rate is not enforced by Sluice, so it is not kept".into(),
            ),
            _ => invalid(format!("Invalid configuration key {key}")),
        };
    };
    let v = value.0;
    if !v.is_finite() || v <= 0.0 {
        return invalid(format!("Configuration {key} must be a positive number"));
    }
    if *whole && (v - v.round()).abs() > 1e-6 {
        return invalid(format!("Configuration {key} must be a Long value"));
    }
    Ok(())
}
