//! Errors of the backup and restore engines: one enum for the layer, each variant naming the
//! partition, object or setting at fault and saying what to do.

use crate::kafka::KafkaError;
use crate::manifest::ManifestError;
use crate::records::RecordsError;
use crate::segment::SegmentError;
use crate::storage::StorageError;
use crate::topics::TopicPartition;

/// Why a backup or a restore failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A Kafka cluster (source or target) failed.
    #[error("{context}")]
    Kafka {
        /// What was being done.
        context: String,
        /// Underlying error.
        source: KafkaError,
    },
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The manifest could not be read or written.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// A batch (from the broker or the backup) does not verify or cannot be re-encoded.
    #[error("{partition} at offset {offset}: {source}")]
    Records {
        /// The partition the batch belongs to (source or target).
        partition: TopicPartition,
        /// Offset of the batch or fetch.
        offset: i64,
        /// Underlying error.
        source: RecordsError,
    },
    /// No topic matched the include/exclude patterns.
    #[error(
        "no topic in the source cluster matches source.topics (include/exclude); topics found: {found}. A topic \
         the principal may not Describe is not listed by the cluster: check its ACLs if the topic exists"
    )]
    NoTopics {
        /// Names found, comma-separated.
        found: String,
    },
    /// The backup id belongs to another cluster.
    #[error(
        "backup {backup_id} was taken from cluster {expected}, but the source is cluster {found}; use a new backup_id"
    )]
    ClusterMismatch {
        /// Backup id.
        backup_id: String,
        /// Cluster id in the manifest.
        expected: String,
        /// Cluster id of the source.
        found: String,
    },
    /// The backup holds offsets the partition no longer has at its end.
    #[error("{partition}: the backup continues at offset {offset}, past the end of the log, and the topic's id is the same: the log was truncated (an unclean leader election), or a broker that reports no topic ids re-created the topic. Back it up under a new backup_id")]
    BeyondLogEnd {
        /// The source partition.
        partition: TopicPartition,
        /// Offset the backup continues from.
        offset: i64,
    },
    /// A snapshot's topic was deleted and created again while it ran.
    #[error("topic {topic} was deleted and created again on the source while this snapshot ran: what it backed up of the old topic is kept; run the backup again to back up the new one (as {stored})")]
    TopicRecreated {
        /// The topic.
        topic: String,
        /// Its new incarnation's name in the backup.
        stored: String,
    },
    /// Another run committed the same object.
    #[error("{key} is already committed: another backup run with this backup_id is writing; run one at a time")]
    Conflict {
        /// Object key.
        key: String,
    },
    /// A worker of a group sharing a backup cannot take part.
    #[error("worker group {group}: {detail}")]
    Workers {
        /// The group id.
        group: String,
        /// What went wrong and what to do.
        detail: String,
    },
    /// A store location or its keys cannot be used.
    #[error("{detail}")]
    Location {
        /// What is wrong.
        detail: String,
    },
    /// The backup does not exist.
    #[error("there is no backup {backup_id} in {location} (see `kafka-backup list`)")]
    NoBackup {
        /// Backup id.
        backup_id: String,
        /// Store description.
        location: String,
    },
    /// The plan has conflicts.
    #[error("the restore cannot start:\n  - {}", conflicts.join("\n  - "))]
    Conflicts {
        /// Each conflict.
        conflicts: Vec<String>,
    },
    /// A segment could not be read.
    #[error("segment {key}: {source}")]
    Segment {
        /// Segment key.
        key: String,
        /// Underlying error.
        source: SegmentError,
    },
    /// Consumer groups with active members on the target: their offsets are not changed.
    #[error(
        "consumer groups with active members on the target: {}; stop their consumers, then run the command \
         again (offsets are never changed under running consumers)",
        groups.join(", ")
    )]
    GroupsActive {
        /// Each group, with its state and member count.
        groups: Vec<String>,
    },
    /// Consumer-group offsets cannot be planned, applied or rolled back as asked.
    #[error("{detail}")]
    OffsetRecovery {
        /// What is missing and what to do.
        detail: String,
    },
    /// The target partition holds data this restore did not write where it expected its own.
    #[error("target {partition}: {detail}")]
    TargetChanged {
        /// The target partition.
        partition: TopicPartition,
        /// What differs and what to do.
        detail: String,
    },
    /// A worker of a group lost a partition to another worker, which took it over and fenced it.
    #[error("{partition}: taken over by another worker of the group ({detail})")]
    PartitionLost {
        /// The partition.
        partition: TopicPartition,
        /// How the loss showed.
        detail: String,
    },
    /// A restore's recorded state cannot be used for this run.
    #[error("restore state {dir}: {detail}")]
    RestoreState {
        /// The state directory, inside the backup.
        dir: String,
        /// What is wrong and what to do.
        detail: String,
    },
}

impl EngineError {
    /// Wraps a Kafka error with what was being done (for `map_err`).
    pub fn kafka(context: impl Into<String>) -> impl FnOnce(KafkaError) -> EngineError {
        let context = context.into();
        move |source| EngineError::Kafka { context, source }
    }
}

impl From<crate::stored_segment::StoredSegmentError> for EngineError {
    fn from(error: crate::stored_segment::StoredSegmentError) -> Self {
        match error {
            crate::stored_segment::StoredSegmentError::Storage(error) => EngineError::Storage(error),
            crate::stored_segment::StoredSegmentError::Segment { key, source } => EngineError::Segment { key, source },
        }
    }
}
