//! Produce (v3–v12). Batches are appended in request order on the connection's reader task;
//! the response then waits, for `acks=all`, until the partition's flusher has fsynced past the
//! last appended offset (group commit), and for a partition with followers until its high
//! watermark passed it (on disk on every in-sync replica: `sluice_replica`), bounded by the
//! request's `timeout_ms`. `acks=1` is
//! answered once the write reached the OS; `acks=0` gets no response, as in Kafka.
//!
//! A partition this broker does not lead is refused with NOT_LEADER_OR_FOLLOWER and, from
//! v10 (KIP-951), the current leader and its endpoint, so the client moves without asking
//! for Metadata first.
//!
//! A transactional batch is written only if the transaction coordinator vouches that its
//! partition is in the producer's open transaction (KIP-890's verification, on whenever the
//! coordinator is this broker): otherwise INVALID_TXN_STATE, or INVALID_PRODUCER_EPOCH for a
//! fenced producer. A coordinator on another broker is asked with AddPartitionsToTxn
//! `verify_only` (once per partition and transaction: the partition remembers the open
//! transaction), and the connection waits for that append before its next request.

use crate::authorization::Caller;
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
use sluice_acl::{Operation, ResourceType};
use sluice_storage::{AppendOrigin, Partition};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// A partition's append result, before durability.
struct Appended {
    partition: Option<Arc<Partition>>,
    response: PartitionProduceResponse,
    /// Offset the recovery point (or, for a replicated partition, the high watermark) must
    /// reach before an `acks=all` answer.
    durable_at: i64,
    /// The partition's leader here when it has followers: `acks=all` waits for them.
    leader: Option<Arc<sluice_replica::LeaderReplica>>,
    /// An append that waits for another broker's verification (`defer`): the result is
    /// this task's.
    deferred: Option<tokio::task::JoinHandle<Appended>>,
}

pub(crate) fn handle(
    broker: &Arc<Broker>,
    caller: &Caller,
    request: ProduceRequest,
    version: i16,
    endpoint: &Endpoint,
    client_id: &str,
) -> impl Future<Output = Option<ProduceResponse>> + Send + 'static + use<> {
    let throttle_time_ms = throttle(broker, caller, client_id, &request);
    let acks = request.acks;
    let transactional_id = request.transactional_id.as_ref().map(|t| t.to_string());
    let valid_acks = matches!(acks, -1..=1);
    // Kafka's checks: WRITE on the transactional id for the whole request, WRITE on each topic.
    let transaction_refused = transactional_id.as_deref().is_some_and(|id| {
        !broker.allows(caller, Operation::Write, ResourceType::TransactionalId, id)
    });
    let now = crate::now_ms();
    let topics: Vec<(kafka_protocol::messages::TopicName, Vec<Appended>)> = request
        .topic_data
        .into_iter()
        .map(|topic| {
            let refused = if transaction_refused {
                Some(ResponseError::TransactionalIdAuthorizationFailed)
            } else if !broker.allows(caller, Operation::Write, ResourceType::Topic, &topic.name) {
                Some(ResponseError::TopicAuthorizationFailed)
            } else {
                None
            };
            let results = topic
                .partition_data
                .into_iter()
                .map(|p| {
                    if let Some(error) = refused {
                        return failed(p.index, error.code(), "not authorized".into());
                    }
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
                        acks,
                    };
                    let mut appended = append(broker, to, p.records.as_ref(), now);
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
            let partitions = join_all(partitions.into_iter().map(settled)).await;
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
                .with_node_endpoints(node_endpoints)
                .with_throttle_time_ms(throttle_time_ms),
        )
    }
}

/// `producer_byte_rate`: the request's record bytes recorded against the caller's quota; past
/// it, the connection reads nothing more until the wait is over, and the response tells the
/// client to wait as long (Kafka mutes the channel the same way).
fn throttle(broker: &Broker, caller: &Caller, client_id: &str, request: &ProduceRequest) -> i32 {
    if !broker.quotas.any() {
        return 0;
    }
    let bytes: usize = request
        .topic_data
        .iter()
        .flat_map(|t| &t.partition_data)
        .filter_map(|p| p.records.as_ref().map(|r| r.len()))
        .sum();
    let kind = crate::quotas::QuotaKind::Produce;
    let wait_ms = broker
        .quotas
        .record(kind, &caller.principal, client_id, bytes as f64);
    crate::quotas::hold_connection(kind, wait_ms)
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
        deferred: None,
        leader: None,
    }
}

