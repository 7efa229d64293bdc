//! The broker: its state, its listener and its lifecycle (start, serve, shut down cleanly).

use crate::admission::Admission;
use crate::background;
use crate::config::BrokerConfig;
use crate::connection;
use crate::groups::Groups;
use crate::metrics::Metrics;
use crate::transactions::Transactions;
use sluice_storage::{LogManager, Partition, StorageError, Topic};
use sluice_types::limits::{INTERNAL_CONNECTIONS_MAX, UNFINISHED_FRAME_BYTES_MAX};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The client listener's name, as brokers register it.
pub(crate) const CLIENT_LISTENER: &str = "PLAINTEXT";
/// The in-process gateway's loopback listener's name.
pub(crate) const INTERNAL_LISTENER: &str = "INTERNAL";

/// How long shutdown waits for connections to answer the requests they already read.
const SHUTDOWN_DRAIN_MS: u64 = 10_000;

/// Everything the handlers share.
#[derive(Debug)]
pub struct Broker {
    pub(crate) config: BrokerConfig,
    pub(crate) logs: LogManager,
    pub(crate) cluster_id: String,
    /// The cluster's committed metadata (`metadata_image` reads it).
    pub(crate) cluster: Arc<dyn crate::ClusterView>,
    /// Producer ids for InitProducerId, in blocks from the controller.
    pub(crate) producer_ids: crate::producer_ids::ProducerIdBlocks,
    groups: OnceLock<Arc<Groups>>,
    transactions: OnceLock<Arc<Transactions>>,
    pub(crate) metrics: Arc<Metrics>,
    /// Bytes of request frames being read, across all connections (see `connection`).
    pub(crate) unfinished_frame_bytes: Semaphore,
    /// The same for frames of at most `SMALL_FRAME_BYTES_MAX`.
    pub(crate) unfinished_small_frame_bytes: Semaphore,
    admission: Arc<Admission>,
    tasks: TaskTracker,
    shutdown: CancellationToken,
}

impl Broker {
    /// The group coordinators; set before the listener accepts anything.
    pub(crate) fn groups(&self) -> &Groups {
        self.groups.get().expect("groups are opened before serving")
    }

    /// The transaction coordinator; set before the listener accepts anything.
    pub(crate) fn transactions(&self) -> &Transactions {
        self.transactions
            .get()
            .expect("transactions are opened before serving")
    }

    /// Creates a topic and starts its partitions' background work.
    pub(crate) fn create_topic(
        self: &Arc<Self>,
        name: &str,
        partitions: i32,
        configs: BTreeMap<String, String>,
    ) -> Result<Arc<Topic>, StorageError> {
        let topic = self
            .logs
            .create_topic(name, partitions, configs, crate::now_ms())?;
        for partition in topic.partitions() {
            self.start_partition(partition);
        }
        Ok(topic)
    }

    /// Adds partitions to a topic and starts their background work.
    pub(crate) fn create_partitions(
        self: &Arc<Self>,
        name: &str,
        total: i32,
        validate_only: bool,
    ) -> Result<(), StorageError> {
        let before = self.logs.topic(name).map_or(0, |t| t.partition_count());
        self.logs
            .create_partitions(name, total, validate_only, crate::now_ms())?;
        if let Some(topic) = self.logs.topic(name) {
            for partition in topic.partitions().into_iter().skip(before as usize) {
                self.start_partition(partition);
            }
        }
        Ok(())
    }

    fn start_partition(self: &Arc<Self>, partition: Arc<Partition>) {
        self.tasks.spawn(background::flush_loop(
            partition,
            self.metrics.clone(),
            self.shutdown.clone(),
        ));
    }
}

/// Where a listener tells clients to connect (Metadata, FindCoordinator, DescribeCluster
/// answer with the endpoint of the listener the request came in on, as Kafka does).
#[derive(Debug)]
pub(crate) struct Endpoint {
    /// The listener's name, as brokers register their endpoints (`CLIENT_LISTENER`,
    /// `INTERNAL_LISTENER`).
    pub name: &'static str,
    pub host: String,
    pub port: u16,
}

/// The rules one listener admits connections by.
struct Door {
    endpoint: Arc<Endpoint>,
    connections_max: usize,
    /// Whether `max_connections_per_ip` applies.
    per_ip_limits: bool,
}

/// A broker that is serving; dropping it does not stop it, `shutdown` does.
pub struct RunningBroker {
    broker: Arc<Broker>,
    local_addr: SocketAddr,
    internal_addr: SocketAddr,
    accept_loops: Vec<tokio::task::JoinHandle<()>>,
}

