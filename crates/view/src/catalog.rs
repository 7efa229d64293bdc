//! The catalog: every table's and view's definition, kept in the compacted topic
//! `__sluice_views` so that definitions survive restarts (and, on a cluster, every node reads the
//! same ones).
//!
//! ```text
//! key    the table's or view's name (UTF-8)
//! value  JSON: {"name": "...", "kind": "table" | "view" | "stream", "sql": "CREATE ...", "created_ms": N}
//!        a tombstone: dropped
//!
//! key    "\0node " and a node id (no name holds a 0 byte)
//! value  JSON: {"node_id": N, "http_url": "http://host:port"}: where that node's HTTP API
//!        is, for the nodes of a cluster to send view requests to the one keeping the view
//! ```
//!
//! Definitions are stored as the SQL that made them and parsed again at start, so a newer
//! binary reads what an older one wrote through the same parser users do.
//!
//! Owns: the topic and its records. Not: what a definition means (`service`).

use sluice_client::admin::{self, NewTopic};
use sluice_client::codes::{TOPIC_ALREADY_EXISTS, UNKNOWN_TOPIC_OR_PARTITION};
use sluice_client::data::LATEST;
use sluice_client::data::{self, Acks, FetchOptions, Isolation};
use sluice_client::{Client, ClientError, Result};
use sluice_record::{Record, encode_records};
use std::collections::BTreeMap;
use std::time::Duration;

pub const CATALOG_TOPIC: &str = "__sluice_views";
/// How long a write to the catalog is tried again while its partition has no leader known.
const WRITE_RETRY_WAIT: Duration = Duration::from_secs(15);
/// Fetches of the catalog that may bring nothing before reading it fails.
const EMPTY_FETCHES_MAX: u32 = 50;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Table,
    View,
    Stream,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Table => "table",
            Kind::View => "view",
            Kind::Stream => "stream",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Definition {
    pub name: String,
    pub kind: Kind,
    pub sql: String,
    pub created_ms: i64,
}

/// What the catalog holds: the definitions, in the order they were last written, and each
/// node's HTTP API.
#[derive(Debug, Default)]
pub struct Catalog {
    pub definitions: Vec<Definition>,
    pub nodes: BTreeMap<i32, String>,
}

/// The key prefix of a node's record.
const NODE_KEY_PREFIX: &str = "\0node ";

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct NodeRecord {
    node_id: i32,
    http_url: String,
}

/// Creates the catalog topic unless it exists (compacted: the latest definition per name), on
/// `replicas` replicas (`None`: as many as `replicated` finds).
pub async fn ensure_topic(client: &mut Client, replicas: Option<usize>) -> Result<()> {
    let topic = NewTopic {
        name: CATALOG_TOPIC.to_string(),
        partitions: Some(1),
        replication_factor: None,
        configs: vec![("cleanup.policy".into(), "compact".into())],
    };
    let topic = replicated(client, topic, replicas).await?;
    match admin::create_topic(client, &topic).await {
        Err(e) if e.code() != Some(TOPIC_ALREADY_EXISTS) => Err(e),
        _ => Ok(()),
    }
}

/// `topic` replicated as Kafka's internal topics are: on `replicas` replicas (`None`: min(3,
/// the brokers the cluster lists now)), with `min.insync.replicas` min(2, that), so that on a
/// cluster a view survives a node. A cluster names its size: a topic made while only some of
/// its brokers are in is refused (and asked for again), not left on one replica.
pub async fn replicated(
    client: &mut Client,
    mut topic: NewTopic,
    replicas: Option<usize>,
) -> Result<NewTopic> {
    let factor = match replicas {
        Some(replicas) => replicas,
        None => client.metadata(Some(&[]), false).await?.brokers.len(),
    }
    .clamp(1, 3);
    topic.replication_factor = Some(factor as i16);
    topic
        .configs
        .push(("min.insync.replicas".into(), factor.min(2).to_string()));
    Ok(topic)
}

