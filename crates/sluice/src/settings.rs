//! `sluice serve` settings: defaults, then a TOML file, then `SLUICE_*` environment variables,
//! then command-line flags, each overriding the one before. Parsed once, here.

use anyhow::Context;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use sluice_broker::{BrokerConfig, GroupConfig};
use sluice_cluster::{ClusterConfig, Voter};
use sluice_controller::ControllerConfig;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

#[derive(clap::Args, Debug, Default, Serialize)]
pub(crate) struct ServeArgs {
    /// Directory holding topics and logs [env: SLUICE_DATA_DIR] [default: ./sluice-data]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    data_dir: Option<PathBuf>,
    /// Address of the Kafka listener [env: SLUICE_LISTEN] [default: 127.0.0.1:9092]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    listen: Option<String>,
    /// HOST:PORT that clients are told to connect to [env: SLUICE_ADVERTISED_LISTENER] [default: the listen address]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    advertised_listener: Option<String>,
    /// Listeners as NAME://HOST:PORT, comma-separated: PLAINTEXT (replaces --listen) and SSL (TLS) [env: SLUICE_LISTENERS] [default: PLAINTEXT on --listen]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    listeners: Option<String>,
    /// What clients are told per listener, NAME://HOST:PORT, comma-separated [env: SLUICE_ADVERTISED_LISTENERS] [default: each listener's address]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    advertised_listeners: Option<String>,
    /// PEM file with the TLS listeners' private key and certificate chain, Kafka's ssl.keystore.location [env: SLUICE_SSL_KEYSTORE_LOCATION]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    ssl_keystore_location: Option<PathBuf>,
    /// PEM file with the CA certificates client certificates must chain to, Kafka's ssl.truststore.location [env: SLUICE_SSL_TRUSTSTORE_LOCATION]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    ssl_truststore_location: Option<PathBuf>,
    /// Client certificates on TLS listeners: none, requested or required, Kafka's ssl.client.auth [env: SLUICE_SSL_CLIENT_AUTH] [default: none]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    ssl_client_auth: Option<String>,
    /// SASL mechanisms SASL listeners offer, comma-separated: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER, Kafka's sasl.enabled.mechanisms [env: SLUICE_SASL_ENABLED_MECHANISMS] [default: SCRAM-SHA-256,SCRAM-SHA-512]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    sasl_enabled_mechanisms: Option<String>,
    /// Enforce ACLs: org.apache.kafka.metadata.authorizer.StandardAuthorizer (or StandardAuthorizer), Kafka's authorizer.class.name [env: SLUICE_AUTHORIZER_CLASS_NAME] [default: none: not enforced]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    authorizer_class_name: Option<String>,
    /// Principals allowed everything, semicolon-separated (User:admin;User:ops), Kafka's super.users [env: SLUICE_SUPER_USERS]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    super_users: Option<String>,
    /// File of SCRAM credentials written at start where the user has none (the first administrator), one per line as Kafka's --add-scram [env: SLUICE_SASL_BOOTSTRAP_SCRAM_FILE]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    sasl_bootstrap_scram_file: Option<PathBuf>,
    /// JWKS file OAUTHBEARER tokens are checked against (a path or file:// URL), Kafka's sasl.oauthbearer.jwks.endpoint.url [env: SLUICE_SASL_OAUTHBEARER_JWKS_ENDPOINT_URL]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    sasl_oauthbearer_jwks_endpoint_url: Option<String>,
    /// The iss an OAUTHBEARER token must carry, Kafka's sasl.oauthbearer.expected.issuer [env: SLUICE_SASL_OAUTHBEARER_EXPECTED_ISSUER]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    sasl_oauthbearer_expected_issuer: Option<String>,
    /// Audiences, comma-separated, one of which an OAUTHBEARER token's aud must name, Kafka's sasl.oauthbearer.expected.audience [env: SLUICE_SASL_OAUTHBEARER_EXPECTED_AUDIENCE]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    sasl_oauthbearer_expected_audience: Option<String>,
    /// Address of the HTTP API, or "off" [env: SLUICE_HTTP_LISTEN] [default: 127.0.0.1:8080]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    http_listen: Option<String>,
    /// The URL the other nodes of a cluster send view requests to, http://HOST:PORT [env: SLUICE_HTTP_ADVERTISED_URL] [default: from --http-listen; an unspecified address takes the advertised Kafka host]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    http_advertised_url: Option<String>,
    /// Origins allowed to call the HTTP API from a browser (CORS), comma-separated, or * for any [env: SLUICE_HTTP_CORS_ORIGINS] [default: none: CORS off]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    http_cors_origins: Option<String>,
    /// How the HTTP API authenticates its callers: none, or any of basic, bearer, mtls (comma-separated); on an address other than loopback it must be said [env: SLUICE_HTTP_AUTH]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    http_auth: Option<String>,
    /// Serve the HTTP API over TLS, with the listeners' ssl_keystore_location (and truststore) [env: SLUICE_HTTP_TLS]
    #[arg(long)]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    http_tls: bool,
    /// Keep SQL tables and views in this process (POST /v1/sql), "on" or "off" [env: SLUICE_VIEWS] [default: on]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    views: Option<String>,
    /// This node's id, Kafka's `node.id` [env: SLUICE_NODE_ID] [default: 1]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    node_id: Option<i32>,
    /// Address of the controller listener (controller traffic only) [env: SLUICE_CONTROLLER_LISTEN] [default: none on a single node]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    controller_listen: Option<String>,
    /// The controllers (voters of the metadata log), as ID@HOST:PORT,... naming their controller listeners [env: SLUICE_CONTROLLERS] [default: this node alone]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    controllers: Option<String>,
    /// What this node is: broker,controller (both; the only form served so far) [env: SLUICE_ROLES] [default: broker,controller]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    roles: Option<String>,
    /// TOML file with any of these settings (keys as the flags, with underscores)
    #[arg(long, env = "SLUICE_CONFIG")]
    #[serde(skip)]
    config: Option<PathBuf>,
}

