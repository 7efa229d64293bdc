//! DescribeConfigs (v1–v4), AlterConfigs (v0–v2) and IncrementalAlterConfigs (v0–v1).
//!
//! Topic configs are the keys of `sluice_storage::TOPIC_CONFIG_KEYS`; overrides are metadata
//! records: this broker checks the new set (storage knows the keys), the active controller
//! commits it, and the answer comes once this broker has published it. Broker configs can be described (read-only, from the command line or config file)
//! but not altered: Sluice has no dynamic broker configs, so altering one is refused with
//! `INVALID_REQUEST`. Group configs (resource type 32) are `group_configs.rs`'s.

use super::{first_of_each, group_configs, now};
use crate::controller_client::CONTROLLER_WAIT_MAX;
use crate::error;
use crate::server::Broker;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
    incremental_alter_configs_response,
};
use kafka_protocol::protocol::StrBytes;
use sluice_controller::{
    ConfigChanges, ConfigResource, ControllerCommand, ControllerReply, MetadataImage,
};
use sluice_storage::{StorageError, TOPIC_CONFIG_KEYS};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const SOURCE_DYNAMIC_TOPIC: i8 = 1;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;
const TYPE_STRING: i8 = 2;
const TYPE_LONG: i8 = 5;
const TYPE_LIST: i8 = 7;
const TYPE_BOOLEAN: i8 = 1;
const TYPE_INT: i8 = 3;

/// One described config entry.
pub(crate) struct ConfigEntry {
    pub name: &'static str,
    pub value: String,
    pub source: i8,
    pub config_type: i8,
    pub read_only: bool,
    pub doc: &'static str,
}

fn topic_config_type(name: &str) -> i8 {
    match name {
        "cleanup.policy" => TYPE_LIST,
        "message.timestamp.type" => TYPE_STRING,
        "unclean.leader.election.enable" | "errors.deadletterqueue.group.enable" => TYPE_BOOLEAN,
        "max.message.bytes" | "index.interval.bytes" | "segment.bytes" | "min.insync.replicas" => {
            TYPE_INT
        }
        _ => TYPE_LONG,
    }
}

/// Every topic config with its effective value and where that value comes from: the topic's
/// own, the broker's setting (`min.insync.replicas` from `min_insync_replicas`, when set), or
/// the default.
pub(crate) fn topic_config_entries(
    overrides: &BTreeMap<String, String>,
    config: &crate::config::BrokerConfig,
) -> Vec<ConfigEntry> {
    TOPIC_CONFIG_KEYS
        .iter()
        .map(|k| {
            let (value, source) = match (overrides.get(k.name), broker_default(k.name, config)) {
                (Some(v), _) => (v.clone(), SOURCE_DYNAMIC_TOPIC),
                (None, Some(v)) if v != k.default => (v, SOURCE_STATIC_BROKER),
                (None, _) => (k.default.to_string(), SOURCE_DEFAULT),
            };
            ConfigEntry {
                name: k.name,
                value,
                source,
                config_type: topic_config_type(k.name),
                read_only: false,
                doc: k.doc,
            }
        })
        .collect()
}

/// The broker's setting for a topic config, where it has one.
fn broker_default(name: &str, config: &crate::config::BrokerConfig) -> Option<String> {
    match name {
        "min.insync.replicas" => Some(config.min_insync_replicas.to_string()),
        "unclean.leader.election.enable" => Some(config.unclean_leader_election_enable.to_string()),
        _ => None,
    }
}

