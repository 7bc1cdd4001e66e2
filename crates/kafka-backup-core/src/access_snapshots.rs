//! Access snapshots kept with a backup, in `access/snapshot-{taken_at_ms}.json`, a new one whenever
//! they change: the ACL bindings on the backed-up topics and their groups (every binding with
//! `backup.cluster_acls`), the client quotas and the SCRAM users; and the bindings a restore
//! recreates from one, following topic renames.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::kafka::{AclBinding, ClientQuota, KafkaClient, KafkaError, ScramUser};
use crate::layout::{access_snapshot_key, object_start, ACCESS_DIR};
use crate::manifest::{to_json, ManifestError};
use crate::storage::{BackupStore, StorageError};

/// Who may do what at one moment; a part the cluster would not give is `None`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessSnapshot {
    /// When they were read (epoch ms).
    pub taken_at_ms: i64,
    /// The ACL bindings kept, sorted (`None` without an authorizer, or when refused).
    pub acls: Option<Vec<AclBinding>>,
    /// Every client quota.
    pub quotas: Option<Vec<ClientQuota>>,
    /// Every SCRAM user: names, mechanisms and iterations (the broker never returns secrets).
    pub scram_users: Option<Vec<ScramUser>>,
}

impl AccessSnapshot {
    /// Whether it holds anything (a cluster that gave nothing has no snapshot).
    fn is_empty(&self) -> bool {
        self.acls.is_none() && self.quotas.is_none() && self.scram_users.is_none()
    }

    /// Whether it holds the same as `other`, whenever each was taken.
    pub fn same_as(&self, other: &AccessSnapshot) -> bool {
        (&self.acls, &self.quotas, &self.scram_users) == (&other.acls, &other.quotas, &other.scram_users)
    }
}

/// Which ACL bindings an access snapshot keeps: those of the backed-up topics and of the groups
/// whose offsets the backup keeps, or everything.
pub struct AclScope<'a> {
    /// The backed-up topics.
    pub topics: &'a BTreeSet<String>,
    /// The groups in the backup's group-offset snapshot (selected, with offsets on its topics).
    pub groups: &'a BTreeSet<String>,
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
            "GROUP" => name == "*" || self.groups.contains(name),
            _ => false,
        }
    }
}

/// Reads the cluster's access metadata at `now_ms`: the ACL bindings `scope` keeps (none without an
/// authorizer), the client quotas and the SCRAM users. A part the cluster would not give (the
/// principal may not describe it, or the broker lacks the API) is left out with a warning naming
/// why; the backup goes on.
pub async fn read_access(client: &KafkaClient, scope: &AclScope<'_>, now_ms: i64) -> (AccessSnapshot, Vec<String>) {
    let mut warnings = Vec::new();
    let acls = optional("ACLs", client.describe_acls().await, &mut warnings).flatten();
    let acls = acls.map(|bindings| bindings.into_iter().filter(|b| scope.keeps(b)).collect());
    let quotas = optional("client quotas", client.describe_client_quotas().await, &mut warnings);
    let scram_users = optional("SCRAM users", client.describe_scram_users().await, &mut warnings);
    (AccessSnapshot { taken_at_ms: now_ms, acls, quotas, scram_users }, warnings)
}

/// `result`'s value; `None` with a warning when the cluster would not give it (a refusal names the
/// permission; a broker that lacks or garbles the API says so): this part never fails a backup.
fn optional<T>(what: &str, result: Result<T, KafkaError>, warnings: &mut Vec<String>) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(error) => {
            warnings.push(format!("{what} were not captured: {error}"));
            None
        }
    }
}

/// Stores `snapshot` (create-only) unless it is empty.
pub async fn save_access_snapshot(store: &BackupStore, snapshot: &AccessSnapshot) -> Result<(), StorageError> {
    if snapshot.is_empty() {
        return Ok(());
    }
    match store.put_new(&access_snapshot_key(snapshot.taken_at_ms), to_json(snapshot)).await {
        Err(StorageError::AlreadyExists { .. }) => Ok(()),
        other => other,
    }
}

/// The latest access snapshot taken at or before `at_ms` (any when `None`), if the backup holds one.
pub async fn latest_access_snapshot(
    store: &BackupStore,
    at_ms: Option<i64>,
) -> Result<Option<AccessSnapshot>, ManifestError> {
    let latest = store
        .list(ACCESS_DIR)
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
    bindings: &[AclBinding],
    restored_topics: &BTreeMap<String, String>,
    backed_up_topics: &BTreeSet<String>,
) -> Vec<AclBinding> {
    let mut restored = BTreeSet::new();
    for binding in bindings {
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
        let groups = BTreeSet::from(["billing-1".to_string()]);
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
        let bindings = [
            binding("TOPIC", "orders", "LITERAL", "READ"),
            binding("TOPIC", "payments", "LITERAL", "READ"),
            binding("TOPIC", "audit", "LITERAL", "READ"),
            binding("TOPIC", "orders", "PREFIXED", "WRITE"),
            binding("GROUP", "billing", "LITERAL", "READ"),
        ];
        let restored = BTreeMap::from([("orders".to_string(), "dr-orders".to_string())]);
        let backed_up = BTreeSet::from(["orders".to_string(), "payments".to_string()]);
        let created = bindings_to_restore(&bindings, &restored, &backed_up);
        let names: Vec<(&str, &str)> =
            created.iter().map(|b| (b.resource_type.as_str(), b.resource_name.as_str())).collect();
        assert_eq!(names, [("GROUP", "billing"), ("TOPIC", "audit"), ("TOPIC", "dr-orders"), ("TOPIC", "orders")]);
        assert_eq!(created[3].pattern_type, "PREFIXED", "a prefix is kept as it was");
    }
}
