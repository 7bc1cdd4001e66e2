//! Live progress of a backup run: per partition the next offset and the log end seen, written
//! to `state/progress.json` (a worker of a group: `state/workers/{worker}.json`, with its
//! generation and partitions) at the start, every checkpoint interval (O(partitions), independent
//! of backup size) and at the end; it also tells whether a run is writing the backup (for `prune`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::layout::{PROGRESS_KEY, WORKERS_DIR};
use crate::storage::{BackupStore, StorageError};
pub use crate::worker_group::WorkerState;

/// One partition's position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionProgress {
    /// Next offset to back up.
    pub next_offset: i64,
    /// High watermark at the last fetch.
    pub high_watermark: i64,
    /// Records between the two (0 when caught up).
    pub lag: i64,
    /// Next offset after the last committed segment (durable), once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub committed_offset: Option<i64>,
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
    /// For a worker of a group sharing the backup: who it is and what it holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<WorkerState>,
}

/// Every progress object of the backup: the single run's and each worker's.
pub async fn progress_boards(store: &BackupStore) -> Result<Vec<ProgressBoard>, StorageError> {
    let mut keys = vec![PROGRESS_KEY.to_string()];
    keys.extend(store.list(WORKERS_DIR).await?.into_iter().map(|object| object.key));
    let mut boards = Vec::new();
    for key in keys {
        match store.get(&key).await {
            Ok(bytes) => boards.extend(serde_json::from_slice::<ProgressBoard>(&bytes).ok()),
            Err(StorageError::NotFound { .. }) => {}
            Err(error) => return Err(error),
        }
    }
    Ok(boards)
}

impl ProgressBoard {
    /// Records a partition's position after a fetch.
    pub fn update(&mut self, topic: &str, partition: i32, next_offset: i64, high_watermark: i64) {
        let position = self.position(topic, partition);
        position.next_offset = next_offset;
        position.high_watermark = high_watermark;
        position.lag = (high_watermark - next_offset).max(0);
        self.updated_at_ms = crate::clock::now_ms();
    }

    /// Records that a partition's segments are committed up to `next_offset` (exclusive).
    pub fn committed(&mut self, topic: &str, partition: i32, next_offset: i64) {
        let position = self.position(topic, partition);
        position.committed_offset = Some(position.committed_offset.unwrap_or(next_offset).max(next_offset));
    }

    fn position(&mut self, topic: &str, partition: i32) -> &mut PartitionProgress {
        let empty = PartitionProgress { next_offset: 0, high_watermark: 0, lag: 0, committed_offset: None };
        self.partitions.entry(topic.to_string()).or_default().entry(partition).or_insert(empty)
    }

    /// Whether, at `now_ms`, a run is probably writing the backup: it said so, and its last write is
    /// recent (within two checkpoint intervals and a minute).
    pub fn run_in_progress(&self, now_ms: i64) -> bool {
        let silence = 2 * self.checkpoint_interval_ms as i64 + 60_000;
        self.running && now_ms - self.updated_at_ms < silence
    }
}
