//! The engine: one task per view, keeping it exactly once (docs/design/0004-views.md,
//! "Exactly once").
//!
//! The task is a Kafka client of the broker. It reads the view's source `read_committed` and
//! folds each record into the view's state; every commit interval it publishes the changed
//! rows to the view's compacted output topic and the source offsets to the view's group
//! (`sluice-view-<name>`) in one Kafka transaction of the view's transactional id (the same
//! name), and only after that transaction committed it writes the `redb` checkpoint with the
//! offsets the state reflects:
//!
//! ```text
//! fold ──▶ begin ──▶ rows to the output topic ──▶ offsets to the group ──▶ EndTxn(commit) ──▶ checkpoint
//!             RowsSent             OffsetsSent                Committed             Checkpointed
//! ```
//!
//! Any failure drops the task's state and starts again the way a restarted process does
//! (`recover`): InitProducerId fences a zombie and aborts its open transaction; the group's
//! stable committed offsets are the truth; the checkpoint is restored, and where it lags the
//! committed offsets (a crash between EndTxn and the checkpoint) that interval is folded again
//! publishing nothing (its changes are already in the output topic). A checkpoint ahead of the
//! committed offsets (the group's offsets were reset or deleted) is thrown away and the view
//! rebuilt from the source's start. A table (`CREATE TABLE`) publishes nothing: its checkpoint
//! alone is its position.
//!
//! The checkpoint is stamped with the definition it was folded by (`state`, "stamps"). One of
//! another definition is thrown away and this one folded from the source's start; that state,
//! and the one a `CREATE OR REPLACE` built beside the old view (stamped "not reconciled"), is
//! then reconciled with the output topic, which still shows the old definition's rows: the
//! source is folded up to its last stable offsets, and the difference between the state's rows
//! and the topic's (`reconcile`) goes out with those offsets in one transaction, after which
//! the checkpoint is stamped reconciled. A crash before that repeats it; after it, the
//! difference left is what came since.
//!
//! A view without a checkpoint replays its source from the log start: the state keeps more than
//! the output shows (MIN and MAX keep every value, AVG a sum and a count), so it is rebuilt from
//! the source, not from the output topic. Records removed by retention before a rebuild are
//! gone from the rebuilt state; the docs say so.
//!
//! Owns: the commit protocol, recovery, the task's life. Not: what a row is (`runtime`), the
//! checkpoint's layout (`state`), which views exist (`catalog`).

use crate::fold::RowChange;
use crate::output::change_record;
use crate::reconcile::{self, OutputChange};
use crate::runtime::{Applied, SourceKind, SourceRecord, ViewState};
use crate::sql::Plan;
use crate::state::{Checkpoint, CheckpointDelta, Positions, Stamp, StateError};
use crate::stream::OutRecord;
use crate::value::ValueError;
use sluice_client::codes::OFFSET_OUT_OF_RANGE;
use sluice_client::data::{self, FetchOptions, Isolation};
use sluice_client::data::{EARLIEST, LATEST};
use sluice_client::partitioner::partition_for_key;
use sluice_client::txn::TransactionalProducer;
use sluice_client::{Client, ClientError, groups};
use sluice_record::{Record, RecordHeader};
use sluice_types::limits::{
    VIEW_CHANGE_BATCHES_BUFFERED, VIEW_FETCH_PARTITION_BYTES, VIEW_GROUPS_MAX,
    VIEW_OUTPUT_BATCH_RECORDS,
};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How long a connection to the broker may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The view's transaction timeout: a transaction of a crashed engine is aborted by the
/// coordinator after this (a restarted one aborts it at once by fencing).
const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one fetch waits for records at most (so a stop or a due commit is not late).
const FETCH_WAIT_MAX: Duration = Duration::from_millis(500);
/// How often the source's partitions are looked up again (new ones are read from their start).
const PARTITIONS_REFRESH: Duration = Duration::from_secs(10);
/// An idle view commits its offsets again this often, so the group's offsets never expire
/// (`offsets.retention.minutes`, 7 days by default, counts from the last commit).
const IDLE_RECOMMIT: Duration = Duration::from_secs(3600);
/// Back-off between attempts after a failure: doubling from the first to the last.
const RETRY_BACKOFF_FIRST: Duration = Duration::from_millis(100);
const RETRY_BACKOFF_MAX: Duration = Duration::from_secs(5);
/// An attempt that lasted this long was healthy: the next failure backs off from the start.
const HEALTHY_RUN: Duration = Duration::from_secs(30);
/// The wait after the engine's transactional id was fenced: another instance keeps the view
/// (on a cluster, it moved while this node was paused or cut off). Starting again at once
/// would fence that one in turn; this wait gives the placement, which looks every 2 s, the
/// time to stop this engine first.
const FENCED_BACKOFF: Duration = Duration::from_secs(5);

