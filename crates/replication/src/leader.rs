//! The leader of one partition: what each follower has durably (its last fetch offset), when
//! it was last caught up, the in-sync set and proposals to change it, and the high watermark.
//!
//! The high watermark is the minimum of the leader's own fsynced offset and the fetch offsets
//! of every replica in the maximal in-sync set (the registered set plus a proposed member not
//! yet agreed), and it waits until each of them has fetched in this epoch: a new leader knows
//! nothing of its followers, so it commits nothing until they report. Since a follower's fetch
//! offset is fsynced (see `follower`), everything below the high watermark is on disk on every
//! in-sync replica.
//!
//! In-sync set changes follow Kafka's `Partition`: a follower joins once its fetch offset
//! reaches the high watermark and the start of the leader's epoch; one leaves when it has not
//! been caught up for `replica.lag.time.max.ms`. One proposal is in flight at a time; it is
//! sent again after `alter_partition_retry_ms` without an answer.

use crate::partition::{AlterPartitionRequest, PartitionRegistration};
use crate::{Effect, FetchRequest, ReplicaLog, ReplicationError};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaderConfig {
    /// `replica.lag.time.max.ms`: a follower not caught up for this long leaves the set.
    pub replica_lag_time_max_ms: i64,
    /// `min.insync.replicas`: `acks=all` needs at least this many in-sync replicas.
    pub min_insync_replicas: usize,
    /// How long a proposal waits for the controller's answer before it is sent again.
    pub alter_partition_retry_ms: i64,
}

impl Default for LeaderConfig {
    fn default() -> Self {
        LeaderConfig {
            replica_lag_time_max_ms: 30_000,
            min_insync_replicas: 1,
            alter_partition_retry_ms: 2_500,
        }
    }
}

/// How the leader answers a follower's fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchAnswer {
    /// Serve records from `offset` (at most to the log end) with the leader's high watermark
    /// and log start offset.
    Read {
        offset: i64,
    },
    /// The follower's log diverged: the leader's log has `epoch` ending at `end_offset`, and
    /// the follower truncates to what it shares with that.
    Diverging {
        epoch: i32,
        end_offset: i64,
    },
    Refused(ReplicationError),
}

/// What the leader knows of one follower.
#[derive(Debug, Clone, Copy)]
struct FollowerProgress {
    /// Its last fetch offset in this epoch: fsynced on the follower. None before its first.
    durable_end: Option<i64>,
    last_caught_up_ms: i64,
    last_fetch_ms: i64,
    /// The leader's log end at that last fetch.
    last_fetch_leader_end: i64,
}

#[derive(Debug, Clone)]
struct Proposal {
    request: AlterPartitionRequest,
    sent_ms: i64,
}

#[derive(Debug)]
pub struct Leader {
    node_id: i32,
    registration: PartitionRegistration,
    proposal: Option<Proposal>,
    followers: BTreeMap<i32, FollowerProgress>,
    /// The log end when this epoch began: a joining follower must have reached it.
    epoch_start_offset: i64,
    /// How far the leader's own log is fsynced.
    local_durable_end: i64,
    high_watermark: i64,
    config: LeaderConfig,
}

impl Leader {
    /// Takes the lead in `registration`'s epoch. `high_watermark` and `durable_end` are the
    /// log's (it must already stamp `registration.leader_epoch` on its appends).
    pub fn new(
        node_id: i32,
        registration: PartitionRegistration,
        log: &impl ReplicaLog,
        high_watermark: i64,
        durable_end: i64,
        now_ms: i64,
        config: LeaderConfig,
    ) -> Leader {
        assert_eq!(
            registration.leader, node_id,
            "only the registered leader leads"
        );
        let followers = registration
            .replicas
            .iter()
            .filter(|&&r| r != node_id)
            .map(|&r| {
                // In-sync followers get a full lag period to report before they are dropped.
                let caught_up = if registration.isr.contains(&r) {
                    now_ms
                } else {
                    i64::MIN
                };
                let progress = FollowerProgress {
                    durable_end: None,
                    last_caught_up_ms: caught_up,
                    last_fetch_ms: i64::MIN,
                    last_fetch_leader_end: i64::MAX,
                };
                (r, progress)
            })
            .collect();
        Leader {
            node_id,
            registration,
            proposal: None,
            followers,
            epoch_start_offset: log.log_end_offset(),
            local_durable_end: durable_end,
            high_watermark,
            config,
        }
    }

