//! DeleteGroups (v0–v2): groups without members, with their committed offsets.

use crate::error::group_code;
use crate::groups::Groups;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};
use std::future::Future;
use std::sync::Arc;

pub(crate) fn handle(
    groups: &Arc<Groups>,
    request: DeleteGroupsRequest,
    _version: i16,
) -> impl Future<Output = Option<DeleteGroupsResponse>> + Send + 'static + use<> {
    let groups = groups.clone();
    async move {
        let mut results = Vec::with_capacity(request.groups_names.len());
        for id in request.groups_names {
            // Each group may live on another shard: delete them one by one.
            let name = id.0.to_string();
            let result = groups
                .execute(&name, |c, _now| {
                    c.delete_groups(std::slice::from_ref(&name))
                })
                .await
                .map(|mut r| r.pop().unwrap_or(Ok(())))
                .and_then(|r| r);
            results.push(
                DeletableGroupResult::default()
                    .with_group_id(id)
                    .with_error_code(group_code(result.err().as_ref())),
            );
        }
        Some(DeleteGroupsResponse::default().with_results(results))
    }
}
