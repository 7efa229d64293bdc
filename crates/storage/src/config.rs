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
        doc: "delete (drop whole segments past retention), compact (keep the last record per key), or compact,delete",
    },
    ConfigKey {
        name: "delete.retention.ms",
        default: "86400000",
        doc: "compaction keeps a tombstone this long after its timestamp",
    },
    ConfigKey {
        name: "min.cleanable.dirty.ratio",
        default: "0.5",
        doc: "compact when this share of the cleanable log is not yet compacted",
    },
    ConfigKey {
        name: "min.compaction.lag.ms",
        default: "0",
        doc: "records younger than this are not compacted",
    },
    ConfigKey {
        name: "max.compaction.lag.ms",
        default: "9223372036854775807",
        doc: "a record is compacted within this long, whatever the dirty ratio",
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
        doc: "acks=all needs at least this many in-sync replicas (else NOT_ENOUGH_REPLICAS)",
    },
    ConfigKey {
        name: "unclean.leader.election.enable",
        default: "false",
        doc: "a replica outside the in-sync set may lead when none in it is alive (may lose data)",
    },
    ConfigKey {
        name: "errors.deadletterqueue.group.enable",
        default: "false",
        doc: "share groups may write their dead letters to this topic (KIP-1191)",
    },
];

/// The effective configuration of one topic's logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// `cleanup.policy` includes `delete`: retention drops old segments.
    pub cleanup_delete: bool,
    /// `cleanup.policy` includes `compact`: the cleaner keeps the last record per key.
    pub cleanup_compact: bool,
    pub delete_retention_ms: i64,
    /// `min.cleanable.dirty.ratio`, in thousandths (so the config stays `Eq`).
    pub min_cleanable_dirty_ratio_permille: u32,
    pub min_compaction_lag_ms: i64,
    pub max_compaction_lag_ms: i64,
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
        "cleanup.policy" => parse_cleanup_policy(value).map(|_| ()),
        "min.cleanable.dirty.ratio" => parse_ratio_permille(value).map(|_| ()),
        "message.timestamp.type" if value != "CreateTime" => Err(invalid(
            key,
            value,
            "Sluice supports only CreateTime so far",
        )),
        "min.insync.replicas" => match value.trim().parse::<i32>() {
            Ok(n) if n >= 1 => Ok(()),
            _ => Err(invalid(key, value, "must be a whole number of at least 1")),
        },
        "unclean.leader.election.enable" | "errors.deadletterqueue.group.enable" => {
            match value.trim() {
                "true" | "false" => Ok(()),
                _ => Err(invalid(key, value, "must be true or false")),
            }
        }
        _ if TOPIC_CONFIG_KEYS.iter().any(|k| k.name == key) => {
            let mut one = BTreeMap::new();
            one.insert(key.to_string(), value.to_string());
            let numeric = key != "message.timestamp.type";
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
        let value = |key: &str| m.get(key).map_or(default_of(key), String::as_str);
        let (cleanup_delete, cleanup_compact) = parse_cleanup_policy(value("cleanup.policy"))?;
        Ok(LogConfig {
            cleanup_delete,
            cleanup_compact,
            delete_retention_ms: parse_i64(m, "delete.retention.ms", 0, i64::MAX)?,
            min_cleanable_dirty_ratio_permille: parse_ratio_permille(value(
                "min.cleanable.dirty.ratio",
            ))?,
            min_compaction_lag_ms: parse_i64(m, "min.compaction.lag.ms", 0, i64::MAX)?,
            max_compaction_lag_ms: parse_i64(m, "max.compaction.lag.ms", 1, i64::MAX)?,
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

/// `delete`, `compact`, or both (comma-separated, either order): (delete, compact).
fn parse_cleanup_policy(value: &str) -> Result<(bool, bool)> {
    let (mut delete, mut compact) = (false, false);
    for part in value.split(',').map(str::trim) {
        match part {
            "delete" => delete = true,
            "compact" => compact = true,
            _ => {
                return Err(invalid(
                    "cleanup.policy",
                    value,
                    "expected delete, compact or compact,delete",
                ));
            }
        }
    }
    Ok((delete, compact))
}

fn parse_ratio_permille(value: &str) -> Result<u32> {
    let key = "min.cleanable.dirty.ratio";
    let ratio: f64 = value
        .trim()
        .parse()
        .map_err(|_| invalid(key, value, "not a number"))?;
    if !(0.0..=1.0).contains(&ratio) {
        return Err(invalid(key, value, "must be between 0 and 1"));
    }
    Ok((ratio * 1000.0).round() as u32)
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
        assert!(LogConfig::from_overrides(&one("cleanup.policy", "shred")).is_err());
        let c = LogConfig::from_overrides(&one("cleanup.policy", "compact, delete")).unwrap();
        assert!(c.cleanup_compact && c.cleanup_delete);
        let c = LogConfig::from_overrides(&one("cleanup.policy", "compact")).unwrap();
        assert!(c.cleanup_compact && !c.cleanup_delete);
        let c = LogConfig::from_overrides(&one("min.cleanable.dirty.ratio", "0.25")).unwrap();
        assert_eq!(c.min_cleanable_dirty_ratio_permille, 250);
        assert!(LogConfig::from_overrides(&one("min.cleanable.dirty.ratio", "1.5")).is_err());
    }
}
