//! `Client`: a cluster reached through a bootstrap list. Keeps one `Connection` per broker it
//! has talked to, learns brokers' addresses and partition leaders from Metadata, and sends
//! each request where it must go (any broker, a partition's leader, a group's coordinator).
//!
//! Owns: bootstrap, broker addresses, leader lookup. Not: retry policy (callers decide which
//! Kafka errors to retry) nor any request's meaning (see `admin`, `data`, `groups`).

use crate::codes::{LEADER_NOT_AVAILABLE, UNKNOWN_TOPIC_OR_PARTITION};
use crate::connection::Connection;
use crate::error::{ClientError, Result};
use crate::security::Security;
use kafka_protocol::messages::{
    BrokerId, MetadataRequest, MetadataResponse, TopicName, metadata_request::MetadataRequestTopic,
};
use std::collections::HashMap;
use std::time::Duration;

/// How long `partitions` waits for an auto-created topic's leaders.
const AUTO_CREATE_WAIT: Duration = Duration::from_secs(10);

/// Highest Metadata version this client builds (v12 still names topics in the request).
const METADATA_VERSION_MAX: i16 = 12;

pub struct Client {
    bootstrap: Vec<String>,
    client_id: String,
    timeout: Duration,
    /// TLS and SASL, for every connection.
    security: Security,
    /// The connection to whichever bootstrap broker answered first.
    any: Connection,
    by_node: HashMap<i32, Connection>,
    addresses: HashMap<i32, String>,
    /// (topic, partition) -> leader node id, from the last Metadata that named them.
    leaders: HashMap<(String, i32), i32>,
}

impl Client {
    /// Connects to the first reachable broker of `bootstrap` (`host:port[,host:port...]`).
    pub async fn connect(bootstrap: &str, client_id: &str, timeout: Duration) -> Result<Client> {
        Client::connect_with(bootstrap, client_id, timeout, Security::default()).await
    }

