//! Every limit Sluice enforces, in one place (the TigerBeetle habit).
//!
//! A broker-wide limit that an operator may change has its default here and its key in the
//! configuration; the others are fixed. Per-topic limits (`max.message.bytes`, `segment.bytes`)
//! have their defaults in `sluice_storage::TOPIC_CONFIG_KEYS`, bounded by the constants here. Each decoder checks a length against one of these before it allocates.

/// Largest request frame accepted (`socket.request.max.bytes`, Kafka's default 100 MiB).
pub const REQUEST_FRAME_BYTES_MAX_DEFAULT: u32 = 100 * 1024 * 1024;

/// Largest request frame of any API but Produce. Decoding turns each element of a request's
/// arrays into a struct (an empty group id of 2 bytes becomes 32), so a frame of
/// `socket.request.max.bytes` could decode into gigabytes; no client's admin, group or fetch
/// request comes near this (a SyncGroup for 1,000 members of 8 KiB assignments does).
pub const REQUEST_FRAME_BYTES_MAX_NOT_PRODUCE: usize = 8 * 1024 * 1024;

/// Largest record batch the storage layer will ever accept or recover, whatever the topic
/// config says: a batch header claiming more is corruption.
pub const BATCH_BYTES_MAX_ABSOLUTE: u32 = 64 * 1024 * 1024;

/// Largest total of record bytes in one fetch response (`fetch.max.bytes`, Kafka's default).
pub const FETCH_RESPONSE_BYTES_MAX: u32 = 57_671_680;

/// Longest a fetch may park waiting for `min_bytes` (clients ask for 500 ms by default).
pub const FETCH_WAIT_MS_MAX: u64 = 30_000;

/// Longest topic name (Kafka's rule, so partition directory names stay under 255 bytes).
pub const TOPIC_NAME_CHARS_MAX: usize = 249;

/// Most partitions one topic may have.
pub const PARTITIONS_PER_TOPIC_MAX: i32 = 10_000;

/// Most topics one broker may hold.
pub const TOPICS_MAX: usize = 100_000;

/// Most open client connections.
pub const CONNECTIONS_MAX: usize = 10_000;

/// Bytes of request frames still arriving, across all connections: a frame's bytes count from
/// its length prefix until its last byte. Past it, readers wait for frames to finish (or time
/// out, `request_timeout_ms`). Large frames (over `SMALL_FRAME_BYTES_MAX`) and small ones each
/// have a budget of this size, so clients stalling large frames cannot hold back small
/// requests. The large budget is raised to `socket.request.max.bytes` if that is larger.
pub const UNFINISHED_FRAME_BYTES_MAX: usize = 256 * 1024 * 1024;

/// Frames up to this size draw on the small frames' budget (see above).
pub const SMALL_FRAME_BYTES_MAX: usize = 1024 * 1024;

/// Default of `connections_max_idle_ms` (Kafka's `connections.max.idle.ms`).
pub const CONNECTIONS_IDLE_MS_MAX_DEFAULT: u64 = 600_000;

/// Default of `request_timeout_ms`: how long a frame may take to arrive once its first byte
/// has.
pub const REQUEST_ARRIVAL_MS_MAX_DEFAULT: u64 = 30_000;

/// Default of `max_connections_per_ip` (Kafka's default is unbounded; one address filling
/// the broker-wide cap would lock everyone else out).
pub const CONNECTIONS_PER_IP_MAX_DEFAULT: usize = 1_000;

/// Most connections on the broker's internal loopback listener (the in-process HTTP gateway:
/// its pool, SSE streams and polling members, each bounded by the `HTTP_*` limits below).
pub const INTERNAL_CONNECTIONS_MAX: usize = 2_500;

/// Requests read from one connection whose responses are not yet written. Responses still
/// go out in request order; this bounds the memory one client can pin (a pending request holds
/// no frame, only its small response state). Deep enough that an `acks=all` producer sending
/// one record per request keeps appending through an fsync that stalls: at 10,000 requests/s
/// the host's disk here once took 188 ms for one fsync, and with 256 in flight the reader
/// stopped after 26 ms, so consumers saw records 130 ms late (end-to-end p99 40-90 ms instead
/// of 5 ms in such runs).
pub const REQUESTS_IN_FLIGHT_PER_CONNECTION_MAX: usize = 4096;

