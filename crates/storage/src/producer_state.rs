//! Idempotent producers' state in one partition: for each producer id, its current epoch and
//! the sequence numbers and offsets of its last `PRODUCER_BATCHES_RETAINED` batches. With it
//! an append can tell a retried batch (answered with its original offsets, not written again)
//! from a gap (`OUT_OF_ORDER_SEQUENCE_NUMBER`) or a fenced producer (`INVALID_PRODUCER_EPOCH`).
//!
//! This module owns the rules and the snapshot format; it does no I/O. `Log` feeds it every
//! batch it appends, rebuilds it at start from the newest snapshot plus the batches after it,
//! and writes snapshots (see `Log::write_producer_snapshot`).
//!
//! Transactions: a producer's first transactional batch opens its transaction in the partition
//! (at that batch's offset); a commit or abort marker (a control batch the transaction
//! coordinator writes) closes it. The first offset of the oldest open transaction is the
//! partition's first unstable offset: `read_committed` consumers read no further.
//!
//! Rules, as Kafka 4 applies them to client appends (`ProducerAppendInfo`):
//! - a batch equal (epoch, first and last sequence) to a remembered one is a duplicate;
//! - an epoch below the producer's is refused (`INVALID_PRODUCER_EPOCH`);
//! - a higher epoch must start at sequence 0;
//! - the same epoch must continue at the last sequence + 1 (wrapping after `i32::MAX`);
//! - a producer with no state (new, expired, or its batches deleted by retention) may start at
//!   any sequence: since KIP-360 the broker no longer answers `UNKNOWN_PRODUCER_ID` for that.
//!
//! A producer's state expires `producer.id.expiration.ms` after its last append, measured with
//! the broker's clock (Kafka uses the batch's own timestamps, so a producer writing old
//! timestamps lost its state early; Sluice does not). After a restart, producers rebuilt from
//! the log count as seen at the start.
//!
//! Snapshot file `<offset, 20 digits>.snapshot`: the state after every batch below `offset`.
//! Big-endian, byte by byte:
//! ```text
//! 0   u16  version (2; a version-1 snapshot is refused and the log rescanned instead)
//! 2   u32  CRC-32C (Castagnoli) of every byte from offset 6 to the end
//! 6   u32  producer count N (at most PRODUCERS_PER_PARTITION_MAX)
//! 10  N producer entries:
//!       i64  producer id
//!       i16  epoch
//!       i64  last seen, ms since the epoch (broker clock)
//!       i64  first offset of its open transaction, -1 when none
//!       i32  coordinator epoch of its last marker, -1 when none
//!       u8   batch count B (at most PRODUCER_BATCHES_RETAINED), oldest first:
//!            B x (i32 first sequence, i32 last sequence, i64 first offset, i64 last offset)
//! ```
//! A snapshot that fails any check is ignored (and an older one, or the log, used instead).

use crate::{Result, StorageError};
use sluice_record::BatchHeader;
use sluice_record::ControlMarker;
use sluice_types::limits::{PRODUCER_BATCHES_RETAINED, PRODUCERS_PER_PARTITION_MAX};
use std::collections::{BTreeSet, HashMap, VecDeque};

const SNAPSHOT_VERSION: u16 = 2;
const SNAPSHOT_HEADER_BYTES: usize = 10;
const ENTRY_FIXED_BYTES: usize = 8 + 2 + 8 + 8 + 4 + 1;
const BATCH_BYTES: usize = 4 + 4 + 8 + 8;

/// The largest snapshot the limits allow; a bigger file is not read.
pub(crate) const fn snapshot_bytes_max() -> usize {
    SNAPSHOT_HEADER_BYTES
        + PRODUCERS_PER_PARTITION_MAX
            * (ENTRY_FIXED_BYTES + PRODUCER_BATCHES_RETAINED * BATCH_BYTES)
}

