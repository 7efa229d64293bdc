//! A view's rows as records of its output topic, and a row key as a URL names it.
//!
//! ```text
//! key    one key column:   its text (a text key as is; a number, boolean or null as JSON)
//!        several columns:  a JSON array of them        no GROUP BY keys: `[]`
//! value  a JSON object of every column, keys then aggregates, in the view's column order;
//!        a row that left the view (its group emptied, or HAVING hides it): a tombstone
//! ```
//!
//! The key is the record key of a compacted topic, so the latest record per key is the row
//! (what every Kafka client reading the topic sees), and the same text is how
//! `GET /v1/views/{v}/keys/{key}` names a row.
//!
//! Owns: the bytes of the output records. Not: sending them (the engine).

use crate::fold::RowChange;
use crate::value::Value;

/// A row's key as its output record key and URL segment.
pub fn row_key(key: &[Value]) -> String {
    match key {
        [Value::Text(text)] => text.clone(),
        [one] => value_json(one),
        many => format!(
            "[{}]",
            many.iter().map(value_json).collect::<Vec<_>>().join(",")
        ),
    }
}

/// The keys a row-key text may name, most likely first, for a view of `key_columns` key
/// columns: `42` names the text "42" or the number 42 (text first, as written); several columns
/// take a JSON array. Empty when the text names no key of that many columns.
pub fn keys_named(text: &str, key_columns: usize) -> Vec<Vec<Value>> {
    let parsed = serde_json::from_str::<serde_json::Value>(text).ok();
    match key_columns {
        1 => {
            let mut out = vec![vec![Value::Text(text.to_string())]];
            if let Some(value) = parsed.and_then(|json| Value::from_json(&json).ok())
                && !matches!(value, Value::Text(_))
            {
                out.push(vec![value]);
            }
            out
        }
        n => match parsed {
            Some(serde_json::Value::Array(items)) if items.len() == n => items
                .iter()
                .map(Value::from_json)
                .collect::<Result<Vec<_>, _>>()
                .map(|key| vec![key])
                .unwrap_or_default(),
            _ => Vec::new(),
        },
    }
}

/// A value as JSON text, decimals written from their exact digits (a `serde_json::Number`
/// would go through a float and round money).
pub fn value_json(value: &Value) -> String {
    match value {
        Value::Decimal(d) => d.to_string(),
        other => other.to_json().to_string(),
    }
}

/// A row as the text of a JSON object of `columns` (keys, then aggregates).
pub fn row_json(columns: &[String], row: &[Value]) -> String {
    let mut out = String::from("{");
    for (i, (name, value)) in columns.iter().zip(row).enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&serde_json::Value::String(name.clone()).to_string());
        out.push(':');
        out.push_str(&value_json(value));
    }
    out.push('}');
    out
}

/// One change as an output record's key and value (`None`: a tombstone).
pub fn change_record(columns: &[String], change: &RowChange) -> (Vec<u8>, Option<Vec<u8>>) {
    match change {
        RowChange::Upsert { key, values } => {
            let row: Vec<Value> = key.iter().chain(values).cloned().collect();
            (
                row_key(key).into_bytes(),
                Some(row_json(columns, &row).into_bytes()),
            )
        }
        RowChange::Delete { key } => (row_key(key).into_bytes(), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Decimal;

    #[test]
    fn a_row_key_names_its_row_back() {
        let text = vec![Value::Text("ada".into())];
        let number = vec![Value::Int(42)];
        let pair = vec![Value::Text("a".into()), Value::Int(7)];
        assert_eq!(row_key(&text), "ada");
        assert_eq!(row_key(&number), "42");
        assert_eq!(row_key(&pair), r#"["a",7]"#);
        assert_eq!(row_key(&[]), "[]");
        for key in [&text, &number, &pair] {
            assert!(keys_named(&row_key(key), key.len()).contains(key));
        }
        assert_eq!(
            keys_named("42", 1),
            vec![vec![Value::Text("42".into())], vec![Value::Int(42)]]
        );
        assert!(keys_named("ada", 2).is_empty());
        assert_eq!(keys_named("[]", 0), vec![Vec::<Value>::new()]);
    }

    #[test]
    fn changes_become_json_rows_and_tombstones() {
        let columns = vec!["account".to_string(), "balance".to_string()];
        let upsert = RowChange::Upsert {
            key: vec![Value::Text("ada".into())],
            values: vec![Value::Decimal(
                Decimal::parse("1234567890123456.78").unwrap(),
            )],
        };
        let (key, value) = change_record(&columns, &upsert);
        assert_eq!(key, b"ada");
        assert_eq!(
            String::from_utf8(value.unwrap()).unwrap(),
            // Exact: a float would have written 1234567890123456.8.
            r#"{"account":"ada","balance":1234567890123456.78}"#
        );
        let delete = RowChange::Delete {
            key: vec![Value::Text("ada".into())],
        };
        assert_eq!(change_record(&columns, &delete), (b"ada".to_vec(), None));
    }
}
