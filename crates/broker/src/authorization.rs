//! Who may do what (issue 15, docs/security.md): the compiled ACLs of the published metadata
//! image, the super users and `allow.everyone.if.no.acl.found`, asked by handlers through
//! `Authorization::allows` with the request's `Caller`.
//!
//! The compiled `Authorizer` is swapped whole when a published image's ACLs differ from the
//! last compiled ones (`publish`), so a check reads it without a lock. With authorization
//! off (`authorizer_class_name` empty, the default) every check allows.
//!
//! A denial is an audit line (`sluice::audit`, `event=authorization_denied`: principal, source
//! address, resource, operation) and counts in `sluice_authorization_denied_total`; a check made
//! to filter a list (Metadata's topics, ListGroups) is not audited, as Kafka does not log them.
//!
//! Not owned here: the decision's rules (`sluice_acl`), who the caller is (`authentication`).

use arc_swap::ArcSwap;
use sluice_acl::{AclBinding, AclSet, Action, Authorizer, Operation, Requester, ResourceType};
use sluice_controller::{AclEntry, MetadataImage};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use uuid::Uuid;

pub(crate) use sluice_acl::CLUSTER_NAME;

/// Who sent a request: the connection's principal and address.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub principal: Arc<str>,
    pub address: SocketAddr,
    /// The address's IP as text, as ACL hosts are written.
    host: Arc<str>,
}

impl Caller {
    pub(crate) fn new(principal: &str, address: SocketAddr) -> Caller {
        Caller {
            principal: principal.into(),
            address,
            host: address.ip().to_string().into(),
        }
    }
}

/// Whether a check is audited when it denies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Audit {
    /// The request is refused for it: audited.
    Refusal,
    /// Only a list is filtered by it: not audited.
    Filter,
}

#[derive(Debug)]
pub(crate) struct Authorization {
    enabled: bool,
    super_users: Vec<String>,
    allow_everyone_if_no_acl_found: bool,
    compiled: ArcSwap<Authorizer>,
    /// The ACLs `compiled` was built from, to tell whether a new image changes them.
    compiled_from: Mutex<BTreeMap<Uuid, AclEntry>>,
}

impl Authorization {
    pub(crate) fn new(
        enabled: bool,
        super_users: Vec<String>,
        allow_everyone_if_no_acl_found: bool,
    ) -> Authorization {
        let authorizer = Authorizer::new(
            AclSet::default(),
            super_users.clone(),
            allow_everyone_if_no_acl_found,
        );
        Authorization {
            enabled,
            super_users,
            allow_everyone_if_no_acl_found,
            compiled: ArcSwap::from_pointee(authorizer),
            compiled_from: Mutex::default(),
        }
    }

    /// Compiles the image's ACLs when they differ from the last compiled ones. Called by the
    /// publisher, never on the request path.
    pub(crate) fn publish(&self, image: &MetadataImage) {
        if !self.enabled {
            return; // every check allows: nothing to compile
        }
        let mut from = self.compiled_from.lock().expect("authorization lock");
        if *from == image.acls {
            return;
        }
        let bindings: Vec<AclBinding> = image
            .acls
            .values()
            .filter_map(|e| e.binding().ok())
            .collect();
        let count = bindings.len();
        let authorizer = Authorizer::new(
            AclSet::new(bindings),
            self.super_users.clone(),
            self.allow_everyone_if_no_acl_found,
        );
        self.compiled.store(Arc::new(authorizer));
        *from = image.acls.clone();
        tracing::debug!(acls = count, "ACLs compiled");
    }

    /// Whether `caller` may do `operation` on the resource; a refusal is audited.
    pub(crate) fn allows(
        &self,
        metrics: &crate::metrics::Metrics,
        caller: &Caller,
        (operation, resource_type, resource_name): (Operation, ResourceType, &str),
        audit: Audit,
    ) -> bool {
        if !self.enabled {
            return true;
        }
        let authorizer = self.compiled.load();
        let who = Requester {
            principal: &caller.principal,
            host: &caller.host,
        };
        let action = Action {
            operation,
            resource_type,
            resource_name,
        };
        let decision = authorizer.authorize(who, action);
        if !decision.allowed && audit == Audit::Refusal {
            tracing::warn!(
                target: "sluice::audit",
                event = "authorization_denied",
                principal = %caller.principal,
                source = %caller.address,
                resource_type = ?resource_type,
                resource_name,
                operation = ?operation,
                "operation denied"
            );
            metrics.authorization_denied(operation, resource_type);
        }
        decision.allowed
    }
}

impl crate::server::Broker {
    /// Whether `caller` may do `operation` on the resource; a refusal is audited.
    pub(crate) fn allows(
        &self,
        caller: &Caller,
        operation: Operation,
        resource_type: ResourceType,
        resource_name: &str,
    ) -> bool {
        let action = (operation, resource_type, resource_name);
        self.authorization
            .allows(&self.metrics, caller, action, Audit::Refusal)
    }

    /// Whether `caller` may see the resource in a list (not audited when not).
    pub(crate) fn shows(
        &self,
        caller: &Caller,
        operation: Operation,
        resource_type: ResourceType,
        resource_name: &str,
    ) -> bool {
        let action = (operation, resource_type, resource_name);
        self.authorization
            .allows(&self.metrics, caller, action, Audit::Filter)
    }

    /// Whether `caller` may do `operation` on some resource of the type (KIP-679).
    pub(crate) fn allows_some(
        &self,
        caller: &Caller,
        operation: Operation,
        resource_type: ResourceType,
    ) -> bool {
        if !self.authorization.enabled {
            return true;
        }
        let who = Requester {
            principal: &caller.principal,
            host: &caller.host,
        };
        self.authorization
            .compiled
            .load()
            .allows_some(who, operation, resource_type)
    }

    /// Whether `caller` may do `operation` on the cluster.
    pub(crate) fn allows_cluster(&self, caller: &Caller, operation: Operation) -> bool {
        self.allows(caller, operation, ResourceType::Cluster, CLUSTER_NAME)
    }
}