/// Largest decompressed size of one record batch the broker will inflate (for timestamp
/// lookups and validation): a compression bomb stops here.
pub const BATCH_DECOMPRESSED_BYTES_MAX: usize = 256 * 1024 * 1024;

/// Most batch decompressions (validation of a produced batch, a timestamp lookup, a
/// compaction pass) running at once in the process; others wait. A decompression holds at most
/// a codec's window and buffers (a zstd window is up to 128 MiB, a raw snappy block up to
/// `BATCH_DECOMPRESSED_BYTES_MAX`), and its CPU; this bounds both whatever clients send.
pub const DECOMPRESSIONS_CONCURRENT_MAX: usize = 4;

/// Most files of closed segments (those fully fsynced) kept open at once, process-wide; the
/// rest are opened when read. The active segment's file, and any with unfsynced data, are
/// always open and not counted.
pub const SEGMENT_FILES_OPEN_MAX: usize = 256;

/// Largest segment file (`segment.bytes`); positions inside a segment are u32.
pub const SEGMENT_BYTES_MAX: u64 = i32::MAX as u64;

/// Smallest segment file, so a misconfiguration cannot create one file per batch.
pub const SEGMENT_BYTES_MIN: u64 = 14;

/// Largest configuration value string accepted in CreateTopics / AlterConfigs.
pub const CONFIG_VALUE_BYTES_MAX: usize = 4096;

/// Longest consumer group id, group instance id or member id, in bytes.
pub const GROUP_ID_BYTES_MAX: usize = 255;

/// Longest client id or client host a group member may carry: what a request header can
/// (an int16-length string), and what a `__consumer_offsets` record can store.
pub const CLIENT_ID_BYTES_MAX: usize = i16::MAX as usize;

/// Most groups one coordinator holds; a join or commit that would create one more is refused.
pub const GROUPS_MAX: usize = 100_000;

/// Most members (joined or asked to rejoin with a member id) in one classic group
/// (`group.max.size`; Kafka's default is unbounded).
pub const GROUP_MEMBERS_MAX: usize = 1_000;

/// Most protocols (assignors) one member may offer in a JoinGroup.
pub const GROUP_PROTOCOLS_PER_MEMBER_MAX: usize = 32;

/// Largest protocol metadata (subscription) or assignment of one member, in bytes.
pub const GROUP_MEMBER_METADATA_BYTES_MAX: usize = 1024 * 1024;

/// Largest metadata string attached to a committed offset (`offset.metadata.max.bytes`).
pub const OFFSET_METADATA_BYTES_MAX: usize = 4096;

/// Longest regular expression a KIP-848 member may subscribe with, in bytes.
pub const GROUP_SUBSCRIPTION_REGEX_BYTES_MAX: usize = 1024;

/// Most partitions with committed offsets one group may hold.
pub const GROUP_COMMITTED_PARTITIONS_MAX: usize = 100_000;

/// Most distinct keys one compaction pass maps (Kafka bounds the same map by
/// `log.cleaner.dedupe.buffer.size`); about 24 bytes each. A pass stops at the segment where
/// the map fills, and the next pass goes on from there.
pub const COMPACTION_KEYS_PER_PASS_MAX: usize = 2_000_000;

/// Largest response frame the broker sends: an answer that would be larger is never encoded
/// (its size is computed first), and the connection is closed instead. A fetch answer is at
/// most `FETCH_RESPONSE_BYTES_MAX` of records plus framing, well under it.
pub const RESPONSE_FRAME_BYTES_MAX: u32 = 128 * 1024 * 1024;

/// Largest response frame Sluice's own client (the CLI, later replication) accepts: what the
/// broker may send. Checked before the frame is read.
pub const CLIENT_RESPONSE_FRAME_BYTES_MAX: u32 = RESPONSE_FRAME_BYTES_MAX;