/// Where one remembered batch of a producer landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchMetadata {
    pub first_seq: i32,
    pub last_seq: i32,
    pub first_offset: i64,
    pub last_offset: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct ProducerEntry {
    epoch: i16,
    last_seen_ms: i64,
    batches: VecDeque<BatchMetadata>,
    /// Where its open transaction began in this partition.
    txn_first_offset: Option<i64>,
    coordinator_epoch: i32,
}

impl ProducerEntry {
    fn new(epoch: i16, now_ms: i64) -> ProducerEntry {
        ProducerEntry {
            epoch,
            last_seen_ms: now_ms,
            batches: VecDeque::with_capacity(PRODUCER_BATCHES_RETAINED),
            txn_first_offset: None,
            coordinator_epoch: -1,
        }
    }

    /// A new epoch forgets the old one's batches (its sequences start again at 0).
    fn set_epoch(&mut self, epoch: i16) {
        if self.epoch != epoch {
            self.epoch = epoch;
            self.batches.clear();
        }
    }
}

/// A transaction a marker ended in this partition: offsets `first_offset..=last_offset` (the
/// marker's) hold its records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CompletedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    pub last_offset: i64,
    pub aborted: bool,
}

/// One producer's state in a partition, as DescribeProducers shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveProducer {
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// Sequence number of its last remembered record; -1 if no batch is remembered.
    pub last_sequence: i32,
    /// When the broker last saw a batch or marker of it (its clock, not the batch's).
    pub last_seen_ms: i64,
    /// Coordinator epoch of its last marker; -1 if none.
    pub coordinator_epoch: i32,
    /// Where its open transaction began in this partition; -1 if none is open.
    pub txn_start_offset: i64,
}

/// What an append of a producer's batch should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Write it.
    Append,
    /// Already written: answer with these offsets and write nothing.
    Duplicate(BatchMetadata),
}

/// Every producer's state in one partition.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct ProducerStates {
    producers: HashMap<i64, ProducerEntry>,
    /// (first offset, producer id) of every open transaction: the first is the oldest.
    open_txns: BTreeSet<(i64, i64)>,
}

/// The sequence number of a batch's last record: sequences wrap to 0 after `i32::MAX`.
pub(crate) fn last_sequence(header: &BatchHeader) -> i32 {
    let first = i64::from(header.base_sequence);
    let last = first + i64::from(header.last_offset_delta);
    (last % (i64::from(i32::MAX) + 1)) as i32
}

/// The entry of the batch's producer, created if new, at the batch's epoch.
fn entry_at_epoch<'a>(
    producers: &'a mut HashMap<i64, ProducerEntry>,
    header: &BatchHeader,
    now_ms: i64,
) -> &'a mut ProducerEntry {
    let entry = producers
        .entry(header.producer_id)
        .or_insert_with(|| ProducerEntry::new(header.producer_epoch, now_ms));
    entry.set_epoch(header.producer_epoch);
    entry
}

fn next_sequence(last: i32) -> i32 {
    if last == i32::MAX { 0 } else { last + 1 }
}

/// Whether a batch carries a producer id (idempotent or transactional writers).
pub(crate) fn has_producer(header: &BatchHeader) -> bool {
    header.producer_id >= 0
}

impl ProducerStates {
    pub(crate) fn len(&self) -> usize {
        self.producers.len()
    }

    /// The first offset of the oldest open transaction.
    pub(crate) fn first_unstable_offset(&self) -> Option<i64> {
        self.open_txns.first().map(|&(offset, _)| offset)
    }

