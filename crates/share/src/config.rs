//! A share group's configuration: Kafka's group configs (`share.*`, set with
//! IncrementalAlterConfigs on a GROUP resource) and Sluice's own, parsed from the overrides the
//! metadata image keeps for the group and checked against their bounds.
//!
//! Owns: the keys, their defaults, bounds and documentation, and what a set of overrides
//! means. Not: where the overrides are kept (the metadata log) or who reads them.

use crate::partition::{IN_FLIGHT_RECORDS_MAX, ShareConfig};
use std::collections::BTreeMap;

/// Where a share-partition starts when the group first reads it (`share.auto.offset.reset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AutoOffsetReset {
    /// The log's end at the first fetch: only records produced after it (Kafka's default).
    #[default]
    Latest,
    /// The log's start.
    Earliest,
}

/// Everything a share group's settings decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareGroupConfig {
    /// The share-partitions' rules (locks, delivery limit, order, back-off).
    pub partition: ShareConfig,
    /// `share.session.timeout.ms`: a member silent this long leaves the group.
    pub session_timeout_ms: i32,
    /// `share.heartbeat.interval.ms`: how often members are told to heartbeat.
    pub heartbeat_interval_ms: i32,
    /// `share.auto.offset.reset`.
    pub auto_offset_reset: AutoOffsetReset,
    /// `errors.deadletterqueue.topic.name` (KIP-1191): where records rejected or archived at
    /// the delivery limit are written; `None` (blank): nowhere, they are only archived.
    pub dead_letter_topic: Option<String>,
    /// `errors.deadletterqueue.copy.record.enable`: a dead letter carries the record's key,
    /// value and headers too, not only the context headers.
    pub dead_letter_copy_record: bool,
}

/// Kafka's `errors.deadletterqueue.topic.name.prefix` default: a dead-letter topic's name must
/// start with it (Sluice has no setting for it yet).
pub const DEAD_LETTER_TOPIC_PREFIX: &str = "dlq.";

impl Default for ShareGroupConfig {
    /// Kafka 4's defaults, Sluice's additions off.
    fn default() -> ShareGroupConfig {
        ShareGroupConfig {
            partition: ShareConfig::default(),
            session_timeout_ms: 45_000,
            heartbeat_interval_ms: 5_000,
            auto_offset_reset: AutoOffsetReset::Latest,
            dead_letter_topic: None,
            dead_letter_copy_record: false,
        }
    }
}

/// The type of a group config's value, as DescribeConfigs names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    Boolean,
    Int,
    Long,
    String,
}

/// One group config key.
#[derive(Debug, Clone, Copy)]
pub struct GroupConfigKey {
    pub name: &'static str,
    pub key_type: KeyType,
    /// Sluice's own key, not Kafka's.
    pub sluice_only: bool,
    pub doc: &'static str,
}

const fn key(name: &'static str, key_type: KeyType, doc: &'static str) -> GroupConfigKey {
    GroupConfigKey {
        name,
        key_type,
        sluice_only: false,
        doc,
    }
}

const fn ours(name: &'static str, key_type: KeyType, doc: &'static str) -> GroupConfigKey {
    GroupConfigKey {
        name,
        key_type,
        sluice_only: true,
        doc,
    }
}

/// Every group config key Sluice knows; another is refused.
pub const GROUP_CONFIG_KEYS: &[GroupConfigKey] = &[
    key(
        "share.session.timeout.ms",
        KeyType::Int,
        "how long a share group member may go without a heartbeat before it leaves the group",
    ),
    key(
        "share.heartbeat.interval.ms",
        KeyType::Int,
        "how often share group members are told to heartbeat",
    ),
    key(
        "share.record.lock.duration.ms",
        KeyType::Int,
        "how long a record acquired by a member stays its own before it is released",
    ),
    key(
        "share.auto.offset.reset",
        KeyType::String,
        "where a share-partition starts when the group first reads it: latest or earliest",
    ),
    key(
        "share.delivery.count.limit",
        KeyType::Int,
        "deliveries of a record after which it is archived instead of released",
    ),
    key(
        "share.isolation.level",
        KeyType::String,
        "which records share consumers read: read_uncommitted (the only level served so far)",
    ),
    key(
        "errors.deadletterqueue.topic.name",
        KeyType::String,
        "the topic records rejected or archived at the delivery limit are written to (KIP-1191); blank: none",
    ),
    key(
        "errors.deadletterqueue.copy.record.enable",
        KeyType::Boolean,
        "a dead letter carries the record's key, value and headers, not only the context headers",
    ),
    ours(
        "share.key.ordering",
        KeyType::Boolean,
        "Sluice's: records of one key are held by one member at a time, in offset order",
    ),
    ours(
        "share.retry.backoff.ms",
        KeyType::Long,
        "Sluice's: a released record waits this long, doubled for each delivery after the first",
    ),
    ours(
        "share.retry.backoff.max.ms",
        KeyType::Long,
        "Sluice's: the longest a released record waits",
    ),
];

