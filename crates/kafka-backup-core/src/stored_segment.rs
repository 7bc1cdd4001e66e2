//! Reading a committed segment from storage a chunk at a time: ranged reads of its header,
//! trailer and index, then of each chunk (the next one fetched while the current one is used),
//! skipping chunks whose records all fall outside a time window. Version 1 segments are read whole.

use std::collections::VecDeque;

use bytes::Bytes;
use tokio::task::JoinHandle;

use crate::records::{Compression, RecordBatch};
use crate::segment::{
    read_chunk, read_segment, ChunkEntry, SegmentError, SegmentLayout, SegmentMetadata, HEADER_LEN, TRAILER_LEN,
};
use crate::storage::{BackupStore, StorageError};
use crate::time_window::TimeWindow;

/// A failure reading a stored segment.
#[derive(Debug, thiserror::Error)]
pub enum StoredSegmentError {
    /// The store failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The bytes are not a valid segment.
    #[error("{key}: {source}")]
    Segment {
        /// Object key.
        key: String,
        /// What is wrong.
        source: SegmentError,
    },
}

type Fetch = JoinHandle<Result<Bytes, StorageError>>;

/// The chunks of one stored segment still to read.
pub struct StoredSegment {
    store: BackupStore,
    key: String,
    codec: Compression,
    chunks: VecDeque<ChunkEntry>,
    /// The next chunk's bytes, being fetched.
    fetching: Option<Fetch>,
    /// A version 1 segment's batches, read whole.
    whole: Option<Vec<RecordBatch>>,
}

impl StoredSegment {
    /// Opens the segment `metadata` commits, keeping only chunks with records inside `window`
    /// (chunks without records hold only batches emptied by compaction, which restore nothing).
    pub async fn open(
        store: &BackupStore,
        metadata: &SegmentMetadata,
        window: TimeWindow,
    ) -> Result<Self, StoredSegmentError> {
        let key = metadata.key.clone();
        let corrupt = |source| StoredSegmentError::Segment { key: key.clone(), source };
        let size = metadata.stored_bytes;
        let header = store.get_range(&key, 0..(HEADER_LEN as u64).min(size)).await?;
        let mut segment = Self {
            store: store.clone(),
            key: key.clone(),
            codec: Compression::None,
            chunks: VecDeque::new(),
            fetching: None,
            whole: None,
        };
        if !SegmentLayout::is_chunked(&header).map_err(corrupt)? {
            let bytes = store.get(&key).await?;
            segment.whole = Some(read_segment(&bytes).map_err(corrupt)?);
            return Ok(segment);
        }
        if size < (HEADER_LEN + TRAILER_LEN) as u64 {
            return Err(corrupt(SegmentError::Corrupt(format!("{size} bytes is shorter than a header and a trailer"))));
        }
        let trailer = store.get_range(&key, size - TRAILER_LEN as u64..size).await?;
        let index_range = SegmentLayout::index_range(&trailer, size).map_err(corrupt)?;
        let index = store.get_range(&key, index_range).await?;
        let layout = SegmentLayout::parse(&header, &trailer, &index).map_err(corrupt)?;
        segment.codec = layout.codec;
        segment.chunks = layout
            .chunks
            .into_iter()
            .filter(|chunk| chunk.record_count > 0 && !window.excludes(chunk.min_timestamp, chunk.max_timestamp))
            .collect();
        segment.fetch_next();
        Ok(segment)
    }

    fn fetch_next(&mut self) {
        if let Some(chunk) = self.chunks.front() {
            let (store, key, range) = (self.store.clone(), self.key.clone(), chunk.range());
            self.fetching = Some(tokio::spawn(async move { store.get_range(&key, range).await }));
        }
    }

    /// The segment object's key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Whether chunks remain after those already returned.
    pub fn has_more(&self) -> bool {
        self.whole.is_some() || !self.chunks.is_empty()
    }

