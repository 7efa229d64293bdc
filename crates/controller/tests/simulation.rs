//! The controller under a seeded deterministic simulation: five brokers heartbeating through a
//! lossy channel, crashing and restarting as new incarnations, pausing past their session,
//! shutting down in a controlled way; topics created and deleted; producer-id blocks taken;
//! partition leaders shrinking and growing their in-sync sets (AlterPartition, some stale);
//! and the active controller itself failing over (a new one replays the committed log, and a
//! command in flight when it failed is lost). After every step that changed the metadata, it
//! must hold:
//! - every partition's in-sync set is non-empty and within its replicas, and its leader is an
//!   unfenced in-sync replica or there is none;
//! - leader and partition epochs never go back, and an epoch of a partition never has two
//!   leaders;
//! - a broker's epoch only grows, and a fenced broker leads nothing;
//! - producer-id blocks never overlap;
//! - every controller's image is the committed log replayed (every 250 steps and at the end).
//!
//! At the end, with every broker heartbeating again, every broker is unfenced and every
//! partition led. `SLUICE_SIM_SEEDS=N` runs seeds 0..N (default 32); `SLUICE_SIM_SEED=S` one.

use sluice_controller::{
    AlterPartition, BrokerHeartbeat, ConfigChanges, ConfigResource, ControllerConfig, Endpoint,
    MetadataImage, MetadataRecord, NewPartitions, NewTopic, QuorumController, Registration,
};
use sluice_replication::NO_LEADER;
use sluice_types::sim::SimRng;
use std::collections::BTreeMap;

const BROKERS: i32 = 5;
const STEP_MS: i64 = 100;
const STEPS: i64 = 3_000;
const CALM_STEPS: i64 = 300;
const SESSION_MS: i64 = 1_000;
const REPLAY_CHECK_EVERY: i64 = 250;

#[derive(Clone, Copy, PartialEq, Eq)]
enum BrokerRun {
    Up,
    Down { until_step: i64 },
    Paused { until_step: i64 },
}

struct Broker {
    run: BrokerRun,
    incarnation: u128,
    epoch: Option<i64>,
}

struct World {
    rng: SimRng,
    controller: QuorumController,
    log: Vec<MetadataRecord>,
    brokers: BTreeMap<i32, Broker>,
    /// (topic id, partition, leader epoch) -> leader, as ever seen.
    leaders: BTreeMap<(uuid::Uuid, i32, i32), i32>,
    last_epochs: BTreeMap<(uuid::Uuid, i32), (i32, i32)>,
    broker_epochs: BTreeMap<i32, i64>,
    blocks: Vec<(i64, i64)>,
    next_topic: u32,
    events: u64,
    /// AlterPartition proposals the controller accepted.
    isr_changes: u64,
    /// Records were committed since the last check (an unchanged image needs none).
    changed: bool,
}

fn config() -> ControllerConfig {
    ControllerConfig {
        session_timeout_ms: SESSION_MS,
        replication_factor_max: 3,
        ..ControllerConfig::default()
    }
}

impl World {
    fn new(seed: u64) -> World {
        let mut w = World {
            rng: SimRng::new(seed),
            controller: QuorumController::new(config()),
            log: Vec::new(),
            brokers: (1..=BROKERS)
                .map(|b| {
                    let broker = Broker {
                        run: BrokerRun::Up,
                        incarnation: b as u128,
                        epoch: None,
                    };
                    (b, broker)
                })
                .collect(),
            leaders: BTreeMap::new(),
            last_epochs: BTreeMap::new(),
            broker_epochs: BTreeMap::new(),
            blocks: Vec::new(),
            next_topic: 0,
            events: 0,
            isr_changes: 0,
            changed: true,
        };
        let records = w.controller.bootstrap("sim");
        w.commit(records);
        w
    }

    /// A command's records, committed as one batch (and replayed by the controller).
    fn commit(&mut self, records: Vec<MetadataRecord>) {
        self.changed |= !records.is_empty();
        for r in &records {
            self.controller.replay(r);
        }
        self.log.extend(records);
    }

    fn step(&mut self, step: i64, calm: bool) -> Result<(), String> {
        let now = step * STEP_MS;
        for id in 1..=BROKERS {
            self.broker_step(id, step, now, calm)?;
        }
        if !calm {
            self.chaos(step, now);
        }
        let records = self.controller.tick(now);
        self.commit(records);
        if std::mem::take(&mut self.changed) {
            self.check()?;
        }
        if step % REPLAY_CHECK_EVERY == 0 {
            self.check_replay()?;
        }
        Ok(())
    }

