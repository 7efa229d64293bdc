//! The replica manager, in the role of Kafka's `ReplicaManager`: it runs `sluice-replication`'s
//! pure state machines on this broker's logs, for every partition this broker replicates with
//! others.
//!
//! - **Roles** follow the metadata image (`apply`, called by the broker's publisher): a
//!   partition with one replica is a *sole replica* (its high watermark follows its log end, as
//!   on a single node, and nothing here runs for it); with several, this broker is its
//!   *leader* (`leader::LeaderReplica`: followers' fetches, its own fsyncs and time move the
//!   high watermark and propose in-sync sets), a *follower* of another broker
//!   (`fetcher`: one task per leader broker fetches for every partition it leads here), or
//!   nothing while the partition has no leader.
//! - **Fencing** is the log's: a log that leads takes no follower's copy, and one that follows
//!   epoch E takes no leader's append and no copy or truncation for another epoch
//!   (`Log::become_follower`, `Log::check_follows`), so a fetch answered after the role changed
//!   cannot touch the log.
//! - **In-sync set proposals** leave as `Proposal`s on a channel the broker drains into the
//!   controller (AlterPartition); answers come back through `on_alter_partition_response`.
//!
//! Not owned here: the rules (`sluice-replication`), the bytes (`sluice-storage`), the Fetch
//! API's leader side on the wire (the broker's fetch handler calls `on_follower_fetch`), and
//! where brokers are (`BrokerAddresses`, answered from the image).

mod fetcher;
mod leader;
mod log_view;

pub use leader::LeaderReplica;
pub use sluice_replication::{
    AlterPartitionRequest, FetchAnswer, FetchRequest, LeaderConfig, NO_LEADER,
    PartitionRegistration, ReplicationError,
};

use sluice_replication::FollowerConfig;
use sluice_storage::{Partition, StorageError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How many in-sync set proposals may wait for the broker to send them; a proposal that finds
/// the queue full is dropped, and its leader sends it again after `alter_partition_retry_ms`.
const PROPOSALS_QUEUED_MAX: usize = 1024;

#[derive(Debug, Clone)]
pub struct ReplicaConfig {
    pub node_id: i32,
    /// `replica.lag.time.max.ms` and the proposal retry; `min.insync.replicas` comes per
    /// partition with `apply`.
    pub leader: LeaderConfig,
    pub follower: FollowerConfig,
    /// How long a leader holds a follower's fetch that finds nothing new
    /// (`replica.fetch.wait.max.ms`).
    pub fetch_wait_max_ms: i32,
    /// A follower's fetch response size (`replica.fetch.response.max.bytes`) and per
    /// partition (`replica.fetch.max.bytes`).
    pub fetch_response_bytes_max: i32,
    pub fetch_partition_bytes_max: i32,
    /// How often a leader checks for lagging followers and unanswered proposals.
    pub tick_ms: u64,
    /// The address fetchers' connections leave from (this broker's listener's).
    pub local_address: Option<std::net::IpAddr>,
    /// TLS and the SASL login of the leaders' listener (`inter_broker_listener_name`).
    pub security: sluice_client::security::Security,
}

impl ReplicaConfig {
    pub fn new(node_id: i32) -> ReplicaConfig {
        ReplicaConfig {
            node_id,
            leader: LeaderConfig::default(),
            follower: FollowerConfig::default(),
            fetch_wait_max_ms: 500,
            fetch_response_bytes_max: 10 * 1024 * 1024,
            fetch_partition_bytes_max: 1024 * 1024,
            tick_ms: 250,
            local_address: None,
            security: Default::default(),
        }
    }
}

/// A leader's proposal of a new in-sync set, for the broker to send to the controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    pub topic: String,
    pub topic_id: uuid::Uuid,
    pub partition: i32,
    pub request: AlterPartitionRequest,
}

/// Where the other brokers' client listeners are (`host:port`), as the metadata image says.
pub trait BrokerAddresses: Send + Sync + 'static {
    fn address_of(&self, broker_id: i32) -> Option<String>;
}

type Key = (String, i32);

/// What this broker is for one replicated partition.
#[derive(Clone)]
enum Role {
    Leader(Arc<LeaderReplica>),
    Follower(Arc<FollowTarget>),
}

/// A partition this broker follows, and whom: the fetcher for `leader_id` copies it.
#[derive(Debug)]
pub(crate) struct FollowTarget {
    pub topic: String,
    pub index: i32,
    pub partition: Arc<Partition>,
    pub leader_id: i32,
    pub leader_epoch: i32,
}

