//! An `offset-reset` as a user names it (a restore config, or a storage path, a backup id and the
//! target's brokers or cluster id), resolved into the backup, the target cluster and the groups and
//! strategy of its plan.

use crate::backup_location::{BackupLocation, StoreLocation};
use crate::error::EngineError;
use crate::kafka::{ClientConfig, KafkaClient};
use crate::offset_reset::{build_reset_plan, reset_target, GroupSelection, GroupStrategy, ResetPlan};
use crate::storage::{BackupStore, EncryptionKey};
use crate::three_phase::{GroupRecovery, RestoreJob};

/// What the user gave. A config supplies whatever the flags leave out.
#[derive(Debug, Default)]
pub struct ResetRequest {
    /// A restore config (`--config`): the store, backup, target and group recovery.
    pub job: Option<RestoreJob>,
    /// A storage root (`--path`), in place of the config's.
    pub path: Option<String>,
    /// The backup (`--backup-id`), in place of the config's.
    pub backup_id: Option<String>,
    /// The target's brokers (`--bootstrap-servers`), without a config.
    pub bootstrap_servers: Vec<String>,
    /// Keys given beside the config's (`--encryption-key-file`, `--encryption-key-env`).
    pub keys: Vec<EncryptionKey>,
    /// The target cluster's id (`--target-cluster-id`), when no target is given.
    pub target_cluster_id: Option<String>,
}

/// The backup and target cluster a reset works on.
pub struct ResetJob {
    /// The backup's directory.
    pub store: BackupStore,
    /// The backup's id.
    pub backup_id: String,
    /// A client of the target cluster, when one was given.
    pub client: Option<KafkaClient>,
    /// The target cluster's id.
    pub cluster_id: String,
    /// The config's group recovery (empty without a config).
    pub recovery: GroupRecovery,
}

impl ResetRequest {
    /// Opens the backup (which must exist) and connects to the target, if one is given; the
    /// target cluster is otherwise the explicit id, or the one cluster the backup was restored into.
    pub async fn resolve(self) -> Result<ResetJob, EngineError> {
        let config = self.job.as_ref().map(|job| &job.restore);
        let backup_id = match (self.backup_id, config) {
            (Some(id), _) => id,
            (None, Some(config)) => config.location.backup_id.clone(),
            (None, None) => return Err(location("give --backup-id or --config")),
        };
        let store = match (&self.path, config) {
            (Some(path), _) => StoreLocation::parse(path)?,
            (None, Some(config)) => config.location.store.clone(),
            (None, None) => return Err(location("give --path or --config")),
        };
        let backup = BackupLocation { store: store.with_keys(self.keys)?, backup_id };
        let (store, _) = backup.open_existing().await?;
        let target = match config {
            Some(config) => Some(config.target.clone()),
            None if self.bootstrap_servers.is_empty() => None,
            None => Some(ClientConfig::new(self.bootstrap_servers)),
        };
        let explicit = self.target_cluster_id.as_deref();
        let found = reset_target(&store, &backup.backup_id, target.as_ref(), explicit).await;
        let (client, cluster_id) = match found {
            Err(EngineError::OffsetRecovery { detail }) if target.is_none() && explicit.is_none() => {
                return Err(recovery(format!(
                    "{detail} (the target cluster is chosen with --target-cluster-id, --bootstrap-servers or --config)"
                )))
            }
            found => found?,
        };
        let recovery = self.job.map(|job| job.groups).unwrap_or_default();
        Ok(ResetJob { store, backup_id: backup.backup_id, client, cluster_id, recovery })
    }
}

impl ResetJob {
    /// The plan for `groups` (`None`: every group the config selects, or all) with `strategy`
    /// (`None`: the config's, else exact).
    pub async fn plan(
        &self,
        groups: Option<&[String]>,
        strategy: Option<GroupStrategy>,
    ) -> Result<ResetPlan, EngineError> {
        let groups = match groups {
            None => self.recovery.groups_or_all(),
            Some(names) => GroupSelection::named(names).map_err(|e| recovery(format!("--groups: {e}")))?,
        };
        let strategy = strategy.unwrap_or_else(|| self.recovery.strategy_or(GroupStrategy::Exact));
        if strategy.reads_target() && self.client.is_none() {
            return Err(recovery(format!(
                "strategy {strategy} reads the target cluster: give --bootstrap-servers or --config"
            )));
        }
        build_reset_plan(&self.store, &self.backup_id, &self.cluster_id, self.client.as_ref(), strategy, &groups).await
    }

    /// The target cluster's client, for a command that commits there.
    pub fn committing_client(&self, command: &str) -> Result<&KafkaClient, EngineError> {
        self.client.as_ref().ok_or_else(|| {
            recovery(format!("{command} commits on the target cluster: give --bootstrap-servers or --config"))
        })
    }
}

fn location(detail: &str) -> EngineError {
    EngineError::Location { detail: detail.to_string() }
}

fn recovery(detail: String) -> EngineError {
    EngineError::OffsetRecovery { detail }
}
