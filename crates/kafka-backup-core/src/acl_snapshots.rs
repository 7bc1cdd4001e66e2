//! ACL snapshots kept with a backup: the bindings on the backed-up topics and the selected groups
//! (every binding with `backup.cluster_acls`), in `acls/snapshot-{taken_at_ms}.json`, a new one
//! whenever they change; and the bindings a restore recreates from one, following topic renames.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::kafka::{AclBinding, KafkaClient, KafkaError};
use crate::layout::{acl_snapshot_key, object_start, ACLS_DIR};
use crate::manifest::{to_json, ManifestError};
use crate::storage::{BackupStore, StorageError};
use crate::topics::TopicSelector;

/// The ACL bindings kept at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AclSnapshot {
    /// When they were read (epoch ms).
    pub taken_at_ms: i64,
    /// The bindings, sorted.
    pub bindings: Vec<AclBinding>,
}

/// What an ACL snapshot keeps: the backed-up topics and the selected groups, or everything.
pub struct AclScope<'a> {
    /// The backed-up topics.
    pub topics: &'a BTreeSet<String>,
    /// The groups whose offsets the backup snapshots.
    pub groups: &'a TopicSelector,
    /// Every binding of the cluster (`backup.cluster_acls`).
    pub cluster_wide: bool,
}

impl AclScope<'_> {
    /// Whether `binding` is kept: on a backed-up topic or a selected group (its literal name, `*`,
    /// or a prefix of a backed-up topic's name), or any binding when cluster-wide.
    fn keeps(&self, binding: &AclBinding) -> bool {
        if self.cluster_wide {
            return true;
        }
        let name = binding.resource_name.as_str();
        let prefixed = binding.pattern_type == "PREFIXED";
        match binding.resource_type.as_str() {
            "TOPIC" if prefixed => self.topics.iter().any(|topic| topic.starts_with(name)),
            "TOPIC" => name == "*" || self.topics.contains(name),
            "GROUP" if prefixed => false,
            "GROUP" => name == "*" || self.groups.matches(name, false),
            _ => false,
        }
    }
}

/// Reads the cluster's ACL bindings that `scope` keeps. `None` for a cluster without an
/// authorizer; a principal that may not describe them gets a warning naming the permission.
pub async fn read_acls(
    client: &KafkaClient,
    scope: &AclScope<'_>,
) -> Result<(Option<Vec<AclBinding>>, Vec<String>), KafkaError> {
    match client.describe_acls().await {
        Ok(Some(bindings)) => Ok((Some(bindings.into_iter().filter(|b| scope.keeps(b)).collect()), Vec::new())),
        Ok(None) => Ok((None, Vec::new())),
        Err(error) if error.is_refusal() => Ok((None, vec![format!("ACLs were not captured: {error}")])),
        Err(error) => Err(error),
    }
}

/// Stores `snapshot` (create-only).
pub async fn save_acl_snapshot(store: &BackupStore, snapshot: &AclSnapshot) -> Result<(), StorageError> {
    match store.put_new(&acl_snapshot_key(snapshot.taken_at_ms), to_json(snapshot)).await {
        Err(StorageError::AlreadyExists { .. }) => Ok(()),
        other => other,
    }
}

/// The latest ACL snapshot taken at or before `at_ms` (any when `None`), if the backup holds one.
pub async fn latest_acl_snapshot(
    store: &BackupStore,
    at_ms: Option<i64>,
) -> Result<Option<AclSnapshot>, ManifestError> {
    let latest = store
        .list(ACLS_DIR)
        .await?
        .into_iter()
        .filter_map(|object| match object_start(&object.key) {
            Some(("snapshot", taken)) if at_ms.is_none_or(|at| taken <= at) => Some((taken, object.key)),
            _ => None,
        })
        .max();
    let Some((_, key)) = latest else { return Ok(None) };
    let body = store.get(&key).await?;
    Ok(Some(serde_json::from_slice(&body).map_err(|source| ManifestError::Parse { key, source })?))
}

