//! The controller's decisions, without a network or a log: every command's records are
//! replayed before the next, as the consensus layer will do, and a broker's image built from
//! the same records must equal the controller's.

use sluice_controller::{
    AlterPartition, BrokerHeartbeat, ConfigChanges, ConfigResource, ControllerCommand,
    ControllerConfig, ControllerError, ControllerReply, Endpoint, MetadataImage, MetadataRecord,
    NewPartitions, NewTopic, QuorumController, Registration,
};
use sluice_replication::NO_LEADER;
use std::collections::BTreeSet;
use uuid::Uuid;

/// A controller and every record it committed, replayed in order.
struct Cluster {
    controller: QuorumController,
    log: Vec<MetadataRecord>,
    epochs: Vec<i64>,
    /// Each broker's data directory, as it registers.
    directories: Vec<Uuid>,
}

impl Cluster {
    fn new(config: ControllerConfig) -> Cluster {
        let mut c = Cluster {
            controller: QuorumController::new(config),
            log: Vec::new(),
            epochs: vec![0; 4],
            directories: (0..4).map(Uuid::from_u128).collect(),
        };
        let records = c.controller.bootstrap("cluster-1");
        c.commit(records);
        c
    }

    fn commit(&mut self, records: Vec<MetadataRecord>) {
        for r in &records {
            self.controller.replay(r);
        }
        self.log.extend(records);
    }

    fn register(
        &mut self,
        broker: i32,
        incarnation: Uuid,
        now: i64,
    ) -> Result<i64, ControllerError> {
        let registration = Registration {
            broker_id: broker,
            incarnation_id: incarnation,
            directory_id: self.directories[broker as usize],
            endpoints: vec![Endpoint {
                name: "PLAINTEXT".into(),
                host: format!("127.0.0.{broker}"),
                port: 9092,
            }],
            rack: None,
        };
        let (records, epoch) = self.controller.register_broker(registration, now)?;
        self.commit(records);
        self.epochs[broker as usize] = epoch;
        Ok(epoch)
    }

    fn heartbeat(&mut self, broker: i32, now: i64) -> bool {
        let hb = BrokerHeartbeat {
            broker_id: broker,
            broker_epoch: self.epochs[broker as usize],
            caught_up: true,
            want_fence: false,
            want_shutdown: false,
        };
        let (records, reply) = self.controller.heartbeat(hb, now).unwrap();
        self.commit(records);
        reply.fenced
    }

    /// `broker` asks for a controlled shutdown; the controller's reply once committed.
    fn shut_down(&mut self, broker: i32, now: i64) -> sluice_controller::HeartbeatReply {
        let hb = BrokerHeartbeat {
            broker_id: broker,
            broker_epoch: self.epochs[broker as usize],
            caught_up: true,
            want_fence: false,
            want_shutdown: true,
        };
        let (records, reply) = self.controller.heartbeat(hb, now).unwrap();
        self.commit(records);
        reply
    }

    /// Three brokers, registered and unfenced.
    fn three(config: ControllerConfig) -> Cluster {
        let mut c = Cluster::new(config);
        for b in 1..=3 {
            c.register(b, Uuid::new_v4(), 0).unwrap();
            assert!(!c.heartbeat(b, 0), "caught up, so unfenced");
        }
        c
    }

    fn tick(&mut self, now: i64) {
        loop {
            let records = self.controller.tick(now);
            if records.is_empty() {
                return;
            }
            self.commit(records);
        }
    }

    fn create(
        &mut self,
        name: &str,
        partitions: i32,
        factor: i16,
    ) -> Result<Uuid, ControllerError> {
        let topic = NewTopic {
            name: name.into(),
            partitions,
            replication_factor: factor,
            assignments: Vec::new(),
            configs: vec![("retention.ms".into(), "1000".into())],
        };
        let (records, mut results) = self.controller.create_topics(&[topic]);
        self.commit(records);
        results.remove(0).map(|created| created.topic_id)
    }

    fn leaders(&self, topic: &str) -> Vec<i32> {
        let t = self.controller.image().topic(topic).unwrap();
        t.partitions.values().map(|p| p.leader).collect()
    }

