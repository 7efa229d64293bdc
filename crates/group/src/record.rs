//! The records of `__consumer_offsets`, in Kafka's own layout so that Kafka's tools can read
//! them. Every integer is big-endian; `string` is an int16 length then UTF-8 bytes,
//! `nullable string` uses length -1 for null, `bytes` is an int32 length then the bytes,
//! `array` an int32 count then the elements.
//!
//! Key, offset commit (key version 1):
//! ```text
//! version     int16   1
//! group       string
//! topic       string
//! partition   int32
//! ```
//! Value, offset commit (value version 3); a null value (tombstone) deletes the offset:
//! ```text
//! version           int16   3
//! offset            int64
//! leader_epoch      int32   -1 when unknown
//! metadata          string
//! commit_timestamp  int64   ms since the epoch
//! ```
//! Key, group metadata (key version 2):
//! ```text
//! version     int16   2
//! group       string
//! ```
//! Value, group metadata (value version 3); a null value deletes the group:
//! ```text
//! version                  int16   3
//! protocol_type            string
//! generation               int32
//! protocol                 nullable string
//! leader                   nullable string
//! current_state_timestamp  int64
//! members                  array of:
//!   member_id              string
//!   group_instance_id      nullable string
//!   client_id              string
//!   client_host            string
//!   rebalance_timeout      int32   ms
//!   session_timeout        int32   ms
//!   subscription           bytes   the member's metadata for the chosen protocol
//!   assignment             bytes
//! ```
//! Key, KIP-848 consumer group snapshot (key version 100, Sluice's own: Kafka spreads the
//! same state over record types 3 to 8, which Sluice does not write):
//! ```text
//! version     int16   100
//! group       string
//! ```
//! Value (value version 1; version 0 lacks `subscribed_regex`); a null value deletes the group:
//! ```text
//! version             int16   1
//! group_epoch         int32
//! assignment_epoch    int32
//! partition_counts    array of (topic string, partitions int32)
//! target              array of (member_id string, assignment)
//! members             array of:
//!   member_id           string
//!   instance_id         nullable string
//!   rack_id             nullable string
//!   client_id           string
//!   client_host         string
//!   rebalance_timeout   int32   ms
//!   subscribed          array of string
//!   server_assignor     nullable string
//!   member_epoch        int32
//!   previous_epoch      int32
//!   assigned            assignment
//!   pending_revocation  assignment
//!   left_static         int8    1 when it left with epoch -2 and keeps its place
//!   subscribed_regex    nullable string
//! assignment := array of (topic string, partitions array of int32)
//! ```
//! Decoding checks every length against `sluice_types::limits` (and every element count
//! against the bytes left) before allocating.

use crate::types::Assignment;
use bytes::Bytes;
use sluice_types::limits::{
    GROUP_MEMBER_METADATA_BYTES_MAX, GROUP_MEMBERS_MAX, PARTITIONS_PER_TOPIC_MAX, TOPICS_MAX,
};
use sluice_types::wire::{Reader, put_bytes, put_i16, put_i32, put_nullable_str, put_str};
use std::collections::BTreeMap;

pub use sluice_types::wire::FormatError;

const KEY_OFFSET_COMMIT: i16 = 1;
const KEY_OFFSET_COMMIT_V0: i16 = 0;
const KEY_GROUP_METADATA: i16 = 2;
const KEY_CONSUMER_GROUP: i16 = 100;
/// Version 1 added each member's `subscribed_regex`.
const VALUE_CONSUMER_GROUP: i16 = 1;
const VALUE_OFFSET_COMMIT: i16 = 3;
const VALUE_GROUP_METADATA: i16 = 3;

/// One `__consumer_offsets` record, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OffsetsRecord {
    Offset {
        group: String,
        topic: String,
        partition: i32,
        /// `None`: the offset was deleted.
        value: Option<CommittedOffset>,
    },
    Group {
        group: String,
        /// `None`: the group was deleted.
        value: Option<GroupMetadata>,
    },
    ConsumerGroup {
        group: String,
        /// `None`: the group was deleted.
        value: Option<ConsumerGroupSnapshot>,
    },
}

/// Everything that survives a restart of a KIP-848 group.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConsumerGroupSnapshot {
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub partition_counts: BTreeMap<String, i32>,
    pub target: BTreeMap<String, Assignment>,
    pub members: Vec<ConsumerMemberSnapshot>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConsumerMemberSnapshot {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub subscribed: Vec<String>,
    pub server_assignor: Option<String>,
    pub member_epoch: i32,
    pub previous_epoch: i32,
    pub assigned: Assignment,
    pub pending_revocation: Assignment,
    pub left_static: bool,
    pub subscribed_regex: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
}

