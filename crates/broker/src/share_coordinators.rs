//! The share coordinators (Kafka's `ShareCoordinator`): the internal topic
//! `__share_group_state` (compacted; a share-partition's state lives where Kafka's hash of
//! `group:topic_id:partition` puts it), one coordinator per partition of it this broker leads,
//! as a shard of the coordinator runtime. A coordinator keeps the last state written for each
//! share-partition and answers reads of it; a write appends one record (the whole state,
//! `sluice_share::ShareStateRecord`) under the shard's lock and is answered once the record is
//! on every in-sync replica (at once on a partition without followers: written to the log,
//! which survives a `kill -9`; `flush.ms` makes it survive a power loss, as for offsets).
//!
//! Writes are fenced: one for an older state epoch than the state holds is refused
//! (FENCED_STATE_EPOCH: the group's offsets were reset since its writer loaded the state), and
//! one for the same state epoch from an older leader epoch of the data partition
//! (FENCED_LEADER_EPOCH: a leader that lost its partition cannot overwrite its successor's
//! state). A reset (AlterShareGroupOffsets) writes the next state epoch with leader epoch -1. The share-partition leaders reach these through `shares::persist`, here or over the
//! network (ReadShareGroupState, WriteShareGroupState).

use sluice_coordinator::{CoordinatorError, CoordinatorShard, Replayed, Runtime, Shard};
use sluice_record::BatchHeader;
use sluice_share::{ShareStateKey, ShareStateRecord, ShareStateValue};
use std::collections::HashMap;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// The internal topic holding every share-partition's state.
pub(crate) const SHARE_STATE_TOPIC: &str = "__share_group_state";

/// Partitions of `__share_group_state`. Kafka's default is 50; Sluice takes 10, since each
/// partition's active segment holds a descriptor and one coordinator serves thousands of
/// share-partitions.
pub(crate) const SHARE_STATE_PARTITIONS: i32 = 10;

/// The partition of `__share_group_state` (of `partition_count`) that keeps `key`'s state.
pub(crate) fn partition_of(key: &ShareStateKey, partition_count: i32) -> i32 {
    sluice_types::partition_for(&key.coordinator_key(), partition_count)
}

/// Why a state could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ShareStateError {
    #[error("this broker does not coordinate the share-partition's state")]
    NotCoordinator,
    #[error("the share coordinator is not available: {0}")]
    NotAvailable(String),
    #[error("written by leader epoch {held}; a write from epoch {written} is fenced")]
    FencedLeaderEpoch { held: i32, written: i32 },
    #[error("the state is at epoch {held}; a write for epoch {written} is fenced")]
    FencedStateEpoch { held: i32, written: i32 },
}

/// One `__share_group_state` partition's coordinator: the last state of each share-partition.
#[derive(Debug, Default)]
pub(crate) struct ShareStateShard {
    states: HashMap<ShareStateKey, ShareStateValue>,
}

impl CoordinatorShard for ShareStateShard {
    const KIND: &'static str = "share";

    fn replay(&mut self, _: &BatchHeader, item: Replayed<'_>) -> bool {
        match item {
            Replayed::Record { key, value } => match ShareStateRecord::decode(key, value) {
                Ok(record) => {
                    match record.value {
                        Some(value) => self.states.insert(record.key, value),
                        None => self.states.remove(&record.key),
                    };
                    true
                }
                Err(_) => false,
            },
            Replayed::Marker(_) => true,
        }
    }
}

/// The share coordinators of the `__share_group_state` partitions this broker leads.
pub(crate) struct ShareCoordinators {
    runtime: Runtime<ShareStateShard>,
}

impl std::fmt::Debug for ShareCoordinators {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShareCoordinators")
            .field("runtime", &self.runtime)
            .finish()
    }
}

impl ShareCoordinators {
    pub(crate) fn new(shutdown: CancellationToken) -> ShareCoordinators {
        ShareCoordinators {
            runtime: Runtime::new(shutdown),
        }
    }

    /// The runtime (the publisher loads and unloads through it, metrics count its shards).
    pub(crate) fn runtime(&self) -> &Runtime<ShareStateShard> {
        &self.runtime
    }

    /// Replays `log` into a coordinator, unless it is loaded in that epoch already. Blocking.
    pub(crate) fn load(
        &self,
        log: Arc<dyn sluice_coordinator::ShardLog>,
        partition_count: i32,
        leader_epoch: i32,
    ) -> Result<(), CoordinatorError> {
        let state = ShareStateShard::default();
        self.runtime
            .load(log, partition_count, leader_epoch, state)?;
        Ok(())
    }

