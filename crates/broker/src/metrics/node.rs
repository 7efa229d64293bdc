//! The metrics of the node as a whole, read when a scrape asks: the replicas this broker
//! leads and the cluster's partitions (from the published metadata image), the build, the
//! data directory's filesystem, and the process's own figures (`process.rs`). Names and
//! meanings: the parent module's doc.

use crate::server::Broker;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabel {
    version: &'static str,
}

/// Gauges of the replicas this broker leads and of the cluster's partitions.
#[derive(Debug, Default)]
pub(super) struct ReplicationGauges {
    leader: Gauge,
    under_replicated: Gauge,
    under_min_isr: Gauge,
    offline: Gauge,
}

/// The node's gauges: disk and the process's own figures (`process.rs`).
#[derive(Debug, Default)]
pub(super) struct NodeGauges {
    data_dir_total_bytes: Gauge,
    data_dir_free_bytes: Gauge,
    cpu_seconds: Counter<f64, AtomicU64>,
    resident_memory_bytes: Gauge,
    open_fds: Gauge,
    max_fds: Gauge,
    start_time_seconds: Gauge<f64, AtomicU64>,
}

impl ReplicationGauges {
    pub(super) fn refresh(&self, broker: &Broker) {
        let image = broker.published.borrow().clone();
        let node = broker.config.node_id;
        let (mut led, mut under, mut under_min, mut offline) = (0, 0, 0, 0);
        for topic in image.topics.values() {
            let configs = image.configs.get(&sluice_controller::ConfigResource::Topic(
                topic.name.clone(),
            ));
            let min_insync = crate::publisher::min_insync_replicas(
                broker,
                configs.unwrap_or(&Default::default()),
            );
            for p in topic.partitions.values() {
                if p.leader == sluice_replica::NO_LEADER {
                    offline += 1;
                }
                if p.leader != node {
                    continue;
                }
                led += 1;
                under += i64::from(p.isr.len() < p.replicas.len());
                under_min += i64::from(p.isr.len() < min_insync.min(p.replicas.len()));
            }
        }
        self.leader.set(led);
        self.under_replicated.set(under);
        self.under_min_isr.set(under_min);
        self.offline.set(offline);
    }
}

impl NodeGauges {
    pub(super) fn refresh(&self, broker: &Broker) {
        let (total, free) = broker.logs.disk_space().unwrap_or((-1, -1));
        self.data_dir_total_bytes.set(total);
        self.data_dir_free_bytes.set(free);
        let figures = super::process::read();
        if let Some(seconds) = figures.cpu_seconds {
            let counted = self.cpu_seconds.get();
            self.cpu_seconds.inc_by((seconds - counted).max(0.0));
        }
        let set = |gauge: &Gauge, value: Option<i64>| gauge.set(value.unwrap_or(-1));
        set(&self.resident_memory_bytes, figures.resident_memory_bytes);
        set(&self.open_fds, figures.open_fds);
        set(&self.max_fds, figures.max_fds);
        if let Some(started) = figures.start_time_seconds {
            self.start_time_seconds.set(started);
        }
    }
}

/// The process's figures, under Prometheus's standard names (no `sluice_` prefix).
pub(super) fn register_process(root: &mut Registry, node: &NodeGauges) {
    root.register(
        "process_cpu_seconds",
        "User and system CPU time spent, in seconds",
        node.cpu_seconds.clone(),
    );
    root.register(
        "process_resident_memory_bytes",
        "Resident memory size, in bytes",
        node.resident_memory_bytes.clone(),
    );
    root.register(
        "process_open_fds",
        "Open file descriptors",
        node.open_fds.clone(),
    );
    root.register(
        "process_max_fds",
        "The limit on open file descriptors",
        node.max_fds.clone(),
    );
    root.register(
        "process_start_time_seconds",
        "Start time of the process since the Unix epoch, in seconds",
        node.start_time_seconds.clone(),
    );
}

pub(super) fn register_replication(registry: &mut Registry, gauges: &ReplicationGauges) {
    let named = [
        (
            "leader_partitions",
            "Partitions this broker leads",
            &gauges.leader,
        ),
        (
            "under_replicated_partitions",
            "Partitions this broker leads whose in-sync set is smaller than their replica set",
            &gauges.under_replicated,
        ),
        (
            "under_min_isr_partitions",
            "Partitions this broker leads with fewer in-sync replicas than min.insync.replicas",
            &gauges.under_min_isr,
        ),
        (
            "offline_partitions",
            "Partitions of the cluster without a leader, as this broker's metadata has them",
            &gauges.offline,
        ),
    ];
    for (name, help, gauge) in named {
        registry.register(name, help, gauge.clone());
    }
}

pub(super) fn register_node(registry: &mut Registry, node: &NodeGauges) {
    let build = Family::<VersionLabel, Gauge>::default();
    build
        .get_or_create(&VersionLabel {
            version: env!("CARGO_PKG_VERSION"),
        })
        .set(1);
    registry.register("build_info", "The running build, by version", build);
    registry.register(
        "data_dir_total_bytes",
        "Size of the data directory's filesystem, in bytes",
        node.data_dir_total_bytes.clone(),
    );
    registry.register(
        "data_dir_free_bytes",
        "Bytes of the data directory's filesystem this process may still use",
        node.data_dir_free_bytes.clone(),
    );
}
