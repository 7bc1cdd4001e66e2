//! Reading segments back: a whole object of either format version, or (version 2) its layout
//! from the header, trailer and index alone, then one chunk at a time, every count and checksum
//! verified on the way.

use std::ops::Range;

use bytes::{Buf, BufMut, Bytes};

use super::{
    codec_of, SegmentError, HEADER_LEN, INDEX_ENTRY_LEN, SEGMENT_FORMAT_VERSION, SEGMENT_MAGIC, TRAILER_MAGIC,
};
use crate::records::{split_batches, Compression, RecordBatch};

/// Bytes of a version 2 segment's trailer.
pub const TRAILER_LEN: usize = 32;
/// Header length of format version 1.
const V1_HEADER_LEN: usize = 28;
/// Largest uncompressed payload a reader accepts before allocating (segments are capped at 2 GiB).
const MAX_PAYLOAD_BYTES: u64 = 4 * 1024 * 1024 * 1024;

/// One chunk's index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkEntry {
    /// Where the chunk starts in the object.
    pub position: u64,
    /// Its stored (compressed) length.
    pub stored_len: u32,
    /// Its uncompressed length.
    pub raw_len: u32,
    /// Base offset of its first batch (-1 when it has none).
    pub first_offset: i64,
    /// Last offset of its last batch.
    pub last_offset: i64,
    /// Smallest record timestamp (-1 without records).
    pub min_timestamp: i64,
    /// Largest record timestamp (-1 without records).
    pub max_timestamp: i64,
    /// Records in it.
    pub record_count: u32,
    /// Batches in it.
    pub batch_count: u32,
    /// CRC-32C of the uncompressed chunk.
    pub raw_crc: u32,
}

impl ChunkEntry {
    pub(super) fn write(&self, out: &mut Vec<u8>) {
        out.put_u64(self.position);
        out.put_u32(self.stored_len);
        out.put_u32(self.raw_len);
        out.put_i64(self.first_offset);
        out.put_i64(self.last_offset);
        out.put_i64(self.min_timestamp);
        out.put_i64(self.max_timestamp);
        out.put_u32(self.record_count);
        out.put_u32(self.batch_count);
        out.put_u32(self.raw_crc);
        out.put_u32(0);
    }

    fn parse(mut bytes: &[u8]) -> Result<Self, SegmentError> {
        let entry = Self {
            position: bytes.get_u64(),
            stored_len: bytes.get_u32(),
            raw_len: bytes.get_u32(),
            first_offset: bytes.get_i64(),
            last_offset: bytes.get_i64(),
            min_timestamp: bytes.get_i64(),
            max_timestamp: bytes.get_i64(),
            record_count: bytes.get_u32(),
            batch_count: bytes.get_u32(),
            raw_crc: bytes.get_u32(),
        };
        if bytes.get_u32() != 0 {
            return Err(SegmentError::Format("reserved index field is set; written by an incompatible tool".into()));
        }
        Ok(entry)
    }

    /// The chunk's bytes in the object.
    pub fn range(&self) -> Range<u64> {
        self.position..self.position + u64::from(self.stored_len)
    }
}

/// A version 2 segment's chunks, from its index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentLayout {
    /// Codec of every chunk.
    pub codec: Compression,
    /// The chunks in order.
    pub chunks: Vec<ChunkEntry>,
}

/// Checks the fixed header; returns the format version and codec.
fn read_header(bytes: &[u8]) -> Result<(u16, Compression), SegmentError> {
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
    let codec = codec_of(header.get_u8())?;
    if header.get_u8() != 0 {
        return Err(SegmentError::Format("reserved header byte is set; written by an incompatible tool".into()));
    }
    Ok((version, codec))
}

impl SegmentLayout {
    /// Whether the object whose first bytes are `header` has a layout (format version 2); a
    /// version 1 segment is read whole with [`read_segment`].
    pub fn is_chunked(header: &[u8]) -> Result<bool, SegmentError> {
        Ok(read_header(header)?.0 >= 2)
    }

    /// Where the index of an object of `object_len` bytes is, from its last [`TRAILER_LEN`] bytes.
    pub fn index_range(trailer: &[u8], object_len: u64) -> Result<Range<u64>, SegmentError> {
        let (index_start, chunk_count, _, _) = parse_trailer(trailer)?;
        let index_end = index_start + u64::from(chunk_count) * INDEX_ENTRY_LEN as u64;
        if index_start < HEADER_LEN as u64 || index_end + TRAILER_LEN as u64 != object_len {
            return Err(SegmentError::Corrupt(format!(
                "the trailer puts {chunk_count} index entries at byte {index_start} of a {object_len}-byte object"
            )));
        }
        Ok(index_start..index_end)
    }

    /// The layout from the object's header, trailer and index bytes.
    pub fn parse(header: &[u8], trailer: &[u8], index: &[u8]) -> Result<Self, SegmentError> {
        let (_, codec) = read_header(header)?;
        let (index_start, chunk_count, batch_count, index_crc) = parse_trailer(trailer)?;
        if index.len() != chunk_count as usize * INDEX_ENTRY_LEN {
            return Err(SegmentError::Corrupt(format!("index is {} bytes for {chunk_count} chunks", index.len())));
        }
        let computed = crc32c::crc32c(index);
        if computed != index_crc {
            return Err(SegmentError::Corrupt(format!("index CRC-32C {computed:08x} != stored {index_crc:08x}")));
        }
        let chunks: Vec<ChunkEntry> = index.chunks(INDEX_ENTRY_LEN).map(ChunkEntry::parse).collect::<Result<_, _>>()?;
        let mut position = HEADER_LEN as u64;
        for chunk in &chunks {
            if chunk.position != position {
                return Err(SegmentError::Corrupt(format!(
                    "chunk at byte {} should start at {position}",
                    chunk.position
                )));
            }
            position += u64::from(chunk.stored_len);
        }
        if position != index_start {
            return Err(SegmentError::Corrupt(format!(
                "chunks end at byte {position}, the index starts at {index_start}"
            )));
        }
        let batches: u64 = chunks.iter().map(|c| u64::from(c.batch_count)).sum();
        if batches != u64::from(batch_count) {
            return Err(SegmentError::Corrupt(format!(
                "chunks hold {batches} batches, the trailer says {batch_count}"
            )));
        }
        Ok(Self { codec, chunks })
    }
}

