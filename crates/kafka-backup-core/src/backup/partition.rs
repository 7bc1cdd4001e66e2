//! Backing up one partition: fetch from the resume point, keep batches as the broker returned
//! them (minus control batches and aborted transactions), roll segments by size and age, commit
//! each segment durably, and record offsets lost to retention instead of failing.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kafka_protocol::ResponseError;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

use super::incarnations::{Found, Incarnations};
use super::progress::ProgressBoard;
use super::transactions::TransactionFilter;
use super::upload::{put_commit_record, SegmentUpload};
use super::BackupSettings;
use super::Counters;
use crate::clock::now_ms;
use crate::error::EngineError;
use crate::kafka::{
    parse_topic_id, FetchOptions, FetchRounds, IsolationLevel, KafkaClient, KafkaError, OffsetSpec, RoundFetch,
};
use crate::layout::{gap_key, partition_folder, segment_key, segment_metadata_key, segment_object_start};
use crate::manifest::{to_json, OffsetGap};
use crate::metrics::{metrics, Metrics};
use crate::records::split_batches;
use crate::segment::{RawChunk, SegmentBuilder, CHUNK_BYTES};
use crate::storage::BackupStore;
use crate::topics::TopicPartition;
use uuid::Uuid;

/// Fetched records the process holds at most: the budget of the run's fetch rounds (a round asks
/// for no more than is free), and the share of each partition's fetch size: each partition being
/// processed holds the response it processes and the one fetched ahead, so a partition's fetch size
/// is this shared among `max_concurrent_partitions` ([`fetch_size`]).
pub(super) const FETCH_BUFFER_BYTES: i32 = 32 * 1024 * 1024;
/// Bounds of a partition's fetch size to start with; doubled (up to the ceiling) when one batch is
/// larger.
const FETCH_MAX_BYTES: i32 = 8 * 1024 * 1024;
const FETCH_MIN_BYTES: i32 = 1024 * 1024;
/// Largest single fetch, far above Kafka's default `message.max.bytes` of 1 MiB.
const FETCH_MAX_BYTES_CEILING: i32 = 256 * 1024 * 1024;
/// How often a continuous backup looks for a deleted topic to be created again.
const TOPIC_RECHECK_INTERVAL: Duration = Duration::from_secs(1);
/// How long a fetch waits at the log end: short enough to notice shutdown quickly.
const FETCH_MAX_WAIT: Duration = Duration::from_millis(500);

/// The fetch size of each of `concurrent` partitions: two responses of each within the process's
/// fetch buffer, between 1 and 8 MiB.
fn fetch_size(concurrent: usize) -> i32 {
    let share = FETCH_BUFFER_BYTES / (2 * concurrent.max(1)).min(64) as i32;
    share.clamp(FETCH_MIN_BYTES, FETCH_MAX_BYTES)
}

/// A fetch started ahead of need; aborted when dropped unused.
struct Prefetch {
    offset: i64,
    max_bytes: i32,
    handle: Option<JoinHandle<Result<RoundFetch, KafkaError>>>,
}

impl Prefetch {
    async fn result(mut self) -> Result<RoundFetch, KafkaError> {
        let handle = self.handle.take().expect("awaited once");
        handle.await.expect("fetch tasks do not panic")
    }
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        if let Some(handle) = &self.handle {
            handle.abort();
        }
    }
}

/// Everything one partition's backup needs.
pub(super) struct PartitionTask {
    pub client: Arc<KafkaClient>,
    /// The run's fetchers: this partition's fetches go out in its leader's rounds.
    pub rounds: Arc<FetchRounds>,
    pub store: BackupStore,
    pub settings: BackupSettings,
    pub topic: String,
    /// The name in the backup of the topic's incarnation being backed up (see `incarnations`).
    pub stored_topic: String,
    /// That incarnation's topic id, if the broker reports ids.
    pub topic_id: Option<String>,
    /// The run's incarnations: a partition that finds its topic re-created goes on in the new one.
    pub incarnations: Arc<Incarnations>,
    pub partition: i32,
    /// Where the previous run stopped, if there was one.
    pub resume_from: Option<i64>,
    /// Workers of a group share the backup: another may be writing this partition's next segment.
    pub shared: bool,
    /// With `shared`: the keys of the partition's committed segment objects.
    pub committed_objects: HashSet<String>,
    /// Snapshot bound: stop before this offset (`None` in continuous mode).
    pub end: Option<i64>,
    pub stop: watch::Receiver<bool>,
    pub permits: Arc<Semaphore>,
    pub progress: Arc<Mutex<ProgressBoard>>,
}

