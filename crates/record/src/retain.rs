//! Rewriting a stored batch with some of its records removed: what log compaction does.
//!
//! The new batch keeps everything that identifies the original (base offset, last offset
//! delta, leader epoch, producer id, epoch and base sequence, timestamp type, transactional
//! and control bits) and each kept record keeps its offset and timestamp; only the record
//! count, the max timestamp and the CRC change. It is written uncompressed: compaction trades
//! some bytes for not recompressing.

use crate::build::{write_header, write_record};
use crate::records::Record;
use crate::{BatchHeader, RecordError, decode_records};

/// Attribute bits that name the compression codec.
const COMPRESSION_BITS: i16 = 0x07;

/// What was left of a batch.
#[derive(Debug, PartialEq, Eq)]
pub enum Retained {
    /// Every record stays: keep the original bytes.
    All,
    /// No record stays: drop the batch.
    Nothing,
    /// Some stay: the rewritten batch.
    Some(Vec<u8>),
}

/// Decodes `batch` and keeps the records for which `keep` is true.
pub fn retain_records(
    batch: &[u8],
    mut keep: impl FnMut(&Record<'_>) -> bool,
) -> Result<Retained, RecordError> {
    let original = BatchHeader::parse(batch)?;
    let mut body = Vec::new();
    let (mut total, mut kept) = (0usize, 0i32);
    let mut max_timestamp = i64::MIN;
    decode_records(batch, |record| {
        total += 1;
        if keep(&record) {
            kept += 1;
            max_timestamp = max_timestamp.max(record.timestamp);
            write_record(&mut body, &original, &record);
        }
        true
    })?;
    if kept as usize == total {
        return Ok(Retained::All);
    }
    if kept == 0 {
        return Ok(Retained::Nothing);
    }
    let header = BatchHeader {
        attributes: original.attributes & !COMPRESSION_BITS,
        max_timestamp,
        records_count: kept,
        ..original
    };
    Ok(Retained::Some(write_header(&header, &body)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::{NewRecord, encode_batch_with_timestamps};
    use crate::verify_checksum;

    #[test]
    fn kept_records_keep_their_offsets_timestamps_and_the_batch_its_span() {
        let records = [
            NewRecord {
                key: Some(b"a"),
                value: Some(b"1"),
            },
            NewRecord {
                key: Some(b"b"),
                value: Some(b"2"),
            },
            NewRecord {
                key: Some(b"a"),
                value: None,
            },
        ];
        let batch = encode_batch_with_timestamps(100, &[10, 20, 30], &records);
        let Retained::Some(rewritten) = retain_records(&batch, |r| r.offset != 100).unwrap() else {
            panic!("expected a rewritten batch");
        };
        let header = verify_checksum(&rewritten).expect("a valid CRC");
        assert_eq!((header.base_offset, header.last_offset()), (100, 102));
        assert_eq!((header.records_count, header.max_timestamp), (2, 30));
        let mut seen = Vec::new();
        decode_records(&rewritten, |r| {
            seen.push((
                r.offset,
                r.timestamp,
                r.key.map(<[u8]>::to_vec),
                r.value.is_none(),
            ));
            true
        })
        .unwrap();
        assert_eq!(
            seen,
            vec![
                (101, 20, Some(b"b".to_vec()), false),
                (102, 30, Some(b"a".to_vec()), true)
            ]
        );
        assert_eq!(retain_records(&batch, |_| true).unwrap(), Retained::All);
        assert_eq!(
            retain_records(&batch, |_| false).unwrap(),
            Retained::Nothing
        );
    }
}
