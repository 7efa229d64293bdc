//! The property the issue asks of views: after every commit, the incrementally maintained
//! state (and what was published to the output topic, compacted) equals a from-scratch fold of
//! the events so far. Random payments into a stream view of per-account aggregates, and random
//! upserts and deletes into a table viewed per region; commits at random points. After each
//! commit the views go on from a restored checkpoint (every group and table row exported and
//! imported into new ones), as after a restart.

use proptest::prelude::*;
use sluice_view::fold::Table;
use sluice_view::{Aggregate, Decimal, Fold, Position, RowChange, Value};
use std::collections::BTreeMap;

const AGGREGATES: [Aggregate; 7] = [
    Aggregate::CountRows,
    Aggregate::Count,
    Aggregate::Sum,
    Aggregate::Min,
    Aggregate::Max,
    Aggregate::Avg,
    Aggregate::Latest,
];

#[derive(Debug, Clone)]
enum Event {
    /// A payment of `cents` (may be negative, may be null) to `account`, at `timestamp`.
    Payment {
        account: u8,
        cents: Option<i32>,
        timestamp: i64,
    },
    /// Entity `entity` now lives in `region` with `score`.
    Upsert {
        entity: u8,
        region: u8,
        score: i32,
    },
    Delete {
        entity: u8,
    },
    Commit,
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        4 => (0u8..5, prop::option::weighted(0.9, -100_000i32..100_000), -5i64..5)
            .prop_map(|(account, cents, timestamp)| Event::Payment { account, cents, timestamp }),
        3 => (0u8..6, 0u8..3, -50i32..50)
            .prop_map(|(entity, region, score)| Event::Upsert { entity, region, score }),
        1 => (0u8..6).prop_map(|entity| Event::Delete { entity }),
        1 => Just(Event::Commit),
    ]
}

fn cents(c: Option<i32>) -> Value {
    c.map_or(Value::Null, |c| {
        Value::Decimal(Decimal::new(i128::from(c), 2))
    })
}

/// The aggregates of `rows` (input value, position), computed from scratch.
fn oracle_row(rows: &[(Value, Position)]) -> Vec<Value> {
    let non_null: Vec<&Value> = rows
        .iter()
        .map(|(v, _)| v)
        .filter(|v| **v != Value::Null)
        .collect();
    let mut total = Decimal::new(0, 0);
    for v in &non_null {
        total = total
            .checked_add(v.as_decimal("SUM").unwrap().unwrap())
            .unwrap();
    }
    let (sum, avg) = if non_null.is_empty() {
        (Value::Null, Value::Null)
    } else {
        (
            Value::from_decimal(total),
            Value::Decimal(total.div_count(non_null.len() as i64).unwrap()),
        )
    };
    let latest = rows
        .iter()
        .max_by_key(|(_, at)| *at)
        .map(|(v, _)| v.clone())
        .unwrap();
    vec![
        Value::Int(rows.len() as i64),
        Value::Int(non_null.len() as i64),
        sum,
        non_null.iter().min().map_or(Value::Null, |v| (*v).clone()),
        non_null.iter().max().map_or(Value::Null, |v| (*v).clone()),
        avg,
        latest,
    ]
}

/// A fold and table rebuilt from their checkpoint bytes.
fn restored(fold: &Fold, table: Option<&Table>, entity_keys: &[u8]) -> (Fold, Table) {
    let mut fresh = Fold::new(AGGREGATES.to_vec());
    for (key, _) in fold.rows().unwrap() {
        fresh
            .import_group(key.clone(), &fold.export_group(&key).unwrap())
            .unwrap();
    }
    let mut fresh_table = Table::default();
    if let Some(table) = table {
        for &entity in entity_keys {
            if let Some(bytes) = table.export_row(&[entity]) {
                fresh_table.import_row(vec![entity], &bytes).unwrap();
            }
        }
    }
    (fresh, fresh_table)
}

fn oracle(
    groups: BTreeMap<Vec<Value>, Vec<(Value, Position)>>,
) -> BTreeMap<Vec<Value>, Vec<Value>> {
    groups
        .into_iter()
        .map(|(k, rows)| (k, oracle_row(&rows)))
        .collect()
}

/// Applies published changes to a compacted output topic's latest state.
fn publish(output: &mut BTreeMap<Vec<Value>, Vec<Value>>, changes: Vec<RowChange>) {
    for change in changes {
        match change {
            RowChange::Upsert { key, values } => {
                output.insert(key, values);
            }
            RowChange::Delete { key } => {
                output.remove(&key);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn incremental_state_equals_a_fold_from_scratch(events in prop::collection::vec(event(), 1..300)) {
        let mut payments = Fold::new(AGGREGATES.to_vec());
        let mut scores = Fold::new(AGGREGATES.to_vec());
        let mut table = Table::default();
        let mut payments_output = BTreeMap::new();
        let mut scores_output = BTreeMap::new();
        // The oracle's inputs: every payment so far, and each entity's current row.
        let mut all_payments: Vec<(u8, Value, Position)> = Vec::new();
        let mut entities: BTreeMap<u8, (u8, Value, Position)> = BTreeMap::new();
        for (offset, event) in events.iter().enumerate() {
            let at = |timestamp| Position { timestamp, partition: 0, offset: offset as i64 };
            match *event {
                Event::Payment { account, cents: c, timestamp } => {
                    let amount = cents(c);
                    payments.add(vec![Value::Int(account.into())], &vec![amount.clone(); 7], at(timestamp)).unwrap();
                    all_payments.push((account, amount, at(timestamp)));
                }
                Event::Upsert { entity, region, score } => {
                    let value = Value::Int(score.into());
                    table.upsert(&mut scores, vec![entity], vec![Value::Int(region.into())], vec![value.clone(); 7], at(0)).unwrap();
                    entities.insert(entity, (region, value, at(0)));
                }
                Event::Delete { entity } => {
                    table.delete(&mut scores, &[entity]).unwrap();
                    entities.remove(&entity);
                }
                Event::Commit => {
                    publish(&mut payments_output, payments.take_changes().unwrap());
                    publish(&mut scores_output, scores.take_changes().unwrap());
                    let mut by_account: BTreeMap<Vec<Value>, Vec<(Value, Position)>> = BTreeMap::new();
                    for (account, amount, at) in &all_payments {
                        by_account.entry(vec![Value::Int((*account).into())]).or_default().push((amount.clone(), *at));
                    }
                    let mut by_region: BTreeMap<Vec<Value>, Vec<(Value, Position)>> = BTreeMap::new();
                    for (region, score, at) in entities.values() {
                        by_region.entry(vec![Value::Int((*region).into())]).or_default().push((score.clone(), *at));
                    }
                    let expected_payments = oracle(by_account);
                    let expected_scores = oracle(by_region);
                    let incremental: BTreeMap<_, _> = payments.rows().unwrap().into_iter().collect();
                    prop_assert_eq!(&incremental, &expected_payments);
                    prop_assert_eq!(&payments_output, &expected_payments);
                    let incremental: BTreeMap<_, _> = scores.rows().unwrap().into_iter().collect();
                    prop_assert_eq!(&incremental, &expected_scores);
                    prop_assert_eq!(&scores_output, &expected_scores);
                    // A restart from the checkpoint: the views go on from restored copies.
                    payments = restored(&payments, None, &[]).0;
                    let entity_keys: Vec<u8> = (0u8..6).collect();
                    (scores, table) = restored(&scores, Some(&table), &entity_keys);
                }
            }
        }
    }
}
