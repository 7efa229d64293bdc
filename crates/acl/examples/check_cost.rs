//! The cost of one authorization check with 10,000 ACLs (issue 15's figure): 5,000 literal
//! topic ACLs, 4,000 prefixed ones and 1,000 on groups, for 500 principals; the checks ask for
//! topics some ACL names, some prefix covers, and none does, as the principal of an ACL.
//! Prints ns per check (median of 5 rounds of 1,000,000 checks).
//!
//!     cargo run --release -p sluice-acl --example check_cost

use sluice_acl::*;
use std::hint::black_box;
use std::time::Instant;

fn main() {
    let mut acls = Vec::new();
    for i in 0..10_000 {
        let (resource_type, name, pattern) = match i % 10 {
            0..=4 => (
                ResourceType::Topic,
                format!("topic-{i}"),
                PatternType::Literal,
            ),
            5..=8 => (
                ResourceType::Topic,
                format!("team-{i}-"),
                PatternType::Prefixed,
            ),
            _ => (
                ResourceType::Group,
                format!("group-{i}"),
                PatternType::Literal,
            ),
        };
        acls.push(AclBinding {
            resource_type,
            resource_name: name,
            pattern_type: pattern,
            principal: format!("User:service-{}", i % 500),
            host: "*".into(),
            operation: if i % 3 == 0 {
                Operation::Write
            } else {
                Operation::Read
            },
            permission: if i % 50 == 0 {
                Permission::Deny
            } else {
                Permission::Allow
            },
        });
    }
    // A third of the checks name a topic an ACL names, a third one a prefix covers, a third
    // one no ACL names; each by the principal of the ACL it was made from.
    let checks: Vec<(String, String)> = (0..3000)
        .map(|k| {
            let acl = &acls[(k * 7) % acls.len()];
            let name = match (k % 3, acl.pattern_type) {
                (2, _) => format!("unnamed-{k}"),
                (_, PatternType::Prefixed) => format!("{}orders", acl.resource_name),
                _ => acl.resource_name.clone(),
            };
            (acl.principal.clone(), name)
        })
        .collect();
    let started = Instant::now();
    let auth = Authorizer::new(AclSet::new(acls), ["User:admin".to_string()], false);
    println!(
        "compiled {} ACLs in {:?}",
        auth.acls().len(),
        started.elapsed()
    );
    let mut rounds = Vec::new();
    let mut allowed = 0u64;
    for _ in 0..5 {
        let started = Instant::now();
        for i in 0..1_000_000usize {
            let (principal, name) = &checks[i % checks.len()];
            let who = Requester {
                principal,
                host: "10.1.2.3",
            };
            let action = Action {
                operation: Operation::Read,
                resource_type: ResourceType::Topic,
                resource_name: name,
            };
            allowed += u64::from(black_box(auth.authorize(who, action)).allowed);
        }
        rounds.push(started.elapsed().as_nanos() as f64 / 1_000_000.0);
    }
    rounds.sort_by(f64::total_cmp);
    println!(
        "{:.0} ns per check (median of 5 rounds; {:.0}-{:.0}); {allowed} allowed of 5,000,000",
        rounds[2], rounds[0], rounds[4]
    );
}
