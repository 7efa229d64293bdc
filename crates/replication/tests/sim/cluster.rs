//! Brokers, the network and the event loop. One clock (milliseconds), one queue of events
//! ordered by (time, sequence), one generator: the same seed gives the same run.
//!
//! A run has a faulty phase (messages dropped, delayed, duplicated; brokers crashed, paused,
//! isolated; links cut; records deleted on the leader) and then a calm one (everything healed,
//! producing stops half way), after which the replicas must have converged.

use super::check::{Checker, Verdict};
use super::controller::Controller;
use super::log::{Batch, ModelLog};
use super::rng::Rng;
use sluice_replication::{
    AlterPartitionRequest, Effect, FetchAnswer, FetchData, FetchRequest, FetchResponse, Follower,
    FollowerConfig, Leader, LeaderConfig, NO_LEADER, PartitionRegistration, ReplicationError,
};
use std::collections::BTreeMap;

const CONTROLLER: i32 = 0;
const TICK_MS: i64 = 10;
const HEARTBEAT_EVERY_TICKS: u64 = 5;
const CHECKPOINT_EVERY_TICKS: u64 = 10;
const CONTROLLER_TICK_MS: i64 = 50;
const BROADCAST_EVERY_MS: i64 = 200;
const SESSION_TIMEOUT_MS: i64 = 300;
const BATCHES_PER_FETCH_MAX: usize = 4;
/// Every this many events, every acknowledged batch is checked for durability again.
const DURABILITY_CHECK_EVERY: u64 = 64;
const EVENTS_MAX: u64 = 5_000_000;

/// Deliberate bugs, for the simulation's own tests: each must be caught.
#[derive(Debug, Clone, Copy, Default)]
pub struct Mutations {
    /// Followers report fetch offsets before they are fsynced.
    pub report_before_fsync: bool,
    /// The controller elects any live replica when no in-sync one is left.
    pub unclean_election: bool,
    /// A restarted broker resumes its old role without re-registering (no new epoch).
    pub no_epoch_bump_on_restart: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct SimConfig {
    pub brokers: i32,
    pub min_insync: usize,
    pub faulty_ms: i64,
    pub calm_ms: i64,
    pub mutations: Mutations,
    pub trace: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            brokers: 3,
            min_insync: 2,
            faulty_ms: 12_000,
            calm_ms: 8_000,
            mutations: Mutations::default(),
            trace: false,
        }
    }
}

/// What a run did, for the figures.
#[derive(Debug, Default, Clone, Copy)]
pub struct Outcome {
    pub events: u64,
    pub produced: u64,
    pub acked: usize,
    pub leaders: usize,
    pub faults: u64,
}

#[derive(Debug, Clone)]
enum Msg {
    Fetch(FetchRequest),
    FetchResponse(FetchResponse, Vec<Batch>),
    AlterPartition(AlterPartitionRequest),
    AlterPartitionResponse(
        AlterPartitionRequest,
        Result<PartitionRegistration, ReplicationError>,
    ),
    Registration(PartitionRegistration),
    Heartbeat,
    /// A broker starting (again), with its incarnation; sent until acknowledged.
    Register(u64),
    Registered(u64),
}

#[derive(Debug)]
enum Event {
    Deliver {
        from: i32,
        to: i32,
        msg: Msg,
    },
    Tick(i32),
    ControllerTick,
    FlushDone {
        broker: i32,
        incarnation: u64,
        token: u64,
        batches: usize,
    },
    Produce,
    Fault,
    Restart(i32),
    Heal(u64),
    Calm,
    StopProducing,
}

enum Role {
    None,
    Leader(Leader),
    Follower(Follower),
}

struct Broker {
    id: i32,
    alive: bool,
    incarnation: u64,
    /// The controller acknowledged this incarnation's registration.
    registered: bool,
    paused_until: i64,
    ticks: u64,
    log: ModelLog,
    role: Role,
    /// The newest partition epoch applied; kept across a crash (the metadata log is on disk).
    seen_partition_epoch: i32,
    /// The records of the fetch answer being handled.
    fetched: Vec<Batch>,
    /// Raised by a truncation or crash: a flush begun before it no longer counts.
    flush_token: u64,
    flush_in_flight: bool,
    waiting_acks: Vec<Batch>,
    next_request_id: u64,
}

