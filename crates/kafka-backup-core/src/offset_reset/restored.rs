//! The restores of a backup recorded under `restores/{target cluster id}/`: which source partitions
//! went to which target topic and partition, found from each state directory's `started.json`.

use std::collections::BTreeSet;

use crate::error::EngineError;
use crate::kafka::{ClientConfig, KafkaClient};
use crate::restore::{connect_target, load_started, recorded_state_dirs, RestoreStarted};
use crate::storage::BackupStore;

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
    let clusters: BTreeSet<String> = recorded_state_dirs(store).await?.into_iter().map(|d| d.cluster_id).collect();
    Ok(clusters.into_iter().collect())
}

/// The cluster offsets of backup `backup_id` are reset on: the `target` given (connected, its client
/// returned), else `explicit_id`, else the one cluster its restores were recorded for.
pub async fn reset_target(
    store: &BackupStore,
    backup_id: &str,
    target: Option<&ClientConfig>,
    explicit_id: Option<&str>,
) -> Result<(Option<KafkaClient>, String), EngineError> {
    if let Some(config) = target {
        let (client, cluster_id) = connect_target(config).await?;
        return Ok((Some(client), cluster_id));
    }
    if let Some(id) = explicit_id {
        return Ok((None, id.to_string()));
    }
    let detail = match &recorded_target_clusters(store).await?[..] {
        [] => format!(
            "no restore of backup {backup_id} is recorded: restore it first (kafka-backup restore or three-phase-restore)"
        ),
        [only] => return Ok((None, only.clone())),
        several => format!(
            "backup {backup_id} was restored into several clusters ({}): name the target cluster (its id, bootstrap \
             servers or restore config)",
            several.join(", ")
        ),
    };
    Err(EngineError::OffsetRecovery { detail })
}

/// Every restore of this backup recorded for target cluster `cluster_id`.
pub(super) async fn restored_partitions(
    store: &BackupStore,
    cluster_id: &str,
) -> Result<Vec<RestoredPartition>, EngineError> {
    let mut restored = Vec::new();
    for found in recorded_state_dirs(store).await?.into_iter().filter(|d| d.cluster_id == cluster_id) {
        let Some(started) = load_started(store, &found.dir).await? else { continue };
        restored.push(RestoredPartition {
            dir: found.dir,
            started,
            target_topic: found.target_topic,
            target_partition: found.target_partition,
        });
    }
    Ok(restored)
}
