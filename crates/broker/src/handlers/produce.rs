//! Produce (v3–v12). Batches are appended in request order on the connection's reader task;
//! the response then waits, for `acks=all`, until the partition's flusher has fsynced past the
//! last appended offset (group commit), bounded by the request's `timeout_ms`. `acks=1` is
//! answered once the write reached the OS; `acks=0` gets no response, as in Kafka.
//!
//! A partition this broker does not lead is refused with NOT_LEADER_OR_FOLLOWER and, from
//! v10 (KIP-951), the current leader and its endpoint, so the client moves without asking
//! for Metadata first.
//!
//! A transactional batch is written only if the transaction coordinator vouches that its
//! partition is in the producer's open transaction (KIP-890's verification, on whenever the
//! coordinator is this broker): otherwise INVALID_TXN_STATE, or INVALID_PRODUCER_EPOCH for a
//! fenced producer. A batch whose coordinator is another broker is taken unverified, as
//! before KIP-890, until verification travels between brokers.

use crate::error;
use crate::server::{Broker, Endpoint};
use crate::transactions::Verified;
use futures::future::join_all;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::BrokerId;
use kafka_protocol::messages::produce_response::{
    LeaderIdAndEpoch, NodeEndpoint, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use sluice_storage::{AppendOrigin, Partition};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// A partition's append result, before durability.
struct Appended {
    partition: Option<Arc<Partition>>,
    response: PartitionProduceResponse,
    /// Offset the recovery point must reach before an `acks=all` answer.
    durable_at: i64,
}

pub(crate) fn handle(
    broker: &Arc<Broker>,
    request: ProduceRequest,
    version: i16,
    endpoint: &Endpoint,
) -> impl Future<Output = Option<ProduceResponse>> + Send + 'static + use<> {
    let acks = request.acks;
    let transactional_id = request.transactional_id.as_ref().map(|t| t.to_string());
    let valid_acks = matches!(acks, -1..=1);
    let now = crate::now_ms();
    let topics: Vec<(kafka_protocol::messages::TopicName, Vec<Appended>)> = request
        .topic_data
        .into_iter()
        .map(|topic| {
            let results = topic
                .partition_data
                .into_iter()
                .map(|p| {
                    if !valid_acks {
                        return failed(
                            p.index,
                            ResponseError::InvalidRequiredAcks.code(),
                            format!("acks={acks} is not -1, 0 or 1"),
                        );
                    }
                    let to = Target {
                        topic: &topic.name,
                        index: p.index,
                        transactional_id: transactional_id.as_deref(),
                    };
                    let mut appended = append(broker, to, p.records.as_deref(), now);
                    if version >= 10 {
                        point_to_leader(broker, &topic.name, &mut appended.response);
                    }
                    appended
                })
                .collect();
            // An owned copy of the name: a slice would pin the whole request frame until the
            // response is written, and the connection reuses that buffer for the next frame.
            let name = TopicName(StrBytes::from_string(topic.name.to_string()));
            (name, results)
        })
        .collect();
    let node_endpoints = if version >= 10 {
        leader_endpoints(broker, &topics, endpoint)
    } else {
        Vec::new()
    };
    let timeout_ms = u64::try_from(request.timeout_ms).unwrap_or(0);
    let deadline = tokio::time::Instant::now() + Duration::from_millis(timeout_ms);
    async move {
        if acks == 0 {
            return None;
        }
        // Every partition's fsync is asked for at once: waiting on them one by one would
        // fsync the partitions of a request one after another.
        let topics = topics.into_iter().map(|(name, partitions)| async move {
            let partition_responses = if acks == -1 {
                join_all(partitions.into_iter().map(|a| wait_durable(a, deadline))).await
            } else {
                partitions.into_iter().map(|a| a.response).collect()
            };
            TopicProduceResponse::default()
                .with_name(name)
                .with_partition_responses(partition_responses)
        });
        Some(
            ProduceResponse::default()
                .with_responses(join_all(topics).await)
                .with_node_endpoints(node_endpoints),
        )
    }
}

fn failed(index: i32, code: i16, message: String) -> Appended {
    let response = PartitionProduceResponse::default()
        .with_index(index)
        .with_error_code(code)
        .with_base_offset(-1)
        .with_error_message(Some(StrBytes::from_string(message)));
    Appended {
        partition: None,
        response,
        durable_at: 0,
    }
}

/// Where a partition's records go, and for which transaction if any.
struct Target<'a> {
    topic: &'a str,
    index: i32,
    transactional_id: Option<&'a str>,
}