/// Every definition in the catalog, in the order they were last written, and the nodes' HTTP
/// APIs; none when the catalog topic does not exist yet.
pub async fn read(client: &mut Client) -> Result<Catalog> {
    // Metadata first: it tells a topic that does not exist from one whose leader is not
    // known yet (which `partitions` waits out).
    match client.partitions(CATALOG_TOPIC, false).await {
        Err(e) if e.code() == Some(UNKNOWN_TOPIC_OR_PARTITION) => return Ok(Catalog::default()),
        other => other?,
    };
    let end = data::list_offset(client, CATALOG_TOPIC, 0, LATEST).await?;
    let mut latest: BTreeMap<String, (i64, Option<Definition>)> = BTreeMap::new();
    let mut nodes = BTreeMap::new();
    let mut offset = 0;
    let mut empty_fetches = 0;
    let options = FetchOptions {
        max_wait: Duration::from_millis(100),
        partition_max_bytes: 1024 * 1024,
        isolation: Isolation::ReadUncommitted,
    };
    while offset < end {
        let fetched = data::fetch_many(client, &[(CATALOG_TOPIC, 0, offset)], options).await?;
        let Some(fetched) = fetched.into_iter().next() else {
            return Err(ClientError::Invalid(
                "the catalog's fetch answered nothing".into(),
            ));
        };
        let fetched = fetched.result?;
        if offset < fetched.log_start_offset {
            offset = fetched.log_start_offset;
            continue;
        }
        let mut bad = None;
        let next = data::for_each_record(&fetched.records, offset, |r| {
            let name = String::from_utf8_lossy(r.key.unwrap_or_default()).into_owned();
            if name.starts_with(NODE_KEY_PREFIX) {
                let node = r.value.map(serde_json::from_slice::<NodeRecord>);
                if let Some(Ok(node)) = node {
                    nodes.insert(node.node_id, node.http_url);
                }
                return;
            }
            let definition = match r.value.map(serde_json::from_slice::<Definition>) {
                None => None,
                Some(Ok(definition)) => Some(definition),
                Some(Err(e)) => {
                    bad = Some(format!("catalog record at offset {}: {e}", r.offset));
                    return;
                }
            };
            latest.insert(name, (r.offset, definition));
        })?;
        if let Some(bad) = bad {
            tracing::warn!(problem = %bad, "a catalog record is not a definition; skipped");
        }
        if next == offset {
            // Nothing whole came back below the end (a leader moving, say): ask again.
            empty_fetches += 1;
            if empty_fetches > EMPTY_FETCHES_MAX {
                return Err(ClientError::Invalid(format!(
                    "the catalog {CATALOG_TOPIC} answered nothing at offset {offset}, below its end {end}"
                )));
            }
            continue;
        }
        offset = next;
    }
    let mut definitions: Vec<(i64, Definition)> = latest
        .into_values()
        .filter_map(|(offset, d)| Some((offset, d?)))
        .collect();
    definitions.sort_by_key(|(offset, _)| *offset);
    Ok(Catalog {
        definitions: definitions.into_iter().map(|(_, d)| d).collect(),
        nodes,
    })
}

/// Writes where node `node_id`'s HTTP API is.
pub async fn write_node(client: &mut Client, node_id: i32, http_url: &str) -> Result<()> {
    let record = NodeRecord {
        node_id,
        http_url: http_url.to_string(),
    };
    let value = serde_json::to_vec(&record).expect("a node record always serializes");
    append(client, &format!("{NODE_KEY_PREFIX}{node_id}"), Some(&value)).await
}

/// Writes `definition` (acks=all: on disk before the statement answers).
pub async fn write(client: &mut Client, definition: &Definition) -> Result<()> {
    let value = serde_json::to_vec(definition).expect("a definition always serializes");
    append(client, &definition.name, Some(&value)).await
}

/// Removes `name`'s definition (a tombstone).
pub async fn remove(client: &mut Client, name: &str) -> Result<()> {
    append(client, name, None).await
}

async fn append(client: &mut Client, name: &str, value: Option<&[u8]>) -> Result<()> {
    let record = Record {
        offset: 0,
        timestamp: sluice_types::now_ms(),
        key: Some(name.as_bytes()),
        value,
        headers: Vec::new(),
    };
    let batch = bytes::Bytes::from(encode_records(&[record]));
    // A catalog topic just made may have no leader known yet (on a cluster, for a moment).
    let deadline = tokio::time::Instant::now() + WRITE_RETRY_WAIT;
    loop {
        match data::produce(client, CATALOG_TOPIC, 0, batch.clone(), Acks::All).await {
            Err(e) if e.is_retriable() && tokio::time::Instant::now() < deadline => {
                client.forget_leaders();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => return other.map(|_| ()),
        }
    }
}
