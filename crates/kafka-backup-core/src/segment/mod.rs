//! Segment objects: the record batches of one partition's offset range, exactly as the broker
//! returned them, in independently compressed chunks. The format, the metadata that commits a
//! segment, building one chunk by chunk (`builder.rs`) and reading it back (`reader.rs`).
//!
//! Design constraints: a segment must restore byte for byte, be checkable without the broker,
//! never be partially visible, cost O(1) to commit, stream to an object store while it is built
//! (so nothing that depends on the whole segment may come first), and be readable a chunk at a
//! time with ranged reads (bounded memory; a point-in-time restore reads only the chunks it needs).
//!
//! Byte layout (big-endian), format version 2 (written since 0.2):
//!
//! | offset | field | type |
//! |---|---|---|
//! | 0 | magic `KBSEGMNT` | 8 bytes |
//! | 8 | format version (= 2) | u16 |
//! | 10 | codec id of the chunks (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd) | u8 |
//! | 11 | reserved, must be 0 | u8 |
//! | 12 | chunks: each a run of whole Kafka record batches (v2), compressed on its own (a complete codec frame) | bytes |
//! | I | index: one 64-byte entry per chunk, in order (below) | bytes |
//! | end - 32 | trailer: index offset `I` u64, chunk count u32, batch count u32, CRC-32C of the index u32, reserved u32 (0), magic `KBSEGEND` | 32 bytes |
//!
//! Index entry: position of the chunk in the object u64, stored length u32, uncompressed length
//! u32, first batch's base offset i64, last batch's last offset i64, smallest and largest record
//! timestamp i64 each (-1 when the chunk holds no record), record count u32, batch count u32,
//! CRC-32C of the uncompressed chunk u32, reserved u32 (0). Chunks are contiguous from byte 12 to
//! `I`; a reader checks that, every length and count, and both CRCs.
//!
//! Format version 1 (read, no longer written): magic, version 1, codec id, reserved byte, then the
//! uncompressed payload length u64, batch count u32, CRC-32C of the payload u32 (28 bytes), then
//! the whole payload compressed as one stream.
//!
//! Each batch inside keeps its own Kafka CRC-32C, so corruption is caught at four levels: the
//! CRC-32C of the whole stored object (kept in the segment's metadata), the index CRC, each chunk's
//! CRC, and every batch CRC. A reader refuses an unknown magic or a newer version by name.
//!
//! Commit and recovery: the segment object is written under a key of its own (the start offset
//! plus a random suffix, so a multipart upload never replaces another run's object), then its
//! metadata object (`segment-N.json`, create-only), which is the commit point and names the
//! object. An object without metadata is the leftover of a crash; the next run deletes it.
//! Progress is never recorded anywhere but in committed metadata, so it cannot run ahead of
//! durable data.

mod builder;
mod reader;

use serde::{Deserialize, Serialize};

pub use builder::{CompressedChunk, RawChunk, SegmentBuilder, SegmentEncoder, SegmentSummary, CHUNK_BYTES};
pub use reader::{read_chunk, read_segment, ChunkEntry, SegmentLayout, TRAILER_LEN};

use crate::records::{Compression, RecordsError};

/// First bytes of every segment object.
pub const SEGMENT_MAGIC: &[u8; 8] = b"KBSEGMNT";
/// Last bytes of a version 2 segment.
pub const TRAILER_MAGIC: &[u8; 8] = b"KBSEGEND";
/// The format version this build writes and the newest it reads.
pub const SEGMENT_FORMAT_VERSION: u16 = 2;
/// Bytes before the first chunk of a version 2 segment.
pub const HEADER_LEN: usize = 12;
/// Bytes of one index entry.
pub const INDEX_ENTRY_LEN: usize = 64;

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

