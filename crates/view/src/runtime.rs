//! A view plan at work: source records in, rows and changes out, and queries over the rows.
//!
//! A record's columns are `_key` (text), `_ts`, `_partition`, `_offset` and the fields of its
//! JSON object value (`a.b` for a nested field). Over a stream, a record that passes WHERE adds
//! to its group. Over a table (the latest value per record key), a record replaces its key's
//! row: one that fails WHERE, or a tombstone, takes the key's row out. A record whose value is
//! not a JSON object is skipped and said so (the engine counts it), not allowed to stop the
//! view. HAVING decides which groups are visible: a group that fails it is published as a
//! deletion.
//!
//! Owns: binding a plan to a `Fold`, and answering queries. Not: where records come from or
//! where changes go (the engine).

use crate::expr::Expr;
use crate::fold::{CheckpointMismatch, Fold, Position, RowChange, Table};
use crate::sql::{Plan, Query, ViewPlan, WINDOW_COLUMNS, Window};
use crate::state::{Checkpoint, CheckpointDelta, Positions, StateError};
use crate::stream::{OutRecord, StreamState};
use crate::value::{Value, ValueError};
use sluice_record::RecordHeader;
use sluice_types::limits::{VIEW_DIRTY_KEYS_MAX, VIEW_PENDING_BYTES_MAX};
use std::cmp::Ordering;
use std::ops::Bound;

/// One record of a source topic.
#[derive(Debug, Clone, Copy)]
pub struct SourceRecord<'a> {
    pub key: Option<&'a [u8]>,
    /// `None`: a tombstone.
    pub value: Option<&'a [u8]>,
    pub timestamp: i64,
    pub partition: i32,
    pub offset: i64,
    pub headers: &'a [RecordHeader<'a>],
}

/// How a view reads its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// Every record is an event (a topic).
    Stream,
    /// The latest record per key is the row (`CREATE TABLE ... FROM TOPIC`).
    Table,
}

/// What became of one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    Folded,
    /// Filtered out by WHERE (over a table: the key's row, if any, left the view).
    Filtered,
    /// Not a row this view can read; the reason.
    Skipped(String),
}

/// A definition at work: a table's or view's rows, or a stream's records.
pub struct ViewState {
    /// The output names: a view's keys then aggregates (HAVING reads rows by them); a
    /// stream's columns.
    columns: Vec<String>,
    inner: Inner,
}

enum Inner {
    Rows {
        plan: ViewPlan,
        fold: Fold,
        table: Option<Table>,
        /// A windowed view with a retention: its time.
        clock: Option<WindowClock>,
    },
    Stream(StreamState),
}

/// The time of a view whose windows have a retention (`WITH (retention = ...)`): the latest
/// record time it folded, and the edge at or before which windows end that are gone. The edge
/// moves only at a commit (`take_commit`), to the time then less the retention, so which
/// windows a view holds after a commit depends only on the records folded up to it, not on
/// how partitions interleaved (a replay gives the same). A record adds nothing to a window
/// past the edge: such a window was deleted, and stays so.
#[derive(Debug, Clone, Copy)]
struct WindowClock {
    retention_ms: i64,
    /// The latest record time folded (`i64::MIN`: none yet).
    time_ms: i64,
    /// Windows ending at or before this are gone.
    edge_ms: i64,
    /// The earliest end of a window held (`i64::MAX`: none): no window goes before the edge
    /// reaches it, so most commits look at none.
    earliest_end_ms: i64,
}

impl WindowClock {
    fn new(retention_ms: i64) -> WindowClock {
        WindowClock {
            retention_ms,
            time_ms: i64::MIN,
            edge_ms: i64::MIN,
            earliest_end_ms: i64::MAX,
        }
    }

    /// Sets the time (from a checkpoint) and the edge the commit that wrote it moved to.
    fn restore_time(&mut self, time_ms: i64) {
        self.time_ms = time_ms;
        self.edge_ms = time_ms.saturating_sub(self.retention_ms);
    }

