//! Applying a plan on the target and undoing it: groups with active members are refused, and each
//! group's current offsets are saved (`layout::reset_key`) before any commit. Consumer groups get
//! committed offsets, share groups start offsets (AlterShareGroupOffsets).

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::ResponseError;
use serde::{Deserialize, Serialize};

use super::{GroupStrategy, ResetPlan};
use crate::clock::now_ms;
use crate::error::EngineError;
use crate::group_snapshots::{GroupKind, GroupOffset};
use crate::kafka::{CommittedOffset, KafkaClient, KafkaError};
use crate::layout::{parse_reset_key, reset_key, resets_dir, rolled_back_key};
use crate::manifest::to_json;
use crate::metrics::metrics;
use crate::storage::{BackupStore, StorageError};

/// What one `offset-reset execute` changed, saved before it changed anything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResetRecord {
    /// `reset-{epoch ms}`, the name `offset-reset rollback --reset-id` takes.
    pub reset_id: String,
    /// Backup the offsets came from.
    pub backup_id: String,
    /// Cluster the offsets were committed to.
    pub target_cluster_id: String,
    /// Strategy of the plan.
    pub strategy: GroupStrategy,
    /// Per group: its offsets before and after.
    pub groups: BTreeMap<String, GroupReset>,
}

/// One group's offsets before and after a reset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupReset {
    /// Whether it is a consumer group or a share group.
    #[serde(default)]
    pub kind: GroupKind,
    /// Whether the group had any committed offset on the target before the reset.
    pub had_offsets: bool,
    /// Its offsets on the reset partitions before (a partition missing here had none).
    pub previous: Vec<GroupOffset>,
    /// The offsets committed.
    pub applied: Vec<GroupOffset>,
}

/// What a rollback did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RollbackReport {
    /// The reset undone.
    pub reset_id: String,
    /// Groups given back their previous offsets.
    pub restored: Vec<String>,
    /// Groups deleted because they had no offsets before the reset.
    pub deleted: Vec<String>,
}

#[derive(Serialize)]
struct RolledBack {
    rolled_back_at_ms: i64,
}

fn refused(detail: String) -> EngineError {
    EngineError::OffsetRecovery { detail }
}

fn committed(offsets: &[GroupOffset]) -> Vec<CommittedOffset> {
    offsets
        .iter()
        .map(|o| CommittedOffset {
            topic: o.topic.clone(),
            partition: o.partition,
            offset: o.offset,
            metadata: o.metadata.clone(),
        })
        .collect()
}

/// Refuses when any of `groups` has members on the target (or is rebalancing).
async fn ensure_inactive<'a>(
    client: &KafkaClient,
    groups: impl Iterator<Item = (GroupKind, &'a str)>,
) -> Result<(), EngineError> {
    let mut active = Vec::new();
    let mut share_groups = Vec::new();
    for (kind, group) in groups {
        if kind == GroupKind::Share {
            share_groups.push(group);
            continue;
        }
        let described = client
            .describe_group(group)
            .await
            .map_err(EngineError::kafka(format!("describing group {group} on the target")))?;
        if !described.members.is_empty() || !matches!(described.state.as_str(), "Empty" | "Dead" | "") {
            active.push(format!("{group} ({}, {} members)", described.state, described.members.len()));
        }
    }
    if !share_groups.is_empty() {
        // DescribeGroups does not see share groups; ListGroups gives their state.
        let listed = client.list_groups().await.map_err(EngineError::kafka("listing the target's groups"))?;
        let busy = listed.iter().filter(|g| g.is_share_group() && share_groups.contains(&g.group_id.as_str()));
        active.extend(busy.filter(|g| g.state != "Empty").map(|g| format!("share group {} ({})", g.group_id, g.state)));
    }
    if active.is_empty() {
        Ok(())
    } else {
        Err(EngineError::GroupsActive { groups: active })
    }
}

/// The offsets `group` has on the target: committed offsets, or a share group's start offsets.
pub(super) async fn target_offsets(
    client: &KafkaClient,
    kind: GroupKind,
    group: &str,
) -> Result<Vec<CommittedOffset>, EngineError> {
    let read = match kind {
        GroupKind::Consumer => client.committed_offsets(group).await,
        GroupKind::Share => match client.share_group_offsets(group).await {
            Err(error) if error.response_error() == Some(ResponseError::GroupIdNotFound) => Ok(vec![]),
            other => other,
        },
    };
    read.map_err(EngineError::kafka(format!("reading the target's offsets of {} {group}", kind.label())))
}

