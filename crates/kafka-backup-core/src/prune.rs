//! Retention (`prune`): which backups under a path a policy keeps (the last N, those newer than a
//! duration, the newest of each of the last N days, weeks and months), deleting the others; and,
//! inside the backups kept, whole segments whose records are all older than a retention time.
//!
//! Nothing a run is writing is deleted: a backup whose progress object says a run is writing it
//! (and was written recently) is kept. Deletion is crash-safe and finished by a re-run: a backup
//! is first marked `deleting.json`, then loses its manifest (from then on no command sees it as a
//! backup), then every other object, the marker last. A segment prune first writes the partition's
//! `pruned-{before}.json` marker (from then on the manifest leaves everything below it out), then
//! deletes the commit records and objects below it, and the consumer-group snapshots taken before
//! the cutoff but the latest of them.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::backup::progress_boards;
use crate::error::EngineError;
use crate::group_snapshots::prune_snapshots;
use crate::layout::{
    object_start, partition_folder, pruned_key, DATA_KEY_OBJECT, DELETING_KEY, MANIFEST_KEY, TOPICS_DIR,
};
use crate::manifest::{to_json, BackupManifest, ManifestError};
use crate::retention::RetentionPolicy;
use crate::storage::{BackupStore, StorageError};

const DAY_MS: i64 = 86_400_000;

/// What prune decided for one backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackupDecision {
    /// Backup id.
    pub backup_id: String,
    /// When a run last wrote its manifest (epoch ms); `None` when it cannot be read.
    pub updated_at_ms: Option<i64>,
    /// Kept, or deleted (to be deleted, in a dry run).
    pub keep: bool,
    /// Why.
    pub reasons: Vec<String>,
}

/// Segments dropped from one partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SegmentsPruned {
    /// Backup id.
    pub backup_id: String,
    /// `topic-partition`.
    pub partition: String,
    /// Segments dropped.
    pub segments: usize,
    /// Records in them.
    pub records: i64,
    /// Their stored bytes.
    pub stored_bytes: u64,
    /// Offsets below this are gone from the backup.
    pub before_offset: i64,
}

/// The result of a prune.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PruneReport {
    /// Nothing was deleted.
    pub dry_run: bool,
    /// The time the policy was applied at (epoch ms).
    pub now_ms: i64,
    /// One decision per backup.
    pub backups: Vec<BackupDecision>,
    /// Segments dropped inside the backups kept.
    pub segments: Vec<SegmentsPruned>,
    /// Consumer-group snapshots dropped with old segments (those taken before the retention
    /// cutoff, but the latest of them).
    pub group_snapshots_pruned: u64,
    /// Objects deleted.
    pub deleted_objects: u64,
}

/// A backup found under the root, as prune sees it.
struct Found {
    id: String,
    manifest: Option<BackupManifest>,
    /// Why it must be kept whatever the policy says, if it must.
    pinned: Option<String>,
    /// A prune started deleting it.
    deleting: bool,
}

/// Applies `policy` to the backups under `root` at `now_ms`; with `dry_run`, only reports.
pub async fn prune(
    root: &BackupStore,
    policy: &RetentionPolicy,
    now_ms: i64,
    dry_run: bool,
) -> Result<PruneReport, EngineError> {
    let mut report = PruneReport { dry_run, now_ms, ..PruneReport::default() };
    let mut found = Vec::new();
    for id in root.list_children().await? {
        if id == "_probe" {
            continue;
        }
        if let Some(backup) = inspect(&root.child(&id), &id, now_ms).await? {
            found.push(backup);
        }
    }
    // Newest first: the order every keep rule counts in.
    found.sort_by_key(|b| std::cmp::Reverse(b.manifest.as_ref().map_or(i64::MIN, |m| m.updated_at_ms)));
    let candidates: Vec<(usize, i64)> = found
        .iter()
        .enumerate()
        .filter(|(_, b)| b.pinned.is_none() && !b.deleting)
        .filter_map(|(at, b)| Some((at, b.manifest.as_ref()?.updated_at_ms)))
        .collect();
    let reasons = keep_reasons(policy, &candidates, now_ms);
    for (at, backup) in found.iter().enumerate() {
        let (keep, why) = match (&backup.pinned, backup.deleting) {
            (_, true) => (false, vec!["an interrupted prune had started deleting it".to_string()]),
            (Some(pinned), _) => (true, vec![pinned.clone()]),
            (None, _) if !policy.selects_backups() => (true, vec!["no keep rule given".to_string()]),
            (None, _) => match reasons.get(&at) {
                Some(kept) => (true, kept.clone()),
                None => (false, vec!["no keep rule keeps it".to_string()]),
            },
        };
        report.backups.push(BackupDecision {
            backup_id: backup.id.clone(),
            updated_at_ms: backup.manifest.as_ref().map(|m| m.updated_at_ms),
            keep,
            reasons: why,
        });
    }
    for (backup, decision) in found.iter().zip(&report.backups.clone()) {
        let store = root.child(&backup.id);
        if !decision.keep {
            if !dry_run {
                report.deleted_objects += delete_backup(&store).await?;
            }
        } else if let (Some(retention), Some(manifest)) = (policy.segment_retention, &backup.manifest) {
            let cutoff = now_ms - retention.as_millis() as i64;
            report.deleted_objects += prune_segments(&store, manifest, cutoff, dry_run, &mut report.segments).await?;
            let snapshots = prune_snapshots(&store, cutoff, dry_run).await? as u64;
            report.group_snapshots_pruned += snapshots;
            if !dry_run {
                report.deleted_objects += snapshots;
            }
        }
    }
    Ok(report)
}

