//! The authorizer's decision, as Kafka's `StandardAuthorizer` makes it: super users are allowed
//! everything; otherwise every ACL that applies to the resource is looked at (its literal
//! name, the literal `*`, and every prefixed pattern the name starts with) for the principal
//! (or `User:*`) and host (or `*`): a deny wins over any allow; an allow for READ, WRITE,
//! DELETE or ALTER implies DESCRIBE, and one for ALTER_CONFIGS implies DESCRIBE_CONFIGS (allows
//! only: a deny of READ does not deny DESCRIBE); ALL matches every operation. With no ACL on
//! the resource at all, `allow.everyone.if.no.acl.found` decides (false: denied); with ACLs on
//! it but none for this principal, denied.
//!
//! `AclSet` is compiled once per change of the ACLs (an index by resource type, literal name
//! and prefix) and then only read: the broker swaps it whole when the metadata changes, so a
//! check takes no lock.
//!
//! Owns: the decision and the index. Not: where ACLs are kept (the metadata log), nor who the
//! principal is (authentication).

use crate::model::{
    AclBinding, Operation, PatternType, Permission, ResourceType, WILDCARD, WILDCARD_PRINCIPAL,
};
use std::collections::{BTreeMap, HashMap, HashSet};

/// Who asks and from where.
#[derive(Debug, Clone, Copy)]
pub struct Requester<'a> {
    /// `Type:name`, as `User:alice`.
    pub principal: &'a str,
    /// The client's IP address as text.
    pub host: &'a str,
}

/// What is asked: an operation on a named resource.
#[derive(Debug, Clone, Copy)]
pub struct Action<'a> {
    pub operation: Operation,
    pub resource_type: ResourceType,
    pub resource_name: &'a str,
}

/// Why a decision came out as it did, for the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule<'a> {
    SuperUser,
    /// This ACL decided.
    Acl(&'a AclBinding),
    /// No ACL names the resource: `allow.everyone.if.no.acl.found`.
    NoAcl,
    /// ACLs name the resource, none allows this.
    NotAllowed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision<'a> {
    pub allowed: bool,
    pub rule: Rule<'a>,
}

/// The ACLs of one resource type, indexed for lookup by name.
#[derive(Debug, Default)]
struct TypeIndex {
    literal: HashMap<String, Vec<AclBinding>>,
    /// Prefixed patterns by prefix.
    prefixed: BTreeMap<String, Vec<AclBinding>>,
    /// The shortest and longest prefix held: names are only cut between these lengths.
    prefix_lengths: (usize, usize),
}

/// Every ACL, compiled for lookup.
#[derive(Debug, Default)]
pub struct AclSet {
    by_type: HashMap<ResourceType, TypeIndex>,
    count: usize,
}

impl AclSet {
    pub fn new(bindings: impl IntoIterator<Item = AclBinding>) -> AclSet {
        let mut set = AclSet::default();
        let unique: HashSet<AclBinding> = bindings.into_iter().collect();
        for b in unique {
            set.count += 1;
            let index = set.by_type.entry(b.resource_type).or_default();
            match b.pattern_type {
                PatternType::Literal => index
                    .literal
                    .entry(b.resource_name.clone())
                    .or_default()
                    .push(b),
                PatternType::Prefixed => {
                    let len = b.resource_name.len();
                    let (low, high) = index.prefix_lengths;
                    index.prefix_lengths = if index.prefixed.is_empty() {
                        (len, len)
                    } else {
                        (low.min(len), high.max(len))
                    };
                    index
                        .prefixed
                        .entry(b.resource_name.clone())
                        .or_default()
                        .push(b)
                }
            }
        }
        set
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Every ACL of a resource type.
    fn of_type(&self, resource_type: ResourceType) -> impl Iterator<Item = &AclBinding> {
        self.by_type.get(&resource_type).into_iter().flat_map(|i| {
            i.literal
                .values()
                .flatten()
                .chain(i.prefixed.values().flatten())
        })
    }

    /// Every ACL that applies to a resource of this type and name, whoever asks.
    fn applying<'s, 'n>(
        &'s self,
        resource_type: ResourceType,
        name: &'n str,
    ) -> impl Iterator<Item = &'s AclBinding> + use<'s, 'n> {
        let index = self.by_type.get(&resource_type);
        let literal = index
            .and_then(|i| i.literal.get(name))
            .into_iter()
            .flatten();
        let wildcard = index
            .filter(|_| name != WILDCARD)
            .and_then(|i| i.literal.get(WILDCARD))
            .into_iter()
            .flatten();
        let prefixed = index
            .into_iter()
            .flat_map(move |i| prefixes(name, i.prefix_lengths).filter_map(|p| i.prefixed.get(p)))
            .flatten();
        literal.chain(wildcard).chain(prefixed)
    }
}

