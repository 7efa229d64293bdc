//! `TransactionCoordinator`: every transactional id's state, the transitions of the module doc
//! in `lib.rs`, and what each transition asks the broker to do.
//!
//! Every change of a transactional id's state produces exactly one `TxnRecord` holding its
//! whole new state, and `replay` applies such a record the same way at start: the state after
//! a restart is the state the records describe. The broker must append a transition's records
//! before it acts on its markers or answers the request.

use crate::error::TxnError;
use crate::record::TxnRecord;
use sluice_types::TopicPartition;
use sluice_types::limits::{
    TRANSACTION_PARTITIONS_MAX, TRANSACTIONAL_ID_BYTES_MAX, TRANSACTIONS_MAX,
};
use std::collections::{BTreeSet, HashMap};

/// Broker settings the coordinator applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnConfig {
    /// `transaction.max.timeout.ms`: the longest `transaction.timeout.ms` a producer may ask.
    pub transaction_max_timeout_ms: i32,
    /// `transactional.id.expiration.ms`: an idle transactional id is forgotten after this.
    pub transactional_id_expiration_ms: i64,
}

impl Default for TxnConfig {
    /// Kafka's defaults: 15 minutes and 7 days.
    fn default() -> Self {
        TxnConfig {
            transaction_max_timeout_ms: 900_000,
            transactional_id_expiration_ms: 604_800_000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
    Dead,
}

impl TxnState {
    const ALL: [TxnState; 7] = [
        TxnState::Empty,
        TxnState::Ongoing,
        TxnState::PrepareCommit,
        TxnState::PrepareAbort,
        TxnState::CompleteCommit,
        TxnState::CompleteAbort,
        TxnState::Dead,
    ];

    /// The status byte of `__transaction_state` (Kafka's numbering).
    pub fn code(self) -> i8 {
        Self::ALL.iter().position(|&s| s == self).expect("listed") as i8
    }

    pub fn from_code(code: i8) -> Option<TxnState> {
        usize::try_from(code)
            .ok()
            .and_then(|i| Self::ALL.get(i).copied())
    }

    /// The name DescribeTransactions and ListTransactions use.
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
            TxnState::Dead => "Dead",
        }
    }

    pub fn from_name(name: &str) -> Option<TxnState> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    fn preparing(self) -> bool {
        matches!(self, TxnState::PrepareCommit | TxnState::PrepareAbort)
    }
}

/// One transactional id's state: what `__transaction_state` stores for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionMetadata {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    /// Partitions of the open (or ending) transaction.
    pub partitions: BTreeSet<TopicPartition>,
    pub last_update_ms: i64,
    /// When the open transaction began; -1 when none is open.
    pub start_ms: i64,
}

/// Markers the broker must write to end a transaction, then report with `markers_written`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkerWrite {
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub commit: bool,
    pub partitions: Vec<TopicPartition>,
}

/// What a transition asks of the broker, in order: append `records` to `__transaction_state`,
/// then write `markers`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Effects {
    pub records: Vec<TxnRecord>,
    pub markers: Vec<MarkerWrite>,
}

impl Effects {
    fn extend(&mut self, other: Effects) {
        self.records.extend(other.records);
        self.markers.extend(other.markers);
    }
}

/// A request's answer and the effects that must happen before it is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome<T> {
    pub reply: Result<T, TxnError>,
    pub effects: Effects,
}

impl<T> Outcome<T> {
    fn refused(e: TxnError) -> Self {
        Outcome {
            reply: Err(e),
            effects: Effects::default(),
        }
    }
}

#[derive(Debug, Default)]
pub struct TransactionCoordinator {
    config: TxnConfig,
    txns: HashMap<String, TransactionMetadata>,
}

impl TransactionCoordinator {
    pub fn new(config: TxnConfig) -> TransactionCoordinator {
        TransactionCoordinator {
            config,
            txns: HashMap::new(),
        }
    }