    /// Decides what to do with a client's batch that carries a producer id.
    pub(crate) fn check(&self, header: &BatchHeader) -> Result<Verdict> {
        let pid = header.producer_id;
        if header.producer_epoch < 0 || header.base_sequence < 0 {
            return Err(StorageError::InvalidRecord(format!(
                "batch of producer {pid} has epoch {} and sequence {}; both must be >= 0",
                header.producer_epoch, header.base_sequence
            )));
        }
        let Some(entry) = self.producers.get(&pid) else {
            if self.producers.len() >= PRODUCERS_PER_PARTITION_MAX {
                return Err(StorageError::TooManyProducers(PRODUCERS_PER_PARTITION_MAX));
            }
            return Ok(Verdict::Append);
        };
        let epoch = header.producer_epoch;
        let first_seq = header.base_sequence;
        if entry.txn_first_offset.is_some() && !header.is_transactional() {
            return Err(StorageError::InvalidTxnState(format!(
                "producer {pid} wrote a non-transactional batch while its transaction is open"
            )));
        }
        if epoch == entry.epoch {
            let last_seq = last_sequence(header);
            let remembered = entry
                .batches
                .iter()
                .find(|b| b.first_seq == first_seq && b.last_seq == last_seq);
            if let Some(batch) = remembered {
                return Ok(Verdict::Duplicate(*batch));
            }
        }
        if epoch < entry.epoch {
            return Err(StorageError::InvalidProducerEpoch(format!(
                "producer {pid} wrote with epoch {epoch}, but epoch {} has taken over",
                entry.epoch
            )));
        }
        if epoch > entry.epoch {
            if first_seq != 0 {
                return Err(StorageError::OutOfOrderSequence(format!(
                    "producer {pid} began epoch {epoch} at sequence {first_seq}, not 0"
                )));
            }
            return Ok(Verdict::Append);
        }
        let expected = entry
            .batches
            .back()
            .map_or(0, |b| next_sequence(b.last_seq));
        if first_seq != expected {
            return Err(StorageError::OutOfOrderSequence(format!(
                "producer {pid} sent sequence {first_seq}, expected {expected}"
            )));
        }
        Ok(Verdict::Append)
    }

    /// Remembers a batch written at `first_offset` (by an append, or found while rebuilding).
    pub(crate) fn record(&mut self, header: &BatchHeader, first_offset: i64, now_ms: i64) {
        let pid = header.producer_id;
        let entry = entry_at_epoch(&mut self.producers, header, now_ms);
        if header.is_transactional() && entry.txn_first_offset.is_none() {
            entry.txn_first_offset = Some(first_offset);
            self.open_txns.insert((first_offset, pid));
        }
        if entry.batches.len() == PRODUCER_BATCHES_RETAINED {
            entry.batches.pop_front();
        }
        entry.batches.push_back(BatchMetadata {
            first_seq: header.base_sequence,
            last_seq: last_sequence(header),
            first_offset,
            last_offset: first_offset + i64::from(header.last_offset_delta),
        });
        entry.last_seen_ms = entry.last_seen_ms.max(now_ms);
    }

    /// Refuses a marker from a coordinator epoch older than the one of the producer's last
    /// marker here (Kafka's `checkCoordinatorEpoch`): it comes from a coordinator that has
    /// been replaced.
    pub(crate) fn check_marker(&self, header: &BatchHeader, marker: ControlMarker) -> Result<()> {
        match self.producers.get(&header.producer_id) {
            Some(entry) if marker.coordinator_epoch < entry.coordinator_epoch => {
                Err(StorageError::TransactionCoordinatorFenced(format!(
                    "marker of producer {} at coordinator epoch {}, after one at {}",
                    header.producer_id, marker.coordinator_epoch, entry.coordinator_epoch
                )))
            }
            _ => Ok(()),
        }
    }

    /// Applies a transaction marker written at `offset`: the producer's open transaction in
    /// this partition (if any) ends there.
    pub(crate) fn complete_txn(
        &mut self,
        header: &BatchHeader,
        marker: ControlMarker,
        offset: i64,
        now_ms: i64,
    ) -> Option<CompletedTxn> {
        let pid = header.producer_id;
        let entry = entry_at_epoch(&mut self.producers, header, now_ms);
        entry.coordinator_epoch = marker.coordinator_epoch;
        entry.last_seen_ms = entry.last_seen_ms.max(now_ms);
        let first_offset = entry.txn_first_offset.take()?;
        self.open_txns.remove(&(first_offset, pid));
        Some(CompletedTxn {
            producer_id: pid,
            first_offset,
            last_offset: offset,
            aborted: !marker.commit,
        })
    }

