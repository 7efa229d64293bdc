//! Incremental maintenance of a grouped view: `SELECT keys, aggregates ... GROUP BY keys`.
//!
//! Each source record adds its inputs to its group's accumulators; over a table, an update
//! retracts the old row and adds the new one, and a tombstone retracts (`Table`). Every
//! aggregate can retract: COUNT and SUM subtract, AVG keeps a sum and a count, MIN and MAX keep
//! a counted multiset of the values, LATEST keeps the values by source position. A group whose
//! row count falls to zero is deleted. The groups changed since the last `take_changes` are
//! what a commit publishes.
//!
//! Owns: accumulators, groups and the changed set. Not: evaluating expressions (the caller
//! hands each record's group key and aggregate inputs), nor where changes go.

use crate::value::{Decimal, Value, ValueError};
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

/// An aggregate function of a view's SELECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregate {
    /// `COUNT(*)`: rows.
    CountRows,
    /// `COUNT(x)`: rows whose `x` is not null.
    Count,
    Sum,
    Min,
    Max,
    Avg,
    /// `LATEST(x)`: `x` of the row latest by source position.
    Latest,
}

/// Where a source record sits; LATEST takes the greatest.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct Position {
    pub timestamp: i64,
    pub partition: i32,
    pub offset: i64,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
enum Accumulator {
    Count(i64),
    /// The sum of the non-null inputs and how many there were (SUM of none is null).
    Sum {
        total: Decimal,
        count: i64,
    },
    /// Each input value and how many rows hold it.
    Values(BTreeMap<Value, u64>),
    Latest(BTreeMap<Position, Value>),
}

impl Accumulator {
    fn new(aggregate: Aggregate) -> Accumulator {
        match aggregate {
            Aggregate::CountRows | Aggregate::Count => Accumulator::Count(0),
            Aggregate::Sum | Aggregate::Avg => Accumulator::Sum {
                total: Decimal::from_int(0),
                count: 0,
            },
            Aggregate::Min | Aggregate::Max => Accumulator::Values(BTreeMap::new()),
            Aggregate::Latest => Accumulator::Latest(BTreeMap::new()),
        }
    }

    /// Adds (`sign` 1) or retracts (`sign` -1) one input; `number` is the input as a decimal
    /// for SUM and AVG, checked before any accumulator changed.
    fn apply(
        &mut self,
        aggregate: Aggregate,
        input: &Value,
        number: Option<Decimal>,
        at: Position,
        sign: i64,
    ) -> Result<(), ValueError> {
        match self {
            Accumulator::Count(n) => {
                if aggregate == Aggregate::CountRows || *input != Value::Null {
                    *n += sign;
                }
            }
            Accumulator::Sum { total, count } => {
                if let Some(d) = number {
                    *total = total.checked_add(if sign > 0 { d } else { -d })?;
                    *count += sign;
                }
            }
            Accumulator::Values(values) => {
                if *input != Value::Null {
                    if sign > 0 {
                        *values.entry(input.clone()).or_insert(0) += 1;
                    } else {
                        let n = values
                            .get_mut(input)
                            .expect("a retracted value was added before");
                        *n -= 1;
                        if *n == 0 {
                            values.remove(input);
                        }
                    }
                }
            }
            Accumulator::Latest(values) => {
                if sign > 0 {
                    values.insert(at, input.clone());
                } else {
                    let removed = values.remove(&at);
                    assert!(removed.is_some(), "a retracted row was added before");
                }
            }
        }
        Ok(())
    }

    /// Drops what only a retraction would need: every value but the one MIN, MAX or LATEST
    /// answers.
    fn keep_answer_only(&mut self, aggregate: Aggregate) {
        match (self, aggregate) {
            (Accumulator::Values(values), Aggregate::Min) => {
                while values.len() > 1 {
                    values.pop_last();
                }
            }
            (Accumulator::Values(values), _) => {
                while values.len() > 1 {
                    values.pop_first();
                }
            }
            (Accumulator::Latest(values), _) => {
                while values.len() > 1 {
                    values.pop_first();
                }
            }
            _ => {}
        }
    }