/// The prefixes of `name` whose lengths lie in `lengths` (at char boundaries).
fn prefixes(name: &str, (low, high): (usize, usize)) -> impl Iterator<Item = &str> {
    (low.max(1)..=high.min(name.len()))
        .filter(move |&n| name.is_char_boundary(n))
        .map(move |n| &name[..n])
}

/// Whether `acl` (whose resource applies) applies to this requester and operation, and how.
fn applies(acl: &AclBinding, who: Requester<'_>, operation: Operation) -> bool {
    // As Kafka: the principal itself or `User:*` (whatever the requester's type).
    let principal = acl.principal == who.principal || acl.principal == WILDCARD_PRINCIPAL;
    let host = acl.host == WILDCARD || acl.host == who.host;
    principal && host && operation_applies(acl, operation)
}

fn operation_applies(acl: &AclBinding, wanted: Operation) -> bool {
    use Operation::*;
    if acl.operation == All || acl.operation == wanted {
        return true;
    }
    // Implied operations come from allows only.
    acl.permission == Permission::Allow
        && match wanted {
            Describe => matches!(acl.operation, Read | Write | Delete | Alter),
            DescribeConfigs => acl.operation == AlterConfigs,
            _ => false,
        }
}

/// The authorizer: the compiled ACLs, the super users and the rule for resources with none.
#[derive(Debug, Default)]
pub struct Authorizer {
    acls: AclSet,
    super_users: HashSet<String>,
    allow_everyone_if_no_acl_found: bool,
}

impl Authorizer {
    pub fn new(
        acls: AclSet,
        super_users: impl IntoIterator<Item = String>,
        allow_everyone_if_no_acl_found: bool,
    ) -> Authorizer {
        Authorizer {
            acls,
            super_users: super_users.into_iter().collect(),
            allow_everyone_if_no_acl_found,
        }
    }

    pub fn acls(&self) -> &AclSet {
        &self.acls
    }

    /// Whether `who` may do `operation` on some resource of this type (Kafka's
    /// `authorizeByResourceType`, KIP-679: an idempotent producer needs WRITE on any topic):
    /// a super user may; otherwise an allowing ACL for it must exist and no deny of every name
    /// (a literal `*`) for it. With no ACL of the type at all, `allow.everyone.if.no.acl.found`.
    pub fn allows_some(
        &self,
        who: Requester<'_>,
        operation: Operation,
        resource_type: ResourceType,
    ) -> bool {
        if self.super_users.contains(who.principal) {
            return true;
        }
        let mut any_acl = false;
        let mut allowed = false;
        for acl in self.acls.of_type(resource_type) {
            any_acl = true;
            if !applies(acl, who, operation) {
                continue;
            }
            match acl.permission {
                Permission::Deny
                    if acl.pattern_type == PatternType::Literal
                        && acl.resource_name == WILDCARD =>
                {
                    return false;
                }
                Permission::Deny => {}
                Permission::Allow => allowed = true,
            }
        }
        allowed || (!any_acl && self.allow_everyone_if_no_acl_found)
    }

    pub fn authorize(&self, who: Requester<'_>, action: Action<'_>) -> Decision<'_> {
        if self.super_users.contains(who.principal) {
            return Decision {
                allowed: true,
                rule: Rule::SuperUser,
            };
        }
        let mut any_acl = false;
        let mut allow = None;
        for acl in self
            .acls
            .applying(action.resource_type, action.resource_name)
        {
            any_acl = true;
            if !applies(acl, who, action.operation) {
                continue;
            }
            match acl.permission {
                Permission::Deny => {
                    return Decision {
                        allowed: false,
                        rule: Rule::Acl(acl),
                    };
                }
                Permission::Allow => allow = allow.or(Some(acl)),
            }
        }
        match (allow, any_acl) {
            (Some(acl), _) => Decision {
                allowed: true,
                rule: Rule::Acl(acl),
            },
            (None, false) => Decision {
                allowed: self.allow_everyone_if_no_acl_found,
                rule: Rule::NoAcl,
            },
            (None, true) => Decision {
                allowed: false,
                rule: Rule::NotAllowed,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Operation::*;

    #[test]
    fn some_resource_of_a_type_is_allowed_by_any_allow_unless_every_name_is_denied() {
        let alice = Requester {
            principal: "User:alice",
            host: "10.0.0.1",
        };
        let with = |acls: Vec<AclBinding>| Authorizer::new(AclSet::new(acls), Vec::new(), false);
        let prefixed = acl(
            "orders-",
            PatternType::Prefixed,
            "User:alice",
            Write,
            Permission::Allow,
        );
        assert!(with(vec![prefixed.clone()]).allows_some(alice, Write, ResourceType::Topic));
        assert!(!with(vec![prefixed.clone()]).allows_some(alice, Read, ResourceType::Topic));
        let deny_all = acl(
            "*",
            PatternType::Literal,
            "User:alice",
            Write,
            Permission::Deny,
        );
        assert!(!with(vec![prefixed, deny_all]).allows_some(alice, Write, ResourceType::Topic));
        assert!(!with(Vec::new()).allows_some(alice, Write, ResourceType::Topic));
    }

    fn acl(
        name: &str,
        pattern: PatternType,
        principal: &str,
        op: Operation,
        p: Permission,
    ) -> AclBinding {
        AclBinding {
            resource_type: ResourceType::Topic,
            resource_name: name.into(),
            pattern_type: pattern,
            principal: principal.into(),
            host: "*".into(),
            operation: op,
            permission: p,
        }
    }

    fn topic(operation: Operation, name: &str) -> Action<'_> {
        Action {
            operation,
            resource_type: ResourceType::Topic,
            resource_name: name,
        }
    }

    const ALICE: Requester<'static> = Requester {
        principal: "User:alice",
        host: "10.0.0.1",
    };

