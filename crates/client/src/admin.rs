//! Admin requests: topics (create, delete, grow, configs) and the cluster's description.
//! Each function sends one request, turns a Kafka error code into `ClientError::Kafka` with
//! the broker's message, and returns plain values.

use crate::client::Client;
use crate::error::{ClientError, Result};
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreateTopicsRequest, DeleteTopicsRequest, DescribeClusterRequest,
    DescribeClusterResponse, DescribeConfigsRequest, DescribeLogDirsRequest,
    IncrementalAlterConfigsRequest, TopicName,
    create_partitions_request::CreatePartitionsTopic,
    create_topics_request::{CreatableTopic, CreatableTopicConfig},
    describe_configs_request::DescribeConfigsResource,
    describe_log_dirs_request::DescribableLogDirTopic,
    incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig},
};
use kafka_protocol::protocol::StrBytes;

/// How long the broker may take over a topic change before answering REQUEST_TIMED_OUT.
const ADMIN_TIMEOUT_MS: i32 = 30_000;
/// Kafka's resource type for a topic in the config APIs.
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_GROUP: i8 = 32;
/// IncrementalAlterConfigs operations.
const CONFIG_SET: i8 = 0;
const CONFIG_DELETE: i8 = 1;

/// A new topic. `None` leaves a setting to the broker's default.
#[derive(Debug, Clone, Default)]
pub struct NewTopic {
    pub name: String,
    pub partitions: Option<i32>,
    pub replication_factor: Option<i16>,
    pub configs: Vec<(String, String)>,
}

/// Creates a topic; returns its partition count as the broker settled it.
pub async fn create_topic(client: &mut Client, topic: &NewTopic) -> Result<i32> {
    let request = CreateTopicsRequest::default()
        .with_topics(vec![
            CreatableTopic::default()
                .with_name(topic_name(&topic.name))
                .with_num_partitions(topic.partitions.unwrap_or(-1))
                .with_replication_factor(topic.replication_factor.unwrap_or(-1))
                .with_configs(
                    topic
                        .configs
                        .iter()
                        .map(|(k, v)| {
                            CreatableTopicConfig::default()
                                .with_name(str_bytes(k))
                                .with_value(Some(str_bytes(v)))
                        })
                        .collect(),
                ),
        ])
        .with_timeout_ms(ADMIN_TIMEOUT_MS);
    let (_, response) = client.any().send(&request, 7).await?;
    let result = response
        .topics
        .first()
        .ok_or_else(|| empty_answer("CreateTopics"))?;
    ClientError::check(result.error_code, result.error_message.as_deref(), || {
        format!("creating topic {}", topic.name)
    })?;
    Ok(result.num_partitions)
}

pub async fn delete_topic(client: &mut Client, name: &str) -> Result<()> {
    let request = DeleteTopicsRequest::default()
        .with_topic_names(vec![topic_name(name)])
        .with_timeout_ms(ADMIN_TIMEOUT_MS);
    let (_, response) = client.any().send(&request, 5).await?;
    let result = response
        .responses
        .first()
        .ok_or_else(|| empty_answer("DeleteTopics"))?;
    ClientError::check(result.error_code, result.error_message.as_deref(), || {
        format!("deleting topic {name}")
    })
}

/// Grows `name` to `total` partitions.
pub async fn create_partitions(client: &mut Client, name: &str, total: i32) -> Result<()> {
    let request = CreatePartitionsRequest::default()
        .with_topics(vec![
            CreatePartitionsTopic::default()
                .with_name(topic_name(name))
                .with_count(total),
        ])
        .with_timeout_ms(ADMIN_TIMEOUT_MS);
    let (_, response) = client.any().send(&request, 3).await?;
    let result = response
        .results
        .first()
        .ok_or_else(|| empty_answer("CreatePartitions"))?;
    ClientError::check(result.error_code, result.error_message.as_deref(), || {
        format!("growing topic {name} to {total} partitions")
    })
}

/// One config of a topic as the broker reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    pub name: String,
    pub value: Option<String>,
    /// Kafka's `ConfigSource`: 1 = set on the topic, 5 = static broker config, 6 = default.
    pub source: i8,
    pub read_only: bool,
    pub sensitive: bool,
}

impl ConfigEntry {
    /// True when the topic itself sets this config (not inherited).
    pub fn is_override(&self) -> bool {
        self.source == 1
    }
}

pub async fn describe_topic_configs(client: &mut Client, name: &str) -> Result<Vec<ConfigEntry>> {
    describe_configs(client, RESOURCE_TOPIC, name).await
}

