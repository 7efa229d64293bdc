//! The Kafka RecordBatch v2 format, shared by the wire and the disk.
//!
//! Sluice stores batches exactly as producers send them; this crate is the only place that
//! knows their layout. It parses and checks headers, verifies CRC-32C, iterates over a run of
//! batches, and (for the rare paths that need individual records, such as a lookup by
//! timestamp) decompresses and walks records. It builds batches only for records the broker
//! writes itself. It does no I/O and knows nothing of API messages.

mod batch;
mod build;
mod codec;
mod control;
mod error;
mod records;
mod retain;
mod validate;
mod varint;

pub use batch::{
    BatchHeader, BatchIter, Compression, HEADER_BYTES, LOG_OVERHEAD_BYTES, MAGIC_V2,
    validate_batch, validate_batch_records, verify_checksum,
};
pub use validate::RecordsSummary;

#[doc(hidden)]
pub mod testing;
pub use build::{
    NewRecord, encode_batch, encode_batch_with_timestamps, encode_records,
    encode_records_compressed, stamp_producer,
};
pub use control::{ControlMarker, encode_marker_batch, read_marker};
pub use error::RecordError;
pub use records::{Record, RecordHeader, decode_records};
pub use retain::{Retained, retain_records};