/// The bindings to create on a restore's target: those of the restored topics renamed as
/// `renames` says (literal names; a prefixed binding keeps its prefix), those of topics not
/// restored left out, every other binding as it was.
pub fn bindings_to_restore(
    snapshot: &AclSnapshot,
    restored_topics: &BTreeMap<String, String>,
    backed_up_topics: &BTreeSet<String>,
) -> Vec<AclBinding> {
    let mut restored = BTreeSet::new();
    for binding in &snapshot.bindings {
        let literal_topic = binding.resource_type == "TOPIC" && binding.pattern_type == "LITERAL";
        if literal_topic && binding.resource_name != "*" {
            match restored_topics.get(&binding.resource_name) {
                Some(target) => {
                    restored.insert(AclBinding { resource_name: target.clone(), ..binding.clone() });
                }
                // A topic of the backup this restore leaves out; one outside the backup (a
                // cluster-wide capture) keeps its binding.
                None if backed_up_topics.contains(&binding.resource_name) => {}
                None => {
                    restored.insert(binding.clone());
                }
            }
            continue;
        }
        restored.insert(binding.clone());
    }
    restored.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(kind: &str, name: &str, pattern: &str, operation: &str) -> AclBinding {
        AclBinding {
            resource_type: kind.into(),
            resource_name: name.into(),
            pattern_type: pattern.into(),
            principal: "User:bob".into(),
            host: "*".into(),
            operation: operation.into(),
            permission: "ALLOW".into(),
        }
    }

    #[test]
    fn a_backup_keeps_the_bindings_of_its_topics_and_groups() {
        let topics = BTreeSet::from(["orders".to_string(), "payments-eu".to_string()]);
        let groups = TopicSelector::new(&["billing*".to_string()], &[]).unwrap();
        let scope = AclScope { topics: &topics, groups: &groups, cluster_wide: false };
        let kept = [
            binding("TOPIC", "orders", "LITERAL", "READ"),
            binding("TOPIC", "payments-", "PREFIXED", "WRITE"),
            binding("TOPIC", "*", "LITERAL", "DESCRIBE"),
            binding("GROUP", "billing-1", "LITERAL", "READ"),
        ];
        let left_out = [
            binding("TOPIC", "audit", "LITERAL", "READ"),
            binding("TOPIC", "audit-", "PREFIXED", "READ"),
            binding("GROUP", "reporting", "LITERAL", "READ"),
            binding("CLUSTER", "kafka-cluster", "LITERAL", "ALTER"),
        ];
        assert!(kept.iter().all(|b| scope.keeps(b)));
        assert!(left_out.iter().all(|b| !scope.keeps(b)));
        let everything = AclScope { cluster_wide: true, ..scope };
        assert!(left_out.iter().all(|b| everything.keeps(b)));
    }

    #[test]
    fn a_restore_renames_literal_topic_bindings_and_leaves_out_topics_it_does_not_restore() {
        let snapshot = AclSnapshot {
            taken_at_ms: 1,
            bindings: vec![
                binding("TOPIC", "orders", "LITERAL", "READ"),
                binding("TOPIC", "payments", "LITERAL", "READ"),
                binding("TOPIC", "audit", "LITERAL", "READ"),
                binding("TOPIC", "orders", "PREFIXED", "WRITE"),
                binding("GROUP", "billing", "LITERAL", "READ"),
            ],
        };
        let restored = BTreeMap::from([("orders".to_string(), "dr-orders".to_string())]);
        let backed_up = BTreeSet::from(["orders".to_string(), "payments".to_string()]);
        let created = bindings_to_restore(&snapshot, &restored, &backed_up);
        let names: Vec<(&str, &str)> =
            created.iter().map(|b| (b.resource_type.as_str(), b.resource_name.as_str())).collect();
        assert_eq!(names, [("GROUP", "billing"), ("TOPIC", "audit"), ("TOPIC", "dr-orders"), ("TOPIC", "orders")]);
        assert_eq!(created[3].pattern_type, "PREFIXED", "a prefix is kept as it was");
    }
}
