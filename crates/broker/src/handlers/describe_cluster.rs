//! DescribeCluster (v0–v1): the brokers and the controller, as the metadata image has them.

use super::now;
use crate::server::{Broker, Endpoint};
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::protocol::StrBytes;
use std::sync::Arc;

pub(crate) fn handle(
    broker: &Arc<Broker>,
    _request: DescribeClusterRequest,
    _version: i16,
    endpoint: &Endpoint,
) -> std::future::Ready<Option<DescribeClusterResponse>> {
    let image = broker.metadata();
    let brokers = image
        .brokers(endpoint)
        .into_iter()
        .map(|b| {
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(b.id))
                .with_host(StrBytes::from_string(b.host))
                .with_port(i32::from(b.port))
        })
        .collect();
    now(DescribeClusterResponse::default()
        .with_cluster_id(StrBytes::from_string(image.cluster_id().to_string()))
        .with_controller_id(BrokerId(image.controller_id()))
        .with_brokers(brokers))
}
