//! The backup manifest: backup-level facts, topic metadata, and per partition its segments and
//! retention gaps. `manifest.json` is rewritten at the start and end of a run; committing a segment
//! or a gap writes one small object (O(1), never a rewrite of a growing file), and readers take
//! `manifest.json` and add every segment and gap object it does not list yet. Keys: `layout`.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::layout::{
    incarnation_of, parse_incarnation_key, parse_partition_record, stored_topic, PartitionRecord, MANIFEST_KEY,
    TOPICS_DIR,
};
use crate::segment::SegmentMetadata;
use crate::storage::{BackupStore, StorageError};

/// Manifest format this build writes and the newest it reads (2: topic ids and incarnations, which
/// a reader of format 1 would not know to keep apart).
pub const MANIFEST_FORMAT_VERSION: u32 = 2;

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
    /// The source topic's id (KIP-516), `None` when the broker reports none. `name` is this
    /// incarnation's name in the backup: the topic's, or `{topic}@{n}` for one re-created (a new
    /// id) while the backup ran (see `incarnations`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_id: Option<String>,
    /// When the backup found this incarnation (epoch ms), for those from the second on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_ms: Option<i64>,
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

/// When one incarnation of a topic was the live one on the source (epoch ms; `None`: unbounded).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lifetime {
    /// When the backup found it.
    pub since_ms: Option<i64>,
    /// When the backup found the next one.
    pub until_ms: Option<i64>,
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

