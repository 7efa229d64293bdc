//! One share-partition: the records of a partition that a share group has in flight, between
//! its start offset (below it every record is done) and its end offset (the next offset never
//! handed out), each AVAILABLE, ACQUIRED by a member until a deadline, ACKNOWLEDGED or ARCHIVED
//! (docs/design/0005-share-groups.md, after Kafka's `SharePartition`).
//!
//! The broker hands it the log's records from `next_fetch_offset` on, in order and none left
//! out (`acquire`), so a record with a key not known yet (after `restore`) is always offered
//! before any record above it. Time is an argument; nothing here reads a clock or does I/O.
//!
//! Per-key order (`key_ordering`): a record is acquired only when it is the lowest record of
//! its key not done yet, and no record whose key is not known yet lies below it. Records
//! without a key are not ordered.
//!
//! Owns: the states, delivery counts, locks, back-off and the start offset. Not: reading the
//! log, membership, persisting the state (the state batches go to the share coordinator), or
//! writing dead letters (they are returned).

use sluice_types::limits::SHARE_FETCH_RECORDS_MAX;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// A member of the share group, as Kafka names it (a UUID's text).
pub type MemberId = String;

/// The most records a share-partition holds in flight, whatever its settings or its restored
/// batches say: a damaged state record cannot make `restore` expand billions of offsets, and
/// `in_flight_max` is kept below it.
pub const IN_FLIGHT_RECORDS_MAX: usize = 100_000;

/// A share group's settings for its partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShareConfig {
    /// `share.record.lock.duration.ms`: how long an acquired record stays a member's.
    pub record_lock_duration_ms: i64,
    /// `share.delivery.count.limit`: deliveries after which a record is archived, not released.
    pub delivery_count_limit: u16,
    /// `group.share.partition.max.record.locks`: records in flight at most.
    pub in_flight_max: usize,
    /// `share.key.ordering` (Sluice's): one record of a key at a time, in offset order.
    pub key_ordering: bool,
    /// `share.retry.backoff.ms` (Sluice's): a released record waits this, doubled for each
    /// delivery after the first; 0: none.
    pub retry_backoff_ms: i64,
    /// `share.retry.backoff.max.ms` (Sluice's): the longest wait.
    pub retry_backoff_max_ms: i64,
}

impl Default for ShareConfig {
    /// Kafka's defaults, and Sluice's additions off.
    fn default() -> ShareConfig {
        ShareConfig {
            record_lock_duration_ms: 30_000,
            delivery_count_limit: 5,
            in_flight_max: 2_000,
            key_ordering: false,
            retry_backoff_ms: 0,
            retry_backoff_max_ms: 0,
        }
    }
}

impl ShareConfig {
    /// How long a record released after its `delivery_count`-th delivery waits.
    pub fn backoff_ms(&self, delivery_count: u16) -> i64 {
        if self.retry_backoff_ms <= 0 || delivery_count == 0 {
            return 0;
        }
        let doublings = u32::from(delivery_count - 1).min(32);
        self.retry_backoff_ms
            .saturating_mul(1i64 << doublings)
            .min(self.retry_backoff_max_ms.max(self.retry_backoff_ms))
    }
}

/// A record's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordState {
    /// May be acquired from `not_before_ms` on (a released record's back-off).
    Available {
        not_before_ms: i64,
    },
    Acquired {
        member: MemberId,
        deadline_ms: i64,
    },
    Acknowledged,
    Archived,
}

impl RecordState {
    /// Acknowledged or archived: the record will not be delivered again.
    pub fn is_done(&self) -> bool {
        matches!(self, RecordState::Acknowledged | RecordState::Archived)
    }

    /// Kafka's id of the state in state batches: AVAILABLE 0, ACQUIRED 1, ACKNOWLEDGED 2,
    /// ARCHIVED 4.
    pub fn id(&self) -> u8 {
        match self {
            RecordState::Available { .. } => 0,
            RecordState::Acquired { .. } => 1,
            RecordState::Acknowledged => 2,
            RecordState::Archived => 4,
        }
    }
}

