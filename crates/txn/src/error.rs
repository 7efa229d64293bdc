//! The transaction coordinator's one error enum. The broker maps each variant to a Kafka error
//! code in its single mapping (`sluice_broker::error`); the names follow Kafka's.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxnError {
    #[error("the producer id does not match the transactional id's")]
    InvalidProducerIdMapping,
    #[error("a newer producer with the same transactional id has fenced this one")]
    ProducerFenced,
    #[error("transaction timeout outside (0, transaction.max.timeout.ms]")]
    InvalidTransactionTimeout,
    #[error("another operation on this transaction is in progress; retry")]
    ConcurrentTransactions,
    #[error("invalid transaction state: {0}")]
    InvalidTxnState(&'static str),
    #[error("invalid transactional id")]
    InvalidTransactionalId,
    #[error("limit reached: {0}")]
    LimitReached(&'static str),
    #[error("could not allocate a producer id")]
    ProducerIdUnavailable,
    #[error("the transaction coordinator could not write its log")]
    CoordinatorNotAvailable,
    /// The transactional id's coordinator is on another broker (FindCoordinator names it).
    #[error("this broker does not coordinate the transactional id")]
    NotCoordinator,
}
