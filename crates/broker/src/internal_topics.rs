//! The internal topics (`__consumer_offsets`, `__transaction_state`, `__share_group_state`):
//! their creation through
//! the controller (`ensure`: replicated on min(`INTERNAL_REPLICATION_FACTOR_MAX`, live brokers)
//! with `min.insync.replicas` min(2, that)), and their
//! partitions as the coordinator runtime sees them (`PartitionLog`: storage's `Partition`
//! behind the runtime's `ShardLog`). On a replicated partition a coordinator's record counts
//! as written once it is committed (the high watermark passed it: on disk on every in-sync
//! replica), so a commit or a transaction step answered survives the coordinator's broker.

use sluice_coordinator::{CoordinatorError, ShardLog};
use sluice_storage::{AppendOrigin, Partition};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// The replication factor of an internal topic: Kafka's default of three, at most the brokers.
const INTERNAL_REPLICATION_FACTOR_MAX: usize = 3;
/// ...and its `min.insync.replicas`, at most its replication factor.
const INTERNAL_MIN_INSYNC_REPLICAS: usize = 2;

/// A partition of an internal topic, as a coordinator shard reads and writes it; with its
/// leader here when it has followers (a coordinator's write waits for them).
pub(crate) struct PartitionLog(
    pub(crate) Arc<Partition>,
    pub(crate) Option<Arc<sluice_replica::LeaderReplica>>,
);

impl ShardLog for PartitionLog {
    fn index(&self) -> i32 {
        self.0.index()
    }

    fn start_offset(&self) -> i64 {
        self.0.log().log_start_offset()
    }

    fn read(&self, offset: i64, max_bytes: usize) -> Result<bytes::Bytes, CoordinatorError> {
        let plan = self.0.read(offset, max_bytes, true).map_err(log_error)?;
        self.0.read_batches(&plan).map_err(log_error)
    }

    fn append(&self, batch: &[u8], now_ms: i64) -> Result<i64, CoordinatorError> {
        // Like a producer's `acks=all`: refused before it is written when too few replicas
        // are in sync (the record would count as written only once they have it).
        if let Some(leader) = &self.1 {
            leader
                .check_acks_all()
                .map_err(|e| CoordinatorError::Log(e.to_string()))?;
        }
        let info = self.0.append(batch, AppendOrigin::Broker, now_ms);
        Ok(info.map_err(log_error)?.last_offset + 1)
    }

    fn wait_durable(&self, offset: i64) -> Pin<Box<dyn Future<Output = bool> + Send + '_>> {
        match &self.1 {
            Some(leader) => Box::pin(async move { leader.wait_committed(offset).await.is_ok() }),
            None => Box::pin(self.0.wait_durable(offset)),
        }
    }

    fn wait_replicated(&self, offset: i64) -> Pin<Box<dyn Future<Output = bool> + Send + '_>> {
        match &self.1 {
            Some(leader) => Box::pin(async move { leader.wait_committed(offset).await.is_ok() }),
            None => Box::pin(std::future::ready(true)),
        }
    }
}

fn log_error(e: sluice_storage::StorageError) -> CoordinatorError {
    CoordinatorError::Log(e.to_string())
}

/// Creates `topic` (an internal topic) through the controller if this broker's image lacks it.
pub(crate) async fn ensure(broker: &crate::server::Broker, topic: &str) {
    if broker.metadata().topic(topic).is_some() {
        return;
    }
    let (partitions, mut configs) = match topic {
        crate::groups::OFFSETS_TOPIC => (
            broker.config.offsets_topic_partitions,
            vec![(
                "segment.bytes".to_string(),
                broker.config.offsets_topic_segment_bytes.to_string(),
            )],
        ),
        crate::share_coordinators::SHARE_STATE_TOPIC => (
            crate::share_coordinators::SHARE_STATE_PARTITIONS,
            Vec::new(),
        ),
        _ => (broker.config.transaction_state_partitions, Vec::new()),
    };
    configs.push(("cleanup.policy".to_string(), "compact".to_string()));
    let brokers = broker.cluster.image().unfenced_brokers().len().max(1);
    let replication_factor = brokers.min(INTERNAL_REPLICATION_FACTOR_MAX);
    let min_insync = replication_factor.min(INTERNAL_MIN_INSYNC_REPLICAS);
    configs.push(("min.insync.replicas".to_string(), min_insync.to_string()));
    let new_topic = sluice_controller::NewTopic {
        name: topic.to_string(),
        partitions,
        replication_factor: replication_factor as i16,
        assignments: Vec::new(),
        configs,
    };
    let outcomes = crate::handlers::create_topics::create(
        broker,
        vec![new_topic],
        false,
        crate::controller_client::CONTROLLER_WAIT_MAX,
    )
    .await;
    for outcome in outcomes {
        match outcome {
            Ok(_) => tracing::info!(topic, partitions, "internal topic created"),
            Err(e) if e.error == kafka_protocol::error::ResponseError::TopicAlreadyExists => {
                tracing::info!(topic, "internal topic created meanwhile by another broker")
            }
            Err(e) => tracing::warn!(topic, error = %e.message, "internal topic not created"),
        }
    }
}