    fn replayed(&self) -> MetadataImage {
        let mut image = MetadataImage::default();
        self.log.iter().for_each(|r| image.apply(r));
        image
    }
}

fn replicated() -> ControllerConfig {
    ControllerConfig {
        replication_factor_max: 3,
        ..ControllerConfig::default()
    }
}

#[test]
fn a_registered_broker_is_fenced_until_it_has_caught_up() {
    let mut c = Cluster::new(ControllerConfig::default());
    c.register(1, Uuid::new_v4(), 0).unwrap();
    assert!(c.controller.image().brokers[&1].fenced);
    let hb = BrokerHeartbeat {
        broker_id: 1,
        broker_epoch: c.epochs[1],
        caught_up: false,
        want_fence: false,
        want_shutdown: false,
    };
    let (records, reply) = c.controller.heartbeat(hb, 10).unwrap();
    assert!(records.is_empty() && reply.fenced);
    assert!(!c.heartbeat(1, 20));
    assert_eq!(c.controller.image().unfenced_brokers(), [1]);
    assert_eq!(
        c.controller.image().cluster_id.as_deref(),
        Some("cluster-1")
    );
}

#[test]
fn topics_spread_round_robin_over_the_unfenced_brokers() {
    let mut c = Cluster::three(ControllerConfig::default());
    c.create("orders", 12, -1).unwrap();
    let leaders = c.leaders("orders");
    for b in 1..=3 {
        assert_eq!(
            leaders.iter().filter(|&&l| l == b).count(),
            4,
            "{leaders:?}"
        );
    }
    // The next topic starts one broker further on.
    c.create("payments", 1, 1).unwrap();
    assert_ne!(c.leaders("payments")[0], leaders[0]);
    let image = c.controller.image();
    let orders = image.topic("orders").unwrap();
    assert_ne!(orders.topic_id, image.topic("payments").unwrap().topic_id);
    assert_eq!(image.partition("orders", 11).unwrap().leader_epoch, 0);
    assert_eq!(
        c.replayed(),
        *image,
        "a broker's image equals the controller's"
    );
}

#[test]
fn create_topics_refuses_what_kafka_refuses() {
    let mut c = Cluster::three(ControllerConfig::default());
    c.create("t", 3, 1).unwrap();
    assert_eq!(
        c.create("t", 3, 1),
        Err(ControllerError::TopicExists("t".into()))
    );
    assert!(matches!(
        c.create("bad name", 1, 1),
        Err(ControllerError::InvalidTopic(_))
    ));
    assert_eq!(
        c.create("zero", 0, 1),
        Err(ControllerError::InvalidPartitions(0))
    );
    assert!(
        matches!(
            c.create("rf4", 1, 4),
            Err(ControllerError::InvalidReplicationFactor(_))
        ),
        "a replication factor above the brokers available is refused, never lowered"
    );
    c.create("rf3", 1, 3).unwrap();
    let twice = NewTopic {
        name: "twice".into(),
        partitions: 1,
        replication_factor: 1,
        assignments: Vec::new(),
        configs: Vec::new(),
    };
    let (records, results) = c.controller.create_topics(&[twice.clone(), twice]);
    assert!(results[0].is_ok() && results[1].is_err());
    c.commit(records);
    let assigned = NewTopic {
        name: "assigned".into(),
        partitions: -1,
        replication_factor: -1,
        assignments: vec![vec![2], vec![9]],
        configs: Vec::new(),
    };
    let (_, results) = c.controller.create_topics(&[assigned]);
    assert!(
        matches!(&results[0], Err(ControllerError::InvalidReplicaAssignment(m)) if m.contains('9'))
    );
    let mut c = Cluster::three(replicated());
    assert!(matches!(
        c.create("rf4", 1, 4),
        Err(ControllerError::InvalidReplicationFactor(_))
    ));
}

