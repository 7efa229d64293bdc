//! How a share-partition leader reads and writes the durable state of its share-partitions
//! (Kafka's `Persister`): at the share coordinator that keeps it, the leader of the
//! `__share_group_state` partition the key hashes to, on this broker or over the network
//! (ReadShareGroupState, WriteShareGroupState v0). `__share_group_state` is created on first
//! use. A coordinator that is moving or still loading is asked again until `PERSIST_WAIT_MAX`.
//!
//! Between Sluice brokers a ReadShareGroupState answer with state epoch -1 means "no state
//! written yet".

use crate::error::share_state_error;
use crate::server::Broker;
use crate::share_coordinators::{SHARE_STATE_TOPIC, partition_of};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    DeleteShareGroupStateRequest, ReadShareGroupStateRequest, WriteShareGroupStateRequest,
    delete_share_group_state_request, read_share_group_state_request,
    write_share_group_state_request,
};
use kafka_protocol::protocol::StrBytes;
use sluice_share::{ShareStateKey, ShareStateValue, StateBatch};
use std::future::Future;
use std::time::Duration;
use uuid::Uuid;

/// How long a read or write waits for a share coordinator that is moving or loading.
const PERSIST_WAIT_MAX: Duration = Duration::from_secs(10);
const RETRY_AFTER: Duration = Duration::from_millis(100);

/// A state epoch meaning "no state" in a ReadShareGroupState answer.
pub(crate) const NO_STATE_EPOCH: i32 = -1;

/// Where a key's coordinator is: its partition of `__share_group_state` and that one's leader.
#[derive(Debug, Clone, Copy)]
struct Coordinator {
    index: i32,
    leader: i32,
}

/// The state of `key` (`None`: none written yet).
pub(crate) async fn read(
    broker: &Broker,
    key: &ShareStateKey,
) -> Result<Option<ShareStateValue>, ResponseError> {
    retrying(broker, key, |c| read_once(broker, key, c)).await
}

/// Writes the state of `key`; answered once the share coordinator has it.
pub(crate) async fn write(
    broker: &Broker,
    key: &ShareStateKey,
    value: &ShareStateValue,
) -> Result<(), ResponseError> {
    retrying(broker, key, |c| write_once(broker, key, value, c)).await
}

/// Deletes the state of `key` (nothing if there is none).
pub(crate) async fn delete(broker: &Broker, key: &ShareStateKey) -> Result<(), ResponseError> {
    retrying(broker, key, |c| delete_once(broker, key, c)).await
}

async fn delete_once(
    broker: &Broker,
    key: &ShareStateKey,
    c: Coordinator,
) -> Result<(), ResponseError> {
    if c.leader == broker.config.node_id {
        let coordinators = &broker.share_coordinators;
        return coordinators
            .delete(c.index, key.clone())
            .await
            .map_err(|e| share_state_error(&e));
    }
    let request = DeleteShareGroupStateRequest::default()
        .with_group_id(StrBytes::from_string(key.group.clone()))
        .with_topics(vec![
            delete_share_group_state_request::DeleteStateData::default()
                .with_topic_id(Uuid::from_u128(key.topic_id))
                .with_partitions(vec![
                    delete_share_group_state_request::PartitionData::default()
                        .with_partition(key.partition),
                ]),
        ]);
    let response = send(broker, c.leader, &request).await?;
    first_error(
        response
            .results
            .into_iter()
            .flat_map(|r| r.partitions)
            .map(|p| p.error_code),
    )
}

/// Runs `attempt` at the key's coordinator until it succeeds, fails for good, or
/// `PERSIST_WAIT_MAX` passes.
async fn retrying<T, F: Future<Output = Result<T, ResponseError>>>(
    broker: &Broker,
    key: &ShareStateKey,
    mut attempt: impl FnMut(Coordinator) -> F,
) -> Result<T, ResponseError> {
    let deadline = tokio::time::Instant::now() + PERSIST_WAIT_MAX;
    loop {
        let result = match locate(broker, key).await {
            Ok(coordinator) => attempt(coordinator).await,
            Err(e) => Err(e),
        };
        match result {
            Err(e) if retriable(e) && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(RETRY_AFTER).await;
            }
            other => return other,
        }
    }
}

fn retriable(e: ResponseError) -> bool {
    matches!(
        e,
        ResponseError::NotCoordinator
            | ResponseError::CoordinatorNotAvailable
            | ResponseError::CoordinatorLoadInProgress
            | ResponseError::LeaderNotAvailable
            | ResponseError::NotLeaderOrFollower
    )
}

/// The key's coordinator as this broker's image has it; `__share_group_state` is created if
/// missing.
async fn locate(broker: &Broker, key: &ShareStateKey) -> Result<Coordinator, ResponseError> {
    if broker.published_image().topic(SHARE_STATE_TOPIC).is_none() {
        crate::internal_topics::ensure(broker, SHARE_STATE_TOPIC).await;
    }
    let image = broker.published_image();
    let topic = image
        .topic(SHARE_STATE_TOPIC)
        .ok_or(ResponseError::CoordinatorNotAvailable)?;
    let index = partition_of(key, topic.partitions.len() as i32);
    let leader = topic.partitions.get(&index).map_or(-1, |p| p.leader);
    if leader < 0 {
        return Err(ResponseError::CoordinatorNotAvailable);
    }
    Ok(Coordinator { index, leader })
}

