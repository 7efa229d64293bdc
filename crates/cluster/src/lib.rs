//! A node's place in the cluster, as the binary runs it: the metadata log (every node is a
//! voter of it today, so every node applies it and holds the committed image), the controller
//! listener that carries the voters' traffic, the active controller's clock (`tick`: broker
//! sessions expire), the broker's registration and heartbeats (`session`), and commands handed
//! to the active controller wherever it is.
//!
//! A single node is a cluster of one: the same log with one voter, so `sluice serve` with no
//! cluster flags runs this very code.
//!
//! Not owned here: what the metadata means (`sluice-controller`), Raft and its storage and
//! network (`sluice-consensus`), and what a broker does with the image (`sluice-broker` reads
//! it through the binary).

mod session;

use sluice_consensus::{MetadataQuorum, QuorumError};
use sluice_controller::{
    ControllerCommand, ControllerConfig, ControllerReply, MetadataImage, Registration,
};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use session::BrokerStatus;
pub use sluice_consensus::{ControllerTls, Voter};

/// How long a command waits between attempts while no active controller answers.
const SUBMIT_RETRY_INTERVAL: Duration = Duration::from_millis(100);
/// How long giving a new cluster its id may take (the voters electing a first leader).
const BOOTSTRAP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long InitProducerId waits for a block of producer ids (a client retries after it).
const PRODUCER_IDS_TIMEOUT: Duration = Duration::from_secs(10);

/// How often the active controller looks for expired broker sessions.
const TICK_INTERVAL: Duration = Duration::from_millis(250);