/// The key of a record as per-key order compares it: a hash of its bytes, `None` without a
/// key. Records whose keys hash alike are ordered together (never out of order, sometimes
/// waiting on each other).
pub type KeyHash = Option<u64>;

/// A record of the log offered for acquisition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offered {
    pub offset: i64,
    pub key: KeyHash,
    /// The last offset of the batch the record was written in (`acquire` completes the batch
    /// of the last record it takes).
    pub batch_last_offset: i64,
}

/// A record handed to a member, with how many times it has now been delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    pub offset: i64,
    pub delivery_count: u16,
}

/// Kafka's acknowledgement types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckType {
    /// No record at these offsets (compacted away, a transaction marker).
    Gap,
    Accept,
    /// Deliver again (after the back-off).
    Release,
    /// Do not deliver again.
    Reject,
}

impl AckType {
    /// The type of Kafka's code: 0 gap, 1 accept, 2 release, 3 reject.
    pub fn from_code(code: i8) -> Option<AckType> {
        match code {
            0 => Some(AckType::Gap),
            1 => Some(AckType::Accept),
            2 => Some(AckType::Release),
            3 => Some(AckType::Reject),
            _ => None,
        }
    }
}

/// One acknowledgement: offsets `first_offset..=last_offset`, all of one type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acknowledgement {
    pub first_offset: i64,
    pub last_offset: i64,
    pub kind: AckType,
}

/// Why a record was archived for the dead-letter topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveReason {
    /// A member rejected it.
    Rejected,
    /// It was released (or its lock expired) after its last allowed delivery.
    DeliveryLimit,
}

/// A record archived undelivered: what the dead-letter topic is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeadLetter {
    pub offset: i64,
    pub delivery_count: u16,
    pub reason: ArchiveReason,
}

/// A run of records in one state with one delivery count, as the share coordinator keeps
/// them (`WriteShareGroupState`'s state batches).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateBatch {
    pub first_offset: i64,
    pub last_offset: i64,
    /// `RecordState::id`; an acquired record is written AVAILABLE (a restart releases it).
    pub state: u8,
    pub delivery_count: u16,
}

/// An acknowledgement refused as a whole: nothing of it was applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShareError {
    /// Kafka's INVALID_RECORD_STATE: the member does not hold the record (its lock expired,
    /// another member has it, or it is done).
    #[error("offset {offset} is not acquired by this member")]
    InvalidRecordState { offset: i64 },
    /// Kafka's INVALID_REQUEST: ranges that run backwards or overlap.
    #[error("acknowledgement ranges run backwards or overlap")]
    InvalidRanges,
    /// State batches that cannot be a share-partition's: out of order, overlapping, below
    /// the start offset, or more than `IN_FLIGHT_RECORDS_MAX` records.
    #[error("the share-partition's state batches are damaged: {0}")]
    DamagedState(String),
}

#[derive(Debug, Clone)]
struct InFlight {
    state: RecordState,
    delivery_count: u16,
    /// `None` until the record is offered again after `restore`.
    key: Option<KeyHash>,
}

/// A share-partition's in-flight records (the module doc).
#[derive(Debug, Clone)]
pub struct SharePartition {
    config: ShareConfig,
    start_offset: i64,
    end_offset: i64,
    in_flight: BTreeMap<i64, InFlight>,
    /// Per key (with `key_ordering`): the offsets of its records in flight and not done.
    pending_by_key: HashMap<u64, BTreeSet<i64>>,
    /// Records in flight whose key is not known yet (after `restore`).
    unknown_keys: BTreeSet<i64>,
}

impl SharePartition {
    /// A share-partition that starts reading at `start_offset` (`share.auto.offset.reset`).
    pub fn new(config: ShareConfig, start_offset: i64) -> SharePartition {
        assert!(
            config.in_flight_max <= IN_FLIGHT_RECORDS_MAX,
            "in_flight_max is checked against IN_FLIGHT_RECORDS_MAX where settings are read"
        );
        SharePartition {
            config,
            start_offset,
            end_offset: start_offset,
            in_flight: BTreeMap::new(),
            pending_by_key: HashMap::new(),
            unknown_keys: BTreeSet::new(),
        }
    }