fn broker_config_entries(broker: &Broker) -> Vec<ConfigEntry> {
    let c = &broker.config;
    let entry = |name, value: String, config_type, doc| ConfigEntry {
        name,
        value,
        source: SOURCE_STATIC_BROKER,
        config_type,
        read_only: true,
        doc,
    };
    vec![
        entry(
            "broker.id",
            broker.metadata().local_node_id().to_string(),
            TYPE_INT,
            "this node's id",
        ),
        entry(
            "log.dirs",
            c.data_dir.display().to_string(),
            TYPE_STRING,
            "the data directory",
        ),
        entry(
            "auto.create.topics.enable",
            c.auto_create_topics.to_string(),
            TYPE_BOOLEAN,
            "Metadata creates unknown topics",
        ),
        entry(
            "num.partitions",
            c.default_partitions.to_string(),
            TYPE_INT,
            "partitions of auto-created topics",
        ),
        entry(
            "socket.request.max.bytes",
            c.request_frame_bytes_max.to_string(),
            TYPE_INT,
            "largest request frame",
        ),
        entry(
            "log.retention.check.interval.ms",
            c.retention_check_interval_ms.to_string(),
            TYPE_LONG,
            "how often retention runs",
        ),
        entry(
            "min.insync.replicas",
            c.min_insync_replicas.to_string(),
            TYPE_INT,
            "acks=all needs at least this many in-sync replicas, for topics that do not set it",
        ),
        entry(
            "unclean.leader.election.enable",
            c.unclean_leader_election_enable.to_string(),
            TYPE_BOOLEAN,
            "a replica outside the in-sync set may lead when none in it is alive, for topics that do not set it",
        ),
        entry(
            "producer.id.expiration.ms",
            c.producer_id_expiration_ms.to_string(),
            TYPE_LONG,
            "how long an idle idempotent producer's sequence state is kept",
        ),
    ]
}

pub(crate) fn describe(
    broker: &Arc<Broker>,
    request: DescribeConfigsRequest,
    _version: i16,
) -> std::future::Ready<Option<DescribeConfigsResponse>> {
    let include_synonyms = request.include_synonyms;
    let include_docs = request.include_documentation;
    let image = broker.published_image();
    let results = first_of_each(request.resources, |r| {
        (r.resource_type, r.resource_name.clone())
    })
    .into_iter()
    .map(|r| {
        let result = DescribeConfigsResult::default()
            .with_resource_type(r.resource_type)
            .with_resource_name(r.resource_name.clone());
        let entries = match r.resource_type {
            RESOURCE_TOPIC => match topic_overrides(&image, &r.resource_name) {
                Some(overrides) => topic_config_entries(&overrides, &broker.config),
                None => {
                    return result
                        .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                        .with_error_message(Some(StrBytes::from_string(format!(
                            "unknown topic '{}'",
                            r.resource_name.as_str()
                        ))));
                }
            },
            RESOURCE_BROKER => broker_config_entries(broker),
            group_configs::RESOURCE_GROUP => group_configs::entries(&image, &r.resource_name),
            other => {
                return result
                    .with_error_code(ResponseError::InvalidRequest.code())
                    .with_error_message(Some(StrBytes::from_string(format!(
                        "resource type {other} is not supported"
                    ))));
            }
        };
        // Null or empty asks for every key (kafka-python sends an empty list).
        let wanted = |name: &str| {
            r.configuration_keys
                .as_ref()
                .is_none_or(|keys| keys.is_empty() || keys.iter().any(|k| k.as_str() == name))
        };
        let configs = entries
            .into_iter()
            .filter(|e| wanted(e.name))
            .map(|e| describe_entry(e, include_synonyms, include_docs))
            .collect();
        result.with_configs(configs)
    })
    .collect();
    now(DescribeConfigsResponse::default().with_results(results))
}

fn describe_entry(
    e: ConfigEntry,
    include_synonyms: bool,
    include_docs: bool,
) -> DescribeConfigsResourceResult {
    let value = StrBytes::from_string(e.value);
    let synonyms = if include_synonyms {
        vec![
            DescribeConfigsSynonym::default()
                .with_name(StrBytes::from_static_str(e.name))
                .with_value(Some(value.clone()))
                .with_source(e.source),
        ]
    } else {
        vec![]
    };
    DescribeConfigsResourceResult::default()
        .with_name(StrBytes::from_static_str(e.name))
        .with_value(Some(value))
        .with_read_only(e.read_only)
        .with_config_source(e.source)
        .with_config_type(e.config_type)
        .with_synonyms(synonyms)
        .with_documentation(include_docs.then(|| StrBytes::from_static_str(e.doc)))
}

/// The outcome of altering one resource: error code and message.
type AlterOutcome = Result<(), (i16, String)>;

/// A resource and its new overrides, or why they are refused.
type Planned = (
    ConfigResource,
    Result<BTreeMap<String, String>, (i16, String)>,
);

