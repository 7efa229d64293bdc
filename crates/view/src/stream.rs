//! Streams at work: `CREATE STREAM` pipelines and sliding-window rules, source records in,
//! records for the stream's topic out.
//!
//! - A pipeline writes each record that passes WHERE: with `SELECT *` its value and headers
//!   as they are, else a JSON object of the selected columns. Its key is the `PARTITION BY`
//!   value (then it goes to the partition Kafka's default partitioner picks for that key), else
//!   the source record's key, in the source record's partition. It keeps no state.
//! - A rule keeps, per group, the records of its window: those of the last `SIZE` before the
//!   group's newest record (both ends inclusive, as Kafka Streams' sliding windows). Each
//!   record that passes WHERE joins its group's window, older ones leave it, and HAVING is
//!   read over the window's aggregates: when it turns true (it was false, or the group new)
//!   one alert is written; while it stays true nothing more; once false it may fire again.
//!
//! An alert's key is its id, `topic:partition:offset` of the record that raised it: the same
//! record always raises the same alert, so a replay cannot make a second one, and a reader can
//! tell duplicates by id. Its value is a JSON object: `alert_id`, the group keys,
//! `window_start` and `window_end` (epoch ms), and the aggregates.
//!
//! Time is each source partition's own: its newest timestamp so far. A record older than its
//! partition's time minus `SIZE` is late and skipped (counted, not alerted), and a group whose
//! newest record is more than twice `SIZE` behind its partition's time is forgotten, since no
//! record that is not late can share a window with it. So a rule's alerts depend only on the
//! order of records within each partition, which a replay keeps: they are exactly the same when
//! each group's records are in one partition (the group keys are, or follow, the record key).
//!
//! Owns: what a stream writes and a rule's windows. Not: sending (the engine), the checkpoint's
//! file (`state`).

use crate::fold::{CheckpointMismatch, Fold, Position};
use crate::output::{row_json, value_json};
use crate::runtime::{Applied, SourceRecord, column_of, eval_all, named};
use crate::sql::{Pipeline, SlidingRule, StreamPlan};
use crate::value::{Value, ValueError};
use std::collections::{BTreeMap, BTreeSet};

/// The first column of an alert.
pub const ALERT_ID_COLUMN: &str = "alert_id";

/// One record for the stream's topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutRecord {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    pub timestamp: i64,
    /// The source record's partition: where it goes (modulo the topic's partitions) unless
    /// `by_key`.
    pub source_partition: i32,
    /// Goes to the partition Kafka's default partitioner picks for its key (a keyless one to
    /// the source record's partition).
    pub by_key: bool,
}

pub struct StreamState {
    topic: String,
    kind: StreamKind,
    pending: Vec<OutRecord>,
    pending_bytes: usize,
}

enum StreamKind {
    Pipeline(Pipeline),
    Rule(Box<Rule>),
}

impl StreamState {
    pub fn new(plan: StreamPlan) -> StreamState {
        let topic = plan.source().to_string();
        let kind = match plan {
            StreamPlan::Pipeline(pipeline) => StreamKind::Pipeline(pipeline),
            StreamPlan::Rule(rule) => StreamKind::Rule(Box::new(Rule::new(rule))),
        };
        StreamState {
            topic,
            kind,
            pending: Vec::new(),
            pending_bytes: 0,
        }
    }

    /// The columns of what it writes (a `SELECT *` pipeline's: none it knows).
    pub fn columns(&self) -> Vec<String> {
        match &self.kind {
            StreamKind::Pipeline(p) => p
                .columns
                .iter()
                .flatten()
                .map(|(name, _)| name.clone())
                .collect(),
            StreamKind::Rule(rule) => rule.alert_columns.clone(),
        }
    }

    /// True for a rule, whose windows are state a restart must restore or rebuild.
    pub fn is_stateful(&self) -> bool {
        matches!(self.kind, StreamKind::Rule(_))
    }