/// A config refused: Kafka's INVALID_CONFIG.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// The bounds of each number: (least, most).
const SESSION_TIMEOUT_MS: (i64, i64) = (1_000, 3_600_000);
const HEARTBEAT_INTERVAL_MS: (i64, i64) = (100, 3_600_000);
/// Kafka accepts 1 s and up for the group config (its broker bounds default to 15 s-60 s);
/// Sluice takes 1 s to an hour.
const RECORD_LOCK_DURATION_MS: (i64, i64) = (1_000, 3_600_000);
/// Kafka's bounds of `share.delivery.count.limit`.
const DELIVERY_COUNT_LIMIT: (i64, i64) = (2, 10);
const RETRY_BACKOFF_MS: (i64, i64) = (0, 86_400_000);

impl ShareGroupConfig {
    /// `defaults` with `overrides` applied; refuses unknown keys, values that do not parse or
    /// lie outside their bounds, and a session timeout not above the heartbeat interval.
    pub fn with_overrides(
        defaults: &ShareGroupConfig,
        overrides: &BTreeMap<String, String>,
    ) -> Result<ShareGroupConfig, ConfigError> {
        let mut c = defaults.clone();
        for (name, value) in overrides {
            c.set(name, value)?;
        }
        if c.session_timeout_ms <= c.heartbeat_interval_ms {
            return Err(ConfigError(
                "share.session.timeout.ms must be greater than share.heartbeat.interval.ms".into(),
            ));
        }
        let p = &mut c.partition;
        p.retry_backoff_max_ms = p.retry_backoff_max_ms.max(p.retry_backoff_ms);
        assert!(p.in_flight_max <= IN_FLIGHT_RECORDS_MAX);
        Ok(c)
    }

    fn set(&mut self, name: &str, value: &str) -> Result<(), ConfigError> {
        let p = &mut self.partition;
        match name {
            "share.session.timeout.ms" => {
                self.session_timeout_ms = number(name, value, SESSION_TIMEOUT_MS)? as i32;
            }
            "share.heartbeat.interval.ms" => {
                self.heartbeat_interval_ms = number(name, value, HEARTBEAT_INTERVAL_MS)? as i32;
            }
            "share.record.lock.duration.ms" => {
                p.record_lock_duration_ms = number(name, value, RECORD_LOCK_DURATION_MS)?;
            }
            "share.delivery.count.limit" => {
                p.delivery_count_limit = number(name, value, DELIVERY_COUNT_LIMIT)? as u16;
            }
            "share.auto.offset.reset" => {
                self.auto_offset_reset = match value.trim().to_ascii_lowercase().as_str() {
                    "latest" => AutoOffsetReset::Latest,
                    "earliest" => AutoOffsetReset::Earliest,
                    _ => return Err(invalid(name, value, "latest or earliest")),
                };
            }
            "share.isolation.level" => {
                if value.trim() != "read_uncommitted" {
                    return Err(invalid(
                        name,
                        value,
                        "read_uncommitted (read_committed is not served yet)",
                    ));
                }
            }
            "share.key.ordering" => p.key_ordering = boolean(name, value)?,
            "share.retry.backoff.ms" => p.retry_backoff_ms = number(name, value, RETRY_BACKOFF_MS)?,
            "errors.deadletterqueue.topic.name" => {
                self.dead_letter_topic = dead_letter_topic(value)?;
            }
            "errors.deadletterqueue.copy.record.enable" => {
                self.dead_letter_copy_record = boolean(name, value)?;
            }
            "share.retry.backoff.max.ms" => {
                p.retry_backoff_max_ms = number(name, value, RETRY_BACKOFF_MS)?;
            }
            _ => return Err(ConfigError(format!("unknown group config '{name}'"))),
        }
        Ok(())
    }

