//! Drives the coordinator state machine through joins, syncs, leaves, expiries and restarts,
//! with explicit times: no network, no sleeping.

mod common;

use bytes::Bytes;
use common::Written;
use sluice_group::{
    Effects, GroupConfig, GroupCoordinator, GroupError, JoinRequest, JoinResponse, MemberRef,
    OffsetToCommit, OffsetsRecord, Protocol, Reply, SyncRequest, SyncResponse, partition_for,
};

const SESSION_MS: i32 = 10_000;
const REBALANCE_MS: i32 = 30_000;

fn config(initial_delay_ms: i32) -> GroupConfig {
    GroupConfig {
        initial_rebalance_delay_ms: initial_delay_ms,
        ..GroupConfig::default()
    }
}

fn join_req(member_id: &str, instance: Option<&str>, protocols: &[&str]) -> JoinRequest {
    JoinRequest {
        group_id: "g".into(),
        member_id: member_id.into(),
        group_instance_id: instance.map(str::to_owned),
        client_id: "client".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: SESSION_MS,
        rebalance_timeout_ms: REBALANCE_MS,
        protocol_type: "consumer".into(),
        protocols: protocols
            .iter()
            .map(|name| Protocol {
                name: (*name).into(),
                metadata: Bytes::from(format!("meta-{name}")),
            })
            .collect(),
        require_known_member_id: true,
    }
}

fn joins(fx: &Effects) -> Vec<(u64, JoinResponse)> {
    fx.replies
        .iter()
        .filter_map(|r| match r {
            Reply::Join(w, j) => Some((*w, j.clone())),
            Reply::Sync(..) => None,
        })
        .collect()
}

fn syncs(fx: &Effects) -> Vec<(u64, SyncResponse)> {
    fx.replies
        .iter()
        .filter_map(|r| match r {
            Reply::Sync(w, s) => Some((*w, s.clone())),
            Reply::Join(..) => None,
        })
        .collect()
}

/// A new dynamic member: asks, gets MEMBER_ID_REQUIRED, and joins again with the id.
fn join_new(c: &mut GroupCoordinator, waiter: u64, now: i64) -> (String, Effects) {
    let fx = c.join(join_req("", None, &["range"]), waiter, now);
    let (w, first) = joins(&fx).pop().expect("an immediate answer");
    assert_eq!(w, waiter);
    assert_eq!(first.error, Some(GroupError::MemberIdRequired));
    let id = first.member_id;
    let fx = c.join(join_req(&id, None, &["range"]), waiter, now);
    (id, fx)
}

fn sync_req(member: &str, generation: i32, assignments: &[(&str, &str)]) -> SyncRequest {
    SyncRequest {
        group_id: "g".into(),
        generation,
        member_id: member.into(),
        group_instance_id: None,
        protocol_type: Some("consumer".into()),
        protocol_name: Some("range".into()),
        assignments: assignments
            .iter()
            .map(|(m, a)| ((*m).into(), Bytes::from(a.to_string())))
            .collect(),
    }
}

fn who(member: &str, generation: i32) -> MemberRef {
    MemberRef {
        member_id: member.into(),
        group_instance_id: None,
        generation,
    }
}

/// Two members joined during the initial delay, synced, stable at generation 1.
fn stable_pair(c: &mut GroupCoordinator) -> (String, String) {
    let (a, fx) = join_new(c, 1, 0);
    assert!(
        joins(&fx).is_empty(),
        "the initial delay parks the first join"
    );
    let (b, fx) = join_new(c, 2, 100);
    assert!(joins(&fx).is_empty());
    let fx = c.tick(3_100);
    let answered = joins(&fx);
    assert_eq!(answered.len(), 2);
    let leader = &answered[0].1.leader;
    assert_eq!(leader, &a, "the first member to join leads");
    for (_, j) in &answered {
        assert_eq!((j.error.clone(), j.generation), (None, 1));
        assert_eq!(j.protocol_name.as_deref(), Some("range"));
        assert_eq!(j.members.len(), if &j.member_id == leader { 2 } else { 0 });
    }
    let fx = c.sync(sync_req(&b, 1, &[]), 4, 3_200);
    assert!(syncs(&fx).is_empty(), "a follower waits for the leader");
    let fx = c.sync(sync_req(&a, 1, &[(&a, "A"), (&b, "B")]), 3, 3_300);
    let mut got = syncs(&fx);
    got.sort_by_key(|(w, _)| *w);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].1.assignment, Bytes::from("A"));
    assert_eq!(got[1].1.assignment, Bytes::from("B"));
    assert!(
        fx.records
            .iter()
            .any(|r| matches!(r, OffsetsRecord::Group { value: Some(g), .. } if g.generation == 1)),
        "the outcome is persisted"
    );
    (a, b)
}