    fn broker_step(&mut self, id: i32, step: i64, now: i64, calm: bool) -> Result<(), String> {
        let run = self.brokers[&id].run;
        match run {
            BrokerRun::Down { until_step } if step < until_step && !calm => return Ok(()),
            BrokerRun::Paused { until_step } if step < until_step && !calm => return Ok(()),
            BrokerRun::Down { .. } => {
                // A restart: a new incarnation registers.
                let b = self.brokers.get_mut(&id).unwrap();
                b.incarnation += 1_000;
                b.epoch = None;
                b.run = BrokerRun::Up;
            }
            _ => self.brokers.get_mut(&id).unwrap().run = BrokerRun::Up,
        }
        // Heartbeats every step, some lost on the way (never in the calm).
        if !calm && self.rng.percent(15) {
            return Ok(());
        }
        let broker = &self.brokers[&id];
        match broker.epoch {
            None => {
                let registration = Registration {
                    broker_id: id,
                    incarnation_id: uuid::Uuid::from_u128(broker.incarnation),
                    directory_id: uuid::Uuid::from_u128(id as u128),
                    endpoints: vec![Endpoint {
                        name: "PLAINTEXT".into(),
                        host: "127.0.0.1".into(),
                        port: 9000 + id as u16,
                    }],
                    rack: None,
                };
                // Refused while the old incarnation's session lasts: tried again next step.
                if let Ok((records, epoch)) = self.controller.register_broker(registration, now) {
                    self.commit(records);
                    self.brokers.get_mut(&id).unwrap().epoch = Some(epoch);
                    let known = self.broker_epochs.insert(id, epoch);
                    if known.is_some_and(|k| k > epoch) {
                        return Err(format!("broker {id}'s epoch went back to {epoch}"));
                    }
                }
            }
            Some(epoch) => {
                let heartbeat = BrokerHeartbeat {
                    broker_id: id,
                    broker_epoch: epoch,
                    caught_up: true,
                    want_fence: false,
                    want_shutdown: false,
                };
                match self.controller.heartbeat(heartbeat, now) {
                    Ok((records, _)) => self.commit(records),
                    // Its registration was lost with a failed-over controller: register again.
                    Err(_) => self.brokers.get_mut(&id).unwrap().epoch = None,
                }
            }
        }
        Ok(())
    }

    fn chaos(&mut self, step: i64, now: i64) {
        let draw = self.rng.below(40);
        if draw < 12 {
            self.events += 1;
        }
        match draw {
            0 => {
                let id = 1 + self.rng.below(BROKERS as u64) as i32;
                let until_step = step + 1 + self.rng.below(30) as i64;
                self.brokers.get_mut(&id).unwrap().run = BrokerRun::Down { until_step };
            }
            1 => {
                let id = 1 + self.rng.below(BROKERS as u64) as i32;
                let until_step = step + 1 + self.rng.below(30) as i64;
                self.brokers.get_mut(&id).unwrap().run = BrokerRun::Paused { until_step };
            }
            2 => self.controlled_shutdown(now),
            3 | 4 => self.create_topic(),
            5 => self.delete_topic(),
            6 => self.take_producer_ids(),
            7 => self.fail_over(now),
            8 => self.grow_topic(),
            9 => self.alter_configs(),
            10 | 11 => self.alter_isr(),
            _ => {}
        }
    }

    fn controlled_shutdown(&mut self, now: i64) {
        let id = 1 + self.rng.below(BROKERS as u64) as i32;
        let Some(epoch) = self.brokers[&id].epoch else {
            return;
        };
        let heartbeat = BrokerHeartbeat {
            broker_id: id,
            broker_epoch: epoch,
            caught_up: true,
            want_fence: false,
            want_shutdown: true,
        };
        if let Ok((records, _)) = self.controller.heartbeat(heartbeat, now) {
            self.commit(records);
            let until_step = now / STEP_MS + 5;
            self.brokers.get_mut(&id).unwrap().run = BrokerRun::Down { until_step };
        }
    }

    fn create_topic(&mut self) {
        self.next_topic += 1;
        let topic = NewTopic {
            name: format!("t{}", self.next_topic),
            partitions: 1 + self.rng.below(6) as i32,
            replication_factor: 1 + self.rng.below(3) as i16,
            assignments: Vec::new(),
            configs: Vec::new(),
        };
        let (records, _) = self.controller.create_topics(&[topic]);
        self.commit(records);
    }