/// Largest HTTP request body the HTTP API reads (a produce of many records).
pub const HTTP_BODY_BYTES_MAX: usize = 16 * 1024 * 1024;

/// Most records one HTTP produce may carry, and one HTTP fetch may return.
pub const HTTP_RECORDS_PER_REQUEST_MAX: usize = 10_000;

/// Most HTTP requests (long polls included) using one of the gateway's pooled broker
/// connections at once; others wait up to 10 s, then get a 503.
pub const HTTP_BROKER_CONNECTIONS_MAX: usize = 256;

/// Most Server-Sent Events streams the HTTP API serves at once (each holds a broker
/// connection of its own).
pub const HTTP_STREAMS_MAX: usize = 1_000;

/// Most (group, topic, partition) series of committed offset and lag one `/metrics` scrape
/// exports; past it the scrape says how many it left out rather than growing without bound.
pub const METRICS_GROUP_PARTITIONS_MAX: usize = 10_000;

/// Most consumer-group members the HTTP API keeps for polling clients at once.
pub const HTTP_MEMBERS_MAX: usize = 1_000;

/// Samples of the broker's metrics the web console keeps for its charts: an hour, one every
/// 10 s.
pub const CONSOLE_HISTORY_SAMPLES_MAX: usize = 360;

/// Consumer groups whose lag the console's history keeps per sample (the rest are left out
/// of the charts, not of the pages).
pub const CONSOLE_HISTORY_GROUPS_MAX: usize = 1_000;

/// Most records one page of the console's message browser shows.
pub const CONSOLE_RECORDS_PER_PAGE_MAX: usize = 1_000;

/// Batches remembered per idempotent producer and partition for duplicate detection: a retried
/// batch is recognised if it is among its producer's last this many (Kafka's
/// `NUM_BATCHES_TO_RETAIN`; clients keep at most 5 requests in flight with idempotence).
pub const PRODUCER_BATCHES_RETAINED: usize = 5;

/// Most idempotent producers whose state one partition keeps. Producer ids come from batches,
/// which any client can write, so the count needs a bound; past it a new producer's batch is
/// refused until `producer.id.expiration.ms` frees room. (About 250 bytes each.)
pub const PRODUCERS_PER_PARTITION_MAX: usize = 100_000;

/// Longest `transactional.id`, in bytes (Kafka has no explicit bound; this keeps the
/// `__transaction_state` key within its int16 string length).
pub const TRANSACTIONAL_ID_BYTES_MAX: usize = 4096;

/// Most transactional ids one transaction coordinator keeps.
pub const TRANSACTIONS_MAX: usize = 100_000;

/// Most partitions one transaction may span (every one gets a marker at its end).
pub const TRANSACTION_PARTITIONS_MAX: usize = 10_000;

/// The largest metadata record (`sluice_controller::MetadataRecord`) accepted when decoding:
/// a topic of `PARTITIONS_PER_TOPIC_MAX` partitions is one record per partition, so a record
/// is small; this bounds what a damaged or hostile entry can make the decoder allocate.
pub const METADATA_RECORD_BYTES_MAX: usize = 1024 * 1024;

/// Connections a listener keeps waiting to be accepted (its `listen` backlog). The kernel's
/// default of 128 is too few when a broker out of descriptors leaves new connections waiting
/// until some close; `net.core.somaxconn` caps it.
pub const LISTEN_BACKLOG: u32 = 1024;

/// Longest SQL statement a view accepts, in bytes (checked before it is parsed; the parser
/// also refuses nesting deep enough to exhaust its stack).
pub const SQL_BYTES_MAX: usize = 64 * 1024;

/// Groups a view may change between two commits: reaching it commits early, so the set of
/// changed keys (and one commit's transaction) stays bounded however fast the source is.
pub const VIEW_DIRTY_KEYS_MAX: usize = 100_000;

/// Bytes of records a stream (`CREATE STREAM`) may hold unwritten between two commits:
/// reaching it commits early (as do `VIEW_DIRTY_KEYS_MAX` records).
pub const VIEW_PENDING_BYTES_MAX: usize = 16 * 1024 * 1024;

