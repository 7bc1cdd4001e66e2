//! What a backup run is told: the source cluster, the topics and groups, the store, and the
//! segment and scheduling settings (resolved from YAML by `config/`).

use std::time::Duration;

use crate::backup_location::BackupLocation;
use crate::kafka::ClientConfig;
use crate::records::Compression;
use crate::retention::RetentionPolicy;
use crate::topics::TopicSelector;
use crate::worker_group::WorkerGroup;

/// Segment and scheduling settings of a backup.
#[derive(Debug, Clone, PartialEq)]
pub struct BackupSettings {
    /// Codec of whole segments.
    pub compression: Compression,
    /// Codec level (zstd 1-22, gzip 0-9); `None` for the codec's default.
    pub compression_level: Option<i32>,
    /// A segment is closed when its batches reach this many bytes.
    pub segment_max_bytes: u64,
    /// A segment is closed when it has been open this long.
    pub segment_max_interval: Duration,
    /// How often progress (`state/progress.json`) is written.
    pub checkpoint_interval: Duration,
    /// Partitions backed up at the same time.
    pub max_concurrent_partitions: usize,
    /// Keep tailing after the snapshot until SIGINT/SIGTERM.
    pub continuous: bool,
    /// The group of workers sharing this backup; `None`: this process backs up every partition.
    pub workers: Option<WorkerGroup>,
    /// Keep every ACL binding of the cluster, not only those of the backed-up topics and groups.
    pub cluster_acls: bool,
}

/// A checked backup configuration, ready to run.
#[derive(Debug, Clone)]
pub struct BackupConfig {
    /// The backup written: its store, keys (new backups are encrypted with the first; `None`: not
    /// encrypted) and id.
    pub location: BackupLocation,
    /// How to reach the source cluster.
    pub source: ClientConfig,
    /// Which topics to back up.
    pub topics: TopicSelector,
    /// Which consumer groups' committed offsets to snapshot (all by default).
    pub groups: TopicSelector,
    /// A consumer group the backup commits each partition's durable position to (standalone
    /// commits), so that the tools that show consumer lag show the backup's; `None`: off.
    pub progress_group: Option<String>,
    /// Segment and scheduling settings.
    pub settings: BackupSettings,
    /// Address of the metrics endpoint, `None` when it is off.
    pub metrics: Option<std::net::SocketAddr>,
    /// What `prune --config` keeps of the backups in this storage.
    pub retention: Option<RetentionPolicy>,
}