async fn read_once(
    broker: &Broker,
    key: &ShareStateKey,
    c: Coordinator,
) -> Result<Option<ShareStateValue>, ResponseError> {
    if c.leader == broker.config.node_id {
        let coordinators = &broker.share_coordinators;
        return coordinators
            .read(c.index, key)
            .map_err(|e| share_state_error(&e));
    }
    let request = ReadShareGroupStateRequest::default()
        .with_group_id(StrBytes::from_string(key.group.clone()))
        .with_topics(vec![
            read_share_group_state_request::ReadStateData::default()
                .with_topic_id(Uuid::from_u128(key.topic_id))
                .with_partitions(vec![
                    read_share_group_state_request::PartitionData::default()
                        .with_partition(key.partition),
                ]),
        ]);
    let response = send(broker, c.leader, &request).await?;
    let result = response
        .results
        .into_iter()
        .flat_map(|r| r.partitions)
        .next()
        .ok_or(ResponseError::CoordinatorNotAvailable)?;
    error(result.error_code)?;
    if result.state_epoch == NO_STATE_EPOCH {
        return Ok(None);
    }
    let batches = result
        .state_batches
        .into_iter()
        .map(|b| {
            batch(
                b.first_offset,
                b.last_offset,
                b.delivery_state,
                b.delivery_count,
            )
        })
        .collect::<Result<_, _>>()?;
    Ok(Some(ShareStateValue {
        state_epoch: result.state_epoch,
        leader_epoch: -1,
        start_offset: result.start_offset,
        write_time_ms: 0,
        batches,
    }))
}

async fn write_once(
    broker: &Broker,
    key: &ShareStateKey,
    value: &ShareStateValue,
    c: Coordinator,
) -> Result<(), ResponseError> {
    if c.leader == broker.config.node_id {
        let coordinators = &broker.share_coordinators;
        return coordinators
            .write(c.index, key.clone(), value.clone())
            .await
            .map_err(|e| share_state_error(&e));
    }
    let batches = value
        .batches
        .iter()
        .map(|b| {
            write_share_group_state_request::StateBatch::default()
                .with_first_offset(b.first_offset)
                .with_last_offset(b.last_offset)
                .with_delivery_state(b.state as i8)
                .with_delivery_count(i16::try_from(b.delivery_count).unwrap_or(i16::MAX))
        })
        .collect();
    let partition = write_share_group_state_request::PartitionData::default()
        .with_partition(key.partition)
        .with_state_epoch(value.state_epoch)
        .with_leader_epoch(value.leader_epoch)
        .with_start_offset(value.start_offset)
        .with_state_batches(batches);
    let request = WriteShareGroupStateRequest::default()
        .with_group_id(StrBytes::from_string(key.group.clone()))
        .with_topics(vec![
            write_share_group_state_request::WriteStateData::default()
                .with_topic_id(Uuid::from_u128(key.topic_id))
                .with_partitions(vec![partition]),
        ]);
    let response = send(broker, c.leader, &request).await?;
    first_error(
        response
            .results
            .into_iter()
            .flat_map(|r| r.partitions)
            .map(|p| p.error_code),
    )
}

/// A state batch from the wire, checked.
pub(crate) fn batch(
    first_offset: i64,
    last_offset: i64,
    state: i8,
    delivery_count: i16,
) -> Result<StateBatch, ResponseError> {
    if !matches!(state, 0 | 2 | 4) || delivery_count < 0 || first_offset > last_offset {
        return Err(ResponseError::InvalidRequest);
    }
    Ok(StateBatch {
        first_offset,
        last_offset,
        state: state as u8,
        delivery_count: delivery_count as u16,
    })
}

async fn send<R: kafka_protocol::protocol::Request>(
    broker: &Broker,
    leader: i32,
    request: &R,
) -> Result<R::Response, ResponseError> {
    let image = broker.cluster.image();
    let address = broker
        .peer_address(&image, leader)
        .ok_or(ResponseError::CoordinatorNotAvailable)?;
    broker
        .peers
        .send(leader, &address, request)
        .await
        .map_err(|e| {
            tracing::debug!(leader, error = %e, "share coordinator not reached");
            ResponseError::CoordinatorNotAvailable
        })
}

/// The answer's first partition's error; an answer naming none is an error too.
fn first_error(mut codes: impl Iterator<Item = i16>) -> Result<(), ResponseError> {
    error(
        codes
            .next()
            .unwrap_or(ResponseError::CoordinatorNotAvailable.code()),
    )
}

fn error(code: i16) -> Result<(), ResponseError> {
    match code {
        0 => Ok(()),
        code => {
            Err(ResponseError::try_from_code(code).unwrap_or(ResponseError::UnknownServerError))
        }
    }
}