/// A topic's overrides as the image has them; `None` if the topic does not exist.
fn topic_overrides(image: &MetadataImage, name: &str) -> Option<BTreeMap<String, String>> {
    image.topic(name)?;
    let resource = ConfigResource::Topic(name.to_string());
    Some(image.configs.get(&resource).cloned().unwrap_or_default())
}

/// A resource's new overrides, checked here: `change` applied to the current ones.
fn new_overrides(
    image: &MetadataImage,
    resource_type: i8,
    name: &str,
    change: impl FnOnce(&mut BTreeMap<String, String>) -> Result<(), StorageError>,
) -> Planned {
    let resource = match resource_type {
        group_configs::RESOURCE_GROUP => ConfigResource::Group(name.to_string()),
        _ => ConfigResource::Topic(name.to_string()),
    };
    let overrides = if resource_type == group_configs::RESOURCE_GROUP {
        group_configs::new_overrides(image, name, |o| change(o).map_err(|e| e.to_string()))
    } else {
        new_topic_overrides(image, resource_type, name, change)
    };
    (resource, overrides)
}

fn new_topic_overrides(
    image: &MetadataImage,
    resource_type: i8,
    name: &str,
    change: impl FnOnce(&mut BTreeMap<String, String>) -> Result<(), StorageError>,
) -> Result<BTreeMap<String, String>, (i16, String)> {
    match resource_type {
        RESOURCE_TOPIC => {}
        RESOURCE_BROKER => {
            return Err((
                ResponseError::InvalidRequest.code(),
                "Sluice broker configs are static; set them at startup".into(),
            ));
        }
        other => {
            return Err((
                ResponseError::InvalidRequest.code(),
                format!("resource type {other} is not supported"),
            ));
        }
    }
    let mut overrides = topic_overrides(image, name).ok_or_else(|| {
        (
            ResponseError::UnknownTopicOrPartition.code(),
            format!("unknown topic '{name}'"),
        )
    })?;
    let err = |e: StorageError| (error::code(&e), e.to_string());
    change(&mut overrides).map_err(err)?;
    sluice_storage::LogConfig::from_overrides(&overrides).map_err(err)?;
    Ok(overrides)
}

/// Commits the checked new override sets through the controller (unless `validate_only`);
/// one outcome per entry, once this broker has published them.
async fn commit(broker: &Broker, planned: Vec<Planned>, validate_only: bool) -> Vec<AlterOutcome> {
    let changes: Vec<ConfigChanges> = planned
        .iter()
        .filter_map(|(resource, p)| p.as_ref().ok().map(|set| (resource, set)))
        .map(|(resource, set)| ConfigChanges {
            resource: resource.clone(),
            replace: true,
            set: set.clone().into_iter().collect(),
            remove: Vec::new(),
        })
        .collect();
    if validate_only || changes.is_empty() {
        return planned.into_iter().map(|(_, p)| p.map(|_| ())).collect();
    }
    let limit = CONTROLLER_WAIT_MAX;
    let command = ControllerCommand::AlterConfigs(changes.clone());
    let committed: Vec<AlterOutcome> = broker
        .submit_each(command, changes.len(), limit, |reply| match reply {
            ControllerReply::ConfigsAltered(results) => Some(results),
            _ => None,
        })
        .await
        .into_iter()
        .map(|r| r.map_err(|e| (e.error.code(), e.message)))
        .collect();
    let shown = broker
        .wait_published(limit, |image| {
            changes
                .iter()
                .zip(&committed)
                .filter(|(_, r)| r.is_ok())
                .all(|(c, _)| {
                    let now = image.configs.get(&c.resource).cloned().unwrap_or_default();
                    let gone = match &c.resource {
                        ConfigResource::Topic(name) => image.topic(name).is_none(),
                        ConfigResource::Broker(_) | ConfigResource::Group(_) => false,
                    };
                    now.into_iter().collect::<Vec<_>>() == c.set || gone
                })
        })
        .await;
    if !shown {
        tracing::warn!("altered configs not yet published on this broker");
    }
    let mut committed = committed.into_iter();
    planned
        .into_iter()
        .map(|(_, p)| match p {
            Ok(_) => committed.next().expect("one per change"),
            Err(e) => Err(e),
        })
        .collect()
}

