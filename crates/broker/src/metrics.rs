//! The broker's Prometheus metrics, one registry per broker (several brokers can share a test
//! process). Counters and histograms are updated where things happen (dispatch, produce,
//! fetch, fsync, connections); partition and consumer-group gauges are read from storage and
//! the group coordinators when a scrape renders them, so they are never stale.
//!
//! Names (OpenMetrics text):
//! `sluice_requests` (counter, by `api`), `sluice_request_duration_seconds` (histogram, by
//! `api`: from the request's decoding to its response being ready, long-polls included),
//! `sluice_connections` (gauge), `sluice_connections_closed` (counter, by `reason`: `idle`,
//! `request_timeout`, `per_ip_limit`, `tls_handshake_failed`, `tls_handshake_timeout`,
//! `sasl_authentication_timeout`, `sasl_unauthenticated_request`, `sasl_session_expired`,
//! `malformed`), `sluice_authentications` (counter, by `mechanism` and `result`:
//! `succeeded`, `reauthenticated`, `failed`), `sluice_authorization_denied` (counter, by
//! `operation` and `resource_type`: requests or parts of them the ACLs refused),
//! `sluice_produced_bytes`, `sluice_produced_records`,
//! `sluice_fetched_bytes`, `sluice_fetched_records` (counters, by `topic`), `sluice_scrubbed_bytes`
//! (counter: closed-segment bytes the scrubber verified),
//! `sluice_fsync_duration_seconds` (histogram), `sluice_partition_log_start_offset`,
//! `sluice_partition_high_watermark`, `sluice_partition_size_bytes`,
//! `sluice_partition_damaged_offsets` (offsets lost to damage on disk; only partitions with
//! damage are listed) (gauges, by `topic` and
//! `partition`), `sluice_group_committed_offset`, `sluice_group_lag` (gauges, by `group`,
//! `topic`, `partition`), `sluice_group_series_dropped` (gauge), `sluice_coordinator_shards`
//! (gauge, by `kind`: `group`, `transaction`, `share`: the internal partitions whose coordinator is
//! loaded here).
//!
//! Replication, as this broker's published metadata has it (gauges, read at scrape time, as
//! Kafka's `ReplicaManager` metrics): `sluice_leader_partitions` (partitions this broker
//! leads), `sluice_under_replicated_partitions` (of those, partitions whose in-sync set is
//! smaller than their replica set), `sluice_under_min_isr_partitions` (of those, partitions
//! with fewer in-sync replicas than `min.insync.replicas`: `acks=all` is refused there), and
//! `sluice_offline_partitions` (partitions of the whole cluster without a leader: every
//! broker reports the same count, so take the maximum across brokers, not the sum).
//!
//! The node: `sluice_build_info` (gauge 1, by `version`), `sluice_data_dir_total_bytes` and
//! `sluice_data_dir_free_bytes` (gauges: the data directory's filesystem, free as this
//! process may use it), and the process's own under Prometheus's standard names
//! (`process_cpu_seconds_total`, `process_resident_memory_bytes`, `process_open_fds`,
//! `process_max_fds`, `process_start_time_seconds`; `metrics/process.rs`).

mod errors;
mod node;
mod process;

pub(crate) use errors::{Codes, ResponseErrors};

use crate::server::Broker;
use kafka_protocol::messages::ApiKey;
use node::{NodeGauges, ReplicationGauges, register_node, register_process, register_replication};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use sluice_types::limits::METRICS_GROUP_PARTITIONS_MAX;
use std::sync::OnceLock;
use std::time::Duration;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ApiLabel {
    pub api: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ErrorLabels {
    pub api: &'static str,
    /// Kafka's name for the error code (`NOT_LEADER_OR_FOLLOWER`).
    pub error: &'static str,
}

/// Kafka's name of an error code (`NOT_LEADER_OR_FOLLOWER`), made once per code, so that
/// counting an error allocates nothing after the first.
fn error_name(code: i16) -> &'static str {
    static NAMES: OnceLock<std::sync::Mutex<std::collections::HashMap<i16, &'static str>>> =
        OnceLock::new();
    let names = NAMES.get_or_init(Default::default);
    let mut names = names.lock().unwrap_or_else(|p| p.into_inner());
    names
        .entry(code)
        .or_insert_with(|| Box::leak(sluice_client::error::error_name(code).into_boxed_str()))
}

