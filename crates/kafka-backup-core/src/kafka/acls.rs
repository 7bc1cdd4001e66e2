//! Access control lists: DescribeAcls (every binding the principal may see) and CreateAcls, with
//! bindings named as `kafka-acls.sh` names them (TOPIC, LITERAL, READ, ALLOW, ...).

use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::{CreateAclsRequest, DescribeAclsRequest};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use serde::{Deserialize, Serialize};

use super::client::{KafkaClient, Route};
use super::KafkaError;

/// Bindings created per CreateAcls request.
const CREATIONS_PER_REQUEST: usize = 100;
/// The filter value that matches every resource type, pattern type, operation or permission.
const ANY: i8 = 1;

/// One ACL: who may (or may not) do what on which resources.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AclBinding {
    /// TOPIC, GROUP, CLUSTER, TRANSACTIONAL_ID, DELEGATION_TOKEN or USER.
    pub resource_type: String,
    /// The resource's name, or the prefix of the names (PREFIXED), or `*` for all.
    pub resource_name: String,
    /// LITERAL or PREFIXED.
    pub pattern_type: String,
    /// The principal, e.g. `User:alice`.
    pub principal: String,
    /// The host it applies from (`*` for any).
    pub host: String,
    /// READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE, ALL, ...
    pub operation: String,
    /// ALLOW or DENY.
    pub permission: String,
}

impl std::fmt::Display for AclBinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (permission, principal, operation) = (&self.permission, &self.principal, &self.operation);
        let (kind, pattern, name, host) = (&self.resource_type, &self.pattern_type, &self.resource_name, &self.host);
        write!(f, "{permission} {principal} {operation} on {kind} {name} ({pattern}) from host {host}")
    }
}

const RESOURCE_TYPES: [(i8, &str); 6] =
    [(2, "TOPIC"), (3, "GROUP"), (4, "CLUSTER"), (5, "TRANSACTIONAL_ID"), (6, "DELEGATION_TOKEN"), (7, "USER")];
const PATTERN_TYPES: [(i8, &str); 2] = [(3, "LITERAL"), (4, "PREFIXED")];
const OPERATIONS: [(i8, &str); 14] = [
    (2, "ALL"),
    (3, "READ"),
    (4, "WRITE"),
    (5, "CREATE"),
    (6, "DELETE"),
    (7, "ALTER"),
    (8, "DESCRIBE"),
    (9, "CLUSTER_ACTION"),
    (10, "DESCRIBE_CONFIGS"),
    (11, "ALTER_CONFIGS"),
    (12, "IDEMPOTENT_WRITE"),
    (13, "CREATE_TOKENS"),
    (14, "DESCRIBE_TOKENS"),
    (15, "TWO_PHASE_COMMIT"),
];
const PERMISSIONS: [(i8, &str); 2] = [(2, "DENY"), (3, "ALLOW")];

fn name_of(table: &[(i8, &str)], code: i8) -> String {
    table.iter().find(|(c, _)| *c == code).map_or_else(|| format!("UNKNOWN({code})"), |(_, n)| (*n).to_string())
}

fn code_of(table: &[(i8, &str)], what: &str, name: &str) -> Result<i8, KafkaError> {
    table
        .iter()
        .find(|(_, n)| *n == name)
        .map(|(c, _)| *c)
        .ok_or_else(|| KafkaError::Config(format!("ACL {what} {name:?} is not one this version knows")))
}

fn text(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_string())
}

impl KafkaClient {
    /// Every ACL binding of the cluster the principal may describe (Describe on the cluster);
    /// `None` when the cluster has no authorizer.
    pub async fn describe_acls(&self) -> Result<Option<Vec<AclBinding>>, KafkaError> {
        self.on("DescribeAcls", Route::Any, |connection| async move {
            let request = DescribeAclsRequest::default()
                .with_resource_type_filter(ANY)
                .with_resource_name_filter(None)
                .with_pattern_type_filter(ANY)
                .with_principal_filter(None)
                .with_host_filter(None)
                .with_operation(ANY)
                .with_permission_type(ANY);
            let response = connection.send(&request).await?;
            if response.error_code == ResponseError::SecurityDisabled.code() {
                return Ok(None);
            }
            let message = response.error_message.map(|m| m.to_string());
            KafkaError::check("DescribeAcls", String::new(), connection.address(), response.error_code, message)?;
            let mut bindings = Vec::new();
            for resource in response.resources {
                for acl in resource.acls {
                    bindings.push(AclBinding {
                        resource_type: name_of(&RESOURCE_TYPES, resource.resource_type),
                        resource_name: resource.resource_name.to_string(),
                        pattern_type: name_of(&PATTERN_TYPES, resource.pattern_type),
                        principal: acl.principal.to_string(),
                        host: acl.host.to_string(),
                        operation: name_of(&OPERATIONS, acl.operation),
                        permission: name_of(&PERMISSIONS, acl.permission_type),
                    });
                }
            }
            bindings.sort();
            Ok(Some(bindings))
        })
        .await
    }

    /// Creates `bindings` (an existing one is left as it is: creating it again changes nothing).
    pub async fn create_acls(&self, bindings: &[AclBinding]) -> Result<(), KafkaError> {
        for chunk in bindings.chunks(CREATIONS_PER_REQUEST) {
            let mut creations = Vec::with_capacity(chunk.len());
            for binding in chunk {
                creations.push(
                    AclCreation::default()
                        .with_resource_type(code_of(&RESOURCE_TYPES, "resource type", &binding.resource_type)?)
                        .with_resource_name(text(&binding.resource_name))
                        .with_resource_pattern_type(code_of(&PATTERN_TYPES, "pattern type", &binding.pattern_type)?)
                        .with_principal(text(&binding.principal))
                        .with_host(text(&binding.host))
                        .with_operation(code_of(&OPERATIONS, "operation", &binding.operation)?)
                        .with_permission_type(code_of(&PERMISSIONS, "permission", &binding.permission)?),
                );
            }
            let creations = &creations;
            self.on("CreateAcls", Route::Any, |connection| async move {
                let request = CreateAclsRequest::default().with_creations(creations.clone());
                let response = connection.send(&request).await?;
                for (result, binding) in response.results.iter().zip(chunk) {
                    let message = result.error_message.as_ref().map(|m| m.to_string());
                    let context = format!(" creating the ACL {binding}");
                    KafkaError::check("CreateAcls", context, connection.address(), result.error_code, message)?;
                }
                Ok(())
            })
            .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_codes_are_kafkas() {
        assert_eq!(name_of(&OPERATIONS, 3), "READ");
        assert_eq!(code_of(&OPERATIONS, "operation", "IDEMPOTENT_WRITE").unwrap(), 12);
        assert_eq!(code_of(&RESOURCE_TYPES, "resource type", "TRANSACTIONAL_ID").unwrap(), 5);
        assert_eq!(name_of(&PERMISSIONS, 9), "UNKNOWN(9)");
        assert!(code_of(&PATTERN_TYPES, "pattern type", "MATCH").is_err(), "MATCH filters, it never binds");
    }
}
