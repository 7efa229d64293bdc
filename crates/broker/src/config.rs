//! The broker's settings, parsed once by the binary and handed in whole.

use sluice_group::GroupConfig;
use sluice_txn::TxnConfig;
use sluice_types::limits;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

/// Kafka's default for `offsets.topic.num.partitions`.
pub const OFFSETS_TOPIC_PARTITIONS_DEFAULT: i32 = 50;
/// Kafka's default for `transaction.state.log.num.partitions`.
pub const TRANSACTION_STATE_PARTITIONS_DEFAULT: i32 = 50;

#[derive(Debug, Clone)]
pub struct BrokerConfig {
    pub node_id: i32,
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// Host and port clients are told to connect to (Metadata); defaults to `listen`.
    pub advertised_host: String,
    pub advertised_port: u16,
    /// `socket.request.max.bytes`.
    pub request_frame_bytes_max: u32,
    /// `connections.max.idle.ms`: a connection with nothing pending and nothing arriving this
    /// long is closed.
    pub connections_max_idle_ms: u64,
    /// How long a request frame may take to arrive once its first byte has.
    pub request_timeout_ms: u64,
    /// `max.connections.per.ip`.
    pub max_connections_per_ip: usize,
    /// `max.connections.per.ip.overrides`.
    pub max_connections_per_ip_overrides: HashMap<IpAddr, usize>,
    /// Reads check the CRC of every batch they serve (`log_read_verify_crc`).
    pub read_verify_crc: bool,
    /// How fast the scrubber verifies closed segments; 0 turns it off.
    pub scrub_bytes_per_second: u64,
    /// Pause between two passes of the scrubber over every closed segment.
    pub scrub_interval_ms: u64,
    /// `auto.create.topics.enable`: Metadata requests create unknown topics.
    pub auto_create_topics: bool,
    /// `num.partitions`: partitions of auto-created topics and of CreateTopics with -1.
    pub default_partitions: i32,
    /// `log.retention.check.interval.ms`.
    pub retention_check_interval_ms: u64,
    /// How often recovery points are checkpointed (Kafka's
    /// `log.flush.offset.checkpoint.interval.ms`).
    pub recovery_checkpoint_interval_ms: u64,
    /// `log.cleaner.backoff.ms`: pause between compaction rounds.
    pub cleaner_backoff_ms: u64,
    /// `offsets.topic.num.partitions`: partitions of `__consumer_offsets`, fixed when it is
    /// first created.
    pub offsets_topic_partitions: i32,
    /// `offsets.topic.segment.bytes`: segment size of `__consumer_offsets`, fixed when it is
    /// first created.
    pub offsets_topic_segment_bytes: u64,
    /// `transaction.state.log.num.partitions`: partitions of `__transaction_state`, fixed
    /// when it is first created.
    pub transaction_state_partitions: i32,
    /// `min.insync.replicas`: the default of topics that do not set it; `acks=all` needs at
    /// least this many in-sync replicas.
    pub min_insync_replicas: i32,
    /// `replica.lag.time.max.ms`: a follower not caught up this long leaves the in-sync set.
    pub replica_lag_time_max_ms: i64,
    /// `unclean.leader.election.enable` for topics that do not set it (the controller
    /// decides; the broker describes it).
    pub unclean_leader_election_enable: bool,
    /// `offsets.retention.check.interval.ms`: how often expired offsets are removed.
    pub offsets_retention_check_interval_ms: u64,
    /// `producer.id.expiration.ms`: how long an idle idempotent producer's state is kept.
    pub producer_id_expiration_ms: i64,
    /// `producer.id.expiration.check.interval.ms`.
    pub producer_id_expiration_check_interval_ms: u64,
    /// `transaction.max.timeout.ms` and `transactional.id.expiration.ms`.
    pub txn: TxnConfig,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`: how often open
    /// transactions are checked against their timeout (and idle transactional ids expired).
    pub transaction_cleanup_interval_ms: u64,
    /// `group.min.session.timeout.ms`, `group.max.session.timeout.ms`,
    /// `group.initial.rebalance.delay.ms`, `group.max.size`.
    pub group: GroupConfig,
    /// Listeners that speak TLS, SASL or both (`listeners` naming SSL, SASL_PLAINTEXT or
    /// SASL_SSL), beside the plaintext `listen`.
    pub secured_listeners: Vec<SecuredListener>,
    /// `sasl.enabled.mechanisms`: what SASL listeners offer.
    pub sasl_enabled_mechanisms: Vec<sluice_sasl::Mechanism>,
    /// `connections.max.reauth.ms`: how long an authentication holds before the client must
    /// authenticate again on the same connection (KIP-368); 0: for as long as it is open.
    pub connections_max_reauth_ms: u64,
    /// Whether ACLs are enforced (Kafka's `authorizer.class.name` naming StandardAuthorizer).
    pub authorizer_enabled: bool,
    /// `super.users`: principals allowed everything.
    pub super_users: Vec<String>,
    /// `allow.everyone.if.no.acl.found`: what a resource no ACL names allows.
    pub allow_everyone_if_no_acl_found: bool,
    /// OAUTHBEARER's identity provider: its keys and what a token must show. Without it, an
    /// OAUTHBEARER login always fails.
    pub oauthbearer: Option<OAuthBearerConfig>,
    /// How this broker reaches the others (peers, replica fetchers, and the in-process
    /// clients' connections to other brokers): Kafka's `inter.broker.listener.name` and the
    /// client side of that listener.
    pub inter_broker: InterBroker,
    /// `ssl.principal.mapping.rules`: the principal a client certificate's subject names.
    pub ssl_principal_mapping: crate::PrincipalMapper,
    /// The HTTP API's TLS (`http_tls`), read again with the listeners' certificates
    /// (`RunningBroker::http_tls`).
    pub http_tls: Option<crate::tls::TlsSettings>,
}

/// Where and how brokers reach each other.
#[derive(Debug, Clone)]
pub struct InterBroker {
    /// The listener's name (`PLAINTEXT`, `SSL`, `SASL_PLAINTEXT`, `SASL_SSL`): its registered
    /// endpoint is where the other brokers are reached.
    pub listener: String,
    /// TLS (the truststore, and the keystore as the client certificate) and the SASL login
    /// for that listener.
    pub security: sluice_client::security::Security,
}

impl InterBroker {
    /// The inter-broker SASL password, when brokers log in to each other.
    pub(crate) fn password(&self) -> Option<&str> {
        self.security.sasl.as_ref().map(|l| l.password.as_str())
    }
}

impl Default for InterBroker {
    fn default() -> InterBroker {
        InterBroker {
            listener: crate::server::CLIENT_LISTENER.to_string(),
            security: sluice_client::security::Security::default(),
        }
    }
}

/// `sasl.oauthbearer.jwks.endpoint.url` (a file here) and the `sasl.oauthbearer.*` rules.
#[derive(Debug, Clone)]
pub struct OAuthBearerConfig {
    pub jwks_file: PathBuf,
    pub rules: sluice_sasl::TokenRules,
}

/// A listener that speaks TLS, or asks for SASL authentication first, or both.
#[derive(Debug, Clone)]
pub struct SecuredListener {
    /// Its name, as brokers register its endpoint (`SSL`, `SASL_SSL`, ...).
    pub name: String,
    pub address: SocketAddr,
    pub advertised_host: String,
    /// 0: the port bound.
    pub advertised_port: u16,
    /// The TLS settings (SSL, SASL_SSL); `None`: plain TCP (SASL_PLAINTEXT).
    pub tls: Option<crate::tls::TlsSettings>,
    /// Whether a connection must authenticate with SASL before anything but ApiVersions.
    pub sasl: bool,
}

impl BrokerConfig {
    /// A config with Kafka's defaults for everything but where to listen and store.
    pub fn new(data_dir: PathBuf, listen: SocketAddr) -> BrokerConfig {
        BrokerConfig {
            node_id: 1,
            data_dir,
            listen,
            advertised_host: listen.ip().to_string(),
            advertised_port: listen.port(),
            request_frame_bytes_max: limits::REQUEST_FRAME_BYTES_MAX_DEFAULT,
            connections_max_idle_ms: limits::CONNECTIONS_IDLE_MS_MAX_DEFAULT,
            request_timeout_ms: limits::REQUEST_ARRIVAL_MS_MAX_DEFAULT,
            max_connections_per_ip: limits::CONNECTIONS_PER_IP_MAX_DEFAULT,
            max_connections_per_ip_overrides: HashMap::new(),
            read_verify_crc: true,
            scrub_bytes_per_second: 16 * 1024 * 1024,
            scrub_interval_ms: 3_600_000,
            auto_create_topics: true,
            default_partitions: 1,
            retention_check_interval_ms: 300_000,
            recovery_checkpoint_interval_ms: 60_000,
            cleaner_backoff_ms: 15_000,
            offsets_topic_partitions: OFFSETS_TOPIC_PARTITIONS_DEFAULT,
            offsets_topic_segment_bytes: 100 * 1024 * 1024,
            transaction_state_partitions: TRANSACTION_STATE_PARTITIONS_DEFAULT,
            min_insync_replicas: 1,
            replica_lag_time_max_ms: 30_000,
            unclean_leader_election_enable: false,
            offsets_retention_check_interval_ms: 600_000,
            producer_id_expiration_ms: 86_400_000,
            producer_id_expiration_check_interval_ms: 600_000,
            txn: TxnConfig::default(),
            transaction_cleanup_interval_ms: 10_000,
            group: GroupConfig::default(),
            secured_listeners: Vec::new(),
            sasl_enabled_mechanisms: vec![
                sluice_sasl::Mechanism::ScramSha256,
                sluice_sasl::Mechanism::ScramSha512,
            ],
            connections_max_reauth_ms: 0,
            authorizer_enabled: false,
            super_users: Vec::new(),
            allow_everyone_if_no_acl_found: false,
            oauthbearer: None,
            inter_broker: InterBroker::default(),
            ssl_principal_mapping: crate::PrincipalMapper::default(),
            http_tls: None,
        }
    }
}
