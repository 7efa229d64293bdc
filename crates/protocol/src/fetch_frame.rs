//! A Fetch response as pieces around its record bytes, so the broker sends the records it read
//! without copying them into a response buffer first (the whole response then exists once in
//! memory, not twice: on a consume of large batches this halves the broker's peak).
//!
//! Every field except the records is encoded by `kafka-protocol` as usual, into one small
//! frame in which each partition's records are empty. A partition's records field is its
//! length prefix and then its bytes, so the pieces are: the small frame up to a prefix, the
//! real prefix, the records (the same `Bytes` storage read), the small frame up to the next
//! prefix, and so on. The prefixes are found by encoding the small frame twice, once with
//! empty records and once with none: the two differ exactly there (`0x00000000` against
//! `0xffffffff` before v12, the compact `0x01` against `0x00` from v12), and nowhere else.
//! The pieces joined are byte for byte `encode_response`'s frame (a property test says so).

use crate::{FRAME_LENGTH_BYTES, ProtocolError, encode_response};
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, FetchResponse};

/// The version from which Fetch is flexible: records are compact bytes (uvarint length + 1).
const FLEXIBLE_FROM: i16 = 12;

/// Encodes `response` as a whole frame (length prefix, header, body) in pieces that hold each
/// partition's record bytes as they are. Refused over `max` bytes before anything is
/// encoded, as `encode_response` refuses.
pub fn encode_fetch_response(
    version: i16,
    correlation_id: i32,
    mut response: FetchResponse,
    max: u32,
) -> Result<Vec<Bytes>, ProtocolError> {
    let records = take_records(&mut response);
    let small = encode_response(ApiKey::Fetch, version, correlation_id, &response)?;
    if records.is_empty() {
        // No partition has records (a long poll that timed out): the frame is whole already.
        return Ok(vec![small]);
    }
    let flexible = version >= FLEXIBLE_FROM;
    let size = small.len() - FRAME_LENGTH_BYTES
        + records
            .iter()
            .map(|r| r.len() + prefix_bytes(r.len(), flexible) - prefix_bytes(0, flexible))
            .sum::<usize>();
    if size > max as usize {
        return Err(ProtocolError::FrameTooLarge {
            length: size as i64,
            max,
        });
    }
    set_all_records(&mut response, None);
    let nulls = encode_response(ApiKey::Fetch, version, correlation_id, &response)?;
    let positions = prefix_positions(&small, &nulls, flexible);
    if positions.len() != records.len() || small.len() != nulls.len() {
        return Err(ProtocolError::Malformed {
            what: "fetch response",
            reason: format!(
                "{} record prefixes found for {} partitions with records",
                positions.len(),
                records.len()
            ),
        });
    }
    let mut pieces = Vec::with_capacity(3 * records.len() + 2);
    let mut length = BytesMut::with_capacity(FRAME_LENGTH_BYTES);
    length.put_i32(size as i32);
    pieces.push(length.freeze());
    let mut cursor = FRAME_LENGTH_BYTES;
    let empty_prefix = prefix_bytes(0, flexible);
    for (position, bytes) in positions.into_iter().zip(records) {
        pieces.push(small.slice(cursor..position));
        pieces.push(prefix(bytes.len(), flexible));
        pieces.push(bytes);
        cursor = position + empty_prefix;
    }
    pieces.push(small.slice(cursor..));
    pieces.retain(|piece| !piece.is_empty());
    Ok(pieces)
}

/// Takes every partition's records out, in encoding order, leaving empty records where there
/// were some (and none where there were none).
fn take_records(response: &mut FetchResponse) -> Vec<Bytes> {
    let mut taken = Vec::new();
    for topic in &mut response.responses {
        for partition in &mut topic.partitions {
            if let Some(records) = partition.records.as_mut() {
                taken.push(std::mem::take(records));
            }
        }
    }
    taken
}

fn set_all_records(response: &mut FetchResponse, records: Option<Bytes>) {
    for topic in &mut response.responses {
        for partition in &mut topic.partitions {
            if partition.records.is_some() {
                partition.records = records.clone();
            }
        }
    }
}