    /// Values kept (for MIN, MAX and LATEST: how much state a group holds).
    #[cfg(test)]
    fn kept(&self) -> usize {
        match self {
            Accumulator::Values(values) => values.len(),
            Accumulator::Latest(values) => values.len(),
            _ => 1,
        }
    }

    fn result(&self, aggregate: Aggregate) -> Result<Value, ValueError> {
        Ok(match (self, aggregate) {
            (Accumulator::Count(n), _) => Value::Int(*n),
            (Accumulator::Sum { count: 0, .. }, _) => Value::Null,
            (Accumulator::Sum { total, .. }, Aggregate::Sum) => Value::from_decimal(*total),
            (Accumulator::Sum { total, count }, _) => Value::Decimal(total.div_count(*count)?),
            (Accumulator::Values(values), Aggregate::Min) => {
                values.keys().next().cloned().unwrap_or(Value::Null)
            }
            (Accumulator::Values(values), _) => {
                values.keys().next_back().cloned().unwrap_or(Value::Null)
            }
            (Accumulator::Latest(values), _) => {
                values.values().next_back().cloned().unwrap_or(Value::Null)
            }
        })
    }
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Group {
    rows: i64,
    accumulators: Vec<Accumulator>,
}

/// A checkpoint's bytes that do not fit this view (another definition's, or damaged).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a checkpointed group does not fit this view: {0}")]
pub struct CheckpointMismatch(pub String);

impl Accumulator {
    /// Whether this accumulator is the kind `aggregate` keeps.
    fn fits(&self, aggregate: Aggregate) -> bool {
        matches!(
            (self, aggregate),
            (
                Accumulator::Count(_),
                Aggregate::CountRows | Aggregate::Count
            ) | (Accumulator::Sum { .. }, Aggregate::Sum | Aggregate::Avg)
                | (Accumulator::Values(_), Aggregate::Min | Aggregate::Max)
                | (Accumulator::Latest(_), Aggregate::Latest)
        )
    }
}

/// A group's key and its aggregates' values.
pub type Row = (Vec<Value>, Vec<Value>);

/// A change to publish: a group's new row, or its deletion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowChange {
    Upsert { key: Vec<Value>, values: Vec<Value> },
    Delete { key: Vec<Value> },
}

/// A grouped view's state.
#[derive(Debug, Clone)]
pub struct Fold {
    aggregates: Vec<Aggregate>,
    groups: BTreeMap<Vec<Value>, Group>,
    changed: BTreeSet<Vec<Value>>,
    /// Nothing is ever retracted (a stream's view): MIN, MAX and LATEST keep only the value
    /// they answer, so a group's state does not grow with its rows.
    append_only: bool,
}

impl Fold {
    /// A fold whose rows may be retracted (a table's view): MIN, MAX and LATEST keep every
    /// value, so that taking one back leaves the next.
    pub fn new(aggregates: Vec<Aggregate>) -> Fold {
        Fold {
            aggregates,
            groups: BTreeMap::new(),
            changed: BTreeSet::new(),
            append_only: false,
        }
    }

    /// A fold that only adds (a stream's view): `retract` is refused.
    pub fn append_only(aggregates: Vec<Aggregate>) -> Fold {
        Fold {
            append_only: true,
            ..Fold::new(aggregates)
        }
    }

    /// Adds one source row: `inputs[i]` is the argument of aggregate `i` (anything for
    /// `COUNT(*)`). An input SUM or AVG cannot take is an error, and nothing changes.
    pub fn add(
        &mut self,
        key: Vec<Value>,
        inputs: &[Value],
        at: Position,
    ) -> Result<(), ValueError> {
        self.apply(key, inputs, at, 1)
    }

