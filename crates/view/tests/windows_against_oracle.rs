//! Windowed views against a from-scratch oracle: random readings with timestamps on and beside
//! window edges, late (out of order) and before 1970, folded by `ViewState` through `TUMBLE`
//! and `HOP`; after every record the view's rows equal what the oracle computes by trying every
//! window start (not through `Window::starts`).
//!
//! With a retention (`WITH (retention = ...)`), at every commit the rows are the oracle's
//! windows that end after the latest time read less the retention, the changes published so
//! far leave exactly those rows, and a state restored from the checkpoint at a commit goes on
//! to the same rows.

use proptest::prelude::*;
use sluice_view::RowChange;
use sluice_view::runtime::{SourceKind, SourceRecord, ViewState};
use sluice_view::sql::{Plan, Statement, parse};
use sluice_view::state::{Checkpoint, Positions, Stamp};
use sluice_view::value::Value;
use std::collections::BTreeMap;

const SLIDE_MS: i64 = 20_000;
const SIZE_MS: i64 = 60_000;

const RETENTION_MS: i64 = 90_000;

fn view(window: &str) -> ViewState {
    view_with(window, "")
}

fn view_with(window: &str, options: &str) -> ViewState {
    let sql = format!(
        "CREATE MATERIALIZED VIEW w {options} AS SELECT sensor, SUM(v) AS total, COUNT(*) AS n \
         FROM readings GROUP BY sensor, {window}"
    );
    let Statement::CreateView { plan, .. } = parse(&sql).unwrap() else {
        panic!("a view")
    };
    ViewState::new(Plan::View(plan), SourceKind::Stream)
}

/// Folds sensor `sensor`'s reading `v` at `ts` (record `offset`) into `state`; returns the
/// sensor's name.
fn read(state: &mut ViewState, sensor: u8, ts: i64, v: i64, offset: usize) -> String {
    let sensor = format!("s{sensor}");
    let value = format!(r#"{{"sensor":"{sensor}","v":{v}}}"#);
    let record = SourceRecord {
        key: None,
        value: Some(value.as_bytes()),
        timestamp: ts,
        partition: 0,
        offset: offset as i64,
        headers: &[],
    };
    state.apply(&record).unwrap();
    sensor
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
    rows_of(state.rows().unwrap())
}

fn rows_of(rows: Vec<Vec<Value>>) -> Oracle {
    rows.into_iter()
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
        let sensor = read(&mut state, *sensor, *ts, *v, offset);
        oracle_add(&mut oracle, &sensor, *ts, *v, slide, size);
        assert_eq!(rows(&state), oracle, "after reading {offset} at {ts}");
    }
}

/// Readings with a commit after each one marked, and the state restored from its checkpoint
/// after the commits marked.
fn check_retained(
    window: &str,
    slide: i64,
    size: i64,
    readings: &[(u8, i64, i64)],
    steps: &[(bool, bool)],
) {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = Checkpoint::open(&dir.path().join("views.redb")).unwrap();
    let stamp = Stamp {
        sql: "w".into(),
        reconciled: true,
    };
    let options = "WITH (retention = INTERVAL '90' SECOND)";
    let mut state = view_with(window, options);
    let mut oracle = Oracle::new();
    let mut published = Oracle::new();
    let mut time = i64::MIN;
    for (offset, (sensor, ts, v)) in readings.iter().enumerate() {
        let sensor = read(&mut state, *sensor, *ts, *v, offset);
        oracle_add(&mut oracle, &sensor, *ts, *v, slide, size);
        time = time.max(*ts);
        let (commit, restore) = steps[offset % steps.len()];
        if !(commit || offset + 1 == readings.len()) {
            continue;
        }
        let taken = state.take_commit().unwrap();
        for change in taken.changes {
            match change {
                RowChange::Upsert { key, values } => {
                    let row: Vec<Value> = key.into_iter().chain(values).collect();
                    published.extend(rows_of(vec![row]));
                }
                RowChange::Delete { key } => {
                    let [Value::Text(s), Value::Int(start), Value::Int(end)] = &key[..] else {
                        panic!("a windowed key: {key:?}")
                    };
                    published.remove(&(s.clone(), *start, *end));
                }
            }
        }
        let positions: Positions = [(("readings".to_string(), 0), offset as i64 + 1)].into();
        checkpoint
            .commit("w", &taken.delta, &positions, &stamp)
            .unwrap();
        let edge = time - RETENTION_MS;
        let kept: Oracle = oracle
            .iter()
            .filter(|((_, _, end), _)| *end > edge)
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        assert_eq!(
            rows(&state),
            kept,
            "rows after the commit at {offset} (time {time})"
        );
        assert_eq!(published, kept, "published after the commit at {offset}");
        if restore {
            let mut restored = view_with(window, options);
            assert_eq!(restored.restore(&checkpoint, "w").unwrap(), positions);
            assert_eq!(rows(&restored), kept, "restored at {offset}");
            state = restored;
        }
    }
}

fn steps() -> impl Strategy<Value = Vec<(bool, bool)>> {
    prop::collection::vec(
        (prop::bool::weighted(0.3), prop::bool::weighted(0.2)),
        1..20,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn retained_tumbling_windows_equal_the_oracle_at_every_commit(
        readings in readings(),
        steps in steps(),
    ) {
        check_retained("TUMBLE(_ts, INTERVAL '1' MINUTE)", SIZE_MS, SIZE_MS, &readings, &steps);
    }

    #[test]
    fn retained_hopping_windows_equal_the_oracle_at_every_commit(
        readings in readings(),
        steps in steps(),
    ) {
        check_retained(
            "HOP(_ts, INTERVAL '20' SECOND, INTERVAL '1' MINUTE)",
            SLIDE_MS,
            SIZE_MS,
            &readings,
            &steps,
        );
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
