//! The Kafka wire protocol's outer layer: frames, request headers and response encoding.
//!
//! Message bodies are decoded and encoded by the pinned `kafka-protocol` crate (generated
//! from Kafka's message specs). This crate stands in front of it: it checks a frame's length
//! before anything is allocated for it, parses the request header without trusting the frame,
//! and encodes a response with the right header version (a Fetch response in pieces around its
//! record bytes, `fetch_frame.rs`). It does no I/O and knows nothing of storage or sockets.
//!
//! A frame on the wire:
//! ```text
//! length          i32 BE   bytes that follow; checked against socket.request.max.bytes
//! api_key         i16 BE   ┐
//! api_version     i16 BE   │ the request header (v1, or v2 with tagged fields for
//! correlation_id  i32 BE   │ flexible versions)
//! client_id       string   ┘
//! body            …        decoded by kafka-protocol for (api_key, api_version)
//! ```

mod fetch_frame;

pub use fetch_frame::encode_fetch_response;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};
use sluice_types::limits::RESPONSE_FRAME_BYTES_MAX;

/// Bytes of the length prefix of every frame.
pub const FRAME_LENGTH_BYTES: usize = 4;

/// Why a frame or message could not be understood. Each one closes the connection, as Kafka
/// does, except where the caller can still answer (an unsupported version).
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("frame of {length} bytes exceeds the limit of {max}")]
    FrameTooLarge { length: i64, max: u32 },
    #[error("frame length {0} is negative or too short for a request header")]
    FrameTooShort(i64),
    #[error("unknown API key {0}")]
    UnknownApiKey(i16),
    #[error("malformed {what}: {reason}")]
    Malformed { what: &'static str, reason: String },
}

/// Checks a frame's length prefix against `max` before the body is read or allocated.
pub fn frame_length(prefix: [u8; FRAME_LENGTH_BYTES], max: u32) -> Result<usize, ProtocolError> {
    let length = i64::from(i32::from_be_bytes(prefix));
    if length < 8 {
        return Err(ProtocolError::FrameTooShort(length));
    }
    if length > i64::from(max) {
        return Err(ProtocolError::FrameTooLarge { length, max });
    }
    Ok(length as usize)
}

/// A request whose header has been read; the body is still bytes.
#[derive(Debug)]
pub struct RequestFrame {
    pub api_key: ApiKey,
    pub header: RequestHeader,
    pub body: Bytes,
}

/// The api key, version and correlation id at the front of a frame, read without trusting
/// anything after them. Lets the broker answer "unsupported version" even when it cannot
/// decode the rest of the header.
pub fn peek_header(frame: &[u8]) -> Option<(i16, i16, i32)> {
    let key = i16::from_be_bytes(frame.get(0..2)?.try_into().ok()?);
    let version = i16::from_be_bytes(frame.get(2..4)?.try_into().ok()?);
    let correlation_id = i32::from_be_bytes(frame.get(4..8)?.try_into().ok()?);
    Some((key, version, correlation_id))
}

/// Parses the request header of a frame (length prefix already removed).
pub fn decode_request(mut frame: Bytes) -> Result<RequestFrame, ProtocolError> {
    let (key, version, _) =
        peek_header(&frame).ok_or(ProtocolError::FrameTooShort(frame.len() as i64))?;
    let api_key = ApiKey::try_from(key).map_err(|_| ProtocolError::UnknownApiKey(key))?;
    let header_version = api_key.request_header_version(version);
    let header = RequestHeader::decode(&mut frame, header_version).map_err(|e| {
        ProtocolError::Malformed {
            what: "request header",
            reason: e.to_string(),
        }
    })?;
    Ok(RequestFrame {
        api_key,
        header,
        body: frame,
    })
}

/// Decodes a request body of the given version. Bytes after the message are ignored, as
/// Kafka's own parser does: librdkafka's admin client, for one, sends a few.
pub fn decode_body<T: Decodable>(mut body: Bytes, version: i16) -> Result<T, ProtocolError> {
    let what = std::any::type_name::<T>()
        .rsplit("::")
        .next()
        .unwrap_or("request");
    T::decode(&mut body, version).map_err(|e| ProtocolError::Malformed {
        what: "request body",
        reason: format!("{what}: {e}"),
    })
}

/// Encodes a whole response frame: length prefix, response header, body.
pub fn encode_response<T: Encodable>(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &T,
) -> Result<Bytes, ProtocolError> {
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let header_version = api_key.response_header_version(version);
    encode_frame(
        "response",
        (&header, header_version),
        (body, version),
        RESPONSE_FRAME_BYTES_MAX,
    )
}

/// Encodes a whole request frame (the client side): length prefix, request header, body.
pub fn encode_request<T: Encodable>(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    client_id: &str,
    body: &T,
) -> Result<Bytes, ProtocolError> {
    let header = RequestHeader::default()
        .with_request_api_key(api_key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(client_id.to_string().into()));
    let header_version = api_key.request_header_version(version);
    encode_frame(
        "request",
        (&header, header_version),
        (body, version),
        i32::MAX as u32,
    )
}

