//! CreateAcls, DescribeAcls and DeleteAcls (v0–v3): Kafka's ACL admin API over the ACLs in the
//! metadata log. Creating and deleting need ALTER on the cluster and run on the active
//! controller, answered once this broker's image shows the change; describing needs DESCRIBE on
//! the cluster and reads this broker's image. Without the right, each item (or the response)
//! says CLUSTER_AUTHORIZATION_FAILED.

use crate::authorization::Caller;
use crate::controller_client::{CONTROLLER_WAIT_MAX, NotDone};
use crate::server::Broker;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse,
};
use kafka_protocol::protocol::StrBytes;
use sluice_acl::Operation;
use sluice_controller::{AclEntry, AclFilterEntry, ControllerCommand, ControllerReply};
use sluice_types::limits::ACL_REQUEST_ITEMS_MAX;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn cluster_refused() -> NotDone {
    NotDone {
        error: ResponseError::ClusterAuthorizationFailed,
        message: "not allowed ALTER on the cluster".into(),
    }
}

fn too_many(count: usize) -> NotDone {
    NotDone {
        error: ResponseError::InvalidRequest,
        message: format!(
            "{count} items, more than the {ACL_REQUEST_ITEMS_MAX} one request may carry"
        ),
    }
}

pub(crate) fn create(
    broker: &Arc<Broker>,
    caller: &Caller,
    request: CreateAclsRequest,
    _version: i16,
) -> impl Future<Output = Option<CreateAclsResponse>> + Send + 'static + use<> {
    let broker = broker.clone();
    let allowed = broker.allows_cluster(caller, Operation::Alter);
    async move {
        let entries: Vec<AclEntry> = request
            .creations
            .iter()
            .map(|c| AclEntry {
                resource_type: c.resource_type,
                resource_name: c.resource_name.to_string(),
                pattern_type: c.resource_pattern_type,
                principal: c.principal.to_string(),
                host: c.host.to_string(),
                operation: c.operation,
                permission: c.permission_type,
            })
            .collect();
        let outcomes: Vec<Result<(), NotDone>> = if !allowed {
            entries.iter().map(|_| Err(cluster_refused())).collect()
        } else if entries.len() > ACL_REQUEST_ITEMS_MAX {
            entries
                .iter()
                .map(|_| Err(too_many(entries.len())))
                .collect()
        } else {
            let count = entries.len();
            let command = ControllerCommand::CreateAcls(entries.clone());
            let results = broker
                .submit_each(command, count, CONTROLLER_WAIT_MAX, |reply| match reply {
                    ControllerReply::AclsCreated(results) => Some(results),
                    _ => None,
                })
                .await;
            let made: Vec<&AclEntry> = entries
                .iter()
                .zip(&results)
                .filter(|(_, r)| r.is_ok())
                .map(|(e, _)| e)
                .collect();
            broker
                .wait_published(CONTROLLER_WAIT_MAX, |image| {
                    made.iter().all(|e| image.acls.values().any(|a| a == *e))
                })
                .await;
            results
        };
        let results = outcomes
            .into_iter()
            .map(|r| match r {
                Ok(()) => AclCreationResult::default(),
                Err(e) => AclCreationResult::default()
                    .with_error_code(e.error.code())
                    .with_error_message(Some(StrBytes::from_string(e.message))),
            })
            .collect();
        Some(CreateAclsResponse::default().with_results(results))
    }
}