/// Each start of the node begins a new leader epoch in every partition it leads (all of them,
/// on a single node), as a broker re-registering with a KRaft controller gets one: a consumer
/// that read under the old epoch validates its position (OffsetForLeaderEpoch) before reading
/// on. A log that cannot take the new epoch (offline) keeps its old one; it serves nothing.
fn begin_leader_epochs(logs: &LogManager) {
    for topic in logs.topics() {
        for partition in topic.partitions() {
            let mut log = partition.log();
            let next = log.leader_epoch() + 1;
            if let Err(e) = log.become_leader(next) {
                tracing::warn!(topic = topic.name(), partition = partition.index(), error = %e,
                    "could not begin a new leader epoch");
            }
        }
    }
}

impl RunningBroker {
    /// Opens the data directory (recovering it if needed), binds the listener and starts
    /// serving.
    pub async fn start(
        config: BrokerConfig,
        cluster: Arc<dyn crate::ClusterView>,
    ) -> Result<RunningBroker, StartError> {
        sluice_storage::set_read_verification(config.read_verify_crc);
        let data_dir = config.data_dir.clone();
        let logs = tokio::task::spawn_blocking(move || {
            let logs = LogManager::open(&data_dir, crate::now_ms())?;
            begin_leader_epochs(&logs);
            Ok::<_, sluice_storage::StorageError>(logs)
        })
        .await
        .map_err(|e| StartError::Task(e.to_string()))??;
        let cluster_id = logs.cluster_id()?;
        let listener = TcpListener::bind(config.listen).await?;
        let local_addr = listener.local_addr()?;
        // The in-process HTTP gateway's own door: loopback only, an ephemeral port, outside the
        // client caps, so a flood of clients cannot lock the gateway and health checks out.
        let internal = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await?;
        let internal_addr = internal.local_addr()?;
        let mut config = config;
        if config.advertised_port == 0 {
            config.advertised_port = local_addr.port();
        }
        // Never below one frame of the largest size, or such a frame could never be read.
        let unfinished_frame_bytes =
            UNFINISHED_FRAME_BYTES_MAX.max(config.request_frame_bytes_max as usize);
        let admission = Arc::new(Admission::new(
            config.max_connections_per_ip,
            config.max_connections_per_ip_overrides.clone(),
        ));
        let broker = Arc::new(Broker {
            config,
            logs,
            cluster_id,
            cluster,
            producer_ids: Default::default(),
            groups: OnceLock::new(),
            transactions: OnceLock::new(),
            metrics: Arc::new(Metrics::new()),
            unfinished_frame_bytes: Semaphore::new(unfinished_frame_bytes),
            unfinished_small_frame_bytes: Semaphore::new(UNFINISHED_FRAME_BYTES_MAX),
            admission,
            tasks: TaskTracker::new(),
            shutdown: CancellationToken::new(),
        });
        for topic in broker.logs.topics() {
            for partition in topic.partitions() {
                broker.start_partition(partition);
            }
        }
        let opener = broker.clone();
        let groups = tokio::task::spawn_blocking(move || {
            let config = opener.config.group.clone();
            Groups::open(&opener, &config)
        })
        .await
        .map_err(|e| StartError::Task(e.to_string()))??;
        let groups = Arc::new(groups);
        let _ = broker.groups.set(groups.clone());
        broker.tasks.spawn(groups.tick_loop(
            broker.config.offsets_retention_check_interval_ms,
            broker.shutdown.clone(),
        ));
        let opener = broker.clone();
        let transactions =
            tokio::task::spawn_blocking(move || Transactions::open(&opener, opener.config.txn))
                .await
                .map_err(|e| StartError::Task(e.to_string()))??;
        let transactions = Arc::new(transactions);
        let _ = broker.transactions.set(transactions.clone());
        broker.tasks.spawn(transactions.tick_loop(
            broker.clone(),
            broker.config.transaction_cleanup_interval_ms,
            broker.shutdown.clone(),
        ));
        broker.tasks.spawn(background::cleaner_loop(
            broker.clone(),
            broker.shutdown.clone(),
        ));
        broker.tasks.spawn(crate::scrub::scrub_loop(
            broker.clone(),
            broker.shutdown.clone(),
        ));
        broker.tasks.spawn(background::housekeeping_loop(
            broker.clone(),
            broker.shutdown.clone(),
        ));
        let client_connections_max = crate::admission::client_connections_max();
        tracing::info!(
            client_connections_max,
            "client connections fit in the descriptor limit"
        );
        let client_door = Door {
            endpoint: Arc::new(Endpoint {
                name: CLIENT_LISTENER,
                host: broker.config.advertised_host.clone(),
                port: broker.config.advertised_port,
            }),
            connections_max: client_connections_max,
            per_ip_limits: true,
        };
        let internal_door = Door {
            endpoint: Arc::new(Endpoint {
                name: INTERNAL_LISTENER,
                host: internal_addr.ip().to_string(),
                port: internal_addr.port(),
            }),
            connections_max: INTERNAL_CONNECTIONS_MAX,
            per_ip_limits: false,
        };
        let accept_loops = vec![
            tokio::spawn(accept(broker.clone(), listener, client_door)),
            tokio::spawn(accept(broker.clone(), internal, internal_door)),
        ];
        tracing::info!(listen = %local_addr, data_dir = %broker.config.data_dir.display(), "Sluice broker serving the Kafka protocol");
        Ok(RunningBroker {
            broker,
            local_addr,
            internal_addr,
            accept_loops,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The first producer id this data directory never handed out before the metadata log
    /// kept producer ids (the node reserves the ids below it).
    pub fn legacy_producer_id_floor(&self) -> i64 {
        self.broker.logs.legacy_producer_id_floor()
    }

    /// The cluster id this data directory was created with (a new cluster takes it).
    pub fn local_cluster_id(&self) -> &str {
        &self.broker.cluster_id
    }

    /// Where this broker is reached, per listener, as it registers with the controller.
    pub fn endpoints(&self) -> Vec<sluice_controller::Endpoint> {
        let config = &self.broker.config;
        vec![
            sluice_controller::Endpoint {
                name: CLIENT_LISTENER.to_string(),
                host: config.advertised_host.clone(),
                port: config.advertised_port,
            },
            sluice_controller::Endpoint {
                name: INTERNAL_LISTENER.to_string(),
                host: self.internal_addr.ip().to_string(),
                port: self.internal_addr.port(),
            },
        ]
    }

    /// The loopback listener for in-process Kafka clients (the HTTP gateway): it advertises
    /// itself, and neither the client connection cap nor `max_connections_per_ip` applies.
    pub fn internal_addr(&self) -> SocketAddr {
        self.internal_addr
    }

    /// A function that renders the broker's metrics as OpenMetrics text (for `/metrics`).
    pub fn metrics_renderer(&self) -> Arc<dyn Fn() -> String + Send + Sync> {
        let broker = self.broker.clone();
        Arc::new(move || broker.metrics.render(&broker))
    }

    /// Stops accepting, lets connections answer what they already read, flushes every log and
    /// leaves the clean-shutdown marker.
    pub async fn shutdown(self) -> Result<(), StorageError> {
        tracing::info!("shutting down");
        self.broker.shutdown.cancel();
        for accept_loop in self.accept_loops {
            let _ = accept_loop.await;
        }
        self.broker.tasks.close();
        if tokio::time::timeout(
            Duration::from_millis(SHUTDOWN_DRAIN_MS),
            self.broker.tasks.wait(),
        )
        .await
        .is_err()
        {
            tracing::warn!("some connections did not finish within the drain period");
        }
        let broker = self.broker.clone();
        tokio::task::spawn_blocking(move || broker.logs.shutdown(crate::now_ms()))
            .await
            .map_err(|e| StorageError::Offline(e.to_string()))??;
        tracing::info!("shutdown complete");
        Ok(())
    }
}

async fn accept(broker: Arc<Broker>, listener: TcpListener, door: Door) {
    let permits = Arc::new(Semaphore::new(door.connections_max));
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => p.expect("semaphore never closed"),
            _ = broker.shutdown.cancelled() => return,
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = broker.shutdown.cancelled() => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                let admitted = if door.per_ip_limits {
                    broker.admission.admit(peer.ip())
                } else {
                    broker.admission.exempt()
                };
                let Some(admitted) = admitted else {
                    tracing::warn!(%peer, "refusing connection: max_connections_per_ip reached");
                    broker.metrics.connection_closed("per_ip_limit");
                    drop(stream);
                    continue;
                };
                let conn_broker = broker.clone();
                let token = broker.shutdown.clone();
                let endpoint = door.endpoint.clone();
                broker.metrics.connections.inc();
                broker.tasks.spawn(async move {
                    let metrics = conn_broker.metrics.clone();
                    connection::serve(conn_broker, stream, peer, endpoint, token).await;
                    metrics.connections.dec();
                    drop((permit, admitted));
                });
            }
            Err(e) => {
                // Out of descriptors (EMFILE) lands here: the connection waits in the backlog
                // and nothing else is affected.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Why a broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("cannot listen: {0}")]
    Io(#[from] std::io::Error),
    #[error("startup task failed: {0}")]
    Task(String),
}