    pub fn apply(&mut self, record: &SourceRecord<'_>) -> Result<Applied, ValueError> {
        let out = match &mut self.kind {
            StreamKind::Pipeline(pipeline) => pipe(pipeline, record)?,
            StreamKind::Rule(rule) => rule.apply(&self.topic, record)?,
        };
        let (applied, record) = match out {
            Ok(Some(record)) => (Applied::Folded, record),
            Ok(None) => return Ok(Applied::Filtered),
            Err(reason) => return Ok(Applied::Skipped(reason)),
        };
        self.pending_bytes += record.key.as_ref().map_or(0, Vec::len)
            + record.value.as_ref().map_or(0, Vec::len)
            + record
                .headers
                .iter()
                .map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len))
                .sum::<usize>();
        self.pending.push(record);
        Ok(applied)
    }

    /// Records written since the last `take_records` (a commit is due before this grows past
    /// the dirty limit).
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Bytes of the records written since the last `take_records`.
    pub fn pending_bytes(&self) -> usize {
        self.pending_bytes
    }

    /// The records written since the last call.
    pub fn take_records(&mut self) -> Vec<OutRecord> {
        self.pending_bytes = 0;
        std::mem::take(&mut self.pending)
    }

    /// A rule's groups whose windows changed since the last call, with their bytes for the
    /// checkpoint (`None`: forgotten); the partitions' times under the empty key.
    pub fn take_changed_groups(&mut self) -> Vec<(Vec<Value>, Option<Vec<u8>>)> {
        match &mut self.kind {
            StreamKind::Pipeline(_) => Vec::new(),
            StreamKind::Rule(rule) => rule.take_changed(),
        }
    }

    /// Restores one checkpoint entry `take_changed_groups` wrote.
    pub fn import_group(
        &mut self,
        key: Vec<Value>,
        bytes: &[u8],
    ) -> Result<(), CheckpointMismatch> {
        match &mut self.kind {
            StreamKind::Pipeline(_) => {
                Err(CheckpointMismatch("a pipeline keeps no groups".to_string()))
            }
            StreamKind::Rule(rule) => rule.import(key, bytes),
        }
    }

    /// Records in a rule's windows (what its memory grows with).
    pub fn len(&self) -> usize {
        match &self.kind {
            StreamKind::Pipeline(_) => 0,
            StreamKind::Rule(rule) => rule.entries,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What a record becomes: `Ok(None)` filtered, `Err(reason)` skipped.
type Outcome = Result<Option<OutRecord>, String>;

/// The JSON object of a record's value, or why there is none.
fn fields_of(
    record: &SourceRecord<'_>,
) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    let Some(value) = record.value else {
        return Err("a null value in a stream".into());
    };
    match serde_json::from_slice::<serde_json::Value>(value) {
        Ok(serde_json::Value::Object(fields)) => Ok(fields),
        Ok(_) => Err("the value is JSON but not an object".into()),
        Err(e) => Err(format!("the value is not JSON: {e}")),
    }
}

fn pipe(pipeline: &Pipeline, record: &SourceRecord<'_>) -> Result<Outcome, ValueError> {
    let copy =
        pipeline.columns.is_none() && pipeline.filter.is_none() && pipeline.partition_by.is_none();
    let headers = record
        .headers
        .iter()
        .map(|h| (h.key.to_vec(), h.value.map(<[u8]>::to_vec)))
        .collect();
    if copy {
        // Nothing to read in the value: it goes on as it is, even when not JSON.
        return Ok(Ok(Some(OutRecord {
            key: record.key.map(<[u8]>::to_vec),
            value: record.value.map(<[u8]>::to_vec),
            headers,
            timestamp: record.timestamp,
            source_partition: record.partition,
            by_key: false,
        })));
    }
    let fields = match fields_of(record) {
        Ok(fields) => fields,
        Err(reason) => return Ok(Err(reason)),
    };
    let column = |name: &str| column_of(name, record, &fields);
    if let Some(filter) = &pipeline.filter
        && !filter.holds(&column)?
    {
        return Ok(Ok(None));
    }
    let (value, headers) = match &pipeline.columns {
        None => (record.value.map(<[u8]>::to_vec), headers),
        Some(columns) => {
            let names: Vec<String> = columns.iter().map(|(n, _)| n.clone()).collect();
            let row = columns
                .iter()
                .map(|(_, e)| e.eval(&column))
                .collect::<Result<Vec<_>, _>>()?;
            (Some(row_json(&names, &row).into_bytes()), Vec::new())
        }
    };
    let (key, by_key) = match &pipeline.partition_by {
        None => (record.key.map(<[u8]>::to_vec), false),
        Some(by) => (key_bytes(&by.eval(&column)?), true),
    };
    Ok(Ok(Some(OutRecord {
        key,
        value,
        headers,
        timestamp: record.timestamp,
        source_partition: record.partition,
        by_key,
    })))
}

/// A `PARTITION BY` value as a record key: text as it is, null as no key, others as JSON.
fn key_bytes(value: &Value) -> Option<Vec<u8>> {
    match value {
        Value::Null => None,
        Value::Text(text) => Some(text.as_bytes().to_vec()),
        other => Some(value_json(other).into_bytes()),
    }
}

/// A sliding-window rule's state.
struct Rule {
    plan: SlidingRule,
    /// The group keys' output names, then the aggregates' (HAVING reads the row by them).
    row_columns: Vec<String>,
    /// An alert's columns: `alert_id`, the keys, `window_start`, `window_end`, the aggregates.
    alert_columns: Vec<String>,
    /// Every group's aggregates over its window (retractable: records leave windows).
    fold: Fold,
    windows: BTreeMap<Vec<Value>, GroupWindow>,
    /// Each source partition's time: its newest timestamp so far.
    partition_times: BTreeMap<i32, i64>,
    /// Groups by partition and newest timestamp, oldest first (to forget them).
    by_age: BTreeMap<i32, BTreeSet<(i64, Vec<Value>)>>,
    changed: BTreeSet<Vec<Value>>,
    times_changed: bool,
    /// Records in every window.
    entries: usize,
}

/// One group's window: its records by time and position, with their aggregate inputs.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct GroupWindow {
    newest: i64,
    /// The partition of the newest record (whose time forgets the group).
    partition: i32,
    /// HAVING held after the group's last record.
    firing: bool,
    entries: BTreeMap<(i64, i32, i64), Vec<Value>>,
}

