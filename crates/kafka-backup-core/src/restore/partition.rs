//! Restoring one partition: its segments in offset order, batches prepared for the window and
//! produced by an idempotent producer, one durable commit record (with the offset map) per
//! restored segment. A resumed run first compares what an interrupted run left on the target with
//! the backup, record by record, and continues after it: no duplicate, no loss.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::ResponseError;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::prepare::{prepare, PreparedBatch, SourceOffsets};
use super::rate::RateLimiter;
use super::RestoreError;
use crate::config::RestoreSettings;
use crate::kafka::{FetchOptions, IsolationLevel, KafkaClient, KafkaError, OffsetSpec, PendingProduce};
use crate::manifest::to_json;
use crate::offset_map::MappedBatch;
use crate::records::{split_batches, Record};
use crate::segment::{read_segment, SegmentMetadata};
use crate::storage::{BackupStore, StorageError};

/// What a partition's restore is (`started.json`): a re-run with other settings is refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionRestoreState {
    /// Topic in the backup.
    pub source_topic: String,
    /// Partition in the backup.
    pub source_partition: i32,
    /// Time window start.
    pub window_start: Option<i64>,
    /// Time window end.
    pub window_end: Option<i64>,
    /// Produce codec, if changed.
    pub produce_compression: Option<String>,
    /// Whether records carry `x-original-offset`.
    pub include_original_offset_header: bool,
    /// Target end offset when the restore began.
    pub target_start: i64,
}

/// A restored source segment: the offset map of its batches (`segment-{start}.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestoreCommit {
    /// Key of the source segment in the backup.
    pub source_segment: String,
    /// Produced batches in order.
    pub batches: Vec<MappedBatch>,
    /// Target offset after the segment's records.
    pub target_next: i64,
}

/// Everything one partition's restore needs.
pub(super) struct PartitionRestore {
    pub client: Arc<KafkaClient>,
    pub store: BackupStore,
    pub settings: RestoreSettings,
    pub source_topic: String,
    pub source_partition: i32,
    pub target_topic: String,
    pub target_partition: i32,
    pub state_dir: String,
    pub segments: Vec<SegmentMetadata>,
    pub producer: (i64, i16),
    pub limiter: Arc<RateLimiter>,
    pub stop: watch::Receiver<bool>,
}

/// What one partition's restore did.
#[derive(Debug, Default)]
pub(super) struct PartitionOutcome {
    pub records: i64,
    pub batches: u64,
    pub bytes: u64,
    pub already_restored: i64,
    pub interrupted: bool,
}

const PRODUCE_TIMEOUT: Duration = Duration::from_secs(30);
/// Batches sent ahead of acknowledgements per partition: Kafka keeps the order of an idempotent
/// producer's batches for up to five in flight.
const MAX_IN_FLIGHT: usize = 5;

/// A batch sent and not yet acknowledged.
struct InFlight<'a> {
    ack: PendingProduce,
    expected: i64,
    batch: &'a PreparedBatch,
}

fn mapped(source: &SourceOffsets, target_first: i64) -> MappedBatch {
    match source {
        SourceOffsets::Range(first, last) => MappedBatch {
            source_first: *first,
            source_last: *last,
            target_first,
            count: last - first + 1,
            source_offsets: None,
        },
        SourceOffsets::List(offsets) => MappedBatch::new(offsets, target_first),
    }
}

/// Kafka sequence numbers wrap from `i32::MAX` to 0.
fn next_sequence(sequence: i32, records: i64) -> i32 {
    ((i64::from(sequence) + records) % (i64::from(i32::MAX) + 1)) as i32
}

impl PartitionRestore {
    fn target(&self) -> String {
        format!("{}-{}", self.target_topic, self.target_partition)
    }

    fn changed(&self, detail: String) -> RestoreError {
        RestoreError::TargetChanged { partition: self.target(), detail }
    }

    fn kafka(&self, action: &str) -> impl FnOnce(KafkaError) -> RestoreError {
        super::kafka(format!("{action} {}", self.target()))
    }

