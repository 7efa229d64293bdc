//! The controller's rules for one partition's registration (replicas, leader, in-sync set and
//! the two epochs), as Kafka's `PartitionChangeBuilder` and `ReplicationControlManager` apply
//! them: a leader's AlterPartition is checked against the leader epoch and partition epoch;
//! a fenced replica leaves the in-sync set; a new leader comes from the in-sync set, with the
//! leader epoch raised, or, where the topic allows unclean election and no in-sync replica is
//! alive, from any live replica (`elect_unclean`: what the others hold beyond it is lost). Every change raises
//! the partition epoch, which is how a leader's stale proposal is recognized.
//!
//! Not owned here: when a broker is fenced (the controller's sessions) and how a registration
//! reaches the brokers (the metadata log).

use crate::ReplicationError;

/// No replica leads the partition (every in-sync replica is fenced).
pub const NO_LEADER: i32 = -1;

/// One partition as the controller registers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionRegistration {
    /// Every replica, in preference order (the first eligible in-sync one is elected).
    pub replicas: Vec<i32>,
    /// The in-sync replicas: each holds every committed record durably. Empty only once its
    /// last member lost its data (`lose_replica`): then no replica is known to hold it all.
    pub isr: Vec<i32>,
    pub leader: i32,
    pub leader_epoch: i32,
    /// Raised by every change of the registration.
    pub partition_epoch: i32,
}

/// A leader's proposal of a new in-sync set (Kafka's AlterPartition, one partition).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlterPartitionRequest {
    pub leader_id: i32,
    pub leader_epoch: i32,
    /// The partition epoch of the registration the proposal changes.
    pub partition_epoch: i32,
    pub new_isr: Vec<i32>,
}

impl PartitionRegistration {
    /// A new partition: every replica in sync, the first leading, epochs at 0.
    pub fn new(replicas: Vec<i32>) -> PartitionRegistration {
        assert!(!replicas.is_empty(), "a partition has a replica");
        PartitionRegistration {
            isr: replicas.clone(),
            leader: replicas[0],
            replicas,
            leader_epoch: 0,
            partition_epoch: 0,
        }
    }

    /// Applies a leader's proposal, or says why not. `eligible` tells whether a broker may
    /// join the in-sync set (registered and not fenced).
    pub fn alter_partition(
        &mut self,
        request: &AlterPartitionRequest,
        eligible: impl Fn(i32) -> bool,
    ) -> Result<(), ReplicationError> {
        if request.leader_epoch < self.leader_epoch {
            return Err(ReplicationError::FencedLeaderEpoch {
                request: request.leader_epoch,
                current: self.leader_epoch,
            });
        }
        if request.leader_id != self.leader || request.leader_epoch != self.leader_epoch {
            return Err(ReplicationError::NotLeaderOrFollower);
        }
        if request.partition_epoch != self.partition_epoch {
            return Err(ReplicationError::InvalidUpdateVersion {
                request: request.partition_epoch,
                current: self.partition_epoch,
            });
        }
        if !request.new_isr.contains(&self.leader) {
            return Err(ReplicationError::InvalidRequest(
                "the in-sync set must hold its leader",
            ));
        }
        for &replica in &request.new_isr {
            let joining = !self.isr.contains(&replica);
            if !self.replicas.contains(&replica) || (joining && !eligible(replica)) {
                return Err(ReplicationError::IneligibleReplica(replica));
            }
        }
        self.isr = dedup_in_replica_order(&self.replicas, &request.new_isr);
        self.partition_epoch += 1;
        Ok(())
    }

    /// A broker was fenced (or shut down): it leaves the in-sync set unless it is the last
    /// member (the set is never empty: the last replica known to hold every committed record
    /// stays named), and if it led, the first eligible in-sync replica leads in a new epoch,
    /// or none does. True if the registration changed.
    pub fn fence(&mut self, broker: i32, eligible: impl Fn(i32) -> bool) -> bool {
        if !self.replicas.contains(&broker) {
            return false;
        }
        let mut changed = false;
        if self.isr.len() > 1 && self.isr.contains(&broker) {
            self.isr.retain(|&r| r != broker);
            changed = true;
        }
        if self.leader == broker {
            // A new leader begins a new epoch. A partition left without one keeps the old
            // epoch (no one writes in it): the next election raises it, so each leadership
            // term still has an epoch above every earlier one.
            self.leader = NO_LEADER;
            if self.elect(&eligible) {
                self.leader_epoch += 1;
            }
            changed = true;
        }
        if changed {
            self.partition_epoch += 1;
        }
        changed
    }

    /// A replica lost its data (its broker came back with another data directory): it leaves
    /// the in-sync set even as its last member, so it is never elected to lead what it no
    /// longer holds (Kafka's KIP-966 keeps such a replica out of its eligible leaders too). A
    /// partition left with no in-sync replica waits, without a leader, for an unclean
    /// election. A partition with no other replica keeps it: nothing else holds anything.
    /// Applied after `fence`, so the replica leads nothing. True if the registration changed.
    pub fn lose_replica(&mut self, broker: i32) -> bool {
        if self.replicas.len() < 2 || !self.isr.contains(&broker) {
            return false;
        }
        assert_ne!(
            self.leader, broker,
            "a replica that lost its data is fenced first"
        );
        self.isr.retain(|&r| r != broker);
        self.partition_epoch += 1;
        true
    }

    /// A partition without a leader gets one once an in-sync replica is eligible again. True
    /// if it did.
    pub fn elect_if_leaderless(&mut self, eligible: impl Fn(i32) -> bool) -> bool {
        if self.leader != NO_LEADER || !self.elect(&eligible) {
            return false;
        }
        self.leader_epoch += 1;
        self.partition_epoch += 1;
        true
    }

    /// Unclean election (`unclean.leader.election.enable`): a partition without a leader takes
    /// the first eligible replica, in sync or not, as leader and sole in-sync member, in a new
    /// epoch. True if it did.
    pub fn elect_unclean(&mut self, eligible: impl Fn(i32) -> bool) -> bool {
        if self.leader != NO_LEADER {
            return false;
        }
        let Some(leader) = self.replicas.iter().copied().find(|&r| eligible(r)) else {
            return false;
        };
        self.leader = leader;
        self.isr = vec![leader];
        self.leader_epoch += 1;
        self.partition_epoch += 1;
        true
    }

    fn elect(&mut self, eligible: &impl Fn(i32) -> bool) -> bool {
        let chosen = self
            .replicas
            .iter()
            .copied()
            .find(|&r| self.isr.contains(&r) && eligible(r));
        match chosen {
            Some(leader) => {
                self.leader = leader;
                true
            }
            None => false,
        }
    }
}

fn dedup_in_replica_order(replicas: &[i32], members: &[i32]) -> Vec<i32> {
    replicas
        .iter()
        .copied()
        .filter(|r| members.contains(r))
        .collect()
}