    /// Applies a record of `__transaction_state` read at start (the last one per id wins).
    pub fn replay(&mut self, record: TxnRecord) {
        match record.value {
            Some(value) => self.txns.insert(record.transactional_id, value),
            None => self.txns.remove(&record.transactional_id),
        };
    }

    /// After replay: transactions that were ending when the broker stopped get their markers
    /// again (writing a marker twice is harmless), so none is left hanging. Open ones are left
    /// to their timeout, as in Kafka.
    pub fn recover(&self) -> Effects {
        let mut effects = Effects::default();
        let mut ids: Vec<&String> = self.txns.keys().collect();
        ids.sort();
        for id in ids {
            let m = &self.txns[id];
            if m.state.preparing() {
                effects.markers.push(marker_write(id, m));
            }
        }
        effects
    }

    pub fn get(&self, transactional_id: &str) -> Option<&TransactionMetadata> {
        self.txns.get(transactional_id)
    }

    /// Every transactional id with its state, filtered as ListTransactions asks (empty
    /// filters match all), sorted by id.
    pub fn list(
        &self,
        states: &[TxnState],
        producer_ids: &[i64],
    ) -> Vec<(&str, &TransactionMetadata)> {
        let mut out: Vec<(&str, &TransactionMetadata)> = self
            .txns
            .iter()
            .filter(|(_, m)| states.is_empty() || states.contains(&m.state))
            .filter(|(_, m)| producer_ids.is_empty() || producer_ids.contains(&m.producer_id))
            .map(|(id, m)| (id.as_str(), m))
            .collect();
        out.sort_by_key(|(id, _)| *id);
        out
    }