    /// The share-partition as the coordinator kept it (`state_batches`): records that were
    /// acquired are available again, with their delivery counts, and those at their delivery
    /// limit are archived (returned as dead letters: they may not be delivered again).
    pub fn restore(
        config: ShareConfig,
        start_offset: i64,
        batches: &[StateBatch],
    ) -> Result<(SharePartition, Vec<DeadLetter>), ShareError> {
        check_batches(start_offset, batches)?;
        let mut partition = SharePartition::new(config, start_offset);
        let mut dead = Vec::new();
        for batch in batches {
            for offset in batch.first_offset.max(start_offset)..=batch.last_offset {
                let state = match batch.state {
                    2 => RecordState::Acknowledged,
                    4 => RecordState::Archived,
                    _ if batch.delivery_count >= config.delivery_count_limit => {
                        dead.push(DeadLetter {
                            offset,
                            delivery_count: batch.delivery_count,
                            reason: ArchiveReason::DeliveryLimit,
                        });
                        RecordState::Archived
                    }
                    _ => RecordState::Available {
                        not_before_ms: i64::MIN,
                    },
                };
                if !state.is_done() {
                    partition.unknown_keys.insert(offset);
                }
                let record = InFlight {
                    state,
                    delivery_count: batch.delivery_count,
                    key: None,
                };
                partition.in_flight.insert(offset, record);
                partition.end_offset = partition.end_offset.max(offset + 1);
            }
        }
        partition.advance_start();
        Ok((partition, dead))
    }

    pub fn config(&self) -> &ShareConfig {
        &self.config
    }

    pub fn start_offset(&self) -> i64 {
        self.start_offset
    }

    pub fn end_offset(&self) -> i64 {
        self.end_offset
    }

    /// Records in flight (every state, between the start and end offsets).
    pub fn in_flight_len(&self) -> usize {
        self.in_flight.len()
    }

    /// The state and delivery count of the record at `offset`, while it is in flight.
    pub fn record(&self, offset: i64) -> Option<(&RecordState, u16)> {
        self.in_flight
            .get(&offset)
            .map(|r| (&r.state, r.delivery_count))
    }

    /// The settings change (the group's configs were altered). Records in flight keep their
    /// states, counts and locks; with per-key order turned on, records whose keys are known
    /// are ordered from now on.
    pub fn reconfigure(&mut self, config: ShareConfig) {
        assert!(config.in_flight_max <= IN_FLIGHT_RECORDS_MAX);
        self.config = config;
        self.pending_by_key.clear();
        if config.key_ordering {
            for (offset, record) in &self.in_flight {
                if let (false, Some(Some(key))) = (record.state.is_done(), record.key) {
                    self.pending_by_key.entry(key).or_default().insert(*offset);
                }
            }
        }
        self.check();
    }

    /// The next time after `now_ms` at which something changes without a request: a lock
    /// expires or a released record's back-off ends.
    pub fn next_deadline_ms(&self, now_ms: i64) -> Option<i64> {
        self.in_flight
            .values()
            .filter_map(|r| match r.state {
                RecordState::Acquired { deadline_ms, .. } => Some(deadline_ms),
                RecordState::Available { not_before_ms } if not_before_ms > now_ms => {
                    Some(not_before_ms)
                }
                _ => None,
            })
            .min()
    }

    /// The most records in flight at once (`share.partition.max.record.locks`).
    pub fn in_flight_max(&self) -> usize {
        self.config.in_flight_max
    }

    /// Where the broker reads the log for the next `acquire`: the first record that may be
    /// delivered again now, else the end offset.
    pub fn next_fetch_offset(&self, now_ms: i64) -> i64 {
        self.in_flight
            .iter()
            .find(|(_, r)| matches!(r.state, RecordState::Available { not_before_ms } if not_before_ms <= now_ms))
            .map_or(self.end_offset, |(offset, _)| *offset)
    }

