//! The offset-reset plan: for each selected group and partition it committed on, the source offset
//! (from the latest snapshot at or before the restore's time window end) and the target offset.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::execute::target_offsets;
use super::restored::{restored_partitions, RestoredPartition};
use super::translate::{committed_record_timestamp, offset_for_timestamp, read_back_offset_map};
use super::GroupStrategy;
use crate::backup_location::load_manifest;
use crate::error::EngineError;
use crate::group_snapshots::{
    load_snapshots, snapshot_during, snapshot_for, GroupKind, GroupOffset, GroupOffsetsSnapshot,
};
use crate::kafka::{CommittedOffset, KafkaClient};
use crate::layout::stored_topic;
use crate::manifest::BackupManifest;
use crate::offset_map::OffsetMap;
use crate::restore::load_offset_map;
use crate::storage::BackupStore;
use crate::topics::TopicSelector;

/// Which groups a plan covers: consumer groups picked by name, and share groups when asked for.
#[derive(Debug, Clone)]
pub struct GroupSelection {
    selector: TopicSelector,
    named: Vec<String>,
    kinds: Vec<GroupKind>,
}

impl GroupSelection {
    /// Every consumer group of the snapshots.
    pub fn all() -> Self {
        Self::patterns(TopicSelector::new(&["*".to_string()], &[]).expect("valid pattern"))
    }

    /// The consumer groups named (globs and `~regex` allowed, as for topics); named groups that
    /// have no offsets to plan are reported.
    pub fn named(names: &[String]) -> Result<Self, String> {
        let named = names.iter().filter(|n| !n.starts_with('~') && !n.contains(['*', '?'])).cloned().collect();
        Ok(Self { selector: TopicSelector::new(names, &[])?, named, kinds: vec![GroupKind::Consumer] })
    }

    /// The consumer groups given as include/exclude patterns.
    pub fn patterns(selector: TopicSelector) -> Self {
        Self { selector, named: Vec::new(), kinds: vec![GroupKind::Consumer] }
    }

    /// Every share group of the snapshots, and no consumer group.
    pub fn share_groups() -> Self {
        Self { kinds: vec![GroupKind::Share], ..Self::all() }
    }

    /// The same selection, plus every share group when `include` holds.
    pub fn with_share_groups(mut self, include: bool) -> Self {
        if include && !self.kinds.contains(&GroupKind::Share) {
            self.kinds.push(GroupKind::Share);
        }
        self
    }

    /// Each group of `kind` in `snapshot` this selection covers, with its offsets.
    fn of<'s>(
        &'s self,
        snapshot: &'s GroupOffsetsSnapshot,
    ) -> impl Iterator<Item = (GroupKind, &'s String, &'s Vec<GroupOffset>)> + 's {
        self.kinds.iter().flat_map(move |&kind| {
            let selected = snapshot
                .of_kind(kind)
                .iter()
                .filter(move |(group, _)| kind == GroupKind::Share || self.includes(group));
            selected.map(move |(group, offsets)| (kind, group, offsets))
        })
    }

    /// Whether `group` is selected.
    pub fn includes(&self, group: &str) -> bool {
        self.selector.matches(group, false)
    }
}

/// One group's offset on one partition: where it stood on the source and where it resumes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlannedOffset {
    /// Group.
    pub group: String,
    /// Whether it is a consumer group or a share group.
    #[serde(default)]
    pub kind: GroupKind,
    /// Topic in the backup (source cluster).
    pub source_topic: String,
    /// Partition in the backup.
    pub source_partition: i32,
    /// Offset the group had committed on the source.
    pub source_offset: i64,
    /// When the snapshot holding that offset was taken (epoch ms).
    pub snapshot_taken_at_ms: i64,
    /// Target topic, when the partition was restored.
    pub target_topic: Option<String>,
    /// Target partition, when the partition was restored to one.
    pub target_partition: Option<i32>,
    /// Offset to commit on the target; `None` when it could not be translated (see `note`).
    pub target_offset: Option<i64>,
    /// Strategy that gave the target offset.
    pub method: GroupStrategy,
    /// Why it could not be translated, or how it was.
    pub note: Option<String>,
}