/// A topic's incarnation from the second on, written when the backup finds the topic re-created
/// (`topics/{topic}@{n}/incarnation.json`); `load` folds it into the topic's entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncarnationRecord {
    /// The topic's id in this incarnation.
    pub topic_id: String,
    /// The id of the incarnation before it, if known.
    pub previous_topic_id: Option<String>,
    /// When the backup found it (epoch ms).
    pub since_ms: i64,
    /// Its partition count then.
    pub partition_count: i32,
    /// Its replication factor then.
    pub replication_factor: i16,
    /// Its configs then (as `TopicBackup::configs`).
    pub configs: Option<BTreeMap<String, String>>,
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

    /// The backup of `partition` of topic `name`, if it has one.
    pub fn partition(&self, name: &str, partition: i32) -> Option<&PartitionBackup> {
        self.topic(name)?.partitions.iter().find(|p| p.partition == partition)
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
                    topic_id: None,
                    since_ms: None,
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

    /// The incarnations of Kafka topic `topic` in the backup, oldest first (see `incarnations`).
    pub fn incarnations(&self, topic: &str) -> Vec<&TopicBackup> {
        let mut found: Vec<&TopicBackup> = self.topics.iter().filter(|t| incarnation_of(&t.name).0 == topic).collect();
        found.sort_by_key(|t| incarnation_of(&t.name).1);
        found
    }

    /// The incarnation of Kafka topic `topic` live at `at_ms`: the last the backup found at or
    /// before it (the oldest it holds if none), the latest with no time; `None` without the topic.
    pub fn incarnation_at(&self, topic: &str, at_ms: Option<i64>) -> Option<&TopicBackup> {
        let incarnations = self.incarnations(topic);
        let Some(at_ms) = at_ms else { return incarnations.last().copied() };
        incarnations
            .iter()
            .rev()
            .find(|t| t.since_ms.is_none_or(|since| since <= at_ms))
            .or(incarnations.first())
            .copied()
    }

    /// When incarnation `incarnation` of Kafka topic `topic` was the live one: from when the backup
    /// found it (`None`: the first) until it found the next (`None`: the latest).
    pub fn lifetime(&self, topic: &str, incarnation: u32) -> Lifetime {
        let since = |n| self.topic(&stored_topic(topic, n)).and_then(|t| t.since_ms);
        Lifetime { since_ms: since(incarnation), until_ms: since(incarnation + 1) }
    }

    /// Adds an incarnation record: the incarnation's entry (`stored_topic`) gets its id, time,
    /// partitions and, unless a run captured them since, its replication factor and configs.
    pub fn add_incarnation(&mut self, stored_topic: &str, record: IncarnationRecord) {
        for partition in 0..record.partition_count {
            self.partition_mut(stored_topic, partition);
        }
        let entry = self.topics.iter_mut().find(|t| t.name == stored_topic).expect("partition_mut created it");
        entry.topic_id.get_or_insert(record.topic_id);
        entry.since_ms.get_or_insert(record.since_ms);
        entry.partition_count = entry.partition_count.max(record.partition_count);
        if entry.replication_factor < 0 {
            entry.replication_factor = record.replication_factor;
        }
        if entry.configs.is_none() {
            entry.configs = record.configs;
        }
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
        for object in store.list(TOPICS_DIR).await? {
            if let Some(stored_topic) = parse_incarnation_key(&object.key) {
                let record = parse_json(&object.key, &store.get(&object.key).await?)?;
                manifest.add_incarnation(stored_topic, record);
                continue;
            }
            let Some((topic, partition, record)) = parse_partition_record(&object.key) else { continue };
            match record {
                PartitionRecord::Segment(start)
                    if !known.contains(&("segment", topic.to_string(), partition, start)) =>
                {
                    let segment = parse_json(&object.key, &store.get(&object.key).await?)?;
                    manifest.partition_mut(topic, partition).insert_segment(segment);
                }
                PartitionRecord::Gap(from) if !known.contains(&("gap", topic.to_string(), partition, from)) => {
                    let gap = parse_json(&object.key, &store.get(&object.key).await?)?;
                    manifest.partition_mut(topic, partition).insert_gap(gap);
                }
                PartitionRecord::Pruned(before) => pruned.push((topic.to_string(), partition, before)),
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
    use crate::layout::{gap_key, segment_key, segment_metadata_key};
    use crate::records::Compression;
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
    async fn incarnation_records_become_entries_and_the_one_live_at_a_time_is_found() {
        let store = BackupStore::open(&StorageConfig::Memory { prefix: String::new() }).unwrap();
        let mut manifest = BackupManifest::new("b", Some("c".into()), 1);
        manifest.partition_mut("t", 0).insert_segment(segment("t", 0, 0, 9));
        manifest.topics[0].topic_id = Some("first".into());
        manifest.save(&store).await.unwrap();
        let record = IncarnationRecord {
            topic_id: "second".into(),
            previous_topic_id: Some("first".into()),
            since_ms: 500,
            partition_count: 2,
            replication_factor: 3,
            configs: Some(BTreeMap::from([("cleanup.policy".into(), "compact".into())])),
        };
        store.put_new(&crate::layout::incarnation_key("t@2"), to_json(&record)).await.unwrap();
        store.put_new(&segment_metadata_key("t@2", 1, 0), to_json(&segment("t@2", 1, 0, 4))).await.unwrap();
        let loaded = BackupManifest::load(&store).await.unwrap().unwrap();
        let second = loaded.topic("t@2").unwrap();
        assert_eq!((second.topic_id.as_deref(), second.since_ms), (Some("second"), Some(500)));
        assert_eq!((second.partition_count, second.replication_factor), (2, 3));
        assert_eq!(second.partitions.len(), 2, "a partition without data is listed too");
        assert_eq!(second.configs.as_ref().unwrap()["cleanup.policy"], "compact");
        let names = |found: Vec<&TopicBackup>| found.iter().map(|t| t.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(loaded.incarnations("t")), ["t", "t@2"]);
        let live = |at| loaded.incarnation_at("t", at).map(|t| t.name.clone());
        assert_eq!(live(Some(499)).as_deref(), Some("t"));
        assert_eq!(live(Some(500)).as_deref(), Some("t@2"));
        assert_eq!(live(None).as_deref(), Some("t@2"));
        assert_eq!(loaded.incarnation_at("u", None), None);
        assert_eq!(loaded.lifetime("t", 1), Lifetime { since_ms: None, until_ms: Some(500) });
        assert_eq!(loaded.lifetime("t", 2), Lifetime { since_ms: Some(500), until_ms: None });
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
