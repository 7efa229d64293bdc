//! The transaction coordinator as a pure state machine, the way `sluice-group` is the group
//! coordinator: the broker hands it requests (InitProducerId with a `transactional.id`,
//! AddPartitionsToTxn, AddOffsetsToTxn, EndTxn), the time, and the records of
//! `__transaction_state` found at start; it answers with replies and `Effects`: records to
//! append to `__transaction_state`, and commit or abort markers to write to the partitions of
//! a transaction. It does no I/O, reads no clock and knows no wire type.
//!
//! Transaction states and transitions follow Kafka's `TransactionCoordinator` (transactions
//! version 1: markers carry the producer epoch of the transaction):
//! ```text
//!            AddPartitions             EndTxn                  markers written
//!  Empty ───────────────────▶ Ongoing ────────▶ PrepareCommit ──────────────▶ CompleteCommit
//!    ▲  InitProducerId          │ timeout,        PrepareAbort  ──────────────▶ CompleteAbort
//!    └──────────────────────────┘ InitProducerId (epoch bumped: the producer is fenced)
//! ```
//! `Complete*` and `Empty` start a new transaction on the next AddPartitions, and expire after
//! `transactional.id.expiration.ms` without use (a tombstone removes them).

mod coordinator;
mod error;
mod record;

pub use coordinator::{
    Effects, MarkerWrite, Outcome, TransactionCoordinator, TransactionMetadata, TxnConfig, TxnState,
};
pub use error::TxnError;
pub use record::TxnRecord;
pub use sluice_types::wire::FormatError;
