//! ListTransactions (v0–v1): transactional ids with their producer and state, filtered by
//! state names, producer ids and (v1) how long the transaction has been open. State names the
//! broker does not know are listed back in `unknown_state_filters`. v2's id pattern is not
//! offered.

use super::now;
use crate::transactions::TxnCoordinators;
use kafka_protocol::messages::list_transactions_response::TransactionState;
use kafka_protocol::messages::{
    ListTransactionsRequest, ListTransactionsResponse, ProducerId, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;
use sluice_txn::TxnState;
use std::sync::Arc;

pub(crate) fn handle(
    transactions: &Arc<TxnCoordinators>,
    request: ListTransactionsRequest,
    _version: i16,
) -> std::future::Ready<Option<ListTransactionsResponse>> {
    let mut states = Vec::new();
    let mut unknown = Vec::new();
    for name in &request.state_filters {
        match TxnState::from_name(name.as_str()) {
            Some(state) => states.push(state),
            None => unknown.push(name.clone()),
        }
    }
    let producer_ids: Vec<i64> = request.producer_id_filters.iter().map(|p| p.0).collect();
    let now_ms = crate::now_ms();
    let open_longer_than = |start_ms: i64| {
        request.duration_filter < 0
            || (start_ms >= 0 && now_ms - start_ms > request.duration_filter)
    };
    // Each broker lists the transactions it coordinates (admin clients ask every broker).
    let listed = transactions
        .all()
        .iter()
        .flat_map(|coordinator| {
            coordinator.inspect(|c| {
                c.list(&states, &producer_ids)
                    .into_iter()
                    .filter(|(_, m)| open_longer_than(m.start_ms))
                    .map(|(id, m)| {
                        let id = TransactionalId(StrBytes::from_string(id.to_string()));
                        TransactionState::default()
                            .with_transactional_id(id)
                            .with_producer_id(ProducerId(m.producer_id))
                            .with_transaction_state(StrBytes::from_static_str(m.state.name()))
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    now(ListTransactionsResponse::default()
        .with_unknown_state_filters(unknown)
        .with_transaction_states(listed))
}
