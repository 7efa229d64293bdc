//! The share-partition under a seeded simulation: members fetch, acknowledge at random (accept,
//! release, reject, and acknowledgements of records they do not hold), die, time jumps and
//! locks expire, and the share-partition is restarted from its state batches; then a last
//! member drains it. A model the test keeps itself (not the code under test) says at every
//! step what may happen:
//!
//! - a record is held by one member at most, and delivered only while not done;
//! - its delivery count rises by one each time, never past the limit;
//! - a released record is not delivered again before its back-off;
//! - with per-key order, a record is delivered only once every record of its key below it is
//!   done;
//! - a record archived undelivered is a dead letter once, with its reason; nothing is
//!   acknowledged twice; an acknowledgement of a record not held changes nothing;
//! - the start offset is the first record not done; every record ends done.
//!
//! Seeds: `SLUICE_SIM_SEEDS=N` runs seeds 0..N (default 64); `SLUICE_SIM_SEED=S` runs seed S
//! alone, with `SLUICE_SIM_TRACE=1` printing every step. A failure names its seed.

use sluice_share::{
    AckType, Acknowledgement, ArchiveReason, DeadLetter, KeyHash, Offered, RecordState,
    ShareConfig, ShareError, SharePartition,
};
use sluice_types::sim::SimRng;
use std::collections::BTreeMap;

const RECORDS: usize = 300;
const MEMBERS: usize = 4;
const STEPS: usize = 3_000;
const DRAIN_ROUNDS: usize = 20_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Done {
    Acknowledged,
    Archived(ArchiveReason),
}

/// What the test knows of one record.
#[derive(Debug, Clone, Copy)]
struct Model {
    key: KeyHash,
    deliveries: u16,
    /// The member holding it and its lock's deadline.
    holder: Option<(usize, i64)>,
    not_before: i64,
    done: Option<Done>,
}

struct Sim {
    rng: SimRng,
    config: ShareConfig,
    /// The log's records in offset order (offsets with gaps between some).
    offsets: Vec<i64>,
    model: BTreeMap<i64, Model>,
    partition: SharePartition,
    /// Each member's name now (a member that dies comes back under another).
    names: Vec<String>,
    incarnations: usize,
    now: i64,
    trace: bool,
}

impl Sim {
    fn new(seed: u64, trace: bool) -> Sim {
        let mut rng = SimRng::new(seed);
        let backoff = rng.percent(50);
        let config = ShareConfig {
            record_lock_duration_ms: rng.between(100, 2_000),
            delivery_count_limit: rng.between(1, 5) as u16,
            in_flight_max: rng.between(5, 60) as usize,
            key_ordering: rng.percent(50),
            retry_backoff_ms: if backoff { rng.between(10, 300) } else { 0 },
            retry_backoff_max_ms: if backoff { rng.between(100, 2_000) } else { 0 },
        };
        let mut offsets = Vec::with_capacity(RECORDS);
        let mut model = BTreeMap::new();
        let mut offset = rng.between(0, 1_000);
        for _ in 0..RECORDS {
            if rng.percent(10) {
                offset += rng.between(1, 5); // a gap: compacted away, or a marker
            }
            let key = if rng.percent(70) {
                Some(rng.below(12))
            } else {
                None
            };
            offsets.push(offset);
            let record = Model {
                key,
                deliveries: 0,
                holder: None,
                not_before: i64::MIN,
                done: None,
            };
            model.insert(offset, record);
            offset += 1;
        }
        let partition = SharePartition::new(config, offsets[0]);
        Sim {
            rng,
            config,
            offsets,
            model,
            partition,
            names: (0..MEMBERS).map(|m| format!("member-{m}")).collect(),
            incarnations: MEMBERS,
            now: 0,
            trace,
        }
    }

    fn run(mut self) -> Result<(), String> {
        if self.trace {
            eprintln!("config {:?}", self.config);
        }
        for step in 0..STEPS {
            let member = self.rng.below(MEMBERS as u64) as usize;
            match self.rng.below(100) {
                0..=34 => self.fetch(member)?,
                35..=64 => self.acknowledge(member)?,
                65..=69 => self.bad_acknowledgement(member)?,
                70..=84 => self.tick()?,
                85..=89 => self.die(member)?,
                90..=91 => self.restart()?,
                _ => self.now += self.rng.between(0, self.config.record_lock_duration_ms),
            }
            self.check().map_err(|e| format!("step {step}: {e}"))?;
        }
        self.drain()
    }

    fn log_end(&self) -> i64 {
        self.offsets.last().copied().unwrap_or(0) + 1
    }