#[test]
fn a_silent_broker_is_fenced_and_its_partitions_wait_for_it() {
    let mut c = Cluster::three(ControllerConfig::default());
    c.create("t", 3, 1).unwrap();
    let before = c.controller.image().topic("t").unwrap().clone();
    // Brokers 1 and 3 keep heartbeating; broker 2 falls silent.
    for now in (1_000..=9_000).step_by(1_000) {
        c.heartbeat(1, now);
        c.heartbeat(3, now);
        c.tick(now);
    }
    assert!(
        !c.controller.image().brokers[&2].fenced,
        "within the session"
    );
    c.heartbeat(1, 9_500);
    c.heartbeat(3, 9_500);
    c.tick(9_500);
    let image = c.controller.image();
    assert!(image.brokers[&2].fenced);
    let led_by_2: Vec<i32> = before
        .partitions
        .iter()
        .filter(|(_, p)| p.leader == 2)
        .map(|(&i, _)| i)
        .collect();
    assert_eq!(led_by_2.len(), 1);
    let p = image.partition("t", led_by_2[0]).unwrap();
    assert_eq!(
        (p.leader, p.leader_epoch, p.isr.clone()),
        (NO_LEADER, 0, vec![2])
    );
    assert_eq!(c.controller.leaderless_partitions(), 1);
    // Back and caught up: it leads its partition again, in a new epoch.
    assert!(!c.heartbeat(2, 10_000));
    let p = c.controller.image().partition("t", led_by_2[0]).unwrap();
    assert_eq!((p.leader, p.leader_epoch), (2, 1));
    assert_eq!(c.replayed(), *c.controller.image());
}

#[test]
fn fencing_moves_leadership_to_another_in_sync_replica() {
    let mut c = Cluster::three(replicated());
    c.create("r", 6, 3).unwrap();
    let reply = c.shut_down(1, 100);
    assert!(
        reply.fenced && reply.shutdown_ready,
        "controlled shutdown: it leads nothing"
    );
    let image = c.controller.image();
    for p in image.topic("r").unwrap().partitions.values() {
        assert_ne!(p.leader, 1);
        assert!(!p.isr.contains(&1), "{p:?}");
        assert!(p.isr.contains(&p.leader));
    }
    assert!(image.brokers[&1].fenced);
}

#[test]
fn a_new_incarnation_gets_a_new_epoch_and_the_old_one_is_stale() {
    let mut c = Cluster::three(ControllerConfig::default());
    c.create("t", 3, 1).unwrap();
    let old_epoch = c.epochs[2];
    // Another process with the same id while the first is alive: refused.
    assert_eq!(
        c.register(2, Uuid::new_v4(), 100),
        Err(ControllerError::DuplicateBrokerRegistration(2))
    );
    // After its session expired (it crashed), a restart registers anew.
    c.heartbeat(1, 9_500);
    c.heartbeat(3, 9_500);
    let new_epoch = c.register(2, Uuid::new_v4(), 9_500).unwrap();
    assert!(new_epoch > old_epoch);
    assert!(c.controller.image().brokers[&2].fenced);
    let stale = BrokerHeartbeat {
        broker_id: 2,
        broker_epoch: old_epoch,
        caught_up: true,
        want_fence: false,
        want_shutdown: false,
    };
    assert!(matches!(
        c.controller.heartbeat(stale, 9_600),
        Err(ControllerError::StaleBrokerEpoch { .. })
    ));
    // Its partition was moved off the old incarnation with a new epoch; the new one leads it
    // again once unfenced, in yet another epoch: no epoch is ever resumed.
    assert!(!c.heartbeat(2, 9_700));
    let image = c.controller.image();
    let p = image
        .topic("t")
        .unwrap()
        .partitions
        .values()
        .find(|p| p.replicas == [2])
        .unwrap();
    assert_eq!((p.leader, p.leader_epoch), (2, 1));
}