    pub async fn run(self) -> Result<PartitionOutcome, RestoreError> {
        let mut outcome = PartitionOutcome::default();
        let (state, resumed, commits) = self.load_state().await?;
        let mut target_next = commits.values().map(|c| c.target_next).max().unwrap_or(state.target_start);
        let mut check_tail = resumed;
        let mut sequence = 0i32;
        let (producer_id, producer_epoch) = self.producer;
        let mut segments = self.segments.clone();
        segments.sort_by_key(|s| s.start_offset);
        for segment in &segments {
            if *self.stop.borrow() {
                outcome.interrupted = true;
                break;
            }
            if commits.contains_key(&segment.key)
                || self.settings.window.excludes(segment.min_timestamp, segment.max_timestamp)
            {
                continue;
            }
            let prepared = self.prepare_segment(segment).await?;
            let (mut done, mut batches) = (0, Vec::new());
            if check_tail {
                (done, batches) = self.match_target_tail(target_next, &prepared).await?;
                let found: i64 = batches.iter().map(|b| b.count).sum();
                outcome.already_restored += found;
                target_next += found;
                check_tail = false;
            }
            // Up to MAX_IN_FLIGHT batches are sent before the oldest is acknowledged; the
            // idempotent producer's sequences keep them in order on the broker.
            let mut in_flight: VecDeque<InFlight> = VecDeque::new();
            for batch in &prepared[done..] {
                self.limiter.acquire(batch.batch.size() as u64, batch.records as u64).await;
                let bytes = batch.batch.for_producer(producer_id, producer_epoch, sequence).as_bytes().clone();
                let ack = self
                    .client
                    .start_produce(&self.target_topic, self.target_partition, bytes, PRODUCE_TIMEOUT)
                    .await
                    .map_err(self.kafka("producing to"))?;
                in_flight.push_back(InFlight { ack, expected: target_next, batch });
                target_next += batch.records;
                sequence = next_sequence(sequence, batch.records);
                if in_flight.len() >= MAX_IN_FLIGHT {
                    let sent = in_flight.pop_front().expect("non-empty");
                    self.acknowledged(sent, &mut batches, &mut outcome).await?;
                }
            }
            while let Some(sent) = in_flight.pop_front() {
                self.acknowledged(sent, &mut batches, &mut outcome).await?;
            }
            let commit = RestoreCommit { source_segment: segment.key.clone(), batches, target_next };
            let key = format!("{}/segment-{:020}.json", self.state_dir, segment.start_offset);
            self.store.put_new(&key, to_json(&commit)).await?;
        }
        Ok(outcome)
    }

    /// Waits for a sent batch's acknowledgement and records where it landed. Any failure stops
    /// the partition: a re-run checks the target's tail against the backup and continues exactly
    /// after what did land, so an error can neither duplicate nor lose records.
    async fn acknowledged(
        &self,
        sent: InFlight<'_>,
        batches: &mut Vec<MappedBatch>,
        outcome: &mut PartitionOutcome,
    ) -> Result<(), RestoreError> {
        match sent.ack.ack().await {
            Ok(ack) if ack.base_offset == sent.expected => {}
            Ok(ack) => {
                return Err(self.changed(format!(
                    "a batch landed at offset {} where this restore expected {}: another producer is writing to \
                     the target; restore into a topic nothing else writes to",
                    ack.base_offset, sent.expected
                )))
            }
            // A retried request the broker had already appended (Tansu reports it this way).
            Err(error) if error.response_error() == Some(ResponseError::DuplicateSequenceNumber) => {}
            Err(error) => return Err(self.kafka("producing to")(error)),
        }
        batches.push(mapped(&sent.batch.source, sent.expected));
        outcome.records += sent.batch.records;
        outcome.batches += 1;
        outcome.bytes += sent.batch.batch.size() as u64;
        Ok(())
    }

    /// Reads (or starts) this partition's restore state and its commit records.
    async fn load_state(&self) -> Result<(PartitionRestoreState, bool, BTreeMap<String, RestoreCommit>), RestoreError> {
        let started_key = format!("{}/started.json", self.state_dir);
        let mut wanted = PartitionRestoreState {
            source_topic: self.source_topic.clone(),
            source_partition: self.source_partition,
            window_start: self.settings.window.start,
            window_end: self.settings.window.end,
            produce_compression: self.settings.produce_compression.map(|c| c.name().to_string()),
            include_original_offset_header: self.settings.include_original_offset_header,
            target_start: 0,
        };
        let parse_error = |key: &str, e: serde_json::Error| {
            self.changed(format!("restore state {key} is unreadable ({e}); delete {} to start over", self.state_dir))
        };
        let (state, resumed) = match self.store.get(&started_key).await {
            Ok(bytes) => {
                let recorded: PartitionRestoreState =
                    serde_json::from_slice(&bytes).map_err(|e| parse_error(&started_key, e))?;
                wanted.target_start = recorded.target_start;
                if recorded != wanted {
                    return Err(self.changed(format!(
                        "an earlier restore into it with other settings ({recorded:?}) is recorded in {}/{}; \
                         restore into another topic, or delete that directory to start over",
                        self.store.description(),
                        self.state_dir
                    )));
                }
                (recorded, true)
            }
            Err(StorageError::NotFound { .. }) => {
                let end = self
                    .client
                    .list_offsets(
                        &self.target_topic,
                        &[self.target_partition],
                        OffsetSpec::Latest,
                        IsolationLevel::ReadUncommitted,
                    )
                    .await
                    .map_err(self.kafka("reading the end offset of"))?;
                wanted.target_start = end.first().map_or(0, |&(_, offset)| offset);
                self.store.put_new(&started_key, to_json(&wanted)).await?;
                (wanted, false)
            }
            Err(error) => return Err(error.into()),
        };
        let mut commits = BTreeMap::new();
        for object in self.store.list(&self.state_dir).await? {
            if object.key.rsplit('/').next().is_some_and(|name| name.starts_with("segment-")) {
                let body = self.store.get(&object.key).await?;
                let commit: RestoreCommit = serde_json::from_slice(&body).map_err(|e| parse_error(&object.key, e))?;
                commits.insert(commit.source_segment.clone(), commit);
            }
        }
        Ok((state, resumed, commits))
    }

