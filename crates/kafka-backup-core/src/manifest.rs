//! The backup manifest: backup-level facts, topic metadata, and per partition its segments and
//! retention gaps. Storage layout under `{prefix}/{backup_id}/`:
//!
//! ```text
//! manifest.json                                   consolidated view, rewritten at the start and end of a run
//! state/progress.json                             per-partition progress, rewritten every checkpoint interval
//! groups/snapshot-{taken_at_ms}.json              consumer-group offsets (see `group_snapshots`)
//! topics/{topic}/partition={p}/segment-{start}.{ext}   segment object (see `segment`)
//! topics/{topic}/partition={p}/segment-{start}.json    its metadata: the commit record
//! topics/{topic}/partition={p}/gap-{from}.json         an offset range lost to retention
//! topics/{topic}/partition={p}/pruned-{before}.json    offsets below `before` were pruned (see `prune`)
//! restores/{cluster}/{topic}/partition={p}/...         restore progress and offset map (see `restore`)
//! offset-resets/{cluster}/reset-{ms}.json             group offsets before an offset reset (see `offset_reset`)
//! ```
//!
//! `{start}` and `{from}` are zero-padded to 20 digits so keys sort by offset. Committing a
//! segment or a gap writes one small object (O(1), never a rewrite of a growing file); readers
//! take `manifest.json` and add every segment and gap object it does not list yet.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::records::Compression;
use crate::segment::{extension, SegmentMetadata};
use crate::storage::{BackupStore, StorageError};

/// Manifest format this build writes and the newest it reads.
pub const MANIFEST_FORMAT_VERSION: u32 = 1;
/// Key of the consolidated manifest inside a backup directory.
pub const MANIFEST_KEY: &str = "manifest.json";
/// Key of the progress object inside a backup directory.
pub const PROGRESS_KEY: &str = "state/progress.json";

/// A manifest that cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// An object is not valid JSON of the expected shape.
    #[error("{key} is not a valid manifest object: {source}")]
    Parse {
        /// Object key.
        key: String,
        /// Parse error.
        source: serde_json::Error,
    },
    /// Written by a newer tool.
    #[error("{key} has manifest format {found}; this kafka-backup reads up to {MANIFEST_FORMAT_VERSION} (upgrade it)")]
    Version {
        /// Object key.
        key: String,
        /// Version found.
        found: u32,
    },
}

/// Everything known about one backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupManifest {
    /// Manifest format version.
    pub format_version: u32,
    /// Version of the kafka-backup that last wrote it.
    pub tool_version: String,
    /// Backup id.
    pub backup_id: String,
    /// Cluster id of the source; a run against another cluster is refused.
    pub source_cluster_id: Option<String>,
    /// When the first run started (epoch ms).
    pub created_at_ms: i64,
    /// When a run last wrote the manifest (epoch ms).
    pub updated_at_ms: i64,
    /// Topics, sorted by name.
    pub topics: Vec<TopicBackup>,
}

/// One backed-up topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicBackup {
    /// Topic name.
    pub name: String,
    /// Partition count at the last run.
    pub partition_count: i32,
    /// Replication factor at the last run.
    pub replication_factor: i16,
    /// Configs set on the topic (values that are not broker defaults), for re-creating it;
    /// `None` when the source would not describe them (permissions, or a broker without the API).
    pub configs: Option<BTreeMap<String, String>>,
    /// Partitions by index.
    pub partitions: Vec<PartitionBackup>,
}

/// One backed-up partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionBackup {
    /// Partition index.
    pub partition: i32,
    /// Segments by start offset.
    pub segments: Vec<SegmentMetadata>,
    /// Offset ranges deleted by retention before they could be backed up.
    pub gaps: Vec<OffsetGap>,
    /// Offsets below this were pruned from the backup (`prune` with a segment retention).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pruned_before: Option<i64>,
}

/// Offsets `from..to` were gone (retention) when the backup reached them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OffsetGap {
    /// First missing offset.
    pub from: i64,
    /// First offset that was still available.
    pub to: i64,
    /// When the gap was found (epoch ms).
    pub detected_at_ms: i64,
}

/// The folder holding `topic`-`partition`'s segments and commit records.
pub fn partition_folder(topic: &str, partition: i32) -> String {
    format!("topics/{topic}/partition={partition}")
}

/// A fresh key for the segment object starting at `start` of `topic`-`partition`: the start
/// offset and a random suffix, so that an upload never lands on another run's object (the commit
/// record names the object that counts).
pub fn segment_key(topic: &str, partition: i32, start: i64, codec: Compression) -> String {
    let suffix = fastrand::u32(..);
    format!("{}/segment-{start:020}-{suffix:08x}.{}", partition_folder(topic, partition), extension(codec))
}