/// Bytes one fetch of a view's engine takes from a partition.
pub const VIEW_FETCH_PARTITION_BYTES: i32 = 1024 * 1024;

/// Records of a view's output in one produced batch (a commit sends as many as it needs).
pub const VIEW_OUTPUT_BATCH_RECORDS: usize = 2_000;

/// Rows one query of a view answers at most (a query past it is refused and told to add LIMIT;
/// `GET /v1/views/{v}/rows` pages).
pub const VIEW_QUERY_ROWS_MAX: usize = 10_000;

/// Bytes of rows one view answer holds at most: a page stops early (and says `more`), a query
/// past it is refused. Rows of a table can be as large as its records.
pub const VIEW_ANSWER_BYTES_MAX: usize = 16 * 1024 * 1024;

/// Tables and views one server keeps (each is a task, a producer, a group and its metric
/// series).
pub const VIEWS_MAX: usize = 1_000;

/// Groups (a table: keys) one view holds at most. Past it the view stops with an error that
/// says so, rather than taking the server's memory: drop it, or group by fewer values.
pub const VIEW_GROUPS_MAX: usize = 5_000_000;

/// Commits of changes a view keeps for its change streams (`/v1/views/{v}/changes`): a stream
/// further behind is told so and ends (it reconnects with `snapshot=true`). Each is at most
/// `VIEW_DIRTY_KEYS_MAX` rows, kept while anyone listens.
pub const VIEW_CHANGE_BATCHES_BUFFERED: usize = 16;

/// Rows a change stream's snapshot (`snapshot=true`) sends at most: a larger view is read in
/// pages (`/v1/views/{v}/rows`) and followed without a snapshot.
pub const VIEW_SNAPSHOT_ROWS_MAX: usize = 100_000;

/// Share sessions one broker keeps (Kafka's `group.share.max.share.sessions`); a new one past
/// it first evicts a session idle for `SHARE_SESSION_IDLE_EVICT_MS`, else is refused with
/// SHARE_SESSION_LIMIT_REACHED.
pub const SHARE_SESSIONS_MAX: usize = 2_000;

/// How long a share session may go unused before a new session may take its place.
pub const SHARE_SESSION_IDLE_EVICT_MS: i64 = 120_000;

/// Partitions one share session follows.
pub const SHARE_SESSION_PARTITIONS_MAX: usize = 10_000;

/// Partitions (and topics) one DescribeShareGroupOffsets, AlterShareGroupOffsets or
/// DeleteShareGroupOffsets request may name: each costs a read or write of the share
/// coordinator. More are refused with INVALID_REQUEST before any is done.
pub const SHARE_OFFSETS_PARTITIONS_MAX: usize = 10_000;

/// Share-partitions (a group reading a partition) one broker keeps in flight; a fetch that
/// would start one more is refused for that partition with SHARE_SESSION_LIMIT_REACHED.
pub const SHARE_PARTITIONS_MAX: usize = 50_000;

/// Records one ShareFetch asks at most (whatever its `max_records`), and what it asks when it
/// names none. A share-partition completes the batch of the last record it hands out (as
/// Kafka does), so one may hand out more, never more than this many.
pub const SHARE_FETCH_RECORDS_MAX: usize = 10_000;
pub const SHARE_FETCH_RECORDS_DEFAULT: usize = 500;

/// Bytes of the log one share-partition's acquisition reads at most (at least one whole
/// batch): what a fetch may take lies within the in-flight window, so more is read for nothing.
pub const SHARE_READ_BYTES_MAX: usize = 1024 * 1024;

/// Bytes of one request a connection may send before it has authenticated (Kafka's
/// `sasl.server.max.receive.size`): a larger frame closes it. SASL tokens, ApiVersions and the
/// SASL requests are all that may come first, and none needs more.
pub const SASL_RECEIVE_BYTES_MAX: usize = 512 * 1024;

/// Bytes of a SASL user name (SCRAM's `n=`, PLAIN's authcid), and of a SCRAM credential's
/// user in AlterUserScramCredentials: names end up in the metadata log and in audit lines.
pub const SASL_USER_NAME_BYTES_MAX: usize = 1_024;