/// What prune needs to know of one backup directory; `None` for a directory that is not a backup.
async fn inspect(store: &BackupStore, id: &str, now_ms: i64) -> Result<Option<Found>, EngineError> {
    let deleting = store.size(DELETING_KEY).await?.is_some();
    let manifest = match BackupManifest::load(store).await {
        Ok(manifest) => manifest,
        Err(ManifestError::Storage(StorageError::Locked { key_id, .. })) => {
            let pinned =
                Some(format!("encrypted with key {key_id}, which was not given: give it to prune this backup"));
            return Ok(Some(Found { id: id.to_string(), manifest: None, pinned, deleting: false }));
        }
        Err(error) => return Err(error.into()),
    };
    if manifest.is_none() && !deleting {
        return Ok(None);
    }
    let pinned = progress_boards(store)
        .await?
        .iter()
        .any(|board| board.run_in_progress(now_ms))
        .then(|| "a backup run is writing it".to_string());
    Ok(Some(Found { id: id.to_string(), manifest, pinned, deleting }))
}

/// For each candidate (index into the newest-first list, its time) the rules that keep it.
fn keep_reasons(
    policy: &RetentionPolicy,
    candidates: &[(usize, i64)],
    now_ms: i64,
) -> std::collections::BTreeMap<usize, Vec<String>> {
    let mut kept: std::collections::BTreeMap<usize, Vec<String>> = Default::default();
    let mut keep = |at: usize, why: String| kept.entry(at).or_default().push(why);
    if let Some(n) = policy.keep_last {
        for (rank, &(at, _)) in candidates.iter().take(n).enumerate() {
            keep(at, format!("keep_last {n} (#{})", rank + 1));
        }
    }
    if let Some(within) = policy.keep_within {
        let since = now_ms - within.as_millis() as i64;
        for &(at, _) in candidates.iter().filter(|(_, time)| *time >= since) {
            keep(at, format!("keep_within {}", humantime::format_duration(within)));
        }
    }
    type Bucketing = (&'static str, Option<usize>, fn(i64) -> i64, fn(i64) -> String);
    let buckets: [Bucketing; 3] = [
        ("keep_daily", policy.keep_daily, |ms| ms.div_euclid(DAY_MS), |ms| civil(ms.div_euclid(DAY_MS)).0),
        (
            "keep_weekly",
            policy.keep_weekly,
            |ms| (ms.div_euclid(DAY_MS) + 3).div_euclid(7),
            |ms| format!("week of {}", civil((ms.div_euclid(DAY_MS) + 3).div_euclid(7) * 7 - 3).0),
        ),
        (
            "keep_monthly",
            policy.keep_monthly,
            |ms| civil(ms.div_euclid(DAY_MS)).1,
            |ms| civil(ms.div_euclid(DAY_MS)).0[..7].to_string(),
        ),
    ];
    for (rule, count, bucket_of, name_of) in buckets {
        let Some(n) = count else { continue };
        let mut seen = BTreeSet::new();
        for &(at, time) in candidates {
            if seen.len() == n {
                break;
            }
            if seen.insert(bucket_of(time)) {
                keep(at, format!("{rule} {n} ({})", name_of(time)));
            }
        }
    }
    kept
}

/// The date (`YYYY-MM-DD`) and month number (`year * 12 + month`) of a day since the epoch.
fn civil(days: i64) -> (String, i64) {
    // Howard Hinnant's days-to-civil algorithm (proleptic Gregorian calendar).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (format!("{year:04}-{month:02}-{day:02}"), year * 12 + month)
}

/// Deletes a backup crash-safely (see the module header); returns the objects deleted.
async fn delete_backup(store: &BackupStore) -> Result<u64, EngineError> {
    match store.put_new(DELETING_KEY, to_json(&serde_json::json!({ "deleting": true }))).await {
        Ok(()) | Err(StorageError::AlreadyExists { .. }) => {}
        Err(error) => return Err(error.into()),
    }
    store.delete(MANIFEST_KEY).await?;
    store.abort_unfinished_uploads(TOPICS_DIR).await?;
    let mut deleted = 1;
    let last = [DATA_KEY_OBJECT, DELETING_KEY];
    for object in store.list("").await? {
        if !last.contains(&object.key.as_str()) {
            store.delete(&object.key).await?;
            deleted += 1;
        }
    }
    for key in last {
        store.delete(key).await?;
        deleted += 1;
    }
    Ok(deleted)
}

/// Drops the leading segments of each partition whose records are all older than `cutoff` (never
/// a partition's last segment); returns the objects deleted.
async fn prune_segments(
    store: &BackupStore,
    manifest: &BackupManifest,
    cutoff: i64,
    dry_run: bool,
    pruned: &mut Vec<SegmentsPruned>,
) -> Result<u64, EngineError> {
    let mut deleted = 0;
    for topic in &manifest.topics {
        for partition in &topic.partitions {
            let keep_last = partition.segments.len().saturating_sub(1);
            let old: Vec<_> = partition.segments[..keep_last].iter().take_while(|s| s.max_timestamp < cutoff).collect();
            let before = match old.last() {
                Some(last) => last.end_offset + 1,
                // Nothing new to drop; objects an interrupted prune left below its marker still go.
                None => match partition.pruned_before {
                    Some(before) => before,
                    None => continue,
                },
            };
            if !old.is_empty() {
                pruned.push(SegmentsPruned {
                    backup_id: manifest.backup_id.clone(),
                    partition: format!("{}-{}", topic.name, partition.partition),
                    segments: old.len(),
                    records: old.iter().map(|s| s.record_count).sum(),
                    stored_bytes: old.iter().map(|s| s.stored_bytes).sum(),
                    before_offset: before,
                });
            }
            if dry_run {
                continue;
            }
            if !old.is_empty() {
                let marker = pruned_key(&topic.name, partition.partition, before);
                match store.put_new(&marker, to_json(&serde_json::json!({ "before": before }))).await {
                    Ok(()) | Err(StorageError::AlreadyExists { .. }) => {}
                    Err(error) => return Err(error.into()),
                }
            }
            for object in store.list(&partition_folder(&topic.name, partition.partition)).await? {
                let below = object_start(&object.key).is_some_and(|(kind, start)| kind != "pruned" && start < before);
                if below {
                    store.delete(&object.key).await?;
                    deleted += 1;
                }
            }
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const HOUR: i64 = 3_600_000;

    #[test]
    fn civil_dates_are_right_around_the_edges() {
        assert_eq!(civil(0).0, "1970-01-01");
        assert_eq!(civil(-1).0, "1969-12-31");
        assert_eq!(civil(11_016).0, "2000-02-29");
        assert_eq!(civil(20_782).0, "2026-11-25");
    }

    fn kept(policy: &RetentionPolicy, times: &[i64], now: i64) -> Vec<usize> {
        let candidates: Vec<(usize, i64)> = times.iter().copied().enumerate().collect();
        keep_reasons(policy, &candidates, now).into_keys().collect()
    }

    #[test]
    fn each_rule_keeps_what_it_names() {
        let now = 20_782 * DAY_MS + 12 * HOUR; // 2026-11-25 12:00 UTC, a Wednesday
                                               // Newest first: two today, one yesterday, one 3 days ago, one 10 days ago, one 40 days ago.
        let times = [now - HOUR, now - 2 * HOUR, now - DAY_MS, now - 3 * DAY_MS, now - 10 * DAY_MS, now - 40 * DAY_MS];
        let policy = |f: fn(&mut RetentionPolicy)| {
            let mut p = RetentionPolicy::default();
            f(&mut p);
            p
        };
        assert_eq!(kept(&policy(|p| p.keep_last = Some(2)), &times, now), [0, 1]);
        assert_eq!(kept(&policy(|p| p.keep_within = Some(Duration::from_secs(2 * 86_400))), &times, now), [0, 1, 2]);
        assert_eq!(kept(&policy(|p| p.keep_daily = Some(3)), &times, now), [0, 2, 3]);
        // This week (from Monday the 23rd): 0; the week before (Sunday the 22nd): 3; the one before: 4.
        assert_eq!(kept(&policy(|p| p.keep_weekly = Some(3)), &times, now), [0, 3, 4]);
        assert_eq!(kept(&policy(|p| p.keep_monthly = Some(2)), &times, now), [0, 5]);
        assert!(kept(&RetentionPolicy::default(), &times, now).is_empty());
    }
}
