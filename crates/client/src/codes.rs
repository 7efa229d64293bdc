//! The Kafka error codes the client, the CLI and the view engine act on, by Kafka's names, in
//! one place (`error::error_name` turns any code into its name for messages). A caller compares
//! `ClientError::code()` with these.

/// The position is before the log's start or past its end.
pub const OFFSET_OUT_OF_RANGE: i16 = 1;
pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
/// A topic being created has no leader for a moment.
pub const LEADER_NOT_AVAILABLE: i16 = 5;
pub const MESSAGE_TOO_LARGE: i16 = 10;
/// The coordinator is busy (loading, moving, or ending a transaction of this id): ask again
/// shortly. With CONCURRENT_TRANSACTIONS.
pub const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
pub const RECORD_LIST_TOO_LARGE: i16 = 18;
/// Classic groups: join again (with UNKNOWN_MEMBER_ID, REBALANCE_IN_PROGRESS and
/// MEMBER_ID_REQUIRED).
pub const ILLEGAL_GENERATION: i16 = 22;
pub const UNKNOWN_MEMBER_ID: i16 = 25;
pub const REBALANCE_IN_PROGRESS: i16 = 27;
/// What a broker answers ApiVersions with when it does not know the version asked.
pub const UNSUPPORTED_VERSION: i16 = 35;
pub const TOPIC_ALREADY_EXISTS: i16 = 36;
/// A transactional producer whose epoch another instance of its id bumped (with
/// PRODUCER_FENCED): it may send nothing more.
pub const INVALID_PRODUCER_EPOCH: i16 = 47;
pub const CONCURRENT_TRANSACTIONS: i16 = 51;
pub const NON_EMPTY_GROUP: i16 = 68;
/// Also a KIP-848 heartbeat's answer when the group has live classic members.
pub const GROUP_ID_NOT_FOUND: i16 = 69;
pub const MEMBER_ID_REQUIRED: i16 = 79;
/// A compacted topic answers it for a record without a key.
pub const INVALID_RECORD: i16 = 87;
/// An open transaction holds an offset of the partition (OffsetFetch with `require_stable`).
pub const UNSTABLE_OFFSET_COMMIT: i16 = 88;
/// KIP-848 groups: join again with epoch 0 (with UNKNOWN_MEMBER_ID).
pub const PRODUCER_FENCED: i16 = 90;
/// A SCRAM credential Kafka refuses (too few or too many iterations, an empty name).
pub const UNACCEPTABLE_CREDENTIAL: i16 = 93;
pub const FENCED_MEMBER_EPOCH: i16 = 110;
pub const STALE_MEMBER_EPOCH: i16 = 113;