    /// The log's records from the share-partition's next fetch offset on, as a broker reads
    /// them: contiguous, none left out.
    fn offered(&mut self) -> Vec<Offered> {
        let from = self.partition.next_fetch_offset(self.now);
        let first = self.offsets.partition_point(|o| *o < from);
        let count = self.rng.between(1, 30) as usize;
        self.offsets[first..(first + count).min(self.offsets.len())]
            .iter()
            .map(|offset| Offered {
                offset: *offset,
                key: self.model[offset].key,
                batch_last_offset: *offset,
            })
            .collect()
    }

    fn fetch(&mut self, member: usize) -> Result<(), String> {
        let offered = self.offered();
        let max = self.rng.between(1, 10) as usize;
        let name = self.names[member].clone();
        let got = self.partition.acquire(&name, self.now, &offered, max);
        if got.len() > max {
            return Err(format!("{} records for at most {max}", got.len()));
        }
        for delivery in got {
            let offset = delivery.offset;
            let record = self.model[&offset];
            if record.done.is_some() || record.holder.is_some() {
                return Err(format!("{offset} delivered while {record:?}"));
            }
            if delivery.delivery_count != record.deliveries + 1
                || delivery.delivery_count > self.config.delivery_count_limit
            {
                return Err(format!(
                    "{offset} delivered as {delivery:?} after {record:?}"
                ));
            }
            if self.now < record.not_before {
                return Err(format!(
                    "{offset} delivered at {} before its back-off {record:?}",
                    self.now
                ));
            }
            if let (true, Some(key)) = (self.config.key_ordering, record.key) {
                let earlier = self
                    .model
                    .range(..offset)
                    .find(|(_, r)| r.key == Some(key) && r.done.is_none());
                if let Some((earlier, _)) = earlier {
                    return Err(format!("{offset} of key {key} delivered before {earlier}"));
                }
            }
            let deadline = self.now + self.config.record_lock_duration_ms;
            let record = self.model.get_mut(&offset).expect("in the log");
            record.deliveries += 1;
            record.holder = Some((member, deadline));
        }
        if self.trace {
            eprintln!(
                "{} {name} fetched from {:?}",
                self.now,
                offered.first().map(|o| o.offset)
            );
        }
        Ok(())
    }

    fn held_by(&self, member: usize) -> Vec<i64> {
        self.model
            .iter()
            .filter(|(_, r)| matches!(r.holder, Some((m, _)) if m == member))
            .map(|(offset, _)| *offset)
            .collect()
    }

    fn acknowledge(&mut self, member: usize) -> Result<(), String> {
        let held = self.held_by(member);
        let mut acks = Vec::new();
        let mut expected_dead = Vec::new();
        for offset in held {
            if self.rng.percent(40) {
                continue;
            }
            let kind = match self.rng.below(100) {
                0..=59 => AckType::Accept,
                60..=84 => AckType::Release,
                _ => AckType::Reject,
            };
            acks.push(Acknowledgement {
                first_offset: offset,
                last_offset: offset,
                kind,
            });
        }
        let name = self.names[member].clone();
        let mut dead = self
            .partition
            .acknowledge(&name, self.now, &acks)
            .map_err(|e| format!("{name}'s {acks:?} refused: {e}"))?;
        for ack in &acks {
            let offset = ack.first_offset;
            match ack.kind {
                AckType::Accept => self.finish(offset, Done::Acknowledged)?,
                AckType::Reject => {
                    expected_dead.push(self.dead(offset, ArchiveReason::Rejected));
                    self.finish(offset, Done::Archived(ArchiveReason::Rejected))?;
                }
                AckType::Release => expected_dead.extend(self.release(offset)?),
                AckType::Gap => unreachable!("the test sends no gaps"),
            }
        }
        dead.sort_by_key(|d| d.offset);
        expected_dead.sort_by_key(|d| d.offset);
        if dead != expected_dead {
            return Err(format!("dead letters {dead:?}, expected {expected_dead:?}"));
        }
        Ok(())
    }

    /// An acknowledgement of a record this member does not hold: refused, nothing changes.
    fn bad_acknowledgement(&mut self, member: usize) -> Result<(), String> {
        let end = self.partition.end_offset();
        let start = self.partition.start_offset();
        let not_held: Vec<i64> = self
            .model
            .range(start..end)
            .filter(|(_, r)| !matches!(r.holder, Some((m, _)) if m == member))
            .map(|(offset, _)| *offset)
            .collect();
        if not_held.is_empty() {
            return Ok(());
        }
        let offset = self.rng.pick(&not_held);
        let before = self.partition.state_batches();
        let ack = Acknowledgement {
            first_offset: offset,
            last_offset: offset,
            kind: AckType::Accept,
        };
        let name = self.names[member].clone();
        match self.partition.acknowledge(&name, self.now, &[ack]) {
            Err(ShareError::InvalidRecordState { .. })
                if self.partition.state_batches() == before =>
            {
                Ok(())
            }
            other => Err(format!(
                "{name} acknowledged {offset}, not its own: {other:?}"
            )),
        }
    }