    /// InitProducerId with a `transactional.id`: the producer id and a new epoch, fencing any
    /// older producer with the same id. `expected` is the producer's current id and epoch when
    /// it asks to bump its own epoch (v3+); `new_producer_id` is called when a new id is needed.
    pub fn init_producer_id(
        &mut self,
        transactional_id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
        now_ms: i64,
        new_producer_id: impl FnOnce() -> Option<i64>,
    ) -> Outcome<(i64, i16)> {
        if transactional_id.is_empty() || transactional_id.len() > TRANSACTIONAL_ID_BYTES_MAX {
            return Outcome::refused(TxnError::InvalidTransactionalId);
        }
        if timeout_ms <= 0 || timeout_ms > self.config.transaction_max_timeout_ms {
            return Outcome::refused(TxnError::InvalidTransactionTimeout);
        }
        let Some(current) = self.txns.get(transactional_id) else {
            if self.txns.len() >= TRANSACTIONS_MAX {
                return Outcome::refused(TxnError::LimitReached("transactional ids"));
            }
            let Some(producer_id) = new_producer_id() else {
                return Outcome::refused(TxnError::ProducerIdUnavailable);
            };
            let m = TransactionMetadata {
                producer_id,
                producer_epoch: 0,
                timeout_ms,
                state: TxnState::Empty,
                partitions: BTreeSet::new(),
                last_update_ms: now_ms,
                start_ms: -1,
            };
            return self.transition(transactional_id, m, Ok((producer_id, 0)));
        };
        if let Some(pair) = expected
            && pair != (current.producer_id, current.producer_epoch)
        {
            return Outcome::refused(TxnError::ProducerFenced);
        }
        let mut m = current.clone();
        match m.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort => {
                Outcome::refused(TxnError::ConcurrentTransactions)
            }
            TxnState::Ongoing => {
                // Fence the old producer and abort its transaction; the new one retries.
                let effects = self.abort_fencing(transactional_id, now_ms);
                Outcome {
                    reply: Err(TxnError::ConcurrentTransactions),
                    effects,
                }
            }
            TxnState::Empty
            | TxnState::CompleteCommit
            | TxnState::CompleteAbort
            | TxnState::Dead => {
                if m.producer_epoch >= i16::MAX - 1 {
                    let Some(producer_id) = new_producer_id() else {
                        return Outcome::refused(TxnError::ProducerIdUnavailable);
                    };
                    m.producer_id = producer_id;
                    m.producer_epoch = 0;
                } else {
                    m.producer_epoch += 1;
                }
                m.timeout_ms = timeout_ms;
                m.state = TxnState::Empty;
                m.partitions.clear();
                m.last_update_ms = now_ms;
                m.start_ms = -1;
                let reply = Ok((m.producer_id, m.producer_epoch));
                self.transition(transactional_id, m, reply)
            }
        }
    }

    /// AddPartitionsToTxn (and AddOffsetsToTxn, with the group's offsets partition): the
    /// partitions join the open transaction, which begins here if none is open.
    pub fn add_partitions(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[TopicPartition],
        now_ms: i64,
    ) -> Outcome<()> {
        let current = match self.check_producer(transactional_id, producer_id, producer_epoch) {
            Ok(m) => m,
            Err(e) => return Outcome::refused(e),
        };
        if current.state.preparing() {
            return Outcome::refused(TxnError::ConcurrentTransactions);
        }
        if current.state == TxnState::Ongoing
            && partitions.iter().all(|tp| current.partitions.contains(tp))
        {
            return Outcome {
                reply: Ok(()),
                effects: Effects::default(),
            };
        }
        let mut m = current.clone();
        if m.state != TxnState::Ongoing {
            m.partitions.clear();
            m.start_ms = now_ms;
        }
        m.partitions.extend(partitions.iter().cloned());
        if m.partitions.len() > TRANSACTION_PARTITIONS_MAX {
            return Outcome::refused(TxnError::LimitReached("partitions in one transaction"));
        }
        m.state = TxnState::Ongoing;
        m.last_update_ms = now_ms;
        self.transition(transactional_id, m, Ok(()))
    }

    /// EndTxn: commit or abort the open transaction. The answer may go once the returned
    /// record is appended; the markers then complete it (`markers_written`). A retried EndTxn
    /// of a transaction already ended the same way succeeds again.
    pub fn end_txn(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        now_ms: i64,
    ) -> Outcome<()> {
        let current = match self.check_producer(transactional_id, producer_id, producer_epoch) {
            Ok(m) => m,
            Err(e) => return Outcome::refused(e),
        };
        let done = |ok: bool, why: &'static str| Outcome {
            reply: if ok {
                Ok(())
            } else {
                Err(TxnError::InvalidTxnState(why))
            },
            effects: Effects::default(),
        };
        match (current.state, commit) {
            (TxnState::Ongoing, _) => {
                let mut m = current.clone();
                m.state = if commit {
                    TxnState::PrepareCommit
                } else {
                    TxnState::PrepareAbort
                };
                m.last_update_ms = now_ms;
                let mut outcome = self.transition(transactional_id, m, Ok(()));
                let m = &self.txns[transactional_id];
                outcome
                    .effects
                    .markers
                    .push(marker_write(transactional_id, m));
                outcome
            }
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => done(true, ""),
            (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
                Outcome::refused(TxnError::ConcurrentTransactions)
            }
            (TxnState::CompleteCommit | TxnState::PrepareCommit, false) => {
                done(false, "the transaction is committing or committed")
            }
            (TxnState::CompleteAbort | TxnState::PrepareAbort, true) => {
                done(false, "the transaction is aborting or aborted")
            }
            (TxnState::Empty, _) => done(false, "no transaction is open"),
            (TxnState::Dead, _) => Outcome::refused(TxnError::InvalidProducerIdMapping),
        }
    }

    /// The broker wrote every marker of `write`: the transaction is complete. Ignored if the
    /// transactional id has moved on (another producer id or epoch, or no longer ending).
    pub fn markers_written(&mut self, write: &MarkerWrite, now_ms: i64) -> Effects {
        let Some(current) = self.txns.get(&write.transactional_id) else {
            return Effects::default();
        };
        let expected = if write.commit {
            TxnState::PrepareCommit
        } else {
            TxnState::PrepareAbort
        };
        if current.state != expected
            || current.producer_id != write.producer_id
            || current.producer_epoch != write.producer_epoch
        {
            return Effects::default();
        }
        let mut m = current.clone();
        m.state = if write.commit {
            TxnState::CompleteCommit
        } else {
            TxnState::CompleteAbort
        };
        m.partitions.clear();
        m.start_ms = -1;
        m.last_update_ms = now_ms;
        self.transition(&write.transactional_id, m, Ok(())).effects
    }

    /// Aborts transactions open longer than their timeout (fencing their producers, as Kafka
    /// does, so a stalled producer cannot add to a transaction the coordinator gave up on) and
    /// forgets transactional ids idle for `transactional.id.expiration.ms`.
    pub fn tick(&mut self, now_ms: i64) -> Effects {
        let mut timed_out = Vec::new();
        let mut expired = Vec::new();
        for (id, m) in &self.txns {
            match m.state {
                TxnState::Ongoing if now_ms - m.start_ms > i64::from(m.timeout_ms) => {
                    timed_out.push(id.clone())
                }
                TxnState::Empty
                | TxnState::CompleteCommit
                | TxnState::CompleteAbort
                | TxnState::Dead
                    if now_ms - m.last_update_ms > self.config.transactional_id_expiration_ms =>
                {
                    expired.push(id.clone())
                }
                _ => {}
            }
        }
        timed_out.sort();
        expired.sort();
        let mut effects = Effects::default();
        for id in timed_out {
            effects.extend(self.abort_fencing(&id, now_ms));
        }
        for id in expired {
            self.txns.remove(&id);
            effects.records.push(TxnRecord {
                transactional_id: id,
                value: None,
            });
        }
        effects
    }

    /// Bumps the producer epoch of an open transaction and starts aborting it.
    fn abort_fencing(&mut self, transactional_id: &str, now_ms: i64) -> Effects {
        let mut m = self.txns[transactional_id].clone();
        debug_assert_eq!(m.state, TxnState::Ongoing);
        m.producer_epoch = m.producer_epoch.saturating_add(1);
        m.state = TxnState::PrepareAbort;
        m.last_update_ms = now_ms;
        let mut effects = self.transition(transactional_id, m, Ok(())).effects;
        effects
            .markers
            .push(marker_write(transactional_id, &self.txns[transactional_id]));
        effects
    }

    fn check_producer(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
    ) -> Result<&TransactionMetadata, TxnError> {
        let m = self
            .txns
            .get(transactional_id)
            .ok_or(TxnError::InvalidProducerIdMapping)?;
        if m.producer_id != producer_id {
            return Err(TxnError::InvalidProducerIdMapping);
        }
        if m.producer_epoch != producer_epoch {
            return Err(TxnError::ProducerFenced);
        }
        Ok(m)
    }

    /// Stores `m` and returns the record that persists it.
    fn transition<T>(
        &mut self,
        transactional_id: &str,
        m: TransactionMetadata,
        reply: Result<T, TxnError>,
    ) -> Outcome<T> {
        let record = TxnRecord {
            transactional_id: transactional_id.to_string(),
            value: Some(m.clone()),
        };
        self.txns.insert(transactional_id.to_string(), m);
        Outcome {
            reply,
            effects: Effects {
                records: vec![record],
                markers: Vec::new(),
            },
        }
    }
}

fn marker_write(transactional_id: &str, m: &TransactionMetadata) -> MarkerWrite {
    MarkerWrite {
        transactional_id: transactional_id.to_string(),
        producer_id: m.producer_id,
        producer_epoch: m.producer_epoch,
        commit: m.state == TxnState::PrepareCommit,
        partitions: m.partitions.iter().cloned().collect(),
    }
}