    /// The next chunk's batches (CRC-verified), or `None` after the last.
    pub async fn next_batches(&mut self) -> Result<Option<Vec<RecordBatch>>, StoredSegmentError> {
        if let Some(batches) = self.whole.take() {
            return Ok(Some(batches));
        }
        let (Some(chunk), Some(fetching)) = (self.chunks.pop_front(), self.fetching.take()) else { return Ok(None) };
        let bytes = fetching.await.expect("chunk reads do not panic")?;
        self.fetch_next();
        let batches = read_chunk(self.codec, &chunk, bytes)
            .map_err(|source| StoredSegmentError::Segment { key: self.key.clone(), source })?;
        Ok(Some(batches))
    }
}

impl Drop for StoredSegment {
    fn drop(&mut self) {
        if let Some(fetching) = &self.fetching {
            fetching.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{BatchOptions, Record};
    use crate::segment::{SegmentBuilder, SegmentEncoder};
    use crate::storage::StorageConfig;

    fn batch(offset: i64, timestamp: i64) -> RecordBatch {
        let record =
            Record { offset, timestamp, key: None, value: Some(Bytes::from(vec![b'v'; 100])), headers: vec![] };
        RecordBatch::encode(&[record], &BatchOptions::default()).unwrap()
    }

    /// Stores a segment of one batch per chunk (offsets 0..count, timestamp = 1000 * offset).
    async fn stored(store: &BackupStore, count: i64) -> SegmentMetadata {
        let mut builder = SegmentBuilder::new(0, 1);
        let (mut encoder, header) = SegmentEncoder::new(Compression::Zstd);
        let mut object = header.to_vec();
        for offset in 0..count {
            let chunk = builder.push(&batch(offset, offset * 1000)).unwrap().expect("a chunk per batch");
            object.extend_from_slice(&encoder.add(chunk.compress(Compression::Zstd, None).unwrap()));
        }
        let (_, summary) = builder.finish();
        let (tail, metadata) = encoder.finish(summary, "seg".into());
        object.extend_from_slice(&tail);
        store.put_new("seg", Bytes::from(object)).await.unwrap();
        metadata
    }

    #[tokio::test]
    async fn chunks_come_one_at_a_time_and_a_window_skips_the_others() {
        let store = BackupStore::open(&StorageConfig::Memory { prefix: String::new() }).unwrap();
        let metadata = stored(&store, 5).await;
        let mut all = StoredSegment::open(&store, &metadata, TimeWindow::default()).await.unwrap();
        let mut offsets = Vec::new();
        while let Some(batches) = all.next_batches().await.unwrap() {
            assert_eq!(batches.len(), 1);
            offsets.push(batches[0].base_offset());
        }
        assert_eq!(offsets, vec![0, 1, 2, 3, 4]);
        assert!(!all.has_more());

        let window = TimeWindow { start: Some(1500), end: Some(3000) };
        let mut some = StoredSegment::open(&store, &metadata, window).await.unwrap();
        let mut offsets = Vec::new();
        while let Some(batches) = some.next_batches().await.unwrap() {
            offsets.extend(batches.iter().map(|b| b.base_offset()));
        }
        assert_eq!(offsets, vec![2, 3], "only the chunks inside the window are read");
    }

    #[tokio::test]
    async fn a_corrupt_chunk_is_named_by_its_segment() {
        let store = BackupStore::open(&StorageConfig::Memory { prefix: String::new() }).unwrap();
        let metadata = stored(&store, 3).await;
        let mut bytes = store.get("seg").await.unwrap().to_vec();
        // Bytes of the first chunk's compressed records, past its frame header (a header field
        // such as the window size may not matter to a one-pass decoder).
        for byte in &mut bytes[HEADER_LEN + 12..HEADER_LEN + 20] {
            *byte ^= 0xff;
        }
        store.put("seg", Bytes::from(bytes)).await.unwrap();
        let mut chunks = StoredSegment::open(&store, &metadata, TimeWindow::default()).await.unwrap();
        let error = chunks.next_batches().await.unwrap_err();
        assert!(error.to_string().starts_with("seg: "), "{error}");
    }
}
