//! The replication rules one at a time, on the simulation's in-memory log: what the leader
//! answers a fetch, when its high watermark moves, how a follower truncates, what the
//! controller accepts. The simulation (`simulation.rs`) puts them together under faults.

// Shared with `simulation.rs`; these tests use only its log.
#[allow(dead_code)]
mod sim;

use sim::log::ModelLog;
use sluice_replication::{
    AlterPartitionRequest, Effect, FetchAnswer, FetchData, FetchRequest, FetchResponse, Follower,
    FollowerConfig, Leader, LeaderConfig, PartitionRegistration, ReplicationError,
};

fn leader_log(epochs: &[(i32, i64)]) -> ModelLog {
    let mut log = ModelLog::default();
    for (i, &(epoch, count)) in epochs.iter().enumerate() {
        log.become_leader(epoch);
        log.append_as_leader(epoch, count, i as u64);
    }
    log.flush(usize::MAX);
    log
}

fn fetch(replica_id: i32, epoch: i32, offset: i64, last: Option<i32>) -> FetchRequest {
    FetchRequest {
        request_id: 1,
        replica_id,
        current_leader_epoch: epoch,
        fetch_offset: offset,
        last_fetched_epoch: last,
    }
}

fn leader_of(log: &ModelLog, epoch: i32, min_insync: usize) -> Leader {
    let mut registration = PartitionRegistration::new(vec![1, 2, 3]);
    registration.leader_epoch = epoch;
    let config = LeaderConfig {
        min_insync_replicas: min_insync,
        ..LeaderConfig::default()
    };
    Leader::new(1, registration, log, 0, log.durable_end(), 0, config)
}

#[test]
fn the_high_watermark_waits_for_every_in_sync_follower_to_report() {
    let log = leader_log(&[(0, 10)]);
    let mut leader = leader_of(&log, 0, 2);
    let (answer, effects) = leader.on_fetch(&fetch(2, 0, 10, Some(0)), &log, 1);
    assert_eq!(answer, FetchAnswer::Read { offset: 10 });
    assert!(effects.is_empty(), "replica 3 has not reported yet");
    let (_, effects) = leader.on_fetch(&fetch(3, 0, 6, Some(0)), &log, 2);
    assert_eq!(effects, [Effect::AdvanceHighWatermark(6)]);
    assert_eq!(leader.acks_all_outcome(6), Some(Ok(())));
    assert_eq!(leader.acks_all_outcome(7), None);
}

#[test]
fn a_fetch_in_another_epoch_or_past_a_divergence_is_answered_as_kafka_does() {
    let log = leader_log(&[(0, 10), (3, 5)]);
    let mut leader = leader_of(&log, 3, 1);
    let refused = |a: FetchAnswer| matches!(a, FetchAnswer::Refused(_));
    let (a, _) = leader.on_fetch(&fetch(2, 2, 0, None), &log, 0);
    assert_eq!(
        a,
        FetchAnswer::Refused(ReplicationError::FencedLeaderEpoch {
            request: 2,
            current: 3
        })
    );
    let (a, _) = leader.on_fetch(&fetch(2, 4, 0, None), &log, 0);
    assert!(matches!(
        a,
        FetchAnswer::Refused(ReplicationError::UnknownLeaderEpoch { .. })
    ));
    let (a, _) = leader.on_fetch(&fetch(9, 3, 0, None), &log, 0);
    assert!(refused(a), "not a replica");
    // The follower wrote epoch 0 up to 12; the leader's epoch 0 ended at 10.
    let (a, effects) = leader.on_fetch(&fetch(2, 3, 12, Some(0)), &log, 0);
    assert_eq!(
        a,
        FetchAnswer::Diverging {
            epoch: 0,
            end_offset: 10
        }
    );
    assert!(effects.is_empty(), "a diverging fetch is no progress");
    // It knows an epoch 2 the leader never had: the newest below, epoch 0, ended at 10.
    let (a, _) = leader.on_fetch(&fetch(2, 3, 11, Some(2)), &log, 0);
    assert_eq!(
        a,
        FetchAnswer::Diverging {
            epoch: 0,
            end_offset: 10
        }
    );
    // Past the end in the leader's own epoch: the divergence is found first, as in Kafka.
    let (a, _) = leader.on_fetch(&fetch(2, 3, 16, Some(3)), &log, 0);
    assert_eq!(
        a,
        FetchAnswer::Diverging {
            epoch: 3,
            end_offset: 15
        }
    );
    let (a, _) = leader.on_fetch(&fetch(2, 3, 16, None), &log, 0);
    assert!(matches!(
        a,
        FetchAnswer::Refused(ReplicationError::OffsetOutOfRange { .. })
    ));
}

