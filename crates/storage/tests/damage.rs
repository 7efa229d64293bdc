//! Damage in the middle of a log costs only the damaged batches: recovery keeps every intact
//! batch and segment after it, reads refuse the damaged offsets by name and go on past them.

use sluice_record::BatchIter;
use sluice_record::testing::build_batch;
use sluice_storage::{AppendOrigin, LogManager, Partition, StorageError};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const RECORDS: i64 = 1200;
const PER_BATCH: i64 = 10;

/// A topic of one partition with small segments, filled with `RECORDS` records.
fn filled(dir: &Path) -> LogManager {
    let manager = LogManager::open(dir, 0).unwrap();
    let configs = BTreeMap::from([("segment.bytes".to_string(), "4096".to_string())]);
    manager.create_topic("t", 1, configs, 0).unwrap();
    let partition = manager.partition("t", 0).unwrap();
    partition.set_sole_replica(true); // as the broker makes a single node's
    for first in (0..RECORDS).step_by(PER_BATCH as usize) {
        let values: Vec<Vec<u8>> = (first..first + PER_BATCH)
            .map(|i| format!("value-{i:05}-padding-padding").into_bytes())
            .collect();
        let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
        let stamps = vec![first; PER_BATCH as usize];
        partition
            .append(&build_batch(0, &stamps, &refs), AppendOrigin::Client, first)
            .unwrap();
    }
    manager
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(dir.join("topics/t/0"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    logs
}

/// Every offset readable from the start, stepping over damage the reads report.
fn readable(partition: &Partition) -> Vec<i64> {
    let mut offsets = Vec::new();
    let mut next = 0;
    let end = partition.log().high_watermark();
    while next < end {
        let read = partition
            .read(next, 1 << 20, true)
            .and_then(|plan| partition.read_batches(&plan));
        match read {
            Ok(bytes) => {
                assert!(!bytes.is_empty(), "nothing at {next}");
                for batch in BatchIter::new(&bytes) {
                    let (header, _) = batch.unwrap();
                    offsets.extend(header.base_offset.max(next)..=header.last_offset());
                    next = header.last_offset() + 1;
                }
            }
            Err(StorageError::Damaged(message)) => {
                let damage = partition.log().damage();
                let hole = damage
                    .iter()
                    .find(|d| d.offsets.contains(&next))
                    .unwrap_or_else(|| panic!("{message}, but no damage holds {next}"));
                next = hole.offsets.end;
            }
            Err(e) => panic!("read at {next}: {e}"),
        }
    }
    offsets
}

fn corrupt(path: &Path, at: u64, bytes: &[u8]) {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.write_all_at(bytes, at).unwrap();
}

#[test]
fn recovery_passes_over_damage_in_the_middle_and_keeps_the_later_segments() {
    let dir = tempfile::tempdir().unwrap();
    drop(filled(dir.path())); // no clean shutdown: the next open recovers every segment
    let logs = segments(dir.path());
    assert!(logs.len() >= 8, "{} segments", logs.len());
    corrupt(&logs[2], 3000, &[0xAB; 16]);
    let manager = LogManager::open(dir.path(), 0).unwrap();
    let partition = manager.partition("t", 0).unwrap();
    partition.set_sole_replica(true); // as the broker makes a single node's
    assert_eq!(
        segments(dir.path()).len(),
        logs.len(),
        "a segment was deleted"
    );
    let damage = partition.log().damage();
    assert_eq!(damage.len(), 1, "{damage:?}");
    let lost = damage[0].offsets.end - damage[0].offsets.start;
    assert!((1..=2 * PER_BATCH).contains(&lost), "{damage:?}");
    assert_eq!(partition.log().log_end_offset(), RECORDS);
    assert_eq!(readable(&partition).len() as i64, RECORDS - lost);
    let plan = partition.read(damage[0].offsets.start, 1 << 20, true);
    assert!(matches!(plan, Err(StorageError::Damaged(_))));
}

/// Fills a log and stops it cleanly (so nothing is verified at the next open), writes `bytes`
/// at `at` in segment `segment`, reopens, and reads everything: exactly one batch must be
/// lost, found by the reads, and never served.
fn one_batch_lost_after_a_clean_stop(segment: usize, at: u64, bytes: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    filled(dir.path()).shutdown(0).unwrap();
    corrupt(&segments(dir.path())[segment], at, bytes);
    let manager = LogManager::open(dir.path(), 0).unwrap();
    let partition = manager.partition("t", 0).unwrap();
    partition.set_sole_replica(true); // as the broker makes a single node's
    let got = readable(&partition);
    let damage = partition.log().damage();
    assert_eq!(damage.len(), 1, "{damage:?}");
    assert_eq!(damage[0].offsets.end - damage[0].offsets.start, PER_BATCH);
    assert_eq!(got.len() as i64, RECORDS - PER_BATCH);
    for offset in damage[0].offsets.clone() {
        assert!(!got.contains(&offset), "damaged offset {offset} was served");
    }
}

#[test]
fn a_lying_length_in_a_closed_segment_is_found_by_a_read_and_stepped_over() {
    // The length of the first batch of the second segment, overwritten.
    one_batch_lost_after_a_clean_stop(1, 8, &0x0100_0000i32.to_be_bytes());
}

#[test]
fn a_flipped_byte_in_a_closed_segment_is_never_served() {
    one_batch_lost_after_a_clean_stop(3, 200, b"\xff");
}

#[test]
fn damage_at_the_end_of_a_closed_segment_costs_its_batch_and_nothing_after() {
    let dir = tempfile::tempdir().unwrap();
    drop(filled(dir.path()));
    let logs = segments(dir.path());
    let bytes = std::fs::metadata(&logs[2]).unwrap().len();
    corrupt(&logs[2], bytes - 20, &[0xAB; 8]);
    for _ in 0..2 {
        // Found again at every start: the damaged bytes stay.
        let manager = LogManager::open(dir.path(), 0).unwrap();
        let partition = manager.partition("t", 0).unwrap();
        partition.set_sole_replica(true); // as the broker makes a single node's
        let damage = partition.log().damage();
        assert_eq!(damage.len(), 1, "{damage:?}");
        assert_eq!(damage[0].offsets.end - damage[0].offsets.start, PER_BATCH);
        assert_eq!(readable(&partition).len() as i64, RECORDS - PER_BATCH);
        assert_eq!(segments(dir.path()).len(), logs.len());
    }
}

#[test]
fn a_base_offset_overwritten_outside_the_crc_is_damage_not_a_batch_to_skip() {
    // The base offset of the first batch of the third segment, made negative.
    one_batch_lost_after_a_clean_stop(2, 0, &[0xFF]);
}
