//! The OpenAPI description of the HTTP API, generated from the handlers' `#[utoipa::path]`
//! annotations and the shapes below (`GET /openapi.json`). The shapes document what the
//! handlers answer; schemathesis checks every answer against them in the test suite.

#![allow(dead_code)] // The shapes exist for their schemas; handlers build the same JSON.

use serde::Serialize;
use std::collections::BTreeMap;
use utoipa::{OpenApi, ToSchema};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Sluice HTTP API",
        description = "Produce, read, stream and administer Sluice over HTTP/JSON. See docs/http-api.md."
    ),
    paths(
        crate::healthz,
        crate::readyz,
        crate::metrics,
        crate::cluster::describe,
        crate::topics::list,
        crate::topics::create,
        crate::topics::describe,
        crate::topics::delete,
        crate::topics::alter_configs,
        crate::topics::add_partitions,
        crate::records::delete_records,
        crate::records::produce,
        crate::records::fetch,
        crate::stream::stream,
        crate::stream::ack,
        crate::groups::list,
        crate::groups::describe,
        crate::groups::delete,
        crate::groups::reset_offsets,
        crate::members::join,
        crate::members::poll,
        crate::members::commit,
        crate::members::leave,
        crate::share_queue::join,
        crate::share_queue::poll,
        crate::share_queue::acknowledge,
        crate::share_queue::leave,
        crate::views::sql,
        crate::views::list,
        crate::views::describe,
        crate::views::drop_view,
        crate::views::row,
        crate::views::rows,
        crate::views::changes,
        crate::views::rebuild,
        crate::users::list,
        crate::users::set_password,
        crate::users::delete,
        crate::acls::list,
        crate::acls::add,
        crate::acls::remove,
    )
)]
pub(crate) struct ApiDoc;