/// Where the two encodings differ: the start of each differing run, which is a records
/// length prefix (`empty` encodes empty records, `nulls` none).
fn prefix_positions(empty: &[u8], nulls: &[u8], flexible: bool) -> Vec<usize> {
    let width = prefix_bytes(0, flexible);
    let mut positions = Vec::new();
    let mut at = 0;
    while at < empty.len().min(nulls.len()) {
        if empty[at] != nulls[at] {
            positions.push(at);
            at += width;
        } else {
            at += 1;
        }
    }
    positions
}

/// The length prefix of `len` bytes of records.
fn prefix(len: usize, flexible: bool) -> Bytes {
    let mut out = BytesMut::with_capacity(5);
    if flexible {
        let mut value = len as u64 + 1;
        while value >= 0x80 {
            out.put_u8((value as u8 & 0x7f) | 0x80);
            value >>= 7;
        }
        out.put_u8(value as u8);
    } else {
        out.put_i32(len as i32);
    }
    out.freeze()
}

fn prefix_bytes(len: usize, flexible: bool) -> usize {
    if !flexible {
        return 4;
    }
    let mut value = len as u64 + 1;
    let mut bytes = 1;
    while value >= 0x80 {
        value >>= 7;
        bytes += 1;
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::fetch_response::{
        AbortedTransaction, FetchableTopicResponse, PartitionData,
    };
    use kafka_protocol::messages::{ProducerId, TopicName};
    use kafka_protocol::protocol::StrBytes;
    use proptest::prelude::*;

    fn response(topics: Vec<Vec<Option<Vec<u8>>>>, aborted: bool) -> FetchResponse {
        let responses = topics
            .into_iter()
            .enumerate()
            .map(|(t, partitions)| {
                let partitions = partitions
                    .into_iter()
                    .enumerate()
                    .map(|(p, records)| {
                        let mut data = PartitionData::default()
                            .with_partition_index(p as i32)
                            .with_high_watermark(1000 + p as i64)
                            .with_records(records.map(Bytes::from));
                        if aborted {
                            data = data.with_aborted_transactions(Some(vec![
                                AbortedTransaction::default()
                                    .with_producer_id(ProducerId(7))
                                    .with_first_offset(3),
                            ]));
                        }
                        data
                    })
                    .collect();
                FetchableTopicResponse::default()
                    .with_topic(TopicName(StrBytes::from_string(format!("topic-{t}"))))
                    .with_partitions(partitions)
            })
            .collect();
        FetchResponse::default()
            .with_throttle_time_ms(0)
            .with_responses(responses)
    }

    fn joined(pieces: &[Bytes]) -> Vec<u8> {
        pieces.iter().flat_map(|p| p.iter().copied()).collect()
    }

    proptest! {
        #[test]
        fn the_pieces_are_the_whole_frame(
            topics in prop::collection::vec(
                prop::collection::vec(
                    prop::option::of(prop::collection::vec(any::<u8>(), 0..300)),
                    0..4,
                ),
                0..4,
            ),
            version in 4i16..=12,
            aborted in any::<bool>(),
            correlation_id in any::<i32>(),
        ) {
            let whole = response(topics, aborted);
            let expected =
                encode_response(ApiKey::Fetch, version, correlation_id, &whole).unwrap();
            let pieces =
                encode_fetch_response(version, correlation_id, whole, u32::MAX).unwrap();
            prop_assert_eq!(joined(&pieces), expected.to_vec());
        }
    }

    #[test]
    fn large_records_are_sent_as_they_are() {
        let records = vec![0xabu8; 200_000];
        for version in [4, 11, 12] {
            let whole = response(vec![vec![Some(records.clone()), None]], false);
            let expected = encode_response(ApiKey::Fetch, version, 1, &whole).unwrap();
            let pieces = encode_fetch_response(version, 1, whole, u32::MAX).unwrap();
            assert_eq!(joined(&pieces), expected.to_vec(), "v{version}");
            assert!(
                pieces.iter().any(|p| p.len() == records.len()),
                "the records are one piece of their own"
            );
        }
    }

    #[test]
    fn a_response_over_the_limit_is_refused() {
        let whole = response(vec![vec![Some(vec![1u8; 10_000])]], false);
        let refused = encode_fetch_response(12, 1, whole, 5_000);
        assert!(matches!(refused, Err(ProtocolError::FrameTooLarge { .. })));
    }
}
