//! DescribeTransactions (v0): each transactional id's state, producer, timeout, start time and
//! partitions; TRANSACTIONAL_ID_NOT_FOUND for ids the coordinator does not know.

use super::{first_of_each, now};
use crate::transactions::TxnCoordinators;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::{
    DescribeTransactionsRequest, DescribeTransactionsResponse, ProducerId, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use std::sync::Arc;

pub(crate) fn handle(
    transactions: &Arc<TxnCoordinators>,
    request: DescribeTransactionsRequest,
    _version: i16,
) -> std::future::Ready<Option<DescribeTransactionsResponse>> {
    let states = first_of_each(&request.transactional_ids, |id| id.as_str())
        .into_iter()
        .map(|id| {
            let base = TransactionState::default().with_transactional_id(id.clone());
            // Each id is answered by its own coordinator; another broker's answer NOT_COORDINATOR.
            let coordinator = match transactions.of(id.as_str()) {
                Ok(t) => t,
                Err(_) => return base.with_error_code(ResponseError::NotCoordinator.code()),
            };
            coordinator.inspect(|c| {
                let Some(m) = c.get(id.as_str()) else {
                    return base.with_error_code(ResponseError::TransactionalIdNotFound.code());
                };
                let topics = sluice_types::by_topic(&m.partitions)
                    .into_iter()
                    .map(|(topic, partitions)| {
                        TopicData::default()
                            .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
                            .with_partitions(partitions)
                    })
                    .collect();
                base.with_transaction_state(StrBytes::from_static_str(m.state.name()))
                    .with_transaction_timeout_ms(m.timeout_ms)
                    .with_transaction_start_time_ms(m.start_ms)
                    .with_producer_id(ProducerId(m.producer_id))
                    .with_producer_epoch(m.producer_epoch)
                    .with_topics(topics)
            })
        })
        .collect();
    now(DescribeTransactionsResponse::default().with_transaction_states(states))
}
