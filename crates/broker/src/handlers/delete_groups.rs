//! DeleteGroups (v0–v2): groups without members, with their committed offsets; a share
//! group with its share-partitions' state (`share_group_offsets::delete_states`).

use crate::error::group_code;
use crate::server::Broker;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};
use std::future::Future;
use std::sync::Arc;

pub(crate) fn handle(
    broker: &Arc<Broker>,
    request: DeleteGroupsRequest,
    _version: i16,
) -> impl Future<Output = Option<DeleteGroupsResponse>> + Send + 'static + use<> {
    let broker = broker.clone();
    async move {
        let groups = broker.groups();
        let mut results = Vec::with_capacity(request.groups_names.len());
        for id in request.groups_names {
            // Each group may live on another shard: delete them one by one.
            let name = id.0.to_string();
            let share = groups
                .read(&name, |c| c.share_group_topics(&name))
                .is_ok_and(|t| matches!(t, Ok(Some(_))));
            let result = groups
                .execute(&name, |c, _now| {
                    c.delete_groups(std::slice::from_ref(&name))
                })
                .await
                .map(|mut r| r.pop().unwrap_or(Ok(())))
                .and_then(|r| r);
            if share && result.is_ok() {
                super::share_group_offsets::delete_states(&broker, &name).await;
            }
            results.push(
                DeletableGroupResult::default()
                    .with_group_id(id)
                    .with_error_code(group_code(result.err().as_ref())),
            );
        }
        Some(DeleteGroupsResponse::default().with_results(results))
    }
}