    /// Hands `member` `max_records` of `offered` (the log's records from `next_fetch_offset`
    /// on, in order): those in flight and available again, and new ones while fewer than
    /// `in_flight_max` are in flight. A new record whose key is held waits in flight,
    /// available. As Kafka does, the limit is kept at batch boundaries: once `max_records` are
    /// taken, what may be taken of the rest of the last one's batch is taken too (a fetch
    /// carries whole batches, so those records cost nothing more to send), up to
    /// `SHARE_FETCH_RECORDS_MAX` in all.
    pub fn acquire(
        &mut self,
        member: &str,
        now_ms: i64,
        offered: &[Offered],
        max_records: usize,
    ) -> Vec<Delivery> {
        debug_assert!(
            offered.windows(2).all(|w| w[0].offset < w[1].offset),
            "offered in offset order"
        );
        // Keys first, for all of them: a record learns its key before any above it is taken.
        for o in offered {
            self.learn_key(o);
        }
        let mut out = Vec::new();
        let most = max_records.max(SHARE_FETCH_RECORDS_MAX);
        let mut batch_end = i64::MIN;
        for o in offered {
            if out.len() >= most || (out.len() >= max_records && o.offset > batch_end) {
                break;
            }
            if o.offset < self.start_offset {
                continue;
            }
            if o.offset >= self.end_offset {
                if self.in_flight.len() >= self.config.in_flight_max {
                    break;
                }
                self.add(o);
            }
            if self.may_acquire(o.offset, now_ms) {
                out.push(self.acquire_one(o.offset, member, now_ms));
                batch_end = o.batch_last_offset;
            }
        }
        // Offsets skipped before the first new record are gaps: the start moves past them.
        self.advance_start();
        self.check();
        out
    }

    /// Applies `acks` of `member`, all or nothing; returns the records archived undelivered.
    pub fn acknowledge(
        &mut self,
        member: &str,
        now_ms: i64,
        acks: &[Acknowledgement],
    ) -> Result<Vec<DeadLetter>, ShareError> {
        self.check_acks(member, acks)?;
        let mut dead = Vec::new();
        for ack in acks {
            let offsets: Vec<i64> = self
                .in_flight
                .range(ack.first_offset..=ack.last_offset)
                .map(|(offset, _)| *offset)
                .collect();
            for offset in offsets {
                let finished = match ack.kind {
                    AckType::Accept => self.finish(offset, RecordState::Acknowledged),
                    AckType::Gap => self.finish(offset, RecordState::Archived),
                    AckType::Reject => {
                        dead.push(self.dead_letter(offset, ArchiveReason::Rejected));
                        self.finish(offset, RecordState::Archived)
                    }
                    AckType::Release => {
                        dead.extend(self.release(offset, now_ms));
                        continue;
                    }
                };
                debug_assert!(finished, "checked as acquired");
            }
        }
        self.advance_start();
        self.check();
        Ok(dead)
    }

    /// Releases the records whose lock expired by `now_ms`; returns those archived at their
    /// delivery limit.
    pub fn expire_locks(&mut self, now_ms: i64) -> Vec<DeadLetter> {
        let expired: Vec<i64> = self
            .in_flight
            .iter()
            .filter(|(_, r)| matches!(r.state, RecordState::Acquired { deadline_ms, .. } if deadline_ms <= now_ms))
            .map(|(offset, _)| *offset)
            .collect();
        self.release_all(expired, now_ms)
    }

    /// Releases what `member` holds (it left the group, or its share session closed).
    pub fn release_member(&mut self, member: &str, now_ms: i64) -> Vec<DeadLetter> {
        let held: Vec<i64> = self
            .in_flight
            .iter()
            .filter(
                |(_, r)| matches!(&r.state, RecordState::Acquired { member: m, .. } if m == member),
            )
            .map(|(offset, _)| *offset)
            .collect();
        self.release_all(held, now_ms)
    }

    /// The log no longer holds records below `log_start_offset` (retention, DeleteRecords):
    /// they leave the share-partition whatever their state.
    pub fn log_start_moved(&mut self, log_start_offset: i64) {
        if log_start_offset <= self.start_offset {
            return;
        }
        let kept = self.in_flight.split_off(&log_start_offset);
        for (offset, record) in std::mem::replace(&mut self.in_flight, kept) {
            self.forget_key(offset, record.key);
        }
        self.start_offset = log_start_offset;
        self.end_offset = self.end_offset.max(log_start_offset);
        self.advance_start();
        self.check();
    }