/// What the engine keeps and where it reads and writes.
#[derive(Debug, Clone)]
pub struct ViewSpec {
    pub name: String,
    pub plan: Plan,
    pub source_topic: String,
    pub source_kind: SourceKind,
    /// The compacted topic its changes go to; `None` for a table, which publishes nothing.
    pub output_topic: Option<String>,
    /// The definition's text, which its checkpoint is stamped with (`state`, "stamps").
    pub sql: String,
}

impl ViewSpec {
    /// The view's consumer group and transactional id.
    pub fn group(&self) -> String {
        group_of(&self.name)
    }

    /// The stamp of a checkpoint folded by this definition.
    pub fn stamp(&self, reconciled: bool) -> Stamp {
        Stamp {
            sql: self.sql.clone(),
            reconciled,
        }
    }

    /// Whether a view of this definition publishes rows (not a table, not a stream): what a
    /// `CREATE OR REPLACE` can change in place.
    pub fn publishes_rows(&self) -> bool {
        self.output_topic.is_some() && matches!(self.plan, Plan::View(_))
    }
}

/// The consumer group (and transactional id) of view `name`.
pub fn group_of(name: &str) -> String {
    format!("sluice-view-{name}")
}

/// A step of the commit protocol, after which a fault can be injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitStep {
    /// The changed rows are in the open transaction.
    RowsSent,
    /// The source offsets are in the open transaction.
    OffsetsSent,
    /// The transaction committed; the checkpoint is not yet written.
    Committed,
    /// The checkpoint is written.
    Checkpointed,
}

/// Called after each step of each commit with the view's name; an error there is a crash of
/// the engine at that point (tests inject them; production has none).
pub type FaultHook = Arc<dyn Fn(&str, CommitStep) -> Result<(), String> + Send + Sync>;

#[derive(Clone)]
pub struct EngineOptions {
    /// The broker (`host:port`) the engine reads and writes through.
    pub bootstrap: String,
    /// How its connections are secured (TLS, a SASL login; in `sluice serve`, the other
    /// brokers reached through their inter-broker listener: `Security::elsewhere`).
    pub security: sluice_client::security::Security,
    /// How often changes are published (`commit.interval.ms`; 100 ms by default).
    pub commit_interval: Duration,
    pub faults: Option<FaultHook>,
}

impl EngineOptions {
    /// A client of the brokers, secured as `security` says.
    pub(crate) async fn connect(&self, client_id: &str) -> Result<Client, ClientError> {
        let security = self.security.clone();
        Client::connect_with(&self.bootstrap, client_id, CONNECT_TIMEOUT, security).await
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("a row could not be computed: {0}")]
    Value(#[from] ValueError),
    #[error("injected fault: {0}")]
    Fault(String),
    /// The view outgrew a limit: trying again would meet it again, so the engine stops.
    #[error("{0}")]
    TooLarge(String),
}

impl EngineError {
    /// Whether another instance of the view's transactional id fenced this one.
    fn is_fenced(&self) -> bool {
        use sluice_client::codes::{INVALID_PRODUCER_EPOCH, PRODUCER_FENCED};
        matches!(self, EngineError::Client(e)
            if matches!(e.code(), Some(PRODUCER_FENCED | INVALID_PRODUCER_EPOCH)))
    }
}

/// The engine's phase, as `DESCRIBE` and the HTTP API show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    Starting,
    /// Folding again what the output topic already holds (after a crash, or a rebuild).
    Replaying,
    Running,
    /// The last attempt failed with this; the engine tries again.
    Retrying(String),
    /// Stopped for good with this (a limit reached); DROP it or replace it.
    Failed(String),
}

/// A view's state as queries see it: the rows, the source positions they reflect, the phase
/// and the counters. The engine holds the lock only while it folds a fetched batch or takes a
/// commit, never across I/O.
pub struct Live {
    inner: Mutex<LiveState>,
    positions: watch::Sender<Positions>,
    /// Each commit's changes, for change streams (sent only while someone listens).
    changes: broadcast::Sender<Arc<ChangeBatch>>,
}

/// One commit's changed rows and the source positions they reflect.
#[derive(Debug)]
pub struct ChangeBatch {
    pub changes: Vec<RowChange>,
    pub positions: Positions,
}

pub struct LiveState {
    pub state: ViewState,
    /// Next source offset per partition: everything before it is folded in.
    pub positions: Positions,
    /// The positions whose changes are published and checkpointed (the last commit's).
    pub committed: Positions,
    /// Each source partition's high watermark as the latest fetch saw it (for the lag).
    pub source_ends: Positions,
    pub phase: Phase,
    pub counters: Counters,
}