    /// As `connect`, every connection over TLS and logged in as `security` says.
    pub async fn connect_with(
        bootstrap: &str,
        client_id: &str,
        timeout: Duration,
        security: Security,
    ) -> Result<Client> {
        let list: Vec<String> = bootstrap
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        if list.is_empty() {
            return Err(ClientError::Invalid(
                "no brokers given: pass --brokers HOST:PORT".to_string(),
            ));
        }
        let mut last_error = None;
        for address in &list {
            match Connection::connect_secured(address, None, client_id, timeout, &security).await {
                Ok(any) => {
                    return Ok(Client {
                        bootstrap: list.clone(),
                        client_id: client_id.to_string(),
                        timeout,
                        security,
                        any,
                        by_node: HashMap::new(),
                        addresses: HashMap::new(),
                        leaders: HashMap::new(),
                    });
                }
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.expect("at least one address was tried"))
    }

    pub fn bootstrap(&self) -> &[String] {
        &self.bootstrap
    }

    /// The connection to the bootstrap broker, for requests any broker answers.
    pub fn any(&mut self) -> &mut Connection {
        &mut self.any
    }

    /// The connection to broker `node`, opened on first use (its address comes from Metadata).
    pub async fn node(&mut self, node: i32) -> Result<&mut Connection> {
        if !self.addresses.contains_key(&node) {
            self.metadata(Some(&[]), false).await?;
        }
        let address = self.addresses.get(&node).cloned().ok_or_else(|| {
            ClientError::Invalid(format!("broker {node} is not in the cluster's metadata"))
        })?;
        if address == self.any.address() {
            return Ok(&mut self.any);
        }
        if !self.by_node.contains_key(&node) {
            let connection = self.open(&address).await?;
            self.by_node.insert(node, connection);
        }
        Ok(self.by_node.get_mut(&node).expect("inserted above"))
    }

    /// A new connection of its own to broker `node`, for a conversation that must not wait
    /// behind others (a group member's heartbeats while its fetches long-poll).
    pub async fn dedicated(&mut self, node: i32) -> Result<Connection> {
        if !self.addresses.contains_key(&node) {
            self.metadata(Some(&[]), false).await?;
        }
        let address = self.addresses.get(&node).cloned().ok_or_else(|| {
            ClientError::Invalid(format!("broker {node} is not in the cluster's metadata"))
        })?;
        self.open(&address).await
    }

    /// A new connection to `address`, secured as this client's are (brokers other than the
    /// bootstrap ones as `Security::elsewhere` says, when it is given).
    async fn open(&self, address: &str) -> Result<Connection> {
        let (id, timeout) = (&self.client_id, self.timeout);
        let security = match &self.security.elsewhere {
            Some(other) if !self.bootstrap.iter().any(|b| b == address) => other,
            _ => &self.security,
        };
        Connection::connect_secured(address, None, id, timeout, security).await
    }

    /// Metadata for `topics` (`None`: every topic; `Some(&[])`: brokers only). Remembers
    /// broker addresses and partition leaders from the answer.
    pub async fn metadata(
        &mut self,
        topics: Option<&[String]>,
        allow_auto_topic_creation: bool,
    ) -> Result<MetadataResponse> {
        let request = MetadataRequest::default()
            .with_topics(topics.map(|names| {
                names
                    .iter()
                    .map(|n| {
                        MetadataRequestTopic::default().with_name(Some(TopicName(n.clone().into())))
                    })
                    .collect()
            }))
            .with_allow_auto_topic_creation(allow_auto_topic_creation);
        let (_, response) = self.any.send(&request, METADATA_VERSION_MAX).await?;
        for broker in &response.brokers {
            self.addresses
                .insert(broker.node_id.0, format!("{}:{}", broker.host, broker.port));
        }
        for topic in &response.topics {
            let Some(name) = &topic.name else { continue };
            for p in &topic.partitions {
                self.leaders
                    .insert((name.to_string(), p.partition_index), p.leader_id.0);
            }
        }
        Ok(response)
    }

    /// `topic`'s partition indexes, sorted. With `allow_auto_create` a missing topic is created
    /// (when the broker auto-creates topics) and waited for until it has leaders, for up to
    /// `AUTO_CREATE_WAIT`.
    pub async fn partitions(&mut self, topic: &str, allow_auto_create: bool) -> Result<Vec<i32>> {
        let deadline = tokio::time::Instant::now() + AUTO_CREATE_WAIT;
        loop {
            let metadata = self
                .metadata(Some(&[topic.to_string()]), allow_auto_create)
                .await?;
            let t = metadata.topics.first().ok_or_else(|| {
                ClientError::Invalid("the broker's Metadata answer names no topic".into())
            })?;
            let settling = t.error_code == LEADER_NOT_AVAILABLE
                || (t.error_code == 0 && t.partitions.is_empty());
            if !settling || tokio::time::Instant::now() >= deadline {
                ClientError::check(t.error_code, None, || format!("looking up topic {topic}"))?;
                let mut indexes: Vec<i32> =
                    t.partitions.iter().map(|p| p.partition_index).collect();
                indexes.sort_unstable();
                if indexes.is_empty() {
                    return Err(ClientError::Invalid(format!(
                        "topic {topic} has no partitions yet"
                    )));
                }
                return Ok(indexes);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The node id of the leader of `topic`'s `partition`, looked up when unknown.
    pub async fn leader_id(&mut self, topic: &str, partition: i32) -> Result<i32> {
        let key = (topic.to_string(), partition);
        if !self.leaders.contains_key(&key) {
            self.metadata(Some(&[topic.to_string()]), false).await?;
        }
        match self.leaders.get(&key).copied() {
            Some(node) if node >= 0 => Ok(node),
            _ => Err(ClientError::Kafka {
                context: format!("finding the leader of {topic}-{partition}"),
                code: UNKNOWN_TOPIC_OR_PARTITION,
                name: crate::error::error_name(UNKNOWN_TOPIC_OR_PARTITION),
                message: None,
            }),
        }
    }

    /// The connection to the leader of `topic`'s `partition`.
    pub async fn leader(&mut self, topic: &str, partition: i32) -> Result<&mut Connection> {
        let node = self.leader_id(topic, partition).await?;
        self.node(node).await
    }

    /// Drops every connection and connects again to the first reachable bootstrap broker, as
    /// after a broker restart; addresses and leaders are looked up again on next use.
    pub async fn reconnect(&mut self) -> Result<()> {
        let fresh =
            Client::connect(&self.bootstrap.join(","), &self.client_id, self.timeout).await?;
        *self = fresh;
        Ok(())
    }

    /// Forgets partition leaders, so the next request looks them up again (after
    /// NOT_LEADER_OR_FOLLOWER, say).
    pub fn forget_leaders(&mut self) {
        self.leaders.clear();
    }
}

/// The node id inside Kafka's `BrokerId` newtype.
pub fn node_id(id: BrokerId) -> i32 {
    id.0
}
