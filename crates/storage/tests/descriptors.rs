//! A log of any length holds a bounded number of descriptors: closed, fsynced segments keep no
//! file open, and those opened to be read stay in a bounded cache. (Its own test binary, so
//! the process's descriptor count is this test's alone.)

use sluice_record::BatchIter;
use sluice_record::testing::build_batch;
use sluice_storage::{AppendOrigin, Log, LogConfig};
use sluice_types::limits::SEGMENT_FILES_OPEN_MAX;
use std::collections::BTreeMap;

const SEGMENTS: i64 = 1_000;

fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn config() -> LogConfig {
    let overrides = BTreeMap::from([("segment.bytes".to_string(), "100".to_string())]);
    LogConfig::from_overrides(&overrides).unwrap()
}

#[test]
fn a_thousand_segments_hold_a_bounded_number_of_descriptors() {
    let before = open_descriptors();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p");
    {
        let mut log = Log::open(&path, config(), true, 0).unwrap();
        for i in 0..SEGMENTS {
            let value = format!("value-{i}");
            let batch = build_batch(0, &[i], &[value.as_bytes()]);
            log.append(&batch, AppendOrigin::Client, 0).unwrap();
        }
        assert_eq!(log.segment_count() as i64, SEGMENTS);
        let plan = log.flush_plan().unwrap();
        plan.execute().unwrap();
        log.mark_flushed(&plan, 0);
        drop(plan);
        let held = open_descriptors() - before;
        assert!(held < 32, "{held} descriptors held by a flushed log");
    }
    // After a crash (no clean shutdown), recovery opens every segment once, then lets go.
    let log = Log::open(&path, config(), false, 0).unwrap();
    assert!(open_descriptors() - before < 32);
    let mut next = 0;
    while next < log.high_watermark() {
        let bytes = log.read(next, 1 << 20, true).unwrap().read().unwrap();
        for batch in BatchIter::new(&bytes) {
            next = batch.unwrap().0.last_offset() + 1;
        }
        let held = open_descriptors() - before;
        assert!(
            held <= SEGMENT_FILES_OPEN_MAX + 32,
            "{held} descriptors while reading"
        );
    }
    assert_eq!(next, SEGMENTS);
}