    #[test]
    fn a_prefix_allows_its_topics_and_nothing_else() {
        let set = AclSet::new([acl(
            "orders-",
            PatternType::Prefixed,
            "User:alice",
            Write,
            Permission::Allow,
        )]);
        let auth = Authorizer::new(set, [], false);
        assert!(auth.authorize(ALICE, topic(Write, "orders-eu")).allowed);
        assert!(!auth.authorize(ALICE, topic(Write, "payments")).allowed);
        assert_eq!(
            auth.authorize(ALICE, topic(Write, "payments")).rule,
            Rule::NoAcl
        );
        assert!(
            auth.authorize(ALICE, topic(Describe, "orders-eu")).allowed,
            "WRITE implies DESCRIBE"
        );
        assert!(!auth.authorize(ALICE, topic(Read, "orders-eu")).allowed);
        let bob = Requester {
            principal: "User:bob",
            host: "10.0.0.1",
        };
        assert_eq!(
            auth.authorize(bob, topic(Write, "orders-eu")).rule,
            Rule::NotAllowed
        );
    }

    #[test]
    fn a_deny_beats_an_allow_and_implies_nothing() {
        let set = AclSet::new([
            acl("*", PatternType::Literal, "User:*", All, Permission::Allow),
            acl(
                "secret",
                PatternType::Literal,
                "User:alice",
                Read,
                Permission::Deny,
            ),
        ]);
        let auth = Authorizer::new(set, [], false);
        assert!(!auth.authorize(ALICE, topic(Read, "secret")).allowed);
        assert!(
            auth.authorize(ALICE, topic(Describe, "secret")).allowed,
            "a deny of READ leaves DESCRIBE"
        );
        assert!(
            auth.authorize(ALICE, topic(Read, "public")).allowed,
            "User:* and * match"
        );
    }

    #[test]
    fn super_users_hosts_and_the_no_acl_rule() {
        let mut only_from = acl(
            "t",
            PatternType::Literal,
            "User:alice",
            Read,
            Permission::Allow,
        );
        only_from.host = "10.0.0.2".into();
        let auth = Authorizer::new(AclSet::new([only_from]), ["User:admin".to_string()], true);
        assert!(
            !auth.authorize(ALICE, topic(Read, "t")).allowed,
            "another host"
        );
        assert!(
            auth.authorize(ALICE, topic(Read, "other")).allowed,
            "no ACL: allow.everyone"
        );
        let admin = Requester {
            principal: "User:admin",
            host: "1.2.3.4",
        };
        assert_eq!(
            auth.authorize(admin, topic(Delete, "t")).rule,
            Rule::SuperUser
        );
    }

    #[test]
    fn alter_configs_implies_describe_configs() {
        let set = AclSet::new([acl(
            "t",
            PatternType::Literal,
            "User:alice",
            AlterConfigs,
            Permission::Allow,
        )]);
        let auth = Authorizer::new(set, [], false);
        assert!(auth.authorize(ALICE, topic(DescribeConfigs, "t")).allowed);
        assert!(!auth.authorize(ALICE, topic(Describe, "t")).allowed);
    }

    #[test]
    fn prefixes_cut_only_at_char_boundaries() {
        let set = AclSet::new([acl(
            "é",
            PatternType::Prefixed,
            "User:alice",
            Read,
            Permission::Allow,
        )]);
        let auth = Authorizer::new(set, [], false);
        assert!(auth.authorize(ALICE, topic(Read, "éa")).allowed);
        assert!(!auth.authorize(ALICE, topic(Read, "ea")).allowed);
    }
}
