//! ShareAcknowledge (v1): a share group member acknowledges records it holds, apart from a
//! fetch (KIP-932). It continues the member's share session (epoch 0 is refused: only a fetch
//! opens one) or closes it (-1: after the acknowledgements, what the member still holds in
//! the session's partitions is released).

use super::group_configs;
use super::share_fetch::{Who, acknowledge_all, add_acks, names, parse_acks, release};
use crate::error::share_session_error;
use crate::server::Broker;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::share_acknowledge_response::{
    PartitionData, ShareAcknowledgeTopicResponse,
};
use kafka_protocol::messages::{ShareAcknowledgeRequest, ShareAcknowledgeResponse};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;
use std::sync::Arc;

pub(crate) fn handle(
    broker: &Arc<Broker>,
    request: ShareAcknowledgeRequest,
    _version: i16,
) -> impl std::future::Future<Output = Option<ShareAcknowledgeResponse>> + Send + 'static + use<> {
    let broker = broker.clone();
    async move { Some(acknowledge(&broker, request).await) }
}

async fn acknowledge(
    broker: &Broker,
    request: ShareAcknowledgeRequest,
) -> ShareAcknowledgeResponse {
    let refused = |e: ResponseError, why: String| {
        ShareAcknowledgeResponse::default()
            .with_error_code(e.code())
            .with_error_message(Some(StrBytes::from_string(why)))
    };
    let (group, member) = match names(
        request.group_id.as_ref().map(|g| g.0.as_str()),
        request.member_id.as_ref().map(|m| m.as_str()),
    ) {
        Ok(names) => names,
        Err(e) => return refused(e, "an acknowledgement names its group and member".into()),
    };
    let now = crate::now_ms();
    let shares = &broker.shares;
    let epoch = request.share_session_epoch;
    let step = shares
        .sessions()
        .acknowledge((group.clone(), member.clone()), epoch, now);
    tracing::trace!(group, member, epoch, ok = step.is_ok(), "share acknowledge");
    let step = match step {
        Ok(step) => step,
        Err(e) => return refused(share_session_error(e), format!("{e:?}")),
    };
    let mut acks = BTreeMap::new();
    for topic in &request.topics {
        for p in &topic.partitions {
            let batches = p.acknowledgement_batches.iter();
            let parsed = parse_acks(
                batches.map(|b| (b.first_offset, b.last_offset, &b.acknowledge_types[..])),
            );
            add_acks(&mut acks, (topic.topic_id, p.partition_index), parsed);
        }
    }
    let config = group_configs::share_config(&broker.published_image(), &group);
    let who = Who {
        group: &group,
        member: &member,
        config: &config,
    };
    let answers = acknowledge_all(broker, &who, acks, now).await;
    release(broker, &who, &step.released, now).await;
    let mut topics: Vec<ShareAcknowledgeTopicResponse> = Vec::new();
    for ((topic_id, partition), answer) in answers {
        let data = PartitionData::default()
            .with_partition_index(partition)
            .with_error_code(answer.ack_error.map_or(0, |e| e.code()));
        match topics.last_mut() {
            Some(t) if t.topic_id == topic_id => t.partitions.push(data),
            _ => topics.push(
                ShareAcknowledgeTopicResponse::default()
                    .with_topic_id(topic_id)
                    .with_partitions(vec![data]),
            ),
        }
    }
    ShareAcknowledgeResponse::default().with_responses(topics)
}
