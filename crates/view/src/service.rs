//! `Views`: the tables and views one process keeps, and the statements and queries over them.
//!
//! At start it reads the catalog and starts an engine task per definition (tables first, since
//! views read them). A statement is parsed, checked against what exists, made durable in the
//! catalog and then acted on: CREATE makes the view's compacted output topic (named after the
//! view) and starts its engine; DROP stops the engine and removes the definition, the
//! checkpoint, the view's group and its output topic. Queries are answered from the engines'
//! live state, each answer with the source positions it reflects. Statements that change the
//! catalog run one at a time.
//!
//! Answers are JSON text written here (`output::value_json`), so that a DECIMAL reaches the
//! client with its exact digits.
//!
//! On a cluster (`Placement`), each definition runs on one node: the coordinator of its group
//! (`sluice-view-<name>`), as FindCoordinator names it. Every node follows the catalog and
//! asks again every `PLACEMENT_INTERVAL`, starting the engines that became its own and
//! stopping those that moved away (the next owner recovers them from the committed offsets,
//! fencing this one's transactions). `home` tells the HTTP API where a request about a
//! definition kept elsewhere goes; nodes find each other's HTTP API in the catalog.
//!
//! Owns: which views run, statements, answers. Not: the commit protocol (`engine`), the
//! catalog's records (`catalog`), HTTP (the `http` crate calls this through a trait the binary
//! wires).