/// Every setting of `sluice serve`, with its default.
#[derive(Debug, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct ServeSettings {
    /// `node.id`: the id Metadata, FindCoordinator and DescribeCluster give this node
    pub node_id: i32,
    pub data_dir: PathBuf,
    pub listen: String,
    pub advertised_listener: Option<String>,
    /// `listeners`: NAME://HOST:PORT (a TOML list, or comma-separated)
    #[serde(deserialize_with = "string_or_list")]
    pub listeners: Vec<String>,
    /// `advertised.listeners`
    #[serde(deserialize_with = "string_or_list")]
    pub advertised_listeners: Vec<String>,
    /// `ssl.keystore.location` (PEM: key and certificate chain)
    pub ssl_keystore_location: Option<PathBuf>,
    /// `ssl.truststore.location` (PEM: CA certificates)
    pub ssl_truststore_location: Option<PathBuf>,
    /// `ssl.client.auth`: none, requested, required
    pub ssl_client_auth: String,
    /// `ssl.principal.mapping.rules`: `DEFAULT` and `RULE:pattern/replacement/[LU]`, in order
    pub ssl_principal_mapping_rules: String,
    /// `sasl.enabled.mechanisms`
    #[serde(deserialize_with = "string_or_list")]
    pub sasl_enabled_mechanisms: Vec<String>,
    /// SCRAM credentials written at start where the user has none, as Kafka's `--add-scram`
    /// entries (`scram_bootstrap.rs`)
    #[serde(deserialize_with = "string_or_list")]
    pub sasl_bootstrap_scram: Vec<String>,
    /// A file of such entries, one per line
    pub sasl_bootstrap_scram_file: Option<PathBuf>,
    /// `sasl.oauthbearer.jwks.endpoint.url`: a JWKS file (a path or a `file://` URL)
    pub sasl_oauthbearer_jwks_endpoint_url: Option<String>,
    /// `sasl.oauthbearer.expected.issuer`
    pub sasl_oauthbearer_expected_issuer: Option<String>,
    /// `sasl.oauthbearer.expected.audience`
    #[serde(deserialize_with = "string_or_list")]
    pub sasl_oauthbearer_expected_audience: Vec<String>,
    /// `sasl.oauthbearer.sub.claim.name`: the claim naming the principal
    pub sasl_oauthbearer_sub_claim_name: String,
    /// `sasl.oauthbearer.clock.skew.seconds`
    pub sasl_oauthbearer_clock_skew_seconds: u64,
    /// `connections.max.reauth.ms`: 0 lets an authentication hold for the connection's life
    pub connections_max_reauth_ms: u64,
    /// `authorizer.class.name`: empty (ACLs not enforced) or Kafka's StandardAuthorizer
    pub authorizer_class_name: String,
    /// `super.users`: principals allowed everything, `User:a;User:b`
    pub super_users: String,
    /// `allow.everyone.if.no.acl.found`
    pub allow_everyone_if_no_acl_found: bool,
    /// `inter.broker.listener.name`: the listener brokers reach each other on
    pub inter_broker_listener_name: String,
    /// `sasl.mechanism.inter.broker.protocol`: how brokers log in to each other on a SASL
    /// inter-broker listener
    pub sasl_mechanism_inter_broker_protocol: String,
    /// The user brokers log in to each other as (a SASL inter-broker listener)
    pub inter_broker_sasl_username: Option<String>,
    /// Its password (`SLUICE_INTER_BROKER_SASL_PASSWORD`)
    pub inter_broker_sasl_password: Option<String>,
    /// The controller listener's protocol: PLAINTEXT, or SSL (mutual TLS with the
    /// listeners' keystore and truststore)
    pub controller_listener_security_protocol: String,
    /// The HTTP API's address; "off" serves none.
    pub http_listen: String,
    /// Where the other nodes of a cluster reach this HTTP API (`None`: from `http_listen`).
    pub http_advertised_url: Option<String>,
    /// Browser origins allowed by CORS, comma-separated (`*`: any); empty: CORS off.
    pub http_cors_origins: String,
    /// `none`, a list of `basic`, `bearer`, `mtls`, or empty: not said (then only a loopback
    /// HTTP address is served)
    pub http_auth: String,
    /// TLS on the HTTP API, with the listeners' certificates
    pub http_tls: bool,
    /// Whether this process keeps SQL tables and views: "on" or "off"
    pub views: String,
    /// How often each view publishes its changes and commits (ms)
    pub views_commit_interval_ms: u64,
    /// The controller listener's address, if any
    pub controller_listen: Option<String>,
    /// `controller.quorum.voters`: `id@host:port,...`; empty: this node alone
    pub controllers: String,
    /// `process.roles`
    pub roles: String,
    /// `broker.session.timeout.ms`: a broker without a heartbeat this long is fenced
    pub broker_session_timeout_ms: i64,
    /// `broker.heartbeat.interval.ms`
    pub broker_heartbeat_interval_ms: u64,
    /// `auto.create.topics.enable`
    pub auto_create_topics_enable: bool,
    /// Fetches check the CRC of every batch they serve (off only to measure its cost)
    pub log_read_verify_crc: bool,
    /// How fast the scrubber verifies closed segments (0: off)
    pub log_scrub_bytes_per_second: u64,
    /// Pause between the scrubber's passes
    pub log_scrub_interval_ms: u64,
    /// `num.partitions`
    pub num_partitions: i32,
    /// `socket.request.max.bytes`
    pub socket_request_max_bytes: u32,
    /// `connections.max.idle.ms`
    pub connections_max_idle_ms: u64,
    /// How long a request frame may take to arrive once begun
    pub request_timeout_ms: u64,
    /// `max.connections.per.ip`
    pub max_connections_per_ip: usize,
    /// `max.connections.per.ip.overrides`: `host:count` pairs, comma-separated
    pub max_connections_per_ip_overrides: String,
    /// `log.retention.check.interval.ms`
    pub log_retention_check_interval_ms: u64,
    /// `text` or `json`
    pub log_format: String,
    /// `log.cleaner.backoff.ms`
    pub log_cleaner_backoff_ms: u64,
    /// `log.flush.offset.checkpoint.interval.ms`: how often recovery points are checkpointed
    pub log_flush_offset_checkpoint_interval_ms: u64,
    /// `offsets.topic.num.partitions` (used when `__consumer_offsets` is first created)
    pub offsets_topic_num_partitions: i32,
    /// `transaction.state.log.num.partitions` (used when `__transaction_state` is first
    /// created)
    pub transaction_state_log_num_partitions: i32,
    /// `min.insync.replicas`: the default of topics that do not set it
    pub min_insync_replicas: i32,
    /// `default.replication.factor`: replicas of a topic created without a count (auto-created
    /// ones included)
    pub default_replication_factor: i16,
    /// `replica.lag.time.max.ms`: a follower not caught up with its leader this long leaves
    /// the in-sync set
    pub replica_lag_time_max_ms: i64,
    /// `unclean.leader.election.enable` for topics that do not set it: when no in-sync replica
    /// is alive, a replica outside the set may lead (and what it lacks is lost)
    pub unclean_leader_election_enable: bool,
    /// `offsets.topic.segment.bytes` (used when `__consumer_offsets` is first created)
    pub offsets_topic_segment_bytes: u64,
    /// `group.initial.rebalance.delay.ms`
    pub group_initial_rebalance_delay_ms: i32,
    /// `group.min.session.timeout.ms`
    pub group_min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`
    pub group_max_session_timeout_ms: i32,
    /// `group.max.size`
    pub group_max_size: usize,
    /// `offsets.retention.minutes`
    pub offsets_retention_minutes: i64,
    /// `offsets.retention.check.interval.ms`
    pub offsets_retention_check_interval_ms: u64,
    /// `group.consumer.session.timeout.ms` (KIP-848 groups)
    pub group_consumer_session_timeout_ms: i32,
    /// `group.consumer.heartbeat.interval.ms` (KIP-848 groups)
    pub group_consumer_heartbeat_interval_ms: i32,
    /// `producer.id.expiration.ms`
    pub producer_id_expiration_ms: i64,
    /// `producer.id.expiration.check.interval.ms`
    pub producer_id_expiration_check_interval_ms: u64,
    /// `transaction.max.timeout.ms`
    pub transaction_max_timeout_ms: i32,
    /// `transactional.id.expiration.ms`
    pub transactional_id_expiration_ms: i64,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`
    pub transaction_abort_timed_out_transaction_cleanup_interval_ms: u64,
}

