//! DescribeClientQuotas and AlterClientQuotas (v0–v1): Kafka's client quota admin API over the
//! quotas in the metadata log (`sluice_controller::QuotaEntity`). Describing needs
//! DESCRIBE_CONFIGS on the cluster and reads this broker's image; altering needs ALTER_CONFIGS on
//! the cluster, runs on the active controller and is answered once this broker's image shows
//! the change, so the quota is enforced here from the answer on. Without the right, the
//! response (or each entity) says CLUSTER_AUTHORIZATION_FAILED.

use crate::authorization::Caller;
use crate::controller_client::{CONTROLLER_WAIT_MAX, NotDone};
use crate::server::Broker;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_client_quotas_response::{EntityData, EntryData};
use kafka_protocol::messages::describe_client_quotas_response as describe_response;
use kafka_protocol::messages::{
    AlterClientQuotasRequest, AlterClientQuotasResponse, DescribeClientQuotasRequest,
    DescribeClientQuotasResponse,
};
use kafka_protocol::protocol::StrBytes;
use sluice_acl::Operation;
use sluice_controller::{
    ControllerCommand, ControllerReply, MetadataImage, QuotaAlteration, QuotaEntity, QuotaFilter,
    QuotaMatch, QuotaValue,
};
use sluice_types::limits::QUOTA_ENTITIES_MAX;
use std::future::Future;
use std::sync::Arc;

/// Kafka's `match_type` codes of a DescribeClientQuotas component.
const MATCH_EXACT: i8 = 0;
const MATCH_DEFAULT: i8 = 1;
const MATCH_ANY: i8 = 2;

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

pub(crate) fn describe(
    broker: &Arc<Broker>,
    caller: &Caller,
    request: DescribeClientQuotasRequest,
    _version: i16,
) -> std::future::Ready<Option<DescribeClientQuotasResponse>> {
    let refuse = |error: ResponseError, message: String| {
        super::now(
            DescribeClientQuotasResponse::default()
                .with_error_code(error.code())
                .with_error_message(Some(StrBytes::from_string(message))),
        )
    };
    if !broker.allows_cluster(caller, Operation::DescribeConfigs) {
        return refuse(
            ResponseError::ClusterAuthorizationFailed,
            "not allowed DESCRIBE_CONFIGS on the cluster".into(),
        );
    }
    let filter = match filter_of(&request) {
        Ok(filter) => filter,
        Err(message) => return refuse(ResponseError::InvalidRequest, message),
    };
    let image = broker.published_image();
    let entries = image
        .client_quotas
        .iter()
        .filter(|(entity, _)| filter.matches(entity))
        .map(|(entity, quotas)| {
            let entity = entity
                .parts()
                .into_iter()
                .map(|(entity_type, name)| {
                    describe_response::EntityData::default()
                        .with_entity_type(StrBytes::from_static_str(entity_type))
                        .with_entity_name(name.map(StrBytes::from_string))
                })
                .collect();
            let values = quotas
                .iter()
                .map(|(key, value)| {
                    describe_response::ValueData::default()
                        .with_key(text(key))
                        .with_value(value.0)
                })
                .collect();
            describe_response::EntryData::default()
                .with_entity(entity)
                .with_values(values)
        })
        .collect();
    super::now(DescribeClientQuotasResponse::default().with_entries(Some(entries)))
}

fn filter_of(request: &DescribeClientQuotasRequest) -> Result<QuotaFilter, String> {
    let components = request
        .components
        .iter()
        .map(|c| {
            let wanted = match (c.match_type, &c._match) {
                (MATCH_EXACT, Some(name)) => QuotaMatch::Exact(name.to_string()),
                (MATCH_EXACT, None) | (MATCH_DEFAULT, _) => QuotaMatch::Default,
                (MATCH_ANY, _) => QuotaMatch::Any,
                (other, _) => return Err(format!("Unexpected match type {other}")),
            };
            Ok((c.entity_type.to_string(), wanted))
        })
        .collect::<Result<Vec<_>, String>>()?;
    let filter = QuotaFilter {
        components,
        strict: request.strict,
    };
    filter.check().map_err(|e| e.to_string())?;
    Ok(filter)
}