/// Bytes of a SCRAM salt or salted password an AlterUserScramCredentials may carry.
pub const SCRAM_SECRET_BYTES_MAX: usize = 1_024;

/// Entities (users, client ids, and pairs of them) a cluster keeps client quotas for, and
/// entities one AlterClientQuotas may carry.
pub const QUOTA_ENTITIES_MAX: usize = 10_000;

/// How much use a quota lets through at once: this long at its rate. Past it, each use is
/// followed by the wait that brings the rate back within the quota.
pub const QUOTA_BURST_MS: u64 = 1_000;

/// The longest a response says to wait (its throttle time), and the longest a connection is
/// held, for one request (Kafka bounds it by its quota window, 11 s). A larger debt stays in
/// the bucket and is waited off over the next requests.
pub const QUOTA_THROTTLE_MS_MAX: u64 = 11_000;

/// A consumer under `consumer_byte_rate` gets at most this long of its quota's bytes in one
/// fetch response (past the first batch), so each wait is short and its rate even.
pub const QUOTA_FETCH_RESPONSE_MS: u64 = 250;

/// Sensors (a user's or client id's use of one quota) a broker measures at once. Full buckets
/// are forgotten first; past this, new sensors share one per quota.
pub const QUOTA_SENSORS_MAX: usize = 10_000;

/// HTTP Basic credentials the HTTP API remembers as checked (for a minute each), so a client
/// that sends them with every request does not pay a SCRAM derivation each time.
pub const HTTP_AUTH_CACHE_ENTRIES_MAX: usize = 1_024;

/// Bytes of an OAUTHBEARER token (a JWT): identity providers' tokens are a few KiB; a larger
/// one is refused before it is decoded.
pub const OAUTHBEARER_TOKEN_BYTES_MAX: usize = 64 * 1024;

/// Bytes of the JWKS file OAUTHBEARER tokens are checked against, and keys it may hold.
pub const JWKS_BYTES_MAX: usize = 1024 * 1024;
pub const JWKS_KEYS_MAX: usize = 256;

/// Iterations a SCRAM credential may have (Kafka's bounds for both SCRAM-SHA-256 and
/// SCRAM-SHA-512): fewer are too cheap to guess; more make a PLAIN login, which derives the
/// salted password on the broker, too dear.
pub const SCRAM_ITERATIONS_MIN: i32 = 4_096;
pub const SCRAM_ITERATIONS_MAX: i32 = 16_384;

/// Failed authentications one source address may have in a burst, and how many more it earns
/// each second: past them, its attempts are refused without looking at what they carry until
/// it has earned one again (the answer is the same SASL_AUTHENTICATION_FAILED either way).
pub const SASL_FAILURES_PER_ADDRESS_BURST: u32 = 20;
pub const SASL_FAILURES_PER_ADDRESS_PER_SECOND: u32 = 5;

/// Source addresses whose failures are counted at once: the oldest is forgotten first, so a
/// flood from many addresses costs a fixed amount of memory.
pub const SASL_FAILURE_ADDRESSES_MAX: usize = 10_000;

/// How long a failed authentication's answer waits (Kafka's
/// `connection.failed.authentication.delay.ms`, default 100): a guesser gets an answer no
/// sooner, whatever the broker's cost to check.
pub const SASL_FAILURE_DELAY_MS: u64 = 100;

/// ACLs a cluster keeps: CreateAcls past it is refused (POLICY_VIOLATION). Each is a metadata
/// record every broker holds and compiles; 10,000 are checked in well under a microsecond
/// (`crates/acl/examples/check_cost.rs`).
pub const ACLS_MAX: usize = 100_000;

/// ACL creations or filters one CreateAcls, DeleteAcls request may carry.
pub const ACL_REQUEST_ITEMS_MAX: usize = 10_000;

/// How often a TLS listener's keystore and truststore are checked for changes: a changed file
/// is read again (as on SIGHUP), so a renewed certificate serves within this long.
pub const TLS_FILES_CHECK_INTERVAL_MS: u64 = 5_000;
