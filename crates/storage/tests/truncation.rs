//! Truncation is durable and leaves a consistent log whatever a crash interrupts: the bytes a
//! cut removed may outlive a crash, and recovery must not take the divergent tail back; a log
//! emptied to start at a later offset stays so.

mod common;

use common::{batch_offsets as batches, config};
use sluice_record::testing::build_batch;
use sluice_storage::{AppendOrigin, Log};
use std::path::Path;

const SEGMENT: &str = "00000000000000000000.log";

fn append(log: &mut Log, n: i64) {
    for _ in 0..n / 5 {
        let at = log.log_end_offset();
        let values: Vec<Vec<u8>> = (at..at + 5).map(|i| format!("v{i}").into_bytes()).collect();
        let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
        log.append(&build_batch(0, &[at; 5], &refs), AppendOrigin::Client, at)
            .unwrap();
    }
}

fn open(dir: &Path) -> Log {
    Log::open(dir, config(&[]), false, 0).unwrap()
}

#[test]
fn a_crash_at_every_byte_of_a_truncation_cut_recovers_without_the_divergent_tail() {
    let dir = tempfile::tempdir().unwrap();
    let (full, kept_bytes) = {
        let mut log = open(dir.path());
        append(&mut log, 20);
        log.checkpoint(true).unwrap();
        log.become_leader(1).unwrap();
        append(&mut log, 20);
        log.checkpoint(true).unwrap();
        let full = std::fs::read(dir.path().join(SEGMENT)).unwrap();
        // A follower learns epoch 1 diverged from its leader at offset 20 and cuts there.
        log.truncate_to(20, 0).unwrap();
        assert_eq!(log.log_end_offset(), 20);
        assert_eq!(log.end_offset_for_epoch(0), (0, 20));
        let kept = std::fs::metadata(dir.path().join(SEGMENT)).unwrap().len() as usize;
        (full, kept)
    };
    let checkpoints: Vec<(String, Vec<u8>)> = ["recovery-point", "leader-epoch-checkpoint"]
        .iter()
        .map(|f| (f.to_string(), std::fs::read(dir.path().join(f)).unwrap()))
        .collect();
    // The cut's bytes outlived the crash up to every length between the cut and the old end.
    for len in kept_bytes..=full.len() {
        std::fs::write(dir.path().join(SEGMENT), &full[..len]).unwrap();
        for (file, bytes) in &checkpoints {
            std::fs::write(dir.path().join(file), bytes).unwrap();
        }
        let log = open(dir.path());
        assert_eq!(log.log_end_offset(), 20, "len {len}");
        assert_eq!(batches(&log).len(), 4, "len {len}");
        assert!(batches(&log).iter().all(|b| b.2 == 0), "len {len}");
        assert_eq!(log.leader_epoch(), 0);
    }
}

#[test]
fn a_log_emptied_to_start_at_an_offset_stays_so_across_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = open(dir.path());
        append(&mut log, 30);
        log.become_leader(2).unwrap();
        append(&mut log, 10);
        log.checkpoint(true).unwrap();
        log.truncate_fully_and_start_at(500, 0).unwrap();
        assert_eq!(
            (
                log.log_start_offset(),
                log.log_end_offset(),
                log.high_watermark()
            ),
            (500, 500, 500)
        );
        assert!(log.epoch_entries().is_empty());
        assert_eq!(log.segment_count(), 1);
        append(&mut log, 5);
        assert_eq!(batches(&log), [(500, 504, 2)]);
    }
    let log = open(dir.path());
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (500, 505));
    assert_eq!(batches(&log), [(500, 504, 2)]);
    assert_eq!(log.epoch_entries().len(), 1);
    let files: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".log") || n.ends_with(".snapshot"))
        .collect();
    assert!(
        files.iter().all(|n| n.starts_with("00000000000000000500")),
        "{files:?}"
    );
}