pub struct Sim {
    now: i64,
    seq: u64,
    queue: BTreeMap<(i64, u64), Event>,
    rng: Rng,
    brokers: Vec<Broker>,
    controller: Controller,
    cuts: BTreeMap<u64, (i32, i32)>,
    next_cut: u64,
    calm: bool,
    producing: bool,
    config: SimConfig,
    checker: Checker,
    last_high_watermarks: Vec<i64>,
    verified_upto: Vec<i64>,
    next_batch_id: u64,
    outcome: Outcome,
}

impl Sim {
    pub fn new(seed: u64, config: SimConfig) -> Sim {
        let ids: Vec<i32> = (1..=config.brokers).collect();
        let brokers = ids
            .iter()
            .map(|&id| Broker {
                id,
                alive: true,
                incarnation: 0,
                registered: true,
                paused_until: 0,
                ticks: 0,
                log: ModelLog::default(),
                role: Role::None,
                seen_partition_epoch: -1,
                fetched: Vec::new(),
                flush_token: 0,
                flush_in_flight: false,
                waiting_acks: Vec::new(),
                next_request_id: 1,
            })
            .collect();
        let n = ids.len();
        let mut sim = Sim {
            now: 0,
            seq: 0,
            queue: BTreeMap::new(),
            rng: Rng::new(seed),
            brokers,
            controller: Controller::new(
                ids.clone(),
                SESSION_TIMEOUT_MS,
                config.mutations.unclean_election,
            ),
            cuts: BTreeMap::new(),
            next_cut: 0,
            calm: false,
            producing: true,
            config,
            checker: Checker::new(config.min_insync),
            last_high_watermarks: vec![0; n],
            verified_upto: vec![0; n],
            next_batch_id: 1,
            outcome: Outcome::default(),
        };
        for &id in &ids {
            let offset = sim.rng.between(0, TICK_MS - 1);
            sim.schedule(offset, Event::Tick(id));
        }
        sim.schedule(0, Event::ControllerTick);
        sim.schedule(1, Event::Produce);
        sim.schedule(200, Event::Fault);
        sim.schedule(config.faulty_ms, Event::Calm);
        sim.broadcast();
        sim
    }

    /// Runs to the end; a broken property is an error naming the time it broke.
    pub fn run(mut self) -> Result<Outcome, String> {
        let end = self.config.faulty_ms + self.config.calm_ms;
        while let Some(((at, _), event)) = self.queue.pop_first() {
            if at > end {
                break;
            }
            self.now = at;
            self.outcome.events += 1;
            if self.outcome.events > EVENTS_MAX {
                return Err("the run did not finish within its event budget".into());
            }
            self.trace(|| format!("{event:?}"));
            self.handle(event)
                .and_then(|()| self.check_after_event())
                .map_err(|e| format!("at {} ms: {e}", self.now))?;
        }
        self.check_converged()
            .map_err(|e| format!("at the end ({} ms): {e}", self.now))?;
        self.outcome.acked = self.checker.acked.len();
        Ok(self.outcome)
    }

    fn trace(&self, line: impl FnOnce() -> String) {
        if self.config.trace {
            eprintln!("{:>6} {}", self.now, line());
        }
    }

    fn schedule(&mut self, delay_ms: i64, event: Event) {
        self.seq += 1;
        self.queue.insert((self.now + delay_ms, self.seq), event);
    }

    fn broker(&mut self, id: i32) -> &mut Broker {
        &mut self.brokers[(id - 1) as usize]
    }

    fn logs(&self) -> Vec<(i32, &ModelLog)> {
        self.brokers.iter().map(|b| (b.id, &b.log)).collect()
    }

    // ---- the network ----