/// A commit refused because members joined meanwhile is reported like an active group.
fn commit_failed(group: &str) -> impl FnOnce(KafkaError) -> EngineError + '_ {
    move |error| match error.response_error() {
        Some(
            ResponseError::UnknownMemberId
            | ResponseError::RebalanceInProgress
            | ResponseError::IllegalGeneration
            | ResponseError::NonEmptyGroup,
        ) => {
            EngineError::GroupsActive { groups: vec![format!("{group} (the coordinator refused the commit: {error})")] }
        }
        _ => EngineError::kafka(format!("committing the offsets of group {group} on the target"))(error),
    }
}

/// Sets `offsets` as the committed offsets (consumer group) or start offsets (share group) of `group`.
async fn set_offsets(
    client: &KafkaClient,
    kind: GroupKind,
    group: &str,
    offsets: &[GroupOffset],
) -> Result<(), EngineError> {
    let offsets = committed(offsets);
    match kind {
        GroupKind::Consumer => client.commit_offsets(group, &offsets).await,
        GroupKind::Share => client.alter_share_group_offsets(group, &offsets).await,
    }
    .map_err(commit_failed(group))
}

/// Commits the translated offsets of `plan` on the target, after checking that no group has
/// active members and saving every group's current offsets for `rollback`. `None` when the plan
/// has nothing to commit.
pub async fn execute_plan(
    client: &KafkaClient,
    store: &BackupStore,
    plan: &ResetPlan,
) -> Result<Option<ResetRecord>, EngineError> {
    if plan.strategy == GroupStrategy::Manual {
        return Err(refused(
            "strategy manual only reports the offsets: apply them by hand, or plan with another strategy to execute"
                .to_string(),
        ));
    }
    let by_group = plan.translated_by_group();
    if by_group.is_empty() {
        return Ok(None);
    }
    let outcome = |name: &str, count: usize| metrics().offset_resets.with_label_values(&[name]).inc_by(count as u64);
    let planned: usize = by_group.values().map(|offsets| offsets.len()).sum();
    let kinds = by_group.iter().map(|(&group, offsets)| (offsets[0].kind, group));
    ensure_inactive(client, kinds).await.inspect_err(|_| outcome("refused", planned))?;
    let mut record = ResetRecord {
        reset_id: format!("reset-{:020}", now_ms()),
        backup_id: plan.backup_id.clone(),
        target_cluster_id: plan.target_cluster_id.clone(),
        strategy: plan.strategy,
        groups: BTreeMap::new(),
    };
    for (&group, planned) in &by_group {
        let kind = planned[0].kind;
        let current = target_offsets(client, kind, group).await?;
        let applied: Vec<GroupOffset> = planned
            .iter()
            .filter_map(|p| {
                Some(GroupOffset {
                    topic: p.target_topic.clone()?,
                    partition: p.target_partition?,
                    offset: p.target_offset?,
                    metadata: None,
                })
            })
            .collect();
        let previous = current
            .iter()
            .filter(|c| applied.iter().any(|a| a.topic == c.topic && a.partition == c.partition))
            .map(|c| GroupOffset {
                topic: c.topic.clone(),
                partition: c.partition,
                offset: c.offset,
                metadata: c.metadata.clone(),
            })
            .collect();
        let reset = GroupReset { kind, had_offsets: !current.is_empty(), previous, applied };
        record.groups.insert(group.to_string(), reset);
    }
    let key = reset_key(&plan.target_cluster_id, &record.reset_id);
    store.put_new(&key, to_json(&record)).await.map_err(|error| match error {
        StorageError::AlreadyExists { .. } => EngineError::Conflict { key: key.clone() },
        other => other.into(),
    })?;
    for (group, reset) in &record.groups {
        set_offsets(client, reset.kind, group, &reset.applied).await?;
        outcome("committed", reset.applied.len());
    }
    outcome("untranslated", planned - record.groups.values().map(|reset| reset.applied.len()).sum::<usize>());
    Ok(Some(record))
}