/// The start offset of a segment object key (of either form: `segment-N.EXT` written by 0.1,
/// `segment-N-SUFFIX.EXT`); `None` for commit records, gap records and anything else.
pub fn segment_object_start(key: &str) -> Option<i64> {
    let name = key.rsplit('/').next()?;
    if name.ends_with(".json") {
        return None;
    }
    let digits = name.strip_prefix("segment-")?.get(..20)?;
    digits.bytes().all(|b| b.is_ascii_digit()).then(|| digits.parse().ok()).flatten()
}

/// Key of the metadata (commit record) of the segment starting at `start`.
pub fn segment_metadata_key(topic: &str, partition: i32, start: i64) -> String {
    format!("{}/segment-{start:020}.json", partition_folder(topic, partition))
}

/// Key of the gap record starting at `from`.
pub fn gap_key(topic: &str, partition: i32, from: i64) -> String {
    format!("{}/gap-{from:020}.json", partition_folder(topic, partition))
}

/// Key of the marker saying that offsets below `before` were pruned.
pub fn pruned_key(topic: &str, partition: i32, before: i64) -> String {
    format!("{}/pruned-{before:020}.json", partition_folder(topic, partition))
}

/// The offset a segment object, commit record, gap record or prune marker key starts at (the
/// number in its name), with the kind of object; `None` for anything else.
pub fn object_start(key: &str) -> Option<(&str, i64)> {
    let name = key.rsplit('/').next()?;
    let (kind, rest) = name.split_once('-')?;
    let digits = rest.get(..20)?;
    digits.bytes().all(|b| b.is_ascii_digit()).then(|| Some((kind, digits.parse().ok()?))).flatten()
}

/// Splits `topics/{topic}/partition={p}/{file}` into its parts.
fn parse_partition_key(key: &str) -> Option<(&str, i32, &str)> {
    let rest = key.strip_prefix("topics/")?;
    let mut parts = rest.split('/');
    let (topic, partition, file) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    Some((topic, partition.strip_prefix("partition=")?.parse().ok()?, file))
}

impl PartitionBackup {
    /// An empty partition.
    pub fn new(partition: i32) -> Self {
        Self { partition, segments: Vec::new(), gaps: Vec::new(), pruned_before: None }
    }

    /// The offset a resumed backup continues from, if anything was backed up or skipped.
    pub fn next_offset(&self) -> Option<i64> {
        let after_segments = self.segments.iter().map(|s| s.end_offset + 1);
        let after_gaps = self.gaps.iter().map(|g| g.to);
        after_segments.chain(after_gaps).chain(self.pruned_before).max()
    }

    /// Drops what lies below `before` (pruned), keeping the larger of two prune points.
    fn prune_below(&mut self, before: i64) {
        let before = self.pruned_before.map_or(before, |known| known.max(before));
        self.pruned_before = Some(before);
        self.segments.retain(|s| s.end_offset >= before);
        self.gaps.retain(|g| g.to > before);
    }

    /// Records in all segments.
    pub fn record_count(&self) -> i64 {
        self.segments.iter().map(|s| s.record_count).sum()
    }

    fn insert_segment(&mut self, segment: SegmentMetadata) {
        if !self.segments.iter().any(|s| s.start_offset == segment.start_offset) {
            self.segments.push(segment);
            self.segments.sort_by_key(|s| s.start_offset);
        }
    }

    fn insert_gap(&mut self, gap: OffsetGap) {
        if !self.gaps.iter().any(|g| g.from == gap.from) {
            self.gaps.push(gap);
            self.gaps.sort_by_key(|g| g.from);
        }
    }
}

impl TopicBackup {
    /// Records in all partitions.
    pub fn record_count(&self) -> i64 {
        self.partitions.iter().map(PartitionBackup::record_count).sum()
    }

    /// Bytes stored for all partitions.
    pub fn stored_bytes(&self) -> u64 {
        self.partitions.iter().flat_map(|p| &p.segments).map(|s| s.stored_bytes).sum()
    }
}

impl BackupManifest {
    /// A manifest for a backup that has no data yet.
    pub fn new(backup_id: &str, source_cluster_id: Option<String>, now_ms: i64) -> Self {
        Self {
            format_version: MANIFEST_FORMAT_VERSION,
            tool_version: env!("CARGO_PKG_VERSION").to_string(),
            backup_id: backup_id.to_string(),
            source_cluster_id,
            created_at_ms: now_ms,
            updated_at_ms: now_ms,
            topics: Vec::new(),
        }
    }

