//! Group snapshots kept with a backup, `groups/snapshot-{taken_at_ms}.json` (create-only, O(1) each):
//! the selected groups' positions on the backed-up topics (consumer groups' committed offsets with
//! their protocol, assignor and members; share groups' start offsets) as of one moment.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::kafka::{CommittedOffset, GroupDescription, GroupListing, KafkaClient, KafkaError};
use crate::layout::{object_start, snapshot_key, SNAPSHOTS_DIR};
use crate::manifest::{to_json, Lifetime, ManifestError};
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
    /// Share groups' start offsets (the first record not yet acknowledged for good) by group, for
    /// backed-up topics only.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub share_groups: BTreeMap<String, Vec<GroupOffset>>,
    /// The consumer groups' protocol (classic or KIP-848), assignor and members with their
    /// subscriptions, by group: what to start again on the target (members cannot be restored).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub descriptions: BTreeMap<String, GroupDescription>,
}

impl GroupOffsetsSnapshot {
    /// The offsets of groups of `kind`.
    pub fn of_kind(&self, kind: GroupKind) -> &BTreeMap<String, Vec<GroupOffset>> {
        match kind {
            GroupKind::Consumer => &self.groups,
            GroupKind::Share => &self.share_groups,
        }
    }
}

/// Consumer groups commit the next offset they read; share groups keep a start offset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupKind {
    /// A consumer group, classic or KIP-848 (OffsetFetch / OffsetCommit).
    #[default]
    Consumer,
    /// A share group (DescribeShareGroupOffsets / AlterShareGroupOffsets).
    Share,
}

impl GroupKind {
    /// How the kind is named in plans and logs.
    pub fn label(self) -> &'static str {
        match self {
            Self::Consumer => "consumer group",
            Self::Share => "share group",
        }
    }
}

/// Reads the committed offsets of every consumer group and the start offsets of every share group
/// `selector` picks, keeping those on `topics`. Groups without such offsets are left out. A cluster that refuses to list or describe groups
/// (authorization, or a broker without those APIs) gives a warning instead of failing the backup.
pub async fn take_snapshot(
    client: &KafkaClient,
    selector: &TopicSelector,
    topics: &BTreeSet<String>,
    now_ms: i64,
) -> Result<(GroupOffsetsSnapshot, Vec<String>), KafkaError> {
    let mut snapshot = GroupOffsetsSnapshot {
        taken_at_ms: now_ms,
        groups: BTreeMap::new(),
        share_groups: BTreeMap::new(),
        descriptions: BTreeMap::new(),
    };
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
    // One request per coordinator for all the groups (an estate has thousands), not one per group.
    let (share, consumer): (Vec<GroupListing>, Vec<GroupListing>) =
        listed.into_iter().filter(|g| selector.matches(&g.group_id, false)).partition(GroupListing::is_share_group);
    let names = |groups: Vec<GroupListing>| groups.into_iter().map(|g| g.group_id).collect::<Vec<_>>();
    let (share, consumer) = (names(share), names(consumer));
    let kept = |answers: Vec<(String, Result<Vec<CommittedOffset>, KafkaError>)>, warnings: &mut Vec<String>| {
        let mut kept = BTreeMap::new();
        for (group, offsets) in answers {
            let offsets = match offsets {
                Ok(offsets) => offsets,
                Err(error) if error.is_refusal() => {
                    warnings.push(format!("offsets of group {group} were not captured: {error}"));
                    continue;
                }
                Err(error) => return Err(error),
            };
            let mut on_topics: Vec<GroupOffset> = offsets
                .into_iter()
                .filter(|o| topics.contains(&o.topic))
                .map(|o| GroupOffset { topic: o.topic, partition: o.partition, offset: o.offset, metadata: o.metadata })
                .collect();
            if !on_topics.is_empty() {
                on_topics.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
                kept.insert(group, on_topics);
            }
        }
        Ok(kept)
    };
    snapshot.groups = kept(client.committed_offsets_of(&consumer).await, &mut warnings)?;
    snapshot.share_groups = kept(client.share_group_offsets_of(&share).await, &mut warnings)?;
    let described: Vec<String> = snapshot.groups.keys().cloned().collect();
    for (group, description) in client.describe_groups(&described).await {
        match description {
            Ok(description) => {
                snapshot.descriptions.insert(group, description);
            }
            Err(error) if error.is_refusal() => {
                warnings.push(format!("the protocol and members of group {group} were not captured: {error}"))
            }
            Err(error) => return Err(error),
        }
    }
    Ok((snapshot, warnings))
}

/// The latest snapshot taken at or before `window_end` (the latest of all without a window end).
pub fn snapshot_for(snapshots: &[GroupOffsetsSnapshot], window_end: Option<i64>) -> Option<&GroupOffsetsSnapshot> {
    snapshots.iter().rev().find(|s| window_end.is_none_or(|end| s.taken_at_ms <= end))
}

/// The latest snapshot at or before `window_end` taken while the incarnation living `lifetime` was
/// the live one: offsets committed while another incarnation was live point at that one's records.
pub fn snapshot_during(
    snapshots: &[GroupOffsetsSnapshot],
    window_end: Option<i64>,
    lifetime: Lifetime,
) -> Option<&GroupOffsetsSnapshot> {
    let end = [window_end, lifetime.until_ms.map(|until| until - 1)].into_iter().flatten().min();
    snapshot_for(snapshots, end).filter(|s| lifetime.since_ms.is_none_or(|since| s.taken_at_ms >= since))
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
        let groups = BTreeMap::from([("billing".to_string(), offsets)]);
        GroupOffsetsSnapshot { taken_at_ms: at, groups, share_groups: BTreeMap::new(), descriptions: BTreeMap::new() }
    }

    #[test]
    fn an_incarnations_snapshot_is_the_latest_taken_while_it_was_live() {
        let snapshots: Vec<_> = [1_000, 2_000, 3_000].map(|at| snapshot(at, at / 100)).into();
        let taken = |end, since_ms, until_ms| {
            snapshot_during(&snapshots, end, Lifetime { since_ms, until_ms }).map(|s| s.taken_at_ms)
        };
        assert_eq!(taken(None, None, None), Some(3_000), "one incarnation: the latest");
        assert_eq!(taken(None, None, Some(2_500)), Some(2_000), "the first, until the second was found");
        assert_eq!(taken(None, None, Some(2_000)), Some(1_000), "a snapshot at the change is the new one's");
        assert_eq!(taken(None, Some(2_000), None), Some(3_000));
        assert_eq!(taken(Some(2_500), Some(2_000), None), Some(2_000), "the window end still bounds it");
        assert_eq!(taken(Some(2_500), Some(2_600), None), None, "none taken while it was live");
        assert_eq!(taken(None, Some(1_500), Some(1_900)), None);
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

    #[test]
    fn a_time_window_picks_the_latest_snapshot_at_or_before_its_end() {
        let snapshots: Vec<GroupOffsetsSnapshot> = [1_000, 2_000, 3_000]
            .into_iter()
            .map(|taken_at_ms| GroupOffsetsSnapshot {
                taken_at_ms,
                groups: BTreeMap::new(),
                share_groups: BTreeMap::new(),
                descriptions: BTreeMap::new(),
            })
            .collect();
        let pick = |end| snapshot_for(&snapshots, end).map(|s| s.taken_at_ms);
        assert_eq!(pick(None), Some(3_000));
        assert_eq!(pick(Some(2_000)), Some(2_000), "inclusive");
        assert_eq!(pick(Some(2_999)), Some(2_000));
        assert_eq!(pick(Some(999)), None);
    }
}