/// A group's configs (share groups' `share.*` and dead-letter settings).
pub async fn describe_group_configs(client: &mut Client, name: &str) -> Result<Vec<ConfigEntry>> {
    describe_configs(client, RESOURCE_GROUP, name).await
}

async fn describe_configs(
    client: &mut Client,
    resource_type: i8,
    name: &str,
) -> Result<Vec<ConfigEntry>> {
    let request = DescribeConfigsRequest::default().with_resources(vec![
        DescribeConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(str_bytes(name))
            .with_configuration_keys(None),
    ]);
    let (_, response) = client.any().send(&request, 4).await?;
    let result = response
        .results
        .first()
        .ok_or_else(|| empty_answer("DescribeConfigs"))?;
    ClientError::check(result.error_code, result.error_message.as_deref(), || {
        format!("describing the configs of {name}")
    })?;
    Ok(result
        .configs
        .iter()
        .map(|c| ConfigEntry {
            name: c.name.to_string(),
            value: c.value.as_ref().map(|v| v.to_string()),
            source: c.config_source,
            read_only: c.read_only,
            sensitive: c.is_sensitive,
        })
        .collect())
}

/// Sets and removes topic config overrides in one IncrementalAlterConfigs request.
pub async fn alter_topic_configs(
    client: &mut Client,
    name: &str,
    set: &[(String, String)],
    delete: &[String],
) -> Result<()> {
    let mut configs: Vec<AlterableConfig> = set
        .iter()
        .map(|(k, v)| {
            AlterableConfig::default()
                .with_name(str_bytes(k))
                .with_config_operation(CONFIG_SET)
                .with_value(Some(str_bytes(v)))
        })
        .collect();
    configs.extend(delete.iter().map(|k| {
        AlterableConfig::default()
            .with_name(str_bytes(k))
            .with_config_operation(CONFIG_DELETE)
            .with_value(None)
    }));
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(RESOURCE_TOPIC)
            .with_resource_name(str_bytes(name))
            .with_configs(configs),
    ]);
    let (_, response) = client.any().send(&request, 1).await?;
    let result = response
        .responses
        .first()
        .ok_or_else(|| empty_answer("IncrementalAlterConfigs"))?;
    ClientError::check(result.error_code, result.error_message.as_deref(), || {
        format!("changing the configs of topic {name}")
    })
}

/// The size in bytes of each partition of `topic` on its leader (DescribeLogDirs to each
/// leader, summed over its log directories).
pub async fn partition_sizes(
    client: &mut Client,
    topic: &str,
    partitions: &[i32],
) -> Result<std::collections::BTreeMap<i32, i64>> {
    let mut by_leader: std::collections::BTreeMap<i32, Vec<i32>> = Default::default();
    for &p in partitions {
        by_leader
            .entry(client.leader_id(topic, p).await?)
            .or_default()
            .push(p);
    }
    let mut sizes = std::collections::BTreeMap::new();
    for (leader, led) in by_leader {
        let request = DescribeLogDirsRequest::default().with_topics(Some(vec![
            DescribableLogDirTopic::default()
                .with_topic(topic_name(topic))
                .with_partitions(led.clone()),
        ]));
        let (_, response) = client.node(leader).await?.send(&request, 4).await?;
        ClientError::check(response.error_code, None, || {
            format!("describing the log directories of broker {leader}")
        })?;
        for dir in response.results {
            for t in dir.topics.iter().filter(|t| t.name.0.as_str() == topic) {
                for p in t
                    .partitions
                    .iter()
                    .filter(|p| led.contains(&p.partition_index))
                {
                    *sizes.entry(p.partition_index).or_insert(0) += p.partition_size;
                }
            }
        }
    }
    Ok(sizes)
}

/// DescribeCluster, fenced brokers included where the broker can say (v2).
pub async fn describe_cluster(client: &mut Client) -> Result<DescribeClusterResponse> {
    let connection = client.any();
    let with_fenced = connection.version_for::<DescribeClusterRequest>(2) == Some(2);
    let request = DescribeClusterRequest::default().with_include_fenced_brokers(with_fenced);
    let (_, response) = connection.send(&request, 2).await?;
    ClientError::check(
        response.error_code,
        response.error_message.as_deref(),
        || "describing the cluster".to_string(),
    )?;
    Ok(response)
}

pub(crate) fn topic_name(name: &str) -> TopicName {
    TopicName(str_bytes(name))
}

pub(crate) fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

pub(crate) fn empty_answer(api: &str) -> ClientError {
    ClientError::Invalid(format!("the broker's {api} answer names nothing"))
}