pub(crate) fn describe(
    broker: &Arc<Broker>,
    caller: &Caller,
    request: DescribeAclsRequest,
    _version: i16,
) -> std::future::Ready<Option<DescribeAclsResponse>> {
    let refuse = |error: ResponseError, message: String| {
        super::now(
            DescribeAclsResponse::default()
                .with_error_code(error.code())
                .with_error_message(Some(StrBytes::from_string(message))),
        )
    };
    if !broker.allows_cluster(caller, Operation::Describe) {
        return refuse(
            ResponseError::ClusterAuthorizationFailed,
            "not allowed DESCRIBE on the cluster".into(),
        );
    }
    let filter = AclFilterEntry {
        resource_type: request.resource_type_filter,
        resource_name: request.resource_name_filter.map(|n| n.to_string()),
        pattern_type: request.pattern_type_filter,
        principal: request.principal_filter.map(|p| p.to_string()),
        host: request.host_filter.map(|h| h.to_string()),
        operation: request.operation,
        permission: request.permission_type,
    };
    let filter = match filter.filter() {
        Ok(filter) => filter,
        Err(e) => return refuse(ResponseError::InvalidRequest, e.to_string()),
    };
    let image = broker.published_image();
    let mut resources: BTreeMap<(i8, String, i8), Vec<AclDescription>> = BTreeMap::new();
    for entry in image.acls.values() {
        let Ok(binding) = entry.binding() else {
            continue;
        };
        if !filter.matches(&binding) {
            continue;
        }
        let key = (
            entry.resource_type,
            entry.resource_name.clone(),
            entry.pattern_type,
        );
        resources.entry(key).or_default().push(
            AclDescription::default()
                .with_principal(text(&entry.principal))
                .with_host(text(&entry.host))
                .with_operation(entry.operation)
                .with_permission_type(entry.permission),
        );
    }
    let resources = resources
        .into_iter()
        .map(|((resource_type, name, pattern_type), acls)| {
            DescribeAclsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(StrBytes::from_string(name))
                .with_pattern_type(pattern_type)
                .with_acls(acls)
        })
        .collect();
    super::now(DescribeAclsResponse::default().with_resources(resources))
}

pub(crate) fn delete(
    broker: &Arc<Broker>,
    caller: &Caller,
    request: DeleteAclsRequest,
    _version: i16,
) -> impl Future<Output = Option<DeleteAclsResponse>> + Send + 'static + use<> {
    let broker = broker.clone();
    let allowed = broker.allows_cluster(caller, Operation::Alter);
    async move {
        let filters: Vec<AclFilterEntry> = request.filters.iter().map(filter_entry).collect();
        let outcomes: Vec<Result<Vec<AclEntry>, NotDone>> = if !allowed {
            filters.iter().map(|_| Err(cluster_refused())).collect()
        } else if filters.len() > ACL_REQUEST_ITEMS_MAX {
            filters
                .iter()
                .map(|_| Err(too_many(filters.len())))
                .collect()
        } else {
            let count = filters.len();
            let command = ControllerCommand::DeleteAcls(filters);
            let results = broker
                .submit_each(command, count, CONTROLLER_WAIT_MAX, |reply| match reply {
                    ControllerReply::AclsDeleted(results) => Some(results),
                    _ => None,
                })
                .await;
            let gone: Vec<AclEntry> = results.iter().flatten().flatten().cloned().collect();
            broker
                .wait_published(CONTROLLER_WAIT_MAX, |image| {
                    gone.iter().all(|e| !image.acls.values().any(|a| a == e))
                })
                .await;
            results
        };
        let results = outcomes.into_iter().map(filter_result).collect();
        Some(DeleteAclsResponse::default().with_filter_results(results))
    }
}

fn filter_entry(f: &DeleteAclsFilter) -> AclFilterEntry {
    AclFilterEntry {
        resource_type: f.resource_type_filter,
        resource_name: f.resource_name_filter.as_ref().map(|n| n.to_string()),
        pattern_type: f.pattern_type_filter,
        principal: f.principal_filter.as_ref().map(|p| p.to_string()),
        host: f.host_filter.as_ref().map(|h| h.to_string()),
        operation: f.operation,
        permission: f.permission_type,
    }
}

fn filter_result(outcome: Result<Vec<AclEntry>, NotDone>) -> DeleteAclsFilterResult {
    match outcome {
        Err(e) => DeleteAclsFilterResult::default()
            .with_error_code(e.error.code())
            .with_error_message(Some(StrBytes::from_string(e.message))),
        Ok(matched) => DeleteAclsFilterResult::default().with_matching_acls(
            matched
                .iter()
                .map(|e| {
                    DeleteAclsMatchingAcl::default()
                        .with_resource_type(e.resource_type)
                        .with_resource_name(text(&e.resource_name))
                        .with_pattern_type(e.pattern_type)
                        .with_principal(text(&e.principal))
                        .with_host(text(&e.host))
                        .with_operation(e.operation)
                        .with_permission_type(e.permission)
                })
                .collect(),
        ),
    }
}