/// The append result of a deferred append, once its task is done.
async fn settled(appended: Appended) -> Appended {
    let Some(task) = appended.deferred else {
        return appended;
    };
    let index = appended.response.index;
    task.await.unwrap_or_else(|e| {
        let code = ResponseError::UnknownServerError.code();
        failed(index, code, format!("the append task failed: {e}"))
    })
}

/// Where a partition's records go, and for which transaction if any.
struct Target<'a> {
    topic: &'a str,
    index: i32,
    transactional_id: Option<&'a str>,
    acks: i16,
}

fn append(
    broker: &Arc<Broker>,
    to: Target<'_>,
    records: Option<&bytes::Bytes>,
    now_ms: i64,
) -> Appended {
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
    if to.acks == -1
        && let Some(why) = too_few_in_sync(broker, topic, index)
    {
        return failed(index, ResponseError::NotEnoughReplicas.code(), why);
    }
    let origin = match origin(broker, &to, &partition, records) {
        Ok(Origin::Now(origin)) => origin,
        Ok(Origin::Verify(producer)) => {
            let id = to.transactional_id.unwrap_or_default().to_string();
            return defer(
                broker,
                (topic, index),
                partition,
                records.clone(),
                (id, producer),
            );
        }
        Err(fenced) => return failed(index, fenced.code(), "the producer has been fenced".into()),
    };
    write(broker, (topic, index), &partition, records, origin, now_ms)
}

/// `acks=all` needs at least `min.insync.replicas` in-sync replicas (the topic's, else the
/// broker's `min_insync_replicas`): with fewer, the batch is refused before it is written
/// (NOT_ENOUGH_REPLICAS, retriable), as Kafka refuses it. Why, if it is refused.
fn too_few_in_sync(broker: &Broker, topic: &str, index: i32) -> Option<String> {
    let image = broker.published_image();
    let in_sync = image.partition(topic, index).map_or(0, |p| p.isr.len());
    let resource = sluice_controller::ConfigResource::Topic(topic.to_string());
    let configured = image.configs.get(&resource).cloned().unwrap_or_default();
    let min = crate::publisher::min_insync_replicas(broker, &configured);
    (in_sync < min)
        .then(|| format!("{in_sync} in-sync replicas, fewer than min.insync.replicas {min}"))
}

/// Appends `records` to `partition` as `origin`.
fn write(
    broker: &Broker,
    (topic, index): (&str, i32),
    partition: &Arc<Partition>,
    records: &[u8],
    origin: AppendOrigin,
    now_ms: i64,
) -> Appended {
    // Taken before the append: a replicated partition whose leader role this broker has just
    // given up (the image handlers read is published after the replica manager applied it)
    // must not be answered on the local fsync alone, or an `acks=all` batch the new leader
    // never got would be acknowledged. Its role ending after this point shows in
    // `wait_committed` instead.
    let leader = broker.replicas.leader(topic, index);
    if leader.is_none() && !partition.log().is_sole_replica() {
        return failed(
            index,
            ResponseError::NotLeaderOrFollower.code(),
            "this broker no longer leads the partition".into(),
        );
    }
    match partition.append(records, origin, now_ms) {
        Ok(info) => {
            broker.metrics.produced(topic, info.records, info.bytes);
            let response = PartitionProduceResponse::default()
                .with_index(index)
                .with_base_offset(info.base_offset)
                .with_log_append_time_ms(-1)
                .with_log_start_offset(info.log_start_offset);
            Appended {
                partition: Some(partition.clone()),
                response,
                durable_at: info.last_offset + 1,
                deferred: None,
                leader,
            }
        }
        Err(e) => {
            tracing::debug!(topic, partition = index, error = %e, "produce refused");
            failed(index, error::code(&e), e.to_string())
        }
    }
}

