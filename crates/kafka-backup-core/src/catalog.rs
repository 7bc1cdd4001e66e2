//! The catalog of a storage path: the backups it holds (`list`), one backup with its group
//! snapshots, key and access snapshot (`describe`), and which backups hold a topic at a point in time (`find`),
//! with the offsets and timestamps each partition covers and its gaps, so an operator picks a
//! restore source.

use serde::Serialize;

use crate::access_snapshots::{latest_access_snapshot, AccessSnapshot};
use crate::backup::{progress_boards, ProgressBoard};
use crate::backup_location::BackupLocation;
use crate::error::EngineError;
use crate::group_snapshots::{load_snapshots, GroupOffsetsSnapshot};
use crate::layout::incarnation_of;
use crate::manifest::{list_backups, BackupManifest, ListedBackup, ManifestError, OffsetGap};
use crate::restore::{restore_worker_boards, RestoreWorkerBoard};
use crate::storage::BackupStore;

/// One backup of a storage path, as `list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum BackupSummary {
    /// A backup whose manifest could be read.
    Readable {
        /// Backup id.
        backup_id: String,
        /// When its first run began (epoch ms).
        created_at_ms: i64,
        /// When a run last wrote its manifest (epoch ms).
        updated_at_ms: i64,
        /// Its topics.
        topics: Vec<String>,
        /// Records held.
        records: i64,
        /// Bytes stored.
        stored_bytes: u64,
        /// Id of the key it is encrypted with, `None` when it is not encrypted.
        encryption_key_id: Option<String>,
    },
    /// A backup encrypted with a key that was not given: nothing else is known.
    Locked {
        /// Backup id.
        backup_id: String,
        /// Id of the key it needs.
        encryption_key_id: String,
        /// Always true.
        locked: bool,
    },
}

/// Every backup under `root`.
pub async fn list(root: &BackupStore) -> Result<Vec<BackupSummary>, EngineError> {
    let mut summaries = Vec::new();
    for backup in list_backups(root).await? {
        summaries.push(match backup {
            ListedBackup::Readable(m) => BackupSummary::Readable {
                encryption_key_id: root.child(&m.backup_id).encryption_key_id().await?,
                backup_id: m.backup_id.clone(),
                created_at_ms: m.created_at_ms,
                updated_at_ms: m.updated_at_ms,
                topics: m.topics.iter().map(|t| t.name.clone()).collect(),
                records: m.record_count(),
                stored_bytes: m.stored_bytes(),
            },
            ListedBackup::Locked { backup_id, key_id } => {
                BackupSummary::Locked { backup_id, encryption_key_id: key_id, locked: true }
            }
        });
    }
    Ok(summaries)
}

/// One backup as `describe` shows it.
#[derive(Debug, Clone)]
pub struct BackupDescription {
    /// Its manifest.
    pub manifest: BackupManifest,
    /// Its consumer-group snapshots, oldest first.
    pub snapshots: Vec<GroupOffsetsSnapshot>,
    /// Id of the key it is encrypted with, `None` when it is not encrypted.
    pub encryption_key_id: Option<String>,
    /// The progress objects of the workers of a group sharing it (`backup.group_id`).
    pub workers: Vec<ProgressBoard>,
    /// Its latest access snapshot (ACLs, quotas, SCRAM users), if it holds one.
    pub access: Option<AccessSnapshot>,
    /// The state objects of the workers of groups sharing a restore of it (`restore.group_id`).
    pub restore_workers: Vec<RestoreWorkerBoard>,
}

/// The backup at `location`, with its group snapshots, key, workers (of backups and restores) and
/// latest access snapshot.
pub async fn describe(location: &BackupLocation) -> Result<BackupDescription, EngineError> {
    let (store, manifest) = location.open_existing().await?;
    let snapshots = load_snapshots(&store).await?;
    let encryption_key_id = store.encryption_key_id().await?;
    let workers = progress_boards(&store).await?.into_iter().filter(|board| board.worker.is_some()).collect();
    let access = latest_access_snapshot(&store, None).await?;
    let restore_workers = restore_worker_boards(&store).await?;
    Ok(BackupDescription { manifest, snapshots, encryption_key_id, workers, access, restore_workers })
}