#[derive(Debug, Clone, Default)]
pub struct Counters {
    pub records_folded: u64,
    pub records_filtered: u64,
    pub records_skipped: u64,
    /// Why the latest skipped record was skipped.
    pub last_skip: Option<String>,
    pub commits: u64,
    pub commit_seconds_total: f64,
    pub failures: u64,
}

impl LiveState {
    /// Records of the source not folded yet, as the latest fetches saw its ends.
    pub fn lag(&self) -> i64 {
        self.source_ends
            .iter()
            .map(|(tp, end)| (end - self.positions.get(tp).copied().unwrap_or(0)).max(0))
            .sum()
    }
}

impl Live {
    pub fn new(spec: &ViewSpec) -> Arc<Live> {
        Arc::new(Live {
            inner: Mutex::new(LiveState {
                state: ViewState::new(spec.plan.clone(), spec.source_kind),
                positions: Positions::new(),
                committed: Positions::new(),
                source_ends: Positions::new(),
                phase: Phase::Starting,
                counters: Counters::default(),
            }),
            positions: watch::channel(Positions::new()).0,
            changes: broadcast::channel(VIEW_CHANGE_BATCHES_BUFFERED).0,
        })
    }

    /// Follows the changes of each commit from now on. A listener more than
    /// `VIEW_CHANGE_BATCHES_BUFFERED` commits behind is told it lagged.
    pub fn subscribe_changes(&self) -> broadcast::Receiver<Arc<ChangeBatch>> {
        self.changes.subscribe()
    }

    pub fn lock(&self) -> MutexGuard<'_, LiveState> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Follows the positions the state reflects (for read-your-writes waits).
    pub fn watch_positions(&self) -> watch::Receiver<Positions> {
        self.positions.subscribe()
    }

    fn set_phase(&self, phase: Phase) {
        self.lock().phase = phase;
    }

    /// Wakes the waiters on positions (`watch_positions`) when the state's moved.
    fn notify_positions(&self) {
        let positions = self.lock().positions.clone();
        self.positions.send_if_modified(|current| {
            let moved = *current != positions;
            if moved {
                *current = positions;
            }
            moved
        });
    }
}

/// Runs view `spec` until `stop`: attempts one after another, backing off after failures.
pub async fn run(
    spec: Arc<ViewSpec>,
    live: Arc<Live>,
    checkpoint: Arc<Checkpoint>,
    options: EngineOptions,
    stop: CancellationToken,
) {
    let mut backoff = RETRY_BACKOFF_FIRST;
    loop {
        let started = Instant::now();
        let attempt = Attempt {
            spec: &spec,
            live: &live,
            checkpoint: &checkpoint,
            options: &options,
            stop: &stop,
        };
        let result = tokio::select! {
            _ = stop.cancelled() => return,
            result = attempt.run() => result,
        };
        let Err(e) = result else { return };
        if let EngineError::TooLarge(reason) = &e {
            tracing::error!(view = %spec.name, error = %reason, "view engine stopped");
            live.set_phase(Phase::Failed(reason.clone()));
            return;
        }
        if started.elapsed() >= HEALTHY_RUN {
            backoff = RETRY_BACKOFF_FIRST;
        }
        let wait = if e.is_fenced() {
            FENCED_BACKOFF.max(backoff)
        } else {
            backoff
        };
        tracing::warn!(view = %spec.name, error = %e, retry_ms = wait.as_millis() as u64, "view engine failed; starting again from its checkpoint");
        {
            let mut state = live.lock();
            state.phase = Phase::Retrying(e.to_string());
            state.counters.failures += 1;
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        backoff = (backoff * 2).min(RETRY_BACKOFF_MAX);
    }
}

/// One attempt: recovery, then reading and committing until a failure or the stop.
struct Attempt<'a> {
    spec: &'a ViewSpec,
    live: &'a Live,
    checkpoint: &'a Arc<Checkpoint>,
    options: &'a EngineOptions,
    stop: &'a CancellationToken,
}

/// The connection and producer of an attempt, and where it stands.
struct Session {
    client: Client,
    producer: Option<TransactionalProducer>,
    positions: Positions,
    /// Partitions to fold up to these offsets without publishing (already in the output topic).
    replay_until: Positions,
    /// The positions of the last commit.
    committed: Positions,
    /// The output topic's partitions (a stream's records are spread over them).
    output_partitions: i32,
}