pub(crate) struct Shared {
    pub config: ReplicaConfig,
    roles: Mutex<HashMap<Key, Role>>,
    /// The running fetchers, by leader broker id, and how to wake each.
    fetchers: Mutex<HashMap<i32, Arc<Notify>>>,
    proposals: mpsc::Sender<Proposal>,
    pub addresses: Arc<dyn BrokerAddresses>,
    pub tasks: TaskTracker,
    pub shutdown: CancellationToken,
}

/// The replica manager of one broker (see the module comment).
#[derive(Clone)]
pub struct ReplicaManager {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ReplicaManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicaManager")
            .field("node_id", &self.shared.config.node_id)
            .field("roles", &self.shared.lock_roles().len())
            .finish()
    }
}

impl ReplicaManager {
    /// A manager whose tasks run on `tasks` until `shutdown`; the receiver yields the in-sync
    /// set proposals its leaders make.
    pub fn new(
        config: ReplicaConfig,
        addresses: Arc<dyn BrokerAddresses>,
        tasks: TaskTracker,
        shutdown: CancellationToken,
    ) -> (ReplicaManager, mpsc::Receiver<Proposal>) {
        let (proposals, receiver) = mpsc::channel(PROPOSALS_QUEUED_MAX);
        let shared = Shared {
            config,
            roles: Mutex::new(HashMap::new()),
            fetchers: Mutex::new(HashMap::new()),
            proposals,
            addresses,
            tasks,
            shutdown,
        };
        let manager = ReplicaManager {
            shared: Arc::new(shared),
        };
        (manager, receiver)
    }

    /// Makes `partition` (of `topic`, id `topic_id`) follow `registration`: a sole replica, its
    /// leader (beginning the registration's epoch), a follower of its leader, or idle without
    /// one. Blocking (it may write the epoch cache): call it off the async threads, inside the
    /// runtime (it spawns tasks).
    pub fn apply(
        &self,
        topic: &str,
        topic_id: uuid::Uuid,
        partition: &Arc<Partition>,
        registration: &PartitionRegistration,
        min_insync_replicas: usize,
    ) -> Result<(), StorageError> {
        let node = self.shared.config.node_id;
        let key = (topic.to_string(), partition.index());
        if registration.replicas.len() <= 1 {
            self.shared.stop(&key);
            partition.set_sole_replica(true);
            if registration.leader == node {
                let mut log = partition.log();
                if log.leader_epoch() < registration.leader_epoch || log.is_follower() {
                    log.become_leader(registration.leader_epoch)?;
                }
            }
            return Ok(());
        }
        partition.set_sole_replica(false);
        if registration.leader == node {
            self.lead(key, topic_id, partition, registration, min_insync_replicas)
        } else if registration.leader == NO_LEADER {
            self.shared.stop(&key);
            Ok(())
        } else {
            self.follow(key, partition, registration)
        }
    }

    fn lead(
        &self,
        key: Key,
        topic_id: uuid::Uuid,
        partition: &Arc<Partition>,
        registration: &PartitionRegistration,
        min_insync_replicas: usize,
    ) -> Result<(), StorageError> {
        let current = self.shared.lock_roles().get(&key).cloned();
        if let Some(Role::Leader(leader)) = &current
            && leader.leader_epoch() == registration.leader_epoch
        {
            leader.on_registration(&self.shared, registration.clone(), min_insync_replicas);
            return Ok(());
        }
        self.shared.stop(&key);
        let leader = LeaderReplica::start(
            &self.shared,
            (&key.0, topic_id),
            partition.clone(),
            registration.clone(),
            min_insync_replicas,
        )?;
        self.shared.lock_roles().insert(key, Role::Leader(leader));
        Ok(())
    }

    fn follow(
        &self,
        key: Key,
        partition: &Arc<Partition>,
        registration: &PartitionRegistration,
    ) -> Result<(), StorageError> {
        let (leader_id, leader_epoch) = (registration.leader, registration.leader_epoch);
        let mut roles = self.shared.lock_roles();
        if let Some(Role::Follower(t)) = roles.get(&key)
            && t.leader_id == leader_id
            && t.leader_epoch == leader_epoch
        {
            return Ok(());
        }
        if let Some(Role::Leader(leader)) = roles.remove(&key) {
            leader.stop();
        }
        partition.log().become_follower(leader_epoch)?;
        let target = FollowTarget {
            topic: key.0.clone(),
            index: key.1,
            partition: partition.clone(),
            leader_id,
            leader_epoch,
        };
        roles.insert(key, Role::Follower(Arc::new(target)));
        self.shared.wake_fetcher(leader_id, &roles);
        Ok(())
    }