    /// What the share coordinator keeps: runs of records in flight with one state and one
    /// delivery count (an acquired record written available).
    pub fn state_batches(&self) -> Vec<StateBatch> {
        let mut batches: Vec<StateBatch> = Vec::new();
        for (offset, record) in &self.in_flight {
            let state = match record.state {
                RecordState::Acquired { .. } => 0,
                ref other => other.id(),
            };
            match batches.last_mut() {
                Some(last)
                    if last.last_offset + 1 == *offset
                        && last.state == state
                        && last.delivery_count == record.delivery_count =>
                {
                    last.last_offset = *offset;
                }
                _ => batches.push(StateBatch {
                    first_offset: *offset,
                    last_offset: *offset,
                    state,
                    delivery_count: record.delivery_count,
                }),
            }
        }
        batches
    }

    fn learn_key(&mut self, offered: &Offered) {
        if !self.unknown_keys.remove(&offered.offset) {
            return;
        }
        if let Some(record) = self.in_flight.get_mut(&offered.offset) {
            record.key = Some(offered.key);
            if let (true, Some(key)) = (self.config.key_ordering, offered.key) {
                self.pending_by_key
                    .entry(key)
                    .or_default()
                    .insert(offered.offset);
            }
        }
    }

    /// A new record from the log, available; offsets skipped before it are gaps.
    fn add(&mut self, offered: &Offered) {
        let record = InFlight {
            state: RecordState::Available {
                not_before_ms: i64::MIN,
            },
            delivery_count: 0,
            key: Some(offered.key),
        };
        self.in_flight.insert(offered.offset, record);
        if let (true, Some(key)) = (self.config.key_ordering, offered.key) {
            self.pending_by_key
                .entry(key)
                .or_default()
                .insert(offered.offset);
        }
        self.end_offset = offered.offset + 1;
    }

    fn may_acquire(&self, offset: i64, now_ms: i64) -> bool {
        let Some(record) = self.in_flight.get(&offset) else {
            return false; // a gap, or done and behind the start
        };
        let ready = matches!(record.state, RecordState::Available { not_before_ms } if not_before_ms <= now_ms);
        if !ready || !self.config.key_ordering {
            return ready;
        }
        if self.unknown_keys.range(..offset).next().is_some() {
            return false;
        }
        match record.key {
            Some(Some(key)) => {
                self.pending_by_key
                    .get(&key)
                    .and_then(|pending| pending.first())
                    == Some(&offset)
            }
            Some(None) => true,
            None => false,
        }
    }

    fn acquire_one(&mut self, offset: i64, member: &str, now_ms: i64) -> Delivery {
        let lock_ms = self.config.record_lock_duration_ms;
        let record = self.in_flight.get_mut(&offset).expect("checked in flight");
        record.delivery_count = record.delivery_count.saturating_add(1);
        record.state = RecordState::Acquired {
            member: member.to_string(),
            deadline_ms: now_ms.saturating_add(lock_ms),
        };
        Delivery {
            offset,
            delivery_count: record.delivery_count,
        }
    }

    /// Every offset acknowledged must be acquired by `member`; ranges in order, apart.
    fn check_acks(&self, member: &str, acks: &[Acknowledgement]) -> Result<(), ShareError> {
        let mut after = i64::MIN;
        for ack in acks {
            if ack.first_offset > ack.last_offset || ack.first_offset <= after {
                return Err(ShareError::InvalidRanges);
            }
            after = ack.last_offset;
            if ack.last_offset >= self.end_offset || ack.first_offset < self.start_offset {
                let offset = if ack.first_offset < self.start_offset {
                    ack.first_offset
                } else {
                    ack.last_offset
                };
                return Err(ShareError::InvalidRecordState { offset });
            }
            for (offset, record) in self.in_flight.range(ack.first_offset..=ack.last_offset) {
                let held =
                    matches!(&record.state, RecordState::Acquired { member: m, .. } if m == member);
                if !held {
                    return Err(ShareError::InvalidRecordState { offset: *offset });
                }
            }
        }
        Ok(())
    }