impl Default for ServeSettings {
    fn default() -> Self {
        ServeSettings {
            node_id: 1,
            data_dir: PathBuf::from("./sluice-data"),
            listen: "127.0.0.1:9092".into(),
            advertised_listener: None,
            listeners: Vec::new(),
            advertised_listeners: Vec::new(),
            ssl_keystore_location: None,
            ssl_truststore_location: None,
            ssl_client_auth: "none".into(),
            ssl_principal_mapping_rules: "DEFAULT".into(),
            sasl_enabled_mechanisms: vec!["SCRAM-SHA-256".into(), "SCRAM-SHA-512".into()],
            sasl_bootstrap_scram: Vec::new(),
            sasl_bootstrap_scram_file: None,
            sasl_oauthbearer_jwks_endpoint_url: None,
            sasl_oauthbearer_expected_issuer: None,
            sasl_oauthbearer_expected_audience: Vec::new(),
            sasl_oauthbearer_sub_claim_name: "sub".into(),
            sasl_oauthbearer_clock_skew_seconds: 30,
            connections_max_reauth_ms: 0,
            authorizer_class_name: String::new(),
            super_users: String::new(),
            inter_broker_listener_name: "PLAINTEXT".into(),
            sasl_mechanism_inter_broker_protocol: "SCRAM-SHA-512".into(),
            inter_broker_sasl_username: None,
            inter_broker_sasl_password: None,
            controller_listener_security_protocol: "PLAINTEXT".into(),
            allow_everyone_if_no_acl_found: false,
            http_listen: "127.0.0.1:8080".into(),
            http_advertised_url: None,
            http_cors_origins: String::new(),
            http_auth: String::new(),
            http_tls: false,
            views: "on".into(),
            views_commit_interval_ms: 100,
            controller_listen: None,
            controllers: String::new(),
            roles: "broker,controller".into(),
            broker_session_timeout_ms: 9_000,
            broker_heartbeat_interval_ms: 2_000,
            auto_create_topics_enable: true,
            log_read_verify_crc: true,
            log_scrub_bytes_per_second: 16 * 1024 * 1024,
            log_scrub_interval_ms: 3_600_000,
            num_partitions: 1,
            socket_request_max_bytes: sluice_types::limits::REQUEST_FRAME_BYTES_MAX_DEFAULT,
            connections_max_idle_ms: sluice_types::limits::CONNECTIONS_IDLE_MS_MAX_DEFAULT,
            request_timeout_ms: sluice_types::limits::REQUEST_ARRIVAL_MS_MAX_DEFAULT,
            max_connections_per_ip: sluice_types::limits::CONNECTIONS_PER_IP_MAX_DEFAULT,
            max_connections_per_ip_overrides: String::new(),
            log_retention_check_interval_ms: 300_000,
            log_format: "text".into(),
            log_cleaner_backoff_ms: 15_000,
            log_flush_offset_checkpoint_interval_ms: 60_000,
            offsets_topic_num_partitions: sluice_broker::OFFSETS_TOPIC_PARTITIONS_DEFAULT,
            offsets_topic_segment_bytes: 100 * 1024 * 1024,
            transaction_state_log_num_partitions:
                sluice_broker::TRANSACTION_STATE_PARTITIONS_DEFAULT,
            min_insync_replicas: 1,
            default_replication_factor: 1,
            replica_lag_time_max_ms: 30_000,
            unclean_leader_election_enable: false,
            group_initial_rebalance_delay_ms: GroupConfig::default().initial_rebalance_delay_ms,
            group_min_session_timeout_ms: GroupConfig::default().session_timeout_ms_min,
            group_max_session_timeout_ms: GroupConfig::default().session_timeout_ms_max,
            group_max_size: GroupConfig::default().members_max,
            offsets_retention_minutes: GroupConfig::default().offsets_retention_ms / 60_000,
            offsets_retention_check_interval_ms: 600_000,
            group_consumer_session_timeout_ms: GroupConfig::default().consumer_session_timeout_ms,
            group_consumer_heartbeat_interval_ms: GroupConfig::default()
                .consumer_heartbeat_interval_ms,
            producer_id_expiration_ms: 86_400_000,
            producer_id_expiration_check_interval_ms: 600_000,
            transaction_max_timeout_ms: sluice_broker::TxnConfig::default()
                .transaction_max_timeout_ms,
            transactional_id_expiration_ms: sluice_broker::TxnConfig::default()
                .transactional_id_expiration_ms,
            transaction_abort_timed_out_transaction_cleanup_interval_ms: 10_000,
        }
    }
}

