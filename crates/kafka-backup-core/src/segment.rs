//! Segment objects: the record batches of one partition's offset range, exactly as the broker
//! returned them, compressed as a whole. Building them (with their metadata) and reading them back.
//!
//! Design constraints: a segment must restore byte for byte, be checkable without the broker,
//! never be partially visible, and cost O(1) to commit.
//!
//! Byte layout (big-endian), format version 1:
//!
//! | offset | field | type |
//! |---|---|---|
//! | 0 | magic `KBSEGMNT` | 8 bytes |
//! | 8 | format version (= 1) | u16 |
//! | 10 | codec id of the payload (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd) | u8 |
//! | 11 | reserved, must be 0 | u8 |
//! | 12 | uncompressed payload length | u64 |
//! | 20 | batch count | u32 |
//! | 24 | CRC-32C (Castagnoli) of the uncompressed payload | u32 |
//! | 28 | payload: concatenated Kafka record batches (v2), compressed with the codec | bytes |
//!
//! Each batch inside keeps its own Kafka CRC-32C, so corruption is caught at three levels: the
//! CRC-32C of the whole stored object (kept in the segment's metadata), the payload CRC above,
//! and every batch CRC. A reader refuses an unknown magic or a newer version by name.
//!
//! Commit and recovery: the segment object is written first (atomically, create-only), then its
//! metadata object (`segment-N.json`), which is the commit point. A segment without metadata is
//! the leftover of a crash: the next run deletes and rewrites it. Progress is never recorded
//! anywhere but in committed metadata, so it cannot run ahead of durable data.

use std::time::Instant;

use bytes::{Buf, BufMut, Bytes};
use serde::{Deserialize, Serialize};

use crate::records::{split_batches, Compression, Compressor, RecordBatch, RecordsError};

/// First bytes of every segment object.
pub const SEGMENT_MAGIC: &[u8; 8] = b"KBSEGMNT";
/// The format version this build writes and the newest it reads.
pub const SEGMENT_FORMAT_VERSION: u16 = 1;
const HEADER_LEN: usize = 28;
/// Largest payload a reader accepts before allocating (segments are capped at 2 GiB by config).
const MAX_PAYLOAD_BYTES: u64 = 4 * 1024 * 1024 * 1024;

/// A segment that cannot be read back.
#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    /// Not a segment, or written by a newer tool.
    #[error("not a readable segment: {0}")]
    Format(String),
    /// A checksum or count disagrees with the content.
    #[error("segment is corrupt: {0}")]
    Corrupt(String),
    /// A batch inside failed to parse or verify.
    #[error("segment holds a bad record batch: {0}")]
    Batch(#[from] RecordsError),
}

/// What the manifest records about one segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentMetadata {
    /// Object key relative to the backup directory.
    pub key: String,
    /// First offset of the range this segment covers (where fetching started).
    pub start_offset: i64,
    /// Last offset of the covered range (inclusive); the next segment starts after it.
    pub end_offset: i64,
    /// Base offset of the first stored batch.
    pub first_offset: i64,
    /// Last offset of the last stored batch.
    pub last_offset: i64,
    /// Records in the stored batches.
    pub record_count: i64,
    /// Stored batches.
    pub batch_count: u32,
    /// Smallest record timestamp (true minimum, also with out-of-order CreateTime).
    pub min_timestamp: i64,
    /// Largest record timestamp.
    pub max_timestamp: i64,
    /// Bytes of the batches before segment compression.
    pub uncompressed_bytes: u64,
    /// Bytes of the stored object.
    pub stored_bytes: u64,
    /// Segment codec name.
    pub codec: String,
    /// CRC-32C of the stored object, 8 hex digits.
    pub crc32c: String,
}

/// File extension of a segment compressed with `codec`.
pub fn extension(codec: Compression) -> &'static str {
    match codec {
        Compression::None => "bin",
        Compression::Gzip => "gz",
        Compression::Snappy => "snappy",
        Compression::Lz4 => "lz4",
        Compression::Zstd => "zst",
    }
}

/// Accumulates one partition's batches, compressing as they arrive, until the segment is rolled.
/// Memory is the compressed segment so far, never the uncompressed batches.
pub struct SegmentBuilder {
    start_offset: i64,
    next_offset: i64,
    codec: Compression,
    compressor: Compressor,
    payload_len: u64,
    payload_crc: u32,
    batch_count: u32,
    record_count: i64,
    first_offset: Option<i64>,
    last_offset: i64,
    min_timestamp: i64,
    max_timestamp: i64,
    opened_at: Instant,
}

/// A finished segment: the object bytes and the metadata that commits it.
#[derive(Debug)]
pub struct EncodedSegment {
    /// The object to store.
    pub bytes: Bytes,
    /// Its metadata.
    pub metadata: SegmentMetadata,
}