/// The codec a segment header names.
fn codec_of(id: u8) -> Result<Compression, SegmentError> {
    Compression::from_id(i16::from(id)).ok_or_else(|| SegmentError::Format(format!("unknown codec id {id}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{BatchOptions, Record, RecordBatch};
    use bytes::{BufMut, Bytes};

    /// Builds a whole segment in memory from `batches` (chunks of `chunk_bytes`), covering to `end`.
    fn encode(batches: &[RecordBatch], codec: Compression, chunk_bytes: usize, end: i64) -> (Bytes, SegmentMetadata) {
        let mut builder = SegmentBuilder::new(batches.first().map_or(0, |b| b.base_offset()), chunk_bytes);
        let (mut encoder, header) = SegmentEncoder::new(codec);
        let mut object = header.to_vec();
        for batch in batches {
            if let Some(chunk) = builder.push(batch).unwrap() {
                object.extend_from_slice(&encoder.add(chunk.compress(codec, None).unwrap()));
            }
        }
        builder.advance_to(end);
        let (last, summary) = builder.finish();
        if let Some(chunk) = last {
            object.extend_from_slice(&encoder.add(chunk.compress(codec, None).unwrap()));
        }
        let (tail, metadata) = encoder.finish(summary, "k".into());
        object.extend_from_slice(&tail);
        (Bytes::from(object), metadata)
    }

    /// A segment in format version 1, as 0.1 wrote it.
    fn version_1(batches: &[RecordBatch], codec: Compression) -> Bytes {
        let payload: Vec<u8> = batches.iter().flat_map(|b| b.as_bytes().to_vec()).collect();
        let mut object = Vec::new();
        object.put_slice(SEGMENT_MAGIC);
        object.put_u16(1);
        object.put_u8(codec.id() as u8);
        object.put_u8(0);
        object.put_u64(payload.len() as u64);
        object.put_u32(batches.len() as u32);
        object.put_u32(crc32c::crc32c(&payload));
        object.extend_from_slice(&codec.compress(&payload).unwrap());
        Bytes::from(object)
    }

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
        let batches = [batch(&[10, 11], &[500, 100]), batch(&[15], &[300]), batch(&[16, 17, 18], &[1, 2, 3])];
        for codec in Compression::ALL {
            // One chunk for everything, and a chunk per batch.
            for chunk_bytes in [CHUNK_BYTES, 1] {
                let mut builder = SegmentBuilder::new(8, chunk_bytes);
                let (mut encoder, header) = SegmentEncoder::new(codec);
                let mut object = header.to_vec();
                for b in &batches {
                    if let Some(chunk) = builder.push(b).unwrap() {
                        object.extend_from_slice(&encoder.add(chunk.compress(codec, None).unwrap()));
                    }
                }
                builder.advance_to(20);
                let (last, summary) = builder.finish();
                if let Some(chunk) = last {
                    object.extend_from_slice(&encoder.add(chunk.compress(codec, None).unwrap()));
                }
                let (tail, meta) = encoder.finish(summary, "k".into());
                object.extend_from_slice(&tail);
                let object = Bytes::from(object);
                assert_eq!((meta.start_offset, meta.end_offset, meta.first_offset, meta.last_offset), (8, 19, 10, 18));
                assert_eq!((meta.record_count, meta.batch_count), (6, 3));
                assert_eq!((meta.min_timestamp, meta.max_timestamp), (1, 500), "true min with out-of-order CreateTime");
                assert_eq!(meta.stored_bytes, object.len() as u64);
                assert_eq!(meta.crc32c, format!("{:08x}", crc32c::crc32c(&object)));
                assert_eq!(read_segment(&object).unwrap(), batches.to_vec(), "{codec:?}");
            }
        }
    }

    #[test]
    fn the_layout_locates_every_chunk_with_its_offsets_and_times() {
        let batches = [batch(&[0, 1], &[50, 10]), batch(&[2], &[70]), batch(&[3, 4], &[90, 80])];
        let (object, _) = encode(&batches, Compression::Zstd, 1, 5);
        let trailer = &object[object.len() - TRAILER_LEN..];
        let index = SegmentLayout::index_range(trailer, object.len() as u64).unwrap();
        assert!(SegmentLayout::is_chunked(&object[..HEADER_LEN]).unwrap());
        let layout =
            SegmentLayout::parse(&object[..HEADER_LEN], trailer, &object[index.start as usize..index.end as usize])
                .unwrap();
        let spans: Vec<_> =
            layout.chunks.iter().map(|c| (c.first_offset, c.last_offset, c.min_timestamp, c.max_timestamp)).collect();
        assert_eq!(spans, vec![(0, 1, 10, 50), (2, 2, 70, 70), (3, 4, 80, 90)]);
        let second = layout.chunks[1];
        let range = second.range();
        let read = read_chunk(layout.codec, &second, object.slice(range.start as usize..range.end as usize)).unwrap();
        assert_eq!(read, vec![batches[1].clone()]);
    }

    #[test]
    fn version_1_segments_stay_readable() {
        let batches = [batch(&[0, 1], &[5, 6]), batch(&[2], &[7])];
        for codec in Compression::ALL {
            let object = version_1(&batches, codec);
            assert_eq!(read_segment(&object).unwrap(), batches.to_vec(), "{codec:?}");
            assert!(!SegmentLayout::is_chunked(&object).unwrap());
            let mut corrupt = object.to_vec();
            let last = corrupt.len() - 1;
            corrupt[last] ^= 1;
            assert!(read_segment(&Bytes::from(corrupt)).is_err(), "{codec:?}");
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
        let (object, metadata) = encode(&[empty, batch(&[5], &[70])], Compression::Lz4, CHUNK_BYTES, 6);
        assert_eq!((metadata.record_count, metadata.batch_count), (1, 2));
        assert_eq!((metadata.min_timestamp, metadata.max_timestamp), (70, 70));
        assert_eq!(read_segment(&object).unwrap().len(), 2);
    }

    #[test]
    fn every_flipped_byte_is_detected() {
        let batches = [batch(&[0, 1, 2], &[1, 2, 3]), batch(&[3], &[4])];
        let (object, _) = encode(&batches, Compression::None, 1, 4);
        for at in 0..object.len() {
            let mut corrupt = object.to_vec();
            corrupt[at] ^= 0x40;
            assert!(read_segment(&Bytes::from(corrupt)).is_err(), "flip at byte {at} went unnoticed");
        }
    }

    #[test]
    fn truncation_and_foreign_files_are_refused_by_name() {
        let (object, _) = encode(&[batch(&[0], &[1])], Compression::Zstd, CHUNK_BYTES, 1);
        for cut in [3, TRAILER_LEN, object.len() - HEADER_LEN] {
            assert!(read_segment(&object.slice(..object.len() - cut)).is_err(), "cut {cut}");
        }
        assert!(read_segment(&Bytes::from_static(b"{\"json\": true}")).unwrap_err().to_string().contains("KBSEGMNT"));
        let mut newer = object.to_vec();
        newer[9] = 9;
        assert!(read_segment(&Bytes::from(newer)).unwrap_err().to_string().contains("upgrade"));
    }
}
