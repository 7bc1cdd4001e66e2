//! Building a version 2 segment as a stream: the builder cuts a partition's batches into raw
//! chunks, chunks are compressed independently (in parallel, by the caller), and the encoder lays
//! out header, chunks, index and trailer in order while counting the object's length and CRC.

use std::time::Instant;

use bytes::{BufMut, Bytes};

use super::{SegmentMetadata, HEADER_LEN, INDEX_ENTRY_LEN, SEGMENT_FORMAT_VERSION, SEGMENT_MAGIC, TRAILER_MAGIC};
use crate::records::{Compression, RecordBatch, RecordsError};
use crate::segment::reader::ChunkEntry;

/// Uncompressed bytes of whole batches per chunk: large enough for good compression ratios and
/// few index entries, small enough that compressing in parallel and reading one chunk at a time
/// keep memory low.
pub const CHUNK_BYTES: usize = 4 * 1024 * 1024;

/// What a run of batches holds, for a chunk's index entry and the segment's metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Extent {
    first_offset: Option<i64>,
    last_offset: i64,
    min_timestamp: i64,
    max_timestamp: i64,
    record_count: i64,
    batch_count: u32,
    bytes: u64,
}

impl Default for Extent {
    fn default() -> Self {
        Self {
            first_offset: None,
            last_offset: -1,
            min_timestamp: i64::MAX,
            max_timestamp: i64::MIN,
            record_count: 0,
            batch_count: 0,
            bytes: 0,
        }
    }
}

impl Extent {
    fn add(&mut self, batch: &RecordBatch, timestamps: Option<(i64, i64)>) {
        if let Some((min, max)) = timestamps {
            self.min_timestamp = self.min_timestamp.min(min);
            self.max_timestamp = self.max_timestamp.max(max);
        }
        self.first_offset.get_or_insert(batch.base_offset());
        self.last_offset = batch.last_offset();
        self.record_count += i64::from(batch.record_count());
        self.batch_count += 1;
        self.bytes += batch.size() as u64;
    }

    /// Timestamps as stored: -1 when no record was seen.
    fn timestamps(&self) -> (i64, i64) {
        if self.record_count > 0 {
            (self.min_timestamp, self.max_timestamp)
        } else {
            (-1, -1)
        }
    }
}

/// Whole batches, uncompressed, waiting to become one chunk.
#[derive(Debug)]
pub struct RawChunk {
    raw: Vec<u8>,
    extent: Extent,
}

impl RawChunk {
    /// Compresses the chunk on its own (CPU work: callers run it off the async threads).
    pub fn compress(self, codec: Compression, level: Option<i32>) -> Result<CompressedChunk, RecordsError> {
        let raw_crc = crc32c::crc32c(&self.raw);
        let stored = match codec {
            Compression::None => crate::buffers::shared(self.raw),
            codec => {
                let stored = Bytes::from(codec.compress_with_level(&self.raw, level)?);
                crate::buffers::give_back(self.raw);
                stored
            }
        };
        let (min_timestamp, max_timestamp) = self.extent.timestamps();
        let entry = ChunkEntry {
            position: 0,
            stored_len: stored.len() as u32,
            raw_len: self.extent.bytes as u32,
            first_offset: self.extent.first_offset.unwrap_or(-1),
            last_offset: self.extent.last_offset,
            min_timestamp,
            max_timestamp,
            record_count: self.extent.record_count as u32,
            batch_count: self.extent.batch_count,
            raw_crc,
        };
        Ok(CompressedChunk { stored, entry })
    }
}

/// A compressed chunk and its index entry (its position is set by the encoder).
#[derive(Debug)]
pub struct CompressedChunk {
    /// The bytes to store.
    pub stored: Bytes,
    entry: ChunkEntry,
}

/// Cuts one partition's kept batches into raw chunks until the segment is rolled.
pub struct SegmentBuilder {
    start_offset: i64,
    next_offset: i64,
    chunk_bytes: usize,
    chunk: Vec<u8>,
    chunk_extent: Extent,
    total: Extent,
    opened_at: Instant,
}

/// The facts of a finished segment that do not depend on how it was stored.
#[derive(Debug, Clone, Copy)]
pub struct SegmentSummary {
    start_offset: i64,
    next_offset: i64,
    total: Extent,
}

impl SegmentSummary {
    /// The offset after the covered range: where the next segment starts.
    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }
}

impl SegmentBuilder {
    /// An empty segment covering offsets from `start_offset`, cut into chunks of `chunk_bytes`.
    pub fn new(start_offset: i64, chunk_bytes: usize) -> Self {
        Self {
            start_offset,
            next_offset: start_offset,
            chunk_bytes,
            chunk: Vec::new(),
            chunk_extent: Extent::default(),
            total: Extent::default(),
            opened_at: Instant::now(),
        }
    }