pub(crate) fn alter(
    broker: &Arc<Broker>,
    caller: &Caller,
    request: AlterClientQuotasRequest,
    _version: i16,
) -> impl Future<Output = Option<AlterClientQuotasResponse>> + Send + 'static + use<> {
    let broker = broker.clone();
    let allowed = broker.allows_cluster(caller, Operation::AlterConfigs);
    async move {
        let alterations: Vec<QuotaAlteration> = request
            .entries
            .iter()
            .map(|entry| QuotaAlteration {
                entity: entry
                    .entity
                    .iter()
                    .map(|e| {
                        (
                            e.entity_type.to_string(),
                            e.entity_name.as_ref().map(|n| n.to_string()),
                        )
                    })
                    .collect(),
                ops: entry
                    .ops
                    .iter()
                    .map(|op| {
                        (
                            op.key.to_string(),
                            (!op.remove).then_some(QuotaValue(op.value)),
                        )
                    })
                    .collect(),
            })
            .collect();
        let count = alterations.len();
        let outcomes: Vec<Result<(), NotDone>> = if !allowed {
            let refused = || NotDone {
                error: ResponseError::ClusterAuthorizationFailed,
                message: "not allowed ALTER_CONFIGS on the cluster".into(),
            };
            (0..count).map(|_| Err(refused())).collect()
        } else if count > QUOTA_ENTITIES_MAX {
            let too_many = || NotDone {
                error: ResponseError::InvalidRequest,
                message: format!(
                    "{count} entities, more than the {QUOTA_ENTITIES_MAX} one request may carry"
                ),
            };
            (0..count).map(|_| Err(too_many())).collect()
        } else {
            let command = ControllerCommand::AlterClientQuotas {
                alterations: alterations.clone(),
                validate_only: request.validate_only,
            };
            let results = broker
                .submit_each(command, count, CONTROLLER_WAIT_MAX, |reply| match reply {
                    ControllerReply::QuotasAltered(results) => Some(results),
                    _ => None,
                })
                .await;
            if !request.validate_only {
                let done: Vec<&QuotaAlteration> = alterations
                    .iter()
                    .zip(&results)
                    .filter(|(_, r)| r.is_ok())
                    .map(|(a, _)| a)
                    .collect();
                broker
                    .wait_published(CONTROLLER_WAIT_MAX, |image| {
                        done.iter().all(|a| shows(image, a))
                    })
                    .await;
            }
            results
        };
        let entries = request
            .entries
            .iter()
            .zip(outcomes)
            .map(|(entry, outcome)| {
                let entity = entry
                    .entity
                    .iter()
                    .map(|e| {
                        EntityData::default()
                            .with_entity_type(e.entity_type.clone())
                            .with_entity_name(e.entity_name.clone())
                    })
                    .collect();
                let answer = EntryData::default().with_entity(entity);
                match outcome {
                    Ok(()) => answer,
                    Err(e) => answer
                        .with_error_code(e.error.code())
                        .with_error_message(Some(StrBytes::from_string(e.message))),
                }
            })
            .collect();
        Some(AlterClientQuotasResponse::default().with_entries(entries))
    }
}

/// Whether `image` shows what `alteration` set and removed.
fn shows(image: &MetadataImage, alteration: &QuotaAlteration) -> bool {
    let Ok(entity) = QuotaEntity::from_parts(&alteration.entity) else {
        return true;
    };
    let quotas = image.client_quotas.get(&entity);
    alteration
        .ops
        .iter()
        .all(|(key, value)| quotas.and_then(|q| q.get(key)) == value.as_ref())
}
