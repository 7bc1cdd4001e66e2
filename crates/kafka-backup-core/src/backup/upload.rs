//! Storing one segment while it is built: its chunks are compressed in parallel off the async
//! threads, written in order to a streaming upload, and the commit record follows the finished
//! object, so memory per partition is a few chunks and parts, not a segment.

use std::collections::VecDeque;
use std::sync::{Arc, OnceLock};

use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::error::EngineError;
use crate::manifest::to_json;
use crate::metrics::metrics;
use crate::records::{Compression, RecordsError};
use crate::segment::{CompressedChunk, RawChunk, SegmentEncoder, SegmentMetadata, SegmentSummary};
use crate::storage::{BackupStore, ObjectWriter, StorageError};
use crate::topics::TopicPartition;

/// The machine's cores (at most 8): chunks compressing at once per segment, so that one
/// partition alone keeps the machine busy, and in the whole process, so that many partitions do
/// not hold more chunks and codec contexts in memory than there are cores to work on them.
fn cores() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(1, 8))
}

fn compression_slots() -> Arc<Semaphore> {
    static SLOTS: OnceLock<Arc<Semaphore>> = OnceLock::new();
    SLOTS.get_or_init(|| Arc::new(Semaphore::new(cores()))).clone()
}

type Compressing = JoinHandle<Result<CompressedChunk, RecordsError>>;

/// A segment object being uploaded.
pub(super) struct SegmentUpload {
    store: BackupStore,
    key: String,
    /// `topic-partition` and the segment's start offset, for errors.
    partition: TopicPartition,
    start_offset: i64,
    codec: Compression,
    level: Option<i32>,
    encoder: SegmentEncoder,
    writer: ObjectWriter,
    compressing: VecDeque<Compressing>,
}

impl SegmentUpload {
    /// Starts the object `key` of the segment of `partition` from `start_offset` (the header
    /// goes into the first part).
    pub async fn start(
        store: &BackupStore,
        key: String,
        (partition, start_offset): (TopicPartition, i64),
        (codec, level): (Compression, Option<i32>),
    ) -> Result<Self, EngineError> {
        let (encoder, header) = SegmentEncoder::new(codec);
        let mut writer = store.writer(&key);
        writer.write(header).await?;
        let compressing = VecDeque::new();
        Ok(Self { store: store.clone(), key, partition, start_offset, codec, level, encoder, writer, compressing })
    }

    /// Queues `chunk` for compression; writes the oldest compressed chunks out while too many are queued.
    pub async fn add(&mut self, chunk: RawChunk) -> Result<(), EngineError> {
        let (codec, level) = (self.codec, self.level);
        let slot = compression_slots().acquire_owned().await.expect("the semaphore is never closed");
        self.compressing.push_back(tokio::task::spawn_blocking(move || {
            let _slot = slot;
            chunk.compress(codec, level)
        }));
        while self.compressing.len() > cores() {
            self.write_oldest().await?;
        }
        Ok(())
    }

    async fn write_oldest(&mut self) -> Result<(), EngineError> {
        let Some(compressing) = self.compressing.pop_front() else { return Ok(()) };
        let chunk = compressing.await.expect("compression does not panic").map_err(|source| EngineError::Records {
            partition: self.partition.clone(),
            offset: self.start_offset,
            source,
        })?;
        let bytes = self.encoder.add(chunk);
        self.writer.write(bytes).await?;
        Ok(())
    }

    /// Finishes in the background: the remaining chunks, the index and trailer, the object, then
    /// the commit record at `metadata_key`. The task yields the stored size; on failure the
    /// upload is aborted and nothing is committed.
    /// `labels` are the partition's, for the metrics counted once the segment is committed.
    pub fn finish(
        self,
        summary: SegmentSummary,
        metadata_key: String,
        labels: [String; 2],
    ) -> JoinHandle<Result<u64, EngineError>> {
        tokio::spawn(self.complete(summary, metadata_key, labels))
    }

    async fn complete(
        mut self,
        summary: SegmentSummary,
        metadata_key: String,
        labels: [String; 2],
    ) -> Result<u64, EngineError> {
        let metadata = match self.write_rest(summary).await {
            Ok(metadata) => metadata,
            Err(error) => {
                self.writer.abort().await;
                return Err(error);
            }
        };
        self.writer.finish().await?;
        put_commit_record(&self.store, &metadata_key, to_json(&metadata)).await?;
        metrics().segments.with_label_values(&labels).inc();
        metrics().stored_bytes.with_label_values(&labels).inc_by(metadata.stored_bytes);
        metrics().last_segment.with_label_values(&labels).set(crate::clock::now_ms() as f64 / 1000.0);
        Ok(metadata.stored_bytes)
    }

    async fn write_rest(&mut self, summary: SegmentSummary) -> Result<SegmentMetadata, EngineError> {
        while !self.compressing.is_empty() {
            self.write_oldest().await?;
        }
        let (tail, metadata) = self.encoder.finish(summary, self.key.clone());
        self.writer.write(tail).await?;
        Ok(metadata)
    }
}

/// Writes a commit record (segment metadata, gap), create-only: one already there means another
/// run of this backup id is writing the same partition.
pub(super) async fn put_commit_record(store: &BackupStore, key: &str, body: bytes::Bytes) -> Result<(), EngineError> {
    store.put_new(key, body).await.map_err(|error| match error {
        StorageError::AlreadyExists { key, .. } => EngineError::Conflict { key },
        other => EngineError::Storage(other),
    })
}
