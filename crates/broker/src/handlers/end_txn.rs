//! EndTxn (v0–v3): commit or abort the producer's open transaction. Answered once the
//! decision is fsynced in `__transaction_state` and every marker is written and fsynced (see
//! `transactions.rs`), so a `read_committed` consumer sees the outcome as soon as the producer
//! does. v4 (KIP-890, transactions V2) is not offered.

use crate::error;
use crate::transactions::TxnCoordinators;
use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse};
use std::future::Future;
use std::sync::Arc;

pub(crate) fn handle(
    transactions: &Arc<TxnCoordinators>,
    request: EndTxnRequest,
    version: i16,
) -> impl Future<Output = Option<EndTxnResponse>> + Send + 'static + use<> {
    let transactions = transactions.clone();
    async move {
        let id = request.transactional_id.to_string();
        let (producer_id, epoch) = (request.producer_id.0, request.producer_epoch);
        let now = crate::now_ms();
        let result = transactions
            .run(&id, |c| {
                c.end_txn(&id, producer_id, epoch, request.committed, now)
            })
            .await;
        Some(EndTxnResponse::default().with_error_code(error::txn_code(&result, version >= 2)))
    }
}
