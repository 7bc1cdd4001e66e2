//! The restores of a backup recorded under `restores/{target cluster id}/`: which source partitions
//! went to which target topic and partition, found from each state directory's `started.json`.

use std::collections::BTreeSet;

use crate::error::EngineError;
use crate::restore::{load_started, RestoreStarted};
use crate::storage::BackupStore;

/// Folder of the restore state directories inside a backup directory.
const RESTORES_DIR: &str = "restores";

/// One restore state directory.
pub(super) struct RestoredPartition {
    /// The state directory (`restores/{cluster}/{topic}/partition={p}` or `.../repartitioned`).
    pub dir: String,
    /// What was restored, and where each target partition began.
    pub started: RestoreStarted,
    /// Target topic.
    pub target_topic: String,
    /// Target partition, or `None` when records were routed by key over every partition.
    pub target_partition: Option<i32>,
}

impl RestoredPartition {
    /// Whether source partition `partition` of `topic` was restored here.
    pub fn restores(&self, topic: &str, partition: i32) -> bool {
        self.started.identity.source_topic == topic && self.started.identity.source_partitions.contains(&partition)
    }
}

/// The target cluster ids that restores of this backup were recorded for.
pub async fn recorded_target_clusters(store: &BackupStore) -> Result<Vec<String>, EngineError> {
    let clusters: BTreeSet<String> =
        started_keys(store).await?.into_iter().filter_map(|key| key.split('/').nth(1).map(str::to_string)).collect();
    Ok(clusters.into_iter().collect())
}

async fn started_keys(store: &BackupStore) -> Result<Vec<String>, EngineError> {
    Ok(store
        .list(RESTORES_DIR)
        .await?
        .into_iter()
        .map(|object| object.key)
        .filter(|key| key.ends_with("/started.json"))
        .collect())
}

/// Every restore of this backup recorded for target cluster `cluster_id`.
pub(super) async fn restored_partitions(
    store: &BackupStore,
    cluster_id: &str,
) -> Result<Vec<RestoredPartition>, EngineError> {
    let mut restored = Vec::new();
    for key in started_keys(store).await? {
        // restores/{cluster}/{topic}/{partition=N | repartitioned}/started.json
        let parts: Vec<&str> = key.split('/').collect();
        let [_, cluster, topic, leaf, _] = parts[..] else { continue };
        if cluster != cluster_id {
            continue;
        }
        let target_partition = match leaf.strip_prefix("partition=") {
            Some(number) => match number.parse() {
                Ok(partition) => Some(partition),
                Err(_) => continue,
            },
            None if leaf == "repartitioned" => None,
            None => continue,
        };
        let dir = key.trim_end_matches("/started.json").to_string();
        let Some(started) = load_started(store, &dir).await? else { continue };
        restored.push(RestoredPartition { dir, started, target_topic: topic.to_string(), target_partition });
    }
    Ok(restored)
}