fn parse_trailer(trailer: &[u8]) -> Result<(u64, u32, u32, u32), SegmentError> {
    if trailer.len() != TRAILER_LEN || &trailer[TRAILER_LEN - 8..] != TRAILER_MAGIC {
        return Err(SegmentError::Corrupt("missing the KBSEGEND trailer (truncated?)".into()));
    }
    let mut fields = trailer;
    let (index_start, chunk_count, batch_count, index_crc) =
        (fields.get_u64(), fields.get_u32(), fields.get_u32(), fields.get_u32());
    if fields.get_u32() != 0 {
        return Err(SegmentError::Format("reserved trailer field is set; written by an incompatible tool".into()));
    }
    Ok((index_start, chunk_count, batch_count, index_crc))
}

/// Decompresses one chunk (`stored`: its bytes, as the index locates them) and returns its
/// batches, each CRC-verified, after checking its length, CRC and counts against `entry`.
pub fn read_chunk(codec: Compression, entry: &ChunkEntry, stored: Bytes) -> Result<Vec<RecordBatch>, SegmentError> {
    if stored.len() != entry.stored_len as usize {
        return Err(SegmentError::Corrupt(format!(
            "chunk is {} bytes, the index says {}",
            stored.len(),
            entry.stored_len
        )));
    }
    // Into a pooled buffer of the size the (CRC-checked) index records, a larger output refused;
    // it goes back to the pool once the last batch sliced from it is dropped.
    let raw = match codec {
        Compression::None => stored,
        codec => {
            let mut raw = crate::buffers::take(entry.raw_len as usize);
            codec.decompress_into(&stored, &mut raw, entry.raw_len as usize)?;
            crate::buffers::shared(raw)
        }
    };
    checked_batches(raw, u64::from(entry.raw_len), entry.raw_crc, entry.batch_count)
}

/// The batches of an uncompressed run, after checking its length, CRC-32C and batch count.
fn checked_batches(
    raw: Bytes,
    expected_len: u64,
    crc: u32,
    batch_count: u32,
) -> Result<Vec<RecordBatch>, SegmentError> {
    if raw.len() as u64 != expected_len {
        return Err(SegmentError::Corrupt(format!("payload is {} bytes, expected {expected_len}", raw.len())));
    }
    let computed = crc32c::crc32c(&raw);
    if computed != crc {
        return Err(SegmentError::Corrupt(format!("payload CRC-32C {computed:08x} != stored {crc:08x}")));
    }
    let split = split_batches(raw)?;
    if split.partial_tail || split.batches.len() as u64 != u64::from(batch_count) {
        return Err(SegmentError::Corrupt(format!(
            "{} whole batches{}, expected {batch_count}",
            split.batches.len(),
            if split.partial_tail { " and a partial one" } else { "" }
        )));
    }
    for batch in &split.batches {
        batch.verify_crc()?;
    }
    Ok(split.batches)
}

/// Checks a whole stored segment of either format version and returns its batches.
pub fn read_segment(bytes: &Bytes) -> Result<Vec<RecordBatch>, SegmentError> {
    let (version, codec) = read_header(bytes)?;
    if version == 1 {
        return read_version_1(bytes, codec);
    }
    if bytes.len() < HEADER_LEN + TRAILER_LEN {
        return Err(SegmentError::Corrupt("shorter than a header and a trailer (truncated?)".into()));
    }
    let trailer = &bytes[bytes.len() - TRAILER_LEN..];
    let index = SegmentLayout::index_range(trailer, bytes.len() as u64)?;
    let layout = SegmentLayout::parse(&bytes[..HEADER_LEN], trailer, &bytes[index.start as usize..index.end as usize])?;
    let mut batches = Vec::new();
    for chunk in &layout.chunks {
        let range = chunk.range();
        batches.extend(read_chunk(codec, chunk, bytes.slice(range.start as usize..range.end as usize))?);
    }
    Ok(batches)
}

fn read_version_1(bytes: &Bytes, codec: Compression) -> Result<Vec<RecordBatch>, SegmentError> {
    if bytes.len() < V1_HEADER_LEN {
        return Err(SegmentError::Corrupt("shorter than its header (truncated?)".into()));
    }
    let mut header = &bytes[HEADER_LEN..V1_HEADER_LEN];
    let (payload_len, batch_count, payload_crc) = (header.get_u64(), header.get_u32(), header.get_u32());
    if payload_len > MAX_PAYLOAD_BYTES {
        return Err(SegmentError::Corrupt(format!("payload length {payload_len} is beyond any segment")));
    }
    let compressed = bytes.slice(V1_HEADER_LEN..);
    // Not reserved up front: a v1 payload may be gigabytes, and its length is not yet verified.
    let payload = match codec {
        Compression::None => compressed,
        codec => Bytes::from(codec.decompress(&compressed, payload_len as usize)?),
    };
    checked_batches(payload, payload_len, payload_crc, batch_count)
}