#[test]
fn members_join_sync_and_share_assignments() {
    let mut c = GroupCoordinator::new(config(3_000));
    let (a, b) = stable_pair(&mut c);
    assert_eq!(c.heartbeat("g", &who(&a, 1), 4_000), Ok(()));
    assert_eq!(
        c.heartbeat("g", &who(&b, 0), 4_000),
        Err(GroupError::IllegalGeneration)
    );
    let d = c.describe_group("g");
    assert_eq!((d.state, d.members.len()), ("Stable", 2));
}

#[test]
fn a_new_member_makes_the_others_rejoin() {
    let mut c = GroupCoordinator::new(config(3_000));
    let (a, b) = stable_pair(&mut c);
    let (x, fx) = join_new(&mut c, 5, 5_000);
    assert!(
        joins(&fx).is_empty(),
        "the newcomer waits for the others to rejoin"
    );
    assert_eq!(
        c.heartbeat("g", &who(&a, 1), 5_100),
        Err(GroupError::RebalanceInProgress)
    );
    assert!(joins(&c.join(join_req(&a, None, &["range"]), 6, 5_200)).is_empty());
    let fx = c.join(join_req(&b, None, &["range"]), 7, 5_300);
    let answered = joins(&fx);
    assert_eq!(
        answered.len(),
        3,
        "the last rejoin completes the join phase"
    );
    assert!(answered.iter().all(|(_, j)| j.generation == 2));
    let leader = answered
        .iter()
        .find(|(_, j)| !j.members.is_empty())
        .expect("a leader");
    assert_eq!(leader.1.member_id, a, "the leader keeps leading");
    assert!(answered.iter().any(|(_, j)| j.member_id == x));
}

#[test]
fn a_silent_member_expires_after_its_session_timeout() {
    let mut c = GroupCoordinator::new(config(3_000));
    let (a, b) = stable_pair(&mut c);
    assert_eq!(c.heartbeat("g", &who(&a, 1), 10_000), Ok(()));
    // b was last heard from at 3,200: its session ends at 13,200.
    assert!(c.next_deadline_ms().is_some_and(|d| d <= 13_200));
    let fx = c.tick(13_199);
    assert!(fx.replies.is_empty() && fx.records.is_empty());
    c.tick(13_200);
    assert_eq!(
        c.heartbeat("g", &who(&a, 1), 13_300),
        Err(GroupError::RebalanceInProgress)
    );
    let fx = c.join(join_req(&a, None, &["range"]), 9, 13_400);
    let answered = joins(&fx);
    assert_eq!(answered.len(), 1);
    assert_eq!(answered[0].1.generation, 2);
    assert_eq!(answered[0].1.members.len(), 1, "only the survivor is left");
    assert_eq!(
        c.heartbeat("g", &who(&b, 1), 13_500),
        Err(GroupError::UnknownMemberId)
    );
}