/// What survives a restart of a classic group: its generation and its members' assignments.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupMetadata {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub state_timestamp_ms: i64,
    pub members: Vec<MemberMetadata>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberMetadata {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub subscription: Bytes,
    pub assignment: Bytes,
}

impl OffsetsRecord {
    /// The record's key and value bytes (`None` value: a tombstone).
    pub fn encode(&self) -> (Vec<u8>, Option<Vec<u8>>) {
        let mut key = Vec::new();
        match self {
            OffsetsRecord::Offset {
                group,
                topic,
                partition,
                value,
            } => {
                put_i16(&mut key, KEY_OFFSET_COMMIT);
                put_str(&mut key, group);
                put_str(&mut key, topic);
                key.extend_from_slice(&partition.to_be_bytes());
                (key, value.as_ref().map(encode_offset))
            }
            OffsetsRecord::Group { group, value } => {
                put_i16(&mut key, KEY_GROUP_METADATA);
                put_str(&mut key, group);
                (key, value.as_ref().map(encode_group))
            }
            OffsetsRecord::ConsumerGroup { group, value } => {
                put_i16(&mut key, KEY_CONSUMER_GROUP);
                put_str(&mut key, group);
                (key, value.as_ref().map(encode_consumer_group))
            }
        }
    }

    pub fn decode(key: Option<&[u8]>, value: Option<&[u8]>) -> Result<Self, FormatError> {
        let mut k = Reader(key.ok_or(FormatError::NoKey)?);
        match k.i16()? {
            KEY_OFFSET_COMMIT | KEY_OFFSET_COMMIT_V0 => Ok(OffsetsRecord::Offset {
                group: k.string()?,
                topic: k.string()?,
                partition: k.i32()?,
                value: value.map(decode_offset).transpose()?,
            }),
            KEY_GROUP_METADATA => Ok(OffsetsRecord::Group {
                group: k.string()?,
                value: value.map(decode_group).transpose()?,
            }),
            KEY_CONSUMER_GROUP => Ok(OffsetsRecord::ConsumerGroup {
                group: k.string()?,
                value: value.map(decode_consumer_group).transpose()?,
            }),
            version => Err(FormatError::UnknownVersion {
                what: "key",
                version,
            }),
        }
    }

    pub fn group(&self) -> &str {
        match self {
            OffsetsRecord::Offset { group, .. }
            | OffsetsRecord::Group { group, .. }
            | OffsetsRecord::ConsumerGroup { group, .. } => group,
        }
    }
}

fn encode_offset(v: &CommittedOffset) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + v.metadata.len());
    put_i16(&mut out, VALUE_OFFSET_COMMIT);
    out.extend_from_slice(&v.offset.to_be_bytes());
    out.extend_from_slice(&v.leader_epoch.to_be_bytes());
    put_str(&mut out, &v.metadata);
    out.extend_from_slice(&v.commit_timestamp_ms.to_be_bytes());
    out
}

fn decode_offset(bytes: &[u8]) -> Result<CommittedOffset, FormatError> {
    let mut r = Reader(bytes);
    let version = r.i16()?;
    // Versions 1 and 2 (older Kafka) carry an expire timestamp and no leader epoch.
    match version {
        1..=3 => {}
        _ => {
            return Err(FormatError::UnknownVersion {
                what: "offset value",
                version,
            });
        }
    }
    let offset = r.i64()?;
    let leader_epoch = if version >= 3 { r.i32()? } else { -1 };
    let metadata = r.string()?;
    let commit_timestamp_ms = r.i64()?;
    Ok(CommittedOffset {
        offset,
        leader_epoch,
        metadata,
        commit_timestamp_ms,
    })
}

fn encode_group(g: &GroupMetadata) -> Vec<u8> {
    let mut out = Vec::new();
    put_i16(&mut out, VALUE_GROUP_METADATA);
    put_str(&mut out, &g.protocol_type);
    out.extend_from_slice(&g.generation.to_be_bytes());
    put_nullable_str(&mut out, g.protocol.as_deref());
    put_nullable_str(&mut out, g.leader.as_deref());
    out.extend_from_slice(&g.state_timestamp_ms.to_be_bytes());
    out.extend_from_slice(&(g.members.len() as i32).to_be_bytes());
    for m in &g.members {
        put_str(&mut out, &m.member_id);
        put_nullable_str(&mut out, m.group_instance_id.as_deref());
        put_str(&mut out, &m.client_id);
        put_str(&mut out, &m.client_host);
        out.extend_from_slice(&m.rebalance_timeout_ms.to_be_bytes());
        out.extend_from_slice(&m.session_timeout_ms.to_be_bytes());
        put_bytes(&mut out, &m.subscription);
        put_bytes(&mut out, &m.assignment);
    }
    out
}