/// Undoes reset `reset_id` (the latest one not rolled back when `None`) on cluster `cluster_id`:
/// groups get back their previous offsets, offsets that did not exist are deleted, and groups that
/// had no offsets at all are deleted.
pub async fn rollback(
    client: &KafkaClient,
    store: &BackupStore,
    cluster_id: &str,
    reset_id: Option<&str>,
) -> Result<RollbackReport, EngineError> {
    let keys: Vec<String> = store.list(&resets_dir(cluster_id)).await?.into_iter().map(|o| o.key).collect();
    let found: Vec<(&str, bool)> = keys.iter().filter_map(|key| parse_reset_key(key)).collect();
    let rolled_back: BTreeSet<&str> = found.iter().filter(|(_, marker)| *marker).map(|(id, _)| *id).collect();
    let resets: Vec<&str> = found.iter().filter(|(_, marker)| !*marker).map(|(id, _)| *id).collect();
    let chosen = match reset_id {
        Some(id) if rolled_back.contains(id) => return Err(refused(format!("{id} was already rolled back"))),
        Some(id) if resets.contains(&id) => id,
        Some(id) => {
            return Err(refused(format!(
                "there is no offset reset {id} for cluster {cluster_id} in {}; resets found: {}",
                store.description(),
                if resets.is_empty() { "none".to_string() } else { resets.join(", ") }
            )))
        }
        None => resets.iter().rev().find(|id| !rolled_back.contains(*id)).copied().ok_or_else(|| {
            refused(format!(
                "no offset reset into cluster {cluster_id} is left to roll back in {}",
                store.description()
            ))
        })?,
    };
    let key = reset_key(cluster_id, chosen);
    let record: ResetRecord = serde_json::from_slice(&store.get(&key).await?)
        .map_err(|e| refused(format!("{key} is unreadable ({e}); roll back by hand from its contents")))?;
    ensure_inactive(client, record.groups.iter().map(|(group, reset)| (reset.kind, group.as_str()))).await?;
    let mut report = RollbackReport { reset_id: chosen.to_string(), restored: Vec::new(), deleted: Vec::new() };
    for (group, reset) in &record.groups {
        if !reset.had_offsets {
            match client.delete_group(group).await {
                Ok(()) => {}
                Err(error) if error.response_error() == Some(ResponseError::GroupIdNotFound) => {}
                Err(error) => return Err(EngineError::kafka(format!("deleting group {group} on the target"))(error)),
            }
            report.deleted.push(group.clone());
            continue;
        }
        if !reset.previous.is_empty() {
            set_offsets(client, reset.kind, group, &reset.previous).await?;
        }
        let mut unset: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for applied in &reset.applied {
            if !reset.previous.iter().any(|p| p.topic == applied.topic && p.partition == applied.partition) {
                unset.entry(&applied.topic).or_default().push(applied.partition);
            }
        }
        for (topic, partitions) in unset {
            if reset.kind == GroupKind::Share {
                // A share group's positions are deleted by whole topic: the partitions that keep
                // theirs are set again.
                let kept: Vec<GroupOffset> = target_offsets(client, reset.kind, group)
                    .await?
                    .into_iter()
                    .filter(|o| o.topic == topic && !partitions.contains(&o.partition))
                    .map(|o| GroupOffset { topic: o.topic, partition: o.partition, offset: o.offset, metadata: None })
                    .collect();
                client
                    .delete_share_group_offsets(group, topic)
                    .await
                    .map_err(EngineError::kafka(format!("deleting share group {group}'s offsets on {topic}")))?;
                if !kept.is_empty() {
                    set_offsets(client, reset.kind, group, &kept).await?;
                }
                continue;
            }
            client.delete_offsets(group, topic, &partitions).await.map_err(|error| match error {
                KafkaError::UnsupportedApi { .. } => refused(format!(
                    "the target cannot delete committed offsets (no OffsetDelete API): group {group} had no offset \
                     on {topic} partitions {partitions:?} before {chosen}; set them by hand"
                )),
                other => EngineError::kafka(format!("deleting offsets of group {group} on {topic}"))(other),
            })?;
        }
        report.restored.push(group.clone());
    }
    let marker = rolled_back_key(cluster_id, chosen);
    store.put_new(&marker, to_json(&RolledBack { rolled_back_at_ms: now_ms() })).await?;
    Ok(report)
}
