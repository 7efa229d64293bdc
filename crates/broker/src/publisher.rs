//! The metadata publisher, in the role of Kafka's `BrokerMetadataPublisher`: it makes this
//! broker's storage and coordinators follow the committed metadata image, then publishes the
//! image to the handlers (`Broker::published`), so what a handler answers is what this broker
//! serves.
//!
//! For each new image it creates the local logs of the partitions that name this broker as a
//! replica (with the image's topic id), sets topic configs, begins the image's leader epoch in
//! every partition this broker leads, loads the group and transaction coordinators of the
//! internal partitions it leads (and unloads those of partitions it no longer leads: the
//! coordinator runtime, `sluice_coordinator`), and deletes the local logs of topics the image *removed*. It
//! decides deletions from the previous image and the new one, never from a topic being absent,
//! so an image that lags never deletes data. The only exception is the first image after this
//! broker registered: a local topic it lacks (or holds under another id) was deleted while this
//! node was down, a stray, and is deleted as Kafka deletes strays at startup.
//!
//! A step that fails (a full disk) is logged and tried again with the next image or after
//! `RETRY_INTERVAL`; the image is published regardless, so one bad partition blocks no other.
//!
//! Not owned here: what the image means (`sluice-controller`), the files (`sluice-storage`).

use crate::groups::OFFSETS_TOPIC;
use crate::server::Broker;
use crate::share_coordinators::SHARE_STATE_TOPIC;
use crate::transactions::TRANSACTION_STATE_TOPIC;
use sluice_controller::{ConfigResource, MetadataImage, TopicImage};
use sluice_replica::PartitionRegistration;
use sluice_storage::{Partition, StorageError};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How soon a failed step is tried again when no new image comes.
const RETRY_INTERVAL: Duration = Duration::from_secs(5);

/// Follows `images` until shutdown. Waits first for an image that holds this process's own
/// registration (`incarnation_id`): everything committed before it is in that image,
/// including the topics imported from a data directory taken over, so only then can strays
/// be told from topics (an image restored at start may lag what this node had seen).
pub(crate) async fn run(
    broker: Arc<Broker>,
    mut images: watch::Receiver<Arc<MetadataImage>>,
    incarnation_id: uuid::Uuid,
) {
    let node = broker.config.node_id;
    let caught_up = |i: &Arc<MetadataImage>| {
        i.brokers
            .get(&node)
            .is_some_and(|b| b.incarnation_id == incarnation_id)
    };
    let registered = tokio::select! {
        r = images.wait_for(caught_up) => r.map(|i| i.clone()),
        _ = broker.shutdown_token().cancelled() => return,
    };
    let Ok(mut image) = registered else { return };
    let mut previous: Option<Arc<MetadataImage>> = None;
    loop {
        let ok = apply(&broker, previous.as_deref(), &image).await;
        broker.authorization.publish(&image);
        broker.quotas.publish(&image);
        broker.published.send_replace(image.clone());
        previous = Some(image.clone());
        let retry = tokio::time::sleep(if ok { Duration::MAX } else { RETRY_INTERVAL });
        tokio::select! {
            changed = images.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            _ = retry => {}
            _ = broker.shutdown_token().cancelled() => return,
        }
        image = images.borrow_and_update().clone();
    }
}

/// Makes storage and the coordinators follow `image` (off the runtime's threads: it opens
/// and removes files). False if some step failed.
async fn apply(
    broker: &Arc<Broker>,
    previous: Option<&MetadataImage>,
    image: &Arc<MetadataImage>,
) -> bool {
    let b = broker.clone();
    let previous = previous.cloned();
    let image = image.clone();
    let done = tokio::task::spawn_blocking(move || {
        let mut ok = true;
        match &previous {
            Some(previous) => ok &= delete_removed(&b, previous, &image),
            None => ok &= delete_strays(&b, &image),
        }
        unload_coordinators(&b, &image);
        forget_replicas(&b, &image);
        let mut errors = BTreeMap::new();
        for topic in image.topics.values() {
            if let Err(e) = follow_topic(&b, &image, topic) {
                tracing::error!(topic = %topic.name, error = %e, "could not follow the metadata for a topic");
                errors.insert(topic.topic_id, e.to_string());
                ok = false;
            }
        }
        *b.publish_errors.lock().unwrap_or_else(|p| p.into_inner()) = errors;
        ok
    })
    .await;
    done.unwrap_or_else(|e| {
        tracing::error!(error = %e, "metadata publisher task failed");
        false
    })
}

/// Deletes the local logs of topics `previous` held and `image` does not.
fn delete_removed(broker: &Broker, previous: &MetadataImage, image: &MetadataImage) -> bool {
    let removed = previous
        .topics
        .values()
        .filter(|t| !image.topics.contains_key(&t.topic_id));
    let mut ok = true;
    for topic in removed {
        let local = broker.logs.topic(&topic.name);
        if local.is_some_and(|l| l.id() == topic.topic_id) {
            ok &= delete_local(broker, &topic.name, "deleted");
        }
    }
    ok
}