/// The top-level keys a provider gives (a TOML file's, or the settings' own).
fn keys(provider: &impl figment::Provider) -> anyhow::Result<Vec<String>> {
    let data = provider.data()?;
    Ok(data
        .values()
        .flat_map(|dict| dict.keys().cloned())
        .collect())
}

impl ServeSettings {
    pub(crate) fn load(args: &ServeArgs) -> anyhow::Result<ServeSettings> {
        let defaults = Serialized::defaults(ServeSettings::default());
        let known = keys(&defaults)?;
        let mut figment = Figment::from(defaults);
        let mut toml_keys = Vec::new();
        if let Some(path) = &args.config {
            anyhow::ensure!(
                path.is_file(),
                "config file {} does not exist",
                path.display()
            );
            toml_keys = keys(&Toml::file(path))
                .with_context(|| format!("config file {}", path.display()))?;
            figment = figment.merge(Toml::file(path));
        }
        let variables = std::env::vars_os().filter_map(|(name, _)| name.into_string().ok());
        crate::unknown_settings::check(&known, &toml_keys, args.config.as_deref(), variables)?;
        figment = figment
            .merge(Env::prefixed("SLUICE_").ignore(&[
                "config",
                "log",
                "brokers",
                "http_url",
                "tls_ca",
                "tls_cert",
                "tls_key",
                "user",
                "password",
                "sasl_mechanism",
                "new_password",
            ]))
            .merge(Serialized::defaults(args));
        figment.extract().context("invalid settings")
    }

