//! Live progress of a backup run: per partition the next offset and the log end seen, written
//! to `state/progress.json` every checkpoint interval (O(partitions), independent of backup size).

use std::collections::BTreeMap;

use serde::Serialize;

/// One partition's position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PartitionProgress {
    /// Next offset to back up.
    pub next_offset: i64,
    /// High watermark at the last fetch.
    pub high_watermark: i64,
    /// Records between the two (0 when caught up).
    pub lag: i64,
}

/// Progress of every partition of a run.
#[derive(Debug, Default, Clone, Serialize)]
pub struct ProgressBoard {
    /// Epoch ms of the last update.
    pub updated_at_ms: i64,
    /// Position by `topic` then partition.
    pub partitions: BTreeMap<String, BTreeMap<i32, PartitionProgress>>,
}

impl ProgressBoard {
    /// Records a partition's position after a fetch.
    pub fn update(&mut self, topic: &str, partition: i32, next_offset: i64, high_watermark: i64) {
        let lag = (high_watermark - next_offset).max(0);
        self.partitions
            .entry(topic.to_string())
            .or_default()
            .insert(partition, PartitionProgress { next_offset, high_watermark, lag });
        self.updated_at_ms = super::now_ms();
    }
}
