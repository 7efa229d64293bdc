//! Client quotas (DescribeClientQuotas, AlterClientQuotas) as plain values: an entity is the
//! user and client id it names (`Some(None)`: the default of that type), quotas by key.

use crate::client::Client;
use crate::error::{ClientError, Result};
use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
use kafka_protocol::messages::{AlterClientQuotasRequest, DescribeClientQuotasRequest};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;

/// Who quotas apply to, by Kafka's entity types (`user`, `client-id`): a name, or `None` for
/// the default of the type.
pub type QuotaEntity = BTreeMap<String, Option<String>>;

/// One entity's quotas, by key.
#[derive(Debug, Clone, PartialEq)]
pub struct EntityQuotas {
    pub entity: QuotaEntity,
    pub quotas: BTreeMap<String, f64>,
}

/// Kafka's `match_type` codes: a name, the default, any.
const MATCH_EXACT: i8 = 0;
const MATCH_DEFAULT: i8 = 1;

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// The quotas of every entity that names at least what `filter` names (nothing: every one).
pub async fn describe(client: &mut Client, filter: &QuotaEntity) -> Result<Vec<EntityQuotas>> {
    let components = filter
        .iter()
        .map(|(entity_type, name)| {
            ComponentData::default()
                .with_entity_type(text(entity_type))
                .with_match_type(if name.is_some() {
                    MATCH_EXACT
                } else {
                    MATCH_DEFAULT
                })
                .with_match(name.as_deref().map(text))
        })
        .collect();
    let request = DescribeClientQuotasRequest::default().with_components(components);
    let (_, response) = client.any().send(&request, 1).await?;
    ClientError::check(
        response.error_code,
        response.error_message.as_deref(),
        || "describing client quotas".to_string(),
    )?;
    let mut out: Vec<EntityQuotas> = response
        .entries
        .unwrap_or_default()
        .into_iter()
        .map(|entry| EntityQuotas {
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
            quotas: entry
                .values
                .iter()
                .map(|v| (v.key.to_string(), v.value))
                .collect(),
        })
        .collect();
    out.sort_by(|a, b| a.entity.cmp(&b.entity));
    Ok(out)
}

/// Sets each of `set` and removes each of `remove` for `entity`.
pub async fn alter(
    client: &mut Client,
    entity: &QuotaEntity,
    set: &[(String, f64)],
    remove: &[String],
) -> Result<()> {
    let entity_data = entity
        .iter()
        .map(|(entity_type, name)| {
            EntityData::default()
                .with_entity_type(text(entity_type))
                .with_entity_name(name.as_deref().map(text))
        })
        .collect();
    let ops = set
        .iter()
        .map(|(key, value)| OpData::default().with_key(text(key)).with_value(*value))
        .chain(
            remove
                .iter()
                .map(|key| OpData::default().with_key(text(key)).with_remove(true)),
        )
        .collect();
    let entry = EntryData::default().with_entity(entity_data).with_ops(ops);
    let request = AlterClientQuotasRequest::default().with_entries(vec![entry]);
    let (_, response) = client.any().send(&request, 1).await?;
    for e in &response.entries {
        ClientError::check(e.error_code, e.error_message.as_deref(), || {
            "altering client quotas".to_string()
        })?;
    }
    Ok(())
}