#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// `node.id`: this node's id as a voter and as a broker.
    pub node_id: i32,
    /// Where the metadata log lives.
    pub metadata_dir: PathBuf,
    /// The controller listener, if this node serves one (every voter of a cluster of several).
    pub controller_listen: Option<SocketAddr>,
    /// The voters of the metadata log; they name this node.
    pub voters: Vec<Voter>,
    pub controller: ControllerConfig,
    /// `broker.heartbeat.interval.ms`.
    pub heartbeat_interval_ms: u64,
    /// Mutual TLS on the controller listener and to the other controllers
    /// (`controller_listener_security_protocol SSL`); `None`: plain TCP.
    pub controller_tls: Option<ControllerTls>,
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot listen for controllers on {address}: {source}")]
    Listen {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot open the metadata log in {dir}: {source}")]
    Open { dir: String, source: std::io::Error },
    #[error(transparent)]
    Quorum(#[from] QuorumError),
    #[error("the controller refused: {0}")]
    Refused(sluice_controller::ControllerError),
    #[error("unexpected controller answer: {0:?}")]
    Unexpected(ControllerReply),
}

/// This node in the cluster; `shutdown` stops it.
pub struct ClusterNode {
    node_id: i32,
    heartbeat_interval: Duration,
    quorum: Arc<MetadataQuorum>,
    images: watch::Receiver<Arc<MetadataImage>>,
    status: watch::Receiver<BrokerStatus>,
    status_sender: Arc<watch::Sender<BrokerStatus>>,
    controller_address: Option<SocketAddr>,
    cancel: CancellationToken,
    tasks: TaskTracker,
    /// The broker's session: stopped first when the node leaves (`leave`).
    session: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    session_cancel: CancellationToken,
    /// The controlled shutdown was sent (at most once).
    left: std::sync::atomic::AtomicBool,
    /// Held while the node runs: one process per metadata log.
    _lock: std::fs::File,
}

impl ClusterNode {
    /// Opens the metadata log, binds the controller listener and starts the controller's
    /// clock. The broker's session starts with `run_broker`.
    pub async fn start(config: ClusterConfig) -> Result<ClusterNode, ClusterError> {
        let listener = match config.controller_listen {
            Some(address) => {
                let listener = TcpListener::bind(address)
                    .await
                    .map_err(|source| ClusterError::Listen { address, source })?;
                Some(listener)
            }
            None => None,
        };
        let controller_address = match &listener {
            Some(l) => Some(l.local_addr().map_err(|source| ClusterError::Listen {
                address: config.controller_listen.expect("bound"),
                source,
            })?),
            None => None,
        };
        let dir = &config.metadata_dir;
        let open_error = |source| ClusterError::Open {
            dir: dir.display().to_string(),
            source,
        };
        let lock = lock_dir(dir).map_err(open_error)?;
        let quorum = sluice_consensus::open(
            config.node_id as u64,
            dir,
            &config.voters,
            config.controller,
            config.controller_tls.clone(),
        )
        .await
        .map_err(open_error)?;
        let cancel = CancellationToken::new();
        let tasks = TaskTracker::new();
        if let Some(listener) = listener {
            let serving = sluice_consensus::serve(listener, quorum.clone(), config.controller_tls);
            let stop = cancel.clone();
            tasks.spawn(async move {
                tokio::select! {
                    _ = serving => {}
                    _ = stop.cancelled() => {}
                }
            });
        }
        tasks.spawn(tick_loop(quorum.clone(), cancel.clone()));
        let voter = config.voters.iter().any(|v| v.id == config.node_id as u64);
        if !voter {
            // A broker that is not a controller receives the log as a learner, on its
            // controller listener (the settings make sure it has one).
            let own = controller_address
                .map(|a| a.to_string())
                .unwrap_or_default();
            tasks.spawn(join_loop(
                quorum.clone(),
                config.voters.clone(),
                own,
                cancel.clone(),
            ));
        }
        let (status_sender, status) = watch::channel(BrokerStatus::default());
        tracing::info!(
            node_id = config.node_id,
            voters = config.voters.len(),
            controller_listen = ?controller_address,
            "metadata log open"
        );
        Ok(ClusterNode {
            node_id: config.node_id,
            heartbeat_interval: Duration::from_millis(config.heartbeat_interval_ms.max(1)),
            images: quorum.state().images(),
            quorum,
            status,
            status_sender: Arc::new(status_sender),
            controller_address,
            session: std::sync::Mutex::new(None),
            session_cancel: cancel.child_token(),
            cancel,
            tasks,
            left: std::sync::atomic::AtomicBool::new(false),
            _lock: lock,
        })
    }

    pub fn node_id(&self) -> i32 {
        self.node_id
    }

    /// The controller listener's bound address, if this node serves one.
    pub fn controller_address(&self) -> Option<SocketAddr> {
        self.controller_address
    }

    /// Waits until some controller is active, at most `limit`; its id.
    pub async fn wait_for_controller(&self, limit: Duration) -> Option<i32> {
        let leader = self.quorum.wait_for_leader(limit).await;
        leader.map(|id| id as i32)
    }

    /// The committed metadata image, as this node has applied it.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.images.borrow().clone()
    }

    /// The image as it changes.
    pub fn images(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.images.clone()
    }

    /// The active controller, as this node knows it.
    pub fn controller_id(&self) -> Option<i32> {
        self.quorum.leader().map(|id| id as i32)
    }

    /// This node's broker session as the controller last answered it.
    pub fn broker_status(&self) -> BrokerStatus {
        *self.status.borrow()
    }

    /// Runs `command` on the active controller, trying again while there is none to be
    /// reached (an election, a leader still committing its first entry, a controller just
    /// gone) until `limit` has passed. A refusal is final.
    pub async fn submit(
        &self,
        command: ControllerCommand,
        limit: Duration,
    ) -> Result<ControllerReply, ClusterError> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let attempt = self.quorum.submit(command.clone(), sluice_types::now_ms);
            match tokio::time::timeout_at(deadline, attempt).await {
                Ok(Ok(ControllerReply::Refused(e))) => return Err(ClusterError::Refused(e)),
                Ok(Ok(reply)) => return Ok(reply),
                Ok(Err(e)) if tokio::time::Instant::now() >= deadline => return Err(e.into()),
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "no active controller reached yet; retrying");
                    tokio::time::sleep(SUBMIT_RETRY_INTERVAL).await;
                }
                Err(_) => {
                    let why = "no answer in time".to_string();
                    return Err(QuorumError::NotCommitted(why).into());
                }
            }
        }
    }

    /// Gives a new cluster its id (`cluster_id`, this node's own, unless the log already has
    /// one); answers the cluster's id.
    pub async fn bootstrap(&self, cluster_id: &str) -> Result<String, ClusterError> {
        let command = ControllerCommand::Bootstrap {
            cluster_id: cluster_id.to_string(),
        };
        self.submit(command, BOOTSTRAP_TIMEOUT).await?;
        // Committed; this node's image holds it once the log reaches it (at once on the
        // active controller, after one replication round elsewhere).
        let mut images = self.images.clone();
        let arrived = images.wait_for(|image| image.cluster_id.is_some());
        let not_arrived = || {
            let why = "the cluster id did not reach this node's image".to_string();
            ClusterError::Quorum(QuorumError::NotCommitted(why))
        };
        let image = tokio::time::timeout(BOOTSTRAP_TIMEOUT, arrived)
            .await
            .map_err(|_| not_arrived())?
            .map_err(|_| not_arrived())?;
        Ok(image.cluster_id.clone().expect("waited for"))
    }

    /// A block of producer ids for this node's broker: `(first, count)`.
    pub async fn allocate_producer_ids(&self) -> Result<(i64, i64), ClusterError> {
        let Some(broker_epoch) = self.broker_status().broker_epoch else {
            let why = "the broker is not registered yet".to_string();
            return Err(QuorumError::NotCommitted(why).into());
        };
        let command = ControllerCommand::AllocateProducerIds {
            broker_id: self.node_id,
            broker_epoch,
        };
        match self.submit(command, PRODUCER_IDS_TIMEOUT).await? {
            ControllerReply::ProducerIds(first, count) => Ok((first, count)),
            other => Err(ClusterError::Unexpected(other)),
        }
    }

    /// Keeps the controller from handing out producer ids below `below` (those a data
    /// directory taken over gave out itself).
    pub async fn reserve_producer_ids(&self, below: i64) -> Result<(), ClusterError> {
        let command = ControllerCommand::ReserveProducerIds { below };
        self.submit(command, BOOTSTRAP_TIMEOUT).await?;
        Ok(())
    }

    /// Starts the broker's session: it registers and heartbeats until `shutdown`.
    pub fn run_broker(&self, registration: Registration) {
        let session = self.tasks.spawn(session::run(
            self.quorum.clone(),
            registration,
            self.heartbeat_interval,
            self.status_sender.clone(),
            self.session_cancel.clone(),
        ));
        *self.session.lock().unwrap_or_else(|p| p.into_inner()) = Some(session);
    }

    /// Waits until the broker is registered and unfenced, at most `limit`.
    pub async fn wait_unfenced(&self, limit: Duration) -> bool {
        let mut status = self.status.clone();
        let unfenced = status.wait_for(|s| s.broker_epoch.is_some() && !s.fenced);
        tokio::time::timeout(limit, unfenced)
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Ends the broker's session with a controlled shutdown: the controller fences it and
    /// moves its leadership to in-sync followers, so clients move before the broker stops
    /// serving. The metadata log keeps running (`shutdown` stops it). Once only. Whether the
    /// controller took it (false also when the broker never registered, or left before).
    pub async fn leave(&self) -> bool {
        self.session_cancel.cancel();
        let session = self
            .session
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(session) = session {
            let _ = session.await;
        }
        if self.left.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return false;
        }
        let status = *self.status.borrow();
        match status.broker_epoch {
            Some(epoch) => session::controlled_shutdown(&self.quorum, self.node_id, epoch).await,
            None => false,
        }
    }

    /// Leaves (`leave`, if not done already), then stops the metadata log.
    pub async fn shutdown(&self) {
        let _ = self.leave().await;
        self.cancel.cancel();
        self.tasks.close();
        self.tasks.wait().await;
        self.quorum.shutdown().await;
    }
}

