//! Fuzzes the reader of producer-state snapshots (`<offset>.snapshot` in a partition
//! directory), which recovery trusts once their checksum matches. The input is read as is (the
//! checksum nearly always refuses it) and again with its checksum made right, so the fuzzer
//! reaches the entries. Whatever decodes must encode to bytes that decode and encode again to
//! the same bytes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_storage::reencode_producer_snapshot;

fuzz_target!(|data: &[u8]| {
    let _ = reencode_producer_snapshot(data);
    if data.len() < 6 {
        return;
    }
    let mut fixed = data.to_vec();
    let crc = crc32c::crc32c(&fixed[6..]);
    fixed[2..6].copy_from_slice(&crc.to_be_bytes());
    if let Ok(encoded) = reencode_producer_snapshot(&fixed) {
        assert_eq!(reencode_producer_snapshot(&encoded).as_ref(), Ok(&encoded));
    }
});
