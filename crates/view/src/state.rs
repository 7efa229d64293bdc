//! The local checkpoint of views, in `redb`: each view's groups (their accumulators), its
//! table rows, and the source positions (next offset per topic and partition) they reflect,
//! written in one durable write transaction per commit, after the commit's Kafka transaction.
//!
//! The output topic and the group's committed offsets are the truth; this is a checkpoint that
//! knows its position (docs/design/0004-views.md, "Exactly once"). Every entry's key starts
//! with its view's name and a 0 byte (names hold none), so one view's entries are one range.
//!
//! ```text
//! groups     view \0 postcard(group key)             -> Fold::export_group bytes (a rule's:
//!                                                       its window; the empty key: its
//!                                                       partitions' times, `stream`; a
//!                                                       windowed view with a retention's
//!                                                       empty key: its time, i64 BE,
//!                                                       `runtime`)
//! rows       view \0 record key                      -> Table::export_row bytes
//! positions  view \0 topic \0 partition (i32, BE)    -> next offset (i64)
//! stamps     view \0                                 -> 1 byte (1: reconciled, 0: not yet)
//!                                                       then the definition's SQL (UTF-8)
//! sizes      view \0                                 -> bytes of its groups and rows entries
//!                                                       (keys and values, u64), kept by
//!                                                       each commit
//! ```
//!
//! A stamp says which definition the entries were folded by, and whether the view's output
//! topic has been brought to them: a checkpoint of another definition (a `CREATE OR REPLACE`,
//! or a view dropped and made again elsewhere) is not restored, and one not reconciled yet
//! (the new state a `CREATE OR REPLACE` built beside the old view) has its difference from the
//! output topic published before the view goes on (`engine`, "reconcile"). A checkpoint
//! without a stamp is of the definition at hand.
//!
//! Owns: the file and its layout. Not: what the bytes mean (`fold`).

use crate::fold::{CheckpointMismatch, Fold, Table};
use crate::value::Value;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use std::collections::BTreeMap;
use std::path::Path;

const GROUPS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("groups");
const ROWS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("rows");
const POSITIONS: TableDefinition<&[u8], i64> = TableDefinition::new("positions");
const STAMPS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("stamps");
const SIZES: TableDefinition<&[u8], u64> = TableDefinition::new("sizes");

/// Writes (`Some`) or removes (`None`) one entry; how many bytes (key and value) that added
/// to the table, less what it replaced.
fn put(
    table: &mut redb::Table<&[u8], &[u8]>,
    entry: &[u8],
    bytes: Option<&[u8]>,
) -> Result<i64, StateError> {
    let size = |value: usize| i64::try_from(entry.len() + value).unwrap_or(i64::MAX);
    let (added, old) = match bytes {
        Some(bytes) => {
            let old = table.insert(entry, bytes).map_err(store)?;
            (size(bytes.len()), old.map(|v| v.value().len()))
        }
        None => {
            let old = table.remove(entry).map_err(store)?;
            (0, old.map(|v| v.value().len()))
        }
    };
    Ok(added - old.map_or(0, size))
}

/// Which definition a view's checkpoint was folded by, and whether its output topic shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    pub sql: String,
    pub reconciled: bool,
}