/// What one partition's backup did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PartitionOutcome {
    /// Records, batches and bytes.
    pub counters: Counters,
    /// Offset ranges lost to retention.
    pub gaps: Vec<OffsetGap>,
    /// True when a stop signal ended the work before the snapshot bound.
    pub interrupted: bool,
    /// True when another worker of the group committed first: the partition is that worker's now.
    pub lost: bool,
}

impl PartitionTask {
    fn context(&self) -> TopicPartition {
        TopicPartition::new(&self.topic, self.partition)
    }

    fn kafka(&self, action: &str) -> impl FnOnce(KafkaError) -> EngineError {
        EngineError::kafka(format!("{action} {}", self.context()))
    }

    async fn earliest_offset(&self) -> Result<i64, EngineError> {
        self.client
            .partition_offset(&self.topic, self.partition, OffsetSpec::Earliest)
            .await
            .map_err(self.kafka("reading the log start offset of"))
    }

    /// Runs the partition's backup to its bound (or until stopped).
    pub async fn run(mut self) -> Result<PartitionOutcome, EngineError> {
        // Snapshot mode holds one permit for the whole partition, which bounds memory by
        // `max_concurrent_partitions` open segments; continuous mode takes one per fetch so that
        // every partition keeps being tailed.
        let continuous = self.end.is_none();
        let _whole_run = if continuous { None } else { Some(self.permits.clone().acquire_owned().await) };
        let mut outcome = PartitionOutcome::default();
        let labels = Metrics::partition_labels(&self.topic, self.partition);
        // A resume point that retention has deleted since is found by the first fetch
        // (OFFSET_OUT_OF_RANGE) and recorded as a gap, like one deleted mid-run.
        let mut offset = match self.resume_from {
            Some(offset) => offset,
            None => self.earliest_offset().await?,
        };
        self.remove_uncommitted_segments().await?;
        if let Some(resumed) = self.resume_from {
            self.progress.lock().expect("progress lock").committed(&self.stored_topic, self.partition, resumed);
        }
        if let Some(end) = self.end {
            metrics().progress.expect((end - offset).max(0) as u64);
        }
        let mut segment = self.new_segment(offset);
        let mut filter = TransactionFilter::default();
        let mut fetch_max = fetch_size(self.settings.max_concurrent_partitions);
        let mut prefetched: Option<Prefetch> = None;
        let mut writing: Option<SegmentWrite> = None;
        loop {
            if writing.as_ref().is_some_and(SegmentWrite::is_finished) {
                self.settle(&mut writing, &mut outcome).await?;
            }
            let oldest_uncommitted = writing
                .as_ref()
                .map(|write| write.oldest_record)
                .or_else(|| (!segment.builder.is_empty()).then(|| segment.builder.opened_at()));
            let age = oldest_uncommitted.map_or(0.0, |fetched_at| fetched_at.elapsed().as_secs_f64());
            metrics().uncommitted_age.with_label_values(&labels).set(age);
            if *self.stop.borrow() {
                outcome.interrupted = !continuous;
                break;
            }
            if self.end.is_some_and(|end| offset >= end) {
                break;
            }
            if !segment.builder.is_empty()
                && segment.builder.opened_at().elapsed() >= self.settings.segment_max_interval
            {
                segment = self.commit(segment, &mut writing, &mut outcome).await?;
            }
            let options = FetchOptions {
                max_wait: FETCH_MAX_WAIT,
                min_bytes: 1,
                max_bytes: fetch_max,
                isolation: IsolationLevel::ReadCommitted,
            };
            let fetched = self.fetch(offset, options, prefetched.take()).await;
            let suspect = match &fetched {
                // A fetch retried after a metadata refresh that found another topic id under the
                // name may have read the new incarnation: its answer is not taken.
                Ok(_) => self.topic_id_changed(),
                Err(error) => {
                    error.is_unknown_topic() || error.response_error() == Some(ResponseError::OffsetOutOfRange)
                }
            };
            if suspect {
                let mut found = self.incarnations.check(&self.topic, &self.stored_topic).await?;
                if found == Found::Gone && continuous {
                    // Deleted: what was fetched is committed; the backup waits for it to be re-created.
                    segment = self.commit_held(segment, &mut writing, &mut outcome).await?;
                    while found == Found::Gone && !*self.stop.borrow() {
                        self.wait_for_topic().await;
                        found = self.incarnations.check(&self.topic, &self.stored_topic).await?;
                    }
                    if found == Found::Gone {
                        continue; // stopping
                    }
                }
                match found {
                    Found::Recreated { stored, .. } if !continuous => {
                        return Err(EngineError::TopicRecreated { topic: self.topic.clone(), stored });
                    }
                    Found::Recreated { stored, topic_id, partitions } => {
                        // What was fetched before is the old incarnation's: committed under its name.
                        segment = self.commit_held(segment, &mut writing, &mut outcome).await?;
                        if !partitions.contains(&self.partition) {
                            tracing::warn!(partition = %self.context(), incarnation = %stored,
                                "the re-created topic has no such partition: its backup ends here");
                            break;
                        }
                        tracing::info!(partition = %self.context(), incarnation = %stored,
                            "backing up the re-created topic's partition from its start");
                        (self.stored_topic, self.topic_id) = (stored, topic_id);
                        offset = self.earliest_offset().await?;
                        segment = self.new_segment(offset);
                        filter = TransactionFilter::default();
                        continue;
                    }
                    Found::Same if fetched.is_ok() => {
                        self.topic_id =
                            self.client.cached_metadata().topics.get(&self.topic).and_then(|t| t.topic_id.clone());
                        continue;
                    }
                    // The topic is as it was, its leader does not know it yet (or no longer):
                    // metadata moving between brokers. Asked again in a moment.
                    Found::Same if continuous && fetched.as_ref().is_err_and(KafkaError::is_unknown_topic) => {
                        tracing::warn!(partition = %self.context(), "the partition's leader does not know the topic \
                            (yet); asking again");
                        self.wait_for_topic().await;
                        continue;
                    }
                    Found::Same | Found::Gone => {}
                }
            }
            let round_fetch = match fetched {
                Ok(round_fetch) => round_fetch,
                Err(error) if error.response_error() == Some(ResponseError::OffsetOutOfRange) => {
                    let earliest = self.earliest_offset().await?;
                    if earliest <= offset {
                        return Err(EngineError::BeyondLogEnd { partition: self.context(), offset });
                    }
                    // Retention deleted what we were about to read: close what we have, record the gap.
                    // With nothing kept since the last commit, the gap starts where that commit ended.
                    let from = if segment.builder.is_empty() { segment.builder.start_offset() } else { offset };
                    self.commit_held(segment, &mut writing, &mut outcome).await?;
                    // The gap record must not be durable before the segment before it.
                    self.record_gap(from, earliest, &mut outcome).await?;
                    offset = earliest;
                    segment = self.new_segment(offset);
                    continue;
                }
                Err(error) => return Err(self.kafka("fetching")(error)),
            };
            // Continuous mode takes a slot per response processed, not while waiting for records:
            // a quiet partition never holds one, so every partition keeps its place in the rounds.
            let _step = if continuous { Some(self.permits.clone().acquire_owned().await) } else { None };
            let fetched = &round_fetch.fetched;
            filter.add_aborted(&fetched.aborted_transactions);
            let split = split_batches(fetched.records.clone()).map_err(|source| EngineError::Records {
                partition: self.context(),
                offset,
                source,
            })?;
            if split.batches.is_empty() {
                if split.partial_tail && fetch_max < FETCH_MAX_BYTES_CEILING {
                    fetch_max = fetch_max.saturating_mul(2).min(FETCH_MAX_BYTES_CEILING);
                } else if !continuous && offset >= fetched.high_watermark {
                    break; // nothing left to read below the bound
                }
                continue;
            }
            // Fetch what follows while this response is processed and committed.
            let next = split.batches.last().map_or(offset, |b| b.last_offset() + 1);
            if next > offset && self.end.is_none_or(|end| next < end) {
                prefetched = Some(self.prefetch(next, options));
            }
            let mut reached_end = false;
            for batch in split.batches {
                if batch.last_offset() < offset {
                    continue;
                }
                if self.end.is_some_and(|end| batch.base_offset() >= end) {
                    reached_end = true;
                    break;
                }
                let records_error =
                    |source| EngineError::Records { partition: self.context(), offset: batch.base_offset(), source };
                batch.verify_crc().map_err(records_error)?;
                // A log start moved into this batch (DeleteRecords): keep only what is still there.
                let Some(batch) = batch.without_records_before(offset).map_err(records_error)? else { continue };
                if filter.keep(&batch).map_err(records_error)? {
                    if let Some(chunk) = segment.builder.push(&batch).map_err(records_error)? {
                        self.add_chunk(&mut segment, chunk).await?;
                    }
                    outcome.counters.records += i64::from(batch.record_count());
                    outcome.counters.batches += 1;
                    outcome.counters.bytes_in += batch.size() as u64;
                    metrics().records.with_label_values(&labels).inc_by(batch.record_count().max(0) as u64);
                    metrics().read_bytes.with_label_values(&labels).inc_by(batch.size() as u64);
                    metrics().progress.done(batch.record_count().max(0) as u64, batch.size() as u64);
                } else {
                    segment.builder.advance_to(batch.last_offset() + 1);
                    outcome.counters.dropped_batches += 1;
                }
                offset = batch.last_offset() + 1;
                if segment.builder.payload_len() >= self.settings.segment_max_bytes {
                    segment = self.commit(segment, &mut writing, &mut outcome).await?;
                }
            }
            metrics().lag.with_label_values(&labels).set((fetched.high_watermark - offset).max(0));
            self.progress.lock().expect("progress lock").update(
                &self.stored_topic,
                self.partition,
                offset,
                fetched.high_watermark,
            );
            if reached_end {
                break;
            }
        }
        if !segment.builder.is_empty() {
            self.commit(segment, &mut writing, &mut outcome).await?;
        }
        self.settle(&mut writing, &mut outcome).await?;
        metrics().uncommitted_age.with_label_values(&labels).set(0.0);
        Ok(outcome)
    }