    /// Takes back a row added before with the same key, inputs and position (a table row
    /// updated or deleted).
    ///
    /// # Panics
    /// When no such row was added: the caller's bookkeeping is broken.
    pub fn retract(
        &mut self,
        key: Vec<Value>,
        inputs: &[Value],
        at: Position,
    ) -> Result<(), ValueError> {
        self.apply(key, inputs, at, -1)
    }

    fn apply(
        &mut self,
        key: Vec<Value>,
        inputs: &[Value],
        at: Position,
        sign: i64,
    ) -> Result<(), ValueError> {
        assert_eq!(
            inputs.len(),
            self.aggregates.len(),
            "one input per aggregate"
        );
        let mut numbers = Vec::with_capacity(inputs.len());
        for (aggregate, input) in self.aggregates.iter().zip(inputs) {
            numbers.push(match aggregate {
                Aggregate::Sum => input.as_decimal("SUM")?,
                Aggregate::Avg => input.as_decimal("AVG")?,
                _ => None,
            });
        }
        let aggregates = &self.aggregates;
        let group = self.groups.entry(key.clone()).or_insert_with(|| Group {
            rows: 0,
            accumulators: aggregates.iter().map(|a| Accumulator::new(*a)).collect(),
        });
        assert!(
            sign > 0 || group.rows > 0,
            "a retracted row was added before"
        );
        assert!(
            sign > 0 || !self.append_only,
            "an append-only fold retracts nothing"
        );
        for (i, accumulator) in group.accumulators.iter_mut().enumerate() {
            // Inputs were checked above; what is left to fail is a sum past 38 digits, which
            // leaves this group's earlier accumulators changed: the view stops on it.
            let applied = accumulator.apply(self.aggregates[i], &inputs[i], numbers[i], at, sign);
            if self.append_only {
                accumulator.keep_answer_only(self.aggregates[i]);
            }
            if let Err(e) = applied {
                if group.rows == 0 {
                    self.groups.remove(&key);
                }
                return Err(e);
            }
        }
        group.rows += sign;
        if group.rows == 0 {
            self.groups.remove(&key);
        }
        self.changed.insert(key);
        Ok(())
    }

    /// The row of group `key`: its aggregates' values; `None` when the group has no rows.
    pub fn row(&self, key: &[Value]) -> Result<Option<Vec<Value>>, ValueError> {
        self.groups
            .get(key)
            .map(|group| self.values(group))
            .transpose()
    }

    fn values(&self, group: &Group) -> Result<Vec<Value>, ValueError> {
        group
            .accumulators
            .iter()
            .zip(&self.aggregates)
            .map(|(accumulator, aggregate)| accumulator.result(*aggregate))
            .collect()
    }

    /// Every group with its row, in key order.
    pub fn rows(&self) -> Result<Vec<Row>, ValueError> {
        self.rows_from(Bound::Unbounded).collect()
    }

