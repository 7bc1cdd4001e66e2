//! Restoring the ACLs a backup captured (`restore.metadata: [acls]`): the latest ACL snapshot at or
//! before the window's end, its topic bindings following the restore's topic renames, created on the
//! target (CreateAcls leaves an existing binding as it is).

use std::collections::{BTreeMap, BTreeSet};

use super::{RestoreConfig, RestorePlan, RestoreTarget};
use crate::acl_snapshots::{bindings_to_restore, latest_acl_snapshot};
use crate::error::EngineError;
use crate::manifest::BackupManifest;

/// Puts into `plan` the ACL bindings the restore creates, or a warning when the backup holds none.
pub(super) async fn plan_acls(
    target: &RestoreTarget,
    config: &RestoreConfig,
    manifest: &BackupManifest,
    plan: &mut RestorePlan,
) -> Result<(), EngineError> {
    if !config.settings.restore_acls {
        return Ok(());
    }
    let Some(snapshot) = latest_acl_snapshot(&target.store, config.settings.window.end).await? else {
        plan.warnings.push(format!(
            "restore.metadata names acls, but backup {} holds no ACL snapshot (taken up to the window's end): \
             its source had no authorizer, or its principal may not describe ACLs (see the backup's warnings)",
            manifest.backup_id
        ));
        return Ok(());
    };
    let renames: BTreeMap<String, String> = plan.topics.iter().map(|t| (t.source.clone(), t.target.clone())).collect();
    let backed_up: BTreeSet<String> = manifest.topics.iter().map(|t| t.name.clone()).collect();
    plan.acls = bindings_to_restore(&snapshot, &renames, &backed_up);
    Ok(())
}

/// Creates the plan's ACL bindings on the target.
pub(super) async fn create_acls(target: &RestoreTarget, plan: &RestorePlan) -> Result<(), EngineError> {
    if plan.acls.is_empty() {
        return Ok(());
    }
    target.client.create_acls(&plan.acls).await.map_err(EngineError::kafka("creating ACLs on the target"))?;
    tracing::info!(count = plan.acls.len(), "ACL bindings created on the target");
    Ok(())
}