    /// `sasl_enabled_mechanisms` as mechanisms; an unknown name is refused.
    pub(crate) fn sasl_mechanisms(&self) -> anyhow::Result<Vec<sluice_sasl::Mechanism>> {
        let mut mechanisms = Vec::new();
        for name in &self.sasl_enabled_mechanisms {
            let mechanism = sluice_sasl::Mechanism::parse(name).with_context(|| {
                format!("sasl_enabled_mechanisms: {name} is not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER")
            })?;
            if !mechanisms.contains(&mechanism) {
                mechanisms.push(mechanism);
            }
        }
        Ok(mechanisms)
    }

    /// OAUTHBEARER's identity provider: the JWKS file (`sasl_oauthbearer_jwks_endpoint_url`, a
    /// path or a `file://` URL: keys are not fetched over the network) and the token rules.
    pub(crate) fn oauthbearer(&self) -> anyhow::Result<Option<sluice_broker::OAuthBearerConfig>> {
        let Some(url) = self.sasl_oauthbearer_jwks_endpoint_url.as_deref() else {
            return Ok(None);
        };
        let path = match url.split_once("://") {
            None => url,
            Some(("file", path)) => path,
            Some(_) => anyhow::bail!(
                "sasl_oauthbearer_jwks_endpoint_url: {url}: only a file (a path or file:// URL) is read; fetch the JWKS into one"
            ),
        };
        anyhow::ensure!(
            !path.is_empty(),
            "sasl_oauthbearer_jwks_endpoint_url is empty"
        );
        Ok(Some(sluice_broker::OAuthBearerConfig {
            jwks_file: PathBuf::from(path),
            rules: sluice_sasl::TokenRules {
                expected_issuer: self
                    .sasl_oauthbearer_expected_issuer
                    .clone()
                    .filter(|i| !i.is_empty()),
                expected_audience: self.sasl_oauthbearer_expected_audience.clone(),
                sub_claim_name: self.sasl_oauthbearer_sub_claim_name.clone(),
                clock_skew_seconds: self.sasl_oauthbearer_clock_skew_seconds,
            },
        }))
    }

    /// Whether `authorizer_class_name` turns ACL enforcement on: Kafka's StandardAuthorizer
    /// (by its class name, or `StandardAuthorizer`), or nothing.
    pub(crate) fn authorizer_enabled(&self) -> anyhow::Result<bool> {
        match self.authorizer_class_name.trim() {
            "" => Ok(false),
            "StandardAuthorizer" | "org.apache.kafka.metadata.authorizer.StandardAuthorizer" => {
                Ok(true)
            }
            other => anyhow::bail!(
                "authorizer_class_name: {other} is not served; use org.apache.kafka.metadata.authorizer.StandardAuthorizer (or StandardAuthorizer), or leave it empty"
            ),
        }
    }

