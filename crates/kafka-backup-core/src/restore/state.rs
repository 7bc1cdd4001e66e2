//! Durable restore progress, stored with the backup: `started.json` says what is restored and
//! where each target partition ended when it began; one commit record per restored source segment
//! holds, per target partition, the offset map of the batches produced from it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::RestoreSettings;
use crate::error::EngineError;
use crate::layout::{restore_commit_key, restore_started_key, RestoreStateDir, RESTORES_DIR};
use crate::manifest::to_json;
use crate::offset_map::{MappedBatch, OffsetMap};
use crate::storage::{BackupStore, StorageError};

/// What a restore writes; a re-run with anything different is refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestoreIdentity {
    /// Topic in the backup.
    pub source_topic: String,
    /// Source partitions restored (one, or all of a repartitioned topic).
    pub source_partitions: Vec<i32>,
    /// Target partition count when records are routed by key, else `None`.
    pub repartitioned_into: Option<i32>,
    /// Time window start.
    pub window_start: Option<i64>,
    /// Time window end.
    pub window_end: Option<i64>,
    /// First source offset restored, by source partition (`restore.start_offset`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub start_offsets: BTreeMap<i32, i64>,
    /// The incarnation of a topic re-created while it was backed up (`restore.incarnations`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_incarnation: Option<u32>,
    /// Produce codec, if changed.
    pub produce_compression: Option<String>,
    /// Whether records carry `x-original-offset`.
    pub include_original_offset_header: bool,
}

impl RestoreIdentity {
    /// The identity of restoring `source_partitions` of `source_topic` with `settings`.
    pub fn new(
        settings: &RestoreSettings,
        source_topic: &str,
        source_partitions: Vec<i32>,
        repartitioned_into: Option<i32>,
    ) -> Self {
        let start_offsets = source_partitions
            .iter()
            .filter_map(|&p| settings.start_offset.of(source_topic, p).map(|start| (p, start)))
            .collect();
        Self {
            source_topic: source_topic.to_string(),
            source_partitions,
            repartitioned_into,
            window_start: settings.window.start,
            window_end: settings.window.end,
            start_offsets,
            source_incarnation: settings.incarnations.get(source_topic).copied(),
            produce_compression: settings.produce_compression.map(|c| c.name().to_string()),
            include_original_offset_header: settings.include_original_offset_header,
        }
    }
}

/// Every restore state directory recorded in the backup `store` holds.
pub async fn recorded_state_dirs(store: &BackupStore) -> Result<Vec<RestoreStateDir>, EngineError> {
    Ok(store
        .list(RESTORES_DIR)
        .await?
        .iter()
        .filter_map(|object| RestoreStateDir::of_started_key(&object.key))
        .collect())
}

/// `started.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestoreStarted {
    /// What is restored.
    pub identity: RestoreIdentity,
    /// End offset of each target partition when the restore began.
    pub target_start: BTreeMap<i32, i64>,
}

/// A restored source segment (`p{source partition}-segment-{start}.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestoreCommit {
    /// Partition in the backup.
    pub source_partition: i32,
    /// Key of the source segment in the backup.
    pub source_segment: String,
    /// Start offset of the source segment (orders commits).
    pub source_start: i64,
    /// Produced batches per target partition, in order.
    pub batches: BTreeMap<i32, Vec<MappedBatch>>,
    /// Target offset after this segment's records, per target partition written so far.
    pub target_next: BTreeMap<i32, i64>,
    /// Null-keyed records routed round-robin so far (repartitioned restores).
    pub null_keys_routed: u64,
}

/// The progress found for a restore.
pub struct RestoreProgress {
    /// True when an earlier run had started this restore.
    pub resumed: bool,
    /// Commit records by source segment key.
    pub commits: BTreeMap<String, RestoreCommit>,
    /// Where each target partition continues.
    pub target_next: BTreeMap<i32, i64>,
    /// Round-robin position for null keys.
    pub null_keys_routed: u64,
}

fn unreadable(dir: &str, key: &str, error: serde_json::Error) -> EngineError {
    EngineError::RestoreState {
        dir: dir.to_string(),
        detail: format!("{key} is unreadable ({error}); delete {dir} to start over"),
    }
}