/// A length prefix, then `header` and `body`, each at its version. A frame over `max` bytes
/// is refused once its size is computed, before anything is allocated for it.
fn encode_frame(
    what: &'static str,
    (header, header_version): (&impl Encodable, i16),
    (body, version): (&impl Encodable, i16),
    max: u32,
) -> Result<Bytes, ProtocolError> {
    let fail = |e: anyhow::Error| ProtocolError::Malformed {
        what,
        reason: e.to_string(),
    };
    let size = header.compute_size(header_version).map_err(fail)?
        + body.compute_size(version).map_err(fail)?;
    if size > max as usize {
        return Err(ProtocolError::FrameTooLarge {
            length: size as i64,
            max,
        });
    }
    let mut out = BytesMut::with_capacity(FRAME_LENGTH_BYTES + size);
    out.put_i32(size as i32);
    header.encode(&mut out, header_version).map_err(fail)?;
    body.encode(&mut out, version).map_err(fail)?;
    Ok(out.freeze())
}

/// Decodes a response frame (length prefix already removed) of `api_key` at `version`:
/// the correlation id from its header, and the body.
pub fn decode_response<T: Decodable>(
    mut frame: Bytes,
    api_key: ApiKey,
    version: i16,
) -> Result<(i32, T), ProtocolError> {
    let header_version = api_key.response_header_version(version);
    let header = ResponseHeader::decode(&mut frame, header_version).map_err(|e| {
        ProtocolError::Malformed {
            what: "response header",
            reason: e.to_string(),
        }
    })?;
    let what = std::any::type_name::<T>()
        .rsplit("::")
        .next()
        .unwrap_or("response");
    let body = T::decode(&mut frame, version).map_err(|e| ProtocolError::Malformed {
        what: "response body",
        reason: format!("{what}: {e}"),
    })?;
    Ok((header.correlation_id, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_over_the_limit_is_refused_before_it_is_encoded() {
        use kafka_protocol::messages::DescribeGroupsResponse;
        use kafka_protocol::messages::describe_groups_response::{
            DescribedGroup, DescribedGroupMember,
        };
        let big = Bytes::from(vec![0u8; RESPONSE_FRAME_BYTES_MAX as usize]);
        let member = DescribedGroupMember::default().with_member_metadata(big);
        let response = DescribeGroupsResponse::default()
            .with_groups(vec![DescribedGroup::default().with_members(vec![member])]);
        match encode_response(ApiKey::DescribeGroups, 5, 1, &response) {
            Err(ProtocolError::FrameTooLarge { length, max }) => {
                assert!(length > i64::from(max));
            }
            other => panic!("encoded anyway: {:?}", other.map(|b| b.len())),
        }
        let small = DescribeGroupsResponse::default();
        assert!(encode_response(ApiKey::DescribeGroups, 5, 1, &small).is_ok());
    }
    use kafka_protocol::messages::{ApiVersionsRequest, MetadataRequest};
    use kafka_protocol::protocol::StrBytes;

    fn request_frame(key: ApiKey, version: i16, body: &impl Encodable) -> Bytes {
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(42)
            .with_client_id(Some(StrBytes::from_static_str("test")));
        let mut out = BytesMut::new();
        header
            .encode(&mut out, key.request_header_version(version))
            .unwrap();
        body.encode(&mut out, version).unwrap();
        out.freeze()
    }

    #[test]
    fn frame_lengths_are_checked_before_allocation() {
        assert_eq!(frame_length(100i32.to_be_bytes(), 1000).unwrap(), 100);
        assert!(matches!(
            frame_length(1001i32.to_be_bytes(), 1000),
            Err(ProtocolError::FrameTooLarge { .. })
        ));
        assert!(matches!(
            frame_length((-5i32).to_be_bytes(), 1000),
            Err(ProtocolError::FrameTooShort(_))
        ));
    }

    #[test]
    fn headers_and_bodies_decode_for_flexible_and_classic_versions() {
        for version in [0i16, 9, 12] {
            let frame = request_frame(ApiKey::Metadata, version, &MetadataRequest::default());
            let request = decode_request(frame).unwrap();
            assert_eq!(request.header.correlation_id, 42);
            assert_eq!(request.api_key, ApiKey::Metadata);
            decode_body::<MetadataRequest>(request.body, version).unwrap();
        }
    }

    #[test]
    fn trailing_bytes_are_tolerated_and_unknown_keys_are_errors() {
        let mut frame = BytesMut::from(
            &request_frame(ApiKey::ApiVersions, 0, &ApiVersionsRequest::default())[..],
        );
        frame.put_u8(0);
        let request = decode_request(frame.freeze()).unwrap();
        assert!(decode_body::<ApiVersionsRequest>(request.body, 0).is_ok());
        let one_topic = MetadataRequest::default().with_topics(Some(vec![Default::default()]));
        let full = request_frame(ApiKey::Metadata, 1, &one_topic);
        let request = decode_request(full.slice(..full.len() - 1)).unwrap();
        assert!(
            decode_body::<MetadataRequest>(request.body, 1).is_err(),
            "a truncated body is an error"
        );
        let mut unknown = BytesMut::new();
        unknown.put_i16(9999);
        unknown.put_i16(0);
        unknown.put_i32(1);
        assert!(matches!(
            decode_request(unknown.freeze()),
            Err(ProtocolError::UnknownApiKey(9999))
        ));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
            if let Ok(request) = decode_request(Bytes::from(data)) {
                let _ = decode_body::<MetadataRequest>(request.body, request.header.request_api_version.clamp(0, 12));
            }
        }
    }
}