    fn delete_topic(&mut self) {
        let names: Vec<String> = self
            .controller
            .image()
            .topics
            .values()
            .map(|t| t.name.clone())
            .collect();
        if names.is_empty() {
            return;
        }
        let name = names[self.rng.below(names.len() as u64) as usize].clone();
        let (records, _) = self.controller.delete_topics(&[name]);
        self.commit(records);
    }

    fn random_topic(&mut self) -> Option<String> {
        let names: Vec<String> = (self.controller.image().topics.values())
            .map(|t| t.name.clone())
            .collect();
        if names.is_empty() {
            return None;
        }
        Some(names[self.rng.below(names.len() as u64) as usize].clone())
    }

    fn grow_topic(&mut self) {
        let Some(topic) = self.random_topic() else {
            return;
        };
        let current = self
            .controller
            .image()
            .topic(&topic)
            .unwrap()
            .partitions
            .len() as i32;
        let change = NewPartitions {
            topic,
            total: current + 1 + self.rng.below(3) as i32,
            assignments: Vec::new(),
        };
        // Refused when too few brokers are unfenced for the topic's factor.
        let (records, _) = self.controller.create_partitions(&[change]);
        self.commit(records);
    }

    fn alter_configs(&mut self) {
        let Some(topic) = self.random_topic() else {
            return;
        };
        let value = self.rng.below(1_000).to_string();
        let change = ConfigChanges {
            resource: ConfigResource::Topic(topic),
            replace: self.rng.percent(30),
            set: vec![("retention.ms".into(), value)],
            remove: vec!["cleanup.policy".into()],
        };
        let (records, results) = self.controller.alter_configs(&[change]);
        assert_eq!(results, vec![Ok(())], "the topic exists");
        self.commit(records);
    }

    /// A partition's leader proposes a new in-sync set: some of its replicas, itself among
    /// them, now and then against a stale partition epoch or with a replica that may not join.
    /// Accepted or refused, the invariants must hold.
    fn alter_isr(&mut self) {
        let Some(topic) = self.random_topic() else {
            return;
        };
        let image = self.controller.image();
        let t = image.topic(&topic).unwrap();
        let index = self.rng.below(t.partitions.len() as u64) as i32;
        let Some(p) = t.partitions.get(&index).cloned() else {
            return;
        };
        let topic_id = t.topic_id;
        if p.leader == NO_LEADER {
            return;
        }
        let Some(broker_epoch) = self.brokers[&p.leader].epoch else {
            return;
        };
        let mut new_isr: Vec<i32> = p
            .replicas
            .iter()
            .copied()
            .filter(|&r| r == p.leader || self.rng.percent(60))
            .collect();
        if self.rng.percent(5) {
            new_isr.push(BROKERS + 1);
        }
        let stale = self.rng.percent(10);
        let proposal = AlterPartition {
            broker_id: p.leader,
            broker_epoch,
            topic_id,
            partition: index,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch - i32::from(stale),
            new_isr,
        };
        if let Ok((records, state)) = self.controller.alter_partition(&proposal) {
            assert!(!stale, "a stale partition epoch is refused");
            assert_eq!(state.partition_epoch, p.partition_epoch + 1);
            self.isr_changes += 1;
            self.commit(records);
        }
    }

    fn take_producer_ids(&mut self) {
        let id = 1 + self.rng.below(BROKERS as u64) as i32;
        let Some(epoch) = self.brokers[&id].epoch else {
            return;
        };
        if let Ok((records, block)) = self.controller.allocate_producer_ids(id, epoch) {
            self.commit(records);
            self.blocks.push(block);
        }
    }

    /// The active controller fails: the command it was deciding is lost (never committed),
    /// and a new controller replays the committed log and becomes active.
    fn fail_over(&mut self, now: i64) {
        let mut next = QuorumController::new(config());
        self.log.iter().for_each(|r| next.replay(r));
        next.become_active(now);
        self.controller = next;
        self.changed = true;
        // A command that was decided but not committed: dropped on the floor.
        let topic = NewTopic {
            name: "lost".into(),
            partitions: 1,
            replication_factor: 1,
            assignments: Vec::new(),
            configs: Vec::new(),
        };
        let _ = self.controller.create_topics(&[topic]);
    }