    /// The groups from `from` on, in key order, each row computed as it is read (a page
    /// computes only what it shows).
    pub fn rows_from<'a>(
        &'a self,
        from: Bound<&'a [Value]>,
    ) -> impl Iterator<Item = Result<Row, ValueError>> + 'a {
        self.groups
            .range::<[Value], _>((from, Bound::Unbounded))
            .map(|(key, group)| Ok((key.clone(), self.values(group)?)))
    }

    /// The groups changed since the last `take_changes`, for the checkpoint to rewrite.
    pub fn changed_keys(&self) -> impl Iterator<Item = &Vec<Value>> {
        self.changed.iter()
    }

    /// Group `key`'s accumulators as bytes for the checkpoint; `None` when it has no rows
    /// (the checkpoint deletes it).
    pub fn export_group(&self, key: &[Value]) -> Option<Vec<u8>> {
        let group = self.groups.get(key)?;
        Some(postcard::to_allocvec(group).expect("a group always serializes"))
    }

    /// Restores a group `export_group` wrote for a fold of the same aggregates. The group is
    /// not marked changed: its row is already published.
    pub fn import_group(
        &mut self,
        key: Vec<Value>,
        bytes: &[u8],
    ) -> Result<(), CheckpointMismatch> {
        let group: Group =
            postcard::from_bytes(bytes).map_err(|e| CheckpointMismatch(e.to_string()))?;
        let fits = group.rows > 0
            && group.accumulators.len() == self.aggregates.len()
            && group
                .accumulators
                .iter()
                .zip(&self.aggregates)
                .all(|(a, aggregate)| a.fits(*aggregate));
        if !fits {
            return Err(CheckpointMismatch(format!(
                "{} accumulators for {} aggregates, or of other kinds",
                group.accumulators.len(),
                self.aggregates.len()
            )));
        }
        self.groups.insert(key, group);
        Ok(())
    }

    /// How many groups hold rows.
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// How many groups changed since the last `take_changes` (a commit is due before this
    /// grows past the dirty-key limit).
    pub fn changed_len(&self) -> usize {
        self.changed.len()
    }

    /// Keeps only the groups `keep` says to (a windowed view's old windows go); each group
    /// removed is a change, published as a deletion.
    pub fn retain_groups(&mut self, mut keep: impl FnMut(&[Value]) -> bool) {
        let changed = &mut self.changed;
        self.groups.retain(|key, _| {
            let kept = keep(key);
            if !kept {
                changed.insert(key.clone());
            }
            kept
        });
    }

    /// Forgets which groups changed, computing no row (a state that publishes none of its own:
    /// a rule's windows are its checkpoint).
    pub fn clear_changes(&mut self) {
        self.changed.clear();
    }

    /// The changes since the last call, one per changed group, in key order.
    pub fn take_changes(&mut self) -> Result<Vec<RowChange>, ValueError> {
        let changed = std::mem::take(&mut self.changed);
        changed
            .into_iter()
            .map(|key| {
                Ok(match self.groups.get(&key) {
                    Some(group) => RowChange::Upsert {
                        values: self.values(group)?,
                        key,
                    },
                    None => RowChange::Delete { key },
                })
            })
            .collect()
    }
}

/// A table source: the latest row per record key, so that an update retracts the row it
/// replaces and a tombstone retracts the row it deletes.
#[derive(Debug, Clone, Default)]
pub struct Table {
    rows: BTreeMap<Vec<u8>, TableRow>,
    /// Record keys whose row changed since the last `take_changed_rows`.
    changed: BTreeSet<Vec<u8>>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct TableRow {
    group: Vec<Value>,
    inputs: Vec<Value>,
    at: Position,
}

impl Table {
    /// The record of `record_key` is now this row (its group key and aggregate inputs).
    pub fn upsert(
        &mut self,
        fold: &mut Fold,
        record_key: Vec<u8>,
        group: Vec<Value>,
        inputs: Vec<Value>,
        at: Position,
    ) -> Result<(), ValueError> {
        // Added first: a row the fold refuses leaves the old one in place.
        fold.add(group.clone(), &inputs, at)?;
        let new = TableRow { group, inputs, at };
        self.changed.insert(record_key.clone());
        if let Some(old) = self.rows.insert(record_key, new) {
            fold.retract(old.group, &old.inputs, old.at)?;
        }
        Ok(())
    }

    /// A tombstone for `record_key`: its row, if any, leaves the view.
    pub fn delete(&mut self, fold: &mut Fold, record_key: &[u8]) -> Result<(), ValueError> {
        match self.rows.remove(record_key) {
            Some(old) => {
                self.changed.insert(record_key.to_vec());
                fold.retract(old.group, &old.inputs, old.at)
            }
            None => Ok(()),
        }
    }