    /// Moves the edge to the time less the retention and takes the windows it passed out of
    /// `fold` (each a deletion to publish).
    fn evict(&mut self, fold: &mut Fold) {
        let edge = self.time_ms.saturating_sub(self.retention_ms);
        if edge <= self.edge_ms {
            return;
        }
        self.edge_ms = edge;
        if self.earliest_end_ms > edge {
            return;
        }
        let mut earliest = i64::MAX;
        fold.retain_groups(|key| {
            let end = window_end(key);
            if end > edge {
                earliest = earliest.min(end);
            }
            end > edge
        });
        self.earliest_end_ms = earliest;
    }
}

/// The end of the window a windowed view's group key names (its last column).
fn window_end(key: &[Value]) -> i64 {
    match key.last() {
        Some(Value::Int(end)) => *end,
        other => {
            unreachable!("a windowed view's group key ends with its window's end, not {other:?}")
        }
    }
}

/// What one commit publishes and checkpoints.
#[derive(Debug, Default)]
pub struct Commit {
    /// A table's or view's changed rows.
    pub changes: Vec<RowChange>,
    /// A stream's records.
    pub records: Vec<OutRecord>,
    pub delta: CheckpointDelta,
}

impl ViewState {
    pub fn new(plan: Plan, source: SourceKind) -> ViewState {
        let plan = match plan {
            Plan::Stream(plan) => {
                let stream = StreamState::new(plan);
                return ViewState {
                    columns: stream.columns(),
                    inner: Inner::Stream(stream),
                };
            }
            Plan::View(plan) => plan,
        };
        let aggregates = plan.aggregates.iter().map(|(_, a, _)| *a).collect();
        let keys = plan.keys.iter().map(|(n, _)| n.clone());
        let window = plan.window.map_or(&[][..], |_| &WINDOW_COLUMNS[..]);
        let columns = keys
            .chain(window.iter().map(|c| c.to_string()))
            .chain(plan.aggregates.iter().map(|(n, _, _)| n.clone()))
            .collect();
        let clock = plan
            .window
            .and_then(|w| w.retention_ms)
            .map(WindowClock::new);
        ViewState {
            columns,
            inner: Inner::Rows {
                clock,
                plan,
                // A table's updates retract the rows they replace; a stream's rows stay.
                fold: match source {
                    SourceKind::Table => Fold::new(aggregates),
                    SourceKind::Stream => Fold::append_only(aggregates),
                },
                table: (source == SourceKind::Table).then(Table::default),
            },
        }
    }

    /// The view's column names: its keys, then its aggregates (a stream's: what it writes).
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// How many of the columns are group keys (a window's two included; a stream's none).
    pub fn key_len(&self) -> usize {
        match &self.inner {
            Inner::Rows { plan, .. } => self.columns.len() - plan.aggregates.len(),
            Inner::Stream(_) => 0,
        }
    }

    /// True for a stream that keeps no state (a pipeline): a restart goes on from the
    /// committed offsets with nothing to fold again.
    pub fn is_stateless(&self) -> bool {
        matches!(&self.inner, Inner::Stream(stream) if !stream.is_stateful())
    }

    /// Folds one source record. An error is a value the view cannot take (SUM of text, a
    /// comparison across kinds): the record changed nothing.
    pub fn apply(&mut self, record: &SourceRecord<'_>) -> Result<Applied, ValueError> {
        match &mut self.inner {
            Inner::Rows {
                plan,
                fold,
                table,
                clock,
            } => apply_rows(plan, fold, table.as_mut(), clock.as_mut(), record),
            Inner::Stream(stream) => stream.apply(record),
        }
    }

    /// The visible rows (those HAVING keeps), keys then aggregates, in key order.
    pub fn rows(&self) -> Result<Vec<Vec<Value>>, ValueError> {
        self.rows_from(Bound::Unbounded).collect()
    }

