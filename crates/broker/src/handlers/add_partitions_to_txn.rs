//! AddPartitionsToTxn (v0–v3): a transactional producer names the partitions it is about to
//! write, and they join its open transaction. If any partition does not exist (or belongs to
//! an internal topic), it gets UNKNOWN_TOPIC_OR_PARTITION and every other one
//! OPERATION_NOT_ATTEMPTED, as in Kafka. v4+ (brokers verifying for each other, KIP-890) is
//! not offered.

use crate::error;
use crate::server::Broker;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
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
        let id = request.v3_and_below_transactional_id.to_string();
        let producer_id = request.v3_and_below_producer_id.0;
        let epoch = request.v3_and_below_producer_epoch;
        let image = broker.published_image();
        let exists = |tp: &TopicPartition| {
            !crate::groups::is_internal(&tp.topic)
                && image.partition(&tp.topic, tp.partition).is_some()
        };
        let wanted: Vec<TopicPartition> = request
            .v3_and_below_topics
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(move |p| TopicPartition::new(t.name.as_str(), *p))
            })
            .collect();
        let all_exist = wanted.iter().all(exists);
        let code = if all_exist {
            let now = crate::now_ms();
            let result = broker
                .run_txn(|c| c.add_partitions(&id, producer_id, epoch, &wanted, now))
                .await;
            error::txn_code(&result, version >= 2)
        } else {
            0
        };
        let code_for = |tp: &TopicPartition| match (all_exist, exists(tp)) {
            (true, _) => code,
            (false, false) => ResponseError::UnknownTopicOrPartition.code(),
            (false, true) => ResponseError::OperationNotAttempted.code(),
        };
        let results = request
            .v3_and_below_topics
            .iter()
            .map(|t| {
                let partitions = t
                    .partitions
                    .iter()
                    .map(|p| {
                        AddPartitionsToTxnPartitionResult::default()
                            .with_partition_index(*p)
                            .with_partition_error_code(code_for(&TopicPartition::new(
                                t.name.as_str(),
                                *p,
                            )))
                    })
                    .collect();
                AddPartitionsToTxnTopicResult::default()
                    .with_name(t.name.clone())
                    .with_results_by_partition(partitions)
            })
            .collect();
        Some(AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results))
    }
}
