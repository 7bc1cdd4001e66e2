//! Live progress of a backup run: per partition the next offset and the log end seen, written
//! to `state/progress.json` at the start, every checkpoint interval (O(partitions), independent of
//! backup size) and at the end; it also tells whether a run is writing the backup (for `prune`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One partition's position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionProgress {
    /// Next offset to back up.
    pub next_offset: i64,
    /// High watermark at the last fetch.
    pub high_watermark: i64,
    /// Records between the two (0 when caught up).
    pub lag: i64,
}

/// Progress of every partition of a run.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct ProgressBoard {
    /// Epoch ms of the last update.
    pub updated_at_ms: i64,
    /// True while a run writes the backup (it writes this object again at least every
    /// `checkpoint_interval_ms`); false once it ended. A killed run leaves it true, but stale.
    #[serde(default)]
    pub running: bool,
    /// The run's checkpoint interval.
    #[serde(default)]
    pub checkpoint_interval_ms: u64,
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
        self.updated_at_ms = crate::clock::now_ms();
    }

    /// Whether, at `now_ms`, a run is probably writing the backup: it said so, and its last write is
    /// recent (within two checkpoint intervals and a minute).
    pub fn run_in_progress(&self, now_ms: i64) -> bool {
        let silence = 2 * self.checkpoint_interval_ms as i64 + 60_000;
        self.running && now_ms - self.updated_at_ms < silence
    }
}
