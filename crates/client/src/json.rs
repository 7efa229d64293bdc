//! The JSON form of a record, shared by `sluice consume --format json` and the HTTP API:
//!
//! ```json
//! {"topic":"t","partition":0,"offset":42,"timestamp":1795420800000,
//!  "key":"k","value":"v","headers":[{"key":"h","value":"1"}]}
//! ```
//! `key` and `value` are strings when their bytes are UTF-8 and `null` when absent; other
//! bytes come as `key_base64` / `value_base64` instead. Headers are a list because Kafka lets
//! a header key repeat.

use base64::Engine;
use serde_json::{Map, Value};
use sluice_record::Record;

/// The record as a JSON object; `topic` and `partition` are included when given.
pub fn record_to_json(topic: Option<&str>, partition: Option<i32>, r: &Record<'_>) -> Value {
    let mut object = Map::new();
    if let Some(topic) = topic {
        object.insert("topic".into(), topic.into());
    }
    if let Some(partition) = partition {
        object.insert("partition".into(), partition.into());
    }
    object.insert("offset".into(), r.offset.into());
    object.insert("timestamp".into(), r.timestamp.into());
    put_bytes(&mut object, "key", r.key);
    put_bytes(&mut object, "value", r.value);
    let headers: Vec<Value> = r
        .headers
        .iter()
        .map(|h| {
            let mut header = Map::new();
            put_bytes(&mut header, "key", Some(h.key));
            put_bytes(&mut header, "value", h.value);
            Value::Object(header)
        })
        .collect();
    object.insert("headers".into(), headers.into());
    Value::Object(object)
}

/// `name`: the bytes as a string when they are UTF-8, else `name_base64`; null when absent.
fn put_bytes(object: &mut Map<String, Value>, name: &str, bytes: Option<&[u8]>) {
    match bytes.map(std::str::from_utf8) {
        None => {
            object.insert(name.into(), Value::Null);
        }
        Some(Ok(text)) => {
            object.insert(name.into(), text.into());
        }
        Some(Err(_)) => {
            let encoded =
                base64::engine::general_purpose::STANDARD.encode(bytes.unwrap_or_default());
            object.insert(format!("{name}_base64"), encoded.into());
        }
    }
}

/// Decodes standard base64 (what `*_base64` fields carry).
pub fn decode_base64(text: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| format!("not base64: {e}"))
}
