//! The properties the simulation checks, after every event and at the end of a run:
//! - at most one leader per leader epoch;
//! - a broker's high watermark never moves back (a crash restarts it from its checkpoint);
//! - every offset below a replica's high watermark holds the same batch on every replica that
//!   has it below its own (a replica may hold a stale divergent tail above its high watermark
//!   until it learns of the new leader and truncates); no replica ever truncates below its
//!   high watermark, and no leader appends over a committed offset;
//! - every acknowledged batch is durable on at least `min.insync.replicas` replicas, from the
//!   moment it is acknowledged on;
//! - at the end, with faults healed, the replicas converge: one leader, identical logs, the
//!   high watermark at the log end, every acknowledged batch everywhere.
//!
//! (The last stable offset is not the replication core's: storage derives it from the high
//! watermark and the transaction markers, and its tests check that it stays at or below it.)

use super::log::{Batch, ModelLog};
use std::collections::BTreeMap;

/// What the checks remember across events.
#[derive(Default)]
pub struct Checker {
    leaders_by_epoch: BTreeMap<i32, i32>,
    /// Every batch ever below some replica's high watermark, by base offset.
    committed: BTreeMap<i64, Batch>,
    pub acked: Vec<Batch>,
    pub min_insync: usize,
}

pub type Verdict = Result<(), String>;

impl Checker {
    pub fn new(min_insync: usize) -> Checker {
        Checker {
            min_insync,
            ..Checker::default()
        }
    }

    pub fn became_leader(&mut self, broker: i32, epoch: i32) -> Verdict {
        match self.leaders_by_epoch.insert(epoch, broker) {
            Some(other) if other != broker => Err(format!(
                "two leaders in epoch {epoch}: brokers {other} and {broker}"
            )),
            _ => Ok(()),
        }
    }

    /// A batch the newest leader is about to write must not contradict one that was committed
    /// at the same offsets (it would mean the leader lacks committed data). (A follower may copy such a batch: from a deposed leader it still follows,
    /// a tail it truncates once it learns of the new leader; what it holds below its own high
    /// watermark is checked by `after_event`.)
    pub fn appending(&self, broker: i32, batch: &Batch, log: &ModelLog) -> Verdict {
        // A deposed leader that has not heard yet may append; it cannot commit, and truncates.
        let newest_epoch = self.leaders_by_epoch.keys().next_back().copied();
        if batch.last < log.start || Some(batch.epoch) != newest_epoch {
            return Ok(());
        }
        match self.overlapping_committed(batch) {
            Some(c) if c != *batch => Err(format!(
                "broker {broker} writes {batch:?} over committed {c:?}"
            )),
            _ => Ok(()),
        }
    }

    /// A truncation to `offset`: never below the high watermark.
    pub fn truncating(&self, broker: i32, offset: i64, log: &ModelLog) -> Verdict {
        if offset < log.high_watermark {
            return Err(format!(
                "broker {broker} truncates to {offset}, below its high watermark {}",
                log.high_watermark
            ));
        }
        Ok(())
    }

    /// After an event: `logs[i]`'s batches below its high watermark join the committed ones
    /// (from `verified_upto[i]` on), and must agree with them and with every other replica.
    pub fn after_event(
        &mut self,
        logs: &[(i32, &ModelLog)],
        last_high_watermarks: &mut [i64],
        verified_upto: &mut [i64],
    ) -> Verdict {
        for (i, (broker, log)) in logs.iter().enumerate() {
            if log.high_watermark < last_high_watermarks[i] {
                return Err(format!(
                    "broker {broker}'s high watermark moved back from {} to {}",
                    last_high_watermarks[i], log.high_watermark
                ));
            }
            last_high_watermarks[i] = log.high_watermark;
            let from = verified_upto[i].max(log.start);
            let newly: Vec<Batch> = log
                .batches
                .iter()
                .filter(|b| b.last >= from && b.last < log.high_watermark)
                .copied()
                .collect();
            for batch in newly {
                self.commit(batch)?;
            }
            verified_upto[i] = verified_upto[i].max(log.high_watermark);
        }
        Ok(())
    }

    fn commit(&mut self, batch: Batch) -> Verdict {
        if let Some(known) = self.overlapping_committed(&batch)
            && known != batch
        {
            return Err(format!("committed {known:?} and {batch:?} at one offset"));
        }
        self.committed.insert(batch.base, batch);
        Ok(())
    }

    /// A committed batch sharing an offset with `batch` (committed batches never overlap
    /// one another, so the nearest at or below its last offset is the only candidate).
    fn overlapping_committed(&self, batch: &Batch) -> Option<Batch> {
        self.committed
            .range(..=batch.last)
            .next_back()
            .map(|(_, c)| *c)
            .filter(|c| c.last >= batch.base)
    }

    /// An `acks=all` acknowledgement: the batch must be durable on enough replicas.
    pub fn acknowledge(&mut self, batch: Batch, logs: &[(i32, &ModelLog)]) -> Verdict {
        self.acked.push(batch);
        self.acked_are_durable_on(&[batch], logs)
    }

    pub fn acked_are_durable(&self, logs: &[(i32, &ModelLog)]) -> Verdict {
        self.acked_are_durable_on(&self.acked, logs)
    }

    fn acked_are_durable_on(&self, batches: &[Batch], logs: &[(i32, &ModelLog)]) -> Verdict {
        for batch in batches {
            // A log that starts past the batch dropped it by retention (DeleteRecords).
            let holders = logs
                .iter()
                .filter(|(_, l)| l.holds_durably(batch) || l.start > batch.last)
                .count();
            if holders < self.min_insync {
                return Err(format!(
                    "acknowledged {batch:?} is durable on {holders} replicas, fewer than {}",
                    self.min_insync
                ));
            }
        }
        Ok(())
    }

    /// The end of a run: every replica holds what the leader holds, from the latest log start.
    pub fn converged(&self, leader: &ModelLog, logs: &[(i32, &ModelLog)]) -> Verdict {
        let start = logs.iter().map(|(_, l)| l.start).max().unwrap_or(0);
        let from = |log: &ModelLog| -> Vec<Batch> {
            log.batches
                .iter()
                .filter(|b| b.base >= start)
                .copied()
                .collect()
        };
        let expected = from(leader);
        if leader.high_watermark != leader.end() {
            return Err(format!(
                "the leader's high watermark {} is short of its log end {}",
                leader.high_watermark,
                leader.end()
            ));
        }
        for (broker, log) in logs {
            if from(log) != expected {
                return Err(format!(
                    "broker {broker} ends with {} batches from {start}, the leader with {}",
                    from(log).len(),
                    expected.len()
                ));
            }
        }
        for batch in self.acked.iter().filter(|b| b.base >= start) {
            if !expected.contains(batch) {
                return Err(format!("acknowledged {batch:?} is lost"));
            }
        }
        Ok(())
    }
}