fn decode_group(bytes: &[u8]) -> Result<GroupMetadata, FormatError> {
    let mut r = Reader(bytes);
    let version = r.i16()?;
    if version != VALUE_GROUP_METADATA {
        return Err(FormatError::UnknownVersion {
            what: "group value",
            version,
        });
    }
    let protocol_type = r.string()?;
    let generation = r.i32()?;
    let protocol = r.nullable_string()?;
    let leader = r.nullable_string()?;
    let state_timestamp_ms = r.i64()?;
    let count = r.i32()?;
    if !(0..=GROUP_MEMBERS_MAX as i32).contains(&count) {
        return Err(FormatError::TooLong {
            what: "member count",
            len: count.into(),
        });
    }
    let mut members = Vec::with_capacity(count as usize);
    for _ in 0..count {
        members.push(MemberMetadata {
            member_id: r.string()?,
            group_instance_id: r.nullable_string()?,
            client_id: r.string()?,
            client_host: r.string()?,
            rebalance_timeout_ms: r.i32()?,
            session_timeout_ms: r.i32()?,
            subscription: read_bytes(&mut r)?,
            assignment: read_bytes(&mut r)?,
        });
    }
    Ok(GroupMetadata {
        protocol_type,
        generation,
        protocol,
        leader,
        state_timestamp_ms,
        members,
    })
}

fn encode_consumer_group(g: &ConsumerGroupSnapshot) -> Vec<u8> {
    let mut out = Vec::new();
    put_i16(&mut out, VALUE_CONSUMER_GROUP);
    put_i32(&mut out, g.group_epoch);
    put_i32(&mut out, g.assignment_epoch);
    put_i32(&mut out, g.partition_counts.len() as i32);
    for (topic, count) in &g.partition_counts {
        put_str(&mut out, topic);
        put_i32(&mut out, *count);
    }
    put_i32(&mut out, g.target.len() as i32);
    for (member, assignment) in &g.target {
        put_str(&mut out, member);
        put_assignment(&mut out, assignment);
    }
    put_i32(&mut out, g.members.len() as i32);
    for m in &g.members {
        put_str(&mut out, &m.member_id);
        put_nullable_str(&mut out, m.instance_id.as_deref());
        put_nullable_str(&mut out, m.rack_id.as_deref());
        put_str(&mut out, &m.client_id);
        put_str(&mut out, &m.client_host);
        put_i32(&mut out, m.rebalance_timeout_ms);
        put_i32(&mut out, m.subscribed.len() as i32);
        for t in &m.subscribed {
            put_str(&mut out, t);
        }
        put_nullable_str(&mut out, m.server_assignor.as_deref());
        put_i32(&mut out, m.member_epoch);
        put_i32(&mut out, m.previous_epoch);
        put_assignment(&mut out, &m.assigned);
        put_assignment(&mut out, &m.pending_revocation);
        out.push(u8::from(m.left_static));
        put_nullable_str(&mut out, m.subscribed_regex.as_deref());
    }
    out
}

fn decode_consumer_group(bytes: &[u8]) -> Result<ConsumerGroupSnapshot, FormatError> {
    let mut r = Reader(bytes);
    let version = r.i16()?;
    if !(0..=VALUE_CONSUMER_GROUP).contains(&version) {
        return Err(FormatError::UnknownVersion {
            what: "consumer group value",
            version,
        });
    }
    let group_epoch = r.i32()?;
    let assignment_epoch = r.i32()?;
    let mut partition_counts = BTreeMap::new();
    for _ in 0..r.count("topic count", TOPICS_MAX)? {
        let topic = r.string()?;
        partition_counts.insert(topic, r.i32()?);
    }
    let mut target = BTreeMap::new();
    for _ in 0..r.count("target count", GROUP_MEMBERS_MAX)? {
        let member = r.string()?;
        target.insert(member, read_assignment(&mut r)?);
    }
    let mut members = Vec::new();
    for _ in 0..r.count("member count", GROUP_MEMBERS_MAX)? {
        let member_id = r.string()?;
        let instance_id = r.nullable_string()?;
        let rack_id = r.nullable_string()?;
        let client_id = r.string()?;
        let client_host = r.string()?;
        let rebalance_timeout_ms = r.i32()?;
        let mut subscribed = Vec::new();
        for _ in 0..r.count("subscription count", TOPICS_MAX)? {
            subscribed.push(r.string()?);
        }
        members.push(ConsumerMemberSnapshot {
            member_id,
            instance_id,
            rack_id,
            client_id,
            client_host,
            rebalance_timeout_ms,
            subscribed,
            server_assignor: r.nullable_string()?,
            member_epoch: r.i32()?,
            previous_epoch: r.i32()?,
            assigned: read_assignment(&mut r)?,
            pending_revocation: read_assignment(&mut r)?,
            left_static: r.take(1)?[0] != 0,
            subscribed_regex: if version >= 1 {
                r.nullable_string()?
            } else {
                None
            },
        });
    }
    Ok(ConsumerGroupSnapshot {
        group_epoch,
        assignment_epoch,
        partition_counts,
        target,
        members,
    })
}