/// Takes `dir`'s lock file (creating the directory): a second process on the same metadata
/// log would write it too.
fn lock_dir(dir: &std::path::Path) -> std::io::Result<std::fs::File> {
    std::fs::create_dir_all(dir)?;
    let lock = std::fs::File::create(dir.join(".lock"))?;
    lock.try_lock().map_err(|_| {
        std::io::Error::other(format!(
            "{} is locked by another sluice process",
            dir.display()
        ))
    })?;
    Ok(lock)
}

/// Asks the voters until the active controller has added this node as a learner.
async fn join_loop(
    quorum: Arc<MetadataQuorum>,
    voters: Vec<Voter>,
    own_address: String,
    cancel: CancellationToken,
) {
    loop {
        let joined = tokio::select! {
            j = quorum.join_as_learner(&voters, &own_address) => j,
            _ = cancel.cancelled() => return,
        };
        match joined {
            Ok(()) => {
                tracing::info!("receiving the metadata log as a learner");
                return;
            }
            Err(e) => tracing::debug!(error = %e, "not added as a learner yet; retrying"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = cancel.cancelled() => return,
        }
    }
}

async fn tick_loop(quorum: Arc<MetadataQuorum>, cancel: CancellationToken) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(TICK_INTERVAL) => {}
            _ = cancel.cancelled() => return,
        }
        if let Err(e) = quorum.tick(sluice_types::now_ms()).await {
            tracing::debug!(error = %e, "controller tick not committed");
        }
    }
}
