//! ACLs as cluster metadata (Kafka's `AclControlManager`): CreateAcls' bindings become
//! `AccessControlEntry` records, each with an id, DeleteAcls' filters `RemoveAccessControlEntry`
//! records for every ACL they match, with Kafka's checks and answers per item. An ACL already
//! present is created again as a success without a record, as Kafka does.
//!
//! Not owned here: what an ACL allows (`sluice_acl::Authorizer`, compiled by the broker from
//! its image) and DescribeAcls (the broker answers from its image).

use super::QuorumController;
use crate::error::ControllerError;
use crate::record::MetadataRecord;
use serde::{Deserialize, Serialize};
use sluice_acl::{AclBinding, AclError, AclFilter};
use sluice_types::limits::ACLS_MAX;
use std::collections::HashSet;
use uuid::Uuid;

/// One ACL as the metadata log keeps it: Kafka's codes and names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AclEntry {
    pub resource_type: i8,
    pub resource_name: String,
    pub pattern_type: i8,
    pub principal: String,
    pub host: String,
    pub operation: i8,
    pub permission: i8,
}

impl AclEntry {
    /// The binding, checked (an entry from CreateAcls may be anything).
    pub fn binding(&self) -> Result<AclBinding, AclError> {
        AclBinding::from_codes(
            self.resource_type,
            self.resource_name.clone(),
            self.pattern_type,
            self.principal.clone(),
            self.host.clone(),
            self.operation,
            self.permission,
        )
    }
}

/// DescribeAcls' and DeleteAcls' filter as the request carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclFilterEntry {
    pub resource_type: i8,
    pub resource_name: Option<String>,
    pub pattern_type: i8,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: i8,
    pub permission: i8,
}

impl AclFilterEntry {
    pub fn filter(&self) -> Result<AclFilter, AclError> {
        AclFilter::from_codes(
            self.resource_type,
            self.resource_name.clone(),
            self.pattern_type,
            self.principal.clone(),
            self.host.clone(),
            self.operation,
            self.permission,
        )
    }
}

impl QuorumController {
    /// The records of CreateAcls and one answer per binding.
    pub fn create_acls(
        &self,
        entries: &[AclEntry],
    ) -> (Vec<MetadataRecord>, Vec<Result<(), ControllerError>>) {
        let mut present: HashSet<AclEntry> = self.image().acls.values().cloned().collect();
        let mut records = Vec::new();
        let results = entries
            .iter()
            .map(|entry| {
                entry
                    .binding()
                    .map_err(|e| ControllerError::InvalidRequest(e.to_string()))?;
                if present.contains(entry) {
                    return Ok(());
                }
                if present.len() >= ACLS_MAX {
                    return Err(ControllerError::LimitReached(format!(
                        "a cluster keeps at most {ACLS_MAX} ACLs"
                    )));
                }
                present.insert(entry.clone());
                records.push(MetadataRecord::AccessControlEntry {
                    id: Uuid::new_v4(),
                    entry: entry.clone(),
                });
                Ok(())
            })
            .collect();
        (records, results)
    }

    /// The records of DeleteAcls and, per filter, the ACLs it matched (each removed once,
    /// whichever filters match it).
    #[allow(clippy::type_complexity)]
    pub fn delete_acls(
        &self,
        filters: &[AclFilterEntry],
    ) -> (
        Vec<MetadataRecord>,
        Vec<Result<Vec<AclEntry>, ControllerError>>,
    ) {
        let mut removed: HashSet<Uuid> = HashSet::new();
        let mut records = Vec::new();
        let results = filters
            .iter()
            .map(|f| {
                let filter = f
                    .filter()
                    .map_err(|e| ControllerError::InvalidRequest(e.to_string()))?;
                let mut matched = Vec::new();
                for (id, entry) in &self.image().acls {
                    let Ok(binding) = entry.binding() else {
                        continue;
                    };
                    if !filter.matches(&binding) {
                        continue;
                    }
                    if removed.insert(*id) {
                        records.push(MetadataRecord::RemoveAccessControlEntry { id: *id });
                    }
                    matched.push(entry.clone());
                }
                Ok(matched)
            })
            .collect();
        (records, results)
    }
}