impl SegmentBuilder {
    /// An empty segment covering offsets from `start_offset`, compressed with `codec`.
    pub fn new(start_offset: i64, codec: Compression, level: Option<i32>) -> Result<Self, RecordsError> {
        Ok(Self {
            start_offset,
            next_offset: start_offset,
            codec,
            // The header is written in front of the compressed payload once its fields are known.
            compressor: codec.compressor(level, vec![0u8; HEADER_LEN])?,
            payload_len: 0,
            payload_crc: 0,
            batch_count: 0,
            record_count: 0,
            first_offset: None,
            last_offset: -1,
            min_timestamp: i64::MAX,
            max_timestamp: i64::MIN,
            opened_at: Instant::now(),
        })
    }

    /// Adds a batch to keep (its CRC already verified). Record timestamps are scanned for the
    /// true range.
    pub fn push(&mut self, batch: &RecordBatch) -> Result<(), RecordsError> {
        if let Some((min, max)) = batch.timestamp_range()? {
            self.min_timestamp = self.min_timestamp.min(min);
            self.max_timestamp = self.max_timestamp.max(max);
        }
        if self.first_offset.is_none() {
            self.first_offset = Some(batch.base_offset());
            self.opened_at = Instant::now();
        }
        self.compressor.write(batch.as_bytes())?;
        self.payload_crc = crc32c::crc32c_append(self.payload_crc, batch.as_bytes());
        self.payload_len += batch.size() as u64;
        self.last_offset = batch.last_offset();
        self.batch_count += 1;
        self.record_count += i64::from(batch.record_count());
        self.advance_to(batch.last_offset() + 1);
        Ok(())
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
        self.batch_count == 0
    }

    /// Bytes of kept batches before compression.
    pub fn payload_len(&self) -> u64 {
        self.payload_len
    }

    /// When the first kept batch arrived.
    pub fn opened_at(&self) -> Instant {
        self.opened_at
    }

    /// Ends compression, writes the header and computes the metadata; `key` is where the
    /// segment will be stored.
    pub fn finish(self, key: String) -> Result<EncodedSegment, RecordsError> {
        let mut bytes = self.compressor.finish()?;
        let mut header = &mut bytes[..HEADER_LEN];
        header.put_slice(SEGMENT_MAGIC);
        header.put_u16(SEGMENT_FORMAT_VERSION);
        header.put_u8(self.codec.id() as u8);
        header.put_u8(0);
        header.put_u64(self.payload_len);
        header.put_u32(self.batch_count);
        header.put_u32(self.payload_crc);
        let bytes = Bytes::from(bytes);
        let has_records = self.record_count > 0;
        let metadata = SegmentMetadata {
            key,
            start_offset: self.start_offset,
            end_offset: self.next_offset - 1,
            first_offset: self.first_offset.unwrap_or(self.start_offset),
            last_offset: self.last_offset,
            record_count: self.record_count,
            batch_count: self.batch_count,
            min_timestamp: if has_records { self.min_timestamp } else { -1 },
            max_timestamp: if has_records { self.max_timestamp } else { -1 },
            uncompressed_bytes: self.payload_len,
            stored_bytes: bytes.len() as u64,
            codec: self.codec.name().to_string(),
            crc32c: format!("{:08x}", crc32c::crc32c(&bytes)),
        };
        Ok(EncodedSegment { bytes, metadata })
    }
}

