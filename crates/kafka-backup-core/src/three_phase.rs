//! Three-phase restore: the data with its offset map, then the consumer-group offset plan, then its
//! execution on the target, reported together. `kafka-backup restore` runs it with strategy skip.

use tokio::sync::watch;

use crate::config::RestoreConfig;
use crate::error::EngineError;
use crate::kafka::KafkaClient;
use crate::offset_reset::{build_reset_plan, execute_plan, GroupSelection, GroupStrategy, ResetPlan, ResetRecord};
use crate::restore::{run_restore, target_cluster_id, RestoreReport};
use crate::storage::BackupStore;

/// What a three-phase restore did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ThreePhaseReport {
    /// Phase 2: the data.
    pub restore: RestoreReport,
    /// Strategy used for the offsets.
    pub strategy: GroupStrategy,
    /// Phase 3 plan; `None` for skip, a dry run or an interrupted restore.
    pub plan: Option<ResetPlan>,
    /// Offsets committed; `None` when nothing was committed (manual, or nothing to translate).
    pub reset: Option<ResetRecord>,
}

/// Restores the data, then translates and commits the offsets of the selected groups with
/// `restore.consumer_group_strategy`, or `default_strategy` when the config has none.
pub async fn run_three_phase_restore(
    config: &RestoreConfig,
    default_strategy: GroupStrategy,
    shutdown: watch::Receiver<bool>,
) -> Result<ThreePhaseReport, EngineError> {
    let strategy = config.settings.consumer_group_strategy.unwrap_or(default_strategy);
    if strategy == GroupStrategy::Skip && config.groups.is_some() {
        return Err(EngineError::OffsetRecovery {
            detail: "restore.consumer_groups is set, but the consumer-group strategy is skip: set \
                     restore.consumer_group_strategy, use three-phase-restore, or remove the key"
                .to_string(),
        });
    }
    let restore = run_restore(config, shutdown).await?;
    let mut report = ThreePhaseReport { restore, strategy, plan: None, reset: None };
    if report.restore.dry_run || report.restore.interrupted || strategy == GroupStrategy::Skip {
        return Ok(report);
    }
    let store = BackupStore::open_for_writing(&config.storage)
        .await?
        .with_encryption(config.encryption.clone())
        .child(&config.backup_id);
    let client = KafkaClient::connect(config.target.clone())
        .await
        .map_err(EngineError::kafka("connecting to the target cluster"))?;
    let metadata = client.refresh_metadata(Some(&[])).await.map_err(EngineError::kafka("reading target metadata"))?;
    let groups = config.groups.clone().unwrap_or_else(GroupSelection::all);
    let plan =
        build_reset_plan(&store, &config.backup_id, &target_cluster_id(&metadata), Some(&client), strategy, &groups)
            .await?;
    if strategy != GroupStrategy::Manual {
        report.reset = execute_plan(&client, &store, &plan).await?;
    }
    report.plan = Some(plan);
    Ok(report)
}
