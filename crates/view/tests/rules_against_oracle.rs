//! A sliding-window rule (`CREATE STREAM ... WINDOW SLIDING ... HAVING`) against an oracle
//! that keeps every record and reads each window from scratch: random payments over two
//! partitions (each account in one), with late records, records out of order within the
//! window, filtered ones and quiet gaps that make the rule forget groups; restored from its
//! checkpoint entries midway, as after a restart. The alerts must be exactly the oracle's.

use proptest::prelude::*;
use sluice_view::runtime::{SourceKind, SourceRecord, ViewState};
use sluice_view::sql::{Plan, Statement, parse};
use sluice_view::stream::StreamState;
use std::collections::BTreeMap;

const SIZE_MS: i64 = 10_000;
const RULE: &str = "CREATE STREAM fraud AS SELECT account, COUNT(*) AS n, SUM(amount) AS total \
                    FROM payments WINDOW SLIDING (SIZE 10 SECONDS) WHERE amount > 0 \
                    GROUP BY account HAVING COUNT(*) >= 3 AND total > 40 OR total > 70";

fn rule() -> StreamState {
    let Statement::CreateStream { plan, .. } = parse(RULE).unwrap() else {
        panic!("a stream")
    };
    StreamState::new(plan)
}

/// One payment: its account, how far its partition's clock moves before it, how far behind
/// that clock its timestamp is, and its amount.
#[derive(Debug, Clone)]
struct Payment {
    account: u8,
    step_ms: i64,
    behind_ms: i64,
    amount: i64,
}

fn payment() -> impl Strategy<Value = Payment> {
    (
        0u8..5,
        prop_oneof![8 => 0i64..3_000, 1 => 20_000i64..40_000],
        prop_oneof![6 => Just(0i64), 3 => 0i64..9_000, 1 => 9_000i64..25_000],
        -20i64..80,
    )
        .prop_map(|(account, step_ms, behind_ms, amount)| Payment {
            account,
            step_ms,
            behind_ms,
            amount,
        })
}

/// A payment placed: partition, offset, timestamp.
struct Placed {
    account: String,
    partition: i32,
    offset: i64,
    timestamp: i64,
    amount: i64,
}

fn place(payments: &[Payment]) -> Vec<Placed> {
    let mut clocks = [1_700_000_000_000i64; 2];
    let mut offsets = [0i64; 2];
    payments
        .iter()
        .map(|p| {
            let partition = usize::from(p.account % 2);
            clocks[partition] += p.step_ms;
            offsets[partition] += 1;
            Placed {
                account: format!("a{}", p.account),
                partition: partition as i32,
                offset: offsets[partition] - 1,
                timestamp: clocks[partition] - p.behind_ms,
                amount: p.amount,
            }
        })
        .collect()
}

/// The alerts (id, n, total) the rule's definition asks for, read from scratch.
fn oracle(placed: &[Placed]) -> Vec<(String, i64, i64)> {
    #[derive(Default)]
    struct Group {
        entries: Vec<(i64, i64)>,
        newest: Option<i64>,
        firing: bool,
    }
    let mut times: BTreeMap<i32, i64> = BTreeMap::new();
    let mut groups: BTreeMap<&str, Group> = BTreeMap::new();
    let mut alerts = Vec::new();
    for p in placed {
        let time = times.get(&p.partition).copied();
        if time.is_some_and(|t| p.timestamp < t - SIZE_MS) {
            continue; // late
        }
        times.insert(
            p.partition,
            time.map_or(p.timestamp, |t| t.max(p.timestamp)),
        );
        if p.amount <= 0 {
            continue; // WHERE
        }
        let group = groups.entry(&p.account).or_default();
        let previous = group.newest;
        group.entries.push((p.timestamp, p.amount));
        let newest = previous.map_or(p.timestamp, |n| n.max(p.timestamp));
        group.newest = Some(newest);
        let cutoff = newest - SIZE_MS;
        if previous.is_none_or(|n| n < cutoff) {
            group.firing = false;
        }
        let window: Vec<i64> = group
            .entries
            .iter()
            .filter(|(ts, _)| *ts >= cutoff)
            .map(|(_, amount)| *amount)
            .collect();
        let (n, total) = (window.len() as i64, window.iter().sum::<i64>());
        let holds = n >= 3 && total > 40 || total > 70;
        if holds && !group.firing {
            alerts.push((format!("payments:{}:{}", p.partition, p.offset), n, total));
        }
        group.firing = holds;
    }
    alerts
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn a_rule_alerts_exactly_as_its_definition_says(
        payments in prop::collection::vec(payment(), 1..120),
        restart_at in 0usize..120,
    ) {
        let placed = place(&payments);
        let mut state = rule();
        // The checkpoint as the engine would keep it: each commit's changed entries.
        let mut checkpoint: BTreeMap<Vec<sluice_view::Value>, Vec<u8>> = BTreeMap::new();
        let mut alerts = Vec::new();
        for (i, p) in placed.iter().enumerate() {
            if i == restart_at {
                let mut restored = rule();
                for (key, bytes) in &checkpoint {
                    restored.import_group(key.clone(), bytes).unwrap();
                }
                state = restored;
            }
            let value = format!(r#"{{"account":"{}","amount":{}}}"#, p.account, p.amount);
            let record = SourceRecord {
                key: Some(p.account.as_bytes()),
                value: Some(value.as_bytes()),
                timestamp: p.timestamp,
                partition: p.partition,
                offset: p.offset,
                headers: &[],
            };
            state.apply(&record).unwrap();
            for written in state.take_records() {
                let alert: serde_json::Value =
                    serde_json::from_slice(written.value.as_deref().unwrap()).unwrap();
                let id = String::from_utf8(written.key.unwrap()).unwrap();
                prop_assert_eq!(&alert["alert_id"], &serde_json::Value::from(id.clone()));
                alerts.push((id, alert["n"].as_i64().unwrap(), alert["total"].as_i64().unwrap()));
            }
            for (key, bytes) in state.take_changed_groups() {
                match bytes {
                    Some(bytes) => checkpoint.insert(key, bytes),
                    None => checkpoint.remove(&key),
                };
            }
        }
        prop_assert_eq!(alerts, oracle(&placed));
    }
}

/// A rule is a `ViewState` like any definition: it answers no rows and says when to commit.
#[test]
fn a_rule_in_a_view_state_keeps_no_rows() {
    let Statement::CreateStream { plan, .. } = parse(RULE).unwrap() else {
        panic!("a stream")
    };
    let state = ViewState::new(Plan::Stream(plan), SourceKind::Stream);
    assert_eq!(state.key_len(), 0);
    assert!(state.rows().unwrap().is_empty());
    assert!(!state.commit_due());
    assert!(!state.is_stateless());
}
