//! Restoring the access metadata a backup captured (`restore.metadata`), from its latest access
//! snapshot at or before the window's end: ACL bindings, topic bindings following the restore's
//! renames (CreateAcls leaves an existing binding as it is); client quotas (AlterClientQuotas sets
//! each value); SCRAM users listed to be created by hand (the broker never gave their secrets);
//! share-group positions listed here, translated after the data (`three_phase.rs`).

use std::collections::{BTreeMap, BTreeSet};

use super::plan::SharePosition;
use super::{RestoreConfig, RestorePlan, RestoreTarget};
use crate::access_snapshots::{bindings_to_restore, latest_access_snapshot};
use crate::error::EngineError;
use crate::group_snapshots::{load_snapshots, snapshot_during, snapshot_for};
use crate::manifest::BackupManifest;

/// Which access metadata a restore recreates (`restore.metadata`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RestoredAccess {
    /// ACL bindings.
    pub acls: bool,
    /// Client quotas.
    pub quotas: bool,
    /// SCRAM users (listed in the plan, created by hand with their passwords).
    pub users: bool,
    /// Share groups' start offsets, translated after the data like consumer groups' offsets (see
    /// `three_phase.rs`).
    pub share_groups: bool,
}

impl RestoredAccess {
    fn any(self) -> bool {
        self.acls || self.quotas || self.users || self.share_groups
    }
}

/// Puts into `plan` what the restore recreates, or a warning when the backup holds nothing of it.
pub(super) async fn plan_access(
    target: &RestoreTarget,
    config: &RestoreConfig,
    manifest: &BackupManifest,
    plan: &mut RestorePlan,
) -> Result<(), EngineError> {
    let wanted = config.settings.metadata;
    if !wanted.any() {
        return Ok(());
    }
    let snapshot = latest_access_snapshot(&target.store, config.settings.window.end).await?.unwrap_or_default();
    let missing = |what: &str| {
        format!(
            "restore.metadata names {what}, but backup {} holds none (up to the window's end): its source would not \
             give them to the backup's principal, or has none (see the backup's warnings)",
            manifest.backup_id
        )
    };
    if wanted.acls {
        match &snapshot.acls {
            Some(bindings) => {
                let renames: BTreeMap<String, String> =
                    plan.topics.iter().map(|t| (t.source.clone(), t.target.clone())).collect();
                let backed_up: BTreeSet<String> = manifest.topics.iter().map(|t| t.name.clone()).collect();
                plan.acls = bindings_to_restore(bindings, &renames, &backed_up);
            }
            None => plan.warnings.push(missing("acls")),
        }
    }
    if wanted.quotas {
        match &snapshot.quotas {
            Some(quotas) => plan.quotas = quotas.clone(),
            None => plan.warnings.push(missing("quotas")),
        }
    }
    if wanted.users {
        match &snapshot.scram_users {
            Some(users) => {
                for user in users {
                    for (mechanism, iterations) in &user.credentials {
                        plan.warnings.push(format!(
                            "SCRAM user {} ({mechanism}, {iterations} iterations) is not created: the broker never \
                             returns secrets; create it with its password: kafka-configs.sh --alter --add-config \
                             '{mechanism}=[iterations={iterations},password=...]' --entity-type users --entity-name {}",
                            user.name, user.name
                        ));
                    }
                }
                plan.scram_users = users.clone();
            }
            None => plan.warnings.push(missing("users")),
        }
    }
    if wanted.share_groups {
        plan_share_groups(target, config, plan).await?;
    }
    Ok(())
}

/// Lists the share-group positions on the restored partitions (from the latest group snapshot at
/// or before the window's end; for a topic re-created under the backup, the latest taken while the
/// restored incarnation was the live one); a share group with members on the target is a
/// conflict, since its offsets can only be set while it is empty.
async fn plan_share_groups(
    target: &RestoreTarget,
    config: &RestoreConfig,
    plan: &mut RestorePlan,
) -> Result<(), EngineError> {
    let snapshots = load_snapshots(&target.store).await?;
    let window_end = config.settings.window.end;
    if snapshot_for(&snapshots, window_end).is_none() {
        plan.warnings.push(
            "restore.metadata names share_groups, but the backup holds no group snapshot up to the window's end"
                .to_string(),
        );
        return Ok(());
    }
    let incarnations = &config.settings.incarnations;
    // The chosen incarnations' lifetimes are in the whole backup, not the restore's view of it.
    let backup = match incarnations.is_empty() {
        true => None,
        false => Some(config.location.manifest(&target.store).await?),
    };
    for topic in plan.topics.iter().filter(|t| t.repartition.is_none()) {
        let snapshot = match (incarnations.get(&topic.source), &backup) {
            (Some(&incarnation), Some(backup)) => {
                let lifetime = backup.lifetime(&topic.source, incarnation);
                let during = snapshot_during(&snapshots, window_end, lifetime);
                if during.is_none() {
                    plan.warnings.push(format!(
                        "no group snapshot was taken while incarnation {incarnation} of topic {} was backed up: no \
                         share-group position on it is set (those of other incarnations point elsewhere)",
                        topic.source
                    ));
                }
                during
            }
            _ => snapshot_for(&snapshots, window_end),
        };
        let Some(snapshot) = snapshot else { continue };
        for (group, offsets) in &snapshot.share_groups {
            let restored = offsets.iter().filter(|offset| {
                offset.topic == topic.source && topic.partitions.iter().any(|p| p.source == offset.partition)
            });
            plan.share_groups.extend(restored.map(|offset| SharePosition {
                group: group.clone(),
                target_topic: topic.target.clone(),
                partition: offset.partition,
                source_offset: offset.offset,
            }));
        }
    }
    plan.share_groups
        .sort_by(|a, b| (&a.group, &a.target_topic, a.partition).cmp(&(&b.group, &b.target_topic, b.partition)));
    if plan.share_groups.is_empty() {
        plan.warnings.push(
            "restore.metadata names share_groups, but the group snapshots hold no share-group position on the \
             restored partitions up to the window's end"
                .to_string(),
        );
        return Ok(());
    }
    let listed = target.client.list_groups().await.map_err(EngineError::kafka("listing the target's groups"))?;
    for group in listed.iter().filter(|g| g.is_share_group() && g.state != "Empty") {
        if plan.share_groups.iter().any(|p| p.group == group.group_id) {
            plan.conflicts.push(format!(
                "share group {} is {} on the target: its start offsets can only be set while it has no member; stop \
                 its consumers",
                group.group_id, group.state
            ));
        }
    }
    Ok(())
}

/// Creates the plan's ACL bindings and sets its client quotas on the target.
pub(super) async fn restore_access(target: &RestoreTarget, plan: &RestorePlan) -> Result<(), EngineError> {
    if !plan.acls.is_empty() {
        target.client.create_acls(&plan.acls).await.map_err(EngineError::kafka("creating ACLs on the target"))?;
        tracing::info!(count = plan.acls.len(), "ACL bindings created on the target");
    }
    if !plan.quotas.is_empty() {
        target
            .client
            .alter_client_quotas(&plan.quotas)
            .await
            .map_err(EngineError::kafka("setting client quotas on the target"))?;
        tracing::info!(count = plan.quotas.len(), "client quotas set on the target");
    }
    Ok(())
}
