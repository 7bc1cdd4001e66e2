//! Three-phase restore: the data with its offset map, then the group offset plan, then its
//! execution on the target, reported together. `kafka-backup restore` runs it with strategy skip
//! (share groups, when `restore.metadata` names them, are still translated, exactly).
//! Owns what a restore config file resolves to: the data restore and the group recovery after it.

use tokio::sync::watch;

use crate::error::EngineError;
use crate::offset_reset::{build_reset_plan, execute_plan, GroupSelection, GroupStrategy, ResetPlan, ResetRecord};
use crate::restore::{run_restore, RestoreConfig, RestoreReport, RestoreTarget};

/// How consumer-group offsets are carried over after the data (`restore.consumer_group_strategy`
/// and `restore.consumer_groups`).
#[derive(Debug, Clone, Default)]
pub struct GroupRecovery {
    /// The strategy; `None` leaves it to the command (`restore`: skip, `three-phase-restore` and
    /// `offset-reset`: exact).
    pub strategy: Option<GroupStrategy>,
    /// Which groups get their offsets translated (`None`: all).
    pub groups: Option<GroupSelection>,
}

impl GroupRecovery {
    /// The configured strategy, or `default` when none is configured.
    pub fn strategy_or(&self, default: GroupStrategy) -> GroupStrategy {
        self.strategy.unwrap_or(default)
    }

    /// The configured groups, or every group.
    pub fn groups_or_all(&self) -> GroupSelection {
        self.groups.clone().unwrap_or_else(GroupSelection::all)
    }
}

/// A checked restore config file: the data restore and the group recovery after it.
#[derive(Debug, Clone)]
pub struct RestoreJob {
    /// The data restore.
    pub restore: RestoreConfig,
    /// The consumer-group offsets after it.
    pub groups: GroupRecovery,
}

/// What a three-phase restore did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ThreePhaseReport {
    /// Phase 2: the data.
    pub restore: RestoreReport,
    /// Strategy used for the offsets.
    pub strategy: GroupStrategy,
    /// Phase 3 plan; `None` for skip (without share groups), a dry run or an interrupted restore.
    pub plan: Option<ResetPlan>,
    /// Offsets committed; `None` when nothing was committed (manual, or nothing to translate).
    pub reset: Option<ResetRecord>,
}

/// Restores the data, then translates and commits the offsets of the selected groups with
/// `restore.consumer_group_strategy`, or `default_strategy` when the config has none; with
/// `restore.metadata: [share_groups]`, share groups' start offsets too (exact when the strategy
/// is skip).
pub async fn run_three_phase_restore(
    job: &RestoreJob,
    default_strategy: GroupStrategy,
    shutdown: watch::Receiver<bool>,
) -> Result<ThreePhaseReport, EngineError> {
    let config = &job.restore;
    let strategy = job.groups.strategy_or(default_strategy);
    if strategy == GroupStrategy::Skip && job.groups.groups.is_some() {
        return Err(EngineError::OffsetRecovery {
            detail: "restore.consumer_groups is set, but the consumer-group strategy is skip: set \
                     restore.consumer_group_strategy, use three-phase-restore, or remove the key"
                .to_string(),
        });
    }
    let target = RestoreTarget::open(config).await?;
    let restore = run_restore(config, &target, shutdown).await?;
    let mut report = ThreePhaseReport { restore, strategy, plan: None, reset: None };
    // Of the workers sharing a restore, the one that found it complete translates the offsets.
    let another_worker_finished = report.restore.worker.as_ref().is_some_and(|w| !w.finished_the_restore);
    let share_groups = config.settings.metadata.share_groups;
    if report.restore.dry_run
        || report.restore.interrupted
        || (strategy == GroupStrategy::Skip && !share_groups)
        || another_worker_finished
    {
        return Ok(report);
    }
    let (strategy, groups) = match strategy {
        GroupStrategy::Skip => (GroupStrategy::Exact, GroupSelection::share_groups()),
        chosen => (chosen, job.groups.groups_or_all().with_share_groups(share_groups)),
    };
    let (store, client) = (&target.store, target.client.as_ref());
    let plan = build_reset_plan(store, &config.location.backup_id, &target.cluster_id, Some(client), strategy, &groups)
        .await?;
    if strategy != GroupStrategy::Manual {
        report.reset = execute_plan(client, store, &plan).await?;
    }
    report.plan = Some(plan);
    Ok(report)
}