    /// The topic entry, if the backup has the topic.
    pub fn topic(&self, name: &str) -> Option<&TopicBackup> {
        self.topics.iter().find(|t| t.name == name)
    }

    /// The partition entry, created (with its topic) if missing.
    pub fn partition_mut(&mut self, topic: &str, partition: i32) -> &mut PartitionBackup {
        let index = match self.topics.iter().position(|t| t.name == topic) {
            Some(index) => index,
            None => {
                self.topics.push(TopicBackup {
                    name: topic.to_string(),
                    partition_count: partition + 1,
                    replication_factor: -1,
                    configs: None,
                    partitions: Vec::new(),
                });
                self.topics.sort_by(|a, b| a.name.cmp(&b.name));
                self.topics.iter().position(|t| t.name == topic).expect("just inserted")
            }
        };
        let partitions = &mut self.topics[index].partitions;
        let at = match partitions.binary_search_by_key(&partition, |p| p.partition) {
            Ok(at) => at,
            Err(at) => {
                partitions.insert(at, PartitionBackup::new(partition));
                at
            }
        };
        &mut partitions[at]
    }

    /// Records in the whole backup.
    pub fn record_count(&self) -> i64 {
        self.topics.iter().map(TopicBackup::record_count).sum()
    }

    /// Bytes stored for the whole backup.
    pub fn stored_bytes(&self) -> u64 {
        self.topics.iter().map(TopicBackup::stored_bytes).sum()
    }

    /// Reads a backup's manifest with every committed segment and gap, `None` if the backup
    /// does not exist.
    pub async fn load(store: &BackupStore) -> Result<Option<Self>, ManifestError> {
        let mut manifest: Self = match store.get(MANIFEST_KEY).await {
            Ok(bytes) => parse_json(MANIFEST_KEY, &bytes)?,
            Err(StorageError::NotFound { .. }) => return Ok(None),
            Err(error) => return Err(error.into()),
        };
        if manifest.format_version > MANIFEST_FORMAT_VERSION {
            return Err(ManifestError::Version { key: MANIFEST_KEY.into(), found: manifest.format_version });
        }
        // Objects the manifest already lists are not read again: only commits made after it was written.
        let mut known = std::collections::HashSet::new();
        for topic in &manifest.topics {
            for partition in &topic.partitions {
                let segments = partition.segments.iter().map(|s| ("segment", s.start_offset));
                for (kind, offset) in segments.chain(partition.gaps.iter().map(|g| ("gap", g.from))) {
                    known.insert((kind, topic.name.clone(), partition.partition, offset));
                }
            }
        }
        let mut pruned = Vec::new();
        for object in store.list("topics").await? {
            let Some((topic, partition, file)) = parse_partition_key(&object.key) else { continue };
            let Some((kind, offset)) = file
                .strip_suffix(".json")
                .and_then(|stem| stem.split_once('-'))
                .and_then(|(kind, offset)| Some((kind, offset.parse::<i64>().ok()?)))
            else {
                continue;
            };
            match kind {
                "segment" if !known.contains(&("segment", topic.to_string(), partition, offset)) => {
                    let segment = parse_json(&object.key, &store.get(&object.key).await?)?;
                    manifest.partition_mut(topic, partition).insert_segment(segment);
                }
                "gap" if !known.contains(&("gap", topic.to_string(), partition, offset)) => {
                    let gap = parse_json(&object.key, &store.get(&object.key).await?)?;
                    manifest.partition_mut(topic, partition).insert_gap(gap);
                }
                "pruned" => pruned.push((topic.to_string(), partition, offset)),
                _ => {}
            }
        }
        for (topic, partition, before) in pruned {
            manifest.partition_mut(&topic, partition).prune_below(before);
        }
        Ok(Some(manifest))
    }

    /// Writes the consolidated manifest (atomic replace).
    pub async fn save(&self, store: &BackupStore) -> Result<(), ManifestError> {
        store.put(MANIFEST_KEY, to_json(self)).await?;
        Ok(())
    }
}

/// A backup found by [`list_backups`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListedBackup {
    /// Its manifest.
    Readable(Box<BackupManifest>),
    /// An encrypted backup whose key was not given.
    Locked {
        /// Backup id.
        backup_id: String,
        /// Id of the key it needs.
        key_id: String,
    },
}