#[test]
fn a_member_that_does_not_rejoin_is_dropped_at_the_rebalance_deadline() {
    let mut c = GroupCoordinator::new(config(3_000));
    let (a, b) = stable_pair(&mut c);
    c.join(join_req(&a, None, &["other", "range"]), 10, 4_000);
    // b keeps heartbeating but never rejoins.
    for t in (5_000..34_000).step_by(3_000) {
        assert_eq!(
            c.heartbeat("g", &who(&b, 1), t),
            Err(GroupError::RebalanceInProgress)
        );
    }
    let fx = c.tick(4_000 + i64::from(REBALANCE_MS));
    let answered = joins(&fx);
    assert_eq!(answered.len(), 1);
    assert_eq!(answered[0].1.members.len(), 1);
    assert_eq!(
        c.heartbeat("g", &who(&b, 2), 34_100),
        Err(GroupError::UnknownMemberId)
    );
}

#[test]
fn leaving_empties_the_group_and_allows_its_deletion() {
    let mut c = GroupCoordinator::new(config(0));
    let (a, fx) = join_new(&mut c, 1, 0);
    assert_eq!(
        joins(&fx)[0].1.generation,
        1,
        "no initial delay: the join completes at once"
    );
    c.sync(sync_req(&a, 1, &[(&a, "A")]), 2, 10);
    let (_, committed) = c.commit_written("g", &who(&a, 1), vec![offset("t", 0, 42)], 20);
    assert_eq!(committed, Ok(vec![Ok(())]));
    let (_, deleted) = c.delete_groups(&["g".to_string()]);
    assert_eq!(deleted, vec![Err(GroupError::NonEmptyGroup)]);
    let (_, left) = c.leave("g", &[who(&a, -1)], 30);
    assert_eq!(left, Ok(vec![Ok(())]));
    assert_eq!(c.describe_group("g").state, "Empty");
    assert_eq!(
        c.fetch_offsets("g", None)[0].offset,
        42,
        "an empty group keeps its offsets"
    );
    let (fx, deleted) = c.delete_groups(&["g".to_string()]);
    assert_eq!(deleted, vec![Ok(())]);
    assert!(fx.records.iter().all(|r| match r {
        OffsetsRecord::Offset { value, .. } => value.is_none(),
        OffsetsRecord::Group { value, .. } => value.is_none(),
        OffsetsRecord::ConsumerGroup { value, .. } => value.is_none(),
    }));
    assert_eq!(
        fx.records.len(),
        2,
        "a tombstone for the offset and one for the group"
    );
    assert_eq!(c.describe_group("g").state, "Dead");
}

fn offset(topic: &str, partition: i32, offset: i64) -> OffsetToCommit {
    OffsetToCommit {
        topic: topic.into(),
        partition,
        offset,
        leader_epoch: 0,
        metadata: Some("m".into()),
    }
}

#[test]
fn commits_are_checked_against_member_and_generation() {
    let mut c = GroupCoordinator::new(config(3_000));
    let (a, _b) = stable_pair(&mut c);
    let commit = |c: &mut GroupCoordinator, who: MemberRef| {
        c.commit_written("g", &who, vec![offset("t", 0, 1)], 4_000)
            .1
    };
    assert_eq!(
        commit(&mut c, who(&a, 0)),
        Err(GroupError::IllegalGeneration)
    );
    assert_eq!(
        commit(&mut c, who("stranger", 1)),
        Err(GroupError::UnknownMemberId)
    );
    assert_eq!(
        commit(&mut c, who("", -1)),
        Err(GroupError::UnknownMemberId),
        "not while it has members"
    );
    assert_eq!(commit(&mut c, who(&a, 1)), Ok(vec![Ok(())]));
    let big = OffsetToCommit {
        metadata: Some("x".repeat(5_000)),
        ..offset("t", 1, 1)
    };
    let (_, r) = c.commit_written("g", &who(&a, 1), vec![big], 4_000);
    assert_eq!(r, Ok(vec![Err(GroupError::OffsetMetadataTooLarge)]));
    // A transaction's commit that names no member (TxnOffsetCommit v0-v2, as aiokafka and
    // faust send it) is taken while the group has members, as Kafka takes it.
    let (_, r) = c.txn_commit_written("g", &who("", -1), (7, 0), vec![offset("t", 0, 2)], 4_000);
    assert_eq!(r, Ok(vec![Ok(())]));
    // ... but one that names a member is checked.
    let (_, r) = c.txn_commit_written(
        "g",
        &who("stranger", 1),
        (7, 0),
        vec![offset("t", 0, 2)],
        4_000,
    );
    assert_eq!(r, Err(GroupError::UnknownMemberId));
    // A simple consumer commits to a group nobody joined.
    let (_, r) = c.commit_written("simple", &who("", -1), vec![offset("t", 0, 7)], 4_000);
    assert_eq!(r, Ok(vec![Ok(())]));
    assert_eq!(c.fetch_offsets("simple", None)[0].offset, 7);
}

