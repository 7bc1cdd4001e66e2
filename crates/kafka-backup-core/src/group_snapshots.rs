//! Consumer-group offset snapshots kept with a backup: the committed offsets of the selected
//! groups on the backed-up topics, as of one moment, in `groups/snapshot-{taken_at_ms}.json`
//! (create-only, one small object each, so continuous mode keeps a history at O(1) per snapshot).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::kafka::{KafkaClient, KafkaError};
use crate::layout::{object_start, snapshot_key, SNAPSHOTS_DIR};
use crate::manifest::{to_json, ManifestError};
use crate::storage::{BackupStore, StorageError};
use crate::topics::TopicSelector;

/// One committed offset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupOffset {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Next offset the group reads.
    pub offset: i64,
    /// Metadata committed with it.
    pub metadata: Option<String>,
}

/// The committed offsets of the selected groups at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupOffsetsSnapshot {
    /// When the offsets were read (epoch ms).
    pub taken_at_ms: i64,
    /// Offsets by group, for backed-up topics only.
    pub groups: BTreeMap<String, Vec<GroupOffset>>,
}

/// Reads the committed offsets of every group `selector` picks, keeping those on `topics`.
/// Groups without such offsets are left out. A cluster that refuses to list or describe groups
/// (authorization, or a broker without those APIs) gives a warning instead of failing the backup.
pub async fn take_snapshot(
    client: &KafkaClient,
    selector: &TopicSelector,
    topics: &BTreeSet<String>,
    now_ms: i64,
) -> Result<(GroupOffsetsSnapshot, Vec<String>), KafkaError> {
    let mut snapshot = GroupOffsetsSnapshot { taken_at_ms: now_ms, groups: BTreeMap::new() };
    let mut warnings = Vec::new();
    let listed = match client.list_groups().await {
        Ok(listed) => listed,
        Err(error) if error.is_refusal() => {
            warnings.push(format!("consumer-group offsets were not captured: {error}"));
            return Ok((snapshot, warnings));
        }
        Err(error) => return Err(error),
    };
    // ListGroups leaves out the groups the principal may not Describe: a group named in the
    // selection that is not listed is either absent or hidden, and the operator must know.
    for name in selector.exact_names() {
        if !listed.iter().any(|g| g.group_id == name) {
            warnings.push(format!(
                "offsets of group {name} were not captured: the cluster lists no such group to this principal (it \
                 does not exist, or the principal lacks the ACL Describe on it)"
            ));
        }
    }
    for group in listed.into_iter().filter(|g| selector.matches(&g.group_id, false)) {
        let offsets = match client.committed_offsets(&group.group_id).await {
            Ok(offsets) => offsets,
            Err(error) if error.is_refusal() => {
                warnings.push(format!("offsets of group {} were not captured: {error}", group.group_id));
                continue;
            }
            Err(error) => return Err(error),
        };
        let mut kept: Vec<GroupOffset> = offsets
            .into_iter()
            .filter(|o| topics.contains(&o.topic))
            .map(|o| GroupOffset { topic: o.topic, partition: o.partition, offset: o.offset, metadata: o.metadata })
            .collect();
        if !kept.is_empty() {
            kept.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
            snapshot.groups.insert(group.group_id, kept);
        }
    }
    Ok((snapshot, warnings))
}

/// Stores a snapshot in the backup directory `store`.
pub async fn save_snapshot(store: &BackupStore, snapshot: &GroupOffsetsSnapshot) -> Result<(), StorageError> {
    let key = snapshot_key(snapshot.taken_at_ms);
    match store.put_new(&key, to_json(snapshot)).await {
        // Two snapshots in the same millisecond hold the same offsets.
        Err(StorageError::AlreadyExists { .. }) => Ok(()),
        other => other,
    }
}

/// Deletes the snapshots taken before `cutoff_ms` but the latest of them (which still gives the
/// offsets at the start of the data kept); with `dry_run`, only counts. Returns how many go.
pub async fn prune_snapshots(store: &BackupStore, cutoff_ms: i64, dry_run: bool) -> Result<usize, StorageError> {
    let mut old: Vec<(i64, String)> = store
        .list(SNAPSHOTS_DIR)
        .await?
        .into_iter()
        .filter_map(|object| match object_start(&object.key) {
            Some(("snapshot", taken_at_ms)) if taken_at_ms < cutoff_ms => Some((taken_at_ms, object.key)),
            _ => None,
        })
        .collect();
    old.sort();
    old.pop();
    if !dry_run {
        for (_, key) in &old {
            store.delete(key).await?;
        }
    }
    Ok(old.len())
}

/// Every snapshot of the backup directory `store`, oldest first.
pub async fn load_snapshots(store: &BackupStore) -> Result<Vec<GroupOffsetsSnapshot>, ManifestError> {
    let mut snapshots = Vec::new();
    for object in store.list(SNAPSHOTS_DIR).await? {
        let body = store.get(&object.key).await?;
        let snapshot: GroupOffsetsSnapshot =
            serde_json::from_slice(&body).map_err(|source| ManifestError::Parse { key: object.key.clone(), source })?;
        snapshots.push(snapshot);
    }
    snapshots.sort_by_key(|s| s.taken_at_ms);
    Ok(snapshots)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::StorageConfig;

    fn snapshot(at: i64, offset: i64) -> GroupOffsetsSnapshot {
        let offsets = vec![GroupOffset { topic: "t".into(), partition: 0, offset, metadata: None }];
        GroupOffsetsSnapshot { taken_at_ms: at, groups: BTreeMap::from([("billing".to_string(), offsets)]) }
    }

    #[tokio::test]
    async fn snapshots_are_kept_as_an_ordered_history() {
        let store = BackupStore::open(&StorageConfig::Memory { prefix: String::new() }).unwrap();
        for (at, offset) in [(3_000, 30), (1_000, 10), (2_000, 20)] {
            save_snapshot(&store, &snapshot(at, offset)).await.unwrap();
        }
        save_snapshot(&store, &snapshot(2_000, 20)).await.unwrap();
        let history = load_snapshots(&store).await.unwrap();
        assert_eq!(history.iter().map(|s| s.taken_at_ms).collect::<Vec<_>>(), vec![1_000, 2_000, 3_000]);
        assert_eq!(history[1], snapshot(2_000, 20));
    }
}