    fn send(&mut self, from: i32, to: i32, msg: Msg) {
        let cut = self
            .cuts
            .values()
            .any(|&(a, b)| (a, b) == (from, to) || (b, a) == (from, to));
        if cut || (!self.calm && self.rng.percent(2)) {
            return;
        }
        let copies = if !self.calm && self.rng.percent(1) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let delay = self.rng.between(1, 12);
            let msg = msg.clone();
            self.schedule(delay, Event::Deliver { from, to, msg });
        }
    }

    fn broadcast(&mut self) {
        let registration = self.controller.registration.clone();
        for id in 1..=self.config.brokers {
            self.send(CONTROLLER, id, Msg::Registration(registration.clone()));
        }
    }

    // ---- events ----

    fn handle(&mut self, event: Event) -> Verdict {
        // A paused broker does nothing until it resumes; what reaches it waits.
        let target = match &event {
            Event::Deliver { to, .. } if *to != CONTROLLER => Some(*to),
            Event::Tick(id) | Event::FlushDone { broker: id, .. } => Some(*id),
            _ => None,
        };
        if let Some(id) = target {
            let paused_until = self.broker(id).paused_until;
            if paused_until > self.now {
                self.schedule(paused_until - self.now, event);
                return Ok(());
            }
        }
        match event {
            Event::Deliver { from, to, msg } if to == CONTROLLER => {
                self.controller_receives(from, msg);
                Ok(())
            }
            Event::Deliver { from, to, msg } => self.broker_receives(to, from, msg),
            Event::Tick(id) => self.tick(id),
            Event::ControllerTick => {
                if self.controller.tick(self.now) || self.now % BROADCAST_EVERY_MS == 0 {
                    self.broadcast();
                }
                self.schedule(CONTROLLER_TICK_MS, Event::ControllerTick);
                Ok(())
            }
            Event::FlushDone {
                broker,
                incarnation,
                token,
                batches,
            } => self.flush_done(broker, incarnation, token, batches),
            Event::Produce => self.produce(),
            Event::Fault => {
                self.fault();
                Ok(())
            }
            Event::Restart(id) => {
                self.restart(id);
                Ok(())
            }
            Event::Heal(cut) => {
                self.cuts.remove(&cut);
                Ok(())
            }
            Event::Calm => {
                self.calm_down();
                Ok(())
            }
            Event::StopProducing => {
                self.producing = false;
                Ok(())
            }
        }
    }

    fn controller_receives(&mut self, from: i32, msg: Msg) {
        let changed = match msg {
            Msg::Heartbeat => self.controller.heartbeat(from, self.now),
            Msg::Register(incarnation) => {
                self.send(CONTROLLER, from, Msg::Registered(incarnation));
                self.controller.register(from, incarnation, self.now)
            }
            Msg::AlterPartition(request) => {
                let result = self.controller.alter_partition(&request);
                let changed = result.is_ok();
                let reply = Msg::AlterPartitionResponse(request.clone(), result);
                self.send(CONTROLLER, request.leader_id, reply);
                changed
            }
            _ => false,
        };
        if changed {
            self.trace(|| format!("controller: {:?}", self.controller.registration));
            self.broadcast();
        }
    }

    fn broker_receives(&mut self, id: i32, from: i32, msg: Msg) -> Verdict {
        if !self.broker(id).alive {
            return Ok(());
        }
        match msg {
            Msg::Fetch(request) => self.answer_fetch(id, request),
            Msg::FetchResponse(response, batches) => {
                let now = self.now;
                let b = self.broker(id);
                let Role::Follower(follower) = &mut b.role else {
                    return Ok(());
                };
                if follower.leader_id() != from {
                    return Ok(());
                }
                let effects = follower.on_fetch_response(&response, &b.log, now);
                b.fetched = batches;
                self.apply(id, effects)
            }
            Msg::AlterPartitionResponse(request, result) => {
                let b = self.broker(id);
                let Role::Leader(leader) = &mut b.role else {
                    return Ok(());
                };
                let effects = leader.on_alter_partition_response(&request, result);
                self.apply(id, effects)
            }
            Msg::Registration(registration) => self.apply_registration(id, registration),
            Msg::Registered(incarnation) => {
                let b = self.broker(id);
                b.registered |= incarnation == b.incarnation;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn answer_fetch(&mut self, id: i32, request: FetchRequest) -> Verdict {
        let now = self.now;
        let b = self.broker(id);
        let Role::Leader(leader) = &mut b.role else {
            let refused = FetchResponse {
                request_id: request.request_id,
                result: Err(ReplicationError::NotLeaderOrFollower),
            };
            self.send(
                id,
                request.replica_id,
                Msg::FetchResponse(refused, Vec::new()),
            );
            return Ok(());
        };
        let (answer, effects) = leader.on_fetch(&request, &b.log, now);
        self.apply(id, effects)?;
        let b = &self.brokers[(id - 1) as usize];
        let Role::Leader(leader) = &b.role else {
            unreachable!("a fetch changes no role")
        };
        let data = |diverging_epoch, records| FetchData {
            high_watermark: leader.high_watermark(),
            log_start_offset: b.log.start,
            diverging_epoch,
            records,
        };
        let (result, batches) = match answer {
            FetchAnswer::Read { offset } => {
                let batches = b.log.read(offset, BATCHES_PER_FETCH_MAX);
                let records = batches.first().zip(batches.last());
                let records = records.map(|(first, last)| (first.base, last.last + 1));
                (Ok(data(None, records)), batches)
            }
            FetchAnswer::Diverging { epoch, end_offset } => {
                (Ok(data(Some((epoch, end_offset)), None)), Vec::new())
            }
            FetchAnswer::Refused(e) => (Err(e), Vec::new()),
        };
        let response = FetchResponse {
            request_id: request.request_id,
            result,
        };
        self.send(
            id,
            request.replica_id,
            Msg::FetchResponse(response, batches),
        );
        Ok(())
    }

    fn apply_registration(&mut self, id: i32, registration: PartitionRegistration) -> Verdict {
        let now = self.now;
        let min_insync = self.config.min_insync;
        let b = self.broker(id);
        let newer = registration.partition_epoch > b.seen_partition_epoch;
        // A restarted broker learns its role again from the registration it last saw, unless
        // that made it leader: a leader's epoch is never resumed after a restart.
        let relearn = registration.partition_epoch == b.seen_partition_epoch
            && matches!(b.role, Role::None)
            && registration.leader != id;
        if !newer && !relearn {
            return Ok(());
        }
        b.seen_partition_epoch = registration.partition_epoch;
        if registration.leader == id {
            if let Role::Leader(leader) = &mut b.role
                && leader.leader_epoch() == registration.leader_epoch
            {
                let effects = leader.on_registration(registration);
                return self.apply(id, effects);
            }
            b.log.become_leader(registration.leader_epoch);
            let config = LeaderConfig {
                replica_lag_time_max_ms: 400,
                min_insync_replicas: min_insync,
                alter_partition_retry_ms: 200,
            };
            let epoch = registration.leader_epoch;
            let (high_watermark, durable) = (b.log.high_watermark, b.log.durable_end());
            let leader = Leader::new(
                id,
                registration,
                &b.log,
                high_watermark,
                durable,
                now,
                config,
            );
            b.role = Role::Leader(leader);
            b.waiting_acks.clear();
            self.outcome.leaders += 1;
            self.trace(|| format!("broker {id} leads epoch {epoch}"));
            return self.checker.became_leader(id, epoch);
        }
        if let Role::Follower(f) = &b.role {
            if f.leader_id() == registration.leader && f.leader_epoch() == registration.leader_epoch
            {
                return Ok(());
            }
            b.next_request_id = f.next_request_id();
        }
        b.waiting_acks.clear();
        b.role = if registration.leader != NO_LEADER && registration.replicas.contains(&id) {
            let config = FollowerConfig {
                fetch_backoff_ms: 20,
                empty_fetch_backoff_ms: 20,
                fetch_timeout_ms: 200,
            };
            let (leader, epoch) = (registration.leader, registration.leader_epoch);
            Role::Follower(Follower::new(
                id,
                leader,
                epoch,
                b.next_request_id,
                now,
                config,
            ))
        } else {
            Role::None
        };
        Ok(())
    }

    fn tick(&mut self, id: i32) -> Verdict {
        self.schedule(TICK_MS, Event::Tick(id));
        let now = self.now;
        let b = self.broker(id);
        if !b.alive {
            return Ok(());
        }
        b.ticks += 1;
        if b.ticks.is_multiple_of(CHECKPOINT_EVERY_TICKS) {
            b.log.checkpoint_high_watermark();
        }
        let heartbeat = b.ticks.is_multiple_of(HEARTBEAT_EVERY_TICKS);
        let effects = match &mut b.role {
            Role::Leader(leader) => leader.tick(&b.log, now),
            Role::Follower(follower) => follower.tick(&b.log, now),
            Role::None => Vec::new(),
        };
        if heartbeat {
            let hello = if b.registered {
                Msg::Heartbeat
            } else {
                Msg::Register(b.incarnation)
            };
            self.send(id, CONTROLLER, hello);
        }
        self.apply(id, effects)?;
        self.maybe_flush_leader(id);
        Ok(())
    }

    /// Carries out a state machine's effects, in order.
    fn apply(&mut self, id: i32, effects: Vec<Effect>) -> Verdict {
        for effect in effects {
            self.trace(|| format!("broker {id}: {effect:?}"));
            match effect {
                Effect::AdvanceHighWatermark(offset) => {
                    self.broker(id).log.advance_high_watermark(offset);
                    self.settle_acks(id)?;
                }
                Effect::AlterPartition(request) => {
                    self.send(id, CONTROLLER, Msg::AlterPartition(request))
                }
                Effect::SendFetch(request) => {
                    let Role::Follower(f) = &self.broker(id).role else {
                        unreachable!("followers fetch")
                    };
                    let leader = f.leader_id();
                    self.send(id, leader, Msg::Fetch(request));
                }
                Effect::AppendAndFlush => {
                    let batches = std::mem::take(&mut self.broker(id).fetched);
                    if !self.broker(id).log.append_as_follower(&batches) {
                        return Err(format!(
                            "broker {id} was handed offsets that do not increase"
                        ));
                    }
                    self.start_flush(id)?;
                }
                Effect::Flush => self.start_flush(id)?,
                Effect::TruncateTo(offset) => self.truncate(id, offset, ModelLog::truncate_to)?,
                Effect::TruncateFullyAndStartAt(offset) => {
                    self.truncate(id, offset, ModelLog::truncate_fully_and_start_at)?
                }
                Effect::AdvanceLogStartOffset(offset) => self.broker(id).log.advance_start(offset),
            }
        }
        Ok(())
    }

    /// A truncation (`cut` at `offset`), checked first; a flush begun before it no longer
    /// counts.
    fn truncate(&mut self, id: i32, offset: i64, cut: fn(&mut ModelLog, i64)) -> Verdict {
        self.checker
            .truncating(id, offset, &self.brokers[(id - 1) as usize].log)?;
        let b = self.broker(id);
        cut(&mut b.log, offset);
        b.flush_token += 1;
        b.flush_in_flight = false;
        Ok(())
    }

    fn start_flush(&mut self, id: i32) -> Verdict {
        let now = self.now;
        if self.config.mutations.report_before_fsync {
            // The bug under test: the follower carries on as if the tail were on disk.
            let b = self.broker(id);
            if let Role::Follower(f) = &mut b.role {
                b.log.pretend_durable = true;
                let effects = f.on_flushed(&b.log, now);
                b.log.pretend_durable = false;
                return self.apply(id, effects);
            }
        }
        let latency = self.rng.between(1, 10);
        let b = self.broker(id);
        b.flush_in_flight = true;
        let event = Event::FlushDone {
            broker: id,
            incarnation: b.incarnation,
            token: b.flush_token,
            batches: b.log.batches.len(),
        };
        self.schedule(latency, event);
        Ok(())
    }

    /// A leader fsyncs its appends in groups: one flush at a time, covering what is there.
    fn maybe_flush_leader(&mut self, id: i32) {
        let b = self.broker(id);
        let due = matches!(b.role, Role::Leader(_))
            && !b.flush_in_flight
            && b.log.durable < b.log.batches.len();
        if due {
            let _ = self.start_flush(id);
        }
    }

    fn flush_done(&mut self, id: i32, incarnation: u64, token: u64, batches: usize) -> Verdict {
        let now = self.now;
        let b = self.broker(id);
        if b.incarnation != incarnation || b.flush_token != token {
            return Ok(());
        }
        b.flush_in_flight = false;
        b.log.flush(batches);
        let effects = match &mut b.role {
            Role::Leader(leader) => leader.on_local_flush(b.log.durable_end()),
            Role::Follower(follower) => follower.on_flushed(&b.log, now),
            Role::None => Vec::new(),
        };
        self.apply(id, effects)?;
        self.maybe_flush_leader(id);
        Ok(())
    }

    /// Resolves the `acks=all` produces the high watermark has passed.
    fn settle_acks(&mut self, id: i32) -> Verdict {
        let b = self.broker(id);
        let Role::Leader(leader) = &b.role else {
            return Ok(());
        };
        let mut acked = Vec::new();
        b.waiting_acks
            .retain(|batch| match leader.acks_all_outcome(batch.last + 1) {
                None => true,
                Some(Ok(())) => {
                    acked.push(*batch);
                    false
                }
                Some(Err(_)) => false,
            });
        for batch in acked {
            let logs: Vec<(i32, &ModelLog)> = self.brokers.iter().map(|b| (b.id, &b.log)).collect();
            self.checker.acknowledge(batch, &logs)?;
        }
        Ok(())
    }

    fn produce(&mut self) -> Verdict {
        if self.producing {
            let delay = self.rng.between(2, 8);
            self.schedule(delay, Event::Produce);
        }
        let now = self.now;
        // A client with stale metadata may reach an old leader: any broker that believes.
        let leaders: Vec<i32> = self
            .brokers
            .iter()
            .filter(|b| b.alive && b.paused_until <= now && matches!(b.role, Role::Leader(_)))
            .map(|b| b.id)
            .collect();
        if leaders.is_empty() {
            return Ok(());
        }
        let id = self.rng.pick(&leaders);
        let count = self.rng.between(1, 3);
        let batch_id = self.next_batch_id;
        self.next_batch_id += 1;
        let b = self.broker(id);
        let Role::Leader(leader) = &b.role else {
            unreachable!("picked a leader")
        };
        if leader.check_acks_all().is_err() {
            return Ok(());
        }
        let epoch = leader.leader_epoch();
        let base = b.log.end();
        let planned = Batch {
            base,
            last: base + count - 1,
            epoch,
            id: batch_id,
        };
        self.checker
            .appending(id, &planned, &self.brokers[(id - 1) as usize].log)?;
        let b = self.broker(id);
        let batch = b.log.append_as_leader(epoch, count, batch_id);
        b.waiting_acks.push(batch);
        self.outcome.produced += 1;
        self.maybe_flush_leader(id);
        Ok(())
    }

    // ---- faults ----

    fn fault(&mut self) {
        if self.calm {
            return;
        }
        self.outcome.faults += 1;
        let delay = self.rng.between(100, 600);
        self.schedule(delay, Event::Fault);
        let id = self.rng.between(1, i64::from(self.config.brokers)) as i32;
        match self.rng.between(0, 5) {
            0 | 1 => self.crash(id),
            2 => {
                let until = self.now + self.rng.between(100, 800);
                let b = self.broker(id);
                b.paused_until = b.paused_until.max(until);
                self.trace(|| format!("broker {id} paused"));
            }
            3 => {
                let peers: Vec<i32> = (0..=self.config.brokers).filter(|&p| p != id).collect();
                let duration = self.rng.between(200, 1500);
                for peer in peers {
                    self.cut(id, peer, duration);
                }
                self.trace(|| format!("broker {id} isolated"));
            }
            4 => {
                let peer = self.rng.between(0, i64::from(self.config.brokers)) as i32;
                if peer != id {
                    let duration = self.rng.between(200, 1500);
                    self.cut(id, peer, duration);
                }
            }
            _ => self.delete_records(id),
        }
    }

    fn cut(&mut self, a: i32, b: i32, duration_ms: i64) {
        let cut = self.next_cut;
        self.next_cut += 1;
        self.cuts.insert(cut, (a, b));
        self.schedule(duration_ms, Event::Heal(cut));
    }

    fn crash(&mut self, id: i32) {
        // Half restart at once (a supervisor's restart, inside the controller's session
        // timeout), half after the controller noticed.
        let downtime = if self.rng.percent(50) {
            self.rng.between(20, 250)
        } else {
            self.rng.between(250, 1500)
        };
        let b = self.broker(id);
        if !b.alive {
            return;
        }
        b.alive = false;
        b.incarnation += 1;
        b.log.crash();
        b.role = Role::None;
        b.waiting_acks.clear();
        b.fetched.clear();
        b.flush_in_flight = false;
        b.flush_token += 1;
        let (hw, start) = (b.log.high_watermark, b.log.start);
        let i = (id - 1) as usize;
        self.last_high_watermarks[i] = hw;
        self.verified_upto[i] = start;
        self.schedule(downtime, Event::Restart(id));
        self.trace(|| format!("broker {id} crashed"));
    }

    fn restart(&mut self, id: i32) {
        let resume_old_epoch = self.config.mutations.no_epoch_bump_on_restart;
        let b = self.broker(id);
        if b.alive {
            return;
        }
        b.alive = true;
        b.paused_until = 0;
        if resume_old_epoch {
            // The bug under test: resume the last role seen, in its old epoch.
            b.seen_partition_epoch -= 1;
            return;
        }
        b.registered = false;
        let hello = Msg::Register(b.incarnation);
        self.send(id, CONTROLLER, hello);
    }

    /// DeleteRecords on a leader: its log start moves up, at most to the high watermark.
    fn delete_records(&mut self, id: i32) {
        let b = self.broker(id);
        if !matches!(b.role, Role::Leader(_)) || b.log.high_watermark <= b.log.start {
            return;
        }
        let to = (b.log.start + b.log.high_watermark) / 2;
        b.log.advance_start(to);
    }

    fn calm_down(&mut self) {
        self.calm = true;
        self.cuts.clear();
        let now = self.now;
        for id in 1..=self.config.brokers {
            let b = self.broker(id);
            b.paused_until = b.paused_until.min(now);
            if !b.alive {
                self.schedule(0, Event::Restart(id));
            }
        }
        self.schedule(self.config.calm_ms / 2, Event::StopProducing);
    }

    // ---- checks ----

    fn check_after_event(&mut self) -> Verdict {
        let logs: Vec<(i32, &ModelLog)> = self.brokers.iter().map(|b| (b.id, &b.log)).collect();
        self.checker.after_event(
            &logs,
            &mut self.last_high_watermarks,
            &mut self.verified_upto,
        )?;
        if self.outcome.events.is_multiple_of(DURABILITY_CHECK_EVERY) {
            self.checker.acked_are_durable(&logs)?;
        }
        Ok(())
    }

    fn check_converged(&self) -> Verdict {
        let registration = &self.controller.registration;
        let leader = registration.leader;
        if leader == NO_LEADER {
            return Err("no leader after the faults healed".into());
        }
        let b = &self.brokers[(leader - 1) as usize];
        match &b.role {
            Role::Leader(l) if l.leader_epoch() == registration.leader_epoch => {}
            _ => {
                return Err(format!(
                    "broker {leader} is registered leader but does not lead"
                ));
            }
        }
        if registration.isr.len() != registration.replicas.len() {
            return Err(format!(
                "the in-sync set {:?} did not grow back",
                registration.isr
            ));
        }
        let logs = self.logs();
        self.checker.acked_are_durable(&logs)?;
        self.checker.converged(&b.log, &logs)
    }
}