    fn check(&mut self) -> Result<(), String> {
        let image = self.controller.image();
        for resource in image.configs.keys() {
            if let ConfigResource::Topic(name) = resource
                && image.topic(name).is_none()
            {
                return Err(format!("configs of a topic that does not exist: {name}"));
            }
        }
        for topic in image.topics.values() {
            let indexes: Vec<i32> = topic.partitions.keys().copied().collect();
            if indexes != (0..indexes.len() as i32).collect::<Vec<_>>() {
                return Err(format!(
                    "{}'s partitions are not 0..n: {indexes:?}",
                    topic.name
                ));
            }
            for (&index, p) in &topic.partitions {
                let at = || format!("{}-{index} {p:?}", topic.name);
                if p.isr.is_empty() || !p.isr.iter().all(|r| p.replicas.contains(r)) {
                    return Err(format!("in-sync set outside the replicas: {}", at()));
                }
                if p.leader != NO_LEADER
                    && (!p.isr.contains(&p.leader) || !image.is_unfenced(p.leader))
                {
                    return Err(format!("leader not an unfenced in-sync replica: {}", at()));
                }
                let key = (topic.topic_id, index);
                let epochs = (p.leader_epoch, p.partition_epoch);
                if let Some(&(le, pe)) = self.last_epochs.get(&key)
                    && (epochs.0 < le || epochs.1 < pe)
                {
                    return Err(format!("epochs went back from {le}/{pe}: {}", at()));
                }
                self.last_epochs.insert(key, epochs);
                if p.leader != NO_LEADER {
                    let seen = self
                        .leaders
                        .insert((topic.topic_id, index, p.leader_epoch), p.leader);
                    if seen.is_some_and(|l| l != p.leader) {
                        return Err(format!("two leaders in epoch {}: {}", p.leader_epoch, at()));
                    }
                }
            }
        }
        let mut blocks = self.blocks.clone();
        blocks.sort();
        if blocks.windows(2).any(|w| w[0].0 + w[0].1 > w[1].0) {
            return Err("producer-id blocks overlap".into());
        }
        Ok(())
    }

    /// The whole committed log replayed from nothing gives the controller's image (checked
    /// every `REPLAY_CHECK_EVERY` steps and at the end: replaying is linear in the log).
    fn check_replay(&self) -> Result<(), String> {
        let mut replayed = MetadataImage::default();
        self.log.iter().for_each(|r| replayed.apply(r));
        if replayed != *self.controller.image() {
            return Err("the controller's image is not the log replayed".into());
        }
        Ok(())
    }

    fn check_settled(&self) -> Result<(), String> {
        let image = self.controller.image();
        if let Some(b) = image.brokers.values().find(|b| b.fenced) {
            return Err(format!("broker {} still fenced in the calm", b.broker_id));
        }
        for topic in image.topics.values() {
            if let Some((i, _)) = topic.partitions.iter().find(|(_, p)| p.leader == NO_LEADER) {
                return Err(format!("{}-{i} has no leader in the calm", topic.name));
            }
        }
        Ok(())
    }
}

/// The faults and commands of one seed, and the in-sync set changes accepted among them.
fn run(seed: u64) -> Result<(u64, u64), String> {
    let mut world = World::new(seed);
    for step in 0..STEPS {
        world
            .step(step, false)
            .map_err(|e| format!("seed {seed}, step {step}: {e}"))?;
    }
    for step in STEPS..STEPS + CALM_STEPS {
        world
            .step(step, true)
            .map_err(|e| format!("seed {seed}, calm step {step}: {e}"))?;
    }
    world
        .check_settled()
        .and_then(|()| world.check_replay())
        .map_err(|e| format!("seed {seed}: {e}"))?;
    Ok((world.events, world.isr_changes))
}

#[test]
fn every_seed_keeps_the_metadata_consistent_and_settles() {
    let seeds: Vec<u64> = match std::env::var("SLUICE_SIM_SEED") {
        Ok(s) => vec![s.parse().expect("SLUICE_SIM_SEED is a number")],
        Err(_) => {
            let n = std::env::var("SLUICE_SIM_SEEDS").map_or(32, |s| s.parse().expect("a number"));
            (0..n).collect()
        }
    };
    let mut failures = Vec::new();
    let (mut events, mut isr_changes) = (0, 0);
    for &seed in &seeds {
        match run(seed) {
            Ok((n, changes)) => {
                events += n;
                isr_changes += changes;
            }
            Err(e) => failures.push(format!(
                "{e}\n  replay: SLUICE_SIM_SEED={seed} cargo test -p sluice-controller --test simulation"
            )),
        }
    }
    eprintln!(
        "controller simulation: {} seeds, {} steps each, {events} faults and commands \
         ({isr_changes} in-sync set changes accepted), {} violations",
        seeds.len(),
        STEPS + CALM_STEPS,
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        seeds.len() < 4 || isr_changes > 0,
        "no AlterPartition was ever accepted: the simulation does not exercise it"
    );
}