impl Rule {
    fn new(plan: SlidingRule) -> Rule {
        let keys: Vec<String> = plan.plan.keys.iter().map(|(n, _)| n.clone()).collect();
        let aggregates: Vec<String> = plan
            .plan
            .aggregates
            .iter()
            .map(|(n, _, _)| n.clone())
            .collect();
        let alert_columns = std::iter::once(ALERT_ID_COLUMN.to_string())
            .chain(keys.iter().cloned())
            .chain(["window_start".to_string(), "window_end".to_string()])
            .chain(aggregates.iter().cloned())
            .collect();
        let functions = plan.plan.aggregates.iter().map(|(_, a, _)| *a).collect();
        Rule {
            row_columns: keys.into_iter().chain(aggregates).collect(),
            alert_columns,
            fold: Fold::new(functions),
            plan,
            windows: BTreeMap::new(),
            partition_times: BTreeMap::new(),
            by_age: BTreeMap::new(),
            changed: BTreeSet::new(),
            times_changed: false,
            entries: 0,
        }
    }

    fn apply(&mut self, topic: &str, record: &SourceRecord<'_>) -> Result<Outcome, ValueError> {
        let fields = match fields_of(record) {
            Ok(fields) => fields,
            Err(reason) => return Ok(Err(reason)),
        };
        let size = self.plan.size_ms;
        let time = self
            .partition_times
            .get(&record.partition)
            .copied()
            .unwrap_or(i64::MIN);
        if record.timestamp < time.saturating_sub(size) {
            return Ok(Err(format!(
                "late: {} ms older than its partition's newest record, past the window's {size} ms",
                time - record.timestamp
            )));
        }
        let column = |name: &str| column_of(name, record, &fields);
        if let Some(filter) = &self.plan.plan.filter
            && !filter.holds(&column)?
        {
            self.advance(record);
            return Ok(Ok(None));
        }
        let plan = &self.plan.plan;
        let key = eval_all(plan.keys.iter().map(|(_, e)| e), &column)?;
        let inputs = eval_all(plan.aggregates.iter().map(|(_, _, e)| e), &column)?;
        let keys = plan.keys.len();
        let at = Position {
            timestamp: record.timestamp,
            partition: record.partition,
            offset: record.offset,
        };
        self.fold.add(key.clone(), &inputs, at)?;
        self.advance(record);
        let window = self.windows.entry(key.clone()).or_insert(GroupWindow {
            newest: i64::MIN,
            ..GroupWindow::default()
        });
        let aged = (window.partition, window.newest);
        window
            .entries
            .insert((at.timestamp, at.partition, at.offset), inputs);
        self.entries += 1;
        if at.timestamp >= window.newest {
            window.newest = at.timestamp;
            window.partition = at.partition;
        }
        let cutoff = window.newest.saturating_sub(size);
        if aged.1 < cutoff {
            // The window moved past every record it held: the group starts afresh, as it
            // would had it been forgotten.
            window.firing = false;
        }
        while let Some(entry) = window.entries.first_entry() {
            if entry.key().0 >= cutoff {
                break;
            }
            let ((timestamp, partition, offset), inputs) = entry.remove_entry();
            self.entries -= 1;
            let at = Position {
                timestamp,
                partition,
                offset,
            };
            self.fold.retract(key.clone(), &inputs, at)?;
        }
        let newest = (window.partition, window.newest);
        let was_firing = window.firing;
        let row: Vec<Value> = match self.fold.row(&key)? {
            Some(values) => key.iter().cloned().chain(values).collect(),
            None => unreachable!("a window holds its newest record"),
        };
        let columns = &self.row_columns;
        let holds = match &self.plan.plan.having {
            Some(having) => having.holds(&|name: &str| named(columns, &row, name))?,
            None => false,
        };
        window.firing = holds;
        if aged != newest {
            if let Some(set) = self.by_age.get_mut(&aged.0) {
                set.remove(&(aged.1, key.clone()));
            }
            self.by_age
                .entry(newest.0)
                .or_default()
                .insert((newest.1, key.clone()));
        }
        self.changed.insert(key.clone());
        self.forget_old(record.partition);
        if !holds || was_firing {
            return Ok(Ok(None));
        }
        let alert_id = format!("{topic}:{}:{}", record.partition, record.offset);
        let alert: Vec<Value> = std::iter::once(Value::Text(alert_id.clone()))
            .chain(row[..keys].iter().cloned())
            .chain([Value::Int(cutoff), Value::Int(newest.1)])
            .chain(row[keys..].iter().cloned())
            .collect();
        Ok(Ok(Some(OutRecord {
            key: Some(alert_id.into_bytes()),
            value: Some(row_json(&self.alert_columns, &alert).into_bytes()),
            headers: Vec::new(),
            timestamp: record.timestamp,
            source_partition: record.partition,
            by_key: false,
        })))
    }

