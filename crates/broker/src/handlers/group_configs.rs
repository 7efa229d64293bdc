//! Group configs (Kafka's GROUP config resource, type 32): described, altered and read.
//!
//! A group's overrides are metadata records like a topic's; what the keys mean, their defaults
//! and bounds are `sluice_share::ShareGroupConfig`'s. A group's configs exist whether or not
//! the group does, as in Kafka.

use super::configs::ConfigEntry;
use kafka_protocol::error::ResponseError;
use sluice_controller::{ConfigResource, MetadataImage};
use sluice_share::{GROUP_CONFIG_KEYS, KeyType, ShareGroupConfig};
use std::collections::BTreeMap;

pub(crate) const RESOURCE_GROUP: i8 = 32;
const SOURCE_GROUP_CONFIG: i8 = 8;
const SOURCE_DEFAULT: i8 = 5;

/// The group's overrides as the image has them.
pub(crate) fn overrides(image: &MetadataImage, group: &str) -> BTreeMap<String, String> {
    let resource = ConfigResource::Group(group.to_string());
    image.configs.get(&resource).cloned().unwrap_or_default()
}

/// The settings in force for `group`: the defaults with its overrides. Overrides the image
/// holds were checked when they were altered; should a set be refused now (a bound changed),
/// the defaults serve and the refusal is logged.
pub(crate) fn share_config(image: &MetadataImage, group: &str) -> ShareGroupConfig {
    let defaults = ShareGroupConfig::default();
    ShareGroupConfig::with_overrides(&defaults, &overrides(image, group)).unwrap_or_else(|e| {
        tracing::warn!(group, error = %e, "the group's configs are refused; defaults serve");
        defaults
    })
}

/// Every group config with its value and where it comes from.
pub(crate) fn entries(image: &MetadataImage, group: &str) -> Vec<ConfigEntry> {
    let set = overrides(image, group);
    let config = share_config(image, group);
    config
        .values()
        .into_iter()
        .map(|(name, value)| {
            let key = GROUP_CONFIG_KEYS
                .iter()
                .find(|k| k.name == name)
                .expect("values() names known keys");
            ConfigEntry {
                name,
                value,
                source: if set.contains_key(name) {
                    SOURCE_GROUP_CONFIG
                } else {
                    SOURCE_DEFAULT
                },
                config_type: match key.key_type {
                    KeyType::Boolean => 1,
                    KeyType::Int => 3,
                    KeyType::Long => 5,
                    KeyType::String => 2,
                },
                read_only: false,
                doc: key.doc,
            }
        })
        .collect()
}

/// The group's new overrides: `change` applied to the current ones, then checked.
pub(crate) fn new_overrides(
    image: &MetadataImage,
    group: &str,
    change: impl FnOnce(&mut BTreeMap<String, String>) -> Result<(), String>,
) -> Result<BTreeMap<String, String>, (i16, String)> {
    let invalid = |why: String| (ResponseError::InvalidConfig.code(), why);
    if group.is_empty() || group.len() > sluice_types::limits::GROUP_ID_BYTES_MAX {
        return Err((
            ResponseError::InvalidRequest.code(),
            format!("a group id of {} bytes", group.len()),
        ));
    }
    let mut set = overrides(image, group);
    change(&mut set).map_err(invalid)?;
    ShareGroupConfig::with_overrides(&ShareGroupConfig::default(), &set)
        .map_err(|e| invalid(e.0))?;
    Ok(set)
}