/// Every error answer.
#[derive(Serialize, ToSchema)]
pub(crate) struct ErrorBody {
    /// Kafka's error name (`UNKNOWN_TOPIC_OR_PARTITION`) or the API's own (`INVALID_REQUEST`).
    pub error_code: String,
    pub message: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct Status {
    pub status: String,
    #[schema(required = false)]
    pub message: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ClusterBroker {
    pub id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ClusterDescription {
    pub cluster_id: Option<String>,
    /// The active controller's id (-1: none known).
    pub controller: i32,
    /// The live brokers, by id.
    pub brokers: Vec<ClusterBroker>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct UserMechanism {
    /// SCRAM-SHA-512 or SCRAM-SHA-256.
    pub mechanism: String,
    pub iterations: i32,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct UserSummary {
    pub user: String,
    pub mechanisms: Vec<UserMechanism>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct UserList {
    pub users: Vec<UserSummary>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct UserCredentialSet {
    pub user: String,
    pub mechanism: String,
    pub iterations: i32,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct UserDeleted {
    pub user: String,
    /// The mechanisms whose credentials were deleted.
    pub deleted: Vec<String>,
}

/// An ACL, every field present (the console reads the API's answer back into it).
#[derive(Serialize, serde::Deserialize, ToSchema)]
pub(crate) struct AclOut {
    pub principal: String,
    pub host: String,
    pub resource_type: String,
    pub resource_name: String,
    pub pattern_type: String,
    pub operation: String,
    pub permission: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct AclList {
    pub acls: Vec<AclOut>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct AclsAdded {
    pub added: usize,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct AclsRemoved {
    pub removed: usize,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct TopicSummary {
    pub name: String,
    pub partitions: u32,
    pub internal: bool,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct TopicList {
    pub topics: Vec<TopicSummary>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct TopicCreated {
    pub name: String,
    pub partitions: i32,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct PartitionState {
    pub partition: i32,
    pub leader: i32,
    pub log_start_offset: i64,
    pub end_offset: i64,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct TopicDescription {
    pub name: String,
    pub id: String,
    pub internal: bool,
    pub partitions: Vec<PartitionState>,
    /// Every config with its value (`null` for a sensitive one).
    pub configs: BTreeMap<String, Option<String>>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct RecordOffset {
    pub partition: i32,
    pub offset: i64,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct Produced {
    /// Each record's partition and offset, in request order.
    pub offsets: Vec<RecordOffset>,
}

/// A header: `key` (or `key_base64`) and `value` (or `value_base64`; `null` when absent).
#[derive(Serialize, ToSchema)]
pub(crate) struct HeaderOut {
    #[schema(required = false)]
    pub key: Option<String>,
    #[schema(required = false)]
    pub key_base64: Option<String>,
    #[schema(required = false, nullable)]
    pub value: Option<String>,
    #[schema(required = false)]
    pub value_base64: Option<String>,
}

/// A record: bytes that are UTF-8 come as `key` / `value` strings (`null` when absent), others
/// as `key_base64` / `value_base64`.
#[derive(Serialize, ToSchema)]
pub(crate) struct RecordOut {
    /// Present in share-group reads.
    #[schema(required = false)]
    pub topic: Option<String>,
    /// Present in stream events, group member and share-group reads.
    #[schema(required = false)]
    pub partition: Option<i32>,
    pub offset: i64,
    pub timestamp: i64,
    #[schema(required = false, nullable)]
    pub key: Option<String>,
    #[schema(required = false)]
    pub key_base64: Option<String>,
    /// A string (value_format=text), or any JSON (value_format=json).
    #[schema(required = false, nullable)]
    pub value: Option<serde_json::Value>,
    #[schema(required = false)]
    pub value_base64: Option<String>,
    pub headers: Vec<HeaderOut>,
    /// Present in share-group reads: 1 at the first delivery.
    #[schema(required = false)]
    pub delivery_count: Option<i16>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct Records {
    pub records: Vec<RecordOut>,
    /// Where to read on from.
    pub next_offset: i64,
    pub high_watermark: i64,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct GroupSummary {
    pub group: String,
    pub state: String,
    pub protocol_type: String,
    /// `classic` or `consumer` (KIP-848).
    #[serde(rename = "type")]
    pub group_type: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct GroupList {
    pub groups: Vec<GroupSummary>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct GroupMemberOut {
    pub member_id: String,
    pub client_id: String,
    pub host: String,
    pub assignment: Vec<TopicPartition>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct GroupPartition {
    pub topic: String,
    pub partition: i32,
    #[schema(nullable)]
    pub committed_offset: Option<i64>,
    pub end_offset: i64,
    #[schema(nullable)]
    pub lag: Option<i64>,
    #[schema(nullable)]
    pub member_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct GroupDescription {
    pub group: String,
    pub state: String,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<GroupMemberOut>,
    pub partitions: Vec<GroupPartition>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ResetPartition {
    pub partition: i32,
    /// The committed offset before (null: nothing committed).
    #[schema(nullable)]
    pub current: Option<i64>,
    pub new: i64,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct OffsetReset {
    pub group: String,
    pub topic: String,
    /// False for a dry run.
    pub executed: bool,
    pub partitions: Vec<ResetPartition>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct RecordsDeleted {
    pub partition: i32,
    /// The partition's first offset afterwards.
    pub log_start_offset: i64,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct MemberJoined {
    pub member_id: String,
    pub group: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct MemberRecords {
    pub records: Vec<RecordOut>,
    /// The member's partitions now.
    pub assigned: Vec<i32>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ShareMemberJoined {
    pub member_id: String,
    pub group: String,
    /// The member's partitions so far (they may come with a later heartbeat).
    pub assigned: Vec<TopicPartition>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ShareRecords {
    /// Acquired for this member, each with its topic, partition and delivery count.
    pub records: Vec<RecordOut>,
    /// The member's partitions now.
    pub assigned: Vec<TopicPartition>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ShareAckFailure {
    pub topic: String,
    pub partition: i32,
    /// How many acknowledgements of the partition were refused.
    pub records: usize,
    /// Kafka's error name (`INVALID_RECORD_STATE`: not acquired by this member, or its lock
    /// ran out; `SHARE_SESSION_NOT_FOUND`: no share session with that partition's leader), or
    /// `BROKER_UNAVAILABLE` when the leader was not reached.
    pub error_code: String,
    pub message: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ShareAcked {
    /// How many records were acknowledged.
    pub acknowledged: usize,
    pub failed: Vec<ShareAckFailure>,
}

/// A table, view or stream, as listed.
#[derive(Serialize, ToSchema)]
pub(crate) struct ViewSummary {
    pub name: String,
    /// `table`, `view` or `stream`.
    pub kind: String,
    /// The topic it reads.
    pub source: String,
    /// The topic it writes, named after it: a view's compacted changes, a stream's records;
    /// null for a table.
    #[schema(nullable)]
    pub output_topic: Option<String>,
    /// `starting`, `replaying`, `running`, `retrying: <the error>` or `failed: <the error>`.
    pub state: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ViewList {
    pub views: Vec<ViewSummary>,
}

/// Next offset per `topic:partition` the answer reflects.
#[derive(Serialize, ToSchema)]
pub(crate) struct ViewPosition(BTreeMap<String, i64>);

#[derive(Serialize, ToSchema)]
pub(crate) struct ViewDescription {
    #[serde(flatten)]
    pub summary: ViewSummary,
    /// The statement that made it.
    pub sql: String,
    pub columns: Vec<String>,
    /// Groups (a table: keys) it holds.
    pub rows: u64,
    pub records_folded: u64,
    pub records_skipped: u64,
    pub commits: u64,
    pub position: ViewPosition,
    /// Source records a rebuild or CREATE OR REPLACE under way still has to fold; null when
    /// none is.
    #[schema(nullable)]
    pub rebuild_lag_records: Option<i64>,
    /// Bytes of its groups and rows in the local checkpoint (keys and values).
    #[schema(nullable)]
    pub state_bytes: Option<u64>,
}

/// A statement's answer; which fields it has depends on the statement.
#[derive(Serialize, ToSchema)]
pub(crate) struct SqlAnswer {
    /// CREATE: the name made.
    #[schema(required = false)]
    pub created: Option<String>,
    #[schema(required = false)]
    pub kind: Option<String>,
    /// CREATE OR REPLACE of an existing view: true (the old definition answered until the
    /// new one took its place).
    #[schema(required = false)]
    pub replaced: Option<bool>,
    /// `POST /v1/views/{v}/rebuild`: the name rebuilt.
    #[schema(required = false)]
    pub rebuilt: Option<String>,
    /// DROP: the name dropped (null for `IF EXISTS` that found none).
    #[schema(required = false, nullable)]
    pub dropped: Option<String>,
    /// SELECT: the answer's columns and rows (objects by column name).
    #[schema(required = false)]
    pub columns: Option<Vec<String>>,
    #[schema(required = false, value_type = Option<Vec<Object>>)]
    pub rows: Option<Vec<serde_json::Value>>,
    #[schema(required = false)]
    pub position: Option<ViewPosition>,
    /// SHOW VIEWS / SHOW TABLES.
    #[schema(required = false)]
    pub views: Option<Vec<ViewSummary>>,
    #[schema(required = false)]
    pub tables: Option<Vec<ViewSummary>>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ViewRow {
    /// The row by column name; null when the key has none.
    #[schema(nullable, value_type = Option<Object>)]
    pub row: Option<serde_json::Value>,
    pub position: ViewPosition,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ViewRows {
    #[schema(value_type = Vec<Object>)]
    pub rows: Vec<serde_json::Value>,
    /// More rows follow: ask again with `after` set to the last row's key.
    pub more: bool,
    pub position: ViewPosition,
}