/// Checks a stored segment and returns its batches (each CRC-verified).
pub fn read_segment(bytes: &Bytes) -> Result<Vec<RecordBatch>, SegmentError> {
    if bytes.len() < HEADER_LEN || &bytes[..8] != SEGMENT_MAGIC {
        return Err(SegmentError::Format("missing the KBSEGMNT header".into()));
    }
    let mut header = &bytes[8..HEADER_LEN];
    let version = header.get_u16();
    if version == 0 || version > SEGMENT_FORMAT_VERSION {
        return Err(SegmentError::Format(format!(
            "format version {version}; this kafka-backup reads up to {SEGMENT_FORMAT_VERSION} (upgrade it)"
        )));
    }
    let codec_id = i16::from(header.get_u8());
    let codec = Compression::ALL
        .into_iter()
        .find(|c| c.id() == codec_id)
        .ok_or_else(|| SegmentError::Format(format!("unknown codec id {codec_id}")))?;
    if header.get_u8() != 0 {
        return Err(SegmentError::Format("reserved header byte is set; written by an incompatible tool".into()));
    }
    let payload_len = header.get_u64();
    let batch_count = header.get_u32();
    let payload_crc = header.get_u32();
    if payload_len > MAX_PAYLOAD_BYTES {
        return Err(SegmentError::Corrupt(format!("payload length {payload_len} is beyond any segment")));
    }
    let compressed = bytes.slice(HEADER_LEN..);
    let payload = match codec {
        Compression::None => compressed,
        codec => Bytes::from(codec.decompress(&compressed, payload_len as usize)?),
    };
    if payload.len() as u64 != payload_len {
        return Err(SegmentError::Corrupt(format!("payload is {} bytes, header says {payload_len}", payload.len())));
    }
    let computed = crc32c::crc32c(&payload);
    if computed != payload_crc {
        return Err(SegmentError::Corrupt(format!("payload CRC-32C {computed:08x} != stored {payload_crc:08x}")));
    }
    let split = split_batches(payload)?;
    if split.partial_tail || split.batches.len() as u64 != u64::from(batch_count) {
        return Err(SegmentError::Corrupt(format!(
            "{} whole batches{}, header says {batch_count}",
            split.batches.len(),
            if split.partial_tail { " and a partial one" } else { "" }
        )));
    }
    for batch in &split.batches {
        batch.verify_crc()?;
    }
    Ok(split.batches)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{BatchOptions, Record};

    fn batch(offsets: &[i64], timestamps: &[i64]) -> RecordBatch {
        let records: Vec<Record> = offsets
            .iter()
            .zip(timestamps)
            .map(|(&offset, &timestamp)| Record {
                offset,
                timestamp,
                key: None,
                value: Some(Bytes::from(vec![b'x'; 300])),
                headers: vec![],
            })
            .collect();
        RecordBatch::encode(&records, &BatchOptions::default()).unwrap()
    }

    #[test]
    fn segments_round_trip_byte_for_byte_with_every_codec() {
        let batches = [batch(&[10, 11], &[500, 100]), batch(&[15], &[300])];
        for codec in Compression::ALL {
            let mut builder = SegmentBuilder::new(8, codec, None).unwrap();
            for b in &batches {
                builder.push(b).unwrap();
            }
            builder.advance_to(20);
            let segment = builder.finish("k".into()).unwrap();
            let meta = &segment.metadata;
            assert_eq!((meta.start_offset, meta.end_offset, meta.first_offset, meta.last_offset), (8, 19, 10, 15));
            assert_eq!((meta.record_count, meta.batch_count), (3, 2));
            assert_eq!((meta.min_timestamp, meta.max_timestamp), (100, 500), "true min with out-of-order CreateTime");
            assert_eq!(meta.stored_bytes, segment.bytes.len() as u64);
            assert_eq!(meta.crc32c, format!("{:08x}", crc32c::crc32c(&segment.bytes)));
            assert_eq!(read_segment(&segment.bytes).unwrap(), batches.to_vec(), "{codec:?}");
        }
    }

    #[test]
    fn an_empty_batch_left_by_compaction_is_kept_without_timestamps() {
        let full = batch(&[0, 1], &[50, 60]);
        let mut empty = full.as_bytes().to_vec();
        empty.truncate(61);
        empty[8..12].copy_from_slice(&49i32.to_be_bytes());
        empty[57..61].copy_from_slice(&0i32.to_be_bytes());
        let crc = crc32c::crc32c(&empty[21..]);
        empty[17..21].copy_from_slice(&crc.to_be_bytes());
        let empty = RecordBatch::from_bytes(Bytes::from(empty)).unwrap();
        let mut builder = SegmentBuilder::new(0, Compression::Lz4, None).unwrap();
        builder.push(&empty).unwrap();
        builder.push(&batch(&[5], &[70])).unwrap();
        let segment = builder.finish("k".into()).unwrap();
        assert_eq!((segment.metadata.record_count, segment.metadata.batch_count), (1, 2));
        assert_eq!((segment.metadata.min_timestamp, segment.metadata.max_timestamp), (70, 70));
        assert_eq!(read_segment(&segment.bytes).unwrap().len(), 2);
    }

    #[test]
    fn every_flipped_byte_is_detected() {
        let mut builder = SegmentBuilder::new(0, Compression::None, None).unwrap();
        builder.push(&batch(&[0, 1, 2], &[1, 2, 3])).unwrap();
        let segment = builder.finish("k".into()).unwrap();
        for at in 0..segment.bytes.len() {
            let mut corrupt = segment.bytes.to_vec();
            corrupt[at] ^= 0x40;
            assert!(read_segment(&Bytes::from(corrupt)).is_err(), "flip at byte {at} went unnoticed");
        }
    }

    #[test]
    fn truncation_and_foreign_files_are_refused_by_name() {
        let mut builder = SegmentBuilder::new(0, Compression::Zstd, Some(19)).unwrap();
        builder.push(&batch(&[0], &[1])).unwrap();
        let segment = builder.finish("k".into()).unwrap();
        let cut = segment.bytes.slice(..segment.bytes.len() - 3);
        assert!(read_segment(&cut).is_err());
        assert!(read_segment(&Bytes::from_static(b"{\"json\": true}")).unwrap_err().to_string().contains("KBSEGMNT"));
        let mut newer = segment.bytes.to_vec();
        newer[9] = 9;
        assert!(read_segment(&Bytes::from(newer)).unwrap_err().to_string().contains("upgrade"));
    }
}
