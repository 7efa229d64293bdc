//! The simulation's controller: a stand-in for the quorum to come, with the real partition
//! rules (`PartitionRegistration`). It fences a broker whose heartbeats stop or that starts
//! again (a restart is a new registration, which moves leadership away and raises the epoch,
//! as KRaft does), unfences it on its next heartbeat, answers AlterPartition, and sends the
//! registration to every broker whenever it changes and every `broadcast_ms` (a broker
//! catching up on the metadata log).

use sluice_replication::{AlterPartitionRequest, PartitionRegistration, ReplicationError};
use std::collections::{BTreeMap, BTreeSet};

pub struct Controller {
    pub registration: PartitionRegistration,
    last_heartbeat_ms: BTreeMap<i32, i64>,
    /// The newest incarnation each broker registered: a late copy of an older registration
    /// changes nothing.
    incarnations: BTreeMap<i32, u64>,
    pub fenced: BTreeSet<i32>,
    session_timeout_ms: i64,
    /// A deliberate bug for the simulation's own test: elect any live replica, in sync or not.
    unclean: bool,
}

impl Controller {
    pub fn new(replicas: Vec<i32>, session_timeout_ms: i64, unclean: bool) -> Controller {
        Controller {
            last_heartbeat_ms: replicas.iter().map(|&r| (r, 0)).collect(),
            incarnations: BTreeMap::new(),
            registration: PartitionRegistration::new(replicas),
            fenced: BTreeSet::new(),
            session_timeout_ms,
            unclean,
        }
    }

    /// A heartbeat; true if the registration changed (a leaderless partition got a leader).
    pub fn heartbeat(&mut self, broker: i32, now_ms: i64) -> bool {
        self.last_heartbeat_ms.insert(broker, now_ms);
        if !self.fenced.remove(&broker) {
            return false;
        }
        if self.unclean && self.registration.leader == sluice_replication::NO_LEADER {
            return self.elect_unclean(broker);
        }
        let fenced = self.fenced.clone();
        self.registration
            .elect_if_leaderless(|b| !fenced.contains(&b))
    }

    /// A broker starting again (a new incarnation): fenced until its next heartbeat.
    pub fn register(&mut self, broker: i32, incarnation: u64, now_ms: i64) -> bool {
        let known = self.incarnations.entry(broker).or_insert(0);
        if incarnation <= *known {
            return false;
        }
        *known = incarnation;
        self.last_heartbeat_ms.insert(broker, now_ms);
        self.fence(broker)
    }

    /// Fences brokers whose session expired; true if the registration changed.
    pub fn tick(&mut self, now_ms: i64) -> bool {
        let expired: Vec<i32> = self
            .last_heartbeat_ms
            .iter()
            .filter(|&(b, &at)| !self.fenced.contains(b) && now_ms - at > self.session_timeout_ms)
            .map(|(&b, _)| b)
            .collect();
        expired
            .into_iter()
            .fold(false, |changed, b| self.fence(b) | changed)
    }

    fn fence(&mut self, broker: i32) -> bool {
        self.fenced.insert(broker);
        let fenced = self.fenced.clone();
        let changed = self.registration.fence(broker, |b| !fenced.contains(&b));
        if self.unclean
            && self.registration.leader == sluice_replication::NO_LEADER
            && let Some(&live) = self
                .registration
                .replicas
                .iter()
                .find(|r| !fenced.contains(r))
        {
            return self.elect_unclean(live) || changed;
        }
        changed
    }

    fn elect_unclean(&mut self, broker: i32) -> bool {
        let r = &mut self.registration;
        r.leader = broker;
        r.isr = vec![broker];
        r.leader_epoch += 1;
        r.partition_epoch += 1;
        true
    }

    pub fn alter_partition(
        &mut self,
        request: &AlterPartitionRequest,
    ) -> Result<PartitionRegistration, ReplicationError> {
        let fenced = self.fenced.clone();
        self.registration
            .alter_partition(request, |b| !fenced.contains(&b))?;
        Ok(self.registration.clone())
    }
}
