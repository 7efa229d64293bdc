//! `LogManager`: the data directory, the topics in it, and their partitions' logs.
//!
//! Layout of the data directory:
//! ```text
//! <data_dir>/.lock                    held (flock) while a broker uses the directory
//! <data_dir>/.clean-shutdown          present only between a clean shutdown and the next start
//! <data_dir>/topics/<topic>/topic.json  {"id": UUID, "partitions": [0, 3, ...], "configs": {key: value}}
//! <data_dir>/topics/<topic>/<p>/      one partition's segments and checkpoints (see `Log`)
//! <data_dir>/deleted/                 topics being removed; emptied at start
//! <data_dir>/meta.json              {"cluster_id": ..., "directory_id": UUID}, created with the directory
//! <data_dir>/producer-id-block        producer ids handed out before the metadata log (see `producer_ids`)
//! ```
//! `topic.json` is replaced atomically. Its `partitions` lists the partition indexes this
//! directory holds (a broker of a cluster holds the replicas placed on it, not every
//! partition of the topic); a count `N`, as written before clusters, means `0..N`. A topic
//! directory without a readable `topic.json` is reported and skipped rather than guessed at.

use crate::checkpoint;
use crate::config::{LogConfig, validate_entry};
use crate::log::Log;
use crate::partition::Partition;
use crate::{Result, StorageError};
use serde::{Deserialize, Serialize};
use sluice_types::limits::{PARTITIONS_PER_TOPIC_MAX, TOPICS_MAX};
use sluice_types::validate_topic_name;
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

const CLEAN_SHUTDOWN_FILE: &str = ".clean-shutdown";

#[derive(Debug, Serialize, Deserialize)]
struct TopicFile {
    id: uuid::Uuid,
    partitions: PartitionSet,
    configs: BTreeMap<String, String>,
}

/// The partitions a `topic.json` lists: indexes, or (written before clusters) a count.
#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
enum PartitionSet {
    Indexes(Vec<i32>),
    Count(i32),
}

impl PartitionSet {
    fn indexes(&self) -> Vec<i32> {
        match self {
            PartitionSet::Indexes(indexes) => indexes.clone(),
            PartitionSet::Count(n) => (0..*n).collect(),
        }
    }
}

/// One topic: its identity, its config overrides and its partitions.
#[derive(Debug)]
pub struct Topic {
    name: String,
    id: uuid::Uuid,
    dir: PathBuf,
    overrides: RwLock<BTreeMap<String, String>>,
    /// The partitions held here, by index.
    partitions: RwLock<BTreeMap<i32, Arc<Partition>>>,
}

