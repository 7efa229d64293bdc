//! The KIP-848 consumer group protocol, driven heartbeat by heartbeat with explicit times.

mod common;

use common::Written;
use sluice_group::{
    Assignment, ConsumerHeartbeat, ConsumerHeartbeatResponse, GroupConfig, GroupCoordinator,
    GroupError, MemberRef, OffsetToCommit, OffsetsRecord,
};
use std::collections::BTreeSet;

const SESSION_MS: i64 = 45_000;

fn topics(name: &str) -> Option<i32> {
    (name == "t").then_some(6)
}

fn join(id: &str) -> ConsumerHeartbeat {
    ConsumerHeartbeat {
        group_id: "g".into(),
        member_id: id.into(),
        member_epoch: 0,
        rebalance_timeout_ms: 30_000,
        subscribed_topics: Some(vec!["t".into()]),
        client_id: "c".into(),
        client_host: "/127.0.0.1".into(),
        ..Default::default()
    }
}

fn beat(id: &str, epoch: i32, owned: &Assignment) -> ConsumerHeartbeat {
    ConsumerHeartbeat {
        group_id: "g".into(),
        member_id: id.into(),
        member_epoch: epoch,
        owned: Some(owned.clone()),
        ..Default::default()
    }
}

fn partitions(a: &Assignment) -> BTreeSet<i32> {
    a.get("t").cloned().unwrap_or_default()
}

/// A member as a client would run it: it owns what the last assignment said.
struct Member {
    id: String,
    epoch: i32,
    owned: Assignment,
}

impl Member {
    fn apply(&mut self, r: &ConsumerHeartbeatResponse) {
        assert_eq!(r.error, None);
        self.epoch = r.member_epoch;
        if let Some(a) = &r.assignment {
            self.owned = a.clone();
        }
    }
    fn heartbeat(&mut self, c: &mut GroupCoordinator, now: i64) {
        let (_, r) = c.consumer_heartbeat(beat(&self.id, self.epoch, &self.owned), &topics, now);
        self.apply(&r);
    }
}

fn joined(c: &mut GroupCoordinator, id: &str, now: i64) -> Member {
    let (_, r) = c.consumer_heartbeat(join(id), &topics, now);
    let mut m = Member {
        id: id.into(),
        epoch: 0,
        owned: Assignment::new(),
    };
    m.apply(&r);
    m
}

#[test]
fn a_new_member_gets_partitions_only_after_the_owner_releases_them() {
    let mut c = GroupCoordinator::new(GroupConfig::default());
    let mut a = joined(&mut c, "a", 0);
    assert_eq!(partitions(&a.owned).len(), 6, "alone, a owns everything");
    let mut b = joined(&mut c, "b", 10);
    assert!(
        partitions(&b.owned).is_empty(),
        "b waits: a still holds its share"
    );
    assert!(b.epoch > a.epoch);
    a.heartbeat(&mut c, 20);
    assert_eq!(partitions(&a.owned).len(), 3, "a is told to revoke half");
    let a_epoch_while_revoking = a.epoch;
    a.heartbeat(&mut c, 30); // reports the smaller set: revocation done
    assert!(
        a.epoch > a_epoch_while_revoking,
        "a reaches the new epoch once it released"
    );
    b.heartbeat(&mut c, 40);
    assert_eq!(partitions(&b.owned).len(), 3);
    assert!(partitions(&a.owned).is_disjoint(&partitions(&b.owned)));
    assert_eq!(a.epoch, b.epoch);
    assert_eq!(c.describe_consumer_group("g").unwrap().state, "Stable");
}

#[test]
fn leaving_and_expiring_members_hand_their_partitions_over() {
    let mut c = GroupCoordinator::new(GroupConfig::default());
    let mut a = joined(&mut c, "a", 0);
    let mut b = joined(&mut c, "b", 0);
    let mut x = joined(&mut c, "x", 0);
    for t in 1..4 {
        a.heartbeat(&mut c, t);
        b.heartbeat(&mut c, t);
        x.heartbeat(&mut c, t);
    }
    assert_eq!(partitions(&x.owned).len(), 2);
    let (_, left) = c.consumer_heartbeat(beat("x", -1, &x.owned), &topics, 10);
    assert_eq!((left.error, left.member_epoch), (None, -1));
    a.heartbeat(&mut c, 20);
    b.heartbeat(&mut c, 20);
    assert_eq!(partitions(&a.owned).len() + partitions(&b.owned).len(), 6);
    // b goes silent: after the session timeout a owns everything.
    a.heartbeat(&mut c, 20 + SESSION_MS - 1);
    c.tick(20 + SESSION_MS);
    a.heartbeat(&mut c, 20 + SESSION_MS + 1);
    assert_eq!(partitions(&a.owned).len(), 6);
    let (_, r) = c.consumer_heartbeat(beat("b", b.epoch, &b.owned), &topics, 20 + SESSION_MS + 2);
    assert_eq!(r.error, Some(GroupError::UnknownMemberId));
}