fn put_assignment(out: &mut Vec<u8>, a: &Assignment) {
    put_i32(out, a.len() as i32);
    for (topic, partitions) in a {
        put_str(out, topic);
        put_i32(out, partitions.len() as i32);
        for p in partitions {
            put_i32(out, *p);
        }
    }
}

fn read_assignment(r: &mut Reader<'_>) -> Result<Assignment, FormatError> {
    let mut a = Assignment::new();
    for _ in 0..r.count("assigned topics", TOPICS_MAX)? {
        let topic = r.string()?;
        let mut partitions = std::collections::BTreeSet::new();
        for _ in 0..r.count("assigned partitions", PARTITIONS_PER_TOPIC_MAX as usize)? {
            partitions.insert(r.i32()?);
        }
        a.insert(topic, partitions);
    }
    Ok(a)
}

fn read_bytes(r: &mut Reader<'_>) -> Result<Bytes, FormatError> {
    let len = r.i32()?;
    if len < 0 {
        return Ok(Bytes::new());
    }
    if len as usize > GROUP_MEMBER_METADATA_BYTES_MAX {
        return Err(FormatError::TooLong {
            what: "member metadata",
            len: len.into(),
        });
    }
    Ok(Bytes::copy_from_slice(r.take(len as usize)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(r: OffsetsRecord) {
        let (key, value) = r.encode();
        assert_eq!(OffsetsRecord::decode(Some(&key), value.as_deref()), Ok(r));
    }

    #[test]
    fn records_round_trip() {
        round_trip(OffsetsRecord::Offset {
            group: "g".into(),
            topic: "t".into(),
            partition: 3,
            value: Some(CommittedOffset {
                offset: 42,
                leader_epoch: 0,
                metadata: "meta".into(),
                commit_timestamp_ms: 1_700_000_000_000,
            }),
        });
        round_trip(OffsetsRecord::Offset {
            group: "g".into(),
            topic: "t".into(),
            partition: 3,
            value: None,
        });
        round_trip(OffsetsRecord::Group {
            group: "g".into(),
            value: Some(GroupMetadata {
                protocol_type: "consumer".into(),
                generation: 5,
                protocol: Some("range".into()),
                leader: Some("m1".into()),
                state_timestamp_ms: 9,
                members: vec![MemberMetadata {
                    member_id: "m1".into(),
                    group_instance_id: Some("i1".into()),
                    client_id: "c".into(),
                    client_host: "/127.0.0.1".into(),
                    rebalance_timeout_ms: 300_000,
                    session_timeout_ms: 45_000,
                    subscription: Bytes::from_static(b"sub"),
                    assignment: Bytes::from_static(b"asg"),
                }],
            }),
        });
    }

    #[test]
    fn consumer_group_snapshots_round_trip() {
        let assignment: Assignment = [("t".to_string(), [0, 2].into_iter().collect())]
            .into_iter()
            .collect();
        round_trip(OffsetsRecord::ConsumerGroup {
            group: "g".into(),
            value: Some(ConsumerGroupSnapshot {
                group_epoch: 7,
                assignment_epoch: 7,
                partition_counts: [("t".to_string(), 3)].into_iter().collect(),
                target: [("m".to_string(), assignment.clone())]
                    .into_iter()
                    .collect(),
                members: vec![ConsumerMemberSnapshot {
                    member_id: "m".into(),
                    instance_id: Some("i".into()),
                    subscribed: vec!["t".into()],
                    member_epoch: 7,
                    previous_epoch: 6,
                    assigned: assignment,
                    left_static: true,
                    ..Default::default()
                }],
            }),
        });
        round_trip(OffsetsRecord::ConsumerGroup {
            group: "g".into(),
            value: None,
        });
    }

    #[test]
    fn offset_key_layout_is_kafkas() {
        let (key, _) = OffsetsRecord::Offset {
            group: "g".into(),
            topic: "t".into(),
            partition: 1,
            value: None,
        }
        .encode();
        assert_eq!(key, [0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 1]);
    }

    #[test]
    fn hostile_lengths_are_errors() {
        assert_eq!(
            OffsetsRecord::decode(Some(&[0, 2, 0, 9, b'g']), None),
            Err(FormatError::Truncated)
        );
        let mut value = vec![0, 3, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff];
        value.extend_from_slice(&[0; 8]);
        value.extend_from_slice(&i32::MAX.to_be_bytes());
        assert!(matches!(
            OffsetsRecord::decode(Some(&[0, 2, 0, 1, b'g']), Some(&value)),
            Err(FormatError::TooLong { .. })
        ));
        assert_eq!(OffsetsRecord::decode(None, None), Err(FormatError::NoKey));
    }
}
