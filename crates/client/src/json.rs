//! The JSON form of a record, shared by `sluice consume --format json` and the HTTP API:
//!
//! ```json
//! {"topic":"t","partition":0,"offset":42,"timestamp":1795420800000,
//!  "key":"k","value":"v","headers":[{"key":"h","value":"1"}]}
//! ```
//! `key` and `value` are strings when their bytes are UTF-8 and `null` when absent; other
//! bytes come as `key_base64` / `value_base64` instead. Headers are a list because Kafka lets
//! a header key repeat. A `ValueFormat` other than text writes the value as the JSON it holds,
//! or always as base64.

use base64::Engine;
use serde_json::{Map, Value};
use sluice_record::Record;

/// How a record's value is written in JSON (the HTTP API's `value_format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ValueFormat {
    /// A string when the bytes are UTF-8, else `value_base64`.
    #[default]
    Text,
    /// The JSON the bytes hold (an object comes back as that object); bytes that are not JSON
    /// come as `value_base64`.
    Json,
    /// Always `value_base64`.
    Base64,
}

impl ValueFormat {
    /// `text`, `json` or `base64`.
    pub fn parse(name: &str) -> Result<ValueFormat, String> {
        match name {
            "text" => Ok(ValueFormat::Text),
            "json" => Ok(ValueFormat::Json),
            "base64" => Ok(ValueFormat::Base64),
            other => Err(format!(
                "value_format is text, json or base64, not {other:?}"
            )),
        }
    }
}

/// The record as a JSON object; `topic` and `partition` are included when given.
pub fn record_to_json(topic: Option<&str>, partition: Option<i32>, r: &Record<'_>) -> Value {
    record_to_json_as(topic, partition, r, ValueFormat::Text)
}

/// As `record_to_json`, the value written as `format` says.
pub fn record_to_json_as(
    topic: Option<&str>,
    partition: Option<i32>,
    r: &Record<'_>,
    format: ValueFormat,
) -> Value {
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
    match (format, r.value) {
        (ValueFormat::Text, value) | (_, value @ None) => put_bytes(&mut object, "value", value),
        (ValueFormat::Json, Some(bytes)) => match serde_json::from_slice::<Value>(bytes) {
            Ok(parsed) => {
                object.insert("value".into(), parsed);
            }
            Err(_) => put_base64(&mut object, "value", bytes),
        },
        (ValueFormat::Base64, Some(bytes)) => put_base64(&mut object, "value", bytes),
    }
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
        Some(Err(_)) => put_base64(object, name, bytes.unwrap_or_default()),
    }
}

/// `name_base64`: the bytes in standard base64.
fn put_base64(object: &mut Map<String, Value>, name: &str, bytes: &[u8]) {
    let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
    object.insert(format!("{name}_base64"), encoded.into());
}

/// Decodes standard base64 (what `*_base64` fields carry).
pub fn decode_base64(text: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| format!("not base64: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(value: Option<&[u8]>) -> Record<'_> {
        Record {
            offset: 1,
            timestamp: 2,
            key: Some(b"k"),
            value,
            headers: Vec::new(),
        }
    }

    #[test]
    fn values_are_written_as_the_format_says() {
        let object = br#"{"amount":12.5,"tags":["a"]}"#;
        let as_json = record_to_json_as(None, None, &record(Some(object)), ValueFormat::Json);
        assert_eq!(
            as_json["value"],
            serde_json::json!({"amount": 12.5, "tags": ["a"]})
        );
        assert_eq!(as_json["key"], "k");
        let as_text = record_to_json(None, None, &record(Some(object)));
        assert_eq!(as_text["value"], std::str::from_utf8(object).unwrap());
        let not_json = record_to_json_as(None, None, &record(Some(b"plain")), ValueFormat::Json);
        assert_eq!(
            (not_json.get("value"), &not_json["value_base64"]),
            (None, &Value::from("cGxhaW4="))
        );
        let b64 = record_to_json_as(None, None, &record(Some(b"hi")), ValueFormat::Base64);
        assert_eq!(b64["value_base64"], "aGk=");
        let null = record_to_json_as(None, None, &record(None), ValueFormat::Json);
        assert_eq!(null["value"], Value::Null);
        assert!(ValueFormat::parse("xml").is_err());
    }
}