    fn shard(&self, index: i32) -> Result<Arc<Shard<ShareStateShard>>, ShareStateError> {
        self.runtime
            .get(index)
            .ok_or(ShareStateError::NotCoordinator)
    }

    /// The state of `key`, kept by the coordinator of partition `index`; `None` if none was
    /// written.
    pub(crate) fn read(
        &self,
        index: i32,
        key: &ShareStateKey,
    ) -> Result<Option<ShareStateValue>, ShareStateError> {
        let shard = self.shard(index)?;
        let state = shard.serving().map_err(not_available)?;
        Ok(state.states.get(key).cloned())
    }

    /// Writes the state of `key` to the coordinator of partition `index`; answered once the
    /// record counts as written (the module doc).
    pub(crate) async fn write(
        &self,
        index: i32,
        key: ShareStateKey,
        value: ShareStateValue,
    ) -> Result<(), ShareStateError> {
        let fenced = |shard: &ShareStateShard, record: &ShareStateRecord| match (
            shard.states.get(&record.key),
            &record.value,
        ) {
            (Some(held), Some(value)) => check_fences(held, value).map(|()| true),
            _ => Ok(true),
        };
        let record = ShareStateRecord {
            key,
            value: Some(value),
        };
        self.commit(index, record, fenced).await
    }

    /// Deletes the state of `key` (a tombstone) at the coordinator of partition `index`;
    /// answered once the tombstone counts as written. Deleting no state writes nothing.
    pub(crate) async fn delete(
        &self,
        index: i32,
        key: ShareStateKey,
    ) -> Result<(), ShareStateError> {
        let held = |shard: &ShareStateShard, record: &ShareStateRecord| {
            Ok(shard.states.contains_key(&record.key))
        };
        let record = ShareStateRecord { key, value: None };
        self.commit(index, record, held).await
    }

    /// Appends `record` under the shard's lock if `check` says to write it, applies it, and
    /// waits until it counts as written.
    async fn commit(
        &self,
        index: i32,
        record: ShareStateRecord,
        check: impl FnOnce(&ShareStateShard, &ShareStateRecord) -> Result<bool, ShareStateError>,
    ) -> Result<(), ShareStateError> {
        let shard = self.shard(index)?;
        let written_at = {
            let mut state = shard.serving().map_err(not_available)?;
            if !check(&state, &record)? {
                return Ok(());
            }
            let offset = state
                .append(&[record.encode()], None, crate::now_ms())
                .map_err(not_available)?;
            match record.value {
                Some(value) => state.states.insert(record.key, value),
                None => state.states.remove(&record.key),
            };
            offset
        };
        if let Some(offset) = written_at
            && !shard.wait_replicated(offset).await
        {
            return Err(ShareStateError::NotAvailable(
                "the record was not replicated".into(),
            ));
        }
        Ok(())
    }
}

fn check_fences(held: &ShareStateValue, value: &ShareStateValue) -> Result<(), ShareStateError> {
    if value.state_epoch < held.state_epoch {
        return Err(ShareStateError::FencedStateEpoch {
            held: held.state_epoch,
            written: value.state_epoch,
        });
    }
    if value.state_epoch == held.state_epoch && value.leader_epoch < held.leader_epoch {
        return Err(ShareStateError::FencedLeaderEpoch {
            held: held.leader_epoch,
            written: value.leader_epoch,
        });
    }
    Ok(())
}

fn not_available(e: CoordinatorError) -> ShareStateError {
    match e {
        CoordinatorError::Unloaded => ShareStateError::NotCoordinator,
        other => ShareStateError::NotAvailable(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(leader_epoch: i32, state_epoch: i32) -> ShareStateValue {
        ShareStateValue {
            state_epoch,
            leader_epoch,
            start_offset: 0,
            write_time_ms: 0,
            batches: Vec::new(),
        }
    }

    #[test]
    fn an_older_leader_or_state_epoch_is_fenced() {
        let held = value(5, 1);
        assert!(check_fences(&held, &value(5, 1)).is_ok());
        assert!(check_fences(&held, &value(6, 1)).is_ok());
        assert_eq!(
            check_fences(&held, &value(4, 1)),
            Err(ShareStateError::FencedLeaderEpoch {
                held: 5,
                written: 4
            })
        );
        assert!(matches!(
            check_fences(&held, &value(5, 0)),
            Err(ShareStateError::FencedStateEpoch { .. })
        ));
        // A reset: the next state epoch, from no leader, wins; then leaders write on it.
        assert!(check_fences(&held, &value(-1, 2)).is_ok());
        assert!(check_fences(&value(-1, 2), &value(3, 2)).is_ok());
    }
}
