//! Windowed views against a from-scratch oracle: random readings with timestamps on and beside
//! window edges, late (out of order) and before 1970, folded by `ViewState` through `TUMBLE`
//! and `HOP`; after every record the view's rows equal what the oracle computes by trying every
//! window start (not through `Window::starts`).

use proptest::prelude::*;
use sluice_view::runtime::{SourceKind, SourceRecord, ViewState};
use sluice_view::sql::{Plan, Statement, parse};
use sluice_view::value::Value;
use std::collections::BTreeMap;

const SLIDE_MS: i64 = 20_000;
const SIZE_MS: i64 = 60_000;

fn view(window: &str) -> ViewState {
    let sql = format!(
        "CREATE MATERIALIZED VIEW w AS SELECT sensor, SUM(v) AS total, COUNT(*) AS n \
         FROM readings GROUP BY sensor, {window}"
    );
    let Statement::CreateView { plan, .. } = parse(&sql).unwrap() else {
        panic!("a view")
    };
    ViewState::new(Plan::View(plan), SourceKind::Stream)
}

/// (sensor, window start, window end) -> (total, count), by trying every start.
type Oracle = BTreeMap<(String, i64, i64), (i64, i64)>;

fn oracle_add(oracle: &mut Oracle, sensor: &str, ts: i64, v: i64, slide: i64, size: i64) {
    let first = (ts - size).div_euclid(slide) - 1;
    let last = ts.div_euclid(slide) + 1;
    for k in first..=last {
        let start = k * slide;
        if start <= ts && ts < start + size {
            let entry = oracle
                .entry((sensor.to_string(), start, start + size))
                .or_default();
            entry.0 += v;
            entry.1 += 1;
        }
    }
}

fn rows(state: &ViewState) -> Oracle {
    state
        .rows()
        .unwrap()
        .into_iter()
        .map(|r| match &r[..] {
            [
                Value::Text(sensor),
                Value::Int(start),
                Value::Int(end),
                Value::Int(total),
                Value::Int(n),
            ] => ((sensor.clone(), *start, *end), (*total, *n)),
            other => panic!("a row of a windowed view: {other:?}"),
        })
        .collect()
}

/// A timestamp near a window edge (±1 ms) or anywhere, before and after 1970.
fn timestamp() -> impl Strategy<Value = i64> {
    prop_oneof![
        (-8i64..12, -1i64..=1).prop_map(|(k, d)| k * SLIDE_MS + d),
        -200_000i64..300_000,
    ]
}

fn readings() -> impl Strategy<Value = Vec<(u8, i64, i64)>> {
    prop::collection::vec((0u8..3, timestamp(), -50i64..100), 1..80)
}

fn check(window: &str, slide: i64, size: i64, readings: &[(u8, i64, i64)]) {
    let mut state = view(window);
    let mut oracle = Oracle::new();
    for (offset, (sensor, ts, v)) in readings.iter().enumerate() {
        let sensor = format!("s{sensor}");
        let value = format!(r#"{{"sensor":"{sensor}","v":{v}}}"#);
        let record = SourceRecord {
            key: None,
            value: Some(value.as_bytes()),
            timestamp: *ts,
            partition: 0,
            offset: offset as i64,
            headers: &[],
        };
        state.apply(&record).unwrap();
        oracle_add(&mut oracle, &sensor, *ts, *v, slide, size);
        assert_eq!(rows(&state), oracle, "after reading {offset} at {ts}");
    }
}

proptest! {
    #[test]
    fn tumbling_windows_equal_the_oracle(readings in readings()) {
        check("TUMBLE(_ts, INTERVAL '1' MINUTE)", SIZE_MS, SIZE_MS, &readings);
    }

    #[test]
    fn hopping_windows_equal_the_oracle(readings in readings()) {
        check(
            "HOP(_ts, INTERVAL '20' SECOND, INTERVAL '1' MINUTE)",
            SLIDE_MS,
            SIZE_MS,
            &readings,
        );
    }
}