    /// Every key with the value in force, as DescribeConfigs shows it.
    pub fn values(&self) -> Vec<(&'static str, String)> {
        let p = &self.partition;
        let reset = match self.auto_offset_reset {
            AutoOffsetReset::Latest => "latest",
            AutoOffsetReset::Earliest => "earliest",
        };
        GROUP_CONFIG_KEYS
            .iter()
            .map(|k| {
                let value = match k.name {
                    "share.session.timeout.ms" => self.session_timeout_ms.to_string(),
                    "share.heartbeat.interval.ms" => self.heartbeat_interval_ms.to_string(),
                    "share.record.lock.duration.ms" => p.record_lock_duration_ms.to_string(),
                    "share.auto.offset.reset" => reset.to_string(),
                    "share.delivery.count.limit" => p.delivery_count_limit.to_string(),
                    "share.isolation.level" => "read_uncommitted".to_string(),
                    "share.key.ordering" => p.key_ordering.to_string(),
                    "share.retry.backoff.ms" => p.retry_backoff_ms.to_string(),
                    "share.retry.backoff.max.ms" => p.retry_backoff_max_ms.to_string(),
                    "errors.deadletterqueue.topic.name" => {
                        self.dead_letter_topic.clone().unwrap_or_default()
                    }
                    "errors.deadletterqueue.copy.record.enable" => {
                        self.dead_letter_copy_record.to_string()
                    }
                    other => unreachable!("a key without a value: {other}"),
                };
                (k.name, value)
            })
            .collect()
    }
}

fn boolean(name: &str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(invalid(name, value, "true or false")),
    }
}

/// A dead-letter topic's name: blank for none; else a legal topic name with Kafka's prefix,
/// not an internal one.
fn dead_letter_topic(value: &str) -> Result<Option<String>, ConfigError> {
    let name = value.trim();
    if name.is_empty() {
        return Ok(None);
    }
    let wanted = |why: &str| invalid("errors.deadletterqueue.topic.name", value, why);
    if name.starts_with("__") {
        return Err(wanted("a name not starting with '__'"));
    }
    if !name.starts_with(DEAD_LETTER_TOPIC_PREFIX) {
        return Err(wanted(&format!(
            "a name starting with '{DEAD_LETTER_TOPIC_PREFIX}'"
        )));
    }
    sluice_types::validate_topic_name(name).map_err(|e| wanted(&e.to_string()))?;
    Ok(Some(name.to_string()))
}

fn number(name: &str, value: &str, (least, most): (i64, i64)) -> Result<i64, ConfigError> {
    let n: i64 = value
        .trim()
        .parse()
        .map_err(|_| invalid(name, value, "a whole number"))?;
    if !(least..=most).contains(&n) {
        return Err(invalid(name, value, &format!("{least} to {most}")));
    }
    Ok(n)
}

fn invalid(name: &str, value: &str, wanted: &str) -> ConfigError {
    ConfigError(format!("{name}={value} is invalid: expected {wanted}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(pairs: &[(&str, &str)]) -> Result<ShareGroupConfig, ConfigError> {
        let overrides = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ShareGroupConfig::with_overrides(&ShareGroupConfig::default(), &overrides)
    }

    #[test]
    fn overrides_set_their_values_and_every_key_is_shown() {
        let c = with(&[
            ("share.auto.offset.reset", "earliest"),
            ("share.record.lock.duration.ms", "2000"),
            ("share.delivery.count.limit", "3"),
            ("share.key.ordering", "true"),
            ("share.retry.backoff.ms", "100"),
        ])
        .unwrap();
        assert_eq!(c.auto_offset_reset, AutoOffsetReset::Earliest);
        assert_eq!(c.partition.record_lock_duration_ms, 2000);
        assert_eq!(c.partition.delivery_count_limit, 3);
        assert!(c.partition.key_ordering);
        // A cap below the base is raised to it.
        assert_eq!(c.partition.retry_backoff_max_ms, 100);
        let shown = c.values();
        assert_eq!(shown.len(), GROUP_CONFIG_KEYS.len());
        assert!(shown.contains(&("share.auto.offset.reset", "earliest".to_string())));
    }

    #[test]
    fn unknown_keys_bad_values_and_bounds_are_refused() {
        assert!(with(&[("share.nope", "1")]).is_err());
        assert!(with(&[("share.delivery.count.limit", "1")]).is_err());
        assert!(with(&[("share.delivery.count.limit", "x")]).is_err());
        assert!(with(&[("share.auto.offset.reset", "none")]).is_err());
        assert!(with(&[("share.isolation.level", "read_committed")]).is_err());
        assert!(with(&[("share.record.lock.duration.ms", "999")]).is_err());
        assert!(with(&[("errors.deadletterqueue.topic.name", "orders")]).is_err());
        assert!(with(&[("errors.deadletterqueue.topic.name", "__dlq.x")]).is_err());
        assert!(with(&[("errors.deadletterqueue.topic.name", "dlq.a b")]).is_err());
        let dlq = with(&[("errors.deadletterqueue.topic.name", "dlq.orders")]).unwrap();
        assert_eq!(dlq.dead_letter_topic.as_deref(), Some("dlq.orders"));
        let none = with(&[("errors.deadletterqueue.topic.name", "")]).unwrap();
        assert_eq!(none.dead_letter_topic, None);
        let e = with(&[("share.heartbeat.interval.ms", "50000")]).unwrap_err();
        assert!(e.0.contains("greater than"), "{e}");
    }
}