    /// The rows changed since the last call, with their checkpoint bytes (`None`: deleted).
    pub fn take_changed_rows(&mut self) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
        let changed = std::mem::take(&mut self.changed);
        changed
            .into_iter()
            .map(|key| {
                let bytes = self.export_row(&key);
                (key, bytes)
            })
            .collect()
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Record `record_key`'s row as bytes for the checkpoint; `None` when the key has none.
    pub fn export_row(&self, record_key: &[u8]) -> Option<Vec<u8>> {
        let row = self.rows.get(record_key)?;
        Some(postcard::to_allocvec(row).expect("a row always serializes"))
    }

    /// Restores a row `export_row` wrote (the fold's groups are restored on their own).
    pub fn import_row(
        &mut self,
        record_key: Vec<u8>,
        bytes: &[u8],
    ) -> Result<(), CheckpointMismatch> {
        let row: TableRow =
            postcard::from_bytes(bytes).map_err(|e| CheckpointMismatch(e.to_string()))?;
        self.rows.insert(record_key, row);
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// A stream's fold answers as one that keeps everything, holding one value per
        /// aggregate and group however many rows came.
        #[test]
        fn an_append_only_fold_answers_the_same_and_keeps_one_value(
            rows in prop::collection::vec((0u8..3, -20i64..20, 0i64..50), 1..200)
        ) {
            let aggregates = vec![Aggregate::Min, Aggregate::Max, Aggregate::Latest];
            let mut everything = Fold::new(aggregates.clone());
            let mut answers = Fold::append_only(aggregates);
            for (offset, (group, value, ts)) in rows.iter().enumerate() {
                let key = vec![Value::Int((*group).into())];
                let inputs = vec![Value::Int(*value); 3];
                let at = Position { timestamp: *ts, partition: 0, offset: offset as i64 };
                everything.add(key.clone(), &inputs, at).unwrap();
                answers.add(key, &inputs, at).unwrap();
                prop_assert_eq!(answers.rows().unwrap(), everything.rows().unwrap());
            }
            let kept: usize = answers
                .groups
                .values()
                .flat_map(|g| g.accumulators.iter().map(Accumulator::kept))
                .sum();
            prop_assert_eq!(kept, answers.groups.len() * 3);
        }
    }

    /// The position of record `offset` of partition 0 at time 0 (shared by the crate's tests).
    pub(crate) fn at(offset: i64) -> Position {
        Position {
            timestamp: 0,
            partition: 0,
            offset,
        }
    }

    fn money(text: &str) -> Value {
        Value::Decimal(Decimal::parse(text).unwrap())
    }

    #[test]
    fn balances_add_up_exactly_and_deleted_groups_say_so() {
        let aggregates = vec![
            Aggregate::CountRows,
            Aggregate::Sum,
            Aggregate::Min,
            Aggregate::Max,
            Aggregate::Avg,
            Aggregate::Latest,
        ];
        let mut fold = Fold::new(aggregates);
        let account = |a: &str| vec![Value::Text(a.into())];
        for (i, amount) in ["10.10", "-0.10", "5"].iter().enumerate() {
            fold.add(account("ada"), &vec![money(amount); 6], at(i as i64))
                .unwrap();
        }
        assert_eq!(
            fold.row(&account("ada")).unwrap().unwrap(),
            vec![
                Value::Int(3),
                money("15"),
                money("-0.1"),
                money("10.1"),
                money("5"),
                money("5"),
            ]
        );
        let changes = fold.take_changes().unwrap();
        assert_eq!(changes.len(), 1);
        assert!(fold.take_changes().unwrap().is_empty());

        let mut table = Table::default();
        let mut by_region = Fold::new(vec![Aggregate::CountRows, Aggregate::Sum]);
        let region = |r: &str| vec![Value::Text(r.into())];
        table
            .upsert(
                &mut by_region,
                b"e1".to_vec(),
                region("eu"),
                vec![Value::Null, Value::Int(4)],
                at(0),
            )
            .unwrap();
        table
            .upsert(
                &mut by_region,
                b"e1".to_vec(),
                region("us"),
                vec![Value::Null, Value::Int(6)],
                at(1),
            )
            .unwrap();
        assert_eq!(
            by_region.take_changes().unwrap(),
            vec![
                RowChange::Delete { key: region("eu") },
                RowChange::Upsert {
                    key: region("us"),
                    values: vec![Value::Int(1), Value::Int(6)]
                },
            ]
        );
        table.delete(&mut by_region, b"e1").unwrap();
        assert_eq!(
            by_region.take_changes().unwrap(),
            vec![RowChange::Delete { key: region("us") }]
        );
        assert!(table.is_empty());
    }