/// Kafka's name of an API (`Produce`), made once, so that counting a request allocates nothing.
fn api_name(key: ApiKey) -> &'static str {
    static NAMES: OnceLock<Vec<(ApiKey, String)>> = OnceLock::new();
    NAMES
        .get_or_init(|| ApiKey::iter().map(|k| (k, format!("{k:?}"))).collect())
        .iter()
        .find(|(k, _)| *k == key)
        .map_or("Unknown", |(_, name)| name.as_str())
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AuthenticationLabels {
    mechanism: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeniedLabels {
    operation: String,
    resource_type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ReasonLabel {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct TopicLabel {
    pub topic: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct PartitionLabels {
    pub topic: String,
    pub partition: i32,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct GroupLabels {
    pub group: String,
    pub topic: String,
    pub partition: i32,
}

fn latency_buckets() -> impl Iterator<Item = f64> {
    // 50 µs to about 26 s.
    exponential_buckets(0.000_05, 2.0, 20)
}

#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    requests: Family<ApiLabel, Counter>,
    request_seconds: Family<ApiLabel, Histogram>,
    errors: Family<ErrorLabels, Counter>,
    pub connections: Gauge,
    connections_closed: Family<ReasonLabel, Counter>,
    authentications: Family<AuthenticationLabels, Counter>,
    authorization_denied: Family<DeniedLabels, Counter>,
    produced_bytes: Family<TopicLabel, Counter>,
    produced_records: Family<TopicLabel, Counter>,
    fetched_bytes: Family<TopicLabel, Counter>,
    fetched_records: Family<TopicLabel, Counter>,
    fsync_seconds: Histogram,
    scrubbed_bytes: Counter,
    log_start_offset: Family<PartitionLabels, Gauge>,
    high_watermark: Family<PartitionLabels, Gauge>,
    size_bytes: Family<PartitionLabels, Gauge>,
    damaged_offsets: Family<PartitionLabels, Gauge>,
    committed_offset: Family<GroupLabels, Gauge>,
    lag: Family<GroupLabels, Gauge>,
    group_series_dropped: Gauge,
    coordinator_shards: Family<KindLabel, Gauge>,
    replication: ReplicationGauges,
    node: NodeGauges,
}

impl Metrics {
    pub(crate) fn new() -> Metrics {
        let mut root = Registry::default();
        let node = NodeGauges::default();
        register_process(&mut root, &node);
        let registry = root.sub_registry_with_prefix("sluice");
        let replication = ReplicationGauges::default();
        register_replication(registry, &replication);
        register_node(registry, &node);
        let requests = Family::<ApiLabel, Counter>::default();
        let request_seconds = Family::<ApiLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(latency_buckets())
        });
        let connections = Gauge::default();
        let connections_closed = Family::<ReasonLabel, Counter>::default();
        let authentications = Family::<AuthenticationLabels, Counter>::default();
        registry.register(
            "authentications",
            "SASL authentications, by mechanism and result (succeeded, reauthenticated, failed)",
            authentications.clone(),
        );
        let authorization_denied = Family::<DeniedLabels, Counter>::default();
        registry.register(
            "authorization_denied",
            "Operations refused by the ACLs, by operation and resource type",
            authorization_denied.clone(),
        );
        let produced_bytes = Family::<TopicLabel, Counter>::default();
        let produced_records = Family::<TopicLabel, Counter>::default();
        let fetched_bytes = Family::<TopicLabel, Counter>::default();
        let fetched_records = Family::<TopicLabel, Counter>::default();
        let fsync_seconds = Histogram::new(latency_buckets());
        let scrubbed_bytes = Counter::default();
        registry.register(
            "scrubbed_bytes",
            "Bytes of closed segments the scrubber verified",
            scrubbed_bytes.clone(),
        );
        let log_start_offset = Family::<PartitionLabels, Gauge>::default();
        let high_watermark = Family::<PartitionLabels, Gauge>::default();
        let size_bytes = Family::<PartitionLabels, Gauge>::default();
        let damaged_offsets = Family::<PartitionLabels, Gauge>::default();
        let committed_offset = Family::<GroupLabels, Gauge>::default();
        let lag = Family::<GroupLabels, Gauge>::default();
        let group_series_dropped = Gauge::default();
        let coordinator_shards = Family::<KindLabel, Gauge>::default();
        registry.register(
            "coordinator_shards",
            "Internal partitions whose coordinator is loaded on this broker",
            coordinator_shards.clone(),
        );
        registry.register("requests", "Kafka requests received", requests.clone());
        let errors = Family::<ErrorLabels, Counter>::default();
        registry.register(
            "errors",
            "Kafka error codes in responses, by API and error (each partition's counts)",
            errors.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time from a request's decoding to its response being ready",
            request_seconds.clone(),
        );
        registry.register("connections", "Open Kafka connections", connections.clone());
        registry.register(
            "connections_closed",
            "Connections the broker closed or refused, by reason",
            connections_closed.clone(),
        );
        registry.register(
            "produced_bytes",
            "Record batch bytes appended",
            produced_bytes.clone(),
        );
        registry.register(
            "produced_records",
            "Records appended",
            produced_records.clone(),
        );
        registry.register(
            "fetched_bytes",
            "Record batch bytes sent to fetchers",
            fetched_bytes.clone(),
        );
        registry.register(
            "fetched_records",
            "Records sent to fetchers",
            fetched_records.clone(),
        );
        registry.register(
            "fsync_duration_seconds",
            "Duration of partition fsyncs",
            fsync_seconds.clone(),
        );
        registry.register(
            "partition_log_start_offset",
            "First offset of a partition",
            log_start_offset.clone(),
        );
        registry.register(
            "partition_high_watermark",
            "High watermark of a partition",
            high_watermark.clone(),
        );
        registry.register(
            "partition_size_bytes",
            "Bytes of a partition's segments",
            size_bytes.clone(),
        );
        registry.register(
            "partition_damaged_offsets",
            "Offsets of a partition lost to damaged bytes on disk (found at recovery or by reads)",
            damaged_offsets.clone(),
        );
        registry.register(
            "group_committed_offset",
            "Offset a consumer group committed",
            committed_offset.clone(),
        );
        registry.register(
            "group_lag",
            "High watermark minus the committed offset",
            lag.clone(),
        );
        registry.register(
            "group_series_dropped",
            "Group partitions left out of this scrape (over the series limit)",
            group_series_dropped.clone(),
        );
        Metrics {
            registry: root,
            requests,
            errors,
            request_seconds,
            connections,
            connections_closed,
            authentications,
            authorization_denied,
            produced_bytes,
            produced_records,
            fetched_bytes,
            fetched_records,
            fsync_seconds,
            scrubbed_bytes,
            log_start_offset,
            high_watermark,
            size_bytes,
            damaged_offsets,
            committed_offset,
            lag,
            group_series_dropped,
            coordinator_shards,
            replication,
            node,
        }
    }

    pub(crate) fn request_done(&self, api: ApiKey, took: Duration) {
        let label = ApiLabel { api: api_name(api) };
        self.requests.get_or_create(&label).inc();
        self.request_seconds
            .get_or_create(&label)
            .observe(took.as_secs_f64());
    }

    /// Counts the non-zero error codes of a response to `api`.
    pub(crate) fn response_errors(&self, api: ApiKey, response: &impl ResponseErrors) {
        response.error_codes(&mut Codes(&mut |code| {
            if code != 0 {
                let label = ErrorLabels {
                    api: api_name(api),
                    error: error_name(code),
                };
                self.errors.get_or_create(&label).inc();
            }
        }));
    }

    pub(crate) fn scrubbed(&self, bytes: u64) {
        self.scrubbed_bytes.inc_by(bytes);
    }

    /// Counts a connection the broker closed or refused (`reason` as in the module doc).
    pub(crate) fn connection_closed(&self, reason: &'static str) {
        self.connections_closed
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }

    /// Counts a SASL authentication's end (`result`: `succeeded`, `reauthenticated`, `failed`).
    pub(crate) fn authentication(&self, mechanism: &'static str, result: &'static str) {
        self.authentications
            .get_or_create(&AuthenticationLabels { mechanism, result })
            .inc();
    }

    /// Counts an operation the ACLs refused.
    pub(crate) fn authorization_denied(
        &self,
        operation: sluice_acl::Operation,
        resource_type: sluice_acl::ResourceType,
    ) {
        let label = DeniedLabels {
            operation: format!("{operation:?}"),
            resource_type: format!("{resource_type:?}"),
        };
        self.authorization_denied.get_or_create(&label).inc();
    }

    pub(crate) fn produced(&self, topic: &str, records: i64, bytes: usize) {
        let label = TopicLabel {
            topic: topic.to_string(),
        };
        self.produced_records
            .get_or_create(&label)
            .inc_by(records.max(0) as u64);
        self.produced_bytes
            .get_or_create(&label)
            .inc_by(bytes as u64);
    }

    pub(crate) fn fetched(&self, topic: &str, records: u64, bytes: u64) {
        let label = TopicLabel {
            topic: topic.to_string(),
        };
        self.fetched_records.get_or_create(&label).inc_by(records);
        self.fetched_bytes.get_or_create(&label).inc_by(bytes);
    }

    pub(crate) fn fsync_done(&self, took: Duration) {
        self.fsync_seconds.observe(took.as_secs_f64());
    }

    /// The OpenMetrics text of every metric, gauges read now.
    pub(crate) fn render(&self, broker: &Broker) -> String {
        self.refresh_partitions(broker);
        self.refresh_groups(broker);
        self.refresh_coordinators(broker);
        self.replication.refresh(broker);
        self.node.refresh(broker);
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        out
    }

    fn refresh_partitions(&self, broker: &Broker) {
        self.log_start_offset.clear();
        self.high_watermark.clear();
        self.size_bytes.clear();
        self.damaged_offsets.clear();
        for topic in broker.logs.topics() {
            for partition in topic.partitions() {
                let labels = PartitionLabels {
                    topic: topic.name().to_string(),
                    partition: partition.index(),
                };
                let log = partition.log();
                self.log_start_offset
                    .get_or_create(&labels)
                    .set(log.log_start_offset());
                self.high_watermark
                    .get_or_create(&labels)
                    .set(log.high_watermark());
                self.size_bytes
                    .get_or_create(&labels)
                    .set(log.size_bytes() as i64);
                let damaged: i64 = log
                    .damage()
                    .iter()
                    .map(sluice_storage::Damage::lost_offsets)
                    .sum();
                if damaged > 0 {
                    self.damaged_offsets.get_or_create(&labels).set(damaged);
                }
            }
        }
    }

    fn refresh_coordinators(&self, broker: &Broker) {
        let loaded = [
            ("group", broker.groups().runtime().loaded_count()),
            (
                "transaction",
                broker.transaction_coordinators.runtime().loaded_count(),
            ),
            ("share", broker.share_coordinators.runtime().loaded_count()),
        ];
        for (kind, count) in loaded {
            let gauge = self.coordinator_shards.get_or_create(&KindLabel { kind });
            gauge.set(count as i64);
        }
    }

    fn refresh_groups(&self, broker: &Broker) {
        self.committed_offset.clear();
        self.lag.clear();
        let committed = broker.groups().all_committed_offsets();
        let dropped = committed.len().saturating_sub(METRICS_GROUP_PARTITIONS_MAX);
        self.group_series_dropped.set(dropped as i64);
        for (group, topic, partition, offset) in
            committed.into_iter().take(METRICS_GROUP_PARTITIONS_MAX)
        {
            let Ok(p) = broker.logs.partition(&topic, partition) else {
                continue;
            };
            let end = p.log().high_watermark();
            let labels = GroupLabels {
                group,
                topic,
                partition,
            };
            self.committed_offset.get_or_create(&labels).set(offset);
            self.lag.get_or_create(&labels).set((end - offset).max(0));
        }
    }
}
