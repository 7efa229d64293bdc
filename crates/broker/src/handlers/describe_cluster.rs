//! DescribeCluster (v0–v2): the brokers and the controller, as the metadata image has them;
//! from v2, fenced brokers too when the request asks (`include_fenced_brokers`), marked
//! `is_fenced`.

use super::now;
use crate::server::{Broker, Endpoint};
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::protocol::StrBytes;
use std::sync::Arc;

pub(crate) fn handle(
    broker: &Arc<Broker>,
    request: DescribeClusterRequest,
    version: i16,
    endpoint: &Endpoint,
) -> std::future::Ready<Option<DescribeClusterResponse>> {
    let image = broker.metadata();
    let with_fenced = version >= 2 && request.include_fenced_brokers;
    let brokers = image
        .registered_brokers(endpoint)
        .into_iter()
        .filter(|(_, fenced)| with_fenced || !fenced)
        .map(|(b, fenced)| {
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(b.id))
                .with_host(StrBytes::from_string(b.host))
                .with_port(i32::from(b.port))
                .with_is_fenced(version >= 2 && fenced)
        })
        .collect();
    now(DescribeClusterResponse::default()
        .with_cluster_id(StrBytes::from_string(image.cluster_id().to_string()))
        .with_controller_id(BrokerId(image.controller_id()))
        .with_brokers(brokers))
}
