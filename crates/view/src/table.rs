//! `CREATE TABLE t FROM TOPIC 'x'`: the latest value per key of a topic, kept as a view whose
//! group is the record key and whose aggregates are the LATEST of the whole value and of the
//! record's metadata; a tombstone deletes the key's row (the source is read as a table). A
//! query sees a row's JSON fields as columns beside `_key`, `_ts`, `_partition` and `_offset`
//! (nested fields dotted: `vitals.heart_rate`).
//!
//! Owns: a table's plan and the columns its queries see. Not: keeping it (the engine).

use crate::expr::Expr;
use crate::fold::Aggregate;
use crate::sql::ViewPlan;
use crate::value::Value;
use std::collections::{BTreeMap, BTreeSet};

/// The record's whole value, as text: a column only tables read.
pub const VALUE_COLUMN: &str = "_value";
/// The metadata columns a table's rows show.
const METADATA: [&str; 3] = ["_ts", "_partition", "_offset"];

/// The plan that keeps table `name`'s rows from `topic`.
pub fn plan(topic: &str) -> ViewPlan {
    let latest = |column: &str| {
        (
            column.to_string(),
            Aggregate::Latest,
            Expr::Column(column.into()),
        )
    };
    let mut aggregates = vec![latest(VALUE_COLUMN)];
    aggregates.extend(METADATA.iter().map(|c| latest(c)));
    ViewPlan {
        source: topic.to_string(),
        filter: None,
        keys: vec![("_key".into(), Expr::Column("_key".into()))],
        aggregates,
        having: None,
        window: None,
    }
}

/// A table's stored rows (`_key`, `_value`, then the metadata, as `plan` keeps them) as the
/// columns a query sees: `_key`, the metadata, then every JSON field any row has, sorted.
pub fn expand(rows: Vec<Vec<Value>>) -> (Vec<String>, Vec<Vec<Value>>) {
    let mut parsed = Vec::with_capacity(rows.len());
    let mut fields = BTreeSet::new();
    for row in rows {
        let mut flat = BTreeMap::new();
        if let Some(Value::Text(json)) = row.get(1)
            && let Ok(serde_json::Value::Object(object)) = serde_json::from_str(json)
        {
            flatten("", &object, &mut flat);
        }
        fields.extend(flat.keys().cloned());
        parsed.push((row, flat));
    }
    let mut columns: Vec<String> = std::iter::once("_key")
        .chain(METADATA)
        .map(str::to_string)
        .collect();
    columns.extend(fields.iter().cloned());
    let out = parsed
        .into_iter()
        .map(|(row, mut flat)| {
            let mut values = vec![row[0].clone()];
            values.extend(row.iter().skip(2).cloned());
            values.extend(fields.iter().map(|f| flat.remove(f).unwrap_or(Value::Null)));
            values
        })
        .collect();
    (columns, out)
}

fn flatten(
    prefix: &str,
    object: &serde_json::Map<String, serde_json::Value>,
    out: &mut BTreeMap<String, Value>,
) {
    for (name, value) in object {
        let name = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        match value {
            serde_json::Value::Object(inner) => flatten(&name, inner, out),
            other => {
                out.insert(name, Value::from_json(other).unwrap_or(Value::Null));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tables_rows_show_their_fields_as_columns() {
        let rows = vec![
            vec![
                Value::Text("p1".into()),
                Value::Text(r#"{"ward":"a","vitals":{"heart_rate":80}}"#.into()),
                Value::Int(10),
                Value::Int(0),
                Value::Int(3),
            ],
            vec![
                Value::Text("p2".into()),
                Value::Text(r#"{"ward":"b","age":41}"#.into()),
                Value::Int(11),
                Value::Int(0),
                Value::Int(4),
            ],
        ];
        let (columns, out) = expand(rows);
        assert_eq!(
            columns,
            [
                "_key",
                "_ts",
                "_partition",
                "_offset",
                "age",
                "vitals.heart_rate",
                "ward"
            ]
        );
        assert_eq!(out[0][5], Value::Int(80));
        assert_eq!(out[0][4], Value::Null);
        assert_eq!(out[1][6], Value::Text("b".into()));
    }
}
