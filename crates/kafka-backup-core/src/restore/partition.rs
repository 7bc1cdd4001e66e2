//! Restoring one source partition into one target partition, segment by segment in offset order,
//! with one durable commit record (holding the offset map) per restored segment. A resumed run
//! matches what an interrupted run left on the target before continuing: no duplicate, no loss.

use std::collections::BTreeMap;

use tokio::sync::watch;

use super::prepare::prepare_batches;
use super::state::{commit, load_progress, RestoreCommit, RestoreIdentity};
use super::target::{TargetPartition, Written};
use super::RestoreSettings;
use crate::error::EngineError;
use crate::segment::SegmentMetadata;
use crate::storage::BackupStore;
use crate::stored_segment::StoredSegment;
use crate::topics::TopicPartition;

/// What one restore task did.
#[derive(Debug, Default)]
pub(super) struct RestoreOutcome {
    pub written: Written,
    pub already_restored: i64,
    pub interrupted: bool,
    /// A worker's partition taken over by another worker.
    pub lost: Option<TopicPartition>,
}

/// Everything one partition's restore needs.
pub(super) struct PartitionRestore {
    pub store: BackupStore,
    pub settings: RestoreSettings,
    pub source_topic: String,
    pub source_partition: i32,
    pub segments: Vec<SegmentMetadata>,
    pub target: TargetPartition,
    pub state_dir: String,
    pub stop: watch::Receiver<bool>,
}

impl PartitionRestore {
    pub async fn run(mut self) -> Result<RestoreOutcome, EngineError> {
        let mut outcome = RestoreOutcome::default();
        let identity = RestoreIdentity::new(&self.settings, &self.source_topic, vec![self.source_partition], None);
        let target_partition = self.target.partition;
        let target = &self.target;
        let shared = self.settings.workers.is_some();
        let progress = load_progress(&self.store, (&self.state_dir, shared), identity, || async {
            Ok(BTreeMap::from([(target_partition, target.end_offset().await?)]))
        })
        .await?;
        let mut next = progress.target_next.get(&target_partition).copied().unwrap_or(0);
        let mut check_tail = progress.resumed;
        self.segments.sort_by_key(|s| s.start_offset);
        for segment in &self.segments {
            if *self.stop.borrow() {
                outcome.interrupted = true;
                break;
            }
            if progress.commits.contains_key(&segment.key)
                || !self.settings.may_restore(&self.source_topic, self.source_partition, segment)
            {
                continue;
            }
            let source = TopicPartition::new(&self.source_topic, self.source_partition);
            // A chunk at a time: memory is one chunk being produced and the next being read.
            let mut chunks = StoredSegment::open(&self.store, segment, self.settings.window).await?;
            let mut landed = Vec::new();
            while let Some(batches) = chunks.next_batches().await? {
                let prepared = prepare_batches(&batches, &self.settings, &source)?;
                let mut matched = 0;
                if check_tail {
                    let (found, continue_at) = self.target.match_tail(next, &prepared, chunks.has_more()).await?;
                    outcome.already_restored += found.iter().map(|b| b.count).sum::<i64>();
                    next = continue_at;
                    matched = found.len();
                    // A chunk found whole on the target: the interrupted run may have written the next too.
                    check_tail = matched == prepared.len();
                    landed.extend(found);
                }
                landed.extend(self.target.produce(&prepared[matched..], &mut next, &mut outcome.written).await?);
            }
            check_tail = false;
            let record = RestoreCommit {
                source_partition: self.source_partition,
                source_segment: segment.key.clone(),
                source_start: segment.start_offset,
                batches: BTreeMap::from([(target_partition, landed)]),
                target_next: BTreeMap::from([(target_partition, next)]),
                null_keys_routed: 0,
            };
            commit(&self.store, &self.state_dir, &record).await?;
        }
        Ok(outcome)
    }
}
