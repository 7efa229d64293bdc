//! `sluice-acl`: Kafka's authorization as a pure core (issue 15, docs/design/0006-security.md).
//!
//! Owns: the ACL vocabulary with Kafka's codes, bindings, filters and their validation
//! (`model`); the compiled ACL set and the authorizer's decision (`authorizer`), as Kafka's
//! `StandardAuthorizer` decides. Not: where ACLs are kept (the metadata log, the controller),
//! who a connection's principal is (authentication), or any I/O.

pub mod authorizer;
pub mod model;

pub use authorizer::{AclSet, Action, Authorizer, Decision, Requester, Rule};
pub use model::{
    ANY_CODE, AclBinding, AclFilter, CLUSTER_NAME, KafkaEnum, MATCH_CODE, Operation, PatternFilter,
    PatternType, Permission, ResourceType, WILDCARD, WILDCARD_PRINCIPAL, parse_principal,
};

/// Why an ACL binding was refused (CreateAcls answers `INVALID_REQUEST` with the message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AclError {
    #[error("a principal is Type:name (as User:alice), not {0:?}")]
    InvalidPrincipal(String),
    #[error("an ACL may not have {0}")]
    InvalidResource(String),
    #[error("{code} is not a {what} code here")]
    UnknownCode { what: &'static str, code: i8 },
}
