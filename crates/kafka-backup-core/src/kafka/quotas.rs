//! Client quotas: DescribeClientQuotas (every quota set on users, client ids and IPs) and
//! AlterClientQuotas (setting them on another cluster).

use std::collections::BTreeMap;

use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
use kafka_protocol::messages::{AlterClientQuotasRequest, DescribeClientQuotasRequest};
use kafka_protocol::protocol::StrBytes;
use serde::{Deserialize, Serialize};

use super::client::{KafkaClient, Route};
use super::KafkaError;

/// The quotas set on one entity: a user, a client id, a user and client id, or an IP.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientQuota {
    /// Entity type (`user`, `client-id`, `ip`) to its name; `None` for the type's default entity.
    pub entity: BTreeMap<String, Option<String>>,
    /// Quota (`producer_byte_rate`, `consumer_byte_rate`, `request_percentage`, ...) to its value.
    pub values: BTreeMap<String, f64>,
}

impl std::fmt::Display for ClientQuota {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let entity: Vec<String> = self
            .entity
            .iter()
            .map(|(kind, name)| format!("{kind}={}", name.as_deref().unwrap_or("<default>")))
            .collect();
        let values: Vec<String> = self.values.iter().map(|(key, value)| format!("{key}={value}")).collect();
        write!(f, "{}: {}", entity.join(","), values.join(","))
    }
}

fn text(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_string())
}

impl KafkaClient {
    /// Every client quota of the cluster (DescribeConfigs on the cluster).
    pub async fn describe_client_quotas(&self) -> Result<Vec<ClientQuota>, KafkaError> {
        self.on("DescribeClientQuotas", Route::Any, |connection| async move {
            // No component, not strict: every entity with a quota.
            let request = DescribeClientQuotasRequest::default().with_components(Vec::new()).with_strict(false);
            let response = connection.send(&request).await?;
            let message = response.error_message.map(|m| m.to_string());
            KafkaError::check(
                "DescribeClientQuotas",
                String::new(),
                connection.address(),
                response.error_code,
                message,
            )?;
            let mut quotas: Vec<ClientQuota> = response
                .entries
                .unwrap_or_default()
                .into_iter()
                .map(|entry| ClientQuota {
                    entity: entry
                        .entity
                        .into_iter()
                        .map(|e| (e.entity_type.to_string(), e.entity_name.map(|n| n.to_string())))
                        .collect(),
                    values: entry.values.into_iter().map(|v| (v.key.to_string(), v.value)).collect(),
                })
                .collect();
            quotas.sort_by(|a, b| a.entity.cmp(&b.entity));
            Ok(quotas)
        })
        .await
    }

    /// Sets `quotas` (each value set; other quotas of the entities are left as they are).
    pub async fn alter_client_quotas(&self, quotas: &[ClientQuota]) -> Result<(), KafkaError> {
        let entries: Vec<EntryData> = quotas
            .iter()
            .map(|quota| {
                EntryData::default()
                    .with_entity(
                        quota
                            .entity
                            .iter()
                            .map(|(kind, name)| {
                                EntityData::default()
                                    .with_entity_type(text(kind))
                                    .with_entity_name(name.as_deref().map(text))
                            })
                            .collect(),
                    )
                    .with_ops(
                        quota
                            .values
                            .iter()
                            .map(|(key, value)| {
                                OpData::default().with_key(text(key)).with_value(*value).with_remove(false)
                            })
                            .collect(),
                    )
            })
            .collect();
        let entries = &entries;
        self.on("AlterClientQuotas", Route::Any, |connection| async move {
            let request = AlterClientQuotasRequest::default().with_entries(entries.clone()).with_validate_only(false);
            let response = connection.send(&request).await?;
            for (result, quota) in response.entries.iter().zip(quotas) {
                let message = result.error_message.as_ref().map(|m| m.to_string());
                let context = format!(" setting the quotas {quota}");
                KafkaError::check("AlterClientQuotas", context, connection.address(), result.error_code, message)?;
            }
            Ok(())
        })
        .await
    }
}