/// What one partition of a backup covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionCoverage {
    /// Partition index.
    pub partition: i32,
    /// First offset held.
    pub first_offset: i64,
    /// Last offset held.
    pub last_offset: i64,
    /// Earliest record timestamp held.
    pub min_timestamp: i64,
    /// Latest record timestamp held.
    pub max_timestamp: i64,
    /// Records held.
    pub records: i64,
    /// Records in segments that start at or before the time asked (an upper bound of what a
    /// restore up to that time writes).
    pub records_up_to_time: i64,
    /// Offset ranges lost to retention before they were backed up.
    pub gaps: Vec<OffsetGap>,
}

/// A backup holding the topic at the time asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Holding {
    /// Backup id.
    pub backup_id: String,
    /// When a run last wrote its manifest (epoch ms).
    pub updated_at_ms: i64,
    /// Source cluster id.
    pub source_cluster_id: Option<String>,
    /// The topic's incarnation live at that time (1 unless it was re-created while backed up).
    pub incarnation: u32,
    /// The topic's partitions with data.
    pub partitions: Vec<PartitionCoverage>,
}

/// The answer of `find`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FindReport {
    /// Topic asked for.
    pub topic: String,
    /// Time asked for (epoch ms).
    pub at_ms: i64,
    /// Backups holding the topic at that time, the most recently updated first.
    pub holding: Vec<Holding>,
    /// Backups holding the topic, but not at that time (their records start later or end earlier).
    pub not_at_that_time: Vec<String>,
    /// Encrypted backups whose key was not given: not searched.
    pub locked: Vec<String>,
}

/// The backups under `root` holding `topic` at `at_ms`: their records of it start at or before
/// that time, and they were written at or after it.
pub async fn find(root: &BackupStore, topic: &str, at_ms: i64) -> Result<FindReport, ManifestError> {
    let mut report = FindReport { topic: topic.to_string(), at_ms, ..FindReport::default() };
    for backup in list_backups(root).await? {
        match backup {
            ListedBackup::Locked { backup_id, .. } => report.locked.push(backup_id),
            ListedBackup::Readable(manifest) => match coverage(&manifest, topic, at_ms) {
                None => {}
                Some((incarnation, partitions)) if covers(&manifest, &partitions, at_ms) => {
                    report.holding.push(Holding {
                        backup_id: manifest.backup_id.clone(),
                        updated_at_ms: manifest.updated_at_ms,
                        source_cluster_id: manifest.source_cluster_id.clone(),
                        incarnation,
                        partitions,
                    })
                }
                Some(_) => report.not_at_that_time.push(manifest.backup_id.clone()),
            },
        }
    }
    report.holding.sort_by_key(|h| std::cmp::Reverse(h.updated_at_ms));
    Ok(report)
}

/// The topic's partitions with data in `manifest`, `None` when it holds no record of the topic.
/// Of a topic re-created while it was backed up, the incarnation live at `at_ms` (or the one named
/// `{topic}@{n}`).
fn coverage(manifest: &BackupManifest, topic: &str, at_ms: i64) -> Option<(u32, Vec<PartitionCoverage>)> {
    let backed_up = match incarnation_of(topic) {
        (_, 1) => manifest.incarnation_at(topic, Some(at_ms))?,
        _ => manifest.topic(topic)?,
    };
    let incarnation = incarnation_of(&backed_up.name).1;
    let partitions: Vec<PartitionCoverage> = backed_up
        .partitions
        .iter()
        .filter_map(|p| {
            let (first, last) = (p.segments.first()?, p.segments.last()?);
            Some(PartitionCoverage {
                partition: p.partition,
                first_offset: first.start_offset,
                last_offset: last.end_offset,
                min_timestamp: p.segments.iter().map(|s| s.min_timestamp).min().unwrap_or(-1),
                max_timestamp: p.segments.iter().map(|s| s.max_timestamp).max().unwrap_or(-1),
                records: p.record_count(),
                records_up_to_time: p
                    .segments
                    .iter()
                    .filter(|s| s.min_timestamp <= at_ms)
                    .map(|s| s.record_count)
                    .sum(),
                gaps: p.gaps.clone(),
            })
        })
        .collect();
    (!partitions.is_empty()).then_some((incarnation, partitions))
}

/// Whether the backup's records of the topic reach back to `at_ms` and it was written at or after it.
fn covers(manifest: &BackupManifest, partitions: &[PartitionCoverage], at_ms: i64) -> bool {
    let earliest = partitions.iter().map(|p| p.min_timestamp).min().unwrap_or(i64::MAX);
    let latest = partitions.iter().map(|p| p.max_timestamp).max().unwrap_or(i64::MIN);
    earliest <= at_ms && at_ms <= manifest.updated_at_ms.max(latest)
}
