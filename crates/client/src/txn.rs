//! `TransactionalProducer`: Kafka's transactional producer (KIP-98), as the Java client's
//! `initTransactions` / `beginTransaction` / `send` / `sendOffsetsToTransaction` /
//! `commitTransaction` / `abortTransaction`. Batches are stamped with the producer id, epoch and
//! per-partition sequence; a partition joins the transaction (AddPartitionsToTxn) before its
//! first batch, a group (AddOffsetsToTxn) before its offsets (TxnOffsetCommit, to the group's
//! coordinator); EndTxn ends it. A newer producer with the same transactional id fences this
//! one: every later call fails with PRODUCER_FENCED and the producer is done.
//!
//! Owns: the transaction's protocol and its bookkeeping. Not: retrying a whole transaction
//! (a caller aborts and starts again), nor batching (the caller hands whole record lists).

use crate::admin::{str_bytes, topic_name};
use crate::codes::{
    CONCURRENT_TRANSACTIONS, COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE,
};
use crate::groups::Member;
use crate::{Client, ClientError, Connection, Result};
use bytes::Bytes;
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddPartitionsToTxnRequest, EndTxnRequest, GroupId,
    InitProducerIdRequest, ProducerId, TransactionalId, TxnOffsetCommitRequest,
    add_partitions_to_txn_request::AddPartitionsToTxnTopic,
    txn_offset_commit_request::{TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic},
};
use sluice_record::{Compression, Record, encode_records_compressed, stamp_producer};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

/// FindCoordinator's key type for a transactional id.
const KEY_TYPE_TRANSACTION: i8 = 1;
/// How many times a busy coordinator is asked again, and how long apart (at first).
const BUSY_RETRIES_MAX: u32 = 50;
const BUSY_BACKOFF_FIRST: Duration = Duration::from_millis(20);
const BUSY_BACKOFF_MAX: Duration = Duration::from_millis(500);

/// Runs `$body` (an async block's body answering a `Result`) until the coordinator is not
/// busy (`Busy::settle`). A macro rather than a function over an async closure: the future of
/// an async closure is not provably `Send`, and engines run these in spawned tasks.
macro_rules! busy_retried {
    ($body:block) => {{
        let mut busy = Busy::new();
        loop {
            let result: Result<_> = async $body.await;
            if let Some(done) = busy.settle(result).await {
                break done;
            }
        }
    }};
}

/// What the open transaction holds so far.
#[derive(Debug, Default)]
struct Open {
    partitions: BTreeSet<(String, i32)>,
    groups: BTreeSet<String>,
}

pub struct TransactionalProducer {
    transactional_id: String,
    producer_id: i64,
    epoch: i16,
    coordinator: Connection,
    /// Next sequence per partition (it starts at 0 for each new producer id and epoch).
    sequences: HashMap<(String, i32), i32>,
    open: Option<Open>,
    compression: Compression,
}