/// Reads the progress in `dir`, or records a new start (`target_start` reads the target's end
/// offsets, only then). A recorded restore of something else is refused. The state files a killed
/// run left staged in `dir` are removed first, unless workers share the restore (`shared`): the
/// worker that held the partition before a rebalance may still be writing there, and removing its
/// staging file would fail its write.
pub async fn load_progress<F, Fut>(
    store: &BackupStore,
    (dir, shared): (&str, bool),
    identity: RestoreIdentity,
    target_start: F,
) -> Result<RestoreProgress, EngineError>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<BTreeMap<i32, i64>, EngineError>>,
{
    let leftovers = if shared { 0 } else { store.remove_staging_leftovers(dir, &[])? };
    if leftovers > 0 {
        tracing::info!(dir, count = leftovers, "removed restore state files left staged by an interrupted run");
    }
    let (started, resumed) = match load_started(store, dir).await? {
        Some(recorded) => {
            if recorded.identity != identity {
                return Err(EngineError::RestoreState {
                    dir: dir.to_string(),
                    detail: format!(
                        "an earlier restore of {:?} into this target is recorded in {}/{dir}; restore into another \
                         topic, or delete that directory to start over",
                        recorded.identity,
                        store.description()
                    ),
                });
            }
            (recorded, true)
        }
        None => {
            let started = RestoreStarted { identity, target_start: target_start().await? };
            store.put_new(&restore_started_key(dir), to_json(&started)).await?;
            (started, false)
        }
    };
    let commits = read_commits(store, dir).await?;
    let mut target_next = started.target_start;
    let mut null_keys_routed = 0;
    for commit in &commits {
        target_next.extend(commit.target_next.iter().map(|(&p, &o)| (p, o)));
        null_keys_routed = commit.null_keys_routed;
    }
    let commits = commits.into_iter().map(|c| (c.source_segment.clone(), c)).collect();
    Ok(RestoreProgress { resumed, commits, target_next, null_keys_routed })
}

/// Reads `started.json` of the restore state directory `dir`, if a restore began there.
pub async fn load_started(store: &BackupStore, dir: &str) -> Result<Option<RestoreStarted>, EngineError> {
    let key = restore_started_key(dir);
    match store.get(&key).await {
        Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes).map_err(|e| unreadable(dir, &key, e))?)),
        Err(StorageError::NotFound { .. }) => Ok(None),
        Err(error) => Err(error.into()),
    }
}

/// The offset map of `target_partition` recorded under `dir` (a restore state directory), for
/// translating committed source offsets: only the records of `source_partition` when given (a
/// repartitioned restore), else all. When nothing was restored yet, the map is empty and ends where
/// the restore began (`started`).
pub async fn load_offset_map(
    store: &BackupStore,
    dir: &str,
    started: &RestoreStarted,
    target_partition: i32,
    source_partition: Option<i32>,
) -> Result<OffsetMap, EngineError> {
    let commits = read_commits(store, dir).await?;
    let end = commits
        .iter()
        .rev()
        .find_map(|c| c.target_next.get(&target_partition).copied())
        .or_else(|| started.target_start.get(&target_partition).copied())
        .unwrap_or(0);
    let batches = commits
        .into_iter()
        .filter(|c| source_partition.is_none_or(|p| p == c.source_partition))
        .flat_map(|mut c| c.batches.remove(&target_partition).unwrap_or_default())
        .collect();
    Ok(OffsetMap::new(batches, end))
}

/// Every commit record in `dir`, in restore order (source partition, then segment): the last
/// one touching a target partition holds its position.
async fn read_commits(store: &BackupStore, dir: &str) -> Result<Vec<RestoreCommit>, EngineError> {
    let mut commits: Vec<RestoreCommit> = Vec::new();
    for object in store.list(dir).await? {
        let name = object.key.rsplit('/').next().unwrap_or_default();
        if name.starts_with('p') && name.contains("-segment-") {
            let body = store.get(&object.key).await?;
            commits.push(serde_json::from_slice(&body).map_err(|e| unreadable(dir, &object.key, e))?);
        }
    }
    commits.sort_by_key(|c| (c.source_partition, c.source_start));
    Ok(commits)
}

/// Writes the commit record of a restored source segment.
pub async fn commit(store: &BackupStore, dir: &str, commit: &RestoreCommit) -> Result<(), EngineError> {
    let key = restore_commit_key(dir, commit.source_partition, commit.source_start);
    store.put_new(&key, to_json(commit)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::restore::plan::tests::config;
    use crate::storage::StorageConfig;

    #[tokio::test]
    async fn a_run_alone_removes_staged_leftovers_and_one_shared_by_workers_leaves_them_to_their_writer() {
        let root = tempfile::tempdir().unwrap();
        let store =
            BackupStore::open(&StorageConfig::Filesystem { path: root.path().into(), prefix: String::new() }).unwrap();
        let settings = config(|_| {}).settings;
        for (dir, shared) in [("shared", true), ("alone", false)] {
            std::fs::create_dir_all(root.path().join(dir)).unwrap();
            // What a killed run left, or what another worker is writing right now.
            let staged = root.path().join(dir).join("started.json#3");
            std::fs::write(&staged, b"half written").unwrap();
            let identity = RestoreIdentity::new(&settings, "t", vec![0], None);
            load_progress(&store, (dir, shared), identity, || async { Ok(BTreeMap::from([(0, 0)])) }).await.unwrap();
            assert_eq!(staged.exists(), shared, "{dir}: the staging file is left only to a worker that may own it");
            assert!(store.size(&restore_started_key(dir)).await.unwrap().is_some(), "{dir}: the start is recorded");
        }
    }
}
