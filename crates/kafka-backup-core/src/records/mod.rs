//! Kafka record batch v2 (magic 2) codec: zero-copy batch parsing, record iteration, encoding.
//! Spec: Apache Kafka `DefaultRecordBatch` / `DefaultRecord`, KIP-98 (transactions, control batches).
//!
//! Why hand-written and not `kafka_protocol::records`: that codec stores headers in an `IndexMap`
//! (duplicate keys collapse, order is not the wire order), cannot represent null header values
//! distinctly from the map, and decodes every batch eagerly. A backup tool must keep every byte, so
//! this module treats a batch as an opaque, CRC-checked byte range and only decodes records on demand.
//!
//! Batch layout (big-endian, 61-byte header, then `recordCount` records):
//!
//! | offset | field | type |
//! |---|---|---|
//! | 0 | baseOffset | i64 |
//! | 8 | batchLength (bytes after this field) | i32 |
//! | 12 | partitionLeaderEpoch | i32 |
//! | 16 | magic (= 2) | i8 |
//! | 17 | crc: CRC-32C (Castagnoli) of bytes 21..end | u32 |
//! | 21 | attributes: bits 0-2 codec, 3 timestamp type, 4 transactional, 5 control | i16 |
//! | 23 | lastOffsetDelta | i32 |
//! | 27 | baseTimestamp | i64 |
//! | 35 | maxTimestamp | i64 |
//! | 43 | producerId | i64 |
//! | 51 | producerEpoch | i16 |
//! | 53 | baseSequence | i32 |
//! | 57 | recordCount | i32 |
//! | 61 | records (compressed as a whole when the codec is not none) | bytes |
//!
//! Record: `length varint, attributes i8, timestampDelta varlong, offsetDelta varint,
//! keyLength varint (-1 = null), key, valueLength varint (-1 = null), value,
//! headerCount varint, then per header: keyLength varint, key, valueLength varint (-1 = null), value`.

mod batch;
mod compression;
mod record;
mod varint;

pub use batch::{split_batches, BatchOptions, RecordBatch, SplitBatches, TimestampType, BATCH_HEADER_LEN};
pub use compression::{Compression, Compressor, MAX_DECOMPRESSED_BATCH_BYTES};
pub use record::{Record, RecordHeader};

/// What can go wrong reading or writing record batches. Each variant names the field or value at
/// fault so that a corrupt segment or fetch response can be traced to its byte range.
#[derive(Debug, thiserror::Error)]
pub enum RecordsError {
    /// The input ended inside a field.
    #[error("record data is truncated inside field `{field}`")]
    Truncated {
        /// Field being read when the input ended.
        field: &'static str,
    },
    /// A varint used more bytes than its type allows.
    #[error("varint field `{field}` is longer than its type allows")]
    VarintOverflow {
        /// Field being read.
        field: &'static str,
    },
    /// A length field is negative where that is not allowed, or larger than the bytes left.
    #[error("invalid length {length} for `{field}` (at most {available} bytes are left)")]
    InvalidLength {
        /// Field whose length is wrong.
        field: &'static str,
        /// Length read from the wire.
        length: i64,
        /// Bytes left in the enclosing structure.
        available: usize,
    },
    /// A structure is followed by bytes its length says it does not have.
    #[error("{count} unexpected bytes after the last field of a {what}")]
    TrailingBytes {
        /// Structure being read.
        what: &'static str,
        /// Number of extra bytes.
        count: usize,
    },
    /// The batch is not a v2 record batch.
    #[error("batch at offset {base_offset} has magic {magic}; only record batch v2 (Kafka >= 0.11) is supported")]
    UnsupportedMagic {
        /// Base offset of the batch.
        base_offset: i64,
        /// Magic byte read.
        magic: i8,
    },
    /// The stored CRC does not match the batch contents.
    #[error("CRC-32C mismatch in batch at offset {base_offset}: stored {stored:#010x}, computed {computed:#010x}; the data is corrupt")]
    CrcMismatch {
        /// Base offset of the batch.
        base_offset: i64,
        /// CRC in the batch header.
        stored: u32,
        /// CRC of the bytes.
        computed: u32,
    },
    /// Attributes name a codec that does not exist.
    #[error("unknown compression codec id {0} in batch attributes")]
    UnknownCompression(u8),
    /// Decompression failed.
    #[error("{codec} decompression failed: {source}")]
    Decompress {
        /// Codec name.
        codec: &'static str,
        /// Underlying error.
        source: std::io::Error,
    },
    /// Decompression would exceed the configured cap.
    #[error("{codec} data decompresses to more than {cap} bytes; refusing (corrupt or hostile batch)")]
    DecompressedTooLarge {
        /// Codec name.
        codec: &'static str,
        /// Cap in bytes.
        cap: usize,
    },
    /// Compression failed.
    #[error("{codec} compression failed: {source}")]
    Compress {
        /// Codec name.
        codec: &'static str,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The records section disagrees with the header.
    #[error("batch at offset {base_offset}: {problem}")]
    Inconsistent {
        /// Base offset of the batch.
        base_offset: i64,
        /// What disagrees.
        problem: String,
    },
    /// Records handed to the encoder cannot form one batch.
    #[error("cannot encode batch: {0}")]
    InvalidInput(String),
}

#[cfg(test)]
mod tests;
