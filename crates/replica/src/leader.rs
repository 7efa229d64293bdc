//! The leader side of one partition: `replication::Leader` on this broker's log. Three things
//! move it, each carried out here:
//! - a follower's fetch (`on_follower_fetch`, from the broker's fetch handler): its fetch
//!   offset is durable on the follower, so it may move the high watermark or let the
//!   follower join the in-sync set;
//! - the leader's own fsyncs (its task watches the partition's recovery point), which it asks
//!   for whenever the log end moves: the high watermark counts only what is on the leader's
//!   disk too;
//! - time (`tick`): lagging followers are proposed out, an unanswered proposal is sent again.
//!
//! `acks=all` waits here (`wait_committed`) for the high watermark to pass the append, then for
//! Kafka's check that the in-sync set did not shrink below `min.insync.replicas` meanwhile.
//!
//! The state's lock is taken before the log's and never held across an await or I/O.

use crate::log_view::LogView;
use crate::{Proposal, Shared, now_ms};
use sluice_replication::{
    AlterPartitionRequest, Effect, FetchAnswer, FetchRequest, Leader, PartitionRegistration,
    ReplicationError,
};
use sluice_storage::{Partition, StorageError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// This broker leading one partition that has followers.
#[derive(Debug)]
pub struct LeaderReplica {
    topic: String,
    topic_id: uuid::Uuid,
    partition: Arc<Partition>,
    leader_epoch: i32,
    state: Mutex<Leader>,
    /// Cancelled when this broker stops leading the partition in this epoch.
    stopped: CancellationToken,
}

impl LeaderReplica {
    /// Begins `registration`'s leader epoch in the log and starts the leader's task.
    pub(crate) fn start(
        shared: &Arc<Shared>,
        (topic, topic_id): (&str, uuid::Uuid),
        partition: Arc<Partition>,
        registration: PartitionRegistration,
        min_insync_replicas: usize,
    ) -> Result<Arc<LeaderReplica>, StorageError> {
        let leader_epoch = registration.leader_epoch;
        let mut config = shared.config.leader;
        config.min_insync_replicas = min_insync_replicas;
        let state = {
            let mut log = partition.log();
            if log.leader_epoch() < leader_epoch || log.is_follower() {
                log.become_leader(leader_epoch)?;
            }
            let (high_watermark, durable_end) = (log.high_watermark(), log.recovery_point());
            let node = shared.config.node_id;
            let view = LogView(&log);
            Leader::new(
                node,
                registration,
                &view,
                high_watermark,
                durable_end,
                now_ms(),
                config,
            )
        };
        let leader = Arc::new(LeaderReplica {
            topic: topic.to_string(),
            topic_id,
            partition,
            leader_epoch,
            state: Mutex::new(state),
            stopped: CancellationToken::new(),
        });
        tracing::info!(
            topic,
            partition = leader.partition.index(),
            leader_epoch,
            "leading a replicated partition"
        );
        // What the log holds beyond its recovery point (copied as a follower) counts once it
        // is fsynced.
        leader.partition.request_flush();
        shared.tasks.spawn(leader.clone().run(shared.clone()));
        Ok(leader)
    }

    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch
    }
    pub fn partition(&self) -> &Arc<Partition> {
        &self.partition
    }
    /// The in-sync set the controller agreed to.
    pub fn isr(&self) -> Vec<i32> {
        self.lock().isr().to_vec()
    }

    pub(crate) fn stop(&self) {
        self.stopped.cancel();
    }

    fn lock(&self) -> MutexGuard<'_, Leader> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The leader's task: its fsyncs, its log end (which asks for them) and time.
    async fn run(self: Arc<Self>, shared: Arc<Shared>) {
        let mut durability = self.partition.subscribe_durability();
        let mut log_end = self.partition.subscribe_log_end();
        // An fsync that ended between `start` reading the recovery point and the subscription
        // above (a follower's copy, fsynced by its fetcher as this broker took the lead) sends
        // no change any more: read what it left, or the high watermark could wait for an fsync
        // that never comes (a retried batch appends nothing, so nothing asks for one).
        let point = durability.borrow_and_update().recovery_point;
        let effects = self.lock().on_local_flush(point);
        self.carry_out(&shared, effects);
        let mut ticks = tokio::time::interval(Duration::from_millis(shared.config.tick_ms));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = self.stopped.cancelled() => return,
                _ = shared.shutdown.cancelled() => return,
                changed = durability.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let point = durability.borrow_and_update().recovery_point;
                    let effects = self.lock().on_local_flush(point);
                    self.carry_out(&shared, effects);
                }
                changed = log_end.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    log_end.borrow_and_update();
                    self.partition.request_flush();
                }
                _ = ticks.tick() => {
                    let effects = {
                        let mut state = self.lock();
                        let log = self.partition.log();
                        // The durable end as the log has it, whatever notice was missed.
                        let mut effects = state.on_local_flush(log.recovery_point());
                        effects.extend(state.tick(&LogView(&log), now_ms()));
                        effects
                    };
                    self.carry_out(&shared, effects);
                }
            }
        }
    }

    pub(crate) fn on_follower_fetch(&self, shared: &Shared, request: &FetchRequest) -> FetchAnswer {
        let (answer, effects) = {
            let mut state = self.lock();
            let log = self.partition.log();
            state.on_fetch(request, &LogView(&log), now_ms())
        };
        self.carry_out(shared, effects);
        answer
    }

    pub(crate) fn on_registration(
        &self,
        shared: &Shared,
        registration: PartitionRegistration,
        min_insync_replicas: usize,
    ) {
        let effects = {
            let mut state = self.lock();
            state.set_min_insync_replicas(min_insync_replicas);
            state.on_registration(registration)
        };
        self.carry_out(shared, effects);
    }

    pub(crate) fn on_alter_partition_response(
        &self,
        shared: &Shared,
        request: &AlterPartitionRequest,
        result: Result<PartitionRegistration, ReplicationError>,
    ) {
        let effects = self.lock().on_alter_partition_response(request, result);
        self.carry_out(shared, effects);
    }

    /// For an `acks=all` append ending before `offset`: resolves once the high watermark
    /// passes it (with Kafka's after-append check of the in-sync set), or with
    /// NOT_LEADER_OR_FOLLOWER once this broker stops leading the partition first.
    pub async fn wait_committed(&self, offset: i64) -> Result<(), ReplicationError> {
        if !self.wait_high_watermark(offset).await {
            return Err(ReplicationError::NotLeaderOrFollower);
        }
        // The partition's high watermark moves only by this leader's effects, so the state's
        // has passed `offset` too.
        self.lock().acks_all_outcome(offset).unwrap_or(Ok(()))
    }

    /// Resolves true once the high watermark reaches `offset`, false once this broker stops
    /// leading the partition first.
    pub async fn wait_high_watermark(&self, offset: i64) -> bool {
        self.partition.request_flush();
        let mut high_watermark = self.partition.subscribe_high_watermark();
        tokio::select! {
            reached = high_watermark.wait_for(|hw| *hw >= offset) => reached.is_ok(),
            _ = self.stopped.cancelled() => false,
        }
    }

    /// Before an `acks=all` append: enough in-sync replicas (`min.insync.replicas`) to take it.
    pub fn check_acks_all(&self) -> Result<(), ReplicationError> {
        self.lock().check_acks_all()
    }

    fn carry_out(&self, shared: &Shared, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::AdvanceHighWatermark(offset) => {
                    if let Err(e) = self.partition.advance_high_watermark(offset) {
                        tracing::warn!(topic = %self.topic, partition = self.partition.index(), offset, error = %e, "the high watermark could not move");
                    }
                }
                Effect::AlterPartition(request) => {
                    tracing::info!(topic = %self.topic, partition = self.partition.index(), isr = ?request.new_isr, "proposing an in-sync set");
                    shared.propose(Proposal {
                        topic: self.topic.clone(),
                        topic_id: self.topic_id,
                        partition: self.partition.index(),
                        request,
                    });
                }
                other => {
                    debug_assert!(
                        false,
                        "a leader was asked for a follower's effect: {other:?}"
                    );
                }
            }
        }
    }
}
