//! The transaction coordinator's transitions, one by one, and a restart (replay of every
//! record it emitted) in each state. No clock, no I/O: time is an argument.

use sluice_txn::{
    Effects, MarkerWrite, TransactionCoordinator, TxnConfig, TxnError, TxnRecord, TxnState,
};
use sluice_types::TopicPartition;

const TIMEOUT_MS: i32 = 60_000;

/// A coordinator plus every record it asked to append (the `__transaction_state` log).
struct Harness {
    c: TransactionCoordinator,
    log: Vec<TxnRecord>,
    next_pid: i64,
}

impl Harness {
    fn new() -> Harness {
        Harness {
            c: TransactionCoordinator::new(TxnConfig::default()),
            log: Vec::new(),
            next_pid: 1000,
        }
    }

    fn keep(&mut self, effects: &Effects) {
        self.log.extend(effects.records.iter().cloned());
    }

    fn init(&mut self, id: &str, now: i64) -> Result<(i64, i16), TxnError> {
        let pid = self.next_pid;
        let mut used = false;
        let o = self.c.init_producer_id(id, TIMEOUT_MS, None, now, || {
            used = true;
            Some(pid)
        });
        if used {
            self.next_pid += 1;
        }
        self.keep(&o.effects);
        o.reply
    }

    fn add(
        &mut self,
        id: &str,
        pe: (i64, i16),
        parts: &[(&str, i32)],
        now: i64,
    ) -> Result<(), TxnError> {
        let parts: Vec<TopicPartition> = parts
            .iter()
            .map(|(t, p)| TopicPartition::new(*t, *p))
            .collect();
        let o = self.c.add_partitions(id, pe.0, pe.1, &parts, now);
        self.keep(&o.effects);
        o.reply
    }

    /// EndTxn; returns the marker write it asked for, if any.
    fn end(
        &mut self,
        id: &str,
        pe: (i64, i16),
        commit: bool,
        now: i64,
    ) -> (Result<(), TxnError>, Vec<MarkerWrite>) {
        let o = self.c.end_txn(id, pe.0, pe.1, commit, now);
        self.keep(&o.effects);
        (o.reply, o.effects.markers)
    }

    fn written(&mut self, write: &MarkerWrite, now: i64) {
        let e = self.c.markers_written(write, now);
        self.keep(&e);
    }

    fn state(&self, id: &str) -> TxnState {
        self.c.get(id).expect("known id").state
    }

    /// A new coordinator that replayed the log: what a restart sees.
    fn restarted(&self) -> TransactionCoordinator {
        let mut c = TransactionCoordinator::new(TxnConfig::default());
        for r in &self.log {
            // Through the bytes, as a restart reads them.
            let (key, value) = r.encode();
            c.replay(TxnRecord::decode(Some(&key), value.as_deref()).unwrap());
        }
        c
    }
}

#[test]
fn a_committed_transaction_walks_every_state_and_survives_restart_in_each() {
    let mut h = Harness::new();
    let pe = h.init("tx", 0).unwrap();
    assert_eq!(pe, (1000, 0));
    assert_eq!(h.state("tx"), TxnState::Empty);
    assert_eq!(h.restarted().get("tx"), h.c.get("tx"));

    h.add("tx", pe, &[("out", 0), ("out", 1)], 10).unwrap();
    assert_eq!(h.state("tx"), TxnState::Ongoing);
    assert_eq!(h.c.get("tx").unwrap().start_ms, 10);
    let restarted = h.restarted();
    assert_eq!(restarted.get("tx"), h.c.get("tx"));
    assert!(
        restarted.recover().markers.is_empty(),
        "an open transaction waits for its producer or its timeout"
    );

    // Adding partitions already in is answered without a record.
    let before = h.log.len();
    h.add("tx", pe, &[("out", 1)], 11).unwrap();
    assert_eq!(h.log.len(), before);

    let (reply, markers) = h.end("tx", pe, true, 20);
    reply.unwrap();
    assert_eq!(h.state("tx"), TxnState::PrepareCommit);
    assert_eq!(markers.len(), 1);
    let write = markers[0].clone();
    assert!(write.commit);
    assert_eq!((write.producer_id, write.producer_epoch), pe);
    assert_eq!(
        write.partitions,
        vec![TopicPartition::new("out", 0), TopicPartition::new("out", 1)]
    );
    // A restart while committing writes the markers again: never left hanging.
    let restarted = h.restarted();
    assert_eq!(restarted.get("tx"), h.c.get("tx"));
    assert_eq!(restarted.recover().markers, vec![write.clone()]);

    h.written(&write, 30);
    assert_eq!(h.state("tx"), TxnState::CompleteCommit);
    assert!(h.c.get("tx").unwrap().partitions.is_empty());
    let restarted = h.restarted();
    assert_eq!(restarted.get("tx"), h.c.get("tx"));
    assert!(restarted.recover().markers.is_empty());

    // A retried EndTxn of the same outcome succeeds; the other outcome is refused.
    assert_eq!(h.end("tx", pe, true, 31).0, Ok(()));
    assert!(matches!(
        h.end("tx", pe, false, 31).0,
        Err(TxnError::InvalidTxnState(_))
    ));

    // The next transaction starts from CompleteCommit.
    h.add("tx", pe, &[("other", 2)], 40).unwrap();
    assert_eq!(
        h.c.get("tx").unwrap().partitions.len(),
        1,
        "the old partitions are gone"
    );
}