impl TransactionalProducer {
    /// `initTransactions`: finds the transaction coordinator of `transactional_id` and gets a
    /// producer id and epoch from it, fencing any older producer of that id (whose open
    /// transaction the coordinator aborts).
    pub async fn init(
        client: &mut Client,
        transactional_id: &str,
        transaction_timeout: Duration,
    ) -> Result<TransactionalProducer> {
        let mut coordinator = transaction_coordinator(client, transactional_id).await?;
        let request = InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(str_bytes(transactional_id))))
            .with_transaction_timeout_ms(
                transaction_timeout.as_millis().min(i32::MAX as u128) as i32
            )
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        let response = busy_retried!({
            let (_, r) = coordinator.send(&request, 4).await?;
            ClientError::check(r.error_code, None, || {
                format!("initializing transactional id {transactional_id}")
            })?;
            Ok(r)
        })?;
        Ok(TransactionalProducer {
            transactional_id: transactional_id.to_string(),
            producer_id: response.producer_id.0,
            epoch: response.producer_epoch,
            coordinator,
            sequences: HashMap::new(),
            open: None,
            compression: Compression::None,
        })
    }

    /// Compresses the batches `send` writes.
    pub fn with_compression(mut self, compression: Compression) -> TransactionalProducer {
        self.compression = compression;
        self
    }

    pub fn producer_id(&self) -> i64 {
        self.producer_id
    }

    pub fn epoch(&self) -> i16 {
        self.epoch
    }

    /// `beginTransaction`.
    ///
    /// # Panics
    /// When a transaction is already open (a caller's bug).
    pub fn begin(&mut self) {
        assert!(self.open.is_none(), "a transaction is already open");
        self.open = Some(Open::default());
    }

    /// Writes `records` (offsets 0..n, as `encode_records` takes them) to `topic`-`partition`
    /// inside the open transaction, as one batch; returns its base offset. Answered once the
    /// batch is on every in-sync replica (`acks=all`), but readable by `read_committed`
    /// consumers only once the transaction commits.
    pub async fn send(
        &mut self,
        client: &mut Client,
        topic: &str,
        partition: i32,
        records: &[Record<'_>],
    ) -> Result<i64> {
        let key = (topic.to_string(), partition);
        let open = self.open.as_ref().ok_or_else(not_open)?;
        if !open.partitions.contains(&key) {
            self.add_partition(topic, partition).await?;
            self.open_mut()?.partitions.insert(key.clone());
        }
        let sequence = *self.sequences.get(&key).unwrap_or(&0);
        let mut batch = encode_records_compressed(records, self.compression);
        stamp_producer(&mut batch, self.producer_id, self.epoch, sequence, true);
        let base = crate::data::produce_transactional(
            client,
            topic,
            partition,
            Bytes::from(batch),
            &self.transactional_id,
        )
        .await?;
        let next = sequence.wrapping_add(records.len() as i32) & i32::MAX;
        self.sequences.insert(key, next);
        Ok(base)
    }

    /// `sendOffsetsToTransaction`: commits `offsets` (the next offsets to read) for `group` as
    /// part of the transaction: they count only if it commits. `member` is the consumer's
    /// group identity when it reads as a member (its generation or member epoch fences a
    /// zombie); `None` for a group no member uses.
    pub async fn send_offsets(
        &mut self,
        client: &mut Client,
        group: &str,
        offsets: &BTreeMap<(String, i32), i64>,
        member: Option<&Member>,
    ) -> Result<()> {
        let open = self.open.as_ref().ok_or_else(not_open)?;
        if !open.groups.contains(group) {
            self.add_group(group).await?;
            self.open_mut()?.groups.insert(group.to_string());
        }
        let mut by_topic: BTreeMap<&str, Vec<TxnOffsetCommitRequestPartition>> = BTreeMap::new();
        for ((topic, partition), offset) in offsets {
            by_topic.entry(topic).or_default().push(
                TxnOffsetCommitRequestPartition::default()
                    .with_partition_index(*partition)
                    .with_committed_offset(*offset)
                    .with_committed_leader_epoch(-1),
            );
        }
        let admin = Member::admin();
        let member = member.unwrap_or(&admin);
        let request = TxnOffsetCommitRequest::default()
            .with_transactional_id(TransactionalId(str_bytes(&self.transactional_id)))
            .with_group_id(GroupId(str_bytes(group)))
            .with_producer_id(ProducerId(self.producer_id))
            .with_producer_epoch(self.epoch)
            .with_generation_id(member.epoch)
            .with_member_id(str_bytes(&member.member_id))
            .with_topics(
                by_topic
                    .into_iter()
                    .map(|(name, partitions)| {
                        TxnOffsetCommitRequestTopic::default()
                            .with_name(topic_name(name))
                            .with_partitions(partitions)
                    })
                    .collect(),
            );
        let connection = crate::groups::coordinator_connection(client, group).await?;
        let transactional_id = &self.transactional_id;
        busy_retried!({
            let (_, r) = connection.send(&request, 3).await?;
            for t in &r.topics {
                for p in &t.partitions {
                    ClientError::check(p.error_code, None, || {
                        format!(
                            "committing {}-{} for group {group} in transaction {transactional_id}",
                            t.name.0, p.partition_index
                        )
                    })?;
                }
            }
            Ok(())
        })?;
        Ok(())
    }

    /// `commitTransaction`: everything sent and every offset sent becomes visible at once.
    pub async fn commit(&mut self) -> Result<()> {
        self.end(true).await
    }

    /// `abortTransaction`: nothing sent in the transaction is ever read by `read_committed`
    /// consumers, and its offsets never count.
    pub async fn abort(&mut self) -> Result<()> {
        self.end(false).await
    }

    async fn end(&mut self, committed: bool) -> Result<()> {
        let open = self.open.take().ok_or_else(not_open)?;
        if open.partitions.is_empty() && open.groups.is_empty() {
            return Ok(()); // Nothing joined the transaction: the coordinator has no record of it.
        }
        let request = EndTxnRequest::default()
            .with_transactional_id(TransactionalId(str_bytes(&self.transactional_id)))
            .with_producer_id(ProducerId(self.producer_id))
            .with_producer_epoch(self.epoch)
            .with_committed(committed);
        let (coordinator, transactional_id) = (&mut self.coordinator, &self.transactional_id);
        let verb = if committed { "committing" } else { "aborting" };
        busy_retried!({
            let (_, r) = coordinator.send(&request, 3).await?;
            ClientError::check(r.error_code, None, || {
                format!("{verb} transaction {transactional_id}")
            })
        })
    }

    async fn add_partition(&mut self, topic: &str, partition: i32) -> Result<()> {
        let request = AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(TransactionalId(str_bytes(&self.transactional_id)))
            .with_v3_and_below_producer_id(ProducerId(self.producer_id))
            .with_v3_and_below_producer_epoch(self.epoch)
            .with_v3_and_below_topics(vec![
                AddPartitionsToTxnTopic::default()
                    .with_name(topic_name(topic))
                    .with_partitions(vec![partition]),
            ]);
        let (coordinator, transactional_id) = (&mut self.coordinator, &self.transactional_id);
        busy_retried!({
            let (_, r) = coordinator.send(&request, 3).await?;
            let code = r
                .results_by_topic_v3_and_below
                .iter()
                .flat_map(|t| &t.results_by_partition)
                .map(|p| p.partition_error_code)
                .find(|&c| c != 0)
                .unwrap_or(r.error_code);
            ClientError::check(code, None, || {
                format!("adding {topic}-{partition} to transaction {transactional_id}")
            })
        })
    }

    async fn add_group(&mut self, group: &str) -> Result<()> {
        let request = AddOffsetsToTxnRequest::default()
            .with_transactional_id(TransactionalId(str_bytes(&self.transactional_id)))
            .with_producer_id(ProducerId(self.producer_id))
            .with_producer_epoch(self.epoch)
            .with_group_id(GroupId(str_bytes(group)));
        let (coordinator, transactional_id) = (&mut self.coordinator, &self.transactional_id);
        busy_retried!({
            let (_, r) = coordinator.send(&request, 3).await?;
            ClientError::check(r.error_code, None, || {
                format!("adding group {group}'s offsets to transaction {transactional_id}")
            })
        })
    }

    fn open_mut(&mut self) -> Result<&mut Open> {
        self.open.as_mut().ok_or_else(not_open)
    }
}