    /// `super_users`, Kafka's `User:a;User:b`, each checked as a principal.
    pub(crate) fn super_users(&self) -> anyhow::Result<Vec<String>> {
        self.super_users
            .split(';')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| {
                sluice_acl::parse_principal(p)
                    .map(|_| p.to_string())
                    .map_err(|e| anyhow::anyhow!("super_users: {e}"))
            })
            .collect()
    }

    /// The bootstrap SCRAM credentials, checked.
    pub(crate) fn bootstrap_scram(&self) -> anyhow::Result<Vec<sluice_controller::ScramUpsertion>> {
        crate::scram_bootstrap::credentials(
            &self.sasl_bootstrap_scram,
            self.sasl_bootstrap_scram_file.as_deref(),
        )
    }

    /// Where the HTTP API listens; `None` when it is off.
    pub(crate) fn http_address(&self) -> anyhow::Result<Option<SocketAddr>> {
        if self.http_listen == "off" {
            return Ok(None);
        }
        let address = resolve(&self.http_listen)
            .with_context(|| format!("--http-listen {}", self.http_listen))?;
        crate::http_security::http_auth_modes(address, &self.http_auth)?;
        Ok(Some(address))
    }

    /// The URL the other nodes of a cluster reach this HTTP API at: `http_advertised_url`, or
    /// `http://` and the listen address (an unspecified one, `0.0.0.0`, takes `advertised_host`).
    pub(crate) fn http_url(&self, listen: SocketAddr, advertised_host: &str) -> String {
        if let Some(url) = &self.http_advertised_url {
            return url.trim_end_matches('/').to_string();
        }
        let host = if listen.ip().is_unspecified() {
            advertised_host.to_string()
        } else {
            listen.ip().to_string()
        };
        if host.contains(':') {
            format!("http://[{host}]:{}", listen.port())
        } else {
            format!("http://{host}:{}", listen.port())
        }
    }

    /// Whether views run in this process (`--views on|off`).
    pub(crate) fn views_on(&self) -> anyhow::Result<bool> {
        match self.views.as_str() {
            "on" => Ok(true),
            "off" => Ok(false),
            other => anyhow::bail!("--views {other}: expected on or off"),
        }
    }

    /// The node's place in the cluster: its metadata log, voters and controller listener.
    pub(crate) fn cluster_config(&self) -> anyhow::Result<ClusterConfig> {
        let roles = self.roles()?;
        let controller_listen = match &self.controller_listen {
            Some(address) => {
                Some(resolve(address).with_context(|| format!("--controller-listen {address}"))?)
            }
            None => None,
        };
        let node_id = self.node_id;
        anyhow::ensure!(
            roles.controller || !self.controllers.trim().is_empty(),
            "--roles {}: a node that is not a controller needs --controllers to join",
            self.roles
        );
        let voters = if self.controllers.trim().is_empty() {
            let address = controller_listen.map_or("local".to_string(), |a| a.to_string());
            vec![Voter {
                id: node_id as u64,
                address,
            }]
        } else {
            parse_controllers(&self.controllers)?
        };
        let voter = voters.iter().any(|v| v.id == node_id as u64);
        anyhow::ensure!(
            voter || !roles.controller,
            "--controllers {}: this node ({node_id}) is a controller but not one of them",
            self.controllers
        );
        anyhow::ensure!(
            !voter || roles.controller,
            "--controllers {}: this node ({node_id}) is one of them but its --roles has no controller",
            self.controllers
        );
        anyhow::ensure!(
            (voters.len() == 1 && voter) || controller_listen.is_some(),
            "a node of a cluster of several needs --controller-listen (a broker alone receives the metadata log there)"
        );
        anyhow::ensure!(
            self.broker_session_timeout_ms >= 1
                && (self.broker_heartbeat_interval_ms as i64) < self.broker_session_timeout_ms,
            "need 0 < broker_heartbeat_interval_ms < broker_session_timeout_ms"
        );
        anyhow::ensure!(
            self.default_replication_factor >= 1,
            "default_replication_factor must be at least 1"
        );
        let controller = ControllerConfig {
            session_timeout_ms: self.broker_session_timeout_ms,
            default_partitions: self.num_partitions,
            unclean_leader_election_enable: self.unclean_leader_election_enable,
            default_replication_factor: self.default_replication_factor,
            ..ControllerConfig::default()
        };
        Ok(ClusterConfig {
            node_id,
            metadata_dir: self.data_dir.join("metadata"),
            controller_listen,
            voters,
            controller,
            heartbeat_interval_ms: self.broker_heartbeat_interval_ms,
            controller_tls: crate::inter_broker::controller_tls(self)?,
        })
    }

    /// `--roles`: what this node is.
    pub(crate) fn roles(&self) -> anyhow::Result<Roles> {
        let mut roles = Roles {
            broker: false,
            controller: false,
        };
        for role in self.roles.split(',').map(str::trim) {
            match role {
                "broker" => roles.broker = true,
                "controller" => roles.controller = true,
                other => anyhow::bail!(
                    "--roles {}: {other:?} is neither broker nor controller",
                    self.roles
                ),
            }
        }
        Ok(roles)
    }

    pub(crate) fn broker_config(&self) -> anyhow::Result<BrokerConfig> {
        let listeners = crate::listeners::parse(self)?;
        let listen = match listeners.plaintext.as_deref() {
            Some(address) => {
                resolve(address).with_context(|| format!("listener PLAINTEXT://{address}"))?
            }
            None => resolve(&self.listen).with_context(|| format!("--listen {}", self.listen))?,
        };
        let mut config = BrokerConfig::new(self.data_dir.clone(), listen);
        let advertised = listeners
            .plaintext_advertised
            .as_ref()
            .or(self.advertised_listener.as_ref());
        if let Some(advertised) = advertised {
            let (host, port) = crate::listeners::host_port(advertised)
                .with_context(|| format!("advertised listener {advertised}"))?;
            config.advertised_host = host;
            config.advertised_port = port;
        }
        config.inter_broker = crate::inter_broker::inter_broker(self, &listeners)?;
        config.ssl_principal_mapping =
            sluice_broker::PrincipalMapper::parse(&self.ssl_principal_mapping_rules)
                .map_err(anyhow::Error::msg)?;
        config.secured_listeners = listeners.secured;
        config.sasl_enabled_mechanisms = self.sasl_mechanisms()?;
        config.oauthbearer = self.oauthbearer()?;
        anyhow::ensure!(
            config.oauthbearer.is_some()
                || !config
                    .sasl_enabled_mechanisms
                    .contains(&sluice_sasl::Mechanism::OAuthBearer),
            "sasl_enabled_mechanisms names OAUTHBEARER: set sasl_oauthbearer_jwks_endpoint_url to the identity provider's JWKS file"
        );
        config.connections_max_reauth_ms = self.connections_max_reauth_ms;
        config.authorizer_enabled = self.authorizer_enabled()?;
        config.super_users = self.super_users()?;
        config.allow_everyone_if_no_acl_found = self.allow_everyone_if_no_acl_found;
        anyhow::ensure!(self.node_id >= 0, "node_id must be at least 0");
        config.node_id = self.node_id;
        anyhow::ensure!(
            self.num_partitions >= 1,
            "num_partitions must be at least 1"
        );
        config.auto_create_topics = self.auto_create_topics_enable;
        config.default_partitions = self.num_partitions;
        config.request_frame_bytes_max = self.socket_request_max_bytes;
        anyhow::ensure!(
            self.connections_max_idle_ms >= 1 && self.request_timeout_ms >= 1,
            "connections_max_idle_ms and request_timeout_ms must be at least 1"
        );
        config.read_verify_crc = self.log_read_verify_crc;
        config.scrub_bytes_per_second = self.log_scrub_bytes_per_second;
        config.scrub_interval_ms = self.log_scrub_interval_ms.max(1);
        config.connections_max_idle_ms = self.connections_max_idle_ms;
        config.request_timeout_ms = self.request_timeout_ms;
        config.max_connections_per_ip = self.max_connections_per_ip;
        config.max_connections_per_ip_overrides =
            parse_ip_overrides(&self.max_connections_per_ip_overrides)?;
        config.retention_check_interval_ms = self.log_retention_check_interval_ms;
        config.cleaner_backoff_ms = self.log_cleaner_backoff_ms;
        config.recovery_checkpoint_interval_ms = self.log_flush_offset_checkpoint_interval_ms;
        config.offsets_topic_partitions = self.offsets_topic_num_partitions;
        config.offsets_topic_segment_bytes = self.offsets_topic_segment_bytes;
        anyhow::ensure!(
            (1..=sluice_types::limits::PARTITIONS_PER_TOPIC_MAX)
                .contains(&self.transaction_state_log_num_partitions),
            "transaction_state_log_num_partitions must be between 1 and {}",
            sluice_types::limits::PARTITIONS_PER_TOPIC_MAX
        );
        config.transaction_state_partitions = self.transaction_state_log_num_partitions;
        anyhow::ensure!(
            self.min_insync_replicas >= 1,
            "min_insync_replicas must be at least 1"
        );
        config.min_insync_replicas = self.min_insync_replicas;
        anyhow::ensure!(
            self.replica_lag_time_max_ms >= 1,
            "replica_lag_time_max_ms must be at least 1"
        );
        config.replica_lag_time_max_ms = self.replica_lag_time_max_ms;
        config.unclean_leader_election_enable = self.unclean_leader_election_enable;
        config.offsets_retention_check_interval_ms = self.offsets_retention_check_interval_ms;
        anyhow::ensure!(
            self.producer_id_expiration_ms >= 1,
            "producer_id_expiration_ms must be at least 1"
        );
        config.producer_id_expiration_ms = self.producer_id_expiration_ms;
        config.producer_id_expiration_check_interval_ms =
            self.producer_id_expiration_check_interval_ms;
        anyhow::ensure!(
            self.transaction_max_timeout_ms >= 1 && self.transactional_id_expiration_ms >= 1,
            "transaction_max_timeout_ms and transactional_id_expiration_ms must be at least 1"
        );
        config.txn = sluice_broker::TxnConfig {
            transaction_max_timeout_ms: self.transaction_max_timeout_ms,
            transactional_id_expiration_ms: self.transactional_id_expiration_ms,
        };
        config.transaction_cleanup_interval_ms =
            self.transaction_abort_timed_out_transaction_cleanup_interval_ms;
        config.group = self.group_config()?;
        Ok(config)
    }

    fn group_config(&self) -> anyhow::Result<GroupConfig> {
        anyhow::ensure!(
            (1..=sluice_types::limits::PARTITIONS_PER_TOPIC_MAX)
                .contains(&self.offsets_topic_num_partitions),
            "offsets_topic_num_partitions must be between 1 and {}",
            sluice_types::limits::PARTITIONS_PER_TOPIC_MAX
        );
        anyhow::ensure!(
            0 < self.group_min_session_timeout_ms
                && self.group_min_session_timeout_ms <= self.group_max_session_timeout_ms,
            "group session timeouts: need 0 < min <= max"
        );
        anyhow::ensure!(
            self.group_initial_rebalance_delay_ms >= 0,
            "group_initial_rebalance_delay_ms must not be negative"
        );
        anyhow::ensure!(
            (1..=sluice_types::limits::GROUP_MEMBERS_MAX).contains(&self.group_max_size),
            "group_max_size must be between 1 and {}",
            sluice_types::limits::GROUP_MEMBERS_MAX
        );
        anyhow::ensure!(
            0 < self.group_consumer_heartbeat_interval_ms
                && self.group_consumer_heartbeat_interval_ms
                    < self.group_consumer_session_timeout_ms,
            "need 0 < group_consumer_heartbeat_interval_ms < group_consumer_session_timeout_ms"
        );
        anyhow::ensure!(
            self.offsets_retention_minutes >= 1,
            "offsets_retention_minutes must be at least 1"
        );
        Ok(GroupConfig {
            offsets_retention_ms: self.offsets_retention_minutes.saturating_mul(60_000),
            consumer_session_timeout_ms: self.group_consumer_session_timeout_ms,
            consumer_heartbeat_interval_ms: self.group_consumer_heartbeat_interval_ms,
            session_timeout_ms_min: self.group_min_session_timeout_ms,
            session_timeout_ms_max: self.group_max_session_timeout_ms,
            initial_rebalance_delay_ms: self.group_initial_rebalance_delay_ms,
            members_max: self.group_max_size,
        })
    }
}