#[test]
fn an_aborted_transaction_and_restart_while_aborting() {
    let mut h = Harness::new();
    let pe = h.init("tx", 0).unwrap();
    h.add("tx", pe, &[("t", 0)], 1).unwrap();
    let (reply, markers) = h.end("tx", pe, false, 2);
    reply.unwrap();
    assert_eq!(h.state("tx"), TxnState::PrepareAbort);
    assert!(!markers[0].commit);
    assert_eq!(h.restarted().recover().markers, markers);
    // While aborting: the same EndTxn is retried later, adding is refused for now.
    assert_eq!(
        h.end("tx", pe, false, 3).0,
        Err(TxnError::ConcurrentTransactions)
    );
    assert!(matches!(
        h.end("tx", pe, true, 3).0,
        Err(TxnError::InvalidTxnState(_))
    ));
    assert_eq!(
        h.add("tx", pe, &[("t", 1)], 3),
        Err(TxnError::ConcurrentTransactions)
    );
    h.written(&markers[0], 4);
    assert_eq!(h.state("tx"), TxnState::CompleteAbort);
    assert_eq!(h.restarted().get("tx"), h.c.get("tx"));
}

#[test]
fn a_second_producer_fences_the_first_and_aborts_its_open_transaction() {
    let mut h = Harness::new();
    let first = h.init("tx", 0).unwrap();
    h.add("tx", first, &[("t", 0)], 1).unwrap();

    // The new instance: the open transaction is aborted with a bumped epoch, and it is told
    // to retry until that abort completes.
    let o = h.c.init_producer_id("tx", TIMEOUT_MS, None, 2, || None);
    h.keep(&o.effects);
    assert_eq!(o.reply, Err(TxnError::ConcurrentTransactions));
    assert_eq!(o.effects.markers.len(), 1);
    let abort = o.effects.markers[0].clone();
    assert!(!abort.commit);
    assert_eq!(
        abort.producer_epoch,
        first.1 + 1,
        "markers fence the old epoch"
    );
    assert_eq!(h.init("tx", 3), Err(TxnError::ConcurrentTransactions));
    h.written(&abort, 4);
    let second = h.init("tx", 5).unwrap();
    assert_eq!(second, (first.0, first.1 + 2));

    // The zombie is fenced everywhere.
    assert_eq!(
        h.add("tx", first, &[("t", 0)], 6),
        Err(TxnError::ProducerFenced)
    );
    assert_eq!(h.end("tx", first, true, 6).0, Err(TxnError::ProducerFenced));
    assert_eq!(
        h.add("tx", (999, 0), &[("t", 0)], 6),
        Err(TxnError::InvalidProducerIdMapping)
    );
    assert_eq!(
        h.add("nope", second, &[("t", 0)], 6),
        Err(TxnError::InvalidProducerIdMapping)
    );
    // v3+: a producer asking to bump an epoch that is not the current one is fenced.
    let stale =
        h.c.init_producer_id("tx", TIMEOUT_MS, Some(first), 7, || None);
    assert_eq!(stale.reply, Err(TxnError::ProducerFenced));
    let own =
        h.c.init_producer_id("tx", TIMEOUT_MS, Some(second), 7, || None);
    assert_eq!(own.reply, Ok((second.0, second.1 + 1)));
}