    pub fn leader_epoch(&self) -> i32 {
        self.registration.leader_epoch
    }
    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }
    /// The in-sync set the controller agreed to.
    pub fn isr(&self) -> &[i32] {
        &self.registration.isr
    }
    pub fn registration(&self) -> &PartitionRegistration {
        &self.registration
    }

    /// The registered in-sync set plus a member a proposal adds: the replicas the high
    /// watermark waits for (one a proposal removes still counts until the controller agrees).
    fn maximal_isr(&self) -> Vec<i32> {
        let mut isr = self.registration.isr.clone();
        if let Some(p) = &self.proposal {
            for &r in &p.request.new_isr {
                if !isr.contains(&r) {
                    isr.push(r);
                }
            }
        }
        isr
    }

    /// A follower's fetch: checked against the epoch and the log, then counted as progress.
    pub fn on_fetch(
        &mut self,
        request: &FetchRequest,
        log: &impl ReplicaLog,
        now_ms: i64,
    ) -> (FetchAnswer, Vec<Effect>) {
        match self.check_fetch(request, log) {
            Ok(FetchAnswer::Read { offset }) => {
                self.note_progress(request.replica_id, offset, log.log_end_offset(), now_ms);
                let mut effects = Vec::new();
                self.maybe_expand_isr(request.replica_id, now_ms, &mut effects);
                self.maybe_advance_high_watermark(&mut effects);
                (FetchAnswer::Read { offset }, effects)
            }
            Ok(answer) => (answer, Vec::new()),
            Err(e) => (FetchAnswer::Refused(e), Vec::new()),
        }
    }

    fn check_fetch(
        &self,
        request: &FetchRequest,
        log: &impl ReplicaLog,
    ) -> Result<FetchAnswer, ReplicationError> {
        let current = self.registration.leader_epoch;
        if request.current_leader_epoch < current {
            return Err(ReplicationError::FencedLeaderEpoch {
                request: request.current_leader_epoch,
                current,
            });
        }
        if request.current_leader_epoch > current {
            return Err(ReplicationError::UnknownLeaderEpoch {
                request: request.current_leader_epoch,
                current,
            });
        }
        if !self.followers.contains_key(&request.replica_id) {
            return Err(ReplicationError::NotLeaderOrFollower);
        }
        if let Some(last_epoch) = request.last_fetched_epoch {
            // Kafka's check (KIP-320): the follower's last epoch must end, in the leader's
            // log, at or past the follower's log end; otherwise the logs diverge there.
            match log.end_offset_for_epoch(last_epoch) {
                Some((epoch, end)) if epoch == last_epoch && end >= request.fetch_offset => {}
                Some((epoch, end)) => {
                    return Ok(FetchAnswer::Diverging {
                        epoch,
                        end_offset: end,
                    });
                }
                None => {
                    return Ok(FetchAnswer::Diverging {
                        epoch: -1,
                        end_offset: log.log_start_offset(),
                    });
                }
            }
        }
        let (start, end) = (log.log_start_offset(), log.log_end_offset());
        if request.fetch_offset < start || request.fetch_offset > end {
            return Err(ReplicationError::OffsetOutOfRange {
                offset: request.fetch_offset,
                log_start_offset: start,
                log_end_offset: end,
            });
        }
        Ok(FetchAnswer::Read {
            offset: request.fetch_offset,
        })
    }

    /// Kafka's `updateFetchState`: a follower is caught up at this fetch if it reached the
    /// leader's log end, or since its last fetch if it reached the end the leader had then.
    fn note_progress(&mut self, replica: i32, fetch_offset: i64, leader_end: i64, now_ms: i64) {
        let progress = self.followers.get_mut(&replica).expect("checked");
        if fetch_offset >= leader_end {
            progress.last_caught_up_ms = progress.last_caught_up_ms.max(now_ms);
        } else if fetch_offset >= progress.last_fetch_leader_end {
            progress.last_caught_up_ms = progress.last_caught_up_ms.max(progress.last_fetch_ms);
        }
        progress.durable_end = Some(fetch_offset);
        progress.last_fetch_ms = now_ms;
        progress.last_fetch_leader_end = leader_end;
    }

    fn maybe_expand_isr(&mut self, replica: i32, now_ms: i64, effects: &mut Vec<Effect>) {
        if self.proposal.is_some() || self.maximal_isr().contains(&replica) {
            return;
        }
        let durable = self.followers[&replica].durable_end.unwrap_or(-1);
        if durable >= self.high_watermark && durable >= self.epoch_start_offset {
            let mut isr = self.registration.isr.clone();
            isr.push(replica);
            self.propose(isr, now_ms, effects);
        }
    }

    /// The leader's own log is fsynced up to `durable_end`.
    pub fn on_local_flush(&mut self, durable_end: i64) -> Vec<Effect> {
        self.local_durable_end = self.local_durable_end.max(durable_end);
        let mut effects = Vec::new();
        self.maybe_advance_high_watermark(&mut effects);
        effects
    }

    fn maybe_advance_high_watermark(&mut self, effects: &mut Vec<Effect>) {
        let mut candidate = self.local_durable_end;
        for replica in self.maximal_isr() {
            if replica == self.node_id {
                continue;
            }
            match self.followers.get(&replica).and_then(|p| p.durable_end) {
                Some(end) => candidate = candidate.min(end),
                None => return,
            }
        }
        if candidate > self.high_watermark {
            self.high_watermark = candidate;
            effects.push(Effect::AdvanceHighWatermark(candidate));
        }
    }

    /// Time passes: followers that lagged too long are proposed out of the in-sync set, and
    /// an unanswered proposal is sent again.
    pub fn tick(&mut self, log: &impl ReplicaLog, now_ms: i64) -> Vec<Effect> {
        let mut effects = Vec::new();
        if let Some(p) = &mut self.proposal {
            if now_ms - p.sent_ms >= self.config.alter_partition_retry_ms {
                p.sent_ms = now_ms;
                effects.push(Effect::AlterPartition(p.request.clone()));
            }
            return effects;
        }
        let leader_end = log.log_end_offset();
        let lagging: Vec<i32> = self
            .registration
            .isr
            .iter()
            .copied()
            .filter(|&r| r != self.node_id)
            .filter(|r| {
                let p = &self.followers[r];
                p.durable_end != Some(leader_end)
                    && now_ms.saturating_sub(p.last_caught_up_ms)
                        > self.config.replica_lag_time_max_ms
            })
            .collect();
        if !lagging.is_empty() {
            let isr = self
                .registration
                .isr
                .iter()
                .copied()
                .filter(|r| !lagging.contains(r))
                .collect();
            self.propose(isr, now_ms, &mut effects);
        }
        effects
    }

    fn propose(&mut self, new_isr: Vec<i32>, now_ms: i64, effects: &mut Vec<Effect>) {
        let request = AlterPartitionRequest {
            leader_id: self.node_id,
            leader_epoch: self.registration.leader_epoch,
            partition_epoch: self.registration.partition_epoch,
            new_isr,
        };
        effects.push(Effect::AlterPartition(request.clone()));
        self.proposal = Some(Proposal {
            request,
            sent_ms: now_ms,
        });
    }

    /// The controller's answer to the proposal in flight: the new registration, or why not.
    /// An answer to any other proposal (a duplicate, a late one) changes nothing.
    pub fn on_alter_partition_response(
        &mut self,
        request: &AlterPartitionRequest,
        result: Result<PartitionRegistration, ReplicationError>,
    ) -> Vec<Effect> {
        let in_flight = self.proposal.as_ref().map(|p| &p.request);
        if in_flight != Some(request) {
            return Vec::new();
        }
        match result {
            Ok(registration) => return self.on_registration(registration),
            // The registration moved on; the leader waits for it to arrive (or is replaced).
            Err(ReplicationError::InvalidUpdateVersion { .. })
            | Err(ReplicationError::FencedLeaderEpoch { .. })
            | Err(ReplicationError::NotLeaderOrFollower)
            | Err(ReplicationError::IneligibleReplica(_)) => self.proposal = None,
            // Anything else is retried by `tick`.
            Err(_) => {}
        }
        Vec::new()
    }

    /// A newer registration of this leader's epoch (an in-sync set the controller changed).
    /// Returns the effects; the caller replaces the leader when the epoch or leader changed.
    pub fn on_registration(&mut self, registration: PartitionRegistration) -> Vec<Effect> {
        let same_epoch = registration.leader == self.node_id
            && registration.leader_epoch == self.registration.leader_epoch;
        if !same_epoch || registration.partition_epoch <= self.registration.partition_epoch {
            return Vec::new();
        }
        self.registration = registration;
        self.proposal = None;
        let mut effects = Vec::new();
        self.maybe_advance_high_watermark(&mut effects);
        effects
    }

    /// `min.insync.replicas` changed (a topic config).
    pub fn set_min_insync_replicas(&mut self, min: usize) {
        self.config.min_insync_replicas = min;
    }

    /// Before an `acks=all` append: enough in-sync replicas to take it.
    pub fn check_acks_all(&self) -> Result<(), ReplicationError> {
        let isr = self.registration.isr.len();
        let min = self.config.min_insync_replicas;
        if isr < min {
            return Err(ReplicationError::NotEnoughReplicas { isr, min });
        }
        Ok(())
    }

    /// An `acks=all` append ending before `required_offset`: None while the high watermark is
    /// below it, then whether it may be acknowledged (the in-sync set may have shrunk below
    /// `min.insync.replicas` meanwhile, as Kafka's `checkEnoughReplicasReachOffset` finds).
    pub fn acks_all_outcome(&self, required_offset: i64) -> Option<Result<(), ReplicationError>> {
        if self.high_watermark < required_offset {
            return None;
        }
        let isr = self.registration.isr.len();
        let min = self.config.min_insync_replicas;
        if isr < min {
            return Some(Err(ReplicationError::NotEnoughReplicasAfterAppend {
                isr,
                min,
            }));
        }
        Some(Ok(()))
    }
}