/// How a batch is appended: now, as this origin, or once the transaction coordinator on
/// another broker has vouched for it (producer id and epoch).
enum Origin {
    Now(AppendOrigin),
    Verify((i64, i16)),
}

/// The append's origin: a transactional batch the coordinator vouches for may open or continue
/// its producer's transaction; any other stays a plain client write (storage refuses a
/// transactional one). A coordinator on another broker is asked first, unless the producer's
/// transaction is already open in this partition (it was vouched for then). Err: the
/// producer's epoch is fenced.
fn origin(
    broker: &Broker,
    to: &Target<'_>,
    partition: &Partition,
    records: &[u8],
) -> Result<Origin, ResponseError> {
    // Only requests naming a transactional id can carry verified transactional batches; the
    // others skip the header parse.
    let client = Ok(Origin::Now(AppendOrigin::Client));
    let Some(id) = to.transactional_id else {
        return client;
    };
    let Ok(header) = sluice_record::BatchHeader::parse(records) else {
        return client;
    };
    if !header.is_transactional() {
        return client;
    }
    let producer = (header.producer_id, header.producer_epoch);
    let tp = sluice_types::TopicPartition::new(to.topic, to.index);
    let Ok(transactions) = broker.transactions(id) else {
        if partition
            .log()
            .producer_in_transaction(producer.0, producer.1)
        {
            return Ok(Origin::Now(AppendOrigin::ClientInTransaction));
        }
        return Ok(Origin::Verify(producer));
    };
    match transactions.verify(id, producer.0, producer.1, &tp) {
        Verified::Yes => Ok(Origin::Now(AppendOrigin::ClientInTransaction)),
        Verified::Fenced => Err(ResponseError::InvalidProducerEpoch),
        Verified::NotInTransaction => client,
    }
}

/// A transactional batch whose coordinator is another broker: a task asks it
/// (AddPartitionsToTxn `verify_only`) and appends once it vouches. The connection reads its
/// next request only after that append (`dispatch::hold_reader`), so a producer's pipelined
/// batches still land in the order it sent them.
fn defer(
    broker: &Arc<Broker>,
    (topic, index): (&str, i32),
    partition: Arc<Partition>,
    records: bytes::Bytes,
    (transactional_id, producer): (String, (i64, i16)),
) -> Appended {
    let (appended_tx, appended_rx) = tokio::sync::oneshot::channel::<()>();
    let broker = broker.clone();
    let tp = sluice_types::TopicPartition::new(topic, index);
    let task = tokio::spawn(async move {
        let verified =
            crate::txn_peers::verify_remotely(&broker, &transactional_id, producer, &tp).await;
        let appended = match verified {
            Ok(()) => {
                let origin = AppendOrigin::ClientInTransaction;
                let now = crate::now_ms();
                write(
                    &broker,
                    (&tp.topic, index),
                    &partition,
                    &records,
                    origin,
                    now,
                )
            }
            Err(e) => failed(
                index,
                e.code(),
                format!("the transaction coordinator refused: {e:?}"),
            ),
        };
        let _ = appended_tx.send(());
        appended
    });
    crate::dispatch::hold_reader(async move {
        let _ = appended_rx.await;
    });
    Appended {
        partition: None,
        response: PartitionProduceResponse::default().with_index(index),
        durable_at: 0,
        deferred: Some(task),
        leader: None,
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
    let mut response = appended.response;
    if let Some(leader) = appended.leader {
        let committed = leader.wait_committed(appended.durable_at);
        match tokio::time::timeout_at(deadline, committed).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                response.error_code = error::replication_error(&e).code();
                response.error_message = Some(StrBytes::from_string(e.to_string()));
            }
            Err(_) => {
                response.error_code = ResponseError::RequestTimedOut.code();
                response.error_message = Some(StrBytes::from_static_str(
                    "not replicated to the in-sync replicas within the request timeout",
                ));
            }
        }
        return response;
    }
    let waited =
        tokio::time::timeout_at(deadline, partition.wait_durable(appended.durable_at)).await;
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