    /// Moves the record's partition's time on.
    fn advance(&mut self, record: &SourceRecord<'_>) {
        let time = self
            .partition_times
            .entry(record.partition)
            .or_insert(i64::MIN);
        if record.timestamp > *time {
            *time = record.timestamp;
            self.times_changed = true;
        }
    }

    /// Forgets the groups of `partition` whose newest record is more than twice the window
    /// behind its time: a record that is not late starts a window after all of theirs.
    fn forget_old(&mut self, partition: i32) {
        let Some(time) = self.partition_times.get(&partition).copied() else {
            return;
        };
        let before = time.saturating_sub(self.plan.size_ms.saturating_mul(2));
        let Some(set) = self.by_age.get_mut(&partition) else {
            return;
        };
        while let Some((newest, _)) = set.first()
            && *newest < before
        {
            let Some((_, key)) = set.pop_first() else {
                break;
            };
            if let Some(window) = self.windows.remove(&key) {
                self.entries -= window.entries.len();
                for ((timestamp, partition, offset), inputs) in window.entries {
                    let at = Position {
                        timestamp,
                        partition,
                        offset,
                    };
                    // The inputs were added as they are: taking them back cannot fail.
                    let _ = self.fold.retract(key.clone(), &inputs, at);
                }
            }
            self.changed.insert(key);
        }
    }

