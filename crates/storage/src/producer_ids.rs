//! Producer ids for InitProducerId: unique for the life of the data directory, never reused
//! after a restart or a crash. Handed out from blocks of `BLOCK_SIZE`; the end of the current
//! block is written (atomically, fsynced) before any id from it is given out, so a restart
//! continues after it and at most one block's unused ids are skipped. Kafka's controller hands
//! brokers blocks of the same size.
//!
//! File `<data_dir>/producer-id-block`: one decimal number, the first id of the next block.

use crate::Result;
use crate::checkpoint;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

const BLOCK_FILE: &str = "producer-id-block";
const BLOCK_SIZE: i64 = 1000;

#[derive(Debug)]
pub(crate) struct ProducerIds {
    path: PathBuf,
    /// (next id to hand out, end of the block persisted in the file)
    state: Mutex<(i64, i64)>,
}

impl ProducerIds {
    pub(crate) fn open(data_dir: &Path) -> ProducerIds {
        let path = data_dir.join(BLOCK_FILE);
        let next = checkpoint::read_i64(&path).unwrap_or(0).max(0);
        ProducerIds {
            path,
            state: Mutex::new((next, next)),
        }
    }

    pub(crate) fn allocate(&self) -> Result<i64> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (next, block_end) = *state;
        if next == block_end {
            checkpoint::write_i64(&self.path, block_end + BLOCK_SIZE)?;
            state.1 = block_end + BLOCK_SIZE;
        }
        state.0 = next + 1;
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let ids = ProducerIds::open(dir.path());
        let first: Vec<i64> = (0..1500).map(|_| ids.allocate().unwrap()).collect();
        assert_eq!(first, (0..1500).collect::<Vec<_>>());
        drop(ids);
        let again = ProducerIds::open(dir.path());
        assert_eq!(again.allocate().unwrap(), 2000);
    }
}
