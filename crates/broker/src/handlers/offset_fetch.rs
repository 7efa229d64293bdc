//! OffsetFetch (v1–v9): one group (v1–v7) or many (v8+), named partitions or, with null
//! topics, everything the group committed. Partitions without a commit answer offset -1.
//! With `require_stable` (v7+, KIP-447), a partition for which an open transaction holds an
//! offset answers UNSTABLE_OFFSET_COMMIT and the client retries until the transaction ends,
//! so a consumer taking over a partition never starts from an offset about to be replaced.
//! From v9 a KIP-848 member names itself and must hold its current member epoch.

use super::{first_of_each, now};
use crate::error::group_code;
use crate::groups::Groups;
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use sluice_group::FetchedOffset;
use sluice_group::GroupError;
use std::sync::Arc;

type Wanted = Option<Vec<(String, Vec<i32>)>>;

pub(crate) fn handle(
    groups: &Arc<Groups>,
    request: OffsetFetchRequest,
    version: i16,
) -> std::future::Ready<Option<OffsetFetchResponse>> {
    let require_stable = version >= 7 && request.require_stable;
    let fetch = |group: &str, wanted: &Wanted| {
        let offsets = groups.read(group, |c| c.fetch_offsets(group, wanted.as_deref()));
        offsets.map(|offsets| {
            offsets
                .into_iter()
                .map(|o| Answer::of(o, require_stable))
                .collect::<Vec<_>>()
        })
    };
    if version >= 8 {
        let groups = first_of_each(&request.groups, |g| &g.group_id)
            .into_iter()
            .map(|g| {
                if let Some(member) = g.member_id.as_ref().filter(|_| version >= 9) {
                    let checked = groups.read(&g.group_id.0, |c| {
                        c.check_fetching_member(&g.group_id.0, member, g.member_epoch)
                    });
                    if let Err(e) = checked {
                        return OffsetFetchResponseGroup::default()
                            .with_group_id(g.group_id.clone())
                            .with_error_code(group_code(Some(&e)));
                    }
                }
                let wanted: Wanted = g.topics.as_ref().map(|ts| {
                    ts.iter()
                        .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
                        .collect()
                });
                let found = match fetch(&g.group_id.0, &wanted) {
                    Ok(found) => found,
                    Err(e) => {
                        return OffsetFetchResponseGroup::default()
                            .with_group_id(g.group_id.clone())
                            .with_error_code(group_code(Some(&e)));
                    }
                };
                let topics = by_topic(found)
                    .into_iter()
                    .map(|(name, offsets)| {
                        let partitions = offsets
                            .into_iter()
                            .map(|Answer(o, error_code)| {
                                OffsetFetchResponsePartitions::default()
                                    .with_partition_index(o.partition)
                                    .with_committed_offset(o.offset)
                                    .with_committed_leader_epoch(o.leader_epoch)
                                    .with_metadata(Some(StrBytes::from_string(o.metadata)))
                                    .with_error_code(error_code)
                            })
                            .collect();
                        OffsetFetchResponseTopics::default()
                            .with_name(name)
                            .with_partitions(partitions)
                    })
                    .collect();
                OffsetFetchResponseGroup::default()
                    .with_group_id(g.group_id.clone())
                    .with_topics(topics)
            })
            .collect();
        return now(OffsetFetchResponse::default().with_groups(groups));
    }
    let wanted: Wanted = request.topics.as_ref().map(|ts| {
        ts.iter()
            .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
            .collect()
    });
    let found = match fetch(&request.group_id.0, &wanted) {
        Ok(found) => found,
        Err(e) => return now(OffsetFetchResponse::default().with_error_code(group_code(Some(&e)))),
    };
    let topics = by_topic(found)
        .into_iter()
        .map(|(name, offsets)| {
            let partitions = offsets
                .into_iter()
                .map(|Answer(o, error_code)| {
                    let mut p = OffsetFetchResponsePartition::default()
                        .with_partition_index(o.partition)
                        .with_committed_offset(o.offset)
                        .with_metadata(Some(StrBytes::from_string(o.metadata)))
                        .with_error_code(error_code);
                    if version >= 5 {
                        p.committed_leader_epoch = o.leader_epoch;
                    }
                    p
                })
                .collect();
            OffsetFetchResponseTopic::default()
                .with_name(name)
                .with_partitions(partitions)
        })
        .collect();
    now(OffsetFetchResponse::default().with_topics(topics))
}

/// One partition's answer: the offset to report and its error code.
struct Answer(FetchedOffset, i16);

impl Answer {
    /// A partition with a pending transactional offset answers, when the request requires a
    /// stable offset, as Kafka does: no offset, no epoch, no metadata, UNSTABLE_OFFSET_COMMIT.
    fn of(o: FetchedOffset, require_stable: bool) -> Answer {
        if !(require_stable && o.unstable) {
            return Answer(o, 0);
        }
        let unstable = FetchedOffset {
            offset: -1,
            leader_epoch: -1,
            metadata: String::new(),
            ..o
        };
        Answer(
            unstable,
            group_code(Some(&GroupError::UnstableOffsetCommit)),
        )
    }
}

/// Groups answers by topic, keeping the order topics first appear in.
fn by_topic(offsets: Vec<Answer>) -> Vec<(TopicName, Vec<Answer>)> {
    let mut out: Vec<(TopicName, Vec<Answer>)> = Vec::new();
    for a in offsets {
        match out
            .iter_mut()
            .find(|(name, _)| name.0.as_str() == a.0.topic)
        {
            Some((_, list)) => list.push(a),
            None => out.push((TopicName(StrBytes::from_string(a.0.topic.clone())), vec![a])),
        }
    }
    out
}