    /// The visible rows from `from` on, in key order, computed as they are read (a stream
    /// has none).
    pub fn rows_from<'a>(
        &'a self,
        from: Bound<&'a [Value]>,
    ) -> impl Iterator<Item = Result<Vec<Value>, ValueError>> + 'a {
        let rows = match &self.inner {
            Inner::Rows { fold, .. } => Some(fold.rows_from(from)),
            Inner::Stream(_) => None,
        };
        rows.into_iter().flatten().filter_map(|row| {
            let (key, values) = match row {
                Ok(row) => row,
                Err(e) => return Some(Err(e)),
            };
            let row: Vec<Value> = key.into_iter().chain(values).collect();
            match self.visible(&row) {
                Ok(true) => Some(Ok(row)),
                Ok(false) => None,
                Err(e) => Some(Err(e)),
            }
        })
    }

    /// The visible row of group `key`, if any.
    pub fn row(&self, key: &[Value]) -> Result<Option<Vec<Value>>, ValueError> {
        let Inner::Rows { fold, .. } = &self.inner else {
            return Ok(None);
        };
        let Some(values) = fold.row(key)? else {
            return Ok(None);
        };
        let row: Vec<Value> = key.iter().cloned().chain(values).collect();
        Ok(self.visible(&row)?.then_some(row))
    }

    fn visible(&self, row: &[Value]) -> Result<bool, ValueError> {
        match &self.inner {
            Inner::Rows {
                plan:
                    ViewPlan {
                        having: Some(having),
                        ..
                    },
                ..
            } => having.holds(&|name: &str| named(&self.columns, row, name)),
            _ => Ok(true),
        }
    }

    /// The changes since the last call, as rows to publish: a group HAVING hides is a deletion.
    pub fn take_changes(&mut self) -> Result<Vec<RowChange>, ValueError> {
        let Inner::Rows { fold, .. } = &mut self.inner else {
            return Ok(Vec::new());
        };
        let changes = fold.take_changes()?;
        let mut out = Vec::with_capacity(changes.len());
        for change in changes {
            out.push(match change {
                RowChange::Upsert { key, values } => {
                    let row: Vec<Value> = key.iter().cloned().chain(values.clone()).collect();
                    if self.visible(&row)? {
                        RowChange::Upsert { key, values }
                    } else {
                        RowChange::Delete { key }
                    }
                }
                delete => delete,
            });
        }
        Ok(out)
    }

    /// Groups holding rows (HAVING may hide some); a rule's records in its windows.
    pub fn len(&self) -> usize {
        match &self.inner {
            Inner::Rows { fold, .. } => fold.len(),
            Inner::Stream(stream) => stream.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True when a commit is due before more is folded: `VIEW_DIRTY_KEYS_MAX` groups changed,
    /// or a stream holds that many records or `VIEW_PENDING_BYTES_MAX` bytes unwritten.
    pub fn commit_due(&self) -> bool {
        match &self.inner {
            Inner::Rows { fold, .. } => fold.changed_len() >= VIEW_DIRTY_KEYS_MAX,
            Inner::Stream(stream) => {
                stream.pending_len() >= VIEW_DIRTY_KEYS_MAX
                    || stream.pending_bytes() >= VIEW_PENDING_BYTES_MAX
            }
        }
    }

    /// Drops what a stream would write (a silent replay's records are already in its topic).
    pub fn discard_output(&mut self) {
        if let Inner::Stream(stream) = &mut self.inner {
            stream.take_records();
        }
    }

    /// What one commit publishes (the changed rows, or a stream's records) and checkpoints
    /// (the changed groups' and table rows' bytes), taken together so that nothing changes
    /// between the two.
    pub fn take_commit(&mut self) -> Result<Commit, ValueError> {
        let (groups, rows, records) = match &mut self.inner {
            Inner::Rows {
                fold, table, clock, ..
            } => {
                if let Some(clock) = clock.as_mut() {
                    clock.evict(fold);
                }
                let mut groups: Vec<_> = fold
                    .changed_keys()
                    .map(|key| (key.clone(), fold.export_group(key)))
                    .collect();
                if let Some(clock) = clock {
                    // Under the empty key, which no windowed view's group has.
                    groups.push((Vec::new(), Some(clock.time_ms.to_be_bytes().to_vec())));
                }
                let rows = table
                    .as_mut()
                    .map(Table::take_changed_rows)
                    .unwrap_or_default();
                (groups, rows, Vec::new())
            }
            Inner::Stream(stream) => (
                stream.take_changed_groups(),
                Vec::new(),
                stream.take_records(),
            ),
        };
        let changes = self.take_changes()?;
        Ok(Commit {
            changes,
            records,
            delta: CheckpointDelta { groups, rows },
        })
    }

    /// Loads `view`'s checkpoint into this (new) state; returns the positions it reflects,
    /// where reading goes on.
    pub fn restore(
        &mut self,
        checkpoint: &Checkpoint,
        view: &str,
    ) -> Result<Positions, StateError> {
        match &mut self.inner {
            Inner::Rows {
                fold,
                table,
                clock: Some(clock),
                ..
            } => checkpoint.restore_with(
                view,
                &mut |key, bytes| {
                    if key.is_empty() {
                        let time: [u8; 8] = bytes.try_into().map_err(|_| {
                            CheckpointMismatch("a view's time is not 8 bytes".into())
                        })?;
                        clock.restore_time(i64::from_be_bytes(time));
                        return Ok(());
                    }
                    clock.earliest_end_ms = clock.earliest_end_ms.min(window_end(&key));
                    fold.import_group(key, bytes)
                },
                &mut |key, bytes| match table.as_mut() {
                    Some(table) => table.import_row(key, bytes),
                    None => Ok(()),
                },
            ),
            Inner::Rows { fold, table, .. } => checkpoint.restore(view, fold, table.as_mut()),
            Inner::Stream(stream) => checkpoint.restore_with(
                view,
                &mut |key, bytes| stream.import_group(key, bytes),
                &mut |_, _| Ok(()),
            ),
        }
    }
}

/// Folds one source record into a table's or view's rows (the module doc).
fn apply_rows(
    plan: &ViewPlan,
    fold: &mut Fold,
    table: Option<&mut Table>,
    clock: Option<&mut WindowClock>,
    record: &SourceRecord<'_>,
) -> Result<Applied, ValueError> {
    let at = Position {
        timestamp: record.timestamp,
        partition: record.partition,
        offset: record.offset,
    };
    let record_key = record.key.unwrap_or_default().to_vec();
    let Some(value) = record.value else {
        return Ok(match table {
            Some(table) => {
                table.delete(fold, &record_key)?;
                Applied::Filtered
            }
            None => Applied::Skipped("a null value in a stream".into()),
        });
    };
    let fields = match serde_json::from_slice::<serde_json::Value>(value) {
        Ok(serde_json::Value::Object(fields)) => fields,
        Ok(_) => {
            return Ok(Applied::Skipped(
                "the value is JSON but not an object".into(),
            ));
        }
        Err(e) => return Ok(Applied::Skipped(format!("the value is not JSON: {e}"))),
    };
    let column = |name: &str| column_of(name, record, &fields);
    let passes = match &plan.filter {
        None => true,
        Some(filter) => filter.holds(&column)?,
    };
    if !passes {
        if let Some(table) = table {
            table.delete(fold, &record_key)?;
        }
        return Ok(Applied::Filtered);
    }
    let group = eval_all(plan.keys.iter().map(|(_, e)| e), &column)?;
    let inputs = eval_all(plan.aggregates.iter().map(|(_, _, e)| e), &column)?;
    match (table, plan.window) {
        (Some(table), None) => table.upsert(fold, record_key, group, inputs, at)?,
        (None, None) => fold.add(group, &inputs, at)?,
        (None, Some(window)) => return fold_windows(fold, clock, window, group, &inputs, at),
        (Some(_), Some(_)) => {
            return Ok(Applied::Skipped("windows over a table are not kept".into()));
        }
    }
    Ok(Applied::Folded)
}

/// Adds a record at `at` to each of its windows of group `group` (those past a retention's
/// edge are gone: the record skips them).
fn fold_windows(
    fold: &mut Fold,
    mut clock: Option<&mut WindowClock>,
    window: Window,
    group: Vec<Value>,
    inputs: &[Value],
    at: Position,
) -> Result<Applied, ValueError> {
    let mut folded = false;
    for start in window.starts(at.timestamp) {
        let end = start.saturating_add(window.size_ms);
        if let Some(clock) = clock.as_deref_mut() {
            if end <= clock.edge_ms {
                continue;
            }
            clock.earliest_end_ms = clock.earliest_end_ms.min(end);
        }
        let mut key = group.clone();
        key.push(Value::Int(start));
        key.push(Value::Int(end));
        fold.add(key, inputs, at)?;
        folded = true;
    }
    if let Some(clock) = clock {
        clock.time_ms = clock.time_ms.max(at.timestamp);
    }
    Ok(if folded {
        Applied::Folded
    } else {
        Applied::Skipped("older than the view's retention: its windows are gone".into())
    })
}

pub(crate) fn eval_all<'e>(
    exprs: impl Iterator<Item = &'e Expr>,
    column: &dyn Fn(&str) -> Value,
) -> Result<Vec<Value>, ValueError> {
    exprs.map(|e| e.eval(column)).collect()
}