impl Stamp {
    fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(1 + self.sql.len());
        bytes.push(u8::from(self.reconciled));
        bytes.extend_from_slice(self.sql.as_bytes());
        bytes
    }

    fn decode(bytes: &[u8]) -> Result<Stamp, StateError> {
        let bad = || StateError::Store("a damaged stamp entry".into());
        let (&flag, sql) = bytes.split_first().ok_or_else(bad)?;
        let sql = std::str::from_utf8(sql).map_err(|_| bad())?;
        Ok(Stamp {
            sql: sql.to_string(),
            reconciled: flag == 1,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("the view checkpoint: {0}")]
    Store(String),
    #[error(transparent)]
    Mismatch(#[from] CheckpointMismatch),
}

impl From<redb::Error> for StateError {
    fn from(e: redb::Error) -> StateError {
        StateError::Store(e.to_string())
    }
}

/// Turns any of redb's error types into a `StateError` (each converts into `redb::Error`).
fn store<E: Into<redb::Error>>(e: E) -> StateError {
    StateError::from(e.into())
}

/// What taking back one checkpoint entry gives.
pub type Imported = Result<(), CheckpointMismatch>;

/// A source's position: the topic and partition, and the next offset to read there.
pub type Positions = BTreeMap<(String, i32), i64>;

/// What one commit changes in a view's checkpoint: groups and table rows with their new bytes
/// (`None`: gone), and where the sources stand.
#[derive(Debug, Default)]
pub struct CheckpointDelta {
    pub groups: Vec<(Vec<Value>, Option<Vec<u8>>)>,
    pub rows: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

pub struct Checkpoint {
    db: redb::Database,
}

impl Checkpoint {
    /// Opens (or creates) the checkpoint file at `path`.
    pub fn open(path: &Path) -> Result<Checkpoint, StateError> {
        let db = redb::Database::create(path).map_err(store)?;
        Ok(Checkpoint { db })
    }

    /// Writes one commit of `view` durably: its changed groups and rows, `positions`, and
    /// `stamp`.
    pub fn commit(
        &self,
        view: &str,
        delta: &CheckpointDelta,
        positions: &Positions,
        stamp: &Stamp,
    ) -> Result<(), StateError> {
        self.write(|txn| Self::write_commit(txn, view, delta, positions, stamp))
    }

    /// As `commit`, over nothing: everything `view` kept before goes in the same write.
    pub fn replace(
        &self,
        view: &str,
        delta: &CheckpointDelta,
        positions: &Positions,
        stamp: &Stamp,
    ) -> Result<(), StateError> {
        self.write(|txn| {
            Self::write_forget(txn, view)?;
            Self::write_commit(txn, view, delta, positions, stamp)
        })
    }

    /// Runs `work` in one durable write transaction.
    fn write(
        &self,
        work: impl FnOnce(&redb::WriteTransaction) -> Result<(), StateError>,
    ) -> Result<(), StateError> {
        let txn = self.db.begin_write().map_err(store)?;
        work(&txn)?;
        txn.commit().map_err(store)
    }

    /// The bytes of `view`'s groups and rows in the checkpoint (keys and values, not the
    /// file's own overhead).
    pub fn bytes(&self, view: &str) -> Result<u64, StateError> {
        let txn = self.db.begin_read().map_err(store)?;
        let Some(sizes) = open_readable(&txn, SIZES)? else {
            return Ok(0);
        };
        let entry = entry_key(view, &[]);
        let size = sizes.get(entry.as_slice()).map_err(store)?;
        Ok(size.map_or(0, |b| b.value()))
    }

    /// Which definition `view`'s entries were folded by (`None`: not said).
    pub fn stamp(&self, view: &str) -> Result<Option<Stamp>, StateError> {
        let txn = self.db.begin_read().map_err(store)?;
        let Some(stamps) = open_readable(&txn, STAMPS)? else {
            return Ok(None);
        };
        let entry = entry_key(view, &[]);
        let stamp = stamps.get(entry.as_slice()).map_err(store)?;
        stamp.map(|bytes| Stamp::decode(bytes.value())).transpose()
    }

    fn write_commit(
        txn: &redb::WriteTransaction,
        view: &str,
        delta: &CheckpointDelta,
        positions: &Positions,
        stamp: &Stamp,
    ) -> Result<(), StateError> {
        Self::write_stamp(txn, view, stamp)?;
        let mut grown: i64 = 0;
        {
            let mut groups = txn.open_table(GROUPS).map_err(store)?;
            for (key, bytes) in &delta.groups {
                let entry = entry_key(view, &encode_group_key(key));
                grown += put(&mut groups, &entry, bytes.as_deref())?;
            }
            let mut rows = txn.open_table(ROWS).map_err(store)?;
            for (key, bytes) in &delta.rows {
                grown += put(&mut rows, &entry_key(view, key), bytes.as_deref())?;
            }
            let mut sizes = txn.open_table(SIZES).map_err(store)?;
            let entry = entry_key(view, &[]);
            let before = sizes
                .get(entry.as_slice())
                .map_err(store)?
                .map_or(0, |b| b.value());
            let after = before.saturating_add_signed(grown);
            sizes.insert(entry.as_slice(), after).map_err(store)?;
            let mut table = txn.open_table(POSITIONS).map_err(store)?;
            for ((topic, partition), offset) in positions {
                let entry = position_key(view, topic, *partition);
                table.insert(entry.as_slice(), offset).map_err(store)?;
            }
        }
        Ok(())
    }

    /// Restores `view`'s groups into `fold` and its rows into `table`, and returns the
    /// positions they reflect (empty for a view never committed).
    pub fn restore(
        &self,
        view: &str,
        fold: &mut Fold,
        mut table: Option<&mut Table>,
    ) -> Result<Positions, StateError> {
        let mut on_row = |key: Vec<u8>, bytes: &[u8]| match table.as_deref_mut() {
            Some(table) => table.import_row(key, bytes),
            None => Ok(()),
        };
        self.restore_with(
            view,
            &mut |key, bytes| fold.import_group(key, bytes),
            &mut on_row,
        )
    }

    /// Hands each of `view`'s groups to `on_group` and each of its rows to `on_row`, and
    /// returns the positions they reflect.
    pub fn restore_with(
        &self,
        view: &str,
        on_group: &mut dyn FnMut(Vec<Value>, &[u8]) -> Imported,
        on_row: &mut dyn FnMut(Vec<u8>, &[u8]) -> Imported,
    ) -> Result<Positions, StateError> {
        let txn = self.db.begin_read().map_err(store)?;
        let prefix = entry_key(view, &[]);
        if let Some(groups) = open_readable(&txn, GROUPS)? {
            for item in groups.range(prefix.as_slice()..).map_err(store)? {
                let (key, bytes) = item.map_err(store)?;
                let Some(group_key) = key.value().strip_prefix(prefix.as_slice()) else {
                    break;
                };
                on_group(decode_group_key(group_key)?, bytes.value())?;
            }
        }
        if let Some(rows) = open_readable(&txn, ROWS)? {
            for item in rows.range(prefix.as_slice()..).map_err(store)? {
                let (key, bytes) = item.map_err(store)?;
                let Some(record_key) = key.value().strip_prefix(prefix.as_slice()) else {
                    break;
                };
                on_row(record_key.to_vec(), bytes.value())?;
            }
        }
        let mut positions = Positions::new();
        if let Some(table) = open_readable(&txn, POSITIONS)? {
            for item in table.range(prefix.as_slice()..).map_err(store)? {
                let (key, offset) = item.map_err(store)?;
                let Some(rest) = key.value().strip_prefix(prefix.as_slice()) else {
                    break;
                };
                let (topic, partition) = split_position(rest)?;
                positions.insert((topic, partition), offset.value());
            }
        }
        Ok(positions)
    }

    /// Deletes everything `view` keeps (DROP, or a rebuild from scratch).
    pub fn forget(&self, view: &str) -> Result<(), StateError> {
        self.write(|txn| Self::write_forget(txn, view))
    }

    /// As `forget`, leaving the stamp of the definition that will fold anew, not reconciled:
    /// a crash before that definition's first commit leaves it known that the output topic
    /// still shows another.
    pub fn restart(&self, view: &str, stamp: &Stamp) -> Result<(), StateError> {
        debug_assert!(!stamp.reconciled, "a new state has published nothing yet");
        self.write(|txn| {
            Self::write_forget(txn, view)?;
            Self::write_stamp(txn, view, stamp)
        })
    }

    fn write_stamp(
        txn: &redb::WriteTransaction,
        view: &str,
        stamp: &Stamp,
    ) -> Result<(), StateError> {
        let mut stamps = txn.open_table(STAMPS).map_err(store)?;
        let entry = entry_key(view, &[]);
        stamps
            .insert(entry.as_slice(), stamp.encode().as_slice())
            .map_err(store)?;
        Ok(())
    }

    fn write_forget(txn: &redb::WriteTransaction, view: &str) -> Result<(), StateError> {
        let prefix = entry_key(view, &[]);
        for definition in [GROUPS, ROWS, STAMPS] {
            let mut table = txn.open_table(definition).map_err(store)?;
            table
                .retain_in(prefix.as_slice().., |key, _| !key.starts_with(&prefix))
                .map_err(store)?;
        }
        let mut sizes = txn.open_table(SIZES).map_err(store)?;
        sizes.remove(prefix.as_slice()).map_err(store)?;
        let mut table = txn.open_table(POSITIONS).map_err(store)?;
        table
            .retain_in(prefix.as_slice().., |key, _| !key.starts_with(&prefix))
            .map_err(store)?;
        Ok(())
    }
}

/// A table for reading, or `None` when nothing was ever written to it.
fn open_readable<V: redb::Value + 'static>(
    txn: &redb::ReadTransaction,
    definition: TableDefinition<&'static [u8], V>,
) -> Result<Option<redb::ReadOnlyTable<&'static [u8], V>>, StateError> {
    match txn.open_table(definition) {
        Ok(table) => Ok(Some(table)),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(store(e)),
    }
}

fn entry_key(view: &str, key: &[u8]) -> Vec<u8> {
    debug_assert!(!view.as_bytes().contains(&0), "view names hold no 0 byte");
    let mut entry = Vec::with_capacity(view.len() + 1 + key.len());
    entry.extend_from_slice(view.as_bytes());
    entry.push(0);
    entry.extend_from_slice(key);
    entry
}

fn position_key(view: &str, topic: &str, partition: i32) -> Vec<u8> {
    let mut rest = Vec::with_capacity(topic.len() + 5);
    rest.extend_from_slice(topic.as_bytes());
    rest.push(0);
    rest.extend_from_slice(&partition.to_be_bytes());
    entry_key(view, &rest)
}

fn split_position(rest: &[u8]) -> Result<(String, i32), StateError> {
    let bad = || StateError::Store("a damaged position entry".into());
    let at = rest.iter().position(|&b| b == 0).ok_or_else(bad)?;
    let topic = std::str::from_utf8(&rest[..at]).map_err(|_| bad())?;
    let partition: [u8; 4] = rest[at + 1..].try_into().map_err(|_| bad())?;
    Ok((topic.to_string(), i32::from_be_bytes(partition)))
}

/// A group key as it is stored.
pub fn encode_group_key(key: &[Value]) -> Vec<u8> {
    postcard::to_allocvec(key).expect("values always serialize")
}

fn decode_group_key(bytes: &[u8]) -> Result<Vec<Value>, StateError> {
    postcard::from_bytes(bytes).map_err(|e| StateError::Mismatch(CheckpointMismatch(e.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fold::Aggregate;
    use crate::fold::tests::at;
    use crate::value::Decimal;

    #[test]
    fn a_view_restores_what_its_commits_wrote_and_nothing_of_another() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("views.redb");
        let aggregates = vec![Aggregate::CountRows, Aggregate::Sum, Aggregate::Max];
        let mut fold = Fold::new(aggregates.clone());
        let mut table = Table::default();
        let amount = |c: i64| vec![Value::Decimal(Decimal::new(c.into(), 2)); 3];
        let mut positions = Positions::new();
        let stamp = Stamp {
            sql: "CREATE MATERIALIZED VIEW balances AS ...".into(),
            reconciled: true,
        };
        {
            let checkpoint = Checkpoint::open(&path).unwrap();
            for (i, (record, group)) in [(b"a", 1), (b"b", 1), (b"c", 2), (b"a", 2)]
                .iter()
                .enumerate()
            {
                table
                    .upsert(
                        &mut fold,
                        record.to_vec(),
                        vec![Value::Int(*group)],
                        amount(i as i64 * 100 + 5),
                        at(i as i64),
                    )
                    .unwrap();
                positions.insert(("payments".into(), 0), i as i64 + 1);
                let delta = CheckpointDelta {
                    groups: fold
                        .changed_keys()
                        .map(|k| (k.clone(), fold.export_group(k)))
                        .collect(),
                    rows: vec![(record.to_vec(), table.export_row(*record))],
                };
                fold.take_changes().unwrap();
                checkpoint
                    .commit("balances", &delta, &positions, &stamp)
                    .unwrap();
            }
            // Another view's entries stay its own.
            let other = CheckpointDelta {
                groups: vec![(
                    vec![Value::Text("x".into())],
                    fold.export_group(&[Value::Int(2)]),
                )],
                rows: vec![],
            };
            checkpoint
                .commit("balances2", &other, &Positions::new(), &stamp)
                .unwrap();
        }
        let checkpoint = Checkpoint::open(&path).unwrap();
        let mut restored = Fold::new(aggregates.clone());
        let mut restored_table = Table::default();
        let at_commit = checkpoint
            .restore("balances", &mut restored, Some(&mut restored_table))
            .unwrap();
        assert_eq!(at_commit, positions);
        assert_eq!(restored.rows().unwrap(), fold.rows().unwrap());
        assert_eq!(restored_table.len(), 3);
        // Record a moved from group 1 to group 2, leaving b alone in group 1.
        assert_eq!(
            restored
                .row(&[Value::Int(1)])
                .unwrap()
                .map(|r| r[0].clone()),
            Some(Value::Int(1))
        );

        let entries: u64 = {
            let txn = checkpoint.db.begin_read().unwrap();
            let mut total = 0;
            for definition in [GROUPS, ROWS] {
                let table = txn.open_table(definition).unwrap();
                for item in table
                    .range(entry_key("balances", &[]).as_slice()..)
                    .unwrap()
                {
                    let (k, v) = item.unwrap();
                    if k.value().starts_with(b"balances\0") {
                        total += (k.value().len() + v.value().len()) as u64;
                    }
                }
            }
            total
        };
        assert_eq!(checkpoint.bytes("balances").unwrap(), entries);
        assert!(entries > 0);
        checkpoint.forget("balances").unwrap();
        assert_eq!(checkpoint.bytes("balances").unwrap(), 0);
        let mut empty = Fold::new(aggregates.clone());
        assert!(
            checkpoint
                .restore("balances", &mut empty, None)
                .unwrap()
                .is_empty()
        );
        assert!(empty.rows().unwrap().is_empty());
        let mut other = Fold::new(aggregates);
        checkpoint.restore("balances2", &mut other, None).unwrap();
        assert_eq!(other.rows().unwrap().len(), 1);
    }

    #[test]
    fn a_stamp_names_the_definition_and_goes_with_the_entries() {
        let dir = tempfile::tempdir().unwrap();
        let checkpoint = Checkpoint::open(&dir.path().join("views.redb")).unwrap();
        let stamp = |sql: &str, reconciled| Stamp {
            sql: sql.into(),
            reconciled,
        };
        let mut positions = Positions::new();
        positions.insert(("payments".into(), 0), 7);
        assert_eq!(checkpoint.stamp("v").unwrap(), None);
        let delta = CheckpointDelta::default();
        checkpoint
            .commit("v", &delta, &positions, &stamp("A", true))
            .unwrap();
        checkpoint
            .commit("v2", &delta, &positions, &stamp("C", true))
            .unwrap();
        assert_eq!(checkpoint.stamp("v").unwrap(), Some(stamp("A", true)));
        // Another definition folds anew: nothing of the old is left but who it will be.
        checkpoint.restart("v", &stamp("B", false)).unwrap();
        assert_eq!(checkpoint.stamp("v").unwrap(), Some(stamp("B", false)));
        let mut nothing = |_: Vec<u8>, _: &[u8]| -> Imported { panic!("no rows") };
        let mut no_group = |_: Vec<Value>, _: &[u8]| -> Imported { panic!("no groups") };
        let restored = checkpoint
            .restore_with("v", &mut no_group, &mut nothing)
            .unwrap();
        assert!(restored.is_empty());
        checkpoint
            .replace("v", &delta, &positions, &stamp("B", true))
            .unwrap();
        assert_eq!(checkpoint.stamp("v").unwrap(), Some(stamp("B", true)));
        checkpoint.forget("v").unwrap();
        assert_eq!(checkpoint.stamp("v").unwrap(), None);
        assert_eq!(checkpoint.stamp("v2").unwrap(), Some(stamp("C", true)));
    }
}