    /// Waits for the segment being stored, if any, counts it and records the committed offset.
    async fn settle(
        &self,
        writing: &mut Option<SegmentWrite>,
        outcome: &mut PartitionOutcome,
    ) -> Result<(), EngineError> {
        if let Some(write) = writing.take() {
            let stored_bytes = write.stored.await.expect("segment writes do not panic")?;
            outcome.counters.segments += 1;
            outcome.counters.bytes_stored += stored_bytes;
            self.progress.lock().expect("progress lock").committed(
                &self.stored_topic,
                self.partition,
                write.next_offset,
            );
        }
        Ok(())
    }

    /// Commits what the open segment holds and waits until every commit is durable; returns a
    /// fresh segment after it.
    async fn commit_held(
        &self,
        segment: OpenSegment,
        writing: &mut Option<SegmentWrite>,
        outcome: &mut PartitionOutcome,
    ) -> Result<OpenSegment, EngineError> {
        let segment = match segment.builder.is_empty() {
            true => segment,
            false => self.commit(segment, writing, outcome).await?,
        };
        self.settle(writing, outcome).await?;
        Ok(segment)
    }

    /// True when the client's metadata names another id for the topic than the incarnation
    /// being backed up: a refresh after a failed fetch found the topic re-created.
    fn topic_id_changed(&self) -> bool {
        let Some(expected) = &self.topic_id else { return false };
        let metadata = self.client.cached_metadata();
        metadata.topics.get(&self.topic).and_then(|t| t.topic_id.as_ref()).is_some_and(|id| id != expected)
    }