/// What `offset-reset plan` shows and `offset-reset execute` commits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResetPlan {
    /// Backup the offsets come from.
    pub backup_id: String,
    /// Cluster the offsets are for.
    pub target_cluster_id: String,
    /// Strategy asked for.
    pub strategy: GroupStrategy,
    /// Offsets by group, source topic and partition.
    pub offsets: Vec<PlannedOffset>,
    /// Things the operator should know.
    pub warnings: Vec<String>,
}

impl ResetPlan {
    /// Offsets with a target offset, by group.
    pub fn translated_by_group(&self) -> BTreeMap<&str, Vec<&PlannedOffset>> {
        let mut groups: BTreeMap<&str, Vec<&PlannedOffset>> = BTreeMap::new();
        for planned in self.offsets.iter().filter(|o| o.target_offset.is_some()) {
            groups.entry(&planned.group).or_default().push(planned);
        }
        groups
    }

    /// Offsets that could not be translated.
    pub fn untranslated(&self) -> impl Iterator<Item = &PlannedOffset> {
        self.offsets.iter().filter(|o| o.target_offset.is_none())
    }
}

fn refused(detail: String) -> EngineError {
    EngineError::OffsetRecovery { detail }
}

/// How the target offsets of one restored partition are found.
enum Translator {
    Map(OffsetMap),
    Timestamp,
    Unavailable(String),
}

/// The inputs of a plan.
struct PlanInputs<'a> {
    store: &'a BackupStore,
    backup_id: &'a str,
    target: Option<&'a KafkaClient>,
    strategy: GroupStrategy,
}

/// Plans the offsets of the `groups` selected, for the restores of the backup in `store` recorded
/// for target cluster `cluster_id`. Strategies that read the target need `target`.
pub async fn build_reset_plan(
    store: &BackupStore,
    backup_id: &str,
    cluster_id: &str,
    target: Option<&KafkaClient>,
    strategy: GroupStrategy,
    groups: &GroupSelection,
) -> Result<ResetPlan, EngineError> {
    if strategy == GroupStrategy::Skip {
        return Err(refused("strategy skip restores data only: there are no offsets to plan".to_string()));
    }
    if strategy.reads_target() && target.is_none() {
        return Err(refused(format!("strategy {strategy} reads the target cluster: connect to it")));
    }
    let inputs = PlanInputs { store, backup_id, target, strategy };
    let restored = restored_partitions(store, cluster_id).await?;
    if restored.is_empty() {
        return Err(refused(format!(
            "no restore of backup {backup_id} into cluster {cluster_id} is recorded in {}: restore the data first \
             (kafka-backup restore or three-phase-restore)",
            store.description()
        )));
    }
    let snapshots = load_snapshots(store).await?;
    let mut plan = ResetPlan {
        backup_id: backup_id.to_string(),
        target_cluster_id: cluster_id.to_string(),
        strategy,
        offsets: Vec::new(),
        warnings: Vec::new(),
    };
    if snapshots.is_empty() {
        plan.warnings.push(
            "the backup holds no consumer-group snapshot (no group had offsets on the backed-up topics, or the \
             source refused to list groups)"
                .to_string(),
        );
    }
    let mut planner = Planner { inputs, manifest: None, target_commits: BTreeMap::new() };
    for route in &restored {
        let window_end = route.started.identity.window_end;
        let snapshot = match route.started.identity.source_incarnation {
            None => snapshot_for(&snapshots, window_end),
            Some(incarnation) => {
                let topic = &route.started.identity.source_topic;
                let lifetime = planner.manifest().await?.lifetime(topic, incarnation);
                let snapshot = snapshot_during(&snapshots, window_end, lifetime);
                if snapshot.is_none() {
                    let warning = format!(
                        "no group snapshot was taken while incarnation {incarnation} of topic {topic} was backed up: \
                         the groups' offsets on it are not translated (those of other incarnations point elsewhere)"
                    );
                    if !plan.warnings.contains(&warning) {
                        plan.warnings.push(warning);
                    }
                    continue;
                }
                snapshot
            }
        };
        let Some(snapshot) = snapshot else {
            if let Some(earliest) = snapshots.first() {
                let warning = format!(
                    "no group snapshot was taken at or before {} (the time window end); the earliest is from {}. \
                     Where the groups stood at the window end is unknown, so their offsets on the restored \
                     partitions are not translated (a later position could skip restored records). Snapshots \
                     come from backup runs and continuous-mode checkpoints: restore to a time after one, or \
                     without time_window_end",
                    window_end.unwrap_or_default(),
                    earliest.taken_at_ms
                );
                if !plan.warnings.contains(&warning) {
                    plan.warnings.push(warning);
                }
            }
            continue;
        };
        let wanted: Vec<(GroupKind, &String, &GroupOffset)> = groups
            .of(snapshot)
            .flat_map(|(kind, group, offsets)| {
                offsets.iter().filter(|o| route.restores(&o.topic, o.partition)).map(move |o| (kind, group, o))
            })
            .collect();
        if !wanted.is_empty() {
            planner.plan_route(route, snapshot.taken_at_ms, &wanted, &mut plan.offsets).await?;
        }
    }
    if let Some(latest) = snapshots.last() {
        for (kind, group, offsets) in groups.of(latest) {
            for committed in offsets.iter().filter(|o| !restored.iter().any(|r| r.restores(&o.topic, o.partition))) {
                plan.offsets.push(PlannedOffset {
                    group: group.clone(),
                    kind,
                    source_topic: committed.topic.clone(),
                    source_partition: committed.partition,
                    source_offset: committed.offset,
                    snapshot_taken_at_ms: latest.taken_at_ms,
                    target_topic: None,
                    target_partition: None,
                    target_offset: None,
                    method: strategy,
                    note: Some(format!(
                        "{}-{} was not restored into cluster {cluster_id}",
                        committed.topic, committed.partition
                    )),
                });
            }
        }
    }
    for name in &groups.named {
        if !plan.offsets.iter().any(|o| &o.group == name) {
            plan.warnings
                .push(format!("group {name} has no committed offsets on the backed-up topics in the snapshots"));
        }
    }
    plan.offsets.sort_by(|a, b| {
        (&a.group, &a.source_topic, a.source_partition, &a.target_topic, a.target_partition).cmp(&(
            &b.group,
            &b.source_topic,
            b.source_partition,
            &b.target_topic,
            b.target_partition,
        ))
    });
    Ok(plan)
}

