//! Builders for tests, here and in other crates: well-formed uncompressed batches.

use crate::varint::write_varlong;
use crate::{HEADER_BYTES, LOG_OVERHEAD_BYTES};

const CRC_START: usize = 21;

/// Builds an uncompressed batch of `values`, each a record with no key and no headers.
pub fn build_batch(base_offset: i64, timestamps: &[i64], values: &[&[u8]]) -> Vec<u8> {
    assert_eq!(timestamps.len(), values.len());
    let base_ts = timestamps[0];
    let mut records = Vec::new();
    for (i, (ts, value)) in timestamps.iter().zip(values).enumerate() {
        let mut body = vec![0u8];
        write_varlong(&mut body, ts - base_ts);
        write_varlong(&mut body, i as i64);
        write_varlong(&mut body, -1);
        write_varlong(&mut body, value.len() as i64);
        body.extend_from_slice(value);
        write_varlong(&mut body, 0);
        write_varlong(&mut records, body.len() as i64);
        records.extend_from_slice(&body);
    }
    let mut b = Vec::new();
    b.extend_from_slice(&base_offset.to_be_bytes());
    b.extend_from_slice(
        &((HEADER_BYTES - LOG_OVERHEAD_BYTES + records.len()) as i32).to_be_bytes(),
    );
    b.extend_from_slice(&0i32.to_be_bytes());
    b.push(2);
    b.extend_from_slice(&[0; 4]);
    b.extend_from_slice(&0i16.to_be_bytes());
    b.extend_from_slice(&((values.len() - 1) as i32).to_be_bytes());
    b.extend_from_slice(&base_ts.to_be_bytes());
    b.extend_from_slice(&timestamps.iter().max().expect("non-empty").to_be_bytes());
    b.extend_from_slice(&(-1i64).to_be_bytes());
    b.extend_from_slice(&(-1i16).to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes());
    b.extend_from_slice(&(values.len() as i32).to_be_bytes());
    b.extend_from_slice(&records);
    let crc = crc32c::crc32c(&b[CRC_START..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}
