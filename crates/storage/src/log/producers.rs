//! The producer-state side of `Log`: rebuilding it when the log opens (newest readable snapshot,
//! then the batches after it), writing snapshots (at every segment roll and at clean shutdown,
//! so a restart rescans at most the active segment), and keeping it in step with retention,
//! truncation and expiry. The rules and the snapshot format are in `producer_state`.

use super::Log;
use crate::Result;
use crate::checkpoint;
use crate::producer_state::{ActiveProducer, ProducerStates, has_producer, snapshot_bytes_max};
use crate::scan::{ScanStop, scan_batches};
use crate::segment::{file_name, offsets_of_files};
use sluice_record::{BatchHeader, ControlMarker, read_marker};
use std::path::{Path, PathBuf};

const SNAPSHOT_EXTENSION: &str = "snapshot";
/// Snapshots kept per partition: the newest, and one more in case the newest is torn.
const SNAPSHOTS_KEPT: usize = 2;

impl Log {
    /// Replaces the producer state with the one the files describe.
    pub(super) fn load_producers(&mut self, now_ms: i64) -> Result<()> {
        let end = self.log_end_offset();
        let mut offsets = offsets_of_files(&self.dir, SNAPSHOT_EXTENSION)?;
        let mut loaded = None;
        while let Some(offset) = offsets.pop() {
            let path = snapshot_path(&self.dir, offset);
            // A snapshot past the log end describes batches that recovery cut away.
            let read = if offset > end {
                Err(format!("beyond the log end offset {end}"))
            } else {
                read_snapshot(&path)
            };
            match read {
                Ok(state) => {
                    loaded = Some((offset, state));
                    break;
                }
                Err(reason) => {
                    tracing::warn!(file = %path.display(), %reason, "discarding producer snapshot");
                    std::fs::remove_file(&path)?;
                }
            }
        }
        let (from, state) = loaded.unwrap_or((i64::MIN, ProducerStates::default()));
        self.producers = state;
        self.replay_producers(from, now_ms);
        self.producers.remove_below(self.log_start_offset);
        Ok(())
    }

    /// Feeds every producer batch at or after `from` into the producer state. The segments were
    /// checked by recovery or closed cleanly; a bad batch found anyway ends that segment's scan
    /// with a warning rather than failing the partition.
    fn replay_producers(&mut self, from: i64, now_ms: i64) {
        let stretches: Vec<(i64, u64, u64)> = self
            .segments
            .values()
            .filter(|s| s.next_offset() > from)
            .map(|s| {
                let start = if from > s.base_offset() {
                    s.position_for(from)
                } else {
                    0
                };
                (s.base_offset(), start, s.size())
            })
            .collect();
        for (base, start, end) in stretches {
            // One segment's file open at a time: a long log must not need a descriptor each.
            let file = match self.segments.get(&base).map(|s| s.file()) {
                Some(Ok(file)) => file,
                Some(Err(e)) => {
                    tracing::warn!(dir = %self.dir.display(), base, error = %e,
                        "producer state rebuilt without this segment");
                    continue;
                }
                None => continue,
            };
            // Only producer batches are kept, a segment at a time.
            let mut found = Vec::new();
            let scanned = scan_batches(&file, start, end, |b| {
                if b.header.last_offset() >= from && has_producer(&b.header) {
                    found.push((b.header, control_marker(&b.header, b.bytes)));
                }
                Ok(true)
            });
            for (header, marker) in found {
                self.apply_to_producers(&header, marker, header.base_offset, now_ms);
            }
            if let Err(e) = scanned {
                let reason = match e {
                    ScanStop::Invalid { position } => format!("bad batch at byte {position}"),
                    ScanStop::Io(e) => e.to_string(),
                };
                tracing::warn!(dir = %self.dir.display(), base, %reason,
                    "producer state rebuilt without the rest of this segment");
            }
        }
    }

    /// Refuses the batches if a transaction marker among them comes from a fenced coordinator
    /// (`ProducerStates::check_marker`); nothing is written then.
    pub(super) fn check_markers(&self, batches: &[(BatchHeader, &[u8])]) -> Result<()> {
        for (header, bytes) in batches {
            if let Some(marker) = control_marker(header, bytes).filter(|_| has_producer(header)) {
                self.producers.check_marker(header, marker)?;
            }
        }
        Ok(())
    }