#[test]
fn a_wrong_epoch_is_fenced_and_stale_commits_are_refused() {
    let mut c = GroupCoordinator::new(GroupConfig::default());
    let a = joined(&mut c, "a", 0);
    let (_, r) = c.consumer_heartbeat(beat("a", a.epoch + 5, &a.owned), &topics, 1);
    assert_eq!(r.error, Some(GroupError::FencedMemberEpoch));
    let who = |epoch| MemberRef {
        member_id: "a".into(),
        group_instance_id: None,
        generation: epoch,
    };
    let offset = || OffsetToCommit {
        topic: "t".into(),
        partition: 0,
        offset: 5,
        leader_epoch: -1,
        metadata: None,
    };
    let (_, ok) = c.commit_written("g", &who(a.epoch), vec![offset()], 2);
    assert_eq!(ok, Ok(vec![Ok(())]));
    let (_, stale) = c.commit_written("g", &who(a.epoch - 1), vec![offset()], 3);
    assert_eq!(stale, Err(GroupError::StaleMemberEpoch));
    assert_eq!(c.fetch_offsets("g", None)[0].offset, 5);
}

#[test]
fn a_static_member_that_comes_back_keeps_its_partitions_without_a_new_epoch() {
    let mut c = GroupCoordinator::new(GroupConfig::default());
    let static_join = |id: &str| ConsumerHeartbeat {
        instance_id: Some("i1".into()),
        ..join(id)
    };
    let (_, r) = c.consumer_heartbeat(static_join("old"), &topics, 0);
    let (epoch, owned) = (r.member_epoch, r.assignment.clone().unwrap());
    let mut other = joined(&mut c, "other", 1);
    let (_, r) = c.consumer_heartbeat(beat("old", epoch, &owned), &topics, 2);
    let owned = r.assignment.unwrap_or(owned);
    let (_, _) = c.consumer_heartbeat(beat("old", r.member_epoch, &owned), &topics, 3);
    other.heartbeat(&mut c, 4);
    let group_epoch = c.describe_consumer_group("g").unwrap().group_epoch;
    let (_, left) = c.consumer_heartbeat(beat("old", r.member_epoch, &owned), &topics, 5);
    let mut leave = beat("old", -2, &owned);
    leave.instance_id = Some("i1".into());
    c.consumer_heartbeat(leave, &topics, 6);
    let (_, back) = c.consumer_heartbeat(static_join("new"), &topics, 7);
    assert_eq!(back.error, None);
    assert_eq!(
        back.member_epoch, left.member_epoch,
        "same epoch: no rebalance"
    );
    assert_eq!(back.assignment.as_ref(), Some(&owned));
    assert_eq!(
        c.describe_consumer_group("g").unwrap().group_epoch,
        group_epoch
    );
    // A second live instance with the same id is refused.
    let (_, clash) = c.consumer_heartbeat(static_join("third"), &topics, 8);
    assert_eq!(clash.error, Some(GroupError::UnreleasedInstanceId));
}

#[test]
fn the_group_is_rebuilt_from_its_snapshot() {
    let mut c = GroupCoordinator::new(GroupConfig::default());
    let mut log = Vec::new();
    let (fx, r) = c.consumer_heartbeat(join("a"), &topics, 0);
    log.extend(fx.records.iter().map(OffsetsRecord::encode));
    let mut restarted = GroupCoordinator::new(GroupConfig::default());
    for (k, v) in &log {
        restarted.replay(OffsetsRecord::decode(Some(k), v.as_deref()).unwrap(), 100);
    }
    let d = restarted.describe_consumer_group("g").expect("restored");
    assert_eq!(d.members.len(), 1);
    assert_eq!(Some(&d.members[0].assignment), r.assignment.as_ref());
    let (_, again) = restarted.consumer_heartbeat(
        beat("a", r.member_epoch, r.assignment.as_ref().unwrap()),
        &topics,
        200,
    );
    assert_eq!((again.error, again.member_epoch), (None, r.member_epoch));
}