#[test]
fn producer_id_blocks_never_overlap() {
    let mut c = Cluster::three(ControllerConfig::default());
    let (records, first) = c.controller.allocate_producer_ids(1, c.epochs[1]).unwrap();
    c.commit(records);
    let (records, second) = c.controller.allocate_producer_ids(2, c.epochs[2]).unwrap();
    c.commit(records);
    assert_eq!(first, (0, 1_000));
    assert_eq!(second, (1_000, 1_000));
    assert!(c.controller.allocate_producer_ids(3, 999).is_err());
    assert_eq!(c.replayed().next_producer_id, 2_000);
    // Ids a data directory handed out before the metadata log are never handed out again;
    // a reservation below what is already taken changes nothing.
    let records = c.controller.reserve_producer_ids(5_500);
    c.commit(records);
    assert!(c.controller.reserve_producer_ids(100).is_empty());
    let (_, third) = c.controller.allocate_producer_ids(3, c.epochs[3]).unwrap();
    assert_eq!(third, (5_500, 1_000));
}

#[test]
fn deleted_topics_leave_the_image_with_their_configs() {
    let mut c = Cluster::three(ControllerConfig::default());
    c.create("gone", 2, 1).unwrap();
    assert!(!c.controller.image().configs.is_empty());
    let names = vec!["gone".to_string(), "gone".to_string(), "never".to_string()];
    let (records, results) = c.controller.delete_topics(&names);
    assert!(results[0].is_ok() && results[1].is_err() && results[2].is_err());
    c.commit(records);
    assert!(c.controller.image().topic("gone").is_none());
    assert!(c.controller.image().configs.is_empty());
    c.create("gone", 1, 1).unwrap();
}

#[test]
fn a_newly_active_controller_gives_every_broker_a_full_session() {
    let mut c = Cluster::three(ControllerConfig::default());
    // A controller that replayed the same log, taking over at 20 s: nobody has heartbeated to
    // it, yet nobody is fenced before a session has passed.
    let mut next = QuorumController::new(ControllerConfig::default());
    c.log.iter().for_each(|r| next.replay(r));
    next.become_active(20_000);
    assert!(!next.sessions_expired(28_000));
    assert!(next.tick(28_000).is_empty());
    assert!(
        next.sessions_expired(29_500),
        "the look agrees with the decision"
    );
    assert!(!next.tick(29_500).is_empty());
    c.controller = next;
}

#[test]
fn a_restart_that_took_the_controller_with_it_registers_at_once() {
    // A single node restarted: its controller replayed the log and became active again; the
    // broker's new incarnation must not wait out a session only assumed for its old one.
    let c = Cluster::three(ControllerConfig::default());
    let mut next = QuorumController::new(ControllerConfig::default());
    c.log.iter().for_each(|r| next.replay(r));
    next.become_active(20_000);
    let registration = Registration {
        broker_id: 2,
        incarnation_id: Uuid::new_v4(),
        directory_id: Uuid::new_v4(),
        endpoints: Vec::new(),
        rack: None,
    };
    let (records, epoch) = next.register_broker(registration.clone(), 20_100).unwrap();
    assert!(epoch > c.epochs[2]);
    records.iter().for_each(|r| next.replay(r));
    // Once heard from, the new incarnation's session keeps a third process out.
    let intruder = Registration {
        incarnation_id: Uuid::new_v4(),
        ..registration
    };
    let heartbeat = BrokerHeartbeat {
        broker_id: 2,
        broker_epoch: epoch,
        caught_up: true,
        want_fence: false,
        want_shutdown: false,
    };
    let (records, _) = next.heartbeat(heartbeat, 20_200).unwrap();
    records.iter().for_each(|r| next.replay(r));
    assert_eq!(
        next.register_broker(intruder, 20_300),
        Err(ControllerError::DuplicateBrokerRegistration(2))
    );
}