impl Topic {
    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn id(&self) -> uuid::Uuid {
        self.id
    }
    pub fn overrides(&self) -> BTreeMap<String, String> {
        self.overrides
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
    /// The partitions held here, in index order.
    pub fn partitions(&self) -> Vec<Arc<Partition>> {
        let partitions = self.partitions.read().unwrap_or_else(|p| p.into_inner());
        partitions.values().cloned().collect()
    }
    pub fn partition(&self, index: i32) -> Option<Arc<Partition>> {
        let partitions = self.partitions.read().unwrap_or_else(|p| p.into_inner());
        partitions.get(&index).cloned()
    }
    /// How many partitions are held here (on a broker of a cluster, not the topic's count).
    pub fn partition_count(&self) -> i32 {
        self.partitions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .len() as i32
    }
    /// The indexes of the partitions held here, in order.
    pub fn partition_indexes(&self) -> Vec<i32> {
        let partitions = self.partitions.read().unwrap_or_else(|p| p.into_inner());
        partitions.keys().copied().collect()
    }

    fn write_file(&self, partitions: Vec<i32>, configs: &BTreeMap<String, String>) -> Result<()> {
        let file = TopicFile {
            id: self.id,
            partitions: PartitionSet::Indexes(partitions),
            configs: configs.clone(),
        };
        let json = serde_json::to_vec_pretty(&file).map_err(std::io::Error::other)?;
        checkpoint::write_atomically(&self.dir.join("topic.json"), &json)?;
        Ok(())
    }
}

/// What loading the data directory found, for the start's report.
#[derive(Debug, Default)]
struct Loaded {
    topics: usize,
    partitions: usize,
    recovered: crate::log::Recovered,
}

/// Every topic of one broker, and the data directory they live in.
#[derive(Debug)]
pub struct LogManager {
    data_dir: PathBuf,
    topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    _lock: File,
    clean_start: bool,
}

impl LogManager {
    /// Opens the data directory (creating it), takes its lock, and loads every topic,
    /// recovering logs if the previous run did not shut down cleanly.
    pub fn open(data_dir: &Path, now_ms: i64) -> Result<LogManager> {
        // A directory without topics/ holds nothing to recover: its first start is clean.
        let fresh = !data_dir.join("topics").exists();
        std::fs::create_dir_all(data_dir.join("topics"))?;
        let lock = File::create(data_dir.join(".lock"))?;
        if lock.try_lock().is_err() {
            return Err(StorageError::DataDirLocked {
                path: data_dir.display().to_string(),
            });
        }
        let deleted = data_dir.join("deleted");
        if deleted.exists() {
            std::fs::remove_dir_all(&deleted)?;
        }
        let marker = data_dir.join(CLEAN_SHUTDOWN_FILE);
        let clean_start = fresh || marker.exists();
        let manager = LogManager {
            data_dir: data_dir.to_path_buf(),
            topics: RwLock::new(BTreeMap::new()),
            _lock: lock,
            clean_start,
        };
        let started = std::time::Instant::now();
        let loaded = manager.load_topics(clean_start, now_ms)?;
        let took_ms = started.elapsed().as_millis() as u64;
        let dir = data_dir.display().to_string();
        if fresh {
            tracing::info!(%dir, "new data directory");
        } else if clean_start {
            tracing::info!(%dir, topics = loaded.topics, partitions = loaded.partitions, took_ms, "data directory loaded after a clean shutdown");
        } else {
            tracing::warn!(%dir, topics = loaded.topics, partitions = loaded.partitions, segments_checked = loaded.recovered.segments, bytes_checked = loaded.recovered.bytes, took_ms, "data directory recovered after an unclean shutdown: every segment from each partition's recovery point on was checked batch by batch");
        }
        if marker.exists() {
            std::fs::remove_file(&marker)?;
            checkpoint::sync_dir(data_dir)?;
        }
        Ok(manager)
    }

    /// The first producer id this directory never handed out before the metadata log kept
    /// producer ids (see `producer_ids`).
    pub fn legacy_producer_id_floor(&self) -> i64 {
        crate::producer_ids::legacy_floor(&self.data_dir)
    }

    fn load_topics(&self, clean: bool, now_ms: i64) -> Result<Loaded> {
        let mut loaded = Loaded::default();
        let mut topics = self.topics.write().unwrap_or_else(|p| p.into_inner());
        for entry in std::fs::read_dir(self.data_dir.join("topics"))? {
            let dir = entry?.path();
            let Some(name) = dir.file_name().and_then(|n| n.to_str()).map(str::to_string) else {
                continue;
            };
            let file: TopicFile = match std::fs::read(dir.join("topic.json"))
                .map(|b| serde_json::from_slice(&b))
            {
                Ok(Ok(file)) => file,
                other => {
                    tracing::error!(topic = %name, dir = %dir.display(), ?other, "skipping topic without a readable topic.json");
                    continue;
                }
            };
            let config = LogConfig::from_overrides(&file.configs)?;
            let mut partitions = BTreeMap::new();
            for p in file.partitions.indexes() {
                // Whether a log shares its partition with other replicas is the cluster's to
                // say (`Partition::set_sole_replica`): until it does, the high watermark is the
                // checkpointed one, never more than some replica may have acknowledged.
                let log =
                    Log::open_replica(&dir.join(p.to_string()), config.clone(), clean, now_ms)?;
                loaded.partitions += 1;
                loaded.recovered.segments += log.recovered().segments;
                loaded.recovered.bytes += log.recovered().bytes;
                partitions.insert(p, Arc::new(Partition::new(name.clone(), p, log)));
            }
            let topic = Topic {
                name: name.clone(),
                id: file.id,
                dir,
                overrides: RwLock::new(file.configs),
                partitions: RwLock::new(partitions),
            };
            topics.insert(name, Arc::new(topic));
        }
        loaded.topics = topics.len();
        Ok(loaded)
    }