/// `max_connections_per_ip_overrides`: `host:count,host:count` (Kafka's form), where a host
/// is an address or a name that resolves to some.
fn parse_ip_overrides(text: &str) -> anyhow::Result<HashMap<IpAddr, usize>> {
    let mut overrides = HashMap::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (host, count) = pair.rsplit_once(':').with_context(|| {
            format!("max_connections_per_ip_overrides: {pair:?} is not host:count")
        })?;
        let count: usize = count
            .parse()
            .with_context(|| format!("max_connections_per_ip_overrides: bad count in {pair:?}"))?;
        let host = host.trim_matches(['[', ']']);
        let addresses: Vec<IpAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => (host, 0)
                .to_socket_addrs()
                .with_context(|| {
                    format!("max_connections_per_ip_overrides: cannot resolve {host}")
                })?
                .map(|a| a.ip())
                .collect(),
        };
        for ip in addresses {
            overrides.insert(ip, count);
        }
    }
    Ok(overrides)
}

/// What a node is (Kafka's `process.roles`): a broker serves Kafka clients, a controller is a
/// voter of the metadata log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Roles {
    pub broker: bool,
    pub controller: bool,
}

/// `--controllers`: `id@host:port,...` (Kafka's `controller.quorum.voters`).
fn parse_controllers(text: &str) -> anyhow::Result<Vec<Voter>> {
    let mut voters: Vec<Voter> = Vec::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (id, address) = entry
            .split_once('@')
            .with_context(|| format!("--controllers: {entry:?} is not ID@HOST:PORT"))?;
        let id: u64 = id
            .parse()
            .with_context(|| format!("--controllers: bad node id in {entry:?}"))?;
        anyhow::ensure!(
            address
                .rsplit_once(':')
                .is_some_and(|(_, p)| p.parse::<u16>().is_ok()),
            "--controllers: {entry:?} has no HOST:PORT"
        );
        anyhow::ensure!(
            voters.iter().all(|v| v.id != id),
            "--controllers: node {id} named twice"
        );
        voters.push(Voter {
            id,
            address: address.to_string(),
        });
    }
    Ok(voters)
}