fn append(broker: &Broker, to: Target<'_>, records: Option<&[u8]>, now_ms: i64) -> Appended {
    let (topic, index) = (to.topic, to.index);
    if crate::groups::is_internal(topic) {
        return failed(
            index,
            ResponseError::InvalidTopicException.code(),
            format!("{topic} is internal: only the broker writes to it"),
        );
    }
    let partition = match broker.metadata().led_partition(topic, index, -1) {
        Ok(p) => p,
        Err(e) => return failed(index, e.code(), leader_message(e)),
    };
    let Some(records) = records else {
        return failed(
            index,
            ResponseError::CorruptMessage.code(),
            "produce request without records".into(),
        );
    };
    let origin = match origin(broker, &to, records) {
        Ok(origin) => origin,
        Err(fenced) => return failed(index, fenced.code(), "the producer has been fenced".into()),
    };
    match partition.append(records, origin, now_ms) {
        Ok(info) => {
            broker.metrics.produced(topic, info.records, info.bytes);
            let response = PartitionProduceResponse::default()
                .with_index(index)
                .with_base_offset(info.base_offset)
                .with_log_append_time_ms(-1)
                .with_log_start_offset(info.log_start_offset);
            Appended {
                partition: Some(partition),
                response,
                durable_at: info.last_offset + 1,
            }
        }
        Err(e) => {
            tracing::debug!(topic, partition = index, error = %e, "produce refused");
            failed(index, error::code(&e), e.to_string())
        }
    }
}

/// The append's origin: a transactional batch the coordinator vouches for may open or continue
/// its producer's transaction; any other stays a plain client write (storage refuses a
/// transactional one). Err: the producer's epoch is fenced.
fn origin(broker: &Broker, to: &Target<'_>, records: &[u8]) -> Result<AppendOrigin, ResponseError> {
    // Only requests naming a transactional id can carry verified transactional batches; the
    // others skip the header parse.
    let Some(id) = to.transactional_id else {
        return Ok(AppendOrigin::Client);
    };
    let Ok(header) = sluice_record::BatchHeader::parse(records) else {
        return Ok(AppendOrigin::Client);
    };
    if !header.is_transactional() {
        return Ok(AppendOrigin::Client);
    }
    let tp = sluice_types::TopicPartition::new(to.topic, to.index);
    let Ok(transactions) = broker.transactions() else {
        // The coordinator is on another broker. Until verification travels between brokers
        // (AddPartitionsToTxn `verify_only`), the batch is taken as Kafka before KIP-890 took
        // it: its transaction ends with the coordinator's marker (WriteTxnMarkers).
        return Ok(AppendOrigin::ClientInTransaction);
    };
    match transactions.verify(id, header.producer_id, header.producer_epoch, &tp) {
        Verified::Yes => Ok(AppendOrigin::ClientInTransaction),
        Verified::Fenced => Err(ResponseError::InvalidProducerEpoch),
        Verified::NotInTransaction => Ok(AppendOrigin::Client),
    }
}

/// KIP-951: a partition refused with NOT_LEADER_OR_FOLLOWER names its current leader.
fn point_to_leader(broker: &Broker, topic: &str, response: &mut PartitionProduceResponse) {
    if response.error_code != ResponseError::NotLeaderOrFollower.code() {
        return;
    }
    if let Some((leader, epoch)) = broker.metadata().current_leader(topic, response.index) {
        response.current_leader = LeaderIdAndEpoch::default()
            .with_leader_id(BrokerId(leader))
            .with_leader_epoch(epoch);
    }
}

/// The endpoints of the leaders named in NOT_LEADER_OR_FOLLOWER answers (KIP-951).
fn leader_endpoints(
    broker: &Broker,
    topics: &[(TopicName, Vec<Appended>)],
    endpoint: &Endpoint,
) -> Vec<NodeEndpoint> {
    let mut leaders: Vec<i32> = topics
        .iter()
        .flat_map(|(_, partitions)| partitions)
        .map(|a| a.response.current_leader.leader_id.0)
        .filter(|&leader| leader >= 0)
        .collect();
    leaders.sort_unstable();
    leaders.dedup();
    let image = broker.metadata();
    leaders
        .into_iter()
        .filter_map(|id| image.node(id, endpoint))
        .map(|node| {
            NodeEndpoint::default()
                .with_node_id(BrokerId(node.id))
                .with_host(StrBytes::from_string(node.host))
                .with_port(i32::from(node.port))
        })
        .collect()
}

/// What a refusal of `led_partition` tells the client.
fn leader_message(e: ResponseError) -> String {
    match e {
        ResponseError::UnknownTopicOrPartition => "unknown topic or partition".into(),
        ResponseError::LeaderNotAvailable => "the partition has no leader now".into(),
        _ => "this broker does not lead the partition".into(),
    }
}

/// Waits until the partition's recovery point passes the append; gives up at `deadline` with
/// `REQUEST_TIMED_OUT` (the records may still become durable, as in Kafka).
async fn wait_durable(
    appended: Appended,
    deadline: tokio::time::Instant,
) -> PartitionProduceResponse {
    let Some(partition) = appended.partition else {
        return appended.response;
    };
    let waited =
        tokio::time::timeout_at(deadline, partition.wait_durable(appended.durable_at)).await;
    let mut response = appended.response;
    match waited {
        Ok(true) => {}
        Ok(false) => {
            response.error_code = ResponseError::KafkaStorageError.code();
            response.error_message = Some(StrBytes::from_static_str(
                "fsync failed; the partition is offline",
            ));
        }
        Err(_) => {
            response.error_code = ResponseError::RequestTimedOut.code();
            response.error_message = Some(StrBytes::from_static_str(
                "not fsynced within the request timeout",
            ));
        }
    }
    response
}
