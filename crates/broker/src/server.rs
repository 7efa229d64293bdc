//! The broker: its state, its listener and its lifecycle (start, serve, shut down cleanly).

use crate::admission::Admission;
use crate::background;
use crate::config::BrokerConfig;
use crate::connection;
use crate::groups::Groups;
use crate::metrics::Metrics;
use crate::reload::FileReloader;
use crate::transactions::TxnCoordinators;
use sluice_storage::{LogManager, Partition, StorageError};
use sluice_types::limits::{INTERNAL_CONNECTIONS_MAX, UNFINISHED_FRAME_BYTES_MAX};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
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
    /// The group coordinators of the `__consumer_offsets` partitions this broker leads.
    pub(crate) groups: Arc<Groups>,
    /// The transaction coordinators of the `__transaction_state` partitions this broker leads.
    pub(crate) transaction_coordinators: Arc<TxnCoordinators>,
    /// The share-partitions this broker leads and the share sessions of their members.
    pub(crate) shares: Arc<crate::shares::Shares>,
    /// The share coordinators of the `__share_group_state` partitions this broker leads.
    pub(crate) share_coordinators: Arc<crate::share_coordinators::ShareCoordinators>,
    /// The metadata image as this broker's storage and coordinators follow it: handlers read
    /// this one, so what they answer is what this broker serves (`publisher`).
    pub(crate) published: watch::Sender<Arc<sluice_controller::MetadataImage>>,
    /// Connections to the other brokers (transaction markers).
    pub(crate) peers: crate::peers::Peers,
    /// The partitions this broker replicates with others: leaders and followers.
    pub(crate) replicas: sluice_replica::ReplicaManager,
    /// Coordinators waiting for their partition's records to be committed before they load
    /// (`publisher::load_coordinator`), by shard and partition.
    pending_coordinator_loads:
        std::sync::Mutex<std::collections::HashSet<(crate::publisher::Shard, i32)>>,
    /// Why the publisher could not follow a topic, by topic id (the last attempt's error).
    pub(crate) publish_errors: std::sync::Mutex<std::collections::BTreeMap<uuid::Uuid, String>>,
    pub(crate) metrics: Arc<Metrics>,
    /// Bytes of request frames being read, across all connections (see `connection`).
    pub(crate) unfinished_frame_bytes: Semaphore,
    /// The same for frames of at most `SMALL_FRAME_BYTES_MAX`.
    pub(crate) unfinished_small_frame_bytes: Semaphore,
    /// SASL: the mechanisms offered, failed logins per address, fresh nonces.
    pub(crate) authentication: crate::authentication::Authentication,
    /// The compiled ACLs and who is a super user.
    pub(crate) authorization: crate::authorization::Authorization,
    /// Client quotas: each sensor's use against the published image's quotas.
    pub(crate) quotas: crate::quotas::Quotas,
    admission: Arc<Admission>,
    tasks: TaskTracker,
    shutdown: CancellationToken,
}

impl Broker {
    /// The group coordinators of this broker.
    pub(crate) fn groups(&self) -> &Groups {
        &self.groups
    }

    /// The transaction coordinator of `transactional_id`, if it is this broker.
    pub(crate) fn transactions(
        &self,
        transactional_id: &str,
    ) -> Result<crate::transactions::Transactions, sluice_txn::TxnError> {
        self.transaction_coordinators.of(transactional_id)
    }

    /// Runs a command of `transactional_id`'s coordinator (NOT_COORDINATOR if it is
    /// elsewhere).
    pub(crate) async fn run_txn<T>(
        &self,
        transactional_id: &str,
        command: impl FnOnce(&mut sluice_txn::TransactionCoordinator) -> sluice_txn::Outcome<T>,
    ) -> Result<T, sluice_txn::TxnError> {
        let coordinators = &self.transaction_coordinators;
        coordinators.run(transactional_id, command).await
    }