    /// Keeps the producer state in step with a batch just appended at `offset`.
    pub(super) fn track_producer(
        &mut self,
        header: &BatchHeader,
        bytes: &[u8],
        offset: i64,
        now_ms: i64,
    ) {
        let marker = control_marker(header, bytes);
        self.apply_to_producers(header, marker, offset, now_ms);
    }

    fn apply_to_producers(
        &mut self,
        header: &BatchHeader,
        marker: Option<ControlMarker>,
        offset: i64,
        now_ms: i64,
    ) {
        if !has_producer(header) {
            return;
        }
        if header.is_control() {
            let completed =
                marker.and_then(|m| self.producers.complete_txn(header, m, offset, now_ms));
            if let Some(done) = completed {
                self.note_completed(done);
            }
        } else {
            self.producers.record(header, offset, now_ms);
        }
    }

    /// Writes the producer state as of the log end offset and prunes older snapshots, all
    /// fsynced before it returns (clean shutdown; a roll leaves it to the flusher:
    /// `snapshot_files`). A failure costs only a longer rescan at the next start, so callers
    /// log it and go on.
    pub(super) fn write_producer_snapshot(&self) -> std::io::Result<()> {
        // The index first: the snapshot's offset vouches for every abort below it.
        self.write_aborted()?;
        let path = snapshot_path(&self.dir, self.log_end_offset());
        checkpoint::write_atomically(&path, &self.producers.encode_snapshot())?;
        self.prune_snapshots()
    }

    /// The files of a snapshot as of the log end offset, in the order to put them in place:
    /// the aborted-transactions index it vouches for (if there is one), then the snapshot.
    pub(super) fn snapshot_files(&self) -> Vec<super::PendingFile> {
        let mut files: Vec<super::PendingFile> = self.aborted_file().into_iter().collect();
        files.push(super::PendingFile::new(
            snapshot_path(&self.dir, self.log_end_offset()),
            self.producers.encode_snapshot(),
        ));
        files
    }

    /// Keeps the newest `SNAPSHOTS_KEPT` snapshots.
    pub(super) fn prune_snapshots(&self) -> std::io::Result<()> {
        let offsets = offsets_of_files(&self.dir, SNAPSHOT_EXTENSION)?;
        for old in offsets.iter().rev().skip(SNAPSHOTS_KEPT) {
            std::fs::remove_file(snapshot_path(&self.dir, *old))?;
        }
        Ok(())
    }

    /// Removes snapshots above `offset` (truncation made them describe batches that are gone).
    pub(super) fn remove_snapshots_after(&self, offset: i64) -> Result<()> {
        for stale in offsets_of_files(&self.dir, SNAPSHOT_EXTENSION)?
            .into_iter()
            .filter(|&o| o > offset)
        {
            std::fs::remove_file(snapshot_path(&self.dir, stale))?;
        }
        Ok(())
    }

    /// Forgets producers idle for `producer.id.expiration.ms`; returns how many went.
    pub fn expire_producers(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        self.producers.expire(now_ms, expiration_ms)
    }

    /// Every producer's state in this partition (DescribeProducers).
    pub fn active_producers(&self) -> Vec<ActiveProducer> {
        self.producers.active()
    }

    /// Whether producer `producer_id` at `producer_epoch` has a transaction open in this
    /// partition (its later batches of that transaction need no second verification).
    pub fn producer_in_transaction(&self, producer_id: i64, producer_epoch: i16) -> bool {
        self.producers.in_transaction(producer_id, producer_epoch)
    }

    /// How many producers' state the partition keeps.
    pub fn producer_count(&self) -> usize {
        self.producers.len()
    }
}

fn snapshot_path(dir: &Path, offset: i64) -> PathBuf {
    dir.join(file_name(offset, SNAPSHOT_EXTENSION))
}

fn read_snapshot(path: &Path) -> std::result::Result<ProducerStates, String> {
    let len = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
    if len > snapshot_bytes_max() as u64 {
        return Err(format!("{len} bytes, more than a snapshot can hold"));
    }
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    ProducerStates::decode_snapshot(&bytes)
}

/// The transaction marker a control batch holds (a batch that cannot be decoded holds none:
/// it was checked when appended, so this does not happen).
fn control_marker(header: &BatchHeader, bytes: &[u8]) -> Option<ControlMarker> {
    if !header.is_control() {
        return None;
    }
    read_marker(bytes).ok().flatten()
}