#[test]
fn replaying_the_records_restores_offsets_and_groups() {
    let mut c = GroupCoordinator::new(config(3_000));
    let mut log: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::new();
    let mut keep = |fx: &Effects| log.extend(fx.records.iter().map(OffsetsRecord::encode));
    let (a, fx) = join_new(&mut c, 1, 0);
    keep(&fx);
    let fx = c.tick(3_000);
    keep(&fx);
    let fx = c.sync(sync_req(&a, 1, &[(&a, "A")]), 2, 3_100);
    keep(&fx);
    let (fx, _) = c.commit_written(
        "g",
        &who(&a, 1),
        vec![offset("t", 0, 5), offset("t", 1, 9)],
        3_200,
    );
    keep(&fx);
    let (fx, _) = c.commit_written("g", &who(&a, 1), vec![offset("t", 0, 6)], 3_300);
    keep(&fx);

    let mut restarted = GroupCoordinator::new(config(3_000));
    for (key, value) in &log {
        let record = OffsetsRecord::decode(Some(key), value.as_deref()).expect("decodes");
        restarted.replay(record, 50_000);
    }
    let fetched: Vec<(i32, i64)> = restarted
        .fetch_offsets("g", None)
        .iter()
        .map(|o| (o.partition, o.offset))
        .collect();
    assert_eq!(fetched, vec![(0, 6), (1, 9)]);
    let d = restarted.describe_group("g");
    assert_eq!((d.state, d.members.len()), ("Stable", 1));
    assert_eq!(d.members[0].assignment, Bytes::from("A"));
    // The member resumes with its generation; if it never comes back, its session expires.
    assert_eq!(restarted.heartbeat("g", &who(&a, 1), 51_000), Ok(()));
    restarted.tick(51_000 + i64::from(SESSION_MS));
    assert_eq!(restarted.describe_group("g").state, "Empty");
    assert_eq!(restarted.fetch_offsets("g", None).len(), 2);
}

#[test]
fn a_restarted_static_member_gets_its_assignment_back_without_a_rebalance() {
    let mut c = GroupCoordinator::new(config(0));
    let fx = c.join(join_req("", Some("i1"), &["range"]), 1, 0);
    let first = joins(&fx).pop().expect("answered").1;
    assert_eq!(
        (first.error, first.generation),
        (None, 1),
        "static members need no member id round"
    );
    let old = first.member_id;
    c.sync(sync_req(&old, 1, &[(&old, "A")]), 2, 10);
    // The process restarts: same instance id, no member id.
    let fx = c.join(join_req("", Some("i1"), &["range"]), 3, 1_000);
    let again = joins(&fx).pop().expect("answered at once").1;
    assert_eq!(again.error, None);
    assert_eq!(again.generation, 1, "no new generation: no rebalance");
    assert_ne!(again.member_id, old);
    let mut sync = sync_req(&again.member_id, 1, &[]);
    sync.group_instance_id = Some("i1".into());
    let fx = c.sync(sync, 4, 1_100);
    assert_eq!(syncs(&fx)[0].1.assignment, Bytes::from("A"));
    let fenced = MemberRef {
        member_id: old,
        group_instance_id: Some("i1".into()),
        generation: 1,
    };
    assert_eq!(
        c.heartbeat("g", &fenced, 1_200),
        Err(GroupError::FencedInstanceId)
    );
}

