//! `sluice-client`: a small async client for any Kafka-compatible cluster, speaking the wire
//! protocol through the pinned `kafka-protocol` codec. The `sluice` CLI uses it for every
//! command, the broker uses it to reach its peers (transaction markers), and replication and
//! mirroring will reuse it.
//!
//! Owns: connections and version negotiation (`connection`), TLS and SASL logins (`security`), users and ACLs (`security_admin`), brokers and leaders (`client`),
//! admin requests (`admin`), produce/fetch/offsets/DeleteRecords (`data`), groups (`groups`),
//! a group member by KIP-848 (`member`) or by the classic protocol (`classic`), a share group
//! member (`share_member`), where reading
//! starts (`position`), the JSON form of a record (`json`), Kafka's key partitioner
//! (`partitioner`), the transactional producer (`txn`). Not: any formatting or user interface (that is the binary's), nor
//! anything of the broker (it depends on no server crate).

pub mod admin;
pub mod classic;
pub mod client;
pub mod client_quotas;
pub mod codes;
pub mod connection;
pub mod data;
pub mod error;
pub mod groups;
pub mod json;
pub mod member;
pub mod partitioner;
pub mod position;
pub mod security;
pub mod security_admin;
pub mod share_groups;
pub mod share_member;
pub mod txn;
pub mod units;

pub use client::Client;
pub use connection::Connection;
pub use error::{ClientError, Result};