    fn tick(&mut self) -> Result<(), String> {
        self.now += self.rng.between(0, self.config.record_lock_duration_ms / 2);
        let mut dead = self.partition.expire_locks(self.now);
        let now = self.now;
        let expired: Vec<i64> = self
            .model
            .iter()
            .filter(|(_, r)| matches!(r.holder, Some((_, deadline)) if deadline <= now))
            .map(|(offset, _)| *offset)
            .collect();
        let mut expected = Vec::new();
        for offset in expired {
            expected.extend(self.release(offset)?);
        }
        dead.sort_by_key(|d| d.offset);
        if dead != expected {
            return Err(format!(
                "expiry's dead letters {dead:?}, expected {expected:?}"
            ));
        }
        Ok(())
    }

    fn die(&mut self, member: usize) -> Result<(), String> {
        let name = self.names[member].clone();
        let mut dead = self.partition.release_member(&name, self.now);
        let mut expected = Vec::new();
        for offset in self.held_by(member) {
            expected.extend(self.release(offset)?);
        }
        dead.sort_by_key(|d| d.offset);
        if dead != expected {
            return Err(format!(
                "{name} left: dead letters {dead:?}, expected {expected:?}"
            ));
        }
        self.incarnations += 1;
        self.names[member] = format!("member-{}", self.incarnations);
        if self.trace {
            eprintln!("{} {name} left", self.now);
        }
        Ok(())
    }

    /// The broker restarts: the share-partition comes back from its state batches, and what
    /// was held is available again at once (at least once).
    fn restart(&mut self) -> Result<(), String> {
        let (start, end) = (self.partition.start_offset(), self.partition.end_offset());
        let batches = self.partition.state_batches();
        let (partition, dead) = SharePartition::restore(self.config, start, &batches)
            .map_err(|e| format!("its own batches refused: {e}"))?;
        self.partition = partition;
        // Held at its delivery limit: archived, not delivered again.
        let limit = self.config.delivery_count_limit;
        let at_limit: Vec<i64> = self
            .model
            .iter()
            .filter(|(_, r)| r.holder.is_some() && r.deliveries >= limit)
            .map(|(offset, _)| *offset)
            .collect();
        let mut expected = Vec::new();
        for offset in at_limit {
            expected.push(self.dead(offset, ArchiveReason::DeliveryLimit));
            self.finish(offset, Done::Archived(ArchiveReason::DeliveryLimit))?;
        }
        if dead != expected {
            return Err(format!(
                "restored with dead letters {dead:?}, expected {expected:?}"
            ));
        }
        let first_not_done = self
            .model
            .range(..end)
            .find(|(_, r)| r.done.is_none())
            .map_or(end, |(offset, _)| *offset);
        if (self.partition.start_offset(), self.partition.end_offset()) != (first_not_done, end) {
            return Err(format!(
                "restored at {}..{}, kept at {start}..{end}",
                self.partition.start_offset(),
                self.partition.end_offset()
            ));
        }
        for record in self.model.values_mut() {
            record.holder = None;
            record.not_before = i64::MIN;
        }
        for member in 0..MEMBERS {
            self.incarnations += 1;
            self.names[member] = format!("member-{}", self.incarnations);
        }
        if self.trace {
            eprintln!("{} restarted", self.now);
        }
        Ok(())
    }

    /// What the model expects of a held record released now.
    fn release(&mut self, offset: i64) -> Result<Option<DeadLetter>, String> {
        let record = self.model[&offset];
        if record.deliveries >= self.config.delivery_count_limit {
            let dead = self.dead(offset, ArchiveReason::DeliveryLimit);
            self.finish(offset, Done::Archived(ArchiveReason::DeliveryLimit))?;
            return Ok(Some(dead));
        }
        let wait = backoff(&self.config, record.deliveries);
        let record = self.model.get_mut(&offset).expect("in the log");
        record.holder = None;
        record.not_before = self.now + wait;
        Ok(None)
    }

    fn dead(&self, offset: i64, reason: ArchiveReason) -> DeadLetter {
        DeadLetter {
            offset,
            delivery_count: self.model[&offset].deliveries,
            reason,
        }
    }