    /// The cluster id, created on first start and kept in `<data_dir>/meta.json`.
    pub fn cluster_id(&self) -> Result<String> {
        self.meta_field("cluster_id", || uuid::Uuid::new_v4().simple().to_string())
    }

    /// This directory's own id (Kafka's `directory.id`, KIP-858), created with it and kept in
    /// `<data_dir>/meta.json`. A broker registers with it, so the controller can tell a
    /// directory that lost its data (a new id) from the one it knew.
    pub fn directory_id(&self) -> Result<uuid::Uuid> {
        let id = self.meta_field("directory_id", || uuid::Uuid::new_v4().to_string())?;
        id.parse()
            .map_err(|e| StorageError::Io(std::io::Error::other(format!("meta.json: {e}"))))
    }

    /// A string field of `<data_dir>/meta.json`, written there (atomically, beside the
    /// fields already present) by `create` if absent.
    fn meta_field(&self, name: &str, create: impl FnOnce() -> String) -> Result<String> {
        let path = self.data_dir.join("meta.json");
        let mut meta = match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&bytes)
                    .map_err(std::io::Error::other)?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => serde_json::Map::new(),
            Err(e) => return Err(e.into()),
        };
        if let Some(value) = meta.get(name).and_then(|v| v.as_str()) {
            return Ok(value.to_string());
        }
        let value = create();
        meta.insert(name.to_string(), serde_json::Value::String(value.clone()));
        let json = serde_json::Value::Object(meta).to_string();
        checkpoint::write_atomically(&path, json.as_bytes())?;
        Ok(value)
    }

    /// Whether the previous run ended with a clean shutdown.
    pub fn clean_start(&self) -> bool {
        self.clean_start
    }

    /// The data directory's filesystem: (total bytes, bytes available to this process), or
    /// `None` when the filesystem does not say.
    pub fn disk_space(&self) -> Option<(i64, i64)> {
        let stats = rustix::fs::statvfs(&self.data_dir).ok()?;
        let block = stats.f_frsize as i64;
        Some((
            (stats.f_blocks as i64).saturating_mul(block),
            (stats.f_bavail as i64).saturating_mul(block),
        ))
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    /// The topic with this id. A scan: topic ids arrive only on group heartbeats and
    /// Metadata requests by id, both rare next to produce and fetch.
    pub fn topic_by_id(&self, id: uuid::Uuid) -> Option<Arc<Topic>> {
        self.topics
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .find(|t| t.id() == id)
            .cloned()
    }

    pub fn topics(&self) -> Vec<Arc<Topic>> {
        self.topics
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    pub fn partition(&self, topic: &str, index: i32) -> Result<Arc<Partition>> {
        let t = self
            .topic(topic)
            .ok_or_else(|| StorageError::UnknownTopic(topic.to_string()))?;
        t.partition(index)
            .ok_or_else(|| StorageError::UnknownPartition {
                topic: topic.to_string(),
                partition: index,
            })
    }

    /// Checks a topic creation without doing it (CreateTopics' validate_only).
    pub fn validate_new_topic(
        &self,
        name: &str,
        partitions: i32,
        configs: &BTreeMap<String, String>,
    ) -> Result<()> {
        validate_topic_name(name)?;
        if !(1..=PARTITIONS_PER_TOPIC_MAX).contains(&partitions) {
            return Err(StorageError::InvalidPartitions(format!(
                "{partitions} is not between 1 and {PARTITIONS_PER_TOPIC_MAX}"
            )));
        }
        LogConfig::from_overrides(configs)?;
        let topics = self.topics.read().unwrap_or_else(|p| p.into_inner());
        if topics.contains_key(name) {
            return Err(StorageError::TopicExists(name.to_string()));
        }
        if topics.len() >= TOPICS_MAX {
            return Err(StorageError::TooManyTopics(TOPICS_MAX));
        }
        Ok(())
    }

    /// Creates a topic with partitions `0..partitions` and a new id, all or nothing.
    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        configs: BTreeMap<String, String>,
        now_ms: i64,
    ) -> Result<Arc<Topic>> {
        self.validate_new_topic(name, partitions, &configs)?;
        let indexes: Vec<i32> = (0..partitions).collect();
        self.create_topic_replicas(name, uuid::Uuid::new_v4(), &indexes, configs, now_ms)
    }

    /// Creates the local replicas `indexes` of topic `name` with id `id` (as the cluster's
    /// metadata names them), all or nothing (see `create_topic_files`).
    pub fn create_topic_replicas(
        &self,
        name: &str,
        id: uuid::Uuid,
        indexes: &[i32],
        configs: BTreeMap<String, String>,
        now_ms: i64,
    ) -> Result<Arc<Topic>> {
        validate_topic_name(name)?;
        let mut topics = self.topics.write().unwrap_or_else(|p| p.into_inner());
        if topics.contains_key(name) {
            return Err(StorageError::TopicExists(name.to_string()));
        }
        let config = LogConfig::from_overrides(&configs)?;
        let dir = self.data_dir.join("topics").join(name);
        let created = self.create_topic_files(name, id, &dir, indexes, config, &configs, now_ms);
        let topic = match created {
            Ok(topic) => Arc::new(topic),
            Err(e) => {
                // All or nothing: a topic that could not be created leaves no directory behind
                // (its partitions' files were closed when they were dropped).
                if let Err(cleanup) = std::fs::remove_dir_all(&dir) {
                    tracing::warn!(topic = name, error = %cleanup, "could not remove a half-created topic");
                }
                return Err(e);
            }
        };
        topics.insert(name.to_string(), topic.clone());
        tracing::info!(topic = name, partitions = indexes.len(), "topic created");
        Ok(topic)
    }

    #[allow(clippy::too_many_arguments)]
    fn create_topic_files(
        &self,
        name: &str,
        id: uuid::Uuid,
        dir: &Path,
        indexes: &[i32],
        config: LogConfig,
        configs: &BTreeMap<String, String>,
        now_ms: i64,
    ) -> Result<Topic> {
        std::fs::create_dir_all(dir)?;
        let mut logs = BTreeMap::new();
        for &p in indexes {
            let log = Log::open(&dir.join(p.to_string()), config.clone(), true, now_ms)?;
            logs.insert(p, Arc::new(Partition::new(name.to_string(), p, log)));
        }
        let topic = Topic {
            name: name.to_string(),
            id,
            dir: dir.to_path_buf(),
            overrides: RwLock::new(configs.clone()),
            partitions: RwLock::new(logs),
        };
        topic.write_file(indexes.to_vec(), configs)?;
        checkpoint::sync_dir(&self.data_dir.join("topics"))?;
        Ok(topic)
    }

    /// Deletes a topic, all or nothing: its directory is first moved out of `topics/` (named by
    /// the topic's id alone, so the longest topic names fit), and only then do its partitions
    /// go offline (in-flight writers fail cleanly) and the topic leave the catalog. If the
    /// move fails, the topic stays as it was and the error is returned. Then its files are
    /// removed.
    pub fn delete_topic(&self, name: &str) -> Result<()> {
        let mut topics = self.topics.write().unwrap_or_else(|p| p.into_inner());
        let topic = topics
            .get(name)
            .cloned()
            .ok_or_else(|| StorageError::UnknownTopic(name.to_string()))?;
        let graveyard = self.data_dir.join("deleted");
        let target = graveyard.join(topic.id.simple().to_string());
        let moved =
            std::fs::create_dir_all(&graveyard).and_then(|()| std::fs::rename(&topic.dir, &target));
        if let Err(e) = moved {
            tracing::error!(topic = name, error = %e, "could not delete topic; it stays");
            return Err(e.into());
        }
        for partition in topic.partitions() {
            partition.take_offline("topic deleted");
        }
        if let Err(e) = checkpoint::sync_dir(&self.data_dir.join("topics")) {
            // The move is done; a crash before the directory reaches the disk brings the
            // topic back at the next start, which is the state before the request.
            tracing::warn!(topic = name, error = %e, "could not sync the topics directory");
        }
        topics.remove(name);
        drop(topics);
        // What is left in `deleted/` is removed at the next start if this fails.
        if let Err(e) = std::fs::remove_dir_all(&target) {
            tracing::warn!(topic = name, error = %e, "could not remove a deleted topic's files yet");
        }
        tracing::info!(topic = name, "topic deleted");
        Ok(())
    }

    /// Grows a topic to `total` partitions (CreatePartitions).
    pub fn create_partitions(
        &self,
        name: &str,
        total: i32,
        validate_only: bool,
        now_ms: i64,
    ) -> Result<()> {
        let topic = self
            .topic(name)
            .ok_or_else(|| StorageError::UnknownTopic(name.to_string()))?;
        let current = topic.partition_count();
        if total <= current || total > PARTITIONS_PER_TOPIC_MAX {
            return Err(StorageError::InvalidPartitions(format!(
                "topic has {current} partitions; the new total must be greater and at most {PARTITIONS_PER_TOPIC_MAX}, not {total}"
            )));
        }
        if validate_only {
            return Ok(());
        }
        let indexes: Vec<i32> = (current..total).collect();
        self.add_partitions(name, &indexes, now_ms)
    }

    /// Creates the local replicas `indexes` of an existing topic (those already held are
    /// left as they are).
    pub fn add_partitions(&self, name: &str, indexes: &[i32], now_ms: i64) -> Result<()> {
        let topic = self
            .topic(name)
            .ok_or_else(|| StorageError::UnknownTopic(name.to_string()))?;
        let mut partitions = topic.partitions.write().unwrap_or_else(|p| p.into_inner());
        let config = LogConfig::from_overrides(&topic.overrides())?;
        for &p in indexes {
            if !(0..PARTITIONS_PER_TOPIC_MAX).contains(&p) || partitions.contains_key(&p) {
                continue;
            }
            let log = Log::open(&topic.dir.join(p.to_string()), config.clone(), true, now_ms)?;
            partitions.insert(p, Arc::new(Partition::new(name.to_string(), p, log)));
        }
        topic.write_file(partitions.keys().copied().collect(), &topic.overrides())?;
        Ok(())
    }

    /// Replaces a topic's config overrides wholesale (after validating each entry).
    pub fn set_topic_configs(
        &self,
        name: &str,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<()> {
        let topic = self
            .topic(name)
            .ok_or_else(|| StorageError::UnknownTopic(name.to_string()))?;
        for (k, v) in &configs {
            validate_entry(k, v)?;
        }
        let config = LogConfig::from_overrides(&configs)?;
        if validate_only {
            return Ok(());
        }
        topic.write_file(topic.partition_indexes(), &configs)?;
        *topic.overrides.write().unwrap_or_else(|p| p.into_inner()) = configs;
        for partition in topic.partitions() {
            partition.set_config(config.clone());
        }
        Ok(())
    }

    /// Writes every log's recovery point (periodic, so crash recovery starts late).
    pub fn checkpoint_recovery_points(&self) {
        for topic in self.topics() {
            for partition in topic.partitions() {
                if let Err(e) = partition.write_checkpoints() {
                    tracing::warn!(partition = %format!("{}-{}", topic.name, partition.index()), error = %e, "checkpoint failed");
                }
            }
        }
    }

    /// Flushes every log, writes indexes and checkpoints, and leaves the clean-shutdown
    /// marker. Call once, after the last append.
    pub fn shutdown(&self, now_ms: i64) -> Result<()> {
        let mut all_ok = true;
        for topic in self.topics() {
            for partition in topic.partitions() {
                let flushed = partition.flush(now_ms);
                let checkpointed = partition.log().checkpoint(true);
                if let Err(e) = flushed.and(checkpointed) {
                    tracing::error!(topic = topic.name(), partition = partition.index(), error = %e, "shutdown flush failed");
                    all_ok = false;
                }
            }
        }
        if all_ok {
            File::create(self.data_dir.join(CLEAN_SHUTDOWN_FILE))?.sync_all()?;
            checkpoint::sync_dir(&self.data_dir)?;
        }
        Ok(())
    }
}
