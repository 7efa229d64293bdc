//! The compiled `AclSet` decides as a plain reading of Kafka's rules does: every ACL looked at
//! in turn, no index. Random ACL sets over a small alphabet (so that names, prefixes,
//! principals and hosts collide often) and random requests; a case that differs is shrunk by
//! proptest and replays from its seed file.

use proptest::prelude::*;
use sluice_acl::*;

const NAMES: &[&str] = &["a", "ab", "abc", "b", "*", "ba"];
const PRINCIPALS: &[&str] = &["User:alice", "User:bob", "User:*", "Group:ops"];
const HOSTS: &[&str] = &["*", "10.0.0.1", "10.0.0.2"];
const OPERATIONS: &[Operation] = &[
    Operation::All,
    Operation::Read,
    Operation::Write,
    Operation::Describe,
    Operation::Delete,
    Operation::Alter,
    Operation::AlterConfigs,
    Operation::DescribeConfigs,
];
const TYPES: &[ResourceType] = &[ResourceType::Topic, ResourceType::Group];

fn binding() -> impl Strategy<Value = AclBinding> {
    (
        0..TYPES.len(),
        0..NAMES.len(),
        any::<bool>(),
        0..PRINCIPALS.len(),
        0..HOSTS.len(),
        0..OPERATIONS.len(),
        any::<bool>(),
    )
        .prop_map(|(t, n, prefixed, p, h, o, allow)| AclBinding {
            resource_type: TYPES[t],
            resource_name: NAMES[n].to_string(),
            pattern_type: if prefixed && NAMES[n] != "*" {
                PatternType::Prefixed
            } else {
                PatternType::Literal
            },
            principal: PRINCIPALS[p].to_string(),
            host: HOSTS[h].to_string(),
            operation: OPERATIONS[o],
            permission: if allow {
                Permission::Allow
            } else {
                Permission::Deny
            },
        })
}

/// Kafka's rules read plainly.
fn reference(
    acls: &[AclBinding],
    principal: &str,
    host: &str,
    action: Action<'_>,
    no_acl: bool,
) -> bool {
    let resource_applies = |a: &AclBinding| {
        a.resource_type == action.resource_type
            && match a.pattern_type {
                PatternType::Literal => {
                    a.resource_name == action.resource_name || a.resource_name == "*"
                }
                PatternType::Prefixed => action.resource_name.starts_with(&a.resource_name),
            }
    };
    let operation_applies = |a: &AclBinding| {
        a.operation == Operation::All
            || a.operation == action.operation
            || (a.permission == Permission::Allow
                && ((action.operation == Operation::Describe
                    && matches!(
                        a.operation,
                        Operation::Read | Operation::Write | Operation::Delete | Operation::Alter
                    ))
                    || (action.operation == Operation::DescribeConfigs
                        && a.operation == Operation::AlterConfigs)))
    };
    let on_resource: Vec<&AclBinding> = acls.iter().filter(|a| resource_applies(a)).collect();
    if on_resource.is_empty() {
        return no_acl;
    }
    let mine: Vec<&&AclBinding> = on_resource
        .iter()
        .filter(|a| a.principal == principal || a.principal == "User:*")
        .filter(|a| a.host == "*" || a.host == host)
        .filter(|a| operation_applies(a))
        .collect();
    if mine.iter().any(|a| a.permission == Permission::Deny) {
        return false;
    }
    mine.iter().any(|a| a.permission == Permission::Allow)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn the_index_decides_as_the_rules_read(
        acls in prop::collection::vec(binding(), 0..12),
        who in 0..PRINCIPALS.len() - 1,
        host in 1..HOSTS.len(),
        name in 0..NAMES.len(),
        op in 1..OPERATIONS.len(),
        kind in 0..TYPES.len(),
        no_acl in any::<bool>(),
    ) {
        // A requester is never the wildcard principal itself, and has a real address.
        let principal = [PRINCIPALS[0], PRINCIPALS[1], PRINCIPALS[3]][who.min(2)];
        let action = Action {
            operation: OPERATIONS[op],
            resource_type: TYPES[kind],
            resource_name: NAMES[name],
        };
        let auth = Authorizer::new(AclSet::new(acls.clone()), [], no_acl);
        let got = auth.authorize(Requester { principal, host: HOSTS[host] }, action).allowed;
        prop_assert_eq!(got, reference(&acls, principal, HOSTS[host], action, no_acl));
    }
}