    #[test]
    fn groups_restored_from_a_checkpoint_go_on_as_the_originals() {
        let aggregates = vec![
            Aggregate::CountRows,
            Aggregate::Sum,
            Aggregate::Max,
            Aggregate::Avg,
            Aggregate::Latest,
        ];
        let mut original = Fold::new(aggregates.clone());
        let mut table = Table::default();
        for i in 0..20i64 {
            let group = vec![Value::Int(i % 3)];
            let input = money(&format!("{}.{}", i * 7 % 11, i % 10));
            table
                .upsert(
                    &mut original,
                    vec![(i % 7) as u8],
                    group,
                    vec![input; 5],
                    at(i),
                )
                .unwrap();
        }
        let mut restored = Fold::new(aggregates.clone());
        let mut restored_table = Table::default();
        for (key, _) in original.rows().unwrap() {
            restored
                .import_group(key.clone(), &original.export_group(&key).unwrap())
                .unwrap();
        }
        for record_key in 0..7u8 {
            let bytes = table.export_row(&[record_key]).unwrap();
            restored_table.import_row(vec![record_key], &bytes).unwrap();
        }
        assert_eq!(restored.rows().unwrap(), original.rows().unwrap());
        assert_eq!(restored.changed_len(), 0);
        // The same updates from here give the same rows: multisets and positions came along.
        for (fold, table) in [
            (&mut original, &mut table),
            (&mut restored, &mut restored_table),
        ] {
            table.delete(fold, &[3]).unwrap();
            table
                .upsert(
                    fold,
                    vec![4],
                    vec![Value::Int(0)],
                    vec![money("-1"); 5],
                    at(99),
                )
                .unwrap();
        }
        assert_eq!(restored.rows().unwrap(), original.rows().unwrap());
        assert_eq!(original.export_group(&[Value::Int(99)]), None);

        let mut other = Fold::new(vec![Aggregate::Min]);
        let bytes = original.export_group(&[Value::Int(1)]).unwrap();
        assert!(other.import_group(vec![Value::Int(1)], &bytes).is_err());
        assert!(other.import_group(vec![Value::Int(1)], b"garbage").is_err());
    }

    #[test]
    fn a_refused_input_changes_nothing() {
        let mut fold = Fold::new(vec![Aggregate::CountRows, Aggregate::Sum]);
        let key = vec![Value::Int(1)];
        fold.add(key.clone(), &[Value::Null, Value::Int(2)], at(0))
            .unwrap();
        fold.take_changes().unwrap();
        let refused = fold.add(key.clone(), &[Value::Null, Value::Text("x".into())], at(1));
        assert!(matches!(refused, Err(ValueError::NotANumber { .. })));
        assert_eq!(
            fold.row(&key).unwrap().unwrap(),
            vec![Value::Int(1), Value::Int(2)]
        );
        assert_eq!(fold.changed_len(), 0);

        let mut table = Table::default();
        let mut sums = Fold::new(vec![Aggregate::Sum]);
        table
            .upsert(
                &mut sums,
                b"k".to_vec(),
                key.clone(),
                vec![Value::Int(5)],
                at(0),
            )
            .unwrap();
        let refused = table.upsert(
            &mut sums,
            b"k".to_vec(),
            key.clone(),
            vec![Value::Bool(true)],
            at(1),
        );
        assert!(refused.is_err());
        assert_eq!(sums.row(&key).unwrap().unwrap(), vec![Value::Int(5)]);
        assert_eq!(table.len(), 1);
    }
}