    fn finish(&mut self, offset: i64, done: Done) -> Result<(), String> {
        let record = self.model.get_mut(&offset).expect("in the log");
        if record.done.is_some() {
            return Err(format!("{offset} done twice: {record:?}, then {done:?}"));
        }
        record.done = Some(done);
        record.holder = None;
        Ok(())
    }

    /// The share-partition agrees with the model.
    fn check(&self) -> Result<(), String> {
        let p = &self.partition;
        if p.in_flight_len() > self.config.in_flight_max {
            return Err(format!(
                "{} in flight, more than {}",
                p.in_flight_len(),
                self.config.in_flight_max
            ));
        }
        let first_not_done = self
            .model
            .range(..p.end_offset())
            .find(|(_, r)| r.done.is_none())
            .map_or(p.end_offset(), |(offset, _)| *offset);
        if p.start_offset() != first_not_done {
            return Err(format!(
                "start offset {}, first record not done {first_not_done}",
                p.start_offset()
            ));
        }
        for (offset, record) in self.model.range(p.start_offset()..p.end_offset()) {
            let state = p.record(*offset).map(|(s, count)| (s.clone(), count));
            let fits = match (&state, record.done, record.holder) {
                (Some((RecordState::Acknowledged, _)), Some(Done::Acknowledged), _) => true,
                (Some((RecordState::Archived, _)), Some(Done::Archived(_)), _) => true,
                (
                    Some((
                        RecordState::Acquired {
                            member,
                            deadline_ms,
                        },
                        _,
                    )),
                    None,
                    Some((m, d)),
                ) => *member == self.names[m] && *deadline_ms == d,
                (Some((RecordState::Available { .. }, _)), None, None) => true,
                _ => false,
            };
            let count_fits = state
                .as_ref()
                .is_none_or(|(_, count)| *count == record.deliveries);
            if !fits || !count_fits {
                return Err(format!("{offset} is {state:?}, the model says {record:?}"));
            }
        }
        Ok(())
    }

    /// One member fetches and accepts everything until the log is done.
    fn drain(mut self) -> Result<(), String> {
        let log_end = self.log_end();
        for _ in 0..DRAIN_ROUNDS {
            if self.partition.start_offset() == log_end {
                break;
            }
            self.now += self.config.record_lock_duration_ms;
            self.tick()?;
            let before: Vec<i64> = self.held_by(0);
            self.fetch(0)?;
            let acks: Vec<Acknowledgement> = self
                .held_by(0)
                .into_iter()
                .filter(|o| !before.contains(o))
                .map(|offset| Acknowledgement {
                    first_offset: offset,
                    last_offset: offset,
                    kind: AckType::Accept,
                })
                .collect();
            let name = self.names[0].clone();
            self.partition
                .acknowledge(&name, self.now, &acks)
                .map_err(|e| format!("drain: {e}"))?;
            for ack in &acks {
                self.finish(ack.first_offset, Done::Acknowledged)?;
            }
            self.check().map_err(|e| format!("drain: {e}"))?;
        }
        if self.partition.start_offset() != log_end {
            return Err(format!(
                "not drained: start {} of {log_end}, {} in flight",
                self.partition.start_offset(),
                self.partition.in_flight_len()
            ));
        }
        match self.model.iter().find(|(_, r)| r.done.is_none()) {
            Some((offset, record)) => Err(format!("{offset} never done: {record:?}")),
            None => Ok(()),
        }
    }
}

/// The back-off rule, written out here rather than taken from the code under test.
fn backoff(config: &ShareConfig, deliveries: u16) -> i64 {
    if config.retry_backoff_ms == 0 {
        return 0;
    }
    let mut wait = config.retry_backoff_ms;
    for _ in 1..deliveries {
        wait = wait.saturating_mul(2);
    }
    wait.min(config.retry_backoff_max_ms.max(config.retry_backoff_ms))
}

fn seeds() -> Vec<u64> {
    if let Some(seed) = std::env::var("SLUICE_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return vec![seed];
    }
    let count = std::env::var("SLUICE_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(64);
    (0..count).collect()
}

#[test]
fn a_share_partition_delivers_every_record_by_the_rules_through_faults() {
    let trace = std::env::var("SLUICE_SIM_TRACE").is_ok_and(|v| v == "1");
    let failures: Vec<String> = seeds()
        .into_iter()
        .filter_map(|seed| {
            Sim::new(seed, trace).run().err().map(|e| {
                format!("seed {seed}: {e} (replay: SLUICE_SIM_SEED={seed} SLUICE_SIM_TRACE=1)")
            })
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
