//! Big-endian primitives of the internal records Sluice writes in Kafka's own layouts
//! (`__consumer_offsets`, `__transaction_state`): int8/16/32/64, `string` (an int16 length then
//! UTF-8 bytes; -1 is null), arrays (an int32 count). Decoding never panics, and every count is
//! checked against a limit and against the bytes left before anything is allocated.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("record truncated")]
    Truncated,
    #[error("unknown {what} version {version}")]
    UnknownVersion { what: &'static str, version: i16 },
    #[error("{what} of {len} exceeds the limit")]
    TooLong { what: &'static str, len: i64 },
    #[error("string is not UTF-8")]
    NotUtf8,
    #[error("record without a key")]
    NoKey,
    #[error("invalid {what}: {value}")]
    Invalid { what: &'static str, value: i64 },
}

pub fn put_i8(out: &mut Vec<u8>, v: i8) {
    out.extend_from_slice(&v.to_be_bytes());
}
pub fn put_i16(out: &mut Vec<u8>, v: i16) {
    out.extend_from_slice(&v.to_be_bytes());
}
pub fn put_i32(out: &mut Vec<u8>, v: i32) {
    out.extend_from_slice(&v.to_be_bytes());
}
pub fn put_i64(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// # Panics
/// On a string longer than `i16::MAX` bytes: every string written to an internal record is
/// bounded on its way in (ids, topic names, metadata), so that is a bug.
pub fn put_str(out: &mut Vec<u8>, s: &str) {
    let len = i16::try_from(s.len()).expect("strings in internal records are bounded");
    put_i16(out, len);
    out.extend_from_slice(s.as_bytes());
}

pub fn put_nullable_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => put_str(out, s),
        None => put_i16(out, -1),
    }
}

pub fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_i32(out, b.len() as i32);
    out.extend_from_slice(b);
}

/// Reads the primitives from a record's key or value.
pub struct Reader<'a>(pub &'a [u8]);

impl<'a> Reader<'a> {
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], FormatError> {
        if self.0.len() < n {
            return Err(FormatError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    pub fn i8(&mut self) -> Result<i8, FormatError> {
        Ok(i8::from_be_bytes(self.take(1)?.try_into().expect("1 byte")))
    }
    pub fn i16(&mut self) -> Result<i16, FormatError> {
        Ok(i16::from_be_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }
    pub fn i32(&mut self) -> Result<i32, FormatError> {
        Ok(i32::from_be_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    pub fn i64(&mut self) -> Result<i64, FormatError> {
        Ok(i64::from_be_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    pub fn nullable_string(&mut self) -> Result<Option<String>, FormatError> {
        let len = self.i16()?;
        if len < 0 {
            return Ok(None);
        }
        let raw = self.take(len as usize)?;
        String::from_utf8(raw.to_vec())
            .map(Some)
            .map_err(|_| FormatError::NotUtf8)
    }
    /// A string, null read as empty.
    pub fn string(&mut self) -> Result<String, FormatError> {
        Ok(self.nullable_string()?.unwrap_or_default())
    }
    /// An array count: non-negative, at most `max`, and no more elements than bytes left.
    pub fn count(&mut self, what: &'static str, max: usize) -> Result<usize, FormatError> {
        let n = self.i32()?;
        if n < 0 || n as usize > max || n as usize > self.0.len() {
            return Err(FormatError::TooLong {
                what,
                len: n.into(),
            });
        }
        Ok(n as usize)
    }
    /// A nullable array's count (-1: null, read as empty).
    pub fn nullable_count(&mut self, what: &'static str, max: usize) -> Result<usize, FormatError> {
        if self.0.len() >= 4 && i32::from_be_bytes(self.0[..4].try_into().expect("4 bytes")) == -1 {
            self.take(4)?;
            return Ok(0);
        }
        self.count(what, max)
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primitives_round_trip_and_truncation_is_an_error() {
        let mut out = Vec::new();
        put_i8(&mut out, -3);
        put_i16(&mut out, 300);
        put_i32(&mut out, -70_000);
        put_i64(&mut out, 1 << 40);
        put_str(&mut out, "héllo");
        put_nullable_str(&mut out, None);
        put_i32(&mut out, 2);
        let mut r = Reader(&out);
        assert_eq!(r.i8(), Ok(-3));
        assert_eq!(r.i16(), Ok(300));
        assert_eq!(r.i32(), Ok(-70_000));
        assert_eq!(r.i64(), Ok(1 << 40));
        assert_eq!(r.string().as_deref(), Ok("héllo"));
        assert_eq!(r.nullable_string(), Ok(None));
        // A count larger than the bytes left is refused before anything is allocated.
        assert!(matches!(r.count("x", 10), Err(FormatError::TooLong { .. })));
        assert!(r.is_empty());
        assert_eq!(Reader(&out[..5]).i64(), Err(FormatError::Truncated));
    }
}