#[test]
fn inconsistent_protocols_and_bad_timeouts_are_refused() {
    let mut c = GroupCoordinator::new(config(0));
    let (_a, _) = join_new(&mut c, 1, 0);
    let fx = c.join(join_req("", None, &["roundrobin"]), 2, 10);
    assert_eq!(
        joins(&fx)[0].1.error,
        Some(GroupError::InconsistentGroupProtocol)
    );
    let mut req = join_req("", None, &["range"]);
    req.session_timeout_ms = 10;
    let fx = c.join(req, 3, 10);
    assert_eq!(
        joins(&fx)[0].1.error,
        Some(GroupError::InvalidSessionTimeout)
    );
}

#[test]
fn groups_hash_to_kafkas_partitions() {
    // Values from Java's String.hashCode, computed independently.
    assert_eq!(partition_for("my-group", 50), 12);
    assert_eq!(partition_for("sluice-bench", 50), 16);
    assert_eq!(partition_for("console-consumer-12345", 50), 6);
    assert_eq!(partition_for("g", 16), 7);
}

#[test]
fn offsets_of_a_group_without_members_expire_after_the_retention() {
    let mut c = GroupCoordinator::new(GroupConfig {
        offsets_retention_ms: 1_000,
        initial_rebalance_delay_ms: 0,
        ..GroupConfig::default()
    });
    let (_, r) = c.commit_written("idle", &who("", -1), vec![offset("t", 0, 5)], 0);
    assert_eq!(r, Ok(vec![Ok(())]));
    let (a, _) = join_new(&mut c, 1, 0);
    c.sync(sync_req(&a, 1, &[(&a, "A")]), 2, 0);
    let (_, r) = c.commit_written("g", &who(&a, 1), vec![offset("t", 0, 7)], 0);
    assert_eq!(r, Ok(vec![Ok(())]));
    assert!(c.expire_offsets(999).records.is_empty(), "not yet");
    let fx = c.expire_offsets(1_000);
    assert!(
        fx.records.iter().any(
            |r| matches!(r, OffsetsRecord::Offset { group, value: None, .. } if group == "idle")
        )
    );
    // Until the tombstones are written (a failed write, say), nothing is gone.
    assert_eq!(c.fetch_offsets("idle", None)[0].offset, 5);
    assert_eq!(
        c.expire_offsets(1_000).records.len(),
        fx.records.len(),
        "asked again"
    );
    common::write(&mut c, &fx);
    assert!(c.fetch_offsets("idle", None).is_empty());
    assert_eq!(
        c.list_groups()
            .iter()
            .filter(|g| g.group_id == "idle")
            .count(),
        0
    );
    assert_eq!(
        c.fetch_offsets("g", None)[0].offset,
        7,
        "a group with members keeps its offsets"
    );
}

#[test]
fn strings_that_would_not_fit_a_record_are_refused_not_stored() {
    let mut c = GroupCoordinator::new(config(0));
    let long = "x".repeat(40_000);
    let (fx, r) = c.commit_written("g", &who("", -1), vec![offset(&long, 0, 1)], 0);
    assert_eq!(r, Ok(vec![Err(GroupError::InvalidTopic)]));
    assert!(fx.records.is_empty());
    let mut req = join_req("", None, &["range"]);
    req.protocols[0].name = long.clone();
    let fx = c.join(req, 1, 0);
    assert!(matches!(
        joins(&fx)[0].1.error,
        Some(GroupError::LimitReached(_))
    ));
    let mut req = join_req("", None, &["range"]);
    req.client_id = "é".repeat(20_000);
    let fx = c.join(req, 2, 0);
    assert!(matches!(
        joins(&fx)[0].1.error,
        Some(GroupError::LimitReached(_))
    ));
    // The longest client id a header can carry still yields a member id that fits, and the
    // group's record encodes.
    let mut req = join_req("", None, &["range"]);
    req.client_id = "é".repeat(16_000);
    req.require_known_member_id = false;
    let fx = c.join(req, 3, 0);
    let joined = &joins(&fx)[0].1;
    assert_eq!(joined.error, None);
    assert!(joined.member_id.len() <= 255);
    for r in &fx.records {
        r.encode();
    }
}