    /// Waits a moment (or until the run stops) before looking for a deleted topic again.
    async fn wait_for_topic(&self) {
        let mut stop = self.stop.clone();
        if !*stop.borrow() {
            tracing::debug!(partition = %self.context(), "the topic is deleted on the source; waiting for it to be created again");
            let _ = tokio::time::timeout(TOPIC_RECHECK_INTERVAL, stop.changed()).await;
        }
    }

    async fn record_gap(&self, from: i64, to: i64, outcome: &mut PartitionOutcome) -> Result<(), EngineError> {
        let gap = OffsetGap { from, to, detected_at_ms: now_ms() };
        tracing::warn!(partition = %self.context(), from, to, "offsets were deleted by retention before they were backed up");
        put_commit_record(&self.store, &gap_key(&self.stored_topic, self.partition, from), to_json(&gap)).await?;
        outcome.gaps.push(gap);
        Ok(())
    }

    /// Finishes the segment and completes its upload in the background, once the previous
    /// segment is committed (commits stay in offset order); returns a fresh segment after it.
    async fn commit(
        &self,
        segment: OpenSegment,
        writing: &mut Option<SegmentWrite>,
        outcome: &mut PartitionOutcome,
    ) -> Result<OpenSegment, EngineError> {
        let start = segment.builder.start_offset();
        let oldest_record = segment.builder.opened_at();
        let (last, summary) = segment.builder.finish();
        let mut upload = match segment.upload {
            Some(upload) => upload,
            None => self.start_upload(start).await?,
        };
        if let Some(chunk) = last {
            upload.add(chunk).await?;
        }
        self.settle(writing, outcome).await?;
        let metadata_key = segment_metadata_key(&self.stored_topic, self.partition, start);
        let labels = Metrics::partition_labels(&self.topic, self.partition);
        let next_offset = summary.next_offset();
        *writing =
            Some(SegmentWrite { stored: upload.finish(summary, metadata_key, labels), oldest_record, next_offset });
        Ok(self.new_segment(summary.next_offset()))
    }