#[test]
fn a_lagging_follower_is_proposed_out_and_a_caught_up_one_back_in() {
    let log = leader_log(&[(0, 10)]);
    let mut leader = leader_of(&log, 0, 1);
    leader.on_fetch(&fetch(2, 0, 10, Some(0)), &log, 100);
    // Replica 3 never fetches: after replica.lag.time.max.ms it is proposed out.
    assert!(leader.tick(&log, 30_000).is_empty());
    let effects = leader.tick(&log, 30_001);
    let proposal = match &effects[..] {
        [Effect::AlterPartition(p)] => p.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(proposal.new_isr, [1, 2]);
    let mut agreed = leader.registration().clone();
    agreed.isr = vec![1, 2];
    agreed.partition_epoch += 1;
    leader.on_alter_partition_response(&proposal, Ok(agreed));
    assert_eq!(leader.isr(), [1, 2]);
    // Back at the high watermark, it is proposed in.
    let (_, effects) = leader.on_fetch(&fetch(3, 0, 10, Some(0)), &log, 30_100);
    assert!(matches!(&effects[..], [Effect::AlterPartition(p)] if p.new_isr == [1, 2, 3]));
}

#[test]
fn acks_all_needs_min_insync_replicas_before_and_after_the_append() {
    let log = leader_log(&[(0, 10)]);
    let mut registration = PartitionRegistration::new(vec![1, 2, 3]);
    registration.isr = vec![1];
    let config = LeaderConfig {
        min_insync_replicas: 2,
        ..LeaderConfig::default()
    };
    let leader = Leader::new(1, registration, &log, 10, 10, 0, config);
    assert_eq!(
        leader.check_acks_all(),
        Err(ReplicationError::NotEnoughReplicas { isr: 1, min: 2 })
    );
    assert_eq!(
        leader.acks_all_outcome(10),
        Some(Err(ReplicationError::NotEnoughReplicasAfterAppend {
            isr: 1,
            min: 2
        }))
    );
}

fn follower_log(epochs: &[(i32, i64)]) -> ModelLog {
    let mut log = ModelLog::default();
    for (i, &(epoch, count)) in epochs.iter().enumerate() {
        log.append_as_follower(&[sim::log::Batch {
            base: log.end(),
            last: log.end() + count - 1,
            epoch,
            id: 100 + i as u64,
        }]);
    }
    log.flush(usize::MAX);
    log
}

fn answered(follower: &mut Follower, log: &ModelLog, data: FetchData) -> Vec<Effect> {
    let request = match &follower.tick(log, 0)[..] {
        [Effect::SendFetch(r)] => r.clone(),
        other => panic!("{other:?}"),
    };
    let response = FetchResponse {
        request_id: request.request_id,
        result: Ok(data),
    };
    follower.on_fetch_response(&response, log, 0)
}

fn data(diverging_epoch: Option<(i32, i64)>, records: Option<(i64, i64)>) -> FetchData {
    FetchData {
        high_watermark: 5,
        log_start_offset: 0,
        diverging_epoch,
        records,
    }
}

#[test]
fn a_follower_truncates_where_its_log_and_the_leaders_part() {
    let config = FollowerConfig::default();
    let log = follower_log(&[(0, 10), (2, 5)]);
    let mut follower = Follower::new(2, 1, 5, 1, 0, config);
    // The leader has epoch 2 up to 12: the logs agree to 12.
    assert_eq!(
        answered(&mut follower, &log, data(Some((2, 12)), None)),
        [Effect::TruncateTo(12)]
    );
    // The leader's newest at or below 2 is 1, which this log never had: cut to where its
    // own newest below ended (epoch 0 at 10), and compare again.
    let mut follower = Follower::new(2, 1, 5, 1, 0, config);
    assert_eq!(
        answered(&mut follower, &log, data(Some((1, 13)), None)),
        [Effect::TruncateTo(10)]
    );
    // The leader knows no epoch this old: start over at its log start.
    let mut follower = Follower::new(2, 1, 5, 1, 0, config);
    assert_eq!(
        answered(&mut follower, &log, data(Some((-1, 40)), None)),
        [Effect::TruncateFullyAndStartAt(40)]
    );
}

#[test]
fn a_follower_fetches_again_only_once_its_append_is_fsynced() {
    let mut log = follower_log(&[(0, 10)]);
    let mut follower = Follower::new(2, 1, 0, 1, 0, FollowerConfig::default());
    let effects = answered(&mut follower, &log, data(None, Some((10, 12))));
    assert_eq!(effects, [Effect::AppendAndFlush]);
    log.append_as_follower(&[sim::log::Batch {
        base: 10,
        last: 11,
        epoch: 0,
        id: 7,
    }]);
    assert!(follower.tick(&log, 1).is_empty(), "no fetch while flushing");
    assert!(follower.on_flushed(&log, 2).is_empty(), "not yet durable");
    log.flush(usize::MAX);
    let effects = follower.on_flushed(&log, 3);
    assert_eq!(effects[0], Effect::AdvanceHighWatermark(5));
    assert!(matches!(&effects[1], Effect::SendFetch(r) if r.fetch_offset == 12));
    // A stale answer (to a fetch it no longer waits for) changes nothing.
    let stale = FetchResponse {
        request_id: 1,
        result: Ok(data(Some((0, 1)), None)),
    };
    assert!(follower.on_fetch_response(&stale, &log, 4).is_empty());
}

#[test]
fn the_controller_checks_a_proposal_against_both_epochs() {
    let mut registration = PartitionRegistration::new(vec![1, 2, 3]);
    let proposal = |leader_epoch, partition_epoch, new_isr: Vec<i32>| AlterPartitionRequest {
        leader_id: 1,
        leader_epoch,
        partition_epoch,
        new_isr,
    };
    let all = |_| true;
    assert!(matches!(
        registration.alter_partition(&proposal(0, 1, vec![1, 2]), all),
        Err(ReplicationError::InvalidUpdateVersion { .. })
    ));
    assert!(
        registration
            .alter_partition(&proposal(0, 0, vec![2]), all)
            .is_err(),
        "without its leader"
    );
    registration
        .alter_partition(&proposal(0, 0, vec![1, 2]), all)
        .unwrap();
    assert_eq!(
        (registration.isr.clone(), registration.partition_epoch),
        (vec![1, 2], 1)
    );
    assert_eq!(
        registration.alter_partition(&proposal(0, 1, vec![1, 2, 3]), |b| b != 3),
        Err(ReplicationError::IneligibleReplica(3))
    );
    // The leader is fenced: the next in-sync replica leads in a new epoch.
    assert!(registration.fence(1, |b| b != 1));
    assert_eq!(
        (
            registration.leader,
            registration.leader_epoch,
            registration.isr.clone()
        ),
        (2, 1, vec![2])
    );
    assert!(matches!(
        registration.alter_partition(&proposal(0, 2, vec![1, 2]), all),
        Err(ReplicationError::FencedLeaderEpoch { .. })
    ));
    // The last in-sync replica fenced: no leader (and no new epoch: no one leads in it), and
    // it stays named until it returns, to lead in a new epoch.
    assert!(registration.fence(2, |_| false));
    assert_eq!(
        (
            registration.leader,
            registration.leader_epoch,
            registration.isr.clone()
        ),
        (-1, 1, vec![2])
    );
    assert!(registration.elect_if_leaderless(|b| b == 2));
    assert_eq!((registration.leader, registration.leader_epoch), (2, 2));
}