#[test]
fn offsets_committed_in_a_transaction_wait_for_its_marker() {
    let mut c = GroupCoordinator::new(config(0));
    let simple = who("", -1);
    let (plain, r) = c.commit_written("g", &simple, vec![offset("t", 0, 5)], 1_000);
    r.unwrap();
    let (fx, r) = c.txn_commit_written("g", &simple, (42, 3), vec![offset("t", 0, 9)], 1_000);
    r.unwrap();
    assert_eq!(
        fx.producer,
        Some((42, 3)),
        "written as the producer's transactional batch"
    );
    assert_eq!(fx.records.len(), 1);
    assert_eq!(
        c.fetch_offsets("g", None)[0].offset,
        5,
        "pending until the marker"
    );
    assert!(
        c.fetch_offsets("g", None)[0].unstable,
        "and marked unstable"
    );
    let other = c.fetch_offsets("g", Some(&[("t".to_owned(), vec![1])]));
    assert!(!other[0].unstable, "other partitions are stable");
    c.complete_txn(42, false);
    assert_eq!(
        c.fetch_offsets("g", None)[0].offset,
        5,
        "an abort drops them"
    );
    assert!(!c.fetch_offsets("g", None)[0].unstable);

    let (fx, _) = c.txn_commit_written("g", &simple, (42, 3), vec![offset("t", 0, 11)], 1_000);
    c.complete_txn(42, true);
    assert_eq!(c.fetch_offsets("g", None)[0].offset, 11);

    // Replay at start: a transactional record, then its marker.
    let mut restarted = GroupCoordinator::new(config(0));
    restarted.replay(plain.records[0].clone(), 1_000);
    restarted.replay_txn_offset(42, fx.records[0].clone());
    assert_eq!(
        restarted.fetch_offsets("g", None)[0].offset,
        5,
        "pending after replay too"
    );
    assert!(restarted.fetch_offsets("g", None)[0].unstable);
    restarted.complete_txn(42, true);
    assert_eq!(restarted.fetch_offsets("g", None)[0].offset, 11);
    assert!(!restarted.fetch_offsets("g", None)[0].unstable);
}

#[test]
fn offsets_take_effect_only_once_their_records_are_written() {
    let mut c = GroupCoordinator::new(config(0));
    let simple = who("", -1);
    let (_, r) = c.commit_written("g", &simple, vec![offset("t", 0, 5)], 1_000);
    assert_eq!(r, Ok(vec![Ok(())]));
    // The log refused the next commit's records: the broker never calls `written`.
    let (fx, r) = c.commit_offsets("g", &simple, vec![offset("t", 0, 9)], 2_000);
    assert_eq!(r, Ok(vec![Ok(())]));
    assert_eq!(fx.records.len(), 1);
    assert_eq!(
        c.fetch_offsets("g", None)[0].offset,
        5,
        "an unwritten commit took effect"
    );
    // Nor does an unwritten deletion, or a transactional commit that was never written.
    let topics = std::collections::HashSet::new();
    let (_, deleted) = c.delete_offsets("g", &[("t".to_string(), 0)], &topics);
    assert_eq!(deleted, Ok(vec![Ok(())]));
    assert_eq!(c.fetch_offsets("g", None)[0].offset, 5);
    let (_, r) = c.txn_commit_offsets("g", &simple, (42, 0), vec![offset("t", 0, 11)], 3_000);
    assert_eq!(r, Ok(vec![Ok(())]));
    c.complete_txn(42, true);
    assert_eq!(c.fetch_offsets("g", None)[0].offset, 5);
    // Once written, they do.
    let (fx, _) = c.commit_offsets("g", &simple, vec![offset("t", 0, 9)], 4_000);
    c.written(
        &fx.records,
        fx.on_write.expect("commits take effect when written"),
    );
    assert_eq!(c.fetch_offsets("g", None)[0].offset, 9);
}