    fn release_all(&mut self, offsets: Vec<i64>, now_ms: i64) -> Vec<DeadLetter> {
        let dead = offsets
            .into_iter()
            .filter_map(|offset| self.release(offset, now_ms))
            .collect();
        self.advance_start();
        self.check();
        dead
    }

    /// An acquired record back to available after its back-off, or archived at its delivery
    /// limit (returned as a dead letter).
    fn release(&mut self, offset: i64, now_ms: i64) -> Option<DeadLetter> {
        let record = self.in_flight.get_mut(&offset).expect("released in flight");
        debug_assert!(matches!(record.state, RecordState::Acquired { .. }));
        if record.delivery_count >= self.config.delivery_count_limit {
            let dead = self.dead_letter(offset, ArchiveReason::DeliveryLimit);
            self.finish(offset, RecordState::Archived);
            return Some(dead);
        }
        let wait = self.config.backoff_ms(record.delivery_count);
        record.state = RecordState::Available {
            not_before_ms: now_ms.saturating_add(wait),
        };
        None
    }

    fn dead_letter(&self, offset: i64, reason: ArchiveReason) -> DeadLetter {
        DeadLetter {
            offset,
            delivery_count: self.in_flight[&offset].delivery_count,
            reason,
        }
    }

    /// Ends an acquired record in `state` (acknowledged or archived).
    fn finish(&mut self, offset: i64, state: RecordState) -> bool {
        debug_assert!(state.is_done());
        let Some(record) = self.in_flight.get_mut(&offset) else {
            return false;
        };
        record.state = state;
        let key = record.key;
        self.forget_key(offset, key);
        true
    }

    fn forget_key(&mut self, offset: i64, key: Option<KeyHash>) {
        self.unknown_keys.remove(&offset);
        if let Some(Some(key)) = key
            && let Some(pending) = self.pending_by_key.get_mut(&key)
        {
            pending.remove(&offset);
            if pending.is_empty() {
                self.pending_by_key.remove(&key);
            }
        }
    }

    /// Moves the start past every done record and gap from it on.
    fn advance_start(&mut self) {
        while let Some(entry) = self.in_flight.first_entry() {
            if !entry.get().state.is_done() {
                // Gaps below the first record not done are done too.
                self.start_offset = self.start_offset.max(*entry.key());
                return;
            }
            entry.remove();
        }
        self.start_offset = self.end_offset;
    }

    /// The invariants, in debug builds.
    fn check(&self) {
        debug_assert!(self.start_offset <= self.end_offset);
        if let Some((first, record)) = self.in_flight.first_key_value() {
            debug_assert!(
                *first >= self.start_offset,
                "nothing in flight below the start"
            );
            debug_assert!(!record.state.is_done(), "the start moved past done records");
        }
        if let Some((last, _)) = self.in_flight.last_key_value() {
            debug_assert!(*last < self.end_offset, "nothing in flight past the end");
        }
    }
}