/// A record's column: metadata, or a (possibly nested) field of its JSON value. A field that is
/// missing, or a number that cannot be read exactly, is null.
pub(crate) fn column_of(
    name: &str,
    record: &SourceRecord<'_>,
    fields: &serde_json::Map<String, serde_json::Value>,
) -> Value {
    match name {
        "_key" => record.key.map_or(Value::Null, |k| {
            Value::Text(String::from_utf8_lossy(k).into_owned())
        }),
        "_ts" => Value::Int(record.timestamp),
        "_partition" => Value::Int(record.partition.into()),
        "_offset" => Value::Int(record.offset),
        "_headers" => headers_value(record.headers),
        crate::table::VALUE_COLUMN => record.value.map_or(Value::Null, |v| {
            Value::Text(String::from_utf8_lossy(v).into_owned())
        }),
        _ => {
            let mut parts = name.split('.');
            let first = parts.next().and_then(|p| fields.get(p));
            let found = parts.try_fold(first, |at, part| Some(at.and_then(|v| v.get(part))));
            found
                .flatten()
                .map_or(Value::Null, |v| Value::from_json(v).unwrap_or(Value::Null))
        }
    }
}

/// `_headers`: the record's headers as a JSON object text (a header's last value wins; values
/// that are not UTF-8 are read lossily).
fn headers_value(headers: &[RecordHeader<'_>]) -> Value {
    let object: serde_json::Map<String, serde_json::Value> = headers
        .iter()
        .map(|h| {
            let value = h.value.map_or(serde_json::Value::Null, |v| {
                serde_json::Value::String(String::from_utf8_lossy(v).into_owned())
            });
            (String::from_utf8_lossy(h.key).into_owned(), value)
        })
        .collect();
    Value::Text(serde_json::Value::Object(object).to_string())
}

pub(crate) fn named(columns: &[String], row: &[Value], name: &str) -> Value {
    columns
        .iter()
        .position(|c| c == name)
        .map_or(Value::Null, |i| row[i].clone())
}

/// Answers `query` over `rows` (a view's visible rows, with `columns` naming them): WHERE,
/// ORDER BY (keys order ties), LIMIT, then the selected columns. Returns the answer's column
/// names and rows.
pub fn answer(
    query: &Query,
    columns: &[String],
    rows: Vec<Vec<Value>>,
) -> Result<(Vec<String>, Vec<Vec<Value>>), ValueError> {
    let mut kept = Vec::with_capacity(rows.len());
    for row in rows {
        let keep = match &query.filter {
            None => true,
            Some(filter) => filter.holds(&|name: &str| named(columns, &row, name))?,
        };
        if keep {
            kept.push(row);
        }
    }
    if !query.order_by.is_empty() {
        let mut keyed = Vec::with_capacity(kept.len());
        for row in kept {
            let sort_key = eval_all(query.order_by.iter().map(|(e, _)| e), &|name: &str| {
                named(columns, &row, name)
            })?;
            keyed.push((sort_key, row));
        }
        keyed.sort_by(|(a, _), (b, _)| {
            a.iter()
                .zip(b)
                .zip(&query.order_by)
                .map(|((x, y), (_, descending))| {
                    let o = x.cmp(y);
                    if *descending { o.reverse() } else { o }
                })
                .find(|o| *o != Ordering::Equal)
                .unwrap_or(Ordering::Equal)
        });
        kept = keyed.into_iter().map(|(_, row)| row).collect();
    }
    if let Some(limit) = query.limit {
        kept.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    }
    let Some(selected) = &query.columns else {
        return Ok((columns.to_vec(), kept));
    };
    let names = selected.iter().map(|(n, _)| n.clone()).collect();
    let mut out = Vec::with_capacity(kept.len());
    for row in kept {
        out.push(eval_all(selected.iter().map(|(_, e)| e), &|name: &str| {
            named(columns, &row, name)
        })?);
    }
    Ok((names, out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::{Statement, parse};
    use crate::value::Decimal;

    fn view(sql: &str, source: SourceKind) -> ViewState {
        let Statement::CreateView { plan, .. } = parse(sql).unwrap() else {
            panic!("a view")
        };
        ViewState::new(Plan::View(plan), source)
    }

    fn record<'a>(key: &'a [u8], value: Option<&'a [u8]>, offset: i64) -> SourceRecord<'a> {
        SourceRecord {
            key: Some(key),
            value,
            timestamp: 1_700_000_000_000 + offset,
            partition: 0,
            offset,
            headers: &[],
        }
    }

    fn money(text: &str) -> Value {
        Value::Decimal(Decimal::parse(text).unwrap())
    }

    #[test]
    fn the_bank_balances_fold_and_answer_queries() {
        let mut balances = view(
            "CREATE MATERIALIZED VIEW balances AS SELECT account, SUM(amount) AS balance, \
             COUNT(*) AS payments FROM payments WHERE kind <> 'test' GROUP BY account \
             HAVING balance > 0",
            SourceKind::Stream,
        );
        let payments: [&[u8]; 6] = [
            br#"{"account":"ada","amount":100.10,"kind":"deposit"}"#,
            br#"{"account":"bob","amount":20,"kind":"deposit"}"#,
            br#"{"account":"ada","amount":-0.10,"kind":"withdrawal"}"#,
            br#"{"account":"cy","amount":5,"kind":"test"}"#,
            br#"{"account":"bob","amount":-30,"kind":"withdrawal"}"#,
            b"not json",
        ];
        let applied: Vec<Applied> = payments
            .iter()
            .enumerate()
            .map(|(i, p)| balances.apply(&record(b"", Some(p), i as i64)).unwrap())
            .collect();
        assert_eq!(applied[3], Applied::Filtered);
        assert!(matches!(applied[5], Applied::Skipped(_)));
        assert_eq!(balances.columns(), ["account", "balance", "payments"]);
        // bob's balance is -10: HAVING hides it, and it is published as a deletion.
        assert_eq!(
            balances.rows().unwrap(),
            vec![vec![Value::Text("ada".into()), money("100"), Value::Int(2)]]
        );
        let changes = balances.take_changes().unwrap();
        assert!(changes.contains(&RowChange::Delete {
            key: vec![Value::Text("bob".into())]
        }));
        assert_eq!(balances.row(&[Value::Text("bob".into())]).unwrap(), None);

        let Statement::Select(q) =
            parse("SELECT account, balance * 2 AS doubled FROM balances WHERE payments >= 2 ORDER BY balance DESC LIMIT 1").unwrap()
        else {
            panic!("a query")
        };
        let (names, rows) = answer(&q, balances.columns(), balances.rows().unwrap()).unwrap();
        assert_eq!(names, ["account", "doubled"]);
        assert_eq!(rows, vec![vec![Value::Text("ada".into()), money("200")]]);
    }

    #[test]
    fn a_view_restored_from_its_checkpoint_goes_on_as_before() {
        let sql = "CREATE MATERIALIZED VIEW per_ward AS SELECT ward, COUNT(*) AS patients, \
                   AVG(age) AS mean_age FROM patients GROUP BY ward";
        let mut original = view(sql, SourceKind::Table);
        let dir = tempfile::tempdir().unwrap();
        let checkpoint = Checkpoint::open(&dir.path().join("views.redb")).unwrap();
        let admissions: [(&[u8], &[u8]); 4] = [
            (b"p1", br#"{"ward":"a","age":30}"#),
            (b"p2", br#"{"ward":"a","age":41}"#),
            (b"p3", br#"{"ward":"b","age":70}"#),
            (b"p1", br#"{"ward":"b","age":30}"#),
        ];
        let mut positions = Positions::new();
        for (i, (key, value)) in admissions.iter().enumerate() {
            original.apply(&record(key, Some(value), i as i64)).unwrap();
            positions.insert(("patients".into(), 0), i as i64 + 1);
            let commit = original.take_commit().unwrap();
            let stamp = crate::state::Stamp {
                sql: sql.into(),
                reconciled: true,
            };
            checkpoint
                .commit("per_ward", &commit.delta, &positions, &stamp)
                .unwrap();
        }
        let mut restored = view(sql, SourceKind::Table);
        assert_eq!(
            restored.restore(&checkpoint, "per_ward").unwrap(),
            positions
        );
        assert_eq!(restored.rows().unwrap(), original.rows().unwrap());
        for state in [&mut original, &mut restored] {
            state.apply(&record(b"p3", None, 9)).unwrap();
            state
                .apply(&record(b"p2", Some(br#"{"ward":"b","age":42}"#), 10))
                .unwrap();
        }
        assert_eq!(restored.rows().unwrap(), original.rows().unwrap());
        assert_eq!(
            restored.rows().unwrap(),
            vec![vec![Value::Text("b".into()), Value::Int(2), Value::Int(36)]]
        );
    }

    #[test]
    fn a_table_replaces_rows_and_tombstones_delete() {
        let mut per_ward = view(
            "CREATE MATERIALIZED VIEW per_ward AS SELECT ward, COUNT(*) AS patients, \
             MAX(vitals.heart_rate) AS top FROM patients WHERE active GROUP BY ward",
            SourceKind::Table,
        );
        let apply = |v: &mut ViewState,
                     key: &'static [u8],
                     value: Option<&'static [u8]>,
                     offset| { v.apply(&record(key, value, offset)).unwrap() };
        apply(
            &mut per_ward,
            b"p1",
            Some(br#"{"ward":"a","active":true,"vitals":{"heart_rate":80}}"#),
            0,
        );
        apply(
            &mut per_ward,
            b"p2",
            Some(br#"{"ward":"a","active":true,"vitals":{"heart_rate":95}}"#),
            1,
        );
        apply(
            &mut per_ward,
            b"p1",
            Some(br#"{"ward":"b","active":true,"vitals":{"heart_rate":70}}"#),
            2,
        );
        assert_eq!(
            per_ward.rows().unwrap(),
            vec![
                vec![Value::Text("a".into()), Value::Int(1), Value::Int(95)],
                vec![Value::Text("b".into()), Value::Int(1), Value::Int(70)],
            ]
        );
        // Discharged (fails WHERE) and deleted (a tombstone): both leave the view.
        assert_eq!(
            apply(
                &mut per_ward,
                b"p2",
                Some(br#"{"ward":"a","active":false}"#),
                3
            ),
            Applied::Filtered
        );
        apply(&mut per_ward, b"p1", None, 4);
        assert!(per_ward.rows().unwrap().is_empty());
    }
}