pub(crate) fn alter(
    broker: &Arc<Broker>,
    request: AlterConfigsRequest,
    _version: i16,
) -> impl Future<Output = Option<AlterConfigsResponse>> + Send + 'static + use<> {
    let broker = broker.clone();
    async move {
        let image = broker.published_image();
        let planned = request
            .resources
            .iter()
            .map(|r| {
                // AlterConfigs replaces the whole set of overrides with the one given.
                new_overrides(&image, r.resource_type, &r.resource_name, |o| {
                    o.clear();
                    for c in &r.configs {
                        if let Some(v) = &c.value {
                            o.insert(c.name.to_string(), v.to_string());
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        let outcomes = commit(&broker, planned, request.validate_only).await;
        let responses = request
            .resources
            .into_iter()
            .zip(outcomes)
            .map(|(r, outcome)| {
                let (code, message) = split(outcome);
                AlterConfigsResourceResponse::default()
                    .with_resource_type(r.resource_type)
                    .with_resource_name(r.resource_name)
                    .with_error_code(code)
                    .with_error_message(message)
            })
            .collect();
        Some(AlterConfigsResponse::default().with_responses(responses))
    }
}

const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

pub(crate) fn incremental_alter(
    broker: &Arc<Broker>,
    request: IncrementalAlterConfigsRequest,
    _version: i16,
) -> impl Future<Output = Option<IncrementalAlterConfigsResponse>> + Send + 'static + use<> {
    let broker = broker.clone();
    async move {
        let image = broker.published_image();
        let planned = request
            .resources
            .iter()
            .map(|r| {
                new_overrides(&image, r.resource_type, &r.resource_name, |o| {
                    for c in &r.configs {
                        apply_op(o, c.name.as_str(), c.config_operation, c.value.as_deref())?;
                    }
                    Ok(())
                })
            })
            .collect();
        let outcomes = commit(&broker, planned, request.validate_only).await;
        let responses = request
            .resources
            .into_iter()
            .zip(outcomes)
            .map(|(r, outcome)| {
                let (code, message) = split(outcome);
                incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                    .with_resource_type(r.resource_type)
                    .with_resource_name(r.resource_name)
                    .with_error_code(code)
                    .with_error_message(message)
            })
            .collect();
        Some(IncrementalAlterConfigsResponse::default().with_responses(responses))
    }
}

fn apply_op(
    overrides: &mut BTreeMap<String, String>,
    name: &str,
    op: i8,
    value: Option<&str>,
) -> Result<(), StorageError> {
    let invalid = |why: &str| StorageError::InvalidConfig(format!("{name}: {why}"));
    match op {
        OP_SET => {
            overrides.insert(
                name.to_string(),
                value
                    .ok_or_else(|| invalid("SET needs a value"))?
                    .to_string(),
            );
        }
        OP_DELETE => {
            overrides.remove(name);
        }
        OP_APPEND | OP_SUBTRACT if topic_config_type(name) == TYPE_LIST => {
            let value = value.ok_or_else(|| invalid("APPEND/SUBTRACT need a value"))?;
            let default = TOPIC_CONFIG_KEYS
                .iter()
                .find(|k| k.name == name)
                .map_or("", |k| k.default);
            let current = overrides.get(name).map_or(default, String::as_str);
            let mut items: Vec<&str> = current.split(',').filter(|s| !s.is_empty()).collect();
            for item in value.split(',').filter(|s| !s.is_empty()) {
                if op == OP_APPEND && !items.contains(&item) {
                    items.push(item);
                } else if op == OP_SUBTRACT {
                    items.retain(|x| *x != item);
                }
            }
            overrides.insert(name.to_string(), items.join(","));
        }
        OP_APPEND | OP_SUBTRACT => {
            return Err(invalid("APPEND and SUBTRACT apply only to list configs"));
        }
        other => return Err(invalid(&format!("unknown operation {other}"))),
    }
    Ok(())
}

fn split(outcome: AlterOutcome) -> (i16, Option<StrBytes>) {
    match outcome {
        Ok(()) => (0, None),
        Err((code, message)) => (code, Some(StrBytes::from_string(message))),
    }
}