    /// Forgets every partition `keep` does not name (deleted, or no longer replicated here).
    pub fn retain(&self, keep: impl Fn(&str, i32) -> bool) {
        let mut roles = self.shared.lock_roles();
        roles.retain(|(topic, index), role| {
            let kept = keep(topic, *index);
            if !kept && let Role::Leader(leader) = role {
                leader.stop();
            }
            kept
        });
    }

    /// The leader of `topic`/`index` here, if this broker leads it with followers.
    pub fn leader(&self, topic: &str, index: i32) -> Option<Arc<LeaderReplica>> {
        match self.shared.lock_roles().get(&(topic.to_string(), index)) {
            Some(Role::Leader(leader)) => Some(leader.clone()),
            _ => None,
        }
    }

    /// A follower's fetch of `topic`/`index`: how to answer it, and the partition to read
    /// from. Refused with NOT_LEADER_OR_FOLLOWER unless this broker leads it with followers.
    pub fn on_follower_fetch(
        &self,
        topic: &str,
        index: i32,
        request: &FetchRequest,
    ) -> Result<(Arc<Partition>, FetchAnswer), ReplicationError> {
        let leader = self
            .leader(topic, index)
            .ok_or(ReplicationError::NotLeaderOrFollower)?;
        let answer = leader.on_follower_fetch(&self.shared, request);
        Ok((leader.partition().clone(), answer))
    }

    /// The controller's answer to a proposal: the new registration, or why not.
    pub fn on_alter_partition_response(
        &self,
        topic: &str,
        index: i32,
        request: &AlterPartitionRequest,
        result: Result<PartitionRegistration, ReplicationError>,
    ) {
        if let Some(leader) = self.leader(topic, index) {
            leader.on_alter_partition_response(&self.shared, request, result);
        }
    }

    /// How many partitions this broker leads with followers, and follows.
    pub fn counts(&self) -> (usize, usize) {
        let roles = self.shared.lock_roles();
        let leaders = roles
            .values()
            .filter(|r| matches!(r, Role::Leader(_)))
            .count();
        (leaders, roles.len() - leaders)
    }
}

impl Shared {
    fn lock_roles(&self) -> MutexGuard<'_, HashMap<Key, Role>> {
        self.roles.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_fetchers(&self) -> MutexGuard<'_, HashMap<i32, Arc<Notify>>> {
        self.fetchers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Ends this broker's role for `key` (a leader's task stops; a fetcher drops the
    /// partition at its next round).
    fn stop(&self, key: &Key) {
        if let Some(Role::Leader(leader)) = self.lock_roles().remove(key) {
            leader.stop();
        }
    }

    /// Wakes the fetcher for `leader_id`, starting it if none runs. Called with the roles
    /// locked, so that a fetcher finding no partition and ending (`follow_targets`) cannot
    /// miss a partition added meanwhile.
    fn wake_fetcher(self: &Arc<Self>, leader_id: i32, _roles: &HashMap<Key, Role>) {
        let mut fetchers = self.lock_fetchers();
        if let Some(wake) = fetchers.get(&leader_id) {
            wake.notify_one();
            return;
        }
        let wake = Arc::new(Notify::new());
        fetchers.insert(leader_id, wake.clone());
        let shared = self.clone();
        self.tasks.spawn(fetcher::run(shared, leader_id, wake));
    }

    /// The partitions the fetcher for `leader_id` copies now; None (and the fetcher is
    /// forgotten, so the next follow starts another) when there are none.
    pub(crate) fn follow_targets(&self, leader_id: i32) -> Option<Vec<Arc<FollowTarget>>> {
        let roles = self.lock_roles();
        let targets: Vec<Arc<FollowTarget>> = roles
            .values()
            .filter_map(|r| match r {
                Role::Follower(t) if t.leader_id == leader_id => Some(t.clone()),
                _ => None,
            })
            .collect();
        if targets.is_empty() {
            self.lock_fetchers().remove(&leader_id);
            return None;
        }
        Some(targets)
    }

    /// Queues a leader's proposal for the broker to send (dropped if the queue is full: the
    /// leader sends it again).
    pub(crate) fn propose(&self, proposal: Proposal) {
        if let Err(e) = self.proposals.try_send(proposal) {
            tracing::debug!(error = %e, "an in-sync set proposal waits for its retry");
        }
    }
}

/// Milliseconds on a monotonic clock (from the first call): the state machines' time, which
/// a wall clock set back must not confuse.
pub(crate) fn now_ms() -> i64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let start = START.get_or_init(std::time::Instant::now);
    start.elapsed().as_millis() as i64
}
