//! AddPartitionsToTxn (v0–v4). v0–v3: a transactional producer names the partitions it is
//! about to write, and they join its open transaction. If any partition does not exist (or
//! belongs to an internal topic), it gets UNKNOWN_TOPIC_OR_PARTITION and every other one
//! OPERATION_NOT_ATTEMPTED, as in Kafka.
//!
//! v4 (KIP-890) is the brokers' form: several transactions at once, each either added as
//! above or, with `verify_only`, only checked: a partition leader asks the coordinator
//! whether a transactional batch's partition is in its producer's open transaction before
//! writing it (`produce`). Clients stay at v3 (Kafka's do too).

use crate::error;
use crate::server::Broker;
use crate::transactions::Verified;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{AddPartitionsToTxnRequest, AddPartitionsToTxnResponse};
use sluice_types::TopicPartition;
use std::future::Future;
use std::sync::Arc;

pub(crate) fn handle(
    broker: &Arc<Broker>,
    request: AddPartitionsToTxnRequest,
    version: i16,
) -> impl Future<Output = Option<AddPartitionsToTxnResponse>> + Send + 'static + use<> {
    let broker = broker.clone();
    async move {
        if version < 4 {
            let id = request.v3_and_below_transactional_id.to_string();
            let producer = (
                request.v3_and_below_producer_id.0,
                request.v3_and_below_producer_epoch,
            );
            let topics = &request.v3_and_below_topics;
            let results = add(&broker, &id, producer, topics, version).await;
            return Some(
                AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results),
            );
        }
        let mut results = Vec::with_capacity(request.transactions.len());
        for txn in &request.transactions {
            let id = txn.transactional_id.to_string();
            let producer = (txn.producer_id.0, txn.producer_epoch);
            let topic_results = if txn.verify_only {
                verify(&broker, txn)
            } else {
                add(&broker, &id, producer, &txn.topics, version).await
            };
            results.push(
                AddPartitionsToTxnResult::default()
                    .with_transactional_id(txn.transactional_id.clone())
                    .with_topic_results(topic_results),
            );
        }
        Some(AddPartitionsToTxnResponse::default().with_results_by_transaction(results))
    }
}

/// Adds `topics`' partitions to the producer's open transaction: every partition's code.
async fn add(
    broker: &Broker,
    id: &str,
    (producer_id, epoch): (i64, i16),
    topics: &[AddPartitionsToTxnTopic],
    version: i16,
) -> Vec<AddPartitionsToTxnTopicResult> {
    let image = broker.published_image();
    let exists = |tp: &TopicPartition| {
        !crate::groups::is_internal(&tp.topic) && image.partition(&tp.topic, tp.partition).is_some()
    };
    let wanted = partitions(topics);
    let all_exist = wanted.iter().all(exists);
    let code = if all_exist {
        let now = crate::now_ms();
        let result = broker
            .run_txn(id, |c| {
                c.add_partitions(id, producer_id, epoch, &wanted, now)
            })
            .await;
        error::txn_code(&result, version >= 2)
    } else {
        0
    };
    answer(topics, |tp| match (all_exist, exists(tp)) {
        (true, _) => code,
        (false, false) => ResponseError::UnknownTopicOrPartition.code(),
        (false, true) => ResponseError::OperationNotAttempted.code(),
    })
}

/// `verify_only`: whether each partition is in the producer's open transaction (0), or the
/// producer is fenced (INVALID_PRODUCER_EPOCH), or it is not (INVALID_TXN_STATE).
fn verify(
    broker: &Broker,
    txn: &AddPartitionsToTxnTransaction,
) -> Vec<AddPartitionsToTxnTopicResult> {
    let id = txn.transactional_id.as_str();
    let transactions = broker.transactions(id);
    answer(&txn.topics, |tp| match &transactions {
        Err(e) => error::txn_error(e, true).code(),
        Ok(t) => match t.verify(id, txn.producer_id.0, txn.producer_epoch, tp) {
            Verified::Yes => 0,
            Verified::Fenced => ResponseError::InvalidProducerEpoch.code(),
            Verified::NotInTransaction => ResponseError::InvalidTxnState.code(),
        },
    })
}

fn partitions(topics: &[AddPartitionsToTxnTopic]) -> Vec<TopicPartition> {
    topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| TopicPartition::new(t.name.as_str(), *p))
        })
        .collect()
}

/// Each named partition with the code `code_for` gives it.
fn answer(
    topics: &[AddPartitionsToTxnTopic],
    code_for: impl Fn(&TopicPartition) -> i16,
) -> Vec<AddPartitionsToTxnTopicResult> {
    topics
        .iter()
        .map(|t| {
            let results = t
                .partitions
                .iter()
                .map(|&p| {
                    let code = code_for(&TopicPartition::new(t.name.as_str(), p));
                    AddPartitionsToTxnPartitionResult::default()
                        .with_partition_index(p)
                        .with_partition_error_code(code)
                })
                .collect();
            AddPartitionsToTxnTopicResult::default()
                .with_name(t.name.clone())
                .with_results_by_partition(results)
        })
        .collect()
}