    /// Adds a batch to keep (its CRC already verified); returns a full chunk to compress. Record
    /// timestamps are scanned for the true range.
    pub fn push(&mut self, batch: &RecordBatch) -> Result<Option<RawChunk>, RecordsError> {
        let timestamps = batch.timestamp_range()?;
        if self.total.batch_count == 0 {
            self.opened_at = Instant::now();
        }
        if self.chunk.capacity() == 0 {
            // Room for the chunk and a batch beyond it, so that it is not doubled while it fills.
            self.chunk = crate::buffers::take(self.chunk_bytes + self.chunk_bytes / 4);
        }
        self.chunk.extend_from_slice(batch.as_bytes());
        self.chunk_extent.add(batch, timestamps);
        self.total.add(batch, timestamps);
        self.advance_to(batch.last_offset() + 1);
        Ok((self.chunk.len() >= self.chunk_bytes).then(|| self.take_chunk()))
    }

    fn take_chunk(&mut self) -> RawChunk {
        RawChunk { raw: std::mem::take(&mut self.chunk), extent: std::mem::take(&mut self.chunk_extent) }
    }

    /// Extends the covered range to just before `next_offset` (past dropped batches too).
    pub fn advance_to(&mut self, next_offset: i64) {
        self.next_offset = self.next_offset.max(next_offset);
    }

    /// First offset the segment covers.
    pub fn start_offset(&self) -> i64 {
        self.start_offset
    }

    /// Offset the next fetch starts from.
    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }

    /// True when no batch was kept yet.
    pub fn is_empty(&self) -> bool {
        self.total.batch_count == 0
    }

    /// Bytes of kept batches before compression.
    pub fn payload_len(&self) -> u64 {
        self.total.bytes
    }

    /// When the first kept batch arrived.
    pub fn opened_at(&self) -> Instant {
        self.opened_at
    }

    /// Ends the segment: the last, partly filled chunk (if any) and the summary for its metadata.
    pub fn finish(mut self) -> (Option<RawChunk>, SegmentSummary) {
        let last = (!self.chunk.is_empty() || self.chunk_extent.batch_count > 0).then(|| self.take_chunk());
        (last, SegmentSummary { start_offset: self.start_offset, next_offset: self.next_offset, total: self.total })
    }
}

/// Lays out a segment object in order: [`SegmentEncoder::header`], then each chunk as it is
/// added, then [`SegmentEncoder::finish`]'s index and trailer; counts its length and CRC-32C.
pub struct SegmentEncoder {
    codec: Compression,
    position: u64,
    crc: u32,
    index: Vec<ChunkEntry>,
}

impl SegmentEncoder {
    /// Starts a segment of `codec` chunks; returns the encoder and the header bytes to write first.
    pub fn new(codec: Compression) -> (Self, Bytes) {
        let mut header = Vec::with_capacity(HEADER_LEN);
        header.put_slice(SEGMENT_MAGIC);
        header.put_u16(SEGMENT_FORMAT_VERSION);
        header.put_u8(codec.id() as u8);
        header.put_u8(0);
        let header = Bytes::from(header);
        let encoder = Self { codec, position: header.len() as u64, crc: crc32c::crc32c(&header), index: Vec::new() };
        (encoder, header)
    }

    /// Records `chunk` as the next bytes of the object; returns them, to be written next.
    pub fn add(&mut self, chunk: CompressedChunk) -> Bytes {
        let mut entry = chunk.entry;
        entry.position = self.position;
        self.index.push(entry);
        self.position += chunk.stored.len() as u64;
        self.crc = crc32c::crc32c_append(self.crc, &chunk.stored);
        chunk.stored
    }

    /// The index and trailer, the last bytes of the object, and the metadata committing it.
    pub fn finish(&self, summary: SegmentSummary, key: String) -> (Bytes, SegmentMetadata) {
        let mut tail = Vec::with_capacity(self.index.len() * INDEX_ENTRY_LEN + super::TRAILER_LEN);
        for entry in &self.index {
            entry.write(&mut tail);
        }
        let index_crc = crc32c::crc32c(&tail);
        tail.put_u64(self.position);
        tail.put_u32(self.index.len() as u32);
        tail.put_u32(summary.total.batch_count);
        tail.put_u32(index_crc);
        tail.put_u32(0);
        tail.put_slice(TRAILER_MAGIC);
        let crc = crc32c::crc32c_append(self.crc, &tail);
        let total = summary.total;
        let (min_timestamp, max_timestamp) = total.timestamps();
        let metadata = SegmentMetadata {
            key,
            start_offset: summary.start_offset,
            end_offset: summary.next_offset - 1,
            first_offset: total.first_offset.unwrap_or(summary.start_offset),
            last_offset: total.last_offset,
            record_count: total.record_count,
            batch_count: total.batch_count,
            min_timestamp,
            max_timestamp,
            uncompressed_bytes: total.bytes,
            stored_bytes: self.position + tail.len() as u64,
            codec: self.codec.name().to_string(),
            crc32c: format!("{crc:08x}"),
        };
        (Bytes::from(tail), metadata)
    }
}