#[test]
fn records_round_trip_and_damaged_bytes_are_refused() {
    let c = Cluster::three(replicated());
    let mut c = c;
    c.create("encoded", 4, 3).unwrap();
    let (records, _) = c.controller.allocate_producer_ids(1, c.epochs[1]).unwrap();
    c.commit(records);
    let (records, _) = c.controller.delete_topics(&["encoded".to_string()]);
    c.commit(records);
    assert!(c.log.len() > 10);
    for record in &c.log {
        let bytes = record.encode();
        assert_eq!(&MetadataRecord::decode(&bytes).unwrap(), record);
        // Every shorter prefix, and a trailing byte, are refused, never misread.
        for cut in 0..bytes.len() {
            assert!(
                MetadataRecord::decode(&bytes[..cut]).is_err(),
                "{record:?} cut at {cut}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(MetadataRecord::decode(&longer).is_err());
    }
    let mut wrong_version = c.log[0].encode();
    wrong_version[0] = 9;
    assert!(MetadataRecord::decode(&wrong_version).is_err());
    // A claimed length of four billion entries allocates nothing: the bytes run out first.
    let hostile = [1u8, 3, 0xff, 0xff, 0xff, 0xff, 0x0f];
    assert!(MetadataRecord::decode(&hostile).is_err());
    assert!(MetadataRecord::decode(&vec![1u8; 2 << 20]).is_err());
}

#[test]
fn an_image_rebuilt_from_its_snapshot_records_is_the_same_image() {
    let mut c = Cluster::three(replicated());
    c.create("a", 5, 3).unwrap();
    c.create("b", 2, 1).unwrap();
    let (records, _) = c.controller.allocate_producer_ids(2, c.epochs[2]).unwrap();
    c.commit(records);
    c.heartbeat(1, 9_500);
    c.heartbeat(2, 9_500);
    c.tick(9_500); // broker 3 fenced: leaderships moved, epochs raised
    assert!(c.controller.image().brokers[&3].fenced);
    let mut rebuilt = MetadataImage::default();
    for record in c.controller.image().to_records() {
        rebuilt.apply(&MetadataRecord::decode(&record.encode()).unwrap());
    }
    assert_eq!(rebuilt, *c.controller.image());
}

#[test]
fn create_partitions_grows_a_topic_round_robin_and_refuses_what_kafka_refuses() {
    let mut c = Cluster::three(ControllerConfig::default());
    let id = c.create("grow", 2, 1).unwrap();
    let grow = |topic: &str, total: i32, assignments: Vec<Vec<i32>>| NewPartitions {
        topic: topic.into(),
        total,
        assignments,
    };
    let (records, results) = c
        .controller
        .create_partitions(&[grow("grow", 5, Vec::new())]);
    assert_eq!(results, vec![Ok(())]);
    c.commit(records);
    let image = c.controller.image().clone();
    let topic = image.topic("grow").unwrap();
    assert_eq!(topic.topic_id, id);
    assert_eq!(
        topic.partitions.keys().copied().collect::<Vec<_>>(),
        [0, 1, 2, 3, 4]
    );
    let leaders: BTreeSet<i32> = topic.partitions.values().map(|p| p.leader).collect();
    assert_eq!(leaders.len(), 3, "new partitions spread over the brokers");
    assert_eq!(c.replayed(), image);

    let refused = |c: &mut Cluster, change: NewPartitions| {
        let (records, mut results) = c.controller.create_partitions(&[change]);
        assert!(records.is_empty());
        results.remove(0).unwrap_err()
    };
    assert!(matches!(
        refused(&mut c, grow("grow", 5, Vec::new())),
        ControllerError::InvalidPartitions(5)
    ));
    assert!(matches!(
        refused(&mut c, grow("nope", 9, Vec::new())),
        ControllerError::UnknownTopic(_)
    ));
    assert!(matches!(
        refused(&mut c, grow("grow", 7, vec![vec![1]])),
        ControllerError::InvalidReplicaAssignment(_)
    ));
    assert!(matches!(
        refused(&mut c, grow("grow", 6, vec![vec![9]])),
        ControllerError::InvalidReplicaAssignment(_)
    ));
    // Assigned replicas are taken as given; a topic named twice is refused the second time.
    let (records, results) = c
        .controller
        .create_partitions(&[grow("grow", 6, vec![vec![2]]), grow("grow", 7, Vec::new())]);
    assert_eq!(results[0], Ok(()));
    assert!(matches!(
        results[1],
        Err(ControllerError::InvalidRequest(_))
    ));
    c.commit(records);
    assert_eq!(c.controller.image().partition("grow", 5).unwrap().leader, 2);
}

#[test]
fn configs_are_set_removed_and_replaced_as_records() {
    let mut c = Cluster::three(ControllerConfig::default());
    c.create("conf", 1, 1).unwrap();
    let topic = ConfigResource::Topic("conf".into());
    let change = |replace: bool, set: &[(&str, &str)], remove: &[&str]| ConfigChanges {
        resource: topic.clone(),
        replace,
        set: set
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
        remove: remove.iter().map(|n| n.to_string()).collect(),
    };
    let configs = |c: &Cluster| c.controller.image().configs.get(&topic).cloned();
    let apply = |c: &mut Cluster, changes: ConfigChanges| {
        let (records, results) = c.controller.alter_configs(&[changes]);
        assert_eq!(results, vec![Ok(())]);
        c.commit(records);
    };
    apply(
        &mut c,
        change(
            false,
            &[("retention.ms", "1000"), ("cleanup.policy", "compact")],
            &[],
        ),
    );
    apply(&mut c, change(false, &[], &["cleanup.policy", "never.set"]));
    let expected = [("retention.ms".to_string(), "1000".to_string())].into();
    assert_eq!(configs(&c), Some(expected));
    // AlterConfigs replaces the whole set.
    apply(&mut c, change(true, &[("segment.bytes", "1048576")], &[]));
    let expected = [("segment.bytes".to_string(), "1048576".to_string())].into();
    assert_eq!(configs(&c), Some(expected));
    apply(&mut c, change(true, &[], &[]));
    assert_eq!(configs(&c), None);
    assert_eq!(c.replayed(), c.controller.image().clone());
    // Only resources that exist.
    let unknown = ConfigChanges {
        resource: ConfigResource::Topic("nope".into()),
        ..change(false, &[("retention.ms", "1")], &[])
    };
    let (records, results) = c.controller.alter_configs(&[unknown]);
    assert!(records.is_empty());
    assert!(matches!(results[0], Err(ControllerError::UnknownTopic(_))));
    let broker = ConfigChanges {
        resource: ConfigResource::Broker(9),
        ..change(false, &[("log.retention.ms", "1")], &[])
    };
    let (_, results) = c.controller.alter_configs(&[broker]);
    assert!(matches!(
        results[0],
        Err(ControllerError::InvalidRequest(_))
    ));
}

/// A leader's AlterPartition for partition `index` of `topic`, as the controller answers it
/// (its records committed when accepted).
fn alter(
    c: &mut Cluster,
    (topic, index): (&str, i32),
    broker: i32,
    epochs: (i32, i32),
    new_isr: &[i32],
) -> Result<sluice_controller::PartitionState, ControllerError> {
    let topic_id = c.controller.image().topic(topic).unwrap().topic_id;
    let proposal = AlterPartition {
        broker_id: broker,
        broker_epoch: c.epochs[broker as usize],
        topic_id,
        partition: index,
        leader_epoch: epochs.0,
        partition_epoch: epochs.1,
        new_isr: new_isr.to_vec(),
    };
    let (records, reply) = c
        .controller
        .execute(ControllerCommand::AlterPartition(proposal), 0);
    c.commit(records);
    match reply {
        ControllerReply::PartitionAltered(state) => Ok(state),
        ControllerReply::Refused(e) => Err(e),
        other => panic!("unexpected reply {other:?}"),
    }
}

#[test]
fn a_leader_shrinks_and_expands_its_in_sync_set_against_the_partition_epoch() {
    let mut c = Cluster::three(replicated());
    c.create("isr", 1, 3).unwrap();
    let p = c.controller.image().partition("isr", 0).unwrap().clone();
    let (leader, followers) = (p.leader, p.replicas[1..].to_vec());
    let shrunk = alter(
        &mut c,
        ("isr", 0),
        leader,
        (p.leader_epoch, p.partition_epoch),
        &[leader],
    );
    let shrunk = shrunk.unwrap();
    assert_eq!(shrunk.isr, vec![leader]);
    assert_eq!(shrunk.partition_epoch, p.partition_epoch + 1);
    assert_eq!(shrunk.leader_epoch, p.leader_epoch, "the leader stays");
    let now = c.controller.image().partition("isr", 0).unwrap().clone();
    assert_eq!(now.isr, vec![leader], "the record was replayed");
    // A proposal against the old partition epoch is stale.
    let stale = alter(
        &mut c,
        ("isr", 0),
        leader,
        (p.leader_epoch, p.partition_epoch),
        &p.isr,
    );
    assert!(
        matches!(stale, Err(ControllerError::InvalidUpdateVersion { .. })),
        "{stale:?}"
    );
    // Back to all three, in replica order whatever order the leader names them.
    let mut everyone = followers.clone();
    everyone.push(leader);
    let grown = alter(
        &mut c,
        ("isr", 0),
        leader,
        (now.leader_epoch, now.partition_epoch),
        &everyone,
    );
    assert_eq!(grown.unwrap().isr, p.replicas);
    assert_eq!(
        c.replayed(),
        *c.controller.image(),
        "brokers replay the same image"
    );
}

#[test]
fn alter_partition_refuses_what_kafka_refuses() {
    let mut c = Cluster::three(replicated());
    c.create("isr", 1, 3).unwrap();
    let p = c.controller.image().partition("isr", 0).unwrap().clone();
    let epochs = (p.leader_epoch, p.partition_epoch);
    let follower = p.replicas[1];
    let not_leader = alter(&mut c, ("isr", 0), follower, epochs, &p.isr);
    assert_eq!(not_leader, Err(ControllerError::NotLeaderOrFollower));
    let old_epoch = alter(
        &mut c,
        ("isr", 0),
        p.leader,
        (epochs.0 - 1, epochs.1),
        &p.isr,
    );
    assert!(
        matches!(old_epoch, Err(ControllerError::FencedLeaderEpoch { .. })),
        "{old_epoch:?}"
    );
    let without_leader = alter(&mut c, ("isr", 0), p.leader, epochs, &p.replicas[1..]);
    assert!(
        matches!(without_leader, Err(ControllerError::InvalidRequest(_))),
        "{without_leader:?}"
    );
    let stranger = alter(&mut c, ("isr", 0), p.leader, epochs, &[p.leader, 9]);
    assert_eq!(stranger, Err(ControllerError::IneligibleReplica(9)));
    let missing = alter(&mut c, ("isr", 7), p.leader, epochs, &[p.leader]);
    assert!(
        matches!(missing, Err(ControllerError::UnknownTopicId(..))),
        "{missing:?}"
    );
    // From an old incarnation of the leader.
    c.epochs[p.leader as usize] -= 1;
    let stale_broker = alter(&mut c, ("isr", 0), p.leader, epochs, &[p.leader]);
    assert!(
        matches!(stale_broker, Err(ControllerError::StaleBrokerEpoch { .. })),
        "{stale_broker:?}"
    );
    assert_eq!(
        c.controller.image().partition("isr", 0),
        Some(&p),
        "nothing changed"
    );
}

#[test]
fn a_fenced_replica_cannot_rejoin_the_in_sync_set() {
    let mut c = Cluster::three(replicated());
    c.create("isr", 1, 3).unwrap();
    let p = c.controller.image().partition("isr", 0).unwrap().clone();
    let follower = p.replicas[1];
    let epochs = (p.leader_epoch, p.partition_epoch);
    alter(&mut c, ("isr", 0), p.leader, epochs, &[p.leader]).unwrap();
    // The follower's broker goes silent and is fenced; the others heartbeat on.
    for b in (1..=3).filter(|&b| b != follower) {
        c.heartbeat(b, 59_000);
    }
    c.tick(60_000);
    assert!(c.controller.image().brokers[&follower].fenced);
    let now = c.controller.image().partition("isr", 0).unwrap().clone();
    assert_eq!(now.leader, p.leader);
    let epochs = (now.leader_epoch, now.partition_epoch);
    let rejoin = alter(&mut c, ("isr", 0), p.leader, epochs, &[p.leader, follower]);
    assert_eq!(rejoin, Err(ControllerError::IneligibleReplica(follower)));
}

/// The leader alone in sync, then gone: without unclean election the partition waits for it;
/// with it, a live replica outside the in-sync set leads, alone in a new set, in a new epoch.
#[test]
fn unclean_election_takes_a_replica_outside_the_in_sync_set_only_when_allowed() {
    for unclean in [false, true] {
        let config = ControllerConfig {
            unclean_leader_election_enable: unclean,
            ..replicated()
        };
        let mut c = Cluster::three(config);
        c.create("u", 1, 3).unwrap();
        let p = c.controller.image().partition("u", 0).unwrap().clone();
        let epochs = (p.leader_epoch, p.partition_epoch);
        alter(&mut c, ("u", 0), p.leader, epochs, &[p.leader]).unwrap();
        c.shut_down(p.leader, 100);
        let after = c.controller.image().partition("u", 0).unwrap().clone();
        if unclean {
            let first_other = *p.replicas.iter().find(|&&r| r != p.leader).unwrap();
            assert_eq!(after.leader, first_other, "{after:?}");
            assert_eq!(after.isr, vec![first_other]);
            assert_eq!(after.leader_epoch, p.leader_epoch + 1);
        } else {
            assert_eq!(after.leader, NO_LEADER, "{after:?}");
            assert_eq!(after.isr, vec![p.leader]);
            // Turned on for the topic, the config elects at once, as Kafka's does.
            let turned_on = ConfigChanges {
                resource: ConfigResource::Topic("u".into()),
                replace: false,
                set: vec![("unclean.leader.election.enable".into(), "true".into())],
                remove: Vec::new(),
            };
            let (records, results) = c.controller.alter_configs(&[turned_on]);
            assert_eq!(results, vec![Ok(())]);
            c.commit(records);
            let elected = c.controller.image().partition("u", 0).unwrap();
            let first_other = *p.replicas.iter().find(|&&r| r != p.leader).unwrap();
            assert_eq!(
                (elected.leader, elected.isr.clone()),
                (first_other, vec![first_other])
            );
        }
        assert_eq!(c.replayed(), *c.controller.image());
    }
}

/// A broker back with another data directory holds nothing of what it held: it leaves every
/// in-sync set it was in, even as the last member, so it is not elected to lead data it no
/// longer has (the partition waits for an unclean election); a partition whose only replica
/// it is keeps it, as nothing else holds anything.
#[test]
fn a_broker_back_without_its_data_is_not_elected_for_what_it_held() {
    for lost in [false, true] {
        let mut c = Cluster::three(replicated());
        c.create("r", 1, 3).unwrap();
        let p = c.controller.image().partition("r", 0).unwrap().clone();
        let victim = p.leader;
        let single = NewTopic {
            name: "single".into(),
            partitions: -1,
            replication_factor: -1,
            assignments: vec![vec![victim]],
            configs: Vec::new(),
        };
        let (records, _) = c.controller.create_topics(&[single]);
        c.commit(records);
        // The leader alone in sync, then stopped.
        let epochs = (p.leader_epoch, p.partition_epoch);
        alter(&mut c, ("r", 0), victim, epochs, &[victim]).unwrap();
        c.shut_down(victim, 100);
        if lost {
            c.directories[victim as usize] = Uuid::new_v4();
        }
        c.register(victim, Uuid::new_v4(), 200).unwrap();
        assert!(!c.heartbeat(victim, 300), "back and unfenced");
        let image = c.controller.image();
        let after = image.partition("r", 0).unwrap();
        let alone = image.partition("single", 0).unwrap();
        if lost {
            assert_eq!(
                (after.leader, after.isr.clone()),
                (NO_LEADER, vec![]),
                "{after:?}"
            );
            assert_eq!(c.controller.leaderless_partitions(), 1);
        } else {
            assert_eq!((after.leader, after.isr.clone()), (victim, vec![victim]));
        }
        assert_eq!((alone.leader, alone.isr.clone()), (victim, vec![victim]));
        assert_eq!(
            image.brokers[&victim].directory_id,
            Some(c.directories[victim as usize])
        );
        assert_eq!(c.replayed(), *c.controller.image());
    }
}