    /// Loads the transaction coordinator of a `__transaction_state` partition (of
    /// `partition_count`, led here in `leader_epoch`), unless it runs here already in that
    /// epoch, and starts its timer. Blocking.
    pub(crate) fn load_transactions(
        &self,
        log: Arc<dyn sluice_coordinator::ShardLog>,
        partition_count: i32,
        leader_epoch: i32,
    ) -> Result<(), sluice_coordinator::CoordinatorError> {
        let coordinators = &self.transaction_coordinators;
        let loaded = coordinators.load(log, partition_count, leader_epoch)?;
        if let Some(coordinator) = loaded {
            let every_ms = self.config.transaction_cleanup_interval_ms;
            self.tasks.spawn(coordinator.tick_loop(every_ms));
        }
        Ok(())
    }

    /// The local logs the publisher could not create for a topic, by topic id (see
    /// `publisher`); a CreateTopics that meets one takes the topic back.
    pub(crate) fn publish_error(&self, topic_id: uuid::Uuid) -> Option<String> {
        let errors = self
            .publish_errors
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        errors.get(&topic_id).cloned()
    }

    /// The coordinator loads waiting for their partitions' records to be committed.
    pub(crate) fn pending_coordinator_loads(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashSet<(crate::publisher::Shard, i32)>> {
        self.pending_coordinator_loads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `task` on the broker's tracker (shutdown waits for it).
    pub(crate) fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        self.tasks.spawn(task);
    }

    /// Cancelled when the broker shuts down.
    pub(crate) fn shutdown_token(&self) -> &CancellationToken {
        &self.shutdown
    }

    /// Starts the background work of a partition new to this broker.
    pub(crate) fn start_partition(self: &Arc<Self>, partition: Arc<Partition>) {
        self.tasks.spawn(background::flush_loop(
            partition,
            self.metrics.clone(),
            self.shutdown.clone(),
        ));
    }
}

/// The replica manager's settings: this broker's id, `replica.lag.time.max.ms`, and its
/// listener's address for fetchers' connections to leave from (unless a wildcard).
fn replica_config(config: &BrokerConfig, listen: SocketAddr) -> sluice_replica::ReplicaConfig {
    let mut replica = sluice_replica::ReplicaConfig::new(config.node_id);
    replica.leader.replica_lag_time_max_ms = config.replica_lag_time_max_ms;
    replica.local_address = (!listen.ip().is_unspecified()).then_some(listen.ip());
    replica.security = config.inter_broker.security.clone();
    replica
}

/// The inter-broker listener's own address (`plaintext`, the PLAINTEXT listener's, unless
/// another is named): connections to other brokers leave from it.
fn inter_broker_bound(config: &BrokerConfig, plaintext: SocketAddr) -> SocketAddr {
    config
        .secured_listeners
        .iter()
        .find(|l| l.name == config.inter_broker.listener)
        .map_or(plaintext, |l| l.address)
}

/// Where a listener tells clients to connect (Metadata, FindCoordinator, DescribeCluster
/// answer with the endpoint of the listener the request came in on, as Kafka does).
#[derive(Debug)]
pub(crate) struct Endpoint {
    /// The listener's name, as brokers register their endpoints (`CLIENT_LISTENER`,
    /// `INTERNAL_LISTENER`, a TLS listener's name).
    pub name: String,
    pub host: String,
    pub port: u16,
    /// Whether a connection must authenticate with SASL before anything but ApiVersions.
    pub sasl: bool,
    /// Whether connections speak TLS.
    pub tls: bool,
}

/// The rules one listener admits connections by.
struct Door {
    endpoint: Arc<Endpoint>,
    connections_max: usize,
    /// Whether `max_connections_per_ip` applies.
    per_ip_limits: bool,
    /// A TLS listener's configuration, read again on SIGHUP or file change; `None` for
    /// plaintext.
    tls: Option<Arc<crate::tls::ReloadableTls>>,
}

/// A broker that is serving; dropping it does not stop it, `shutdown` does.
pub struct RunningBroker {
    broker: Arc<Broker>,
    local_addr: SocketAddr,
    internal_addr: SocketAddr,
    /// The listeners, bound but not accepting until `serve_clients`.
    doors: Vec<(TcpListener, Door)>,
    accept_loops: Vec<tokio::task::JoinHandle<()>>,
    /// The data directory's id, as the broker registers with it.
    directory_id: uuid::Uuid,
    /// The TLS listeners' certificates and the JWKS, to read again (`file_reloader`).
    files: FileReloader,
    /// The HTTP API's TLS, read again with them.
    http_tls: Option<Arc<crate::tls::ReloadableTls>>,
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
            Ok::<_, sluice_storage::StorageError>(logs)
        })
        .await
        .map_err(|e| StartError::Task(e.to_string()))??;
        let cluster_id = logs.cluster_id()?;
        let directory_id = logs.directory_id()?;
        let listener = listen(config.listen).map_err(|error| StartError::Bind {
            address: config.listen,
            error,
        })?;
        let local_addr = listener.local_addr()?;
        // The in-process HTTP gateway's own door: loopback only, an ephemeral port, outside the
        // client caps, so a flood of clients cannot lock the gateway and health checks out.
        let internal = listen(SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, 0)))?;
        let internal_addr = internal.local_addr()?;
        let mut config = config;
        if config.advertised_port == 0 {
            config.advertised_port = local_addr.port();
        }
        let secured_doors = bind_secured_listeners(&mut config)?;
        // Never below one frame of the largest size, or such a frame could never be read.
        let unfinished_frame_bytes =
            UNFINISHED_FRAME_BYTES_MAX.max(config.request_frame_bytes_max as usize);
        let admission = Arc::new(Admission::new(
            config.max_connections_per_ip,
            config.max_connections_per_ip_overrides.clone(),
        ));
        let jwks = match &config.oauthbearer {
            Some(o) => Some(Arc::new(
                crate::authentication::ReloadableJwks::new(o.jwks_file.clone(), o.rules.clone())
                    .map_err(StartError::Jwks)?,
            )),
            None => None,
        };
        let authentication = crate::authentication::Authentication::new(
            config.sasl_enabled_mechanisms.clone(),
            config.connections_max_reauth_ms,
            jwks.clone(),
            config.inter_broker.password(),
        );
        let mut super_users = config.super_users.clone();
        super_users.push(crate::authentication::INTERNAL.to_string());
        let authorization = crate::authorization::Authorization::new(
            config.authorizer_enabled,
            super_users,
            config.allow_everyone_if_no_acl_found,
        );
        let config_group = config.group.clone();
        let config_txn = config.txn;
        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        let published = watch::Sender::new(Arc::default());
        let addresses = crate::replicas::ImageAddresses {
            image: published.subscribe(),
            listener: config.inter_broker.listener.clone(),
        };
        let (replicas, proposals) = sluice_replica::ReplicaManager::new(
            replica_config(&config, inter_broker_bound(&config, local_addr)),
            Arc::new(addresses),
            tasks.clone(),
            shutdown.clone(),
        );
        let peers = crate::peers::Peers::from_listener(
            inter_broker_bound(&config, local_addr),
            config.inter_broker.security.clone(),
        );
        let broker = Arc::new(Broker {
            config,
            logs,
            cluster_id,
            cluster,
            producer_ids: Default::default(),
            groups: Arc::new(Groups::new(config_group, shutdown.clone())),
            transaction_coordinators: Arc::new(TxnCoordinators::new(config_txn, shutdown.clone())),
            shares: Arc::default(),
            share_coordinators: Arc::new(crate::share_coordinators::ShareCoordinators::new(
                shutdown.clone(),
            )),
            published,
            publish_errors: Default::default(),
            peers,
            replicas,
            pending_coordinator_loads: Default::default(),
            metrics: Arc::new(Metrics::new()),
            unfinished_frame_bytes: Semaphore::new(unfinished_frame_bytes),
            unfinished_small_frame_bytes: Semaphore::new(UNFINISHED_FRAME_BYTES_MAX),
            authentication,
            authorization,
            quotas: crate::quotas::Quotas::default(),
            admission,
            tasks,
            shutdown,
        });
        broker.tasks.spawn(crate::replicas::send_proposals(
            Arc::downgrade(&broker),
            proposals,
            broker.shutdown.clone(),
        ));
        let as_markers: Arc<dyn crate::transactions::WriteMarkers> = broker.clone();
        let markers = Arc::downgrade(&as_markers);
        broker.transaction_coordinators.attach(markers);
        for topic in broker.logs.topics() {
            for partition in topic.partitions() {
                broker.start_partition(partition);
            }
        }
        broker.tasks.spawn(broker.groups.clone().tick_loop(
            broker.config.offsets_retention_check_interval_ms,
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
                name: CLIENT_LISTENER.to_string(),
                host: broker.config.advertised_host.clone(),
                port: broker.config.advertised_port,
                sasl: false,
                tls: false,
            }),
            connections_max: client_connections_max,
            per_ip_limits: true,
            tls: None,
        };
        let internal_door = Door {
            endpoint: Arc::new(Endpoint {
                name: INTERNAL_LISTENER.to_string(),
                host: internal_addr.ip().to_string(),
                port: internal_addr.port(),
                sasl: false,
                tls: false,
            }),
            connections_max: INTERNAL_CONNECTIONS_MAX,
            per_ip_limits: false,
            tls: None,
        };
        let mut files: Vec<Arc<dyn crate::reload::Reloadable>> = Vec::new();
        for (_, door) in &secured_doors {
            files.extend(
                door.tls
                    .clone()
                    .map(|t| t as Arc<dyn crate::reload::Reloadable>),
            );
        }
        files.extend(jwks.map(|j| j as Arc<dyn crate::reload::Reloadable>));
        let http_tls = match broker.config.http_tls.clone() {
            Some(settings) => Some(Arc::new(
                crate::tls::ReloadableTls::new("HTTP API", settings)
                    .map_err(|e| StartError::Tls(format!("http_tls: {e}")))?,
            )),
            None => None,
        };
        files.extend(
            http_tls
                .clone()
                .map(|t| t as Arc<dyn crate::reload::Reloadable>),
        );
        let files = FileReloader(files);
        let mut doors = vec![(listener, client_door), (internal, internal_door)];
        doors.extend(secured_doors);
        Ok(RunningBroker {
            broker,
            local_addr,
            internal_addr,
            doors,
            accept_loops: Vec::new(),
            directory_id,
            files,
            http_tls,
        })
    }

    /// Starts following the cluster's metadata (`publisher`): the local logs and coordinators
    /// follow `images` from the first image that holds this process's registration
    /// (`incarnation_id`) on.
    pub fn follow_metadata(
        &self,
        images: watch::Receiver<Arc<sluice_controller::MetadataImage>>,
        incarnation_id: uuid::Uuid,
    ) {
        let broker = self.broker.clone();
        self.broker
            .tasks
            .spawn(crate::publisher::run(broker, images, incarnation_id));
    }

    /// Waits until the publisher has applied an image in which this broker's registration
    /// (`incarnation_id`) is unfenced, so it leads what it is to lead; at most `limit`.
    /// Whether it has.
    pub async fn wait_published(&self, incarnation_id: uuid::Uuid, limit: Duration) -> bool {
        let node = self.broker.config.node_id;
        let mut published = self.broker.published.subscribe();
        let ready = published.wait_for(|image| {
            let registered = image.brokers.get(&node);
            registered.is_some_and(|b| b.incarnation_id == incarnation_id && !b.fenced)
        });
        matches!(tokio::time::timeout(limit, ready).await, Ok(Ok(_)))
    }

    /// Waits until this broker's published image has it lead no partition (after a
    /// controlled shutdown), at most `limit`; whether it does.
    pub async fn wait_leading_nothing(&self, limit: Duration) -> bool {
        let node = self.broker.config.node_id;
        let mut published = self.broker.published.subscribe();
        let none = published.wait_for(|image| {
            let led =
                |t: &sluice_controller::TopicImage| t.partitions.values().any(|p| p.leader == node);
            !image.topics.values().any(led)
        });
        matches!(tokio::time::timeout(limit, none).await, Ok(Ok(_)))
    }

    /// Creates `__consumer_offsets` through the controller if the cluster has none yet. A new
    /// cluster does this once all its brokers are in, so the partitions spread over them (as
    /// they are placed when created); a client asking for a group's coordinator first creates
    /// it too (FindCoordinator). `__transaction_state` waits for the first transactional
    /// client, as in Kafka: its 50 partitions cost descriptors a node without transactions
    /// need not spend.
    pub fn create_internal_topics(&self) -> impl std::future::Future<Output = ()> + Send + use<> {
        let broker = self.broker.clone();
        async move {
            crate::internal_topics::ensure(&broker, crate::groups::OFFSETS_TOPIC).await;
        }
    }

    /// Starts accepting connections. Until then connections wait in the listen backlog, so a
    /// client's first request meets a broker whose storage follows the metadata.
    pub fn serve_clients(&mut self) {
        if !self.files.is_empty() {
            let interval = Duration::from_millis(sluice_types::limits::TLS_FILES_CHECK_INTERVAL_MS);
            let watch = self
                .files
                .clone()
                .watch(interval, self.broker.shutdown.clone());
            self.broker.tasks.spawn(watch);
        }
        for (listener, door) in self.doors.drain(..) {
            let accept = tokio::spawn(accept(self.broker.clone(), listener, door));
            self.accept_loops.push(accept);
        }
        tracing::info!(listen = %self.local_addr, data_dir = %self.broker.config.data_dir.display(), "Sluice broker serving the Kafka protocol");
    }

    /// What reads the TLS listeners' certificates and the JWKS again (on SIGHUP).
    pub fn file_reloader(&self) -> FileReloader {
        self.files.clone()
    }

    /// The HTTP API's TLS configuration (`BrokerConfig::http_tls`), read again with the
    /// listeners' certificates.
    pub fn http_tls(&self) -> Option<Arc<crate::tls::ReloadableTls>> {
        self.http_tls.clone()
    }

    /// The topics this broker's data directory holds, as the metadata log takes them over on
    /// the node's first start in a cluster: ids, partitions with their logs' leader epochs,
    /// configs.
    pub fn local_topics(&self) -> Vec<sluice_controller::ImportedTopic> {
        self.broker
            .logs
            .topics()
            .iter()
            .map(|t| sluice_controller::ImportedTopic {
                name: t.name().to_string(),
                topic_id: t.id(),
                partitions: t
                    .partitions()
                    .iter()
                    .map(|p| (p.index(), p.log().leader_epoch()))
                    .collect(),
                configs: t.overrides().into_iter().collect(),
            })
            .collect()
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

    /// The data directory's id (`LogManager::directory_id`), for the broker's registration.
    pub fn directory_id(&self) -> uuid::Uuid {
        self.directory_id
    }

    /// Where this broker is reached, per listener, as it registers with the controller.
    pub fn endpoints(&self) -> Vec<sluice_controller::Endpoint> {
        let config = &self.broker.config;
        let mut endpoints = vec![
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
        ];
        endpoints.extend(
            config
                .secured_listeners
                .iter()
                .map(|l| sluice_controller::Endpoint {
                    name: l.name.clone(),
                    host: l.advertised_host.clone(),
                    port: l.advertised_port,
                }),
        );
        endpoints
    }

    /// The loopback listener for in-process Kafka clients (the HTTP gateway): it advertises
    /// itself, and neither the client connection cap nor `max_connections_per_ip` applies.
    pub fn internal_addr(&self) -> SocketAddr {
        self.internal_addr
    }

    /// The checks the HTTP API makes of its callers (passwords, tokens, certificates) and the
    /// secret its connections act for them with.
    pub fn caller_checks(&self) -> crate::authentication::CallerChecks {
        crate::authentication::CallerChecks::new(self.broker.clone())
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
        drop(self.doors);
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

/// Binds the TLS listeners, reads their certificates and sets an advertised port left at 0
/// to the bound one. A bad certificate file stops the start with its path and the reason.
fn bind_secured_listeners(
    config: &mut BrokerConfig,
) -> Result<Vec<(TcpListener, Door)>, StartError> {
    let mut doors = Vec::new();
    for l in &mut config.secured_listeners {
        let listener = listen(l.address).map_err(|error| StartError::Bind {
            address: l.address,
            error,
        })?;
        if l.advertised_port == 0 {
            l.advertised_port = listener.local_addr()?.port();
        }
        let tls = match &l.tls {
            Some(settings) => Some(Arc::new(
                crate::tls::ReloadableTls::new(&l.name, settings.clone())
                    .map_err(|e| StartError::Tls(format!("listener {}: {e}", l.name)))?,
            )),
            None => None,
        };
        let door = Door {
            endpoint: Arc::new(Endpoint {
                name: l.name.clone(),
                host: l.advertised_host.clone(),
                port: l.advertised_port,
                sasl: l.sasl,
                tls: l.tls.is_some(),
            }),
            connections_max: crate::admission::client_connections_max(),
            per_ip_limits: true,
            tls,
        };
        tracing::info!(
            listener = %l.name,
            address = %listener.local_addr()?,
            tls = l.tls.is_some(),
            sasl = l.sasl,
            "listener bound"
        );
        doors.push((listener, door));
    }
    Ok(doors)
}

/// A listening socket on `address` with a backlog of `LISTEN_BACKLOG`.
fn listen(address: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match address {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    // As std's `TcpListener::bind` does: a restarted broker rebinds its port at once.
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(sluice_types::limits::LISTEN_BACKLOG)
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
                let tls = door.tls.clone();
                broker.metrics.connections.inc();
                broker.tasks.spawn(async move {
                    let metrics = conn_broker.metrics.clone();
                    match tls {
                        None => connection::serve(conn_broker, stream, peer, endpoint, token).await,
                        Some(tls) => {
                            let acceptor = tls.acceptor();
                            serve_tls(conn_broker, acceptor, stream, peer, endpoint, token).await
                        }
                    }
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

/// A TLS connection: the handshake, within `request_timeout_ms` (a client that starts one and
/// never finishes it holds its connection no longer), then the connection as any other.
async fn serve_tls(
    broker: Arc<Broker>,
    acceptor: tokio_rustls::TlsAcceptor,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    endpoint: Arc<Endpoint>,
    shutdown: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let deadline = Duration::from_millis(broker.config.request_timeout_ms);
    let handshake = tokio::select! {
        h = tokio::time::timeout(deadline, acceptor.accept(stream)) => h,
        _ = shutdown.cancelled() => return,
    };
    match handshake {
        Ok(Ok(tls)) => {
            // A client certificate's subject is the connection's principal (SASL's, if the
            // listener asks for SASL too, replaces it); one no mapping rule names is refused.
            let certificate = tls.get_ref().1.peer_certificates();
            let mapper = &broker.config.ssl_principal_mapping;
            let principal = match certificate.and_then(|chain| chain.first()) {
                None => None,
                Some(der) => match crate::tls::certificate_principal(der, mapper) {
                    Ok(principal) => Some(principal),
                    Err(why) => {
                        tracing::warn!(
                            target: "sluice::audit",
                            event = "authentication_failed",
                            source = %peer,
                            mechanism = "SSL",
                            reason = %why,
                            "authentication failed"
                        );
                        broker.metrics.authentication("SSL", "failed");
                        return;
                    }
                },
            };
            connection::serve_stream(broker, tls, peer, endpoint, shutdown, principal).await
        }
        Ok(Err(e)) => {
            tracing::info!(%peer, listener = %endpoint.name, error = %e, "TLS handshake failed");
            broker.metrics.connection_closed("tls_handshake_failed");
        }
        Err(_) => {
            tracing::info!(%peer, listener = %endpoint.name, "TLS handshake not finished within request_timeout_ms");
            broker.metrics.connection_closed("tls_handshake_timeout");
        }
    }
}

/// Why a broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    // The I/O error is in the message, not a `source`, so `{:#}` does not print it twice.
    #[error("cannot listen for Kafka clients on {address}: {error}")]
    Bind {
        address: SocketAddr,
        error: std::io::Error,
    },
    #[error("cannot listen: {0}")]
    Io(#[from] std::io::Error),
    #[error("startup task failed: {0}")]
    Task(String),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("OAUTHBEARER: {0}")]
    Jwks(String),
}