/// Deletes local topics the image does not hold under the same id: topics deleted (and maybe
/// created again) while this node was down.
fn delete_strays(broker: &Broker, image: &MetadataImage) -> bool {
    let mut ok = true;
    for local in broker.logs.topics() {
        let known = image
            .topic(local.name())
            .is_some_and(|t| t.topic_id == local.id());
        if !known {
            tracing::warn!(topic = local.name(), id = %local.id(), "deleting a stray topic: the cluster's metadata no longer holds it");
            ok &= delete_local(broker, local.name(), "stray");
        }
    }
    ok
}

fn delete_local(broker: &Broker, name: &str, why: &str) -> bool {
    match broker.logs.delete_topic(name) {
        Ok(()) => true,
        Err(StorageError::UnknownTopic(_)) => true,
        Err(e) => {
            tracing::error!(topic = name, why, error = %e, "could not delete a topic's local logs");
            false
        }
    }
}

/// Creates this broker's replicas of `topic`, sets its configs, begins the image's leader
/// epochs where this broker leads, and loads the coordinators of internal partitions it leads.
fn follow_topic(
    broker: &Arc<Broker>,
    image: &MetadataImage,
    topic: &TopicImage,
) -> Result<(), FollowError> {
    let node = broker.config.node_id;
    let wanted: Vec<i32> = topic
        .partitions
        .iter()
        .filter(|(_, p)| p.replicas.contains(&node))
        .map(|(&index, _)| index)
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let configs = image
        .configs
        .get(&ConfigResource::Topic(topic.name.clone()))
        .cloned()
        .unwrap_or_default();
    let now = crate::now_ms();
    let local = match broker.logs.topic(&topic.name) {
        Some(local) if local.id() == topic.topic_id => local,
        Some(_) => {
            // The same name under another id: the old topic was deleted while this node did
            // not hear of it. Its logs go; the image's topic takes the name.
            tracing::warn!(topic = %topic.name, "replacing a local topic of the same name and another id");
            broker.logs.delete_topic(&topic.name)?;
            create(broker, topic, &wanted, configs.clone())?
        }
        None => create(broker, topic, &wanted, configs.clone())?,
    };
    let held = local.partition_indexes();
    let missing: Vec<i32> = wanted
        .iter()
        .copied()
        .filter(|p| !held.contains(p))
        .collect();
    if !missing.is_empty() {
        broker.logs.add_partitions(&topic.name, &missing, now)?;
        for index in &missing {
            if let Some(partition) = local.partition(*index) {
                broker.start_partition(partition);
            }
        }
    }
    let min_insync = min_insync_replicas(broker, &configs);
    if local.overrides() != configs {
        broker.logs.set_topic_configs(&topic.name, configs, false)?;
    }
    let held: Vec<_> = topic
        .partitions
        .iter()
        .filter(|(_, registration)| registration.replicas.contains(&node))
        .filter_map(|(&index, r)| local.partition(index).map(|p| (p, r)))
        .collect();
    // A broker taking over many partitions at once begins an epoch in each (an fsync of its
    // epoch cache) and may replay coordinators: side by side, not one after another.
    let runtime = tokio::runtime::Handle::current();
    let follow_partition = |(partition, registration): (Arc<Partition>, &PartitionRegistration)| {
        let _entered = runtime.enter();
        let replicas = &broker.replicas;
        let name = &topic.name;
        replicas.apply(name, topic.topic_id, &partition, registration, min_insync)?;
        if registration.leader != node {
            return Ok(());
        }
        let count = topic.partitions.len() as i32;
        load_coordinator(broker, name, partition, count, registration.leader_epoch)
    };
    sluice_types::in_parallel(held, PUBLISH_THREADS_MAX, follow_partition)
        .into_iter()
        .collect::<Result<(), FollowError>>()?;
    Ok(())
}

/// At most this many threads apply one topic's partitions.
const PUBLISH_THREADS_MAX: usize = 8;

/// The topic's `min.insync.replicas`, else the broker's.
pub(crate) fn min_insync_replicas(broker: &Broker, configs: &BTreeMap<String, String>) -> usize {
    configs
        .get("min.insync.replicas")
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(broker.config.min_insync_replicas.max(1) as usize)
}

fn create(
    broker: &Arc<Broker>,
    topic: &TopicImage,
    indexes: &[i32],
    configs: BTreeMap<String, String>,
) -> Result<Arc<sluice_storage::Topic>, StorageError> {
    let now = crate::now_ms();
    let local =
        broker
            .logs
            .create_topic_replicas(&topic.name, topic.topic_id, indexes, configs, now)?;
    for partition in local.partitions() {
        broker.start_partition(partition);
    }
    Ok(local)
}