impl Attempt<'_> {
    async fn run(&self) -> Result<(), EngineError> {
        let mut session = self.recover().await?;
        let mut next_commit = Instant::now() + self.options.commit_interval;
        let mut last_commit = Instant::now();
        let mut next_refresh = Instant::now() + PARTITIONS_REFRESH;
        loop {
            if self.stop.is_cancelled() {
                return Ok(());
            }
            let replaying = !session.replay_until.is_empty();
            // A fetch answers as soon as it has records; the wait only bounds an empty one. No
            // commit is due while replaying, so it is not shortened then.
            let wait = if replaying {
                FETCH_WAIT_MAX
            } else {
                next_commit
                    .saturating_duration_since(Instant::now())
                    .min(FETCH_WAIT_MAX)
            };
            self.fetch_and_fold(&mut session, wait).await?;
            if replaying && session.replay_until.is_empty() {
                self.finish_replay(&mut session).await?;
            }
            if !session.replay_until.is_empty() {
                continue;
            }
            let now = Instant::now();
            let dirty = self.live.lock().state.commit_due();
            if now >= next_commit || dirty {
                next_commit = now + self.options.commit_interval;
                let moved = session.positions != session.committed;
                if moved || now.duration_since(last_commit) >= IDLE_RECOMMIT {
                    self.commit(&mut session).await?;
                    last_commit = Instant::now();
                }
            }
            if now >= next_refresh {
                next_refresh = now + PARTITIONS_REFRESH;
                self.add_new_partitions(&mut session).await?;
            }
        }
    }

    /// Starts from the truth: fences a zombie, reads the group's stable committed offsets,
    /// restores the checkpoint and decides what to fold again silently.
    async fn recover(&self) -> Result<Session, EngineError> {
        self.live.set_phase(Phase::Starting);
        let spec = self.spec;
        let mut client = self.options.connect(&spec.group()).await?;
        let producer = match spec.output_topic {
            Some(_) => Some(
                TransactionalProducer::init(&mut client, &spec.group(), TRANSACTION_TIMEOUT)
                    .await?,
            ),
            None => None,
        };
        let reconcile = self.check_stamp().await? && spec.publishes_rows();
        let (mut state, mut restored) = self.restore().await?;
        let committed = match producer {
            // Reconciling, the group's offsets are another definition's: the state's own
            // positions are what it publishes.
            Some(_) if !reconcile => {
                groups::stable_committed_offsets(&mut client, &spec.group()).await?
            }
            _ => restored.clone(),
        };
        if state.is_stateless() {
            // A pipeline has nothing to fold again: it goes on after what it published.
            restored = committed.clone();
        }
        if is_ahead(&restored, &committed) {
            tracing::warn!(view = %spec.name, "the view's checkpoint is ahead of its group's committed offsets (reset or deleted): rebuilding it from the source");
            let checkpoint = Arc::clone(self.checkpoint);
            let name = spec.name.clone();
            blocking(move || checkpoint.forget(&name)).await?;
            state = ViewState::new(spec.plan.clone(), spec.source_kind);
            restored = Positions::new();
        }
        let output_partitions = match &spec.output_topic {
            Some(output) => i32::try_from(client.partitions(output, false).await?.len())
                .unwrap_or(i32::MAX)
                .max(1),
            None => 1,
        };
        let mut session = Session {
            client,
            producer,
            positions: restored,
            replay_until: Positions::new(),
            committed: Positions::new(),
            output_partitions,
        };
        self.add_new_partitions(&mut session).await?;
        session.replay_until = still_to_fold(&session.positions, &committed);
        session.committed = session.positions.clone();
        {
            let mut live = self.live.lock();
            live.state = state;
            live.positions = session.positions.clone();
            live.committed = session.committed.clone();
            live.phase = if session.replay_until.is_empty() && !reconcile {
                Phase::Running
            } else {
                Phase::Replaying
            };
        }
        self.live.notify_positions();
        if reconcile {
            self.reconcile(&mut session).await?;
        }
        Ok(session)
    }

    /// Reads the checkpoint's stamp: one of another definition is thrown away (this one
    /// folds from the source's start). Whether the output topic is still to be brought to
    /// this definition's rows (`reconcile`).
    async fn check_stamp(&self) -> Result<bool, EngineError> {
        let checkpoint = Arc::clone(self.checkpoint);
        let name = self.spec.name.clone();
        let stamp = blocking(move || checkpoint.stamp(&name)).await?;
        match stamp {
            None => Ok(false),
            Some(stamp) if stamp.sql == self.spec.sql => Ok(!stamp.reconciled),
            Some(_) => {
                tracing::info!(view = %self.spec.name, "the checkpoint is of another definition of the view: folding this one from the source's start");
                let checkpoint = Arc::clone(self.checkpoint);
                let (name, stamp) = (self.spec.name.clone(), self.spec.stamp(false));
                blocking(move || checkpoint.restart(&name, &stamp)).await?;
                Ok(true)
            }
        }
    }

    /// Brings the output topic to this definition's rows (`reconcile`): folds the source up
    /// to its last stable offsets, then publishes what the topic shows otherwise and the
    /// positions, in one transaction, and checkpoints the state as reconciled.
    async fn reconcile(&self, session: &mut Session) -> Result<(), EngineError> {
        let output = self
            .spec
            .output_topic
            .as_deref()
            .expect("a view that publishes rows has an output topic");
        let ends = stable_ends(&mut session.client, &session.positions).await?;
        session.replay_until = still_to_fold(&session.positions, &ends);
        while !session.replay_until.is_empty() {
            self.fetch_and_fold(session, FETCH_WAIT_MAX).await?;
        }
        let published = reconcile::read_published(&mut session.client, output).await?;
        let (changes, delta) = {
            let mut live = self.live.lock();
            let rows = live.state.rows()?;
            let (columns, key_len) = (live.state.columns(), live.state.key_len());
            let changes = reconcile::difference(columns, key_len, &rows, published);
            (changes, live.state.take_commit()?.delta)
        };
        let producer = session
            .producer
            .as_mut()
            .expect("a view with an output topic has a producer");
        producer.begin();
        send_rows(producer, &mut session.client, output, &changes).await?;
        self.fault(CommitStep::RowsSent)?;
        let group = self.spec.group();
        producer
            .send_offsets(&mut session.client, &group, &session.positions, None)
            .await?;
        self.fault(CommitStep::OffsetsSent)?;
        producer.commit().await?;
        self.fault(CommitStep::Committed)?;
        self.write_checkpoint(delta, &session.positions).await?;
        self.fault(CommitStep::Checkpointed)?;
        session.committed = session.positions.clone();
        {
            let mut live = self.live.lock();
            live.committed = session.committed.clone();
            live.phase = Phase::Running;
        }
        tracing::info!(view = %self.spec.name, published = changes.len(), "the output topic shows the view's definition");
        Ok(())
    }

    /// A new state with the view's checkpoint loaded, and the positions it reflects.
    async fn restore(&self) -> Result<(ViewState, Positions), EngineError> {
        let mut state = ViewState::new(self.spec.plan.clone(), self.spec.source_kind);
        let checkpoint = Arc::clone(self.checkpoint);
        let name = self.spec.name.clone();
        let (state, positions) = blocking(move || {
            let positions = state.restore(&checkpoint, &name)?;
            Ok::<_, StateError>((state, positions))
        })
        .await?;
        Ok((state, positions))
    }

    /// Partitions of the source not read yet start at their log start.
    async fn add_new_partitions(&self, session: &mut Session) -> Result<(), EngineError> {
        let topic = &self.spec.source_topic;
        let partitions = session.client.partitions(topic, false).await?;
        for partition in partitions {
            let key = (topic.clone(), partition);
            if !session.positions.contains_key(&key) {
                let start =
                    data::list_offset(&mut session.client, topic, partition, EARLIEST).await?;
                self.live.lock().positions.insert(key.clone(), start);
                session.positions.insert(key, start);
            }
        }
        Ok(())
    }

    /// One fetch of every partition due (while replaying: only those still short of their
    /// replay end), folded into the state.
    async fn fetch_and_fold(
        &self,
        session: &mut Session,
        wait: Duration,
    ) -> Result<(), EngineError> {
        let wanted: Vec<(&str, i32, i64)> = session
            .positions
            .iter()
            .filter(|(tp, _)| {
                session.replay_until.is_empty() || session.replay_until.contains_key(*tp)
            })
            .map(|((topic, partition), offset)| (topic.as_str(), *partition, *offset))
            .collect();
        let options = FetchOptions {
            max_wait: wait,
            partition_max_bytes: VIEW_FETCH_PARTITION_BYTES,
            isolation: Isolation::ReadCommitted,
        };
        let fetched = match data::fetch_many(&mut session.client, &wanted, options).await {
            Ok(fetched) => fetched,
            Err(e) if e.is_retriable() => {
                session.client.forget_leaders();
                tokio::time::sleep(RETRY_BACKOFF_FIRST).await;
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        for partition in fetched {
            let key = (partition.topic, partition.partition);
            let fetched = match partition.result {
                Ok(fetched) => fetched,
                Err(e) if e.code() == Some(OFFSET_OUT_OF_RANGE) => {
                    self.skip_to_log_start(session, &key).await?;
                    continue;
                }
                Err(e) if e.is_retriable() => {
                    session.client.forget_leaders();
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let limit = session.replay_until.get(&key).copied();
            let next = self.fold(&key, partition.offset, &fetched, limit)?;
            session.positions.insert(key.clone(), next);
            if limit.is_some_and(|end| next >= end) {
                session.replay_until.remove(&key);
            }
        }
        self.live.notify_positions();
        let groups = self.live.lock().state.len();
        if groups > VIEW_GROUPS_MAX {
            return Err(EngineError::TooLarge(format!(
                "the view holds {groups} groups, more than {VIEW_GROUPS_MAX}: it stopped; drop it, or group by fewer values"
            )));
        }
        Ok(())
    }

    /// Folds one partition's fetched records from `from` (below `limit`, when replaying);
    /// returns the next offset to read.
    fn fold(
        &self,
        (topic, partition): &(String, i32),
        from: i64,
        fetched: &data::Fetched,
        limit: Option<i64>,
    ) -> Result<i64, EngineError> {
        let end = limit.unwrap_or(i64::MAX);
        let key = (topic.clone(), *partition);
        let mut live = self.live.lock();
        let live = &mut *live;
        live.source_ends.insert(key.clone(), fetched.high_watermark);
        // The latest skip of this batch, described once after it (not for every skip).
        let mut last_skip: Option<(i64, String)> = None;
        let next =
            data::for_each_committed_record(&fetched.records, from, &fetched.aborted, |r| {
                if r.offset >= end {
                    return;
                }
                let record = SourceRecord {
                    key: r.key,
                    value: r.value,
                    timestamp: r.timestamp,
                    partition: *partition,
                    offset: r.offset,
                    headers: &r.headers,
                };
                match live.state.apply(&record) {
                    Ok(Applied::Folded) => live.counters.records_folded += 1,
                    Ok(Applied::Filtered) => live.counters.records_filtered += 1,
                    Ok(Applied::Skipped(reason)) => {
                        live.counters.records_skipped += 1;
                        last_skip = Some((r.offset, reason));
                    }
                    Err(e) => {
                        live.counters.records_skipped += 1;
                        last_skip = Some((r.offset, e.to_string()));
                    }
                }
            })?;
        if limit.is_some() {
            // Replayed records' output is already in the stream's topic.
            live.state.discard_output();
        }
        if let Some((offset, reason)) = last_skip {
            live.counters.last_skip = Some(format!("{topic}-{partition}@{offset}: {reason}"));
        }
        // The position moves with the state, under the same lock: what queries see of one
        // always matches the other.
        let next = next.min(end);
        live.positions.insert(key, next);
        Ok(next)
    }

    /// The source's records at our position were removed (retention, DeleteRecords): the view
    /// goes on from the log start, and says what it missed.
    async fn skip_to_log_start(
        &self,
        session: &mut Session,
        key: &(String, i32),
    ) -> Result<(), EngineError> {
        let start = data::list_offset(&mut session.client, &key.0, key.1, EARLIEST).await?;
        let at = session.positions.get(key).copied().unwrap_or(0);
        if start > at {
            tracing::warn!(view = %self.spec.name, topic = %key.0, partition = key.1, from = at, to = start, "records the view had not read were removed from its source; it goes on from the log start");
            session.positions.insert(key.clone(), start);
            self.live.lock().positions.insert(key.clone(), start);
            if let Some(end) = session.replay_until.get(key)
                && start >= *end
            {
                session.replay_until.remove(key);
            }
            Ok(())
        } else {
            Err(EngineError::Client(ClientError::Invalid(format!(
                "{}-{} answered OFFSET_OUT_OF_RANGE at {at}, which is not below its log start {start}",
                key.0, key.1
            ))))
        }
    }

    /// The silent replay reached the committed offsets: its changes are already published, so
    /// they are dropped and the checkpoint catches up.
    async fn finish_replay(&self, session: &mut Session) -> Result<(), EngineError> {
        let delta = self.live.lock().state.take_commit()?.delta;
        self.write_checkpoint(delta, &session.positions).await?;
        session.committed = session.positions.clone();
        {
            let mut live = self.live.lock();
            live.committed = session.committed.clone();
            live.phase = Phase::Running;
        }
        tracing::info!(view = %self.spec.name, "the view caught up with what it had published");
        Ok(())
    }

    /// One commit of the protocol (the module doc's picture).
    async fn commit(&self, session: &mut Session) -> Result<(), EngineError> {
        let started = Instant::now();
        let (commit, columns) = {
            let mut live = self.live.lock();
            let commit = live.state.take_commit()?;
            (commit, live.state.columns().to_vec())
        };
        let mut unannounced = Some(commit.changes);
        if let (Some(producer), Some(output)) = (&mut session.producer, &self.spec.output_topic) {
            producer.begin();
            let rows = unannounced.as_deref().unwrap_or_default();
            let encoded: Vec<OutputChange> =
                rows.iter().map(|c| change_record(&columns, c)).collect();
            send_rows(producer, &mut session.client, output, &encoded).await?;
            for (partition, records) in by_partition(&commit.records, session.output_partitions) {
                for chunk in records.chunks(VIEW_OUTPUT_BATCH_RECORDS) {
                    let records: Vec<Record<'_>> = chunk
                        .iter()
                        .enumerate()
                        .map(|(i, r)| output_record(i, r))
                        .collect();
                    producer
                        .send(&mut session.client, output, partition, &records)
                        .await?;
                }
            }
            self.fault(CommitStep::RowsSent)?;
            producer
                .send_offsets(
                    &mut session.client,
                    &self.spec.group(),
                    &session.positions,
                    None,
                )
                .await?;
            self.fault(CommitStep::OffsetsSent)?;
            producer.commit().await?;
            // Published: change streams hear of it now, whatever happens to the checkpoint.
            self.announce(unannounced.take(), &session.positions);
            self.fault(CommitStep::Committed)?;
        }
        self.write_checkpoint(commit.delta, &session.positions)
            .await?;
        // A table publishes nothing: its changes count once checkpointed.
        self.announce(unannounced.take(), &session.positions);
        self.fault(CommitStep::Checkpointed)?;
        session.committed = session.positions.clone();
        let mut live = self.live.lock();
        live.committed = session.committed.clone();
        live.counters.commits += 1;
        live.counters.commit_seconds_total += started.elapsed().as_secs_f64();
        Ok(())
    }

    /// Sends a commit's changes to the change streams, if any listen.
    fn announce(&self, changes: Option<Vec<RowChange>>, positions: &Positions) {
        let Some(changes) = changes else { return };
        if self.live.changes.receiver_count() == 0 || changes.is_empty() {
            return;
        }
        let batch = ChangeBatch {
            changes,
            positions: positions.clone(),
        };
        // An error here means every listener went away since the count: nothing to do.
        let _ = self.live.changes.send(Arc::new(batch));
    }

    async fn write_checkpoint(
        &self,
        delta: CheckpointDelta,
        positions: &Positions,
    ) -> Result<(), EngineError> {
        let checkpoint = Arc::clone(self.checkpoint);
        let name = self.spec.name.clone();
        let positions = positions.clone();
        let stamp = self.spec.stamp(true);
        blocking(move || checkpoint.commit(&name, &delta, &positions, &stamp)).await?;
        Ok(())
    }

    fn fault(&self, step: CommitStep) -> Result<(), EngineError> {
        match &self.options.faults {
            Some(hook) => hook(&self.spec.name, step).map_err(EngineError::Fault),
            None => Ok(()),
        }
    }
}

/// Sends rows (keys and values, `None`: a tombstone) to a view's output topic (one
/// partition) in the producer's open transaction.
async fn send_rows(
    producer: &mut TransactionalProducer,
    client: &mut Client,
    output: &str,
    encoded: &[OutputChange],
) -> Result<(), EngineError> {
    let timestamp = sluice_types::now_ms();
    for chunk in encoded.chunks(VIEW_OUTPUT_BATCH_RECORDS) {
        let records: Vec<Record<'_>> = chunk
            .iter()
            .enumerate()
            .map(|(i, (key, value))| Record {
                offset: i as i64,
                timestamp,
                key: Some(key),
                value: value.as_deref(),
                headers: Vec::new(),
            })
            .collect();
        producer.send(client, output, 0, &records).await?;
    }
    Ok(())
}

/// The last stable offset of each partition `positions` names: the end of what a
/// `read_committed` reader can read now.
async fn stable_ends(client: &mut Client, positions: &Positions) -> Result<Positions, ClientError> {
    let mut ends = Positions::new();
    for (topic, partition) in positions.keys() {
        let end =
            data::list_offset_isolated(client, topic, *partition, LATEST, Isolation::ReadCommitted)
                .await?;
        ends.insert((topic.clone(), *partition), end);
    }
    Ok(ends)
}

/// Where `spec`'s source ends now for a `read_committed` reader, every partition: how far a
/// new state folded beside a view (`fold_to`) goes before it takes over.
pub async fn source_ends(
    spec: &ViewSpec,
    options: &EngineOptions,
) -> Result<Positions, EngineError> {
    let mut client = options.connect(&spec.group()).await?;
    let partitions = client.partitions(&spec.source_topic, false).await?;
    let positions: Positions = partitions
        .into_iter()
        .map(|p| ((spec.source_topic.clone(), p), 0))
        .collect();
    Ok(stable_ends(&mut client, &positions).await?)
}

/// A stream's records by the partition of its topic they go to (`partitions` of them), each
/// partition's in the order they were written.
fn by_partition(records: &[OutRecord], partitions: i32) -> BTreeMap<i32, Vec<&OutRecord>> {
    let mut out: BTreeMap<i32, Vec<&OutRecord>> = BTreeMap::new();
    for record in records {
        let partition = match (&record.key, record.by_key) {
            (Some(key), true) => partition_for_key(key, partitions),
            _ => record.source_partition.rem_euclid(partitions),
        };
        out.entry(partition).or_default().push(record);
    }
    out
}

/// A stream's record as the `i`th of a batch.
fn output_record(i: usize, record: &OutRecord) -> Record<'_> {
    Record {
        offset: i as i64,
        timestamp: record.timestamp,
        key: record.key.as_deref(),
        value: record.value.as_deref(),
        headers: record
            .headers
            .iter()
            .map(|(key, value)| RecordHeader {
                key,
                value: value.as_deref(),
            })
            .collect(),
    }
}

/// The partitions of `until` that `positions` have not reached, with where to stop.
fn still_to_fold(positions: &Positions, until: &Positions) -> Positions {
    until
        .iter()
        .filter(|(tp, offset)| positions.get(*tp).is_some_and(|p| p < *offset))
        .map(|(tp, offset)| (tp.clone(), *offset))
        .collect()
}

/// Folds `spec`'s source into `live` silently, from `positions` (a partition they lack: from
/// its log start) up to `until`, publishing nothing: how a rebuild makes a new state beside the
/// running view. Returns where it stopped (`until`, for the partitions it names).
pub async fn fold_to(
    spec: &ViewSpec,
    live: &Live,
    checkpoint: &Arc<Checkpoint>,
    options: &EngineOptions,
    positions: Positions,
    until: &Positions,
) -> Result<Positions, EngineError> {
    let stop = CancellationToken::new();
    let attempt = Attempt {
        spec,
        live,
        checkpoint,
        options,
        stop: &stop,
    };
    let client = options.connect(&spec.group()).await?;
    let mut session = Session {
        client,
        producer: None,
        positions,
        replay_until: Positions::new(),
        committed: Positions::new(),
        output_partitions: 1,
    };
    attempt.add_new_partitions(&mut session).await?;
    session.replay_until = still_to_fold(&session.positions, until);
    while !session.replay_until.is_empty() {
        attempt.fetch_and_fold(&mut session, FETCH_WAIT_MAX).await?;
    }
    Ok(session.positions)
}

/// What a stopped view has published, for good: a view's group's stable committed offsets once
/// its transactional id is fenced (an open transaction of the stopped engine is aborted); a
/// table's last checkpointed positions.
pub async fn published(
    spec: &ViewSpec,
    options: &EngineOptions,
    live: &Live,
) -> Result<Positions, EngineError> {
    if spec.output_topic.is_none() {
        return Ok(live.lock().committed.clone());
    }
    let mut client = options.connect(&spec.group()).await?;
    TransactionalProducer::init(&mut client, &spec.group(), TRANSACTION_TIMEOUT).await?;
    Ok(groups::stable_committed_offsets(&mut client, &spec.group()).await?)
}

/// True when the checkpoint reflects a partition further than the committed offsets (or one
/// they do not hold): it holds changes that were never published.
fn is_ahead(checkpoint: &Positions, committed: &Positions) -> bool {
    checkpoint
        .iter()
        .any(|(tp, offset)| committed.get(tp).is_none_or(|c| offset > c))
}

/// Runs blocking checkpoint work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StateError> + Send + 'static,
) -> Result<T, StateError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| StateError::Store(format!("the checkpoint's worker failed: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(entries: &[(i32, i64)]) -> Positions {
        entries
            .iter()
            .map(|&(p, o)| (("payments".to_string(), p), o))
            .collect()
    }

    #[test]
    fn a_checkpoint_is_ahead_only_past_what_was_committed() {
        assert!(!is_ahead(&at(&[]), &at(&[(0, 5)])));
        assert!(!is_ahead(&at(&[(0, 5), (1, 2)]), &at(&[(0, 5), (1, 3)])));
        assert!(is_ahead(&at(&[(0, 6)]), &at(&[(0, 5)])));
        assert!(is_ahead(&at(&[(0, 0), (1, 1)]), &at(&[(0, 5)])));
    }
}
