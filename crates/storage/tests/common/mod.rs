//! Helpers shared by the storage integration tests.

use sluice_storage::LogConfig;
use std::collections::BTreeMap;

/// A log config with these overrides of Kafka's defaults.
pub fn config(pairs: &[(&str, &str)]) -> LogConfig {
    let map: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    LogConfig::from_overrides(&map).unwrap()
}