    /// Whether producer `producer_id` at `producer_epoch` has a transaction open here.
    pub(crate) fn in_transaction(&self, producer_id: i64, producer_epoch: i16) -> bool {
        self.producers
            .get(&producer_id)
            .is_some_and(|e| e.epoch == producer_epoch && e.txn_first_offset.is_some())
    }

    /// Every producer's state, by producer id.
    pub(crate) fn active(&self) -> Vec<ActiveProducer> {
        let mut out: Vec<ActiveProducer> = self
            .producers
            .iter()
            .map(|(&producer_id, e)| ActiveProducer {
                producer_id,
                producer_epoch: e.epoch,
                last_sequence: e.batches.back().map_or(-1, |b| b.last_seq),
                last_seen_ms: e.last_seen_ms,
                coordinator_epoch: e.coordinator_epoch,
                txn_start_offset: e.txn_first_offset.unwrap_or(-1),
            })
            .collect();
        out.sort_by_key(|p| p.producer_id);
        out
    }

    /// Forgets producers not seen for `expiration_ms`, except those with a transaction open
    /// (the coordinator ends it first). Returns how many went.
    pub(crate) fn expire(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers.retain(|_, e| {
            e.txn_first_offset.is_some() || now_ms.saturating_sub(e.last_seen_ms) < expiration_ms
        });
        before - self.producers.len()
    }

    /// Forgets producers whose every remembered batch lies below `log_start_offset`: their
    /// records are gone, so there is nothing left to be a duplicate of. A producer with an open
    /// transaction stays until its marker.
    pub(crate) fn remove_below(&mut self, log_start_offset: i64) {
        self.producers.retain(|_, e| {
            e.txn_first_offset.is_some()
                || e.batches
                    .back()
                    .is_some_and(|b| b.last_offset >= log_start_offset)
        });
    }

