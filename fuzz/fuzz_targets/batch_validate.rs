//! Fuzzes record-batch checking and decoding: what the broker runs on every produced batch,
//! what recovery runs on every stored one, and record decoding (with decompression) used by
//! timestamp lookups.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_record::{BatchIter, decode_records, validate_batch, verify_checksum};

fuzz_target!(|data: &[u8]| {
    let _ = validate_batch(data);
    let _ = verify_checksum(data);
    for item in BatchIter::new(data) {
        let Ok((_, batch)) = item else { break };
        let _ = decode_records(batch, |_| true);
    }
    // Also with a fixed CRC, so the fuzzer reaches past the checksum into the records.
    if data.len() >= 61 {
        let mut fixed = data.to_vec();
        let crc = crc32c_of(&fixed[21..]);
        fixed[17..21].copy_from_slice(&crc.to_be_bytes());
        let _ = validate_batch(&fixed);
        let _ = decode_records(&fixed, |_| true);
    }
});

fn crc32c_of(bytes: &[u8]) -> u32 {
    // CRC-32C (Castagnoli), bitwise: slow but dependency-free and only for the fuzzer.
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0x82F6_3B78 } else { crc >> 1 };
        }
    }
    !crc
}
