//! What a restore run is told: the target cluster, the topics, the store, the time window and
//! start offsets, mappings and producing settings (resolved from YAML by `config/`).

use std::collections::{BTreeMap, BTreeSet};

use super::RestoredAccess;
use crate::backup_location::BackupLocation;
use crate::kafka::ClientConfig;
use crate::records::Compression;
use crate::segment::SegmentMetadata;
use crate::time_window::TimeWindow;
use crate::topics::TopicSelector;
use crate::worker_group::WorkerGroup;

/// Restore settings.
#[derive(Debug, Clone, PartialEq)]
pub struct RestoreSettings {
    /// Which records to restore, by timestamp.
    pub window: TimeWindow,
    /// Which records to restore, by source offset: none before it.
    pub start_offset: StartOffset,
    /// Source topic -> target topic.
    pub topic_mapping: BTreeMap<String, String>,
    /// Source topic -> (source partition -> target partition).
    pub partition_mapping: BTreeMap<String, BTreeMap<i32, i32>>,
    /// Source topic -> the only partitions of it to restore (a topic not named: all of them).
    pub source_partitions: BTreeMap<String, BTreeSet<i32>>,
    /// Source topic -> the incarnation of it to restore (a topic re-created while it was backed
    /// up); a topic not named: its latest, or the one the time window ends in.
    pub incarnations: BTreeMap<String, u32>,
    /// Delete what existing target topics hold (DeleteRecords up to each high watermark) before
    /// the restore writes into them; never on a topic this backup's restore already started.
    pub purge_before_restore: bool,
    /// Switch an existing target topic with `message.timestamp.type=LogAppendTime` to CreateTime
    /// for the restore and back after it, so that restored records keep their timestamps.
    pub switch_to_create_time: bool,
    /// Create missing target topics like the backed-up ones.
    pub create_topics: bool,
    /// Allow a target partition count different from the source's (records re-keyed by murmur2).
    pub repartition: bool,
    /// Print the plan and write nothing.
    pub dry_run: bool,
    /// Partitions restored at the same time.
    pub max_concurrent_partitions: usize,
    /// Cap on produced record-batch bytes per second.
    pub rate_limit_bytes_per_sec: Option<u64>,
    /// Cap on produced records per second.
    pub rate_limit_records_per_sec: Option<u64>,
    /// Codec of produced batches; `None` keeps each source batch's codec.
    pub produce_compression: Option<Compression>,
    /// Add an `x-original-offset` header (the source offset) to every restored record.
    pub include_original_offset_header: bool,
    /// The group of workers sharing this restore; `None`: this process restores every partition.
    pub workers: Option<WorkerGroup>,
    /// The access metadata the backup captured that the restore recreates (`restore.metadata`).
    pub metadata: RestoredAccess,
}

impl RestoreSettings {
    /// Whether `segment` of `partition` of `topic` may hold records to restore (in the window, at
    /// or after the start offset).
    pub fn may_restore(&self, topic: &str, partition: i32, segment: &SegmentMetadata) -> bool {
        !self.window.excludes(segment.min_timestamp, segment.max_timestamp)
            && !self.start_offset.skips(topic, partition, segment.last_offset)
    }
}

impl Default for RestoreSettings {
    /// Everything restored, topics created as needed, 4 partitions at once, no limits, batches kept
    /// as stored.
    fn default() -> Self {
        Self {
            window: TimeWindow::default(),
            start_offset: StartOffset::Earliest,
            topic_mapping: BTreeMap::new(),
            partition_mapping: BTreeMap::new(),
            source_partitions: BTreeMap::new(),
            incarnations: BTreeMap::new(),
            purge_before_restore: false,
            switch_to_create_time: false,
            create_topics: true,
            repartition: false,
            dry_run: false,
            max_concurrent_partitions: 4,
            rate_limit_bytes_per_sec: None,
            rate_limit_records_per_sec: None,
            produce_compression: None,
            include_original_offset_header: false,
            workers: None,
            metadata: RestoredAccess::default(),
        }
    }
}

/// Where each restored partition starts (`restore.start_offset`): records at lower source offsets
/// are not restored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum StartOffset {
    /// From each partition's first backed-up record.
    #[default]
    Earliest,
    /// From this source offset on every partition.
    Every(i64),
    /// From these source offsets, by topic and partition (the others from their first record).
    PerPartition(BTreeMap<String, BTreeMap<i32, i64>>),
}

impl StartOffset {
    /// The first source offset restored of `partition` of `topic`, `None` for all of it.
    pub fn of(&self, topic: &str, partition: i32) -> Option<i64> {
        match self {
            Self::Earliest => None,
            Self::Every(offset) => Some(*offset),
            Self::PerPartition(offsets) => offsets.get(topic).and_then(|p| p.get(&partition)).copied(),
        }
    }

    /// Whether a segment whose records end at `last_offset` holds none to restore.
    pub fn skips(&self, topic: &str, partition: i32, last_offset: i64) -> bool {
        self.of(topic, partition).is_some_and(|start| last_offset < start)
    }
}

/// A checked restore configuration, ready to run.
#[derive(Debug, Clone)]
pub struct RestoreConfig {
    /// The backup to restore: its store, the keys it opens with, and its id.
    pub location: BackupLocation,
    /// The cluster to restore into.
    pub target: ClientConfig,
    /// Which backed-up topics to restore.
    pub topics: TopicSelector,
    /// Restore settings.
    pub settings: RestoreSettings,
    /// Address of the metrics endpoint, `None` when it is off.
    pub metrics: Option<std::net::SocketAddr>,
}