    /// Hands a full chunk to the segment's upload, starting the upload with the first one.
    async fn add_chunk(&self, segment: &mut OpenSegment, chunk: RawChunk) -> Result<(), EngineError> {
        let upload = match &mut segment.upload {
            Some(upload) => upload,
            empty => empty.insert(self.start_upload(segment.builder.start_offset()).await?),
        };
        upload.add(chunk).await
    }

    async fn start_upload(&self, start: i64) -> Result<SegmentUpload, EngineError> {
        let key = segment_key(&self.stored_topic, self.partition, start, self.settings.compression);
        let codec = (self.settings.compression, self.settings.compression_level);
        SegmentUpload::start(&self.store, key, (self.context(), start), codec).await
    }

    /// Deletes segment objects a killed run left without a commit record: they start at or after
    /// the resume point (segments commit in offset order, and every run cleans up before writing).
    /// With workers sharing the backup, one starting at the resume point or later may be the
    /// upload of a worker that lost the partition and has not noticed yet, whose commit record
    /// would then name a deleted object: only those below the resume point, which can never be
    /// committed (a commit record already holds their offset), are deleted.
    async fn remove_uncommitted_segments(&self) -> Result<(), EngineError> {
        let folder = partition_folder(&self.stored_topic, self.partition);
        for object in self.store.list(&folder).await? {
            let Some(start) = segment_object_start(&object.key) else { continue };
            let removable = match self.resume_from {
                None => !self.shared,
                Some(resume) if self.shared => start < resume && !self.committed_objects.contains(&object.key),
                Some(resume) => start >= resume,
            };
            if removable {
                tracing::info!(key = %object.key, "removing a segment object an interrupted run left uncommitted");
                self.store.delete(&object.key).await?;
            }
        }
        Ok(())
    }