    pub(crate) fn encode_snapshot(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            SNAPSHOT_HEADER_BYTES + self.producers.len() * (ENTRY_FIXED_BYTES + 2 * BATCH_BYTES),
        );
        out.extend_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&(self.producers.len() as u32).to_be_bytes());
        let mut ids: Vec<&i64> = self.producers.keys().collect();
        ids.sort_unstable();
        for id in ids {
            let e = &self.producers[id];
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&e.epoch.to_be_bytes());
            out.extend_from_slice(&e.last_seen_ms.to_be_bytes());
            out.extend_from_slice(&e.txn_first_offset.unwrap_or(-1).to_be_bytes());
            out.extend_from_slice(&e.coordinator_epoch.to_be_bytes());
            out.push(e.batches.len() as u8);
            for b in &e.batches {
                out.extend_from_slice(&b.first_seq.to_be_bytes());
                out.extend_from_slice(&b.last_seq.to_be_bytes());
                out.extend_from_slice(&b.first_offset.to_be_bytes());
                out.extend_from_slice(&b.last_offset.to_be_bytes());
            }
        }
        let crc = crc32c::crc32c(&out[6..]);
        out[2..6].copy_from_slice(&crc.to_be_bytes());
        out
    }

    /// Reads a snapshot; any inconsistency is an error naming it, never a panic.
    pub(crate) fn decode_snapshot(bytes: &[u8]) -> std::result::Result<Self, String> {
        let mut r = Reader { bytes, at: 0 };
        let version = u16::from_be_bytes(r.take()?);
        if version != SNAPSHOT_VERSION {
            return Err(format!("unknown snapshot version {version}"));
        }
        let crc = u32::from_be_bytes(r.take()?);
        if crc32c::crc32c(&bytes[6..]) != crc {
            return Err("checksum mismatch".into());
        }
        let count = u32::from_be_bytes(r.take()?) as usize;
        if count > PRODUCERS_PER_PARTITION_MAX {
            return Err(format!("{count} producers, more than the limit"));
        }
        // Checked before the map is sized by it: each entry takes at least its fixed bytes.
        if count > (bytes.len() - SNAPSHOT_HEADER_BYTES) / ENTRY_FIXED_BYTES {
            return Err(format!(
                "{count} producers cannot fit in {} bytes",
                bytes.len()
            ));
        }
        let mut producers = HashMap::with_capacity(count);
        let mut open_txns = BTreeSet::new();
        for _ in 0..count {
            let id = i64::from_be_bytes(r.take()?);
            let epoch = i16::from_be_bytes(r.take()?);
            let last_seen_ms = i64::from_be_bytes(r.take()?);
            let txn_first_offset = i64::from_be_bytes(r.take()?);
            let coordinator_epoch = i32::from_be_bytes(r.take()?);
            let [batch_count] = r.take()?;
            if usize::from(batch_count) > PRODUCER_BATCHES_RETAINED {
                return Err(format!("producer {id} has {batch_count} batches"));
            }
            let mut batches = VecDeque::with_capacity(PRODUCER_BATCHES_RETAINED);
            for _ in 0..batch_count {
                batches.push_back(BatchMetadata {
                    first_seq: i32::from_be_bytes(r.take()?),
                    last_seq: i32::from_be_bytes(r.take()?),
                    first_offset: i64::from_be_bytes(r.take()?),
                    last_offset: i64::from_be_bytes(r.take()?),
                });
            }
            let txn_first_offset = (txn_first_offset >= 0).then_some(txn_first_offset);
            if let Some(first) = txn_first_offset {
                open_txns.insert((first, id));
            }
            let entry = ProducerEntry {
                epoch,
                last_seen_ms,
                batches,
                txn_first_offset,
                coordinator_epoch,
            };
            if producers.insert(id, entry).is_some() {
                return Err(format!("producer {id} appears twice"));
            }
        }
        if r.at != bytes.len() {
            return Err(format!("{} bytes after the last entry", bytes.len() - r.at));
        }
        Ok(ProducerStates {
            producers,
            open_txns,
        })
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> std::result::Result<[u8; N], String> {
        let end = self.at + N;
        let Some(slice) = self.bytes.get(self.at..end) else {
            return Err(format!("truncated at byte {}", self.at));
        };
        self.at = end;
        Ok(slice.try_into().expect("slice of length N"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn batch(pid: i64, epoch: i16, first_seq: i32, records: i32) -> BatchHeader {
        BatchHeader {
            base_offset: 0,
            batch_length: 0,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: records - 1,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: first_seq,
            records_count: records,
        }
    }

    /// The name of the error `check` refuses `h` with.
    fn refused(states: &ProducerStates, h: &BatchHeader) -> &'static str {
        match states.check(h) {
            Err(StorageError::OutOfOrderSequence(_)) => "OutOfOrderSequence",
            Err(StorageError::InvalidProducerEpoch(_)) => "InvalidProducerEpoch",
            Err(StorageError::InvalidTxnState(_)) => "InvalidTxnState",
            Err(StorageError::InvalidRecord(_)) => "InvalidRecord",
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    fn written(states: &mut ProducerStates, h: &BatchHeader, offset: i64) {
        assert_eq!(states.check(h).unwrap(), Verdict::Append);
        states.record(h, offset, 1_000);
    }

    #[test]
    fn sequences_continue_and_retries_are_recognised() {
        let mut s = ProducerStates::default();
        written(&mut s, &batch(7, 0, 0, 3), 100);
        written(&mut s, &batch(7, 0, 3, 2), 103);
        let verdict = s.check(&batch(7, 0, 0, 3)).unwrap();
        assert_eq!(
            verdict,
            Verdict::Duplicate(BatchMetadata {
                first_seq: 0,
                last_seq: 2,
                first_offset: 100,
                last_offset: 102
            })
        );
        assert_eq!(refused(&s, &batch(7, 0, 6, 1)), "OutOfOrderSequence");
        // The same first sequence with another length is not the same batch.
        assert_eq!(refused(&s, &batch(7, 0, 3, 1)), "OutOfOrderSequence");
        written(&mut s, &batch(7, 0, 5, 1), 105);
    }

    #[test]
    fn only_the_last_five_batches_are_remembered() {
        let mut s = ProducerStates::default();
        for i in 0..6 {
            written(&mut s, &batch(1, 0, i, 1), i64::from(i));
        }
        assert_eq!(refused(&s, &batch(1, 0, 0, 1)), "OutOfOrderSequence");
        assert!(matches!(
            s.check(&batch(1, 0, 1, 1)),
            Ok(Verdict::Duplicate(_))
        ));
    }

    #[test]
    fn epochs_fence_and_restart_sequences() {
        let mut s = ProducerStates::default();
        written(&mut s, &batch(1, 3, 0, 2), 0);
        assert_eq!(refused(&s, &batch(1, 2, 2, 1)), "InvalidProducerEpoch");
        assert_eq!(refused(&s, &batch(1, 4, 2, 1)), "OutOfOrderSequence");
        written(&mut s, &batch(1, 4, 0, 1), 2);
        // The old epoch's batches are forgotten with it.
        assert_eq!(refused(&s, &batch(1, 3, 0, 2)), "InvalidProducerEpoch");
    }

    #[test]
    fn unknown_producers_start_anywhere_and_sequences_wrap() {
        let mut s = ProducerStates::default();
        written(&mut s, &batch(9, 0, i32::MAX - 1, 2), 0);
        assert_eq!(s.check(&batch(9, 0, 0, 1)).unwrap(), Verdict::Append);
        let wrapping = batch(9, 0, i32::MAX, 3);
        assert_eq!(last_sequence(&wrapping), 1);
        assert_eq!(refused(&s, &batch(9, 0, 5, 1)), "OutOfOrderSequence");
    }

    #[test]
    fn negative_epoch_or_sequence_is_invalid() {
        let s = ProducerStates::default();
        assert_eq!(refused(&s, &batch(1, -1, 0, 1)), "InvalidRecord");
        assert_eq!(refused(&s, &batch(1, 0, -1, 1)), "InvalidRecord");
    }

    #[test]
    fn expiry_and_retention_forget_producers() {
        let mut s = ProducerStates::default();
        s.record(&batch(1, 0, 0, 1), 10, 1_000);
        s.record(&batch(2, 0, 0, 1), 20, 5_000);
        assert_eq!(s.expire(6_000, 5_000), 1);
        assert_eq!(s.len(), 1);
        s.remove_below(21);
        assert_eq!(s.len(), 0);
        // Forgotten: any sequence goes.
        assert_eq!(s.check(&batch(2, 0, 17, 1)).unwrap(), Verdict::Append);
    }

    #[test]
    fn snapshot_round_trips_and_rejects_damage() {
        let mut s = ProducerStates::default();
        for pid in 0..4 {
            for seq in 0..(pid as i32 + 3) {
                s.record(&batch(pid, 1, seq * 2, 2), i64::from(seq) * 10, 77);
            }
        }
        let bytes = s.encode_snapshot();
        assert_eq!(ProducerStates::decode_snapshot(&bytes).unwrap(), s);
        for cut in 0..bytes.len() {
            assert!(ProducerStates::decode_snapshot(&bytes[..cut]).is_err());
        }
        for i in 0..bytes.len() {
            let mut garbled = bytes.clone();
            garbled[i] ^= 0x40;
            assert!(
                ProducerStates::decode_snapshot(&garbled).is_err(),
                "byte {i}"
            );
        }
    }

    #[test]
    fn snapshot_count_is_checked_against_its_bytes_before_allocating() {
        let mut bytes = ProducerStates::default().encode_snapshot();
        bytes[6..10].copy_from_slice(&(PRODUCERS_PER_PARTITION_MAX as u32).to_be_bytes());
        let crc = crc32c::crc32c(&bytes[6..]);
        bytes[2..6].copy_from_slice(&crc.to_be_bytes());
        let e = ProducerStates::decode_snapshot(&bytes).unwrap_err();
        assert!(e.contains("cannot fit"), "{e}");
    }

    fn transactional(pid: i64, epoch: i16, first_seq: i32, records: i32) -> BatchHeader {
        BatchHeader {
            attributes: 0x10,
            ..batch(pid, epoch, first_seq, records)
        }
    }

    fn marker(pid: i64, epoch: i16) -> BatchHeader {
        BatchHeader {
            attributes: 0x30,
            base_sequence: -1,
            ..batch(pid, epoch, 0, 1)
        }
    }

    const COMMIT: ControlMarker = ControlMarker {
        commit: true,
        coordinator_epoch: 0,
    };
    const ABORT: ControlMarker = ControlMarker {
        commit: false,
        coordinator_epoch: 0,
    };

    #[test]
    fn transactions_open_at_their_first_batch_and_close_at_their_marker() {
        let mut s = ProducerStates::default();
        written(&mut s, &batch(9, 0, 0, 1), 0);
        written(&mut s, &transactional(1, 0, 0, 2), 10);
        written(&mut s, &transactional(2, 0, 0, 1), 12);
        written(&mut s, &transactional(1, 0, 2, 1), 13);
        assert_eq!(s.first_unstable_offset(), Some(10));
        // While open, the producer may not write outside it.
        assert_eq!(refused(&s, &batch(1, 0, 3, 1)), "InvalidTxnState");
        let done = s.complete_txn(&marker(1, 0), ABORT, 14, 1_000).unwrap();
        assert_eq!(
            done,
            CompletedTxn {
                producer_id: 1,
                first_offset: 10,
                last_offset: 14,
                aborted: true
            }
        );
        assert_eq!(s.first_unstable_offset(), Some(12));
        let done = s.complete_txn(&marker(2, 0), COMMIT, 15, 1_000).unwrap();
        assert!(!done.aborted);
        assert_eq!(s.first_unstable_offset(), None);
        // A marker for a producer with nothing open here ends nothing.
        assert_eq!(s.complete_txn(&marker(3, 0), COMMIT, 16, 1_000), None);
        // After its marker the producer continues its sequence outside a transaction.
        written(&mut s, &batch(1, 0, 3, 1), 17);
    }

    #[test]
    fn a_marker_with_a_bumped_epoch_fences_the_old_one() {
        let mut s = ProducerStates::default();
        written(&mut s, &transactional(1, 4, 0, 1), 0);
        s.complete_txn(&marker(1, 5), ABORT, 1, 1_000).unwrap();
        assert_eq!(
            refused(&s, &transactional(1, 4, 1, 1)),
            "InvalidProducerEpoch"
        );
    }

    #[test]
    fn open_transactions_survive_snapshots_expiry_and_retention() {
        let mut s = ProducerStates::default();
        written(&mut s, &transactional(1, 0, 0, 1), 5);
        s.record(&batch(2, 0, 0, 1), 6, 1_000);
        let restored = ProducerStates::decode_snapshot(&s.encode_snapshot()).unwrap();
        assert_eq!(restored, s);
        assert_eq!(restored.first_unstable_offset(), Some(5));
        assert_eq!(
            s.expire(i64::MAX / 2, 1),
            1,
            "only the idle producer without a transaction"
        );
        s.remove_below(100);
        assert_eq!(s.first_unstable_offset(), Some(5));
        assert_eq!(s.len(), 1);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = ProducerStates::decode_snapshot(&bytes);
        }
    }
}