use crate::catalog::{self, Definition, Kind};
use crate::engine::{self, ChangeBatch, EngineOptions, Live, Phase, ViewSpec};
use crate::fold::RowChange;
use crate::output::{keys_named, row_json, row_key};
use crate::runtime::{SourceKind, ViewState, answer};
use crate::sql::{self, Plan, Query, SqlError, Statement};
use crate::state::{Checkpoint, Positions, StateError};
use crate::table;
use crate::value::{Value, ValueError};
use sluice_client::admin::{self, NewTopic};
use sluice_client::codes::{GROUP_ID_NOT_FOUND, TOPIC_ALREADY_EXISTS, UNKNOWN_TOPIC_OR_PARTITION};
use sluice_client::{Client, ClientError, groups};
use sluice_types::limits::{
    VIEW_ANSWER_BYTES_MAX, VIEW_QUERY_ROWS_MAX, VIEW_SNAPSHOT_ROWS_MAX, VIEWS_MAX,
};
use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;
use std::path::Path;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How often a node of a cluster reads the catalog again and asks where each definition runs.
const PLACEMENT_INTERVAL: Duration = Duration::from_secs(2);
/// ... and how soon after a round that failed (a cluster still starting, say).
const PLACEMENT_RETRY: Duration = Duration::from_millis(250);
/// How long start waits for the broker to answer the catalog's reads.
const CATALOG_READ_WAIT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum ViewsError {
    /// The statement is not SQL Sluice takes, or names what it cannot use (HTTP 400).
    #[error(transparent)]
    Sql(#[from] SqlError),
    /// No table or view of that name (HTTP 404).
    #[error("{0}")]
    NotFound(String),
    /// A name already taken, or a table views still read (HTTP 409).
    #[error("{0}")]
    Conflict(String),
    /// The answer would be larger than a query may return (HTTP 400).
    #[error("{0}")]
    TooLarge(String),
    /// A row could not be computed (HTTP 400).
    #[error(transparent)]
    Value(#[from] ValueError),
    /// The broker refused or could not be reached (HTTP 502).
    #[error(transparent)]
    Broker(#[from] ClientError),
    /// On a cluster, the catalog has not been read since this node started: nothing is
    /// known of any definition yet (HTTP 503).
    #[error("{0}")]
    Unavailable(String),
    /// The local checkpoint failed (HTTP 500).
    #[error(transparent)]
    State(#[from] StateError),
}

impl From<engine::EngineError> for ViewsError {
    fn from(e: engine::EngineError) -> ViewsError {
        use engine::EngineError as E;
        match e {
            E::Client(e) => ViewsError::Broker(e),
            E::State(e) => ViewsError::State(e),
            E::Value(e) => ViewsError::Value(e),
            E::TooLarge(message) => ViewsError::TooLarge(message),
            E::Fault(message) => ViewsError::State(StateError::Store(message)),
        }
    }
}

/// One table or view at work.
pub struct Running {
    pub definition: Definition,
    pub spec: Arc<ViewSpec>,
    pub live: Arc<Live>,
    stop: CancellationToken,
    task: std::sync::Mutex<Option<JoinHandle<()>>>,
    /// The state a rebuild or `CREATE OR REPLACE` is folding beside this one, while it does.
    rebuild: std::sync::Mutex<Option<Arc<Live>>>,
    /// Queries answered from the rows, and the time they took (without the lock on `live`:
    /// they are counted after it is released).
    pub queries: std::sync::atomic::AtomicU64,
    pub query_micros: std::sync::atomic::AtomicU64,
}

/// This node's place in a cluster: its id (as FindCoordinator names nodes), the URL of its
/// HTTP API (where the others send requests about the definitions it keeps), and the
/// cluster's brokers (how many replicas the views' topics get: at most three).
#[derive(Debug, Clone)]
pub struct Placement {
    pub node_id: i32,
    pub http_url: String,
    pub brokers: usize,
}

pub struct Views {
    options: EngineOptions,
    checkpoint: Arc<Checkpoint>,
    /// The engines of this process.
    running: RwLock<BTreeMap<String, Arc<Running>>>,
    /// Every definition of the catalog, kept here or elsewhere.
    defined: RwLock<BTreeMap<String, Definition>>,
    /// `None`: one process keeps every definition.
    placement: Option<Placement>,
    /// The node keeping each definition, as last asked.
    homes: RwLock<BTreeMap<String, i32>>,
    /// Each node's HTTP API, from the catalog.
    nodes: RwLock<BTreeMap<i32, String>>,
    /// When a request last read the catalog for a node's HTTP API.
    nodes_read_at: std::sync::Mutex<Option<std::time::Instant>>,
    /// Stops the placement loop.
    stopping: CancellationToken,
    /// Statements that change the catalog, and placement, one at a time.
    ddl: tokio::sync::Mutex<()>,
    /// Whether the catalog has been read and placed once: before that, no name can be told
    /// to exist or not.
    placed: std::sync::atomic::AtomicBool,
}

impl Views {
    /// Opens the checkpoint at `state_path`, reads the catalog through `options.bootstrap` and
    /// starts the engine of every definition this process keeps: all of them, or on a cluster
    /// (`placement`) those whose group this node coordinates. A definition that no longer
    /// parses is logged and left out (it stays in the catalog).
    pub async fn start(
        options: EngineOptions,
        state_path: &Path,
        placement: Option<Placement>,
    ) -> Result<Arc<Views>, ViewsError> {
        let path = state_path.to_path_buf();
        let checkpoint = tokio::task::spawn_blocking(move || Checkpoint::open(&path))
            .await
            .map_err(|e| StateError::Store(e.to_string()))??;
        let views = Arc::new(Views {
            options,
            checkpoint: Arc::new(checkpoint),
            running: RwLock::new(BTreeMap::new()),
            defined: RwLock::new(BTreeMap::new()),
            placement,
            homes: RwLock::new(BTreeMap::new()),
            nodes: RwLock::new(BTreeMap::new()),
            nodes_read_at: std::sync::Mutex::new(None),
            stopping: CancellationToken::new(),
            ddl: tokio::sync::Mutex::new(()),
            placed: std::sync::atomic::AtomicBool::new(false),
        });
        if views.placement.is_some() {
            // On a cluster the catalog's partition or a view's coordinator may be on nodes
            // still starting: placement goes on in the background, and this node serves
            // (its views' routes answering 503) meanwhile.
            tokio::spawn(Arc::clone(&views).follow_placement());
            return Ok(views);
        }
        let catalog = views.read_catalog().await?;
        {
            let _ddl = views.ddl.lock().await;
            views.place(catalog).await?;
        }
        views
            .placed
            .store(true, std::sync::atomic::Ordering::Release);
        Ok(views)
    }

    /// `Unavailable` until the catalog has been read and placed once.
    fn ready(&self) -> Result<(), ViewsError> {
        if self.placed.load(std::sync::atomic::Ordering::Acquire) {
            Ok(())
        } else {
            Err(ViewsError::Unavailable(
                "this node has not read the views' catalog yet (the cluster is starting): ask again".into(),
            ))
        }
    }

    /// On a cluster: says where this node's HTTP API is (in the catalog), then reads the
    /// catalog and places its definitions every `PLACEMENT_INTERVAL` until `stop`. A failed
    /// round is logged and tried again.
    async fn follow_placement(self: Arc<Views>) {
        let mut wait = Duration::ZERO;
        loop {
            tokio::select! {
                () = self.stopping.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
            let round = async {
                // Under the lock from the read on: a CREATE or DROP in between would otherwise
                // be undone by a catalog read before it.
                let _ddl = self.ddl.lock().await;
                let mut client = self.client().await?;
                let mut catalog = catalog::read(&mut client).await?;
                if let Some(placement) = &self.placement
                    && catalog.nodes.get(&placement.node_id) != Some(&placement.http_url)
                {
                    catalog::ensure_topic(&mut client, self.replicas()).await?;
                    catalog::write_node(&mut client, placement.node_id, &placement.http_url)
                        .await?;
                    catalog
                        .nodes
                        .insert(placement.node_id, placement.http_url.clone());
                }
                self.place(catalog).await?;
                self.placed
                    .store(true, std::sync::atomic::Ordering::Release);
                Ok::<(), ViewsError>(())
            };
            // A round can wait on the broker for seconds (a topic being created); `stop` must
            // not wait for it.
            let round = tokio::select! {
                () = self.stopping.cancelled() => return,
                round = round => round,
            };
            wait = match round {
                Ok(()) => PLACEMENT_INTERVAL,
                Err(e) => {
                    tracing::warn!(error = %e, "the views' placement could not be checked; trying again");
                    PLACEMENT_RETRY
                }
            };
        }
    }

    /// Takes in `catalog` and starts the engines of the definitions this process keeps now,
    /// stopping those it no longer keeps (moved to another node, or dropped). The caller holds
    /// the `ddl` lock.
    async fn place(&self, catalog: catalog::Catalog) -> Result<(), ViewsError> {
        let mut definitions = catalog.definitions;
        definitions.sort_by_key(|d| d.kind != Kind::Table);
        *write(&self.nodes) = catalog.nodes;
        *write(&self.defined) = definitions
            .iter()
            .map(|d| (d.name.clone(), d.clone()))
            .collect();
        let mut homes = BTreeMap::new();
        let mut client = match self.placement {
            Some(_) => Some(self.client().await?),
            None => None,
        };
        for definition in &definitions {
            let home = self.home_node(client.as_mut(), &definition.name).await?;
            homes.insert(definition.name.clone(), home);
        }
        *write(&self.homes) = homes.clone();
        let me = self.me();
        let leaving: Vec<Arc<Running>> = self
            .read_running()
            .values()
            .filter(|r| homes.get(&r.definition.name) != Some(&me))
            .cloned()
            .collect();
        for running in leaving {
            let name = running.definition.name.clone();
            let dropped = !homes.contains_key(&name);
            tracing::info!(view = %name, dropped, "the view is no longer kept here");
            write(&self.running).remove(&name);
            running.halt().await;
            if dropped {
                let checkpoint = Arc::clone(&self.checkpoint);
                tokio::task::spawn_blocking(move || checkpoint.forget(&name))
                    .await
                    .map_err(|e| StateError::Store(e.to_string()))??;
            }
        }
        for definition in definitions {
            let here = homes.get(&definition.name) == Some(&me);
            if !here || self.read_running().contains_key(&definition.name) {
                continue;
            }
            let name = definition.name.clone();
            match Self::plan_of(&definition).and_then(|plan| self.spec_of(&definition, plan)) {
                Ok(spec) => self.launch(definition, spec),
                Err(e) => {
                    tracing::error!(view = %name, error = %e, "a catalog definition no longer parses; it is not kept")
                }
            }
        }
        Ok(())
    }

    /// Replicas of the views' topics: the cluster's size when known.
    fn replicas(&self) -> Option<usize> {
        self.placement.as_ref().map(|p| p.brokers)
    }

    /// This node's id; -1 when this process keeps everything.
    fn me(&self) -> i32 {
        self.placement.as_ref().map_or(-1, |p| p.node_id)
    }

    /// The node that keeps (or would keep) `name`: the coordinator of its group on a cluster,
    /// asked through `client` (a new connection when `None`); `me()` otherwise.
    async fn home_node(&self, client: Option<&mut Client>, name: &str) -> Result<i32, ViewsError> {
        if self.placement.is_none() {
            return Ok(self.me());
        }
        let group = engine::group_of(name);
        match client {
            Some(client) => Ok(groups::coordinator(client, &group).await?),
            None => Ok(groups::coordinator(&mut self.client().await?, &group).await?),
        }
    }

    /// The HTTP API of the node keeping `name`, when that is another node (requests about it go
    /// there; `node N` when its API is not known yet); `None` when it is kept here, or this
    /// process keeps everything.
    pub async fn home(&self, name: &str) -> Option<String> {
        let placement = self.placement.as_ref()?;
        if self.read_running().contains_key(name) {
            return None;
        }
        let cached = read(&self.homes).get(name).copied();
        let node = match cached {
            Some(node) => node,
            // Not placed yet (created elsewhere a moment ago, or never): ask.
            None => self.home_node(None, name).await.ok()?,
        };
        if node == placement.node_id {
            return None;
        }
        let known = self.node_url(node);
        if known.is_some() {
            return known;
        }
        // A node that started a moment ago: its record may be newer than the last read. Read
        // again at most every `PLACEMENT_RETRY`, so requests cannot make the catalog hot.
        let due = {
            let mut last = self.nodes_read_at.lock().unwrap_or_else(|p| p.into_inner());
            let due = last.is_none_or(|at| at.elapsed() >= PLACEMENT_RETRY);
            if due {
                *last = Some(std::time::Instant::now());
            }
            due
        };
        if due
            && let Ok(mut client) = self.client().await
            && let Ok(catalog) = catalog::read(&mut client).await
        {
            *write(&self.nodes) = catalog.nodes;
        }
        // Unknown still: the HTTP API says so rather than answer for a view not kept here.
        Some(
            self.node_url(node)
                .unwrap_or_else(|| format!("node {node}")),
        )
    }

    /// Node `node`'s HTTP API, as the catalog said when last read.
    fn node_url(&self, node: i32) -> Option<String> {
        read(&self.nodes)
            .get(&node)
            .filter(|url| !url.is_empty())
            .cloned()
    }

    /// The HTTP API of the node that should run `sql`, when that is another: the one keeping
    /// the table or view it creates, drops, describes or queries.
    pub async fn home_of_statement(&self, sql: &str) -> Option<String> {
        let name = match sql::parse(sql).ok()? {
            Statement::Select(query) => query.from,
            Statement::Describe(name) | Statement::Drop { name, .. } => name,
            Statement::CreateTable { name, .. }
            | Statement::CreateView { name, .. }
            | Statement::CreateStream { name, .. } => name,
            Statement::ShowTables | Statement::ShowViews | Statement::ShowStreams => {
                return None;
            }
        };
        self.home(&name).await
    }

    /// The bytes of `name`'s groups and rows in the checkpoint.
    pub fn state_bytes(&self, name: &str) -> Result<u64, StateError> {
        self.checkpoint.bytes(name)
    }

    /// Every table and view at work.
    pub fn all(&self) -> Vec<Arc<Running>> {
        self.read_running().values().cloned().collect()
    }

    /// Stops every engine (at the end of `sluice serve`).
    pub async fn stop(&self) {
        self.stopping.cancel();
        // Taken once the placement round in progress, if any, has given up: it would
        // otherwise start engines after the ones below are halted.
        let _ddl = self.ddl.lock().await;
        for running in self.all() {
            running.halt().await;
        }
    }

    /// Runs one SQL statement; answers JSON text.
    pub async fn execute(&self, text: &str) -> Result<String, ViewsError> {
        self.ready()?;
        match sql::parse(text)? {
            Statement::Select(query) => self.select(&query),
            Statement::ShowTables => Ok(self.list(Some(Kind::Table))),
            Statement::ShowViews => Ok(self.list(Some(Kind::View))),
            Statement::ShowStreams => Ok(self.list(Some(Kind::Stream))),
            Statement::Describe(name) => self.describe(&name),
            Statement::Drop { name, if_exists } => self.drop(&name, if_exists).await,
            Statement::CreateTable { name, topic } => {
                let plan = Plan::View(table::plan(&topic));
                self.create(Kind::Table, &name, text, false, plan).await
            }
            Statement::CreateView {
                name,
                or_replace,
                plan,
            } => {
                self.create(Kind::View, &name, text, or_replace, Plan::View(plan))
                    .await
            }
            Statement::CreateStream { name, plan } => {
                self.create(Kind::Stream, &name, text, false, Plan::Stream(plan))
                    .await
            }
        }
    }

    /// Every table and view (of `kind`, when given), as JSON text.
    pub fn list(&self, kind: Option<Kind>) -> String {
        let running = self.read_running().clone();
        let homes = read(&self.homes).clone();
        let items: Vec<serde_json::Value> = read(&self.defined)
            .values()
            .filter(|d| kind.is_none_or(|k| d.kind == k))
            .map(|d| match running.get(&d.name) {
                Some(r) => summary(r),
                None => elsewhere_summary(d, homes.get(&d.name).copied()),
            })
            .collect();
        let field = match kind {
            Some(Kind::Table) => "tables",
            Some(Kind::Stream) => "streams",
            _ => "views",
        };
        serde_json::json!({ field: items }).to_string()
    }

    /// A table's or view's definition, state and counters, as JSON text.
    pub fn describe(&self, name: &str) -> Result<String, ViewsError> {
        let running = self.get(name)?;
        let mut out = summary(&running);
        // Read before the state's lock: the checkpoint is a file.
        let state_bytes = self.checkpoint.bytes(name).ok();
        let rebuild_lag = running.rebuild_lag();
        let live = running.live.lock();
        let (columns, _) = shown(running.definition.kind, live.state.columns(), Vec::new());
        let counters = &live.counters;
        let extra = serde_json::json!({
            "sql": running.definition.sql,
            "columns": columns,
            "created_ms": running.definition.created_ms,
            "group": running.spec.output_topic.as_ref().map(|_| running.spec.group()),
            "rows": live.state.len(),
            "records_folded": counters.records_folded,
            "records_filtered": counters.records_filtered,
            "records_skipped": counters.records_skipped,
            "last_skip": counters.last_skip,
            "commits": counters.commits,
            "failures": counters.failures,
            "position": positions_value(&live.positions),
            "committed_position": positions_value(&live.committed),
            "rebuild_lag_records": rebuild_lag,
            "state_bytes": state_bytes,
        });
        if let (Some(out), serde_json::Value::Object(extra)) = (out.as_object_mut(), extra) {
            out.extend(extra);
        }
        Ok(out.to_string())
    }

    /// The table, view or stream `name`, kept here.
    pub fn get(&self, name: &str) -> Result<Arc<Running>, ViewsError> {
        self.ready()?;
        if let Some(running) = self.read_running().get(name) {
            return Ok(Arc::clone(running));
        }
        let home = read(&self.homes).get(name).copied();
        Err(match home {
            Some(node) if self.is_defined(name) => ViewsError::NotFound(format!(
                "{name} is kept by node {node}, not here (it is moving: ask again)"
            )),
            _ => ViewsError::NotFound(format!("no table or view named {name}")),
        })
    }

    fn is_defined(&self, name: &str) -> bool {
        read(&self.defined).contains_key(name)
    }

    /// The table or view `name`, whose rows are queried (a stream has none: its records are
    /// in its topic).
    fn with_rows(&self, name: &str) -> Result<Arc<Running>, ViewsError> {
        let running = self.get(name)?;
        if running.definition.kind == Kind::Stream {
            return Err(ViewsError::Sql(SqlError(format!(
                "{name} is a stream: it keeps no rows; its records are in topic {name} (read it with any Kafka client, or GET /v1/topics/{name}/...)"
            ))));
        }
        Ok(running)
    }

    /// The row of `name` whose key text (`output::row_key`) is `key`, as JSON text:
    /// `{"row": {...} | null, "position": {...}}`.
    pub fn row_by_key(&self, name: &str, key: &str) -> Result<String, ViewsError> {
        let running = self.with_rows(name)?;
        running.timed(|| Self::row_of(&running, key))
    }

    fn row_of(running: &Running, key: &str) -> Result<String, ViewsError> {
        let live = running.live.lock();
        let row = match find_key(&live.state, key)? {
            None => "null".to_string(),
            Some(key) => {
                let row = live.state.row(&key)?.into_iter().collect();
                let (columns, rows) = shown(running.definition.kind, live.state.columns(), row);
                rows.first()
                    .map_or("null".to_string(), |row| row_json(&columns, row))
            }
        };
        Ok(format!(
            "{{\"row\":{row},\"position\":{}}}",
            positions_value(&live.positions)
        ))
    }

    /// Rows of `name` in key order: those whose key text starts with `prefix`, after the row
    /// whose key text is `after`, at most `limit` (and at most `VIEW_QUERY_ROWS_MAX`). Rows
    /// are computed only as far as the page reaches.
    pub fn rows(
        &self,
        name: &str,
        prefix: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<String, ViewsError> {
        let running = self.with_rows(name)?;
        running.timed(|| Self::page_of(&running, prefix, after, limit))
    }

    fn page_of(
        running: &Running,
        prefix: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<String, ViewsError> {
        let live = running.live.lock();
        let limit = limit.min(VIEW_QUERY_ROWS_MAX);
        let key_len = live.state.key_len();
        let after = match after {
            None => None,
            Some(text) => Some(after_key(&live.state, text)?),
        };
        let from = after.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
        let mut page = Vec::new();
        let mut more = false;
        for row in live.state.rows_from(from) {
            let row = row?;
            if prefix.is_some_and(|p| !row_key(&row[..key_len]).starts_with(p)) {
                continue;
            }
            if page.len() == limit {
                more = true;
                break;
            }
            page.push(row);
        }
        let (columns, page) = shown(running.definition.kind, live.state.columns(), page);
        let (page, cut) = within_budget(page.iter().map(|row| row_json(&columns, row)));
        more |= cut;
        Ok(format!(
            "{{\"rows\":[{}],\"more\":{more},\"position\":{}}}",
            page.join(","),
            positions_value(&live.positions)
        ))
    }

    /// A change stream of `name`: with `snapshot`, every row first (at most
    /// `VIEW_SNAPSHOT_ROWS_MAX`), then a `position` event, then each commit's changed rows
    /// and its position.
    pub fn changes(&self, name: &str, snapshot: bool) -> Result<ChangeFeed, ViewsError> {
        let running = self.with_rows(name)?;
        // Listen first: a commit between this and the snapshot is in the snapshot, and is
        // then left out as `seen`.
        let receiver = running.live.subscribe_changes();
        let live = running.live.lock();
        let kind = running.definition.kind;
        let columns = live.state.columns().to_vec();
        let key_len = live.state.key_len();
        let mut pending = VecDeque::new();
        if snapshot {
            if live.state.len() > VIEW_SNAPSHOT_ROWS_MAX {
                return Err(ViewsError::TooLarge(format!(
                    "{name} holds {} rows, more than a snapshot sends ({VIEW_SNAPSHOT_ROWS_MAX}): page with GET /v1/views/{name}/rows, then follow without snapshot",
                    live.state.len()
                )));
            }
            for row in live.state.rows()? {
                let key = row_key(&row[..key_len]);
                pending.push_back(row_event(kind, &columns, &key, Some(row)));
            }
        }
        let seen = live.positions.clone();
        pending.push_back(position_event(&seen));
        drop(live);
        Ok(ChangeFeed {
            receiver,
            kind,
            columns,
            seen,
            pending,
            done: false,
        })
    }

    fn select(&self, query: &Query) -> Result<String, ViewsError> {
        let running = self.with_rows(&query.from)?;
        running.timed(|| Self::answer_of(&running, query))
    }

    fn answer_of(running: &Running, query: &Query) -> Result<String, ViewsError> {
        let live = running.live.lock();
        let (columns, rows) = shown(
            running.definition.kind,
            live.state.columns(),
            live.state.rows()?,
        );
        let positions = positions_value(&live.positions);
        drop(live);
        let (names, rows) = answer(query, &columns, rows)?;
        if rows.len() > VIEW_QUERY_ROWS_MAX {
            return Err(ViewsError::TooLarge(format!(
                "the answer has {} rows; a query returns at most {VIEW_QUERY_ROWS_MAX}: add LIMIT or a narrower WHERE (or page with GET /v1/views/{}/rows)",
                rows.len(),
                query.from
            )));
        }
        let (rows, cut) = within_budget(rows.iter().map(|r| row_json(&names, r)));
        if cut {
            return Err(ViewsError::TooLarge(format!(
                "the answer is over {VIEW_ANSWER_BYTES_MAX} bytes: add LIMIT, select fewer columns or page with GET /v1/views/{}/rows",
                query.from
            )));
        }
        Ok(format!(
            "{{\"columns\":{},\"rows\":[{}],\"position\":{positions}}}",
            serde_json::Value::from(names),
            rows.join(",")
        ))
    }

    async fn create(
        &self,
        kind: Kind,
        name: &str,
        text: &str,
        or_replace: bool,
        plan: Plan,
    ) -> Result<String, ViewsError> {
        if name.starts_with("__") {
            // A view's output topic takes its name, and `__` names Sluice's and Kafka's own
            // topics (`__sluice_views` holds the catalog).
            return Err(ViewsError::Sql(SqlError(format!(
                "{name}: names starting with __ are kept for internal topics"
            ))));
        }
        let _ddl = self.ddl.lock().await;
        let (exists, count) = {
            let defined = read(&self.defined);
            (defined.contains_key(name), defined.len())
        };
        if !exists && count >= VIEWS_MAX {
            return Err(ViewsError::TooLarge(format!(
                "this server keeps at most {VIEWS_MAX} tables and views: drop one first"
            )));
        }
        let definition = Definition {
            name: name.to_string(),
            kind,
            sql: text.trim().to_string(),
            created_ms: sluice_types::now_ms(),
        };
        if exists {
            if !or_replace {
                return Err(ViewsError::Conflict(format!(
                    "{name} exists (DROP it first, or CREATE OR REPLACE a view)"
                )));
            }
            let running = self.read_running().get(name).cloned();
            match running {
                Some(old) => return self.replace(old, definition, plan).await,
                // Defined, but not at work here (it no longer parses): nothing to keep
                // answering meanwhile.
                None => self.remove(name).await?,
            }
        }
        let spec = self.spec_of(&definition, plan)?;
        let mut client = self.client().await?;
        let source_partitions = Self::source_partitions(&mut client, &spec).await?;
        if let Some(output) = &spec.output_topic {
            let topic = match kind {
                // A stream's topic is a log like its source, spread the same way.
                Kind::Stream => NewTopic {
                    name: output.clone(),
                    partitions: Some(source_partitions),
                    replication_factor: None,
                    configs: Vec::new(),
                },
                _ => NewTopic {
                    name: output.clone(),
                    partitions: Some(1),
                    replication_factor: None,
                    configs: vec![("cleanup.policy".into(), "compact".into())],
                },
            };
            let topic = catalog::replicated(&mut client, topic, self.replicas()).await?;
            admin::create_topic(&mut client, &topic).await.map_err(|e| {
                if e.code() == Some(TOPIC_ALREADY_EXISTS) {
                    ViewsError::Conflict(format!(
                        "a topic named {output} exists: a view's changes go to a topic of its name, so choose another name"
                    ))
                } else {
                    e.into()
                }
            })?;
        }
        let written = async {
            catalog::ensure_topic(&mut client, self.replicas()).await?;
            catalog::write(&mut client, &definition).await
        };
        if let Err(e) = written.await {
            // Not defined: the output topic made for it would block the next CREATE.
            if let Some(output) = &spec.output_topic {
                let _ = admin::delete_topic(&mut client, output).await;
            }
            return Err(e.into());
        }
        write(&self.defined).insert(name.to_string(), definition.clone());
        write(&self.homes).insert(name.to_string(), self.me());
        self.launch(definition, spec);
        Ok(serde_json::json!({"created": name, "kind": kind.as_str()}).to_string())
    }

    /// `CREATE OR REPLACE` of view `old`: the new definition is folded beside it, from the
    /// source's start up to where the source ends now, while `old` keeps answering; then the
    /// new definition becomes the catalog's, `old` stops, the new state becomes the checkpoint
    /// (stamped not reconciled) and the new engine goes on from it, first publishing the
    /// difference between its rows and those the output topic shows (`engine`, "reconcile").
    /// A crash after the catalog write leaves a checkpoint of the old definition, which the
    /// engine replaces by folding the new one from the start. The caller holds the `ddl` lock.
    async fn replace(
        &self,
        old: Arc<Running>,
        definition: Definition,
        plan: Plan,
    ) -> Result<String, ViewsError> {
        let name = definition.name.clone();
        if old.definition.kind != Kind::View || definition.kind != Kind::View {
            return Err(ViewsError::Conflict(format!(
                "{name} is a {}: CREATE OR REPLACE replaces a materialized view (DROP it first)",
                old.definition.kind.as_str()
            )));
        }
        let spec = Arc::new(self.spec_of(&definition, plan)?);
        Self::source_partitions(&mut self.client().await?, &spec).await?;
        let shadow = Live::new(&spec);
        let shown = old.rebuilding(&shadow);
        let (checkpoint, options) = (&self.checkpoint, &self.options);
        let ends = engine::source_ends(&spec, options).await?;
        let positions =
            engine::fold_to(&spec, &shadow, checkpoint, options, Positions::new(), &ends).await?;
        catalog::write(&mut self.client().await?, &definition).await?;
        write(&self.defined).insert(name.clone(), definition.clone());
        drop(shown);
        // `old` answers until the new engine takes its place in `running`.
        old.halt().await;
        let written = async {
            let delta = shadow.lock().state.take_commit()?.delta;
            let (checkpoint, owned, stamp) =
                (Arc::clone(checkpoint), name.clone(), spec.stamp(false));
            tokio::task::spawn_blocking(move || {
                checkpoint.replace(&owned, &delta, &positions, &stamp)
            })
            .await
            .map_err(|e| StateError::Store(e.to_string()))??;
            Ok::<_, ViewsError>(())
        }
        .await;
        // Whatever happened, the new definition goes on: from the new state, or (the
        // checkpoint not written) from the source's start.
        self.launch_on(definition, spec, shadow);
        written?;
        Ok(
            serde_json::json!({"created": name, "kind": Kind::View.as_str(), "replaced": true})
                .to_string(),
        )
    }

    /// How many partitions `spec`'s source has; a source that does not exist is `NotFound`.
    async fn source_partitions(client: &mut Client, spec: &ViewSpec) -> Result<i32, ViewsError> {
        let partitions = client
            .partitions(&spec.source_topic, false)
            .await
            .map_err(|e| {
                if e.code() == Some(UNKNOWN_TOPIC_OR_PARTITION) {
                    ViewsError::NotFound(format!(
                        "{} reads {}, which is no table, view or topic",
                        spec.name, spec.source_topic
                    ))
                } else {
                    e.into()
                }
            })?
            .len();
        Ok(i32::try_from(partitions).unwrap_or(i32::MAX))
    }

    /// `DROP` of a table or view by name (`DELETE /v1/views/{v}`).
    pub async fn drop_by_name(&self, name: &str) -> Result<String, ViewsError> {
        self.drop(name, false).await
    }

    async fn drop(&self, name: &str, if_exists: bool) -> Result<String, ViewsError> {
        self.ready()?;
        let _ddl = self.ddl.lock().await;
        if !self.is_defined(name) {
            return if if_exists {
                Ok(serde_json::json!({"dropped": null}).to_string())
            } else {
                Err(ViewsError::NotFound(format!(
                    "no table or view named {name}"
                )))
            };
        }
        let readers: Vec<String> = read(&self.defined)
            .values()
            .filter(|d| d.name != name && Self::plan_of(d).is_ok_and(|plan| plan.source() == name))
            .map(|d| d.name.clone())
            .collect();
        if !readers.is_empty() {
            return Err(ViewsError::Conflict(format!(
                "{name} is read by {}: drop them first",
                readers.join(", ")
            )));
        }
        self.remove(name).await?;
        Ok(serde_json::json!({"dropped": name}).to_string())
    }

    /// Removes the definition of `name` (when that fails, nothing changed), then stops its
    /// engine and removes the checkpoint, the group and the output topic (a crash midway does
    /// not bring the view back).
    async fn remove(&self, name: &str) -> Result<(), ViewsError> {
        let mut client = self.client().await?;
        catalog::remove(&mut client, name).await?;
        write(&self.defined).remove(name);
        write(&self.homes).remove(name);
        let Some(running) = write(&self.running).remove(name) else {
            return Ok(());
        };
        running.halt().await;
        let checkpoint = Arc::clone(&self.checkpoint);
        let owned = name.to_string();
        tokio::task::spawn_blocking(move || checkpoint.forget(&owned))
            .await
            .map_err(|e| StateError::Store(e.to_string()))??;
        if let Some(output) = &running.spec.output_topic {
            ignore_gone(groups::delete_group(&mut client, &running.spec.group()).await)?;
            ignore_gone(admin::delete_topic(&mut client, output).await)?;
        }
        Ok(())
    }

    /// `sluice view rebuild`: a new state folded from the source's start beside the running
    /// view, which keeps answering; once it has caught up with what the view published, the
    /// view stops, the new state folds the rest, becomes the checkpoint, and the view goes on
    /// from it. Nothing is published for the replay (it is what the output topic holds).
    pub async fn rebuild(&self, name: &str) -> Result<String, ViewsError> {
        let _ddl = self.ddl.lock().await;
        let running = self.get(name)?;
        let spec = Arc::clone(&running.spec);
        let shadow = Live::new(&spec);
        let _shown = running.rebuilding(&shadow);
        let (checkpoint, options) = (&self.checkpoint, &self.options);
        // Beside the running view, up to what it had published when this began.
        let published = running.live.lock().committed.clone();
        let positions = engine::fold_to(
            &spec,
            &shadow,
            checkpoint,
            options,
            Positions::new(),
            &published,
        )
        .await?;
        running.halt().await;
        let finished = async {
            let published = engine::published(&spec, options, &running.live).await?;
            let positions =
                engine::fold_to(&spec, &shadow, checkpoint, options, positions, &published).await?;
            let delta = shadow.lock().state.take_commit()?.delta;
            let (checkpoint, owned, at) =
                (Arc::clone(checkpoint), name.to_string(), positions.clone());
            let stamp = spec.stamp(true);
            tokio::task::spawn_blocking(move || checkpoint.replace(&owned, &delta, &at, &stamp))
                .await
                .map_err(|e| StateError::Store(e.to_string()))??;
            Ok::<_, ViewsError>(positions)
        }
        .await;
        // Whatever happened, the view goes on: from the new checkpoint, or (after a failure)
        // from the one it had, which the failure left alone or replaced whole.
        self.launch_on(running.definition.clone(), spec, Arc::clone(&running.live));
        let positions = finished?;
        Ok(
            serde_json::json!({"rebuilt": name, "position": positions_value(&positions)})
                .to_string(),
        )
    }

    /// A catalog definition's plan, parsed again from its SQL.
    fn plan_of(definition: &Definition) -> Result<Plan, ViewsError> {
        match (definition.kind, sql::parse(&definition.sql)?) {
            (Kind::Table, Statement::CreateTable { topic, .. }) => {
                Ok(Plan::View(table::plan(&topic)))
            }
            (Kind::View, Statement::CreateView { plan, .. }) => Ok(Plan::View(plan)),
            (Kind::Stream, Statement::CreateStream { plan, .. }) => Ok(Plan::Stream(plan)),
            _ => Err(ViewsError::Sql(SqlError(format!(
                "the definition of {} is not a CREATE of its kind",
                definition.name
            )))),
        }
    }

    /// What `definition` keeps with `plan`: where it reads (a table's topic, read as a table;
    /// a stream's topic or any other topic, read as a stream) and where it writes (a view
    /// and a stream to a topic of their name; a table nowhere).
    fn spec_of(&self, definition: &Definition, plan: Plan) -> Result<ViewSpec, ViewsError> {
        let refuse = |why: String| Err(ViewsError::Sql(SqlError(why)));
        let source = read(&self.defined).get(plan.source()).cloned();
        let source = source.as_ref().map(|d| (d.kind, d));
        let name = &definition.name;
        let (source_topic, source_kind) = match (definition.kind, source) {
            (Kind::Table, _) => (plan.source().to_string(), SourceKind::Table),
            (_, None) | (_, Some((Kind::Stream, _))) => {
                (plan.source().to_string(), SourceKind::Stream)
            }
            (Kind::View, Some((Kind::Table, table))) => {
                if matches!(&plan, Plan::View(p) if p.window.is_some()) {
                    return refuse(format!(
                        "{name} windows table {}: windows are over a stream (a topic), not a table",
                        plan.source()
                    ));
                }
                let topic = Self::plan_of(table)?.source().to_string();
                (topic, SourceKind::Table)
            }
            (Kind::View, Some(_)) => {
                return refuse(format!(
                    "{name} reads view {}: a view over a view is not supported yet (read its table or topic)",
                    plan.source()
                ));
            }
            (Kind::Stream, Some((kind, _))) => {
                return refuse(format!(
                    "{name} reads {} {}: a stream reads a topic or another stream",
                    kind.as_str(),
                    plan.source()
                ));
            }
        };
        Ok(ViewSpec {
            name: name.clone(),
            output_topic: (definition.kind != Kind::Table).then(|| name.clone()),
            plan,
            source_topic,
            source_kind,
            sql: definition.sql.clone(),
        })
    }

    fn launch(&self, definition: Definition, spec: ViewSpec) {
        let spec = Arc::new(spec);
        let live = Live::new(&spec);
        self.launch_on(definition, spec, live);
    }

    /// Starts an engine for `spec` on `live` (a restarted view keeps the state queries and
    /// change streams follow).
    fn launch_on(&self, definition: Definition, spec: Arc<ViewSpec>, live: Arc<Live>) {
        let stop = CancellationToken::new();
        let task = tokio::spawn(engine::run(
            Arc::clone(&spec),
            Arc::clone(&live),
            Arc::clone(&self.checkpoint),
            self.options.clone(),
            stop.clone(),
        ));
        let running = Arc::new(Running {
            definition,
            spec,
            live,
            stop,
            task: std::sync::Mutex::new(Some(task)),
            rebuild: std::sync::Mutex::new(None),
            queries: std::sync::atomic::AtomicU64::new(0),
            query_micros: std::sync::atomic::AtomicU64::new(0),
        });
        write(&self.running).insert(running.definition.name.clone(), running);
    }

    fn read_running(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<Running>>> {
        read(&self.running)
    }

    /// The catalog, asked again while the broker settles (a leader not known yet, a
    /// connection refused) for up to `CATALOG_READ_WAIT`.
    async fn read_catalog(&self) -> Result<catalog::Catalog, ViewsError> {
        let deadline = tokio::time::Instant::now() + CATALOG_READ_WAIT;
        loop {
            let attempt = async { catalog::read(&mut self.client().await?).await }.await;
            match attempt {
                Err(e)
                    if (e.is_retriable() || e.is_connection_lost())
                        && tokio::time::Instant::now() < deadline =>
                {
                    tracing::info!(error = %e, "the views' catalog cannot be read yet; asking again");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                other => return Ok(other?),
            }
        }
    }

    async fn client(&self) -> Result<Client, ClientError> {
        self.options.connect("sluice-views").await
    }
}

impl Running {
    /// Runs a query of the rows and counts it with the time it took.
    fn timed<T>(&self, query: impl FnOnce() -> T) -> T {
        let started = std::time::Instant::now();
        let answer = query();
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.queries
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.query_micros
            .fetch_add(micros, std::sync::atomic::Ordering::Relaxed);
        answer
    }

    /// Source records the rebuild (or replacement) under way still has to fold, if one is.
    pub fn rebuild_lag(&self) -> Option<i64> {
        let rebuild = self.rebuild.lock().unwrap_or_else(|p| p.into_inner());
        rebuild.as_ref().map(|shadow| shadow.lock().lag())
    }

    /// Shows `shadow` as this view's rebuild until the guard is dropped.
    fn rebuilding(&self, shadow: &Arc<Live>) -> RebuildShown<'_> {
        *self.rebuild.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::clone(shadow));
        RebuildShown(self)
    }

    async fn halt(&self) {
        self.stop.cancel();
        let task = self.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }

    /// The engine's phase as text.
    pub fn phase(&self) -> String {
        match &self.live.lock().phase {
            Phase::Starting => "starting".into(),
            Phase::Replaying => "replaying".into(),
            Phase::Running => "running".into(),
            Phase::Retrying(e) => format!("retrying: {e}"),
            Phase::Failed(e) => format!("failed: {e}"),
        }
    }
}

/// While it lives, a view shows a rebuild's progress (`Running::rebuilding`).
struct RebuildShown<'a>(&'a Running);

impl Drop for RebuildShown<'_> {
    fn drop(&mut self) {
        *self.0.rebuild.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

/// `lock` read; a writer that panicked left nothing half done that readers could see (each
/// write replaces or inserts whole entries).
fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|p| p.into_inner())
}

/// A definition kept on another node (`home`), as listed here.
fn elsewhere_summary(definition: &Definition, home: Option<i32>) -> serde_json::Value {
    let source = Views::plan_of(definition).map_or(String::new(), |p| p.source().to_string());
    serde_json::json!({
        "name": definition.name,
        "kind": definition.kind.as_str(),
        "source": source,
        "output_topic": (definition.kind != Kind::Table).then(|| definition.name.clone()),
        "state": home.map_or("placing".to_string(), |node| format!("on node {node}")),
    })
}

fn summary(running: &Running) -> serde_json::Value {
    serde_json::json!({
        "name": running.definition.name,
        "kind": running.definition.kind.as_str(),
        "source": running.spec.source_topic,
        "output_topic": running.spec.output_topic,
        "state": running.phase(),
    })
}

/// Positions as `{"topic:partition": next offset}`.
pub fn positions_value(positions: &Positions) -> serde_json::Value {
    positions
        .iter()
        .map(|((topic, partition), offset)| (format!("{topic}:{partition}"), (*offset).into()))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// The rows as a query of a table or view (of these stored `columns`) sees them, with their column names: a view's as they are,
/// a table's with each JSON field as a column (`table::expand`).
fn shown(kind: Kind, columns: &[String], rows: Vec<Vec<Value>>) -> (Vec<String>, Vec<Vec<Value>>) {
    match kind {
        Kind::View | Kind::Stream => (columns.to_vec(), rows),
        Kind::Table => table::expand(rows),
    }
}

/// An event of a change stream: its name (`row`, `position`, `error`) and JSON data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeEvent {
    pub event: &'static str,
    pub data: String,
}

/// A view's changes as events (`Views::changes`).
pub struct ChangeFeed {
    receiver: broadcast::Receiver<Arc<ChangeBatch>>,
    kind: Kind,
    columns: Vec<String>,
    /// What the stream has shown: a commit that reflects no more is left out.
    seen: Positions,
    pending: VecDeque<ChangeEvent>,
    done: bool,
}

impl ChangeFeed {
    /// The next event; `None` once the stream ended (after an `error` event).
    pub async fn next(&mut self) -> Option<ChangeEvent> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(event);
            }
            if self.done {
                return None;
            }
            match self.receiver.recv().await {
                Ok(batch) if is_seen(&batch.positions, &self.seen) => {}
                Ok(batch) => self.render(&batch),
                Err(broadcast::error::RecvError::Lagged(missed)) => self.end(format!(
                    "the stream fell {missed} commits behind the view: reconnect with snapshot=true"
                )),
                Err(broadcast::error::RecvError::Closed) => {
                    self.end("the view was dropped".to_string())
                }
            }
        }
    }

    fn render(&mut self, batch: &ChangeBatch) {
        for change in &batch.changes {
            let (key, row) = match change {
                RowChange::Upsert { key, values } => {
                    (key, Some(key.iter().chain(values).cloned().collect()))
                }
                RowChange::Delete { key } => (key, None),
            };
            let event = row_event(self.kind, &self.columns, &row_key(key), row);
            self.pending.push_back(event);
        }
        for (tp, offset) in &batch.positions {
            self.seen.insert(tp.clone(), *offset);
        }
        self.pending.push_back(position_event(&batch.positions));
    }

    fn end(&mut self, message: String) {
        let data = serde_json::json!({"error_code": "STREAM_ENDED", "message": message});
        self.pending.push_back(ChangeEvent {
            event: "error",
            data: data.to_string(),
        });
        self.done = true;
    }
}

/// True when `positions` reflect nothing past `seen`.
fn is_seen(positions: &Positions, seen: &Positions) -> bool {
    positions
        .iter()
        .all(|(tp, offset)| seen.get(tp).is_some_and(|s| offset <= s))
}

/// `{"key": key text, "row": {...} | null}`.
fn row_event(kind: Kind, columns: &[String], key: &str, row: Option<Vec<Value>>) -> ChangeEvent {
    let row = match row {
        None => "null".to_string(),
        Some(row) => {
            let (columns, rows) = shown(kind, columns, vec![row]);
            row_json(&columns, &rows[0])
        }
    };
    let key = serde_json::Value::String(key.to_string());
    ChangeEvent {
        event: "row",
        data: format!("{{\"key\":{key},\"row\":{row}}}"),
    }
}

fn position_event(positions: &Positions) -> ChangeEvent {
    ChangeEvent {
        event: "position",
        data: format!("{{\"position\":{}}}", positions_value(positions)),
    }
}

/// Rows' JSON texts up to `VIEW_ANSWER_BYTES_MAX` (the first always), and whether any were
/// left out.
fn within_budget(rows: impl Iterator<Item = String>) -> (Vec<String>, bool) {
    let mut out = Vec::new();
    let mut bytes = 0;
    for row in rows {
        bytes += row.len() + 1;
        if bytes > VIEW_ANSWER_BYTES_MAX && !out.is_empty() {
            return (out, true);
        }
        out.push(row);
    }
    (out, false)
}

/// The group key a key text names in `state`: the first reading of it (`keys_named`) that
/// has a row, or none.
fn find_key(state: &ViewState, text: &str) -> Result<Option<Vec<Value>>, ViewsError> {
    for key in keys_named(text, state.key_len()) {
        if state.row(&key)?.is_some() {
            return Ok(Some(key));
        }
    }
    Ok(None)
}

/// Where a page after key text `text` starts: the key it names when that row exists (so a
/// text key "42" is not read as the number 42), else its first reading.
fn after_key(state: &ViewState, text: &str) -> Result<Vec<Value>, ViewsError> {
    if let Some(key) = find_key(state, text)? {
        return Ok(key);
    }
    keys_named(text, state.key_len())
        .into_iter()
        .next()
        .ok_or_else(|| {
            ViewsError::Sql(SqlError(format!(
                "after={text:?} names no key of this view (several keys are a JSON array)"
            )))
        })
}

/// A deletion that found nothing to delete succeeded.
fn ignore_gone(result: Result<(), ClientError>) -> Result<(), ClientError> {
    match result {
        Err(e)
            if matches!(
                e.code(),
                Some(UNKNOWN_TOPIC_OR_PARTITION | GROUP_ID_NOT_FOUND)
            ) =>
        {
            Ok(())
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::SourceRecord;

    /// A view keyed by a text column, holding the keys `42` (text), `7` and `ada`.
    fn by_name() -> ViewState {
        let Statement::CreateView { plan, .. } = sql::parse(
            "CREATE MATERIALIZED VIEW v AS SELECT name, COUNT(*) AS n FROM t GROUP BY name",
        )
        .unwrap() else {
            panic!("a view")
        };
        let mut state = ViewState::new(Plan::View(plan), SourceKind::Stream);
        for (offset, value) in [r#"{"name":"42"}"#, r#"{"name":7}"#, r#"{"name":"ada"}"#]
            .iter()
            .enumerate()
        {
            let record = SourceRecord {
                key: None,
                value: Some(value.as_bytes()),
                timestamp: 0,
                partition: 0,
                offset: offset as i64,
                headers: &[],
            };
            state.apply(&record).unwrap();
        }
        state
    }

    #[test]
    fn a_key_text_names_the_row_that_exists_and_a_page_goes_on_after_it() {
        let state = by_name();
        assert_eq!(
            find_key(&state, "42").unwrap(),
            Some(vec![Value::Text("42".into())])
        );
        assert_eq!(find_key(&state, "7").unwrap(), Some(vec![Value::Int(7)]));
        assert_eq!(find_key(&state, "bob").unwrap(), None);
        // Numbers order before text: after the text "42" comes only "ada", not 7 again.
        let after = after_key(&state, "42").unwrap();
        let rest: Vec<Value> = state
            .rows_from(Bound::Excluded(&after))
            .map(|r| r.unwrap()[0].clone())
            .collect();
        assert_eq!(rest, vec![Value::Text("ada".into())]);
        // A key with no row starts the page at its first reading, the text.
        assert_eq!(
            after_key(&state, "5").unwrap(),
            vec![Value::Text("5".into())]
        );
    }

    #[test]
    fn an_answer_keeps_to_its_byte_budget_but_always_holds_a_row() {
        let big = "x".repeat(VIEW_ANSWER_BYTES_MAX / 3);
        let (rows, cut) = within_budget(std::iter::repeat_n(big.clone(), 5));
        assert_eq!((rows.len(), cut), (2, true));
        let huge = "x".repeat(VIEW_ANSWER_BYTES_MAX + 1);
        let (rows, cut) = within_budget(std::iter::once(huge));
        assert_eq!((rows.len(), cut), (1, false));
    }
}