    fn take_changed(&mut self) -> Vec<(Vec<Value>, Option<Vec<u8>>)> {
        let mut out: Vec<(Vec<Value>, Option<Vec<u8>>)> = std::mem::take(&mut self.changed)
            .into_iter()
            .map(|key| {
                let bytes = self
                    .windows
                    .get(&key)
                    .map(|w| postcard::to_allocvec(w).expect("a window always serializes"));
                (key, bytes)
            })
            .collect();
        if std::mem::take(&mut self.times_changed) {
            let times = postcard::to_allocvec(&self.partition_times)
                .expect("partition times always serialize");
            out.push((Vec::new(), Some(times)));
        }
        // The fold's own record of changes is not used: windows are the checkpoint.
        self.fold.clear_changes();
        out
    }

    fn import(&mut self, key: Vec<Value>, bytes: &[u8]) -> Result<(), CheckpointMismatch> {
        let mismatch = |e: postcard::Error| CheckpointMismatch(e.to_string());
        if key.is_empty() {
            self.partition_times = postcard::from_bytes(bytes).map_err(mismatch)?;
            return Ok(());
        }
        let window: GroupWindow = postcard::from_bytes(bytes).map_err(mismatch)?;
        let aggregates = self.plan.plan.aggregates.len();
        if window.entries.is_empty() || window.entries.values().any(|i| i.len() != aggregates) {
            return Err(CheckpointMismatch(format!(
                "a window of another rule (inputs for {aggregates} aggregates expected)"
            )));
        }
        for ((timestamp, partition, offset), inputs) in &window.entries {
            let at = Position {
                timestamp: *timestamp,
                partition: *partition,
                offset: *offset,
            };
            self.fold
                .add(key.clone(), inputs, at)
                .map_err(|e| CheckpointMismatch(e.to_string()))?;
        }
        self.fold.clear_changes();
        self.entries += window.entries.len();
        self.by_age
            .entry(window.partition)
            .or_default()
            .insert((window.newest, key.clone()));
        self.windows.insert(key, window);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::{Statement, parse};
    use sluice_record::RecordHeader;

    fn stream(sql: &str) -> StreamState {
        let Statement::CreateStream { plan, .. } = parse(sql).unwrap() else {
            panic!("a stream")
        };
        StreamState::new(plan)
    }

    fn record<'a>(
        key: Option<&'a [u8]>,
        value: &'a [u8],
        headers: &'a [RecordHeader<'a>],
        partition: i32,
        offset: i64,
    ) -> SourceRecord<'a> {
        SourceRecord {
            key,
            value: Some(value),
            timestamp: 1_000 + offset,
            partition,
            offset,
            headers,
        }
    }

    #[test]
    fn a_pipeline_filters_projects_and_rekeys() {
        let mut alerts = stream(
            "CREATE STREAM hot AS SELECT device, temperature * 2 AS doubled, _partition AS p \
             FROM readings WHERE temperature > 30 PARTITION BY site",
        );
        assert_eq!(alerts.columns(), ["device", "doubled", "p"]);
        let cold = record(
            Some(b"d1"),
            br#"{"device":"d1","site":"x","temperature":20}"#,
            &[],
            1,
            0,
        );
        let hot = record(
            Some(b"d1"),
            br#"{"device":"d1","site":"x","temperature":30.5}"#,
            &[],
            1,
            1,
        );
        let not_json = record(Some(b"d1"), b"garbage", &[], 1, 2);
        assert_eq!(alerts.apply(&cold).unwrap(), Applied::Filtered);
        assert_eq!(alerts.apply(&hot).unwrap(), Applied::Folded);
        assert!(matches!(
            alerts.apply(&not_json).unwrap(),
            Applied::Skipped(_)
        ));
        let written = alerts.take_records();
        assert_eq!(
            written,
            vec![OutRecord {
                key: Some(b"x".to_vec()),
                value: Some(br#"{"device":"d1","doubled":61,"p":1}"#.to_vec()),
                headers: Vec::new(),
                timestamp: 1_001,
                source_partition: 1,
                by_key: true,
            }]
        );
        assert_eq!(alerts.pending_len(), 0);
    }

    #[test]
    fn select_star_keeps_the_value_key_and_headers() {
        let mut copy = stream("CREATE STREAM copy AS SELECT * FROM raw");
        let headers = [RecordHeader {
            key: b"trace",
            value: Some(b"t1"),
        }];
        let raw = record(Some(b"k"), b"not even json", &headers, 2, 7);
        assert_eq!(copy.apply(&raw).unwrap(), Applied::Folded);
        let mut big = stream("CREATE STREAM big AS SELECT * FROM raw WHERE n > 1");
        let one = record(None, br#"{"n":1}"#, &headers, 0, 8);
        let two = record(None, br#"{"n": 2}"#, &headers, 0, 9);
        assert_eq!(big.apply(&one).unwrap(), Applied::Filtered);
        assert_eq!(big.apply(&two).unwrap(), Applied::Folded);
        for (state, value, key) in [
            (&mut copy, &b"not even json"[..], Some(b"k".to_vec())),
            (&mut big, &br#"{"n": 2}"#[..], None),
        ] {
            let written = state.take_records();
            assert_eq!(written.len(), 1);
            assert_eq!(written[0].value.as_deref(), Some(value));
            assert_eq!(written[0].key, key);
            assert_eq!(
                written[0].headers,
                vec![(b"trace".to_vec(), Some(b"t1".to_vec()))]
            );
            assert!(!written[0].by_key);
        }
    }

    /// A record of key `ada` in partition 0.
    fn of_ada(offset: i64, timestamp: i64, value: &[u8]) -> SourceRecord<'_> {
        SourceRecord {
            key: Some(b"ada"),
            value: Some(value),
            timestamp,
            partition: 0,
            offset,
            headers: &[],
        }
    }

    #[test]
    fn a_rule_alerts_once_when_its_condition_turns_true_and_restores() {
        let sql = "CREATE STREAM fraud AS SELECT account, COUNT(*) AS n, SUM(amount) AS total \
                   FROM payments WINDOW SLIDING (SIZE 60 SECONDS) WHERE amount > 0 \
                   GROUP BY account HAVING COUNT(*) >= 3";
        let mut rule = stream(sql);
        assert_eq!(
            rule.columns(),
            [
                "alert_id",
                "account",
                "window_start",
                "window_end",
                "n",
                "total"
            ]
        );
        let at = |offset: i64, seconds: i64, amount: i64| {
            let value = format!(r#"{{"account":"ada","amount":{amount}}}"#).into_bytes();
            (offset, seconds * 1000, value)
        };
        // (offset, timestamp ms, value): three within a minute fire once; a fourth does not;
        // after a quiet two minutes three more fire again.
        let events = [
            at(0, 0, 10),
            at(1, 10, 10),
            at(2, 20, -5),
            at(3, 30, 10),
            at(4, 40, 10),
            at(5, 200, 10),
            at(6, 210, 10),
            at(7, 220, 10),
        ];
        let mut alerts = Vec::new();
        for (offset, ts, value) in &events {
            let r = of_ada(*offset, *ts, value);
            rule.apply(&r).unwrap();
            alerts.extend(rule.take_records());
        }
        let ids: Vec<&[u8]> = alerts.iter().map(|a| a.key.as_deref().unwrap()).collect();
        assert_eq!(ids, [&b"payments:0:3"[..], &b"payments:0:7"[..]]);
        assert_eq!(
            alerts[0].value.as_deref(),
            Some(
                &br#"{"alert_id":"payments:0:3","account":"ada","window_start":-30000,"window_end":30000,"n":3,"total":30}"#[..]
            )
        );

        // Restored from its checkpoint entries, a rule goes on as the original.
        let mut restored = stream(sql);
        let mut original = stream(sql);
        for (offset, ts, value) in &events[..4] {
            let r = of_ada(*offset, *ts, value);
            original.apply(&r).unwrap();
        }
        for (key, bytes) in original.take_changed_groups() {
            restored.import_group(key, &bytes.unwrap()).unwrap();
        }
        original.take_records();
        for (offset, ts, value) in &events[4..] {
            let r = of_ada(*offset, *ts, value);
            original.apply(&r).unwrap();
            restored.apply(&r).unwrap();
        }
        assert_eq!(restored.take_records(), original.take_records());
        assert_eq!(restored.len(), original.len());
        // Late: older than the partition's newest (220 s) by more than the window.
        let late = of_ada(8, 100_000, br#"{"account":"ada","amount":1}"#);
        assert!(
            matches!(restored.apply(&late).unwrap(), Applied::Skipped(r) if r.starts_with("late"))
        );
    }
}
