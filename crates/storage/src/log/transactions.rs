//! The transaction side of `Log`: the last stable offset, `read_committed` reads, and the
//! aborted-transactions index that tells a `read_committed` consumer which records to skip.
//!
//! File `aborted-transactions` in the partition directory: one 32-byte entry per aborted
//! transaction, in marker order, big-endian:
//! ```text
//! 0   i64  producer id
//! 8   i64  first offset of the transaction in this partition
//! 16  i64  last offset (the abort marker's)
//! 24  i64  last stable offset once the marker is written
//! ```
//! It is rewritten atomically (and so fsynced) with each producer snapshot, and appended to in
//! between. At open, entries past the log end are dropped and the rescan after the snapshot
//! adds back any that a crash kept from reaching the file. Retention drops entries wholly
//! below the log start offset. The index lives in memory too: 32 bytes per aborted
//! transaction still in the log.

use super::Log;
use crate::checkpoint;
use crate::producer_state::CompletedTxn;
use crate::read::ReadPlan;
use crate::{Result, StorageError};
use std::io::Write;
use std::path::Path;

const ABORTED_FILE: &str = "aborted-transactions";
const ENTRY_BYTES: usize = 32;

/// One aborted transaction of a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    pub last_offset: i64,
    pub last_stable_offset: i64,
}

impl AbortedTxn {
    fn encode(&self, out: &mut Vec<u8>) {
        for v in [
            self.producer_id,
            self.first_offset,
            self.last_offset,
            self.last_stable_offset,
        ] {
            out.extend_from_slice(&v.to_be_bytes());
        }
    }

    fn decode(bytes: &[u8]) -> AbortedTxn {
        let at =
            |i: usize| i64::from_be_bytes(bytes[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
        AbortedTxn {
            producer_id: at(0),
            first_offset: at(1),
            last_offset: at(2),
            last_stable_offset: at(3),
        }
    }
}

impl Log {
    /// The offset below which every transaction is decided, and known to stay decided: the
    /// first offset of the oldest transaction still open or whose marker is not yet under the
    /// high watermark, or the high watermark when there is none.
    pub fn last_stable_offset(&self) -> i64 {
        let unreplicated = self.unreplicated_txns.values().min().copied();
        [self.producers.first_unstable_offset(), unreplicated]
            .into_iter()
            .flatten()
            .fold(self.high_watermark, i64::min)
    }

    /// As `read`, but stopping at the last stable offset (`read_committed`).
    pub fn read_committed(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
    ) -> Result<ReadPlan> {
        let mut plan = self.read(offset, max_bytes, min_one_batch)?;
        plan.upper_offset = plan.upper_offset.min(self.last_stable_offset());
        Ok(plan)
    }

    /// Aborted transactions with records in `[from, to)`, oldest first: what a
    /// `read_committed` fetch of that range returns so the client can skip their records.
    pub fn aborted_transactions(&self, from: i64, to: i64) -> Vec<AbortedTxn> {
        self.aborted
            .range(from..)
            .map(|(_, a)| *a)
            .filter(|a| a.first_offset < to)
            .collect()
    }

    /// Notes a transaction that a marker ended; aborted ones enter the index.
    pub(super) fn note_completed(&mut self, done: CompletedTxn) {
        if done.last_offset >= self.high_watermark {
            self.unreplicated_txns
                .insert(done.last_offset, done.first_offset);
        }
        if !done.aborted || self.aborted.contains_key(&done.last_offset) {
            return;
        }
        let entry = AbortedTxn {
            producer_id: done.producer_id,
            first_offset: done.first_offset,
            last_offset: done.last_offset,
            // The marker is not yet under the high watermark: the stable offset it leaves is
            // the oldest transaction still open, or the offset after the marker.
            last_stable_offset: self
                .producers
                .first_unstable_offset()
                .map_or(done.last_offset + 1, |o| o.min(done.last_offset + 1)),
        };
        self.aborted.insert(entry.last_offset, entry);
        let mut bytes = Vec::with_capacity(ENTRY_BYTES);
        entry.encode(&mut bytes);
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(ABORTED_FILE))
            .and_then(|mut f| f.write_all(&bytes));
        if let Err(e) = appended {
            // The rescan after the next start finds the marker again, as long as the next
            // snapshot (which rewrites the file) comes after it.
            tracing::warn!(dir = %self.dir.display(), error = %e, "could not append to the aborted-transactions index");
        }
    }

    /// Loads the index at open, keeping entries below the log end.
    pub(super) fn load_aborted(&mut self) -> Result<()> {
        self.aborted = read_aborted(&self.dir)?
            .into_iter()
            .filter(|a| (self.log_start_offset..self.log_end_offset()).contains(&a.last_offset))
            .map(|a| (a.last_offset, a))
            .collect();
        Ok(())
    }

    /// Rewrites the index from memory (with each snapshot, after truncation and retention).
    pub(super) fn write_aborted(&self) -> std::io::Result<()> {
        match self.aborted_file() {
            Some(file) => file.write().and_then(|()| file.install()),
            None => Ok(()),
        }
        .and_then(|()| checkpoint::sync_dir(&self.dir))
    }

    /// The index as memory holds it, to be written; None when there is nothing to write
    /// (no entry, and no file to empty).
    pub(super) fn aborted_file(&self) -> Option<super::PendingFile> {
        let path = self.dir.join(ABORTED_FILE);
        if self.aborted.is_empty() && !path.exists() {
            return None;
        }
        let mut bytes = Vec::with_capacity(self.aborted.len() * ENTRY_BYTES);
        for a in self.aborted.values() {
            a.encode(&mut bytes);
        }
        Some(super::PendingFile::new(path, bytes))
    }

    /// Drops entries wholly below the log start offset or at and above `end`.
    pub(super) fn prune_aborted(&mut self, end: i64) {
        let start = self.log_start_offset;
        self.aborted.retain(|&last, _| (start..end).contains(&last));
    }
}

fn read_aborted(dir: &Path) -> Result<Vec<AbortedTxn>> {
    let path = dir.join(ABORTED_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StorageError::Io(e)),
    };
    // A torn last entry (a crash mid-append) is dropped; the rescan restores it.
    Ok(bytes
        .chunks_exact(ENTRY_BYTES)
        .map(AbortedTxn::decode)
        .collect())
}