/// Batches a share-partition can have written: each run forward, in order and apart, with
/// `IN_FLIGHT_RECORDS_MAX` records at most from the start offset on (what lies below it is
/// done, and left out).
fn check_batches(start_offset: i64, batches: &[StateBatch]) -> Result<(), ShareError> {
    let damaged = |why: String| Err(ShareError::DamagedState(why));
    let mut after = i64::MIN;
    let mut records: u64 = 0;
    for batch in batches {
        if batch.first_offset > batch.last_offset || batch.first_offset <= after {
            return damaged(format!(
                "batch {}..={} after offset {after}",
                batch.first_offset, batch.last_offset
            ));
        }
        after = batch.last_offset;
        if batch.last_offset < start_offset {
            continue;
        }
        let first = batch.first_offset.max(start_offset);
        records = records.saturating_add(batch.last_offset.abs_diff(first) + 1);
        if records > IN_FLIGHT_RECORDS_MAX as u64 {
            return damaged(format!(
                "more than {IN_FLIGHT_RECORDS_MAX} records in flight"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offered(offsets: std::ops::Range<i64>, key: impl Fn(i64) -> KeyHash) -> Vec<Offered> {
        offsets
            .map(|offset| Offered {
                offset,
                key: key(offset),
                batch_last_offset: offset,
            })
            .collect()
    }

    #[test]
    fn the_limit_is_kept_at_batch_boundaries() {
        let mut p = SharePartition::new(ShareConfig::default(), 0);
        // Batches 0-4, 5-9, 10-14.
        let batched: Vec<Offered> = (0..15)
            .map(|offset| Offered {
                offset,
                key: None,
                batch_last_offset: offset / 5 * 5 + 4,
            })
            .collect();
        let got = p.acquire("a", 0, &batched, 7);
        assert_eq!(got.len(), 10, "7 asked, the second batch completed");
        let got = p.acquire("b", 0, &batched, 1);
        assert_eq!(
            got.iter().map(|d| d.offset).collect::<Vec<_>>(),
            [10, 11, 12, 13, 14]
        );
    }

    fn ack(first: i64, last: i64, kind: AckType) -> Acknowledgement {
        Acknowledgement {
            first_offset: first,
            last_offset: last,
            kind,
        }
    }

    #[test]
    fn records_go_round_members_and_the_start_moves_past_what_is_done() {
        let mut p = SharePartition::new(ShareConfig::default(), 10);
        let got = p.acquire("a", 0, &offered(10..15, |_| None), 3);
        assert_eq!(
            got.iter().map(|d| d.offset).collect::<Vec<_>>(),
            [10, 11, 12]
        );
        let got = p.acquire("b", 0, &offered(13..15, |_| None), 10);
        assert_eq!(got.iter().map(|d| d.offset).collect::<Vec<_>>(), [13, 14]);
        // b may not acknowledge a's records: nothing of the request applies.
        assert_eq!(
            p.acknowledge(
                "b",
                1,
                &[ack(10, 10, AckType::Accept), ack(13, 14, AckType::Accept)]
            ),
            Err(ShareError::InvalidRecordState { offset: 10 })
        );
        assert_eq!(
            p.acknowledge(
                "b",
                1,
                &[ack(13, 14, AckType::Accept), ack(10, 10, AckType::Accept)]
            ),
            Err(ShareError::InvalidRanges)
        );
        assert_eq!(
            p.record(13).unwrap().0,
            &RecordState::Acquired {
                member: "b".into(),
                deadline_ms: 30_000
            }
        );
        p.acknowledge("b", 1, &[ack(13, 14, AckType::Accept)])
            .unwrap();
        assert_eq!(p.start_offset(), 10);
        p.acknowledge(
            "a",
            1,
            &[ack(10, 11, AckType::Accept), ack(12, 12, AckType::Reject)],
        )
        .unwrap();
        assert_eq!((p.start_offset(), p.in_flight_len()), (15, 0));
    }

    #[test]
    fn a_lock_that_expires_releases_and_the_limit_archives() {
        let config = ShareConfig {
            delivery_count_limit: 2,
            record_lock_duration_ms: 100,
            ..ShareConfig::default()
        };
        let mut p = SharePartition::new(config, 0);
        assert_eq!(
            p.acquire("a", 0, &offered(0..1, |_| None), 5)[0].delivery_count,
            1
        );
        assert!(p.expire_locks(99).is_empty());
        assert!(p.expire_locks(100).is_empty());
        assert_eq!(p.next_fetch_offset(100), 0);
        assert_eq!(
            p.acquire("b", 100, &offered(0..1, |_| None), 5)[0].delivery_count,
            2
        );
        assert_eq!(
            p.release_member("b", 150),
            vec![DeadLetter {
                offset: 0,
                delivery_count: 2,
                reason: ArchiveReason::DeliveryLimit
            }]
        );
        assert_eq!(p.start_offset(), 1);
    }

    #[test]
    fn a_key_waits_for_its_earlier_record_and_a_release_waits_its_backoff() {
        let config = ShareConfig {
            key_ordering: true,
            retry_backoff_ms: 1_000,
            retry_backoff_max_ms: 3_000,
            ..ShareConfig::default()
        };
        let mut p = SharePartition::new(config, 0);
        let keys = |o: i64| Some((o % 2) as u64);
        // 0 and 1 go; 2 and 3 wait behind them, in flight.
        let got = p.acquire("a", 0, &offered(0..4, keys), 10);
        assert_eq!(got.iter().map(|d| d.offset).collect::<Vec<_>>(), [0, 1]);
        assert_eq!(p.in_flight_len(), 4);
        p.acknowledge(
            "a",
            10,
            &[ack(0, 0, AckType::Release), ack(1, 1, AckType::Accept)],
        )
        .unwrap();
        // 3 is free now; 0 waits its back-off, and 2 waits for 0.
        assert_eq!(
            p.acquire("b", 10, &offered(0..4, keys), 10)
                .iter()
                .map(|d| d.offset)
                .collect::<Vec<_>>(),
            [3]
        );
        assert!(p.acquire("b", 1_009, &offered(0..4, keys), 10).is_empty());
        assert_eq!(
            p.acquire("b", 1_010, &offered(0..4, keys), 10)[0],
            Delivery {
                offset: 0,
                delivery_count: 2
            }
        );
        assert_eq!(config.backoff_ms(1), 1_000);
        assert_eq!(config.backoff_ms(2), 2_000);
        assert_eq!(config.backoff_ms(3), 3_000);
        assert_eq!(config.backoff_ms(60), 3_000);
    }

    #[test]
    fn after_a_restore_a_record_waits_for_the_keys_below_it_to_be_known() {
        let config = ShareConfig {
            key_ordering: true,
            ..ShareConfig::default()
        };
        let mut p = SharePartition::new(config, 0);
        p.acquire("a", 0, &offered(0..3, |_| Some(7)), 1);
        let (mut q, _) = SharePartition::restore(config, 0, &p.state_batches()).unwrap();
        // Offered without 0 (against the contract): 1 and 2 may be of 0's key, so they wait.
        assert!(q.acquire("b", 1, &offered(1..3, |_| Some(7)), 5).is_empty());
        let got = q.acquire("b", 1, &offered(0..3, |_| Some(7)), 5);
        assert_eq!(got.iter().map(|d| d.offset).collect::<Vec<_>>(), [0]);
    }

    #[test]
    fn state_batches_restore_with_acquisitions_released() {
        let mut p = SharePartition::new(ShareConfig::default(), 0);
        p.acquire("a", 0, &offered(0..6, |_| None), 6);
        p.acknowledge(
            "a",
            1,
            &[ack(1, 2, AckType::Accept), ack(4, 4, AckType::Reject)],
        )
        .unwrap();
        let batches = p.state_batches();
        assert_eq!(
            batches,
            vec![
                StateBatch {
                    first_offset: 0,
                    last_offset: 0,
                    state: 0,
                    delivery_count: 1
                },
                StateBatch {
                    first_offset: 1,
                    last_offset: 2,
                    state: 2,
                    delivery_count: 1
                },
                StateBatch {
                    first_offset: 3,
                    last_offset: 3,
                    state: 0,
                    delivery_count: 1
                },
                StateBatch {
                    first_offset: 4,
                    last_offset: 4,
                    state: 4,
                    delivery_count: 1
                },
                StateBatch {
                    first_offset: 5,
                    last_offset: 5,
                    state: 0,
                    delivery_count: 1
                },
            ]
        );
        let (mut q, dead) =
            SharePartition::restore(ShareConfig::default(), p.start_offset(), &batches).unwrap();
        assert!(dead.is_empty());
        // Batches no share-partition writes are refused, not expanded.
        let batch = |first_offset, last_offset| StateBatch {
            first_offset,
            last_offset,
            state: 0,
            delivery_count: 1,
        };
        let damaged = [
            vec![batch(0, i64::MAX - 1)],
            vec![batch(5, 4)],
            vec![batch(3, 4), batch(1, 2)],
        ];
        for bad in damaged {
            assert!(matches!(
                SharePartition::restore(ShareConfig::default(), 0, &bad),
                Err(ShareError::DamagedState(_))
            ));
        }
        assert_eq!((q.start_offset(), q.end_offset()), (0, 6));
        let again = q.acquire("b", 2, &offered(0..6, |_| None), 10);
        assert_eq!(
            again,
            [0, 3, 5].map(|offset| Delivery {
                offset,
                delivery_count: 2
            })
        );
    }
}