/// A view worker's HTTP API: it has no broker in-process to check callers against, so on an
/// address other than loopback it is served only when `--http-auth none` says so.
pub(crate) fn check_http_auth(address: SocketAddr, http_auth: &str) -> anyhow::Result<()> {
    let modes = crate::http_security::http_auth_modes(address, http_auth)?;
    anyhow::ensure!(
        !modes.any(),
        "--http-auth {http_auth}: a view worker's HTTP API takes none (its callers are not checked; keep it on loopback or behind a proxy that checks them)"
    );
    Ok(())
}

/// A list setting given as a TOML list or as one comma-separated string (a flag, a variable).
fn string_or_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Form {
        One(String),
        List(Vec<String>),
    }
    Ok(match Form::deserialize(d)? {
        Form::One(text) => split_list(&text),
        Form::List(list) => list,
    })
}

/// `text` split at commas outside brackets and quotes, each part trimmed, empty ones left out
/// (a SCRAM entry, `SCRAM-SHA-512=[name=a,password="x,y"]`, keeps its commas).
pub(crate) fn split_list(text: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let (mut depth, mut quoted, mut current) = (0i32, false, String::new());
    for c in text.chars() {
        match c {
            '"' => quoted = !quoted,
            '[' if !quoted => depth += 1,
            ']' if !quoted => depth -= 1,
            ',' if !quoted && depth == 0 => {
                parts.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    parts.push(current);
    parts
        .into_iter()
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

pub(crate) fn resolve(address: &str) -> anyhow::Result<SocketAddr> {
    address
        .to_socket_addrs()?
        .next()
        .context("address resolves to nothing")
}