impl Planner<'_> {
    /// The backup's manifest, read on first use.
    async fn manifest(&mut self) -> Result<&BackupManifest, EngineError> {
        if self.manifest.is_none() {
            self.manifest = Some(load_manifest(self.inputs.store, self.inputs.backup_id).await?);
        }
        Ok(self.manifest.as_ref().expect("just read"))
    }
}

/// Plan state shared across restored partitions: the manifest and target commits, read once.
struct Planner<'a> {
    inputs: PlanInputs<'a>,
    manifest: Option<BackupManifest>,
    target_commits: BTreeMap<(GroupKind, String), Vec<CommittedOffset>>,
}

impl Planner<'_> {
    async fn plan_route(
        &mut self,
        route: &RestoredPartition,
        taken_at_ms: i64,
        wanted: &[(GroupKind, &String, &GroupOffset)],
        out: &mut Vec<PlannedOffset>,
    ) -> Result<(), EngineError> {
        let strategy = self.inputs.strategy;
        let translator = self.translator(route).await?;
        for &(kind, group, committed) in wanted {
            let (mut target_offset, mut note) = match &translator {
                Translator::Map(map) => (Some(map.translate(committed.offset)), None),
                Translator::Unavailable(reason) => (None, Some(reason.clone())),
                Translator::Timestamp => {
                    let (offset, note) = self.by_timestamp(route, committed).await?;
                    (Some(offset), Some(note))
                }
            };
            if let (GroupStrategy::ClusterScan, Some(partition)) = (strategy, route.target_partition) {
                if let Some(existing) = self.target_commit(kind, group, &route.target_topic, partition).await? {
                    target_offset = Some(existing);
                    note = Some(format!("kept: the group already committed {existing} here on the target"));
                }
            }
            out.push(PlannedOffset {
                group: group.clone(),
                kind,
                source_topic: committed.topic.clone(),
                source_partition: committed.partition,
                source_offset: committed.offset,
                snapshot_taken_at_ms: taken_at_ms,
                target_topic: Some(route.target_topic.clone()),
                target_partition: route.target_partition,
                target_offset,
                method: strategy,
                note,
            });
        }
        Ok(())
    }

    async fn translator(&self, route: &RestoredPartition) -> Result<Translator, EngineError> {
        let Some(partition) = route.target_partition else {
            return Ok(Translator::Unavailable(
                "records were routed by key into another partition count: a source offset has no single target \
                 position; start these consumers from the earliest offset or a timestamp"
                    .to_string(),
            ));
        };
        Ok(match self.inputs.strategy {
            GroupStrategy::Exact | GroupStrategy::Manual | GroupStrategy::Skip => {
                Translator::Map(load_offset_map(self.inputs.store, &route.dir, &route.started, partition, None).await?)
            }
            GroupStrategy::TimestampBased => Translator::Timestamp,
            GroupStrategy::HeaderBased | GroupStrategy::ClusterScan => {
                if !route.started.identity.include_original_offset_header {
                    return Ok(Translator::Unavailable(format!(
                        "{}-{partition} was restored without include_original_offset_header: its records carry no \
                         x-original-offset; use the exact strategy",
                        route.target_topic
                    )));
                }
                let client = self.inputs.target.expect("checked: header strategies have a target");
                match read_back_offset_map(client, &route.target_topic, partition).await? {
                    Ok(map) => Translator::Map(map),
                    Err(reason) => Translator::Unavailable(reason),
                }
            }
        })
    }

    async fn by_timestamp(
        &mut self,
        route: &RestoredPartition,
        committed: &GroupOffset,
    ) -> Result<(i64, String), EngineError> {
        let store = self.inputs.store;
        let incarnation = route.started.identity.source_incarnation.unwrap_or(1);
        let backed_up = self
            .manifest()
            .await?
            .topic(&stored_topic(&committed.topic, incarnation))
            .and_then(|t| t.partitions.iter().find(|p| p.partition == committed.partition));
        let timestamp = match backed_up {
            Some(partition) => committed_record_timestamp(store, partition, committed.offset).await?,
            None => None,
        };
        let client = self.inputs.target.expect("checked: timestamp-based has a target");
        let (topic, partition) = (route.target_topic.as_str(), route.target_partition.expect("one target partition"));
        let offset = offset_for_timestamp(timestamp, |spec| client.partition_offset(topic, partition, spec))
            .await
            .map_err(EngineError::kafka(format!("looking up {topic}-{partition} by timestamp")))?;
        let note = match timestamp {
            Some(ts) => format!("first target record at or after {ts}, the committed record's timestamp"),
            None => "the backup holds no record at or after the committed offset: the end".to_string(),
        };
        Ok((offset, note))
    }

    async fn target_commit(
        &mut self,
        kind: GroupKind,
        group: &str,
        topic: &str,
        partition: i32,
    ) -> Result<Option<i64>, EngineError> {
        let key = (kind, group.to_string());
        if !self.target_commits.contains_key(&key) {
            let client = self.inputs.target.expect("checked: cluster-scan has a target");
            let offsets = target_offsets(client, kind, group).await?;
            self.target_commits.insert(key.clone(), offsets);
        }
        Ok(self.target_commits[&key].iter().find(|o| o.topic == topic && o.partition == partition).map(|o| o.offset))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_groups_are_literal_names_and_patterns_select() {
        let selection = GroupSelection::named(&["billing".to_string(), "audit-*".to_string()]).unwrap();
        assert_eq!(selection.named, vec!["billing".to_string()]);
        assert!(selection.includes("billing") && selection.includes("audit-eu") && !selection.includes("other"));
        assert!(GroupSelection::all().includes("anything"));
    }

    #[test]
    fn share_groups_are_planned_only_when_asked_for() {
        let offsets = |offset| vec![GroupOffset { topic: "t".into(), partition: 0, offset, metadata: None }];
        let snapshot = GroupOffsetsSnapshot {
            taken_at_ms: 1,
            groups: BTreeMap::from([("billing".to_string(), offsets(5))]),
            share_groups: BTreeMap::from([("queue".to_string(), offsets(7))]),
            descriptions: BTreeMap::new(),
        };
        let names = |selection: &GroupSelection| -> Vec<(GroupKind, String)> {
            selection.of(&snapshot).map(|(kind, group, _)| (kind, group.clone())).collect()
        };
        let consumer = (GroupKind::Consumer, "billing".to_string());
        let share = (GroupKind::Share, "queue".to_string());
        assert_eq!(names(&GroupSelection::all()), vec![consumer.clone()]);
        assert_eq!(names(&GroupSelection::all().with_share_groups(true)), vec![consumer, share.clone()]);
        assert_eq!(names(&GroupSelection::share_groups()), vec![share]);
        assert!(names(&GroupSelection::named(&["other".to_string()]).unwrap()).is_empty());
    }
}
