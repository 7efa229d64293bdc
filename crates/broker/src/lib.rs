//! The Kafka listener of one broker: it accepts connections, decodes requests, hands each to
//! the handler of its API, and writes responses in request order.
//!
//! One file per Kafka API under `handlers/`, each declaring the versions it really supports;
//! ApiVersions is derived from that table (`handlers::SUPPORTED`). Domain errors become Kafka
//! error codes in exactly one place (`error.rs`). The broker reaches storage only through the
//! `sluice-storage` public API (`LogManager`, `Partition`), never through its files. What
//! exists in the cluster is the metadata log's image: `publisher.rs` makes storage and the
//! coordinators follow it, handlers read it (`metadata_image.rs`) and change it through the
//! active controller (`controller_client.rs`). Consumer groups are decided by `sluice-group`'s
//! pure coordinator; `groups.rs` gives it a log, timers and parked requests. Transactions
//! likewise by `sluice-txn`'s, in `transactions.rs`.

mod admission;
mod authentication;
mod authorization;
mod background;
mod config;
mod connection;
mod controller_client;
mod dispatch;
mod error;
mod groups;
mod handlers;
mod internal_topics;
mod metadata_image;
mod metrics;
mod peers;
mod principal_mapping;
mod producer_ids;
mod publisher;
mod quotas;
mod reload;
mod replicas;
mod scrub;
mod server;
mod share_coordinators;
mod shares;
pub mod tls;
mod transactions;
mod txn_peers;

pub use authentication::CallerChecks;
pub use config::{
    BrokerConfig, InterBroker, OAuthBearerConfig, OFFSETS_TOPIC_PARTITIONS_DEFAULT,
    SecuredListener, TRANSACTION_STATE_PARTITIONS_DEFAULT,
};
pub use metadata_image::ClusterView;
pub use principal_mapping::PrincipalMapper;
pub use reload::FileReloader;
pub use server::{Broker, RunningBroker, StartError};
pub use sluice_group::GroupConfig;
pub use sluice_txn::TxnConfig;

/// The broker's one clock, passed into storage.
pub(crate) use sluice_types::now_ms;