#[test]
fn a_classic_group_with_members_is_not_a_consumer_group() {
    let mut c = GroupCoordinator::new(GroupConfig {
        initial_rebalance_delay_ms: 0,
        ..GroupConfig::default()
    });
    let mut req = sluice_group::JoinRequest {
        group_id: "g".into(),
        member_id: String::new(),
        group_instance_id: None,
        client_id: "c".into(),
        client_host: "h".into(),
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 10_000,
        protocol_type: "consumer".into(),
        protocols: vec![sluice_group::Protocol {
            name: "range".into(),
            metadata: Default::default(),
        }],
        require_known_member_id: false,
    };
    c.join(req.clone(), 1, 0);
    let (_, r) = c.consumer_heartbeat(join("a"), &topics, 1);
    assert_eq!(r.error, Some(GroupError::GroupIdNotFound));
    req.group_id = "h".into();
    let (_, r) = c.consumer_heartbeat(
        ConsumerHeartbeat {
            group_id: "h".into(),
            ..join("a")
        },
        &topics,
        2,
    );
    assert_eq!(r.error, None);
    let fx = c.join(req, 2, 3);
    assert!(
        matches!(&fx.replies[0], sluice_group::Reply::Join(_, j) if j.error == Some(GroupError::InconsistentGroupProtocol))
    );
}

#[test]
fn members_heartbeat_fast_while_the_group_settles_and_slowly_once_stable() {
    let config = GroupConfig::default();
    let slow = config.consumer_heartbeat_interval_ms;
    let mut c = GroupCoordinator::new(config);
    let (_, first) = c.consumer_heartbeat(join("a"), &topics, 0);
    assert!(
        first.heartbeat_interval_ms < slow,
        "a new group is settling"
    );
    let owned = first.assignment.unwrap();
    let (_, later) = c.consumer_heartbeat(
        beat("a", first.member_epoch, &owned),
        &topics,
        i64::from(slow) + 1,
    );
    assert_eq!(
        later.heartbeat_interval_ms, slow,
        "stable for a whole interval"
    );
}

struct Catalog(Vec<(&'static str, i32)>);

impl sluice_group::Topics for Catalog {
    fn partition_count(&self, topic: &str) -> Option<i32> {
        self.0.iter().find(|(n, _)| *n == topic).map(|(_, p)| *p)
    }
    fn names(&self) -> Vec<String> {
        self.0.iter().map(|(n, _)| n.to_string()).collect()
    }
}

#[test]
fn a_regex_subscription_follows_the_topics_that_match_it() {
    let mut c = GroupCoordinator::new(GroupConfig::default());
    let regex_join = ConsumerHeartbeat {
        subscribed_topics: None,
        subscribed_regex: Some("orders-.*".into()),
        ..join("a")
    };
    let catalog = Catalog(vec![("orders-eu", 2), ("orders-us", 1), ("audit", 3)]);
    let (_, r) = c.consumer_heartbeat(regex_join, &catalog, 0);
    let got = r.assignment.expect("assigned");
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        vec!["orders-eu", "orders-us"]
    );
    // A new matching topic joins the subscription at the next heartbeat.
    let grown = Catalog(vec![
        ("orders-eu", 2),
        ("orders-us", 1),
        ("orders-ap", 4),
        ("audit", 3),
    ]);
    let (_, r2) = c.consumer_heartbeat(beat("a", r.member_epoch, &got), &grown, 10);
    assert!(r2.member_epoch > r.member_epoch);
    assert_eq!(r2.assignment.expect("changed")["orders-ap"].len(), 4);
    let bad = ConsumerHeartbeat {
        subscribed_regex: Some("(unclosed".into()),
        ..join("b")
    };
    let (_, r3) = c.consumer_heartbeat(bad, &grown, 20);
    assert!(matches!(
        r3.error,
        Some(GroupError::InvalidRegularExpression(_))
    ));
}

#[test]
fn oversized_ids_and_topic_names_are_refused() {
    let mut c = GroupCoordinator::new(GroupConfig::default());
    let (_, r) = c.consumer_heartbeat(join(&"m".repeat(300)), &topics, 0);
    assert!(matches!(r.error, Some(GroupError::LimitReached(_))));
    let long_topic = ConsumerHeartbeat {
        subscribed_topics: Some(vec!["t".repeat(40_000)]),
        ..join("a")
    };
    let (fx, r) = c.consumer_heartbeat(long_topic, &topics, 0);
    assert_eq!(r.error, Some(GroupError::InvalidTopic));
    assert!(fx.records.is_empty());
}
