//! DescribeCluster (v0–v1): this broker is the whole cluster and its controller.

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
    let node = BrokerId(broker.config.node_id);
    let this = DescribeClusterBroker::default()
        .with_broker_id(node)
        .with_host(StrBytes::from_string(endpoint.host.clone()))
        .with_port(i32::from(endpoint.port));
    now(DescribeClusterResponse::default()
        .with_cluster_id(StrBytes::from_string(broker.cluster_id.clone()))
        .with_controller_id(node)
        .with_brokers(vec![this]))
}