/// Every backup directly under `store`, by backup id.
pub async fn list_backups(store: &BackupStore) -> Result<Vec<ListedBackup>, ManifestError> {
    let mut backups = Vec::new();
    for id in store.list_children().await? {
        match BackupManifest::load(&store.child(&id)).await {
            Ok(Some(manifest)) => backups.push(ListedBackup::Readable(Box::new(manifest))),
            Ok(None) => {}
            Err(ManifestError::Storage(StorageError::Locked { key_id, .. })) => {
                backups.push(ListedBackup::Locked { backup_id: id, key_id })
            }
            Err(error) => return Err(error),
        }
    }
    Ok(backups)
}

/// Pretty JSON of a manifest object.
pub fn to_json<T: Serialize>(value: &T) -> Bytes {
    Bytes::from(serde_json::to_vec_pretty(value).expect("manifest types always serialize"))
}

fn parse_json<T: for<'de> Deserialize<'de>>(key: &str, bytes: &[u8]) -> Result<T, ManifestError> {
    serde_json::from_slice(bytes).map_err(|source| ManifestError::Parse { key: key.to_string(), source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::StorageConfig;

    fn segment(topic: &str, partition: i32, start: i64, end: i64) -> SegmentMetadata {
        SegmentMetadata {
            key: segment_key(topic, partition, start, Compression::Zstd),
            start_offset: start,
            end_offset: end,
            first_offset: start,
            last_offset: end,
            record_count: end - start + 1,
            batch_count: 1,
            min_timestamp: 1,
            max_timestamp: 2,
            uncompressed_bytes: 10,
            stored_bytes: 8,
            codec: "zstd".into(),
            crc32c: "00000000".into(),
        }
    }

    #[test]
    fn keys_sort_by_offset_and_parse_back() {
        let a = segment_metadata_key("orders.eu", 3, 9);
        let b = segment_metadata_key("orders.eu", 3, 10);
        assert!(a < b);
        assert_eq!(parse_partition_key(&a), Some(("orders.eu", 3, "segment-00000000000000000009.json")));
        let (one, two) = (segment_key("t", 0, 5, Compression::Lz4), segment_key("t", 0, 5, Compression::Lz4));
        assert!(
            one.starts_with("topics/t/partition=0/segment-00000000000000000005-") && one.ends_with(".lz4"),
            "{one}"
        );
        assert_ne!(one, two, "every upload gets a key of its own");
        assert_eq!(segment_object_start(&one), Some(5));
        assert_eq!(segment_object_start("topics/t/partition=0/segment-00000000000000000007.zst"), Some(7), "0.1 keys");
        assert_eq!(segment_object_start(&segment_metadata_key("t", 0, 5)), None);
        assert_eq!(segment_object_start(&gap_key("t", 0, 5)), None);
        assert_eq!(segment_object_start("topics/t/partition=0/segment-12.bin"), None);
        assert_eq!(parse_partition_key("topics/t/topic.json"), None);
    }

    #[tokio::test]
    async fn load_adds_committed_objects_the_manifest_does_not_list_yet() {
        let store = BackupStore::open(&StorageConfig::Memory { prefix: String::new() }).unwrap();
        assert_eq!(BackupManifest::load(&store).await.unwrap(), None);
        let mut manifest = BackupManifest::new("b", Some("c".into()), 1);
        manifest.partition_mut("t", 0).insert_segment(segment("t", 0, 0, 9));
        manifest.save(&store).await.unwrap();
        for (key, body) in [
            (segment_metadata_key("t", 0, 0), to_json(&segment("t", 0, 0, 9))),
            (segment_metadata_key("t", 0, 10), to_json(&segment("t", 0, 10, 19))),
            (segment_metadata_key("u", 2, 0), to_json(&segment("u", 2, 0, 4))),
            (gap_key("t", 0, 20), to_json(&OffsetGap { from: 20, to: 30, detected_at_ms: 5 })),
        ] {
            store.put_new(&key, body).await.unwrap();
        }
        let loaded = BackupManifest::load(&store).await.unwrap().unwrap();
        let t0 = &loaded.topic("t").unwrap().partitions[0];
        assert_eq!(t0.segments.iter().map(|s| s.start_offset).collect::<Vec<_>>(), vec![0, 10]);
        assert_eq!(t0.next_offset(), Some(30));
        assert_eq!(loaded.topic("u").unwrap().partitions[0].partition, 2);
        assert_eq!(loaded.record_count(), 25);
    }

    #[tokio::test]
    async fn a_newer_manifest_format_is_refused() {
        let store = BackupStore::open(&StorageConfig::Memory { prefix: String::new() }).unwrap();
        let mut manifest = BackupManifest::new("b", None, 1);
        manifest.format_version = 99;
        manifest.save(&store).await.unwrap();
        let error = BackupManifest::load(&store).await.unwrap_err();
        assert!(error.to_string().contains("upgrade"), "{error}");
    }
}
