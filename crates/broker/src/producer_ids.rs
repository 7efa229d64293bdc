//! Producer ids for InitProducerId, unique across the cluster: blocks handed to this broker by
//! the active controller (AllocateProducerIds), committed to the metadata log before the
//! block is used, so a restart or another broker never hands out an id twice. One block is
//! held at a time; when it runs out, the next request fetches a new one (one fetch at a time,
//! the others waiting for it), and while no controller answers, InitProducerId gets
//! COORDINATOR_LOAD_IN_PROGRESS, which clients retry.
//!
//! Not owned here: the blocks' bookkeeping (the controller's), and how the request reaches
//! the active controller (`ClusterView`).

use crate::ClusterView;
use kafka_protocol::error::ResponseError;
use std::ops::Range;
use std::sync::Mutex;

#[derive(Debug, Default)]
pub(crate) struct ProducerIdBlocks {
    /// The ids of the current block not yet handed out.
    block: Mutex<Range<i64>>,
    /// Held while a new block is fetched (no other lock is held across that wait).
    refill: tokio::sync::Mutex<()>,
}

impl ProducerIdBlocks {
    /// An id of the current block, if any is left.
    pub(crate) fn try_take(&self) -> Option<i64> {
        self.block.lock().unwrap_or_else(|p| p.into_inner()).next()
    }

    /// An id never handed out before.
    pub(crate) async fn next(&self, cluster: &dyn ClusterView) -> Result<i64, ResponseError> {
        loop {
            if let Some(id) = self.try_take() {
                return Ok(id);
            }
            self.refill(cluster).await?;
        }
    }

    /// Makes sure the current block has an id left, fetching a new block if not.
    pub(crate) async fn refill(&self, cluster: &dyn ClusterView) -> Result<(), ResponseError> {
        let _turn = self.refill.lock().await;
        if !self
            .block
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
        {
            return Ok(()); // another request fetched one meanwhile
        }
        match cluster.allocate_producer_ids().await {
            Ok((first, count)) => {
                *self.block.lock().unwrap_or_else(|p| p.into_inner()) = first..first + count;
                tracing::debug!(first, count, "producer id block");
                Ok(())
            }
            Err(e) => {
                tracing::warn!(error = %e, "no producer id block from the controller yet");
                Err(ResponseError::CoordinatorLoadInProgress)
            }
        }
    }
}