    /// The fetch at `offset`: the prefetched one if it was for that offset and size, else a new one.
    async fn fetch(
        &self,
        offset: i64,
        options: FetchOptions,
        prefetched: Option<Prefetch>,
    ) -> Result<RoundFetch, KafkaError> {
        if let Some(prefetch) = prefetched {
            if prefetch.offset == offset && prefetch.max_bytes == options.max_bytes {
                return prefetch.result().await;
            }
        }
        fetch_from(self.source(), offset, options).await
    }

    fn prefetch(&self, offset: i64, options: FetchOptions) -> Prefetch {
        let source = self.source();
        let handle = tokio::spawn(async move { fetch_from(source, offset, options).await });
        Prefetch { offset, max_bytes: options.max_bytes, handle: Some(handle) }
    }

    /// Where this partition's fetches go: in continuous mode its leader's rounds, where every
    /// partition of the run waits together; a snapshot, whose partitions run at most
    /// `max_concurrent_partitions` at once, keeps a fetch pipeline of its own per partition (one
    /// request in flight per broker made uncompressed snapshots 15-50 % slower: docs/performance.md).
    fn source(&self) -> FetchSource {
        let topic = (self.topic.clone(), self.topic_id.as_deref().and_then(parse_topic_id));
        match self.end {
            None => FetchSource::Rounds(self.rounds.clone(), topic, self.partition),
            Some(_) => FetchSource::Own(self.client.clone(), topic, self.partition),
        }
    }

    fn new_segment(&self, start: i64) -> OpenSegment {
        OpenSegment { builder: SegmentBuilder::new(start, CHUNK_BYTES), upload: None }
    }
}

/// A partition's way to fetch (see [`PartitionTask::source`]).
enum FetchSource {
    /// With the topic's id, when the broker reports ids: fetches then go by id.
    Rounds(Arc<FetchRounds>, (String, Option<Uuid>), i32),
    Own(Arc<KafkaClient>, (String, Option<Uuid>), i32),
}

async fn fetch_from(source: FetchSource, offset: i64, options: FetchOptions) -> Result<RoundFetch, KafkaError> {
    match source {
        FetchSource::Rounds(rounds, (topic, topic_id), partition) => {
            rounds.fetch((&topic, topic_id), partition, offset, options.max_bytes, options).await
        }
        FetchSource::Own(client, (topic, topic_id), partition) => {
            Ok(client.fetch_topic((&topic, topic_id), partition, offset, &options).await?.into())
        }
    }
}

/// The segment being filled: its builder and, from its first full chunk on, its upload.
struct OpenSegment {
    builder: SegmentBuilder,
    upload: Option<SegmentUpload>,
}

/// A segment being stored and committed in the background.
struct SegmentWrite {
    /// Yields the segment's stored size.
    stored: JoinHandle<Result<u64, EngineError>>,
    /// When its first record was fetched.
    oldest_record: Instant,
    /// The offset after it: the partition's committed position once it is stored.
    next_offset: i64,
}

impl SegmentWrite {
    fn is_finished(&self) -> bool {
        self.stored.is_finished()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fetch_buffer_is_shared_among_the_partitions_backed_up_at_once() {
        assert_eq!(fetch_size(1), FETCH_MAX_BYTES, "one partition: the largest fetch");
        assert_eq!(fetch_size(4), 4 * 1024 * 1024);
        assert_eq!(fetch_size(16), FETCH_MIN_BYTES);
        assert_eq!(fetch_size(10_000), FETCH_MIN_BYTES, "never below 1 MiB");
        assert_eq!(fetch_size(0), FETCH_MAX_BYTES);
    }
}