/// Loads the coordinator of an internal partition this broker leads in `leader_epoch`,
/// unless it is loaded in that epoch already. A partition with followers loads once its high
/// watermark reaches what its log held when this broker began leading (`load_when_committed`):
/// a coordinator replays only committed records, so it never acts on one a failover may cut.
fn load_coordinator(
    broker: &Arc<Broker>,
    topic: &str,
    partition: Arc<sluice_storage::Partition>,
    partition_count: i32,
    leader_epoch: i32,
) -> Result<(), FollowError> {
    let index = partition.index();
    let loaded_epoch = match topic {
        OFFSETS_TOPIC => broker.groups.runtime().get(index).map(|s| s.leader_epoch()),
        TRANSACTION_STATE_TOPIC => {
            let runtime = broker.transaction_coordinators.runtime();
            runtime.get(index).map(|s| s.leader_epoch())
        }
        SHARE_STATE_TOPIC => {
            let runtime = broker.share_coordinators.runtime();
            runtime.get(index).map(|s| s.leader_epoch())
        }
        _ => return Ok(()),
    };
    if loaded_epoch.is_some_and(|e| e >= leader_epoch) {
        return Ok(());
    }
    let shard = Shard {
        topic: topic.to_string(),
        partition_count,
        leader_epoch,
    };
    match broker.replicas.leader(topic, partition.index()) {
        None => load_now(broker, &shard, partition, None),
        Some(leader) => {
            load_when_committed(broker, shard, partition, leader);
            Ok(())
        }
    }
}

/// An internal partition's coordinator to load: which, of how many, in which epoch.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Shard {
    topic: String,
    partition_count: i32,
    leader_epoch: i32,
}

fn load_now(
    broker: &Arc<Broker>,
    shard: &Shard,
    partition: Arc<sluice_storage::Partition>,
    leader: Option<Arc<sluice_replica::LeaderReplica>>,
) -> Result<(), FollowError> {
    let log = Arc::new(crate::internal_topics::PartitionLog(partition, leader));
    let (count, epoch) = (shard.partition_count, shard.leader_epoch);
    match shard.topic.as_str() {
        OFFSETS_TOPIC => broker.groups.load(log, count, epoch)?,
        TRANSACTION_STATE_TOPIC => broker.load_transactions(log, count, epoch)?,
        SHARE_STATE_TOPIC => broker.share_coordinators.load(log, count, epoch)?,
        _ => {}
    }
    Ok(())
}

/// Waits (on a task of its own, once per shard and epoch) until the partition's high
/// watermark reaches its log end as it is now, then loads its coordinator if this broker
/// still leads it in that epoch.
fn load_when_committed(
    broker: &Arc<Broker>,
    shard: Shard,
    partition: Arc<sluice_storage::Partition>,
    leader: Arc<sluice_replica::LeaderReplica>,
) {
    let key = (shard.clone(), partition.index());
    if !broker.pending_coordinator_loads().insert(key.clone()) {
        return;
    }
    let end = partition.log().log_end_offset();
    let b = broker.clone();
    let load = async move {
        let committed = tokio::select! {
            reached = leader.wait_high_watermark(end) => reached,
            _ = b.shutdown_token().cancelled() => false,
        };
        let still_leads = b
            .replicas
            .leader(&shard.topic, partition.index())
            .is_some_and(|l| Arc::ptr_eq(&l, &leader));
        if committed && still_leads {
            let broker = b.clone();
            let loaded = tokio::task::spawn_blocking(move || {
                load_now(&broker, &shard, partition, Some(leader))
            })
            .await;
            match loaded {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "a coordinator could not load"),
                Err(e) => tracing::error!(error = %e, "a coordinator's load failed"),
            }
        }
        b.pending_coordinator_loads().remove(&key);
    };
    broker.spawn(load);
}

/// Unloads the coordinators of internal partitions `image` does not have this broker lead
/// (fenced, or led elsewhere): their groups and transactional ids answer NOT_COORDINATOR
/// here, and FindCoordinator names the new leader.
fn unload_coordinators(broker: &Broker, image: &MetadataImage) {
    let node = broker.config.node_id;
    let leads = |topic: &str, index: i32| {
        let partition = image.topic(topic).and_then(|t| t.partitions.get(&index));
        partition.is_some_and(|p| p.leader == node)
    };
    let groups = broker.groups.runtime();
    groups.unload_unless(|index| leads(OFFSETS_TOPIC, index));
    let transactions = broker.transaction_coordinators.runtime();
    transactions.unload_unless(|index| leads(TRANSACTION_STATE_TOPIC, index));
    let shares = broker.share_coordinators.runtime();
    shares.unload_unless(|index| leads(SHARE_STATE_TOPIC, index));
}

/// The replica manager forgets the partitions `image` does not have this broker replicate.
fn forget_replicas(broker: &Broker, image: &MetadataImage) {
    let node = broker.config.node_id;
    broker.replicas.retain(|topic, index| {
        let partition = image.topic(topic).and_then(|t| t.partitions.get(&index));
        partition.is_some_and(|p| p.replicas.contains(&node))
    });
}

/// Why a topic could not be followed: its logs, or its coordinator's replay.
#[derive(Debug, thiserror::Error)]
enum FollowError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Coordinator(#[from] sluice_coordinator::CoordinatorError),
}
