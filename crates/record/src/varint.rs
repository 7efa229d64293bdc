//! Zig-zag varints as used inside RecordBatch v2 records (the protobuf encoding).

use crate::RecordError;

/// Reads a zig-zag encoded signed varint of at most 10 bytes from the front of `buf`,
/// advancing it.
pub(crate) fn read_varlong(buf: &mut &[u8]) -> Result<i64, RecordError> {
    read_varlong_with(|| {
        let (&byte, rest) = buf
            .split_first()
            .ok_or(RecordError::MalformedRecord("varint runs past the end"))?;
        *buf = rest;
        Ok(byte)
    })
}

/// Reads a zig-zag varint of at most 10 bytes, a byte at a time from `next` (a slice, or a
/// streaming decoder: see `validate.rs`).
pub(crate) fn read_varlong_with(
    mut next: impl FnMut() -> Result<u8, RecordError>,
) -> Result<i64, RecordError> {
    let mut value: u64 = 0;
    for i in 0..10 {
        let byte = next()?;
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(((value >> 1) as i64) ^ -((value & 1) as i64));
        }
    }
    Err(RecordError::MalformedRecord("varint longer than 10 bytes"))
}

/// Reads a varint that must fit an i32 (lengths and counts).
pub(crate) fn read_varint(buf: &mut &[u8]) -> Result<i32, RecordError> {
    narrow(read_varlong(buf)?)
}

/// A varint that must fit an i32 (lengths and counts).
pub(crate) fn narrow(v: i64) -> Result<i32, RecordError> {
    i32::try_from(v).map_err(|_| RecordError::MalformedRecord("varint out of i32 range"))
}

/// Writes a zig-zag varint (used by the test builders).
pub(crate) fn write_varlong(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn varlong_round_trips(v in any::<i64>()) {
            let mut out = Vec::new();
            write_varlong(&mut out, v);
            let mut slice = out.as_slice();
            prop_assert_eq!(read_varlong(&mut slice).unwrap(), v);
            prop_assert!(slice.is_empty());
        }
    }
}
