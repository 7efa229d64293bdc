//! Per-topic log configuration under Kafka's keys, its defaults, and validation.
//!
//! A topic stores only its overrides (key → string, as the client sent them); the effective
//! `LogConfig` is the defaults with those overrides applied. Keys Sluice does not implement are
//! refused with a clear message rather than silently stored.

use crate::{Result, StorageError};
use sluice_types::limits::{CONFIG_VALUE_BYTES_MAX, SEGMENT_BYTES_MAX, SEGMENT_BYTES_MIN};
use std::collections::BTreeMap;

/// One supported topic config key, with its Kafka default and documentation.
pub struct ConfigKey {
    pub name: &'static str,
    pub default: &'static str,
    pub doc: &'static str,
}

/// Every topic-level key Sluice accepts. `flush.ms` differs from Kafka (whose default is
/// "never"): a single node has no replica to fall back on, so Sluice fsyncs `acks=0/1` writes
/// at least once a second.
pub const TOPIC_CONFIG_KEYS: &[ConfigKey] = &[
    ConfigKey {
        name: "cleanup.policy",
        default: "delete",
        doc: "delete: drop whole segments past retention",
    },
    ConfigKey {
        name: "retention.ms",
        default: "604800000",
        doc: "keep records at least this long; -1 forever",
    },
    ConfigKey {
        name: "retention.bytes",
        default: "-1",
        doc: "per-partition size bound; -1 none",
    },
    ConfigKey {
        name: "segment.bytes",
        default: "1073741824",
        doc: "roll a segment at this size",
    },
    ConfigKey {
        name: "segment.ms",
        default: "604800000",
        doc: "roll a segment at this age",
    },
    ConfigKey {
        name: "flush.ms",
        default: "1000",
        doc: "fsync acks=0/1 writes at least this often",
    },
    ConfigKey {
        name: "flush.messages",
        default: "9223372036854775807",
        doc: "fsync after this many unflushed records",
    },
    ConfigKey {
        name: "max.message.bytes",
        default: "1048588",
        doc: "largest record batch accepted",
    },
    ConfigKey {
        name: "index.interval.bytes",
        default: "4096",
        doc: "bytes between offset index entries",
    },
    ConfigKey {
        name: "message.timestamp.type",
        default: "CreateTime",
        doc: "CreateTime only",
    },
    ConfigKey {
        name: "min.insync.replicas",
        default: "1",
        doc: "single node: 1 only",
    },
];

/// The effective configuration of one topic's logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    pub retention_ms: i64,
    pub retention_bytes: i64,
    pub segment_bytes: u64,
    pub segment_ms: i64,
    pub flush_ms: i64,
    pub flush_messages: i64,
    pub max_message_bytes: u32,
    pub index_interval_bytes: u32,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig::from_overrides(&BTreeMap::new()).expect("defaults are valid")
    }
}

fn default_of(key: &str) -> &'static str {
    TOPIC_CONFIG_KEYS
        .iter()
        .find(|k| k.name == key)
        .map(|k| k.default)
        .expect("known key")
}

fn invalid(key: &str, value: &str, why: &str) -> StorageError {
    StorageError::InvalidConfig(format!("{key}={value}: {why}"))
}

fn parse_i64(map: &BTreeMap<String, String>, key: &str, min: i64, max: i64) -> Result<i64> {
    let value = map
        .get(key)
        .map(String::as_str)
        .unwrap_or_else(|| default_of(key));
    let v: i64 = value
        .trim()
        .parse()
        .map_err(|_| invalid(key, value, "not an integer"))?;
    if v < min || v > max {
        return Err(invalid(
            key,
            value,
            &format!("must be between {min} and {max}"),
        ));
    }
    Ok(v)
}

impl LogConfig {
    /// Validates every override and builds the effective config.
    pub fn from_overrides(overrides: &BTreeMap<String, String>) -> Result<LogConfig> {
        for (key, value) in overrides {
            validate_entry(key, value)?;
        }
        LogConfig::from_overrides_unchecked(overrides)
    }
}

/// Checks one key and value on their own (so AlterConfigs can refuse a bad entry by name).
pub fn validate_entry(key: &str, value: &str) -> Result<()> {
    if value.len() > CONFIG_VALUE_BYTES_MAX {
        return Err(invalid(key, "…", "value too long"));
    }
    match key {
        "cleanup.policy" if value != "delete" => Err(invalid(
            key,
            value,
            "Sluice supports only cleanup.policy=delete so far",
        )),
        "message.timestamp.type" if value != "CreateTime" => Err(invalid(
            key,
            value,
            "Sluice supports only CreateTime so far",
        )),
        "min.insync.replicas" if value.trim() != "1" => {
            Err(invalid(key, value, "a single-node broker has one replica"))
        }
        _ if TOPIC_CONFIG_KEYS.iter().any(|k| k.name == key) => {
            let mut one = BTreeMap::new();
            one.insert(key.to_string(), value.to_string());
            let numeric = !matches!(key, "cleanup.policy" | "message.timestamp.type");
            if numeric {
                LogConfig::from_overrides_unchecked(&one).map(|_| ())
            } else {
                Ok(())
            }
        }
        _ => Err(StorageError::InvalidConfig(format!(
            "unknown topic config key '{key}'"
        ))),
    }
}

impl LogConfig {
    fn from_overrides_unchecked(m: &BTreeMap<String, String>) -> Result<LogConfig> {
        Ok(LogConfig {
            retention_ms: parse_i64(m, "retention.ms", -1, i64::MAX)?,
            retention_bytes: parse_i64(m, "retention.bytes", -1, i64::MAX)?,
            segment_bytes: parse_i64(
                m,
                "segment.bytes",
                SEGMENT_BYTES_MIN as i64,
                SEGMENT_BYTES_MAX as i64,
            )? as u64,
            segment_ms: parse_i64(m, "segment.ms", 1, i64::MAX)?,
            flush_ms: parse_i64(m, "flush.ms", 0, i64::MAX)?,
            flush_messages: parse_i64(m, "flush.messages", 1, i64::MAX)?,
            max_message_bytes: parse_i64(m, "max.message.bytes", 0, i32::MAX as i64)? as u32,
            index_interval_bytes: parse_i64(m, "index.interval.bytes", 0, i32::MAX as i64)? as u32,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(k: &str, v: &str) -> BTreeMap<String, String> {
        [(k.to_string(), v.to_string())].into()
    }

    #[test]
    fn overrides_apply_and_bad_values_are_refused() {
        let c = LogConfig::from_overrides(&one("retention.ms", "-1")).unwrap();
        assert_eq!(c.retention_ms, -1);
        assert_eq!(c.segment_bytes, 1 << 30);
        assert!(LogConfig::from_overrides(&one("retention.ms", "soon")).is_err());
        assert!(LogConfig::from_overrides(&one("segment.bytes", "1")).is_err());
        assert!(LogConfig::from_overrides(&one("no.such.key", "1")).is_err());
        assert!(LogConfig::from_overrides(&one("cleanup.policy", "compact")).is_err());
    }
}