fn not_open() -> ClientError {
    ClientError::Invalid("no transaction is open: call begin first".into())
}

/// A connection to the transaction coordinator of `transactional_id`, waiting while it loads.
async fn transaction_coordinator(
    client: &mut Client,
    transactional_id: &str,
) -> Result<Connection> {
    let node = busy_retried!({
        crate::groups::coordinator_of_key(client, transactional_id, KEY_TYPE_TRANSACTION).await
    })?;
    client.dedicated(node).await
}

/// Runs `attempt` again while it fails with an error code that means "busy, ask again"
/// (COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE, CONCURRENT_TRANSACTIONS),
/// backing off between tries, at most `BUSY_RETRIES_MAX` times. NOT_COORDINATOR is not
/// retried on the same connection: the caller finds the coordinator again.
/// How a busy coordinator is asked again: `settle` hands back an answer that is not "busy",
/// or sleeps and says to ask again (up to `BUSY_RETRIES_MAX` times).
struct Busy {
    backoff: Duration,
    tries: u32,
}

impl Busy {
    fn new() -> Busy {
        Busy {
            backoff: BUSY_BACKOFF_FIRST,
            tries: 1,
        }
    }

    async fn settle<T>(&mut self, result: Result<T>) -> Option<Result<T>> {
        match result {
            Err(e)
                if self.tries < BUSY_RETRIES_MAX
                    && matches!(
                        e.code(),
                        Some(
                            COORDINATOR_LOAD_IN_PROGRESS
                                | COORDINATOR_NOT_AVAILABLE
                                | CONCURRENT_TRANSACTIONS
                        )
                    ) =>
            {
                self.tries += 1;
                tokio::time::sleep(self.backoff).await;
                self.backoff = (self.backoff * 2).min(BUSY_BACKOFF_MAX);
                None
            }
            done => Some(done),
        }
    }
}
