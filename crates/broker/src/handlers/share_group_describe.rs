//! ShareGroupDescribe (v1): share groups with their epochs, members and assignments. A group
//! id that is not a share group gets GROUP_ID_NOT_FOUND.

use super::{first_of_each, now};
use crate::error::group_code;
use crate::server::Broker;
use kafka_protocol::messages::share_group_describe_response::{
    Assignment, DescribedGroup, Member, TopicPartitions,
};
use kafka_protocol::messages::{ShareGroupDescribeRequest, ShareGroupDescribeResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use sluice_group::GroupError;
use std::sync::Arc;

/// Kafka's "no operations were asked for" value of `authorized_operations`.
const OPERATIONS_NOT_ASKED: i32 = i32::MIN;

pub(crate) fn handle(
    broker: &Arc<Broker>,
    request: ShareGroupDescribeRequest,
    _version: i16,
) -> std::future::Ready<Option<ShareGroupDescribeResponse>> {
    let image = broker.published_image();
    let assignment = |a: sluice_group::Assignment| {
        let topic_partitions = a
            .into_iter()
            .filter_map(|(topic, ps)| {
                let topic_id = image.topic(&topic)?.topic_id;
                Some(
                    TopicPartitions::default()
                        .with_topic_id(topic_id)
                        .with_topic_name(TopicName(StrBytes::from_string(topic)))
                        .with_partitions(ps.into_iter().collect()),
                )
            })
            .collect();
        Assignment::default().with_topic_partitions(topic_partitions)
    };
    let groups = first_of_each(request.group_ids, |id| id.0.clone())
        .into_iter()
        .map(|id| {
            let described = broker
                .groups()
                .read(&id.0, |c| c.describe_share_group(&id.0));
            let d = match described {
                Ok(Some(d)) => d,
                Err(e) => {
                    return DescribedGroup::default()
                        .with_group_id(id)
                        .with_error_code(group_code(Some(&e)));
                }
                Ok(None) => {
                    return DescribedGroup::default()
                        .with_group_id(id)
                        .with_error_code(group_code(Some(&GroupError::GroupIdNotFound)))
                        .with_group_state(StrBytes::from_static_str("Dead"));
                }
            };
            let members = d
                .members
                .into_iter()
                .map(|m| {
                    Member::default()
                        .with_member_id(StrBytes::from_string(m.member_id))
                        .with_rack_id(m.rack_id.map(StrBytes::from_string))
                        .with_member_epoch(m.member_epoch)
                        .with_client_id(StrBytes::from_string(m.client_id))
                        .with_client_host(StrBytes::from_string(m.client_host))
                        .with_subscribed_topic_names(
                            m.subscribed_topics
                                .into_iter()
                                .map(|t| TopicName(StrBytes::from_string(t)))
                                .collect(),
                        )
                        .with_assignment(assignment(m.assignment))
                })
                .collect();
            DescribedGroup::default()
                .with_group_id(id)
                .with_group_state(StrBytes::from_static_str(d.state))
                .with_group_epoch(d.group_epoch)
                .with_assignment_epoch(d.assignment_epoch)
                .with_assignor_name(StrBytes::from_string(d.assignor))
                .with_members(members)
                .with_authorized_operations(OPERATIONS_NOT_ASKED)
        })
        .collect();
    now(ShareGroupDescribeResponse::default().with_groups(groups))
}