#[test]
fn an_exhausted_epoch_gets_a_new_producer_id() {
    let mut h = Harness::new();
    h.init("tx", 0).unwrap();
    let mut record = h.log.last().unwrap().clone();
    record.value.as_mut().unwrap().producer_epoch = i16::MAX - 1;
    h.c.replay(record);
    assert_eq!(h.init("tx", 1), Ok((1001, 0)));
}

#[test]
fn timed_out_transactions_are_aborted_and_their_producer_fenced() {
    let mut h = Harness::new();
    let pe = h.init("tx", 0).unwrap();
    h.add("tx", pe, &[("t", 0)], 1_000).unwrap();
    assert_eq!(h.c.tick(1_000 + i64::from(TIMEOUT_MS)), Effects::default());
    let e = h.c.tick(1_001 + i64::from(TIMEOUT_MS));
    h.keep(&e);
    assert_eq!(e.markers.len(), 1);
    assert!(!e.markers[0].commit);
    assert_eq!(h.state("tx"), TxnState::PrepareAbort);
    h.written(&e.markers[0], 70_000);
    assert_eq!(h.state("tx"), TxnState::CompleteAbort);
    assert_eq!(
        h.end("tx", pe, true, 70_001).0,
        Err(TxnError::ProducerFenced)
    );
}

#[test]
fn idle_transactional_ids_expire_with_a_tombstone() {
    let mut h = Harness::new();
    h.init("tx", 0).unwrap();
    let week = TxnConfig::default().transactional_id_expiration_ms;
    assert!(h.c.tick(week).records.is_empty());
    let e = h.c.tick(week + 1);
    h.keep(&e);
    assert_eq!(
        e.records,
        vec![TxnRecord {
            transactional_id: "tx".into(),
            value: None
        }]
    );
    assert!(h.c.get("tx").is_none());
    assert!(
        h.restarted().get("tx").is_none(),
        "the tombstone removes it on replay"
    );
}

#[test]
fn bad_requests_are_refused_without_effects() {
    let mut h = Harness::new();
    for (id, timeout) in [("", TIMEOUT_MS), ("tx", 0), ("tx", 900_001)] {
        let o = h.c.init_producer_id(id, timeout, None, 0, || Some(1));
        assert!(o.reply.is_err(), "{id:?} {timeout}");
        assert_eq!(o.effects, Effects::default());
    }
    let pe = h.init("tx", 0).unwrap();
    assert!(
        matches!(
            h.end("tx", pe, true, 1).0,
            Err(TxnError::InvalidTxnState(_))
        ),
        "nothing open"
    );
    let o = h.c.init_producer_id("other", TIMEOUT_MS, None, 0, || None);
    assert_eq!(o.reply, Err(TxnError::ProducerIdUnavailable));
}

#[test]
fn list_filters_by_state_and_producer() {
    let mut h = Harness::new();
    let a = h.init("a", 0).unwrap();
    h.init("b", 0).unwrap();
    h.add("a", a, &[("t", 0)], 1).unwrap();
    let ids = |v: Vec<(&str, &sluice_txn::TransactionMetadata)>| {
        v.into_iter()
            .map(|(id, _)| id.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(h.c.list(&[], &[])), ["a", "b"]);
    assert_eq!(ids(h.c.list(&[TxnState::Ongoing], &[])), ["a"]);
    assert_eq!(ids(h.c.list(&[], &[a.0 + 1])), ["b"]);
    assert_eq!(
        TxnState::from_name("PrepareAbort"),
        Some(TxnState::PrepareAbort)
    );
    for code in 0..7 {
        assert_eq!(TxnState::from_code(code).unwrap().code(), code);
    }
    assert_eq!(TxnState::from_code(7), None);
}
