//! Fuzzes what a bad disk can do to a segment: a log of three valid batches is written, then
//! the input patches it (pairs of a big-endian u16 position and a byte to store there; a
//! trailing odd byte cuts the file to that many sixteenths). Recovery (after a crash, and
//! after a clean stop) must not panic, and every read from the start, stepping over the damage
//! it reports, must return only batches whose CRC verifies, in offset order.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_record::testing::build_batch;
use sluice_record::{BatchIter, verify_checksum};
use sluice_storage::{AppendOrigin, Log, LogConfig, StorageError};

const SEGMENT: &str = "00000000000000000000.log";

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("p");
    {
        let mut log = Log::open(&path, LogConfig::default(), true, 0).expect("open");
        for first in [0i64, 3, 6] {
            let values: [&[u8]; 3] = [b"alpha", b"beta", b"gamma"];
            let batch = build_batch(0, &[first, first + 1, first + 2], &values);
            log.append(&batch, AppendOrigin::Client, 0).expect("append");
        }
    }
    let file = path.join(SEGMENT);
    let mut bytes = std::fs::read(&file).expect("read segment");
    for pair in data.chunks(3) {
        match pair {
            [hi, lo, value] => {
                let at = usize::from(u16::from_be_bytes([*hi, *lo])) % bytes.len();
                bytes[at] = *value;
            }
            [cut] | [cut, _] => {
                let keep = bytes.len() * usize::from(cut % 16) / 16;
                bytes.truncate(keep);
            }
            _ => {}
        }
    }
    std::fs::write(&file, &bytes).expect("write segment");
    for clean in [false, true] {
        let Ok(log) = Log::open(&path, LogConfig::default(), clean, 0) else {
            continue;
        };
        read_everything(&log);
    }
});

fn read_everything(log: &Log) {
    let mut next = log.log_start_offset();
    let mut steps = 0;
    while next < log.high_watermark() && steps < 64 {
        steps += 1;
        let read = log.read(next, 1 << 20, true).and_then(|plan| plan.read());
        match read {
            Ok(bytes) if bytes.is_empty() => break,
            Ok(bytes) => {
                for batch in BatchIter::new(&bytes) {
                    let (header, batch) = batch.expect("a read returns whole batches");
                    assert!(verify_checksum(batch).is_ok(), "a read served a bad batch");
                    assert!(header.last_offset() >= next, "offsets went back");
                    next = header.last_offset().saturating_add(1);
                }
            }
            Err(StorageError::Damaged(_)) => {
                match log.damage().iter().find(|d| d.offsets.contains(&next)) {
                    Some(d) => next = d.offsets.end,
                    None => break,
                }
            }
            Err(_) => break,
        }
    }
}