    async fn prepare_segment(&self, segment: &SegmentMetadata) -> Result<Vec<PreparedBatch>, RestoreError> {
        let bytes = self.store.get(&segment.key).await?;
        let batches =
            read_segment(&bytes).map_err(|source| RestoreError::Segment { key: segment.key.clone(), source })?;
        let mut prepared = Vec::with_capacity(batches.len());
        for batch in &batches {
            let records_error = |source| RestoreError::Records {
                partition: format!("{}-{}", self.source_topic, self.source_partition),
                offset: batch.base_offset(),
                source,
            };
            if let Some(ready) = prepare(batch, &self.settings).map_err(records_error)? {
                prepared.push(ready);
            }
        }
        Ok(prepared)
    }

    /// After an interruption: the records the target holds from `target_next` on must be the
    /// first batches of `prepared`, record for record. Returns how many batches are already there.
    async fn match_target_tail(
        &self,
        target_next: i64,
        prepared: &[PreparedBatch],
    ) -> Result<(usize, Vec<MappedBatch>), RestoreError> {
        let found = self.read_target_from(target_next).await?;
        let (mut matched, mut batches, mut offset) = (0usize, Vec::new(), target_next);
        while matched < found.len() {
            let Some(batch) = prepared.get(batches.len()) else {
                return Err(self.changed(format!(
                    "it holds {} records after offset {target_next} but this restore wrote only {matched} of them; \
                     another producer wrote to it",
                    found.len()
                )));
            };
            let expected = batch.batch.records().map_err(|source| RestoreError::Records {
                partition: self.target(),
                offset,
                source,
            })?;
            let present = found.get(matched..matched + expected.len()).unwrap_or_default();
            let same = |a: &Record, b: &Record| {
                (&a.key, &a.value, &a.headers, a.timestamp) == (&b.key, &b.value, &b.headers, b.timestamp)
            };
            if present.len() != expected.len() || !present.iter().zip(&expected).all(|(a, b)| same(a, b)) {
                return Err(self.changed(format!(
                    "the records at offsets {offset}.. differ from the backup; another producer wrote to it"
                )));
            }
            batches.push(mapped(&batch.source, offset));
            matched += expected.len();
            offset += batch.records;
        }
        Ok((batches.len(), batches))
    }

    /// Every record of the target partition from `offset` to its end.
    async fn read_target_from(&self, mut offset: i64) -> Result<Vec<Record>, RestoreError> {
        let options = FetchOptions {
            max_wait: Duration::from_millis(100),
            isolation: IsolationLevel::ReadUncommitted,
            ..FetchOptions::default()
        };
        let mut records = Vec::new();
        loop {
            let fetched = self
                .client
                .fetch(&self.target_topic, self.target_partition, offset, &options)
                .await
                .map_err(self.kafka("reading back"))?;
            let split = split_batches(fetched.records).map_err(|source| RestoreError::Records {
                partition: self.target(),
                offset,
                source,
            })?;
            let whole: Vec<_> = split.batches.into_iter().filter(|b| b.last_offset() >= offset).collect();
            if whole.is_empty() {
                return Ok(records);
            }
            for batch in whole {
                let decoded = batch.records().map_err(|source| RestoreError::Records {
                    partition: self.target(),
                    offset,
                    source,
                })?;
                records.extend(decoded.into_iter().filter(|r| r.offset >= offset));
                offset = batch.last_offset() + 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences_wrap_like_kafka() {
        assert_eq!(next_sequence(5, 3), 8);
        assert_eq!(next_sequence(i32::MAX - 1, 3), 1);
    }
}
