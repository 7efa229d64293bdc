//! The one error type of the record crate.

/// What is wrong with a record batch. Every variant means "corrupt input"; callers map them
/// all to Kafka's `CORRUPT_MESSAGE` (or to a truncation point during recovery).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("batch truncated: need {needed} bytes, have {available}")]
    Truncated { needed: usize, available: usize },
    #[error("unsupported record batch magic {0} (only v2 is accepted)")]
    UnsupportedMagic(i8),
    #[error("batch length {0} is out of range")]
    BadLength(i64),
    #[error("batch CRC-32C mismatch: header says {stored:#010x}, content is {computed:#010x}")]
    CrcMismatch { stored: u32, computed: u32 },
    #[error("batch says {header} records but last offset delta is {last_offset_delta}")]
    RecordCountMismatch { header: i32, last_offset_delta: i32 },
    #[error("malformed record inside batch: {0}")]
    MalformedRecord(&'static str),
    #[error("unknown compression type {0}")]
    UnknownCompression(u8),
    #[error("cannot decompress batch: {0}")]
    Decompression(String),
    #[error("batch decompresses to more than {0} bytes")]
    DecompressedTooLarge(usize),
}
