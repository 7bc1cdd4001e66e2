//! Record batch v2 as a zero-copy, CRC-checked byte range (layout in `records/mod.rs`), the
//! splitting of a fetch response's record set into batches, and the encoding of new batches.

use bytes::{Buf, Bytes};

use super::compression::{Compression, MAX_DECOMPRESSED_BATCH_BYTES};
use super::record::{Record, RecordBase};
use super::varint::{read_varint, read_varlong};
use super::RecordsError;

/// Size of the fixed v2 batch header.
pub const BATCH_HEADER_LEN: usize = 61;
/// `baseOffset` and `batchLength` precede the part that `batchLength` counts.
const LOG_OVERHEAD: usize = 12;
const MAGIC_AT: usize = 16;
const CRC_AT: usize = 17;
const ATTRIBUTES_AT: usize = 21;
const LAST_OFFSET_DELTA_AT: usize = 23;
const BASE_TIMESTAMP_AT: usize = 27;
const MAX_TIMESTAMP_AT: usize = 35;
const PRODUCER_ID_AT: usize = 43;
const PRODUCER_EPOCH_AT: usize = 51;
const BASE_SEQUENCE_AT: usize = 53;
const RECORD_COUNT_AT: usize = 57;
const TIMESTAMP_TYPE_BIT: i16 = 1 << 3;
const TRANSACTIONAL_BIT: i16 = 1 << 4;
const CONTROL_BIT: i16 = 1 << 5;

/// How the timestamps of a batch were assigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    /// Set by the producer (per record).
    CreateTime,
    /// Set by the broker at append (the batch's maxTimestamp, for every record).
    LogAppendTime,
}

/// One complete v2 record batch, viewed in place. Header accessors read the bytes directly.
#[derive(Clone, PartialEq, Eq)]
pub struct RecordBatch {
    bytes: Bytes,
}

impl std::fmt::Debug for RecordBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordBatch")
            .field("base_offset", &self.base_offset())
            .field("last_offset", &self.last_offset())
            .field("record_count", &self.record_count())
            .field("attributes", &self.attributes())
            .field("size", &self.bytes.len())
            .finish()
    }
}

/// The batches found in a record set, and whether a trailing partial batch was dropped.
#[derive(Debug, Default)]
pub struct SplitBatches {
    /// Complete batches in order.
    pub batches: Vec<RecordBatch>,
    /// True when the record set ended inside a batch (normal at the end of a fetch response:
    /// the caller fetches again from the offset after the last complete batch).
    pub partial_tail: bool,
}

/// Splits a fetch response's record set into complete batches without copying.
/// A trailing partial batch is dropped and reported; a malformed complete one is an error.
pub fn split_batches(mut records: Bytes) -> Result<SplitBatches, RecordsError> {
    let mut split = SplitBatches::default();
    while !records.is_empty() {
        if records.len() < LOG_OVERHEAD {
            split.partial_tail = true;
            break;
        }
        let base_offset = (&records[0..8]).get_i64();
        let batch_length = (&records[8..12]).get_i32();
        if let Some(&magic) = records.get(MAGIC_AT) {
            if magic as i8 != 2 {
                return Err(RecordsError::UnsupportedMagic { base_offset, magic: magic as i8 });
            }
        }
        if batch_length < (BATCH_HEADER_LEN - LOG_OVERHEAD) as i32 {
            return Err(RecordsError::InvalidLength {
                field: "batchLength",
                length: i64::from(batch_length),
                available: records.len() - LOG_OVERHEAD,
            });
        }
        let total = LOG_OVERHEAD + batch_length as usize;
        if total > records.len() {
            split.partial_tail = true;
            break;
        }
        split.batches.push(RecordBatch { bytes: records.split_to(total) });
    }
    Ok(split)
}

impl RecordBatch {
    /// Views `bytes` as exactly one batch, checking its length and magic (not its CRC).
    pub fn from_bytes(bytes: Bytes) -> Result<Self, RecordsError> {
        let mut split = split_batches(bytes.clone())?;
        match (split.batches.len(), split.partial_tail) {
            (1, false) => Ok(split.batches.remove(0)),
            (0, _) => Err(RecordsError::Truncated { field: "record batch" }),
            _ => Err(RecordsError::TrailingBytes {
                what: "record batch",
                count: bytes.len() - split.batches[0].bytes.len(),
            }),
        }
    }

    fn i16_at(&self, at: usize) -> i16 {
        (&self.bytes[at..at + 2]).get_i16()
    }
    fn i32_at(&self, at: usize) -> i32 {
        (&self.bytes[at..at + 4]).get_i32()
    }
    fn i64_at(&self, at: usize) -> i64 {
        (&self.bytes[at..at + 8]).get_i64()
    }

    /// The whole batch as stored on the wire.
    pub fn as_bytes(&self) -> &Bytes {
        &self.bytes
    }
    /// Size of the batch on the wire.
    pub fn size(&self) -> usize {
        self.bytes.len()
    }
    /// Offset of the first record the batch was created with.
    pub fn base_offset(&self) -> i64 {
        self.i64_at(0)
    }
    /// Leader epoch when the batch was appended.
    pub fn partition_leader_epoch(&self) -> i32 {
        self.i32_at(12)
    }
    /// Stored CRC-32C.
    pub fn crc(&self) -> u32 {
        self.i32_at(CRC_AT) as u32
    }
    /// Raw attributes.
    pub fn attributes(&self) -> i16 {
        self.i16_at(ATTRIBUTES_AT)
    }
    /// Codec of the records section.
    pub fn compression(&self) -> Result<Compression, RecordsError> {
        Compression::from_attributes(self.attributes())
    }
    /// Timestamp type (attribute bit 3).
    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes() & TIMESTAMP_TYPE_BIT != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }
    /// Whether the batch belongs to a transaction (attribute bit 4).
    pub fn is_transactional(&self) -> bool {
        self.attributes() & TRANSACTIONAL_BIT != 0
    }
    /// Whether the batch holds a control record (COMMIT/ABORT marker, attribute bit 5).
    pub fn is_control(&self) -> bool {
        self.attributes() & CONTROL_BIT != 0
    }
    /// Delta of the last offset the batch was created with (kept through compaction).
    pub fn last_offset_delta(&self) -> i32 {
        self.i32_at(LAST_OFFSET_DELTA_AT)
    }
    /// Last offset covered by the batch: advance fetching past this, never by record count.
    pub fn last_offset(&self) -> i64 {
        self.base_offset() + i64::from(self.last_offset_delta())
    }
    /// Timestamp the record deltas are relative to.
    pub fn base_timestamp(&self) -> i64 {
        self.i64_at(BASE_TIMESTAMP_AT)
    }
    /// Largest timestamp in the batch (the append time for LogAppendTime).
    pub fn max_timestamp(&self) -> i64 {
        self.i64_at(MAX_TIMESTAMP_AT)
    }
    /// Producer id, -1 when not idempotent.
    pub fn producer_id(&self) -> i64 {
        self.i64_at(PRODUCER_ID_AT)
    }
    /// Producer epoch.
    pub fn producer_epoch(&self) -> i16 {
        self.i16_at(PRODUCER_EPOCH_AT)
    }
    /// Sequence number of the first record.
    pub fn base_sequence(&self) -> i32 {
        self.i32_at(BASE_SEQUENCE_AT)
    }
    /// Number of records in the batch (0 is possible after compaction).
    pub fn record_count(&self) -> i32 {
        self.i32_at(RECORD_COUNT_AT)
    }

    /// Checks the stored CRC-32C against the bytes from attributes to the end.
    pub fn verify_crc(&self) -> Result<(), RecordsError> {
        let computed = crc32c::crc32c(&self.bytes[ATTRIBUTES_AT..]);
        if computed != self.crc() {
            return Err(RecordsError::CrcMismatch { base_offset: self.base_offset(), stored: self.crc(), computed });
        }
        Ok(())
    }

    /// The records section, decompressed if needed, and the record count (checked non-negative).
    fn records_section(&self) -> Result<(Bytes, i32), RecordsError> {
        let section = self.bytes.slice(BATCH_HEADER_LEN..);
        let data = match self.compression()? {
            Compression::None => section,
            codec => Bytes::from(codec.decompress(&section, MAX_DECOMPRESSED_BATCH_BYTES)?),
        };
        let count = self.record_count();
        if count < 0 {
            let problem = format!("negative record count {count}");
            return Err(RecordsError::Inconsistent { base_offset: self.base_offset(), problem });
        }
        Ok((data, count))
    }

    /// The smallest and largest record timestamp (`None` for an empty batch), reading only the
    /// timestamp of each record. The CRC is not checked here: callers verify it once.
    pub fn timestamp_range(&self) -> Result<Option<(i64, i64)>, RecordsError> {
        if self.record_count() == 0 {
            return Ok(None);
        }
        if self.timestamp_type() == TimestampType::LogAppendTime {
            return Ok(Some((self.max_timestamp(), self.max_timestamp())));
        }
        let (data, count) = self.records_section()?;
        let mut rest = &data[..];
        let (mut min, mut max) = (i64::MAX, i64::MIN);
        for _ in 0..count {
            let length = read_varint(&mut rest, "record length")?;
            if length < 1 || length as usize > rest.len() {
                let available = rest.len();
                return Err(RecordsError::InvalidLength {
                    field: "record length",
                    length: i64::from(length),
                    available,
                });
            }
            let (body, after) = rest.split_at(length as usize);
            let mut fields = &body[1..];
            let timestamp = self.base_timestamp().wrapping_add(read_varlong(&mut fields, "timestampDelta")?);
            min = min.min(timestamp);
            max = max.max(timestamp);
            rest = after;
        }
        Ok(Some((min, max)))
    }

    /// Verifies the CRC, decompresses and decodes every record.
    pub fn records(&self) -> Result<Vec<Record>, RecordsError> {
        self.verify_crc()?;
        let base_offset = self.base_offset();
        let (mut data, count) = self.records_section()?;
        let base = RecordBase {
            offset: base_offset,
            timestamp: self.base_timestamp(),
            log_append_time: (self.timestamp_type() == TimestampType::LogAppendTime).then(|| self.max_timestamp()),
        };
        // Every record takes at least 7 bytes, which bounds the allocation.
        let mut records = Vec::with_capacity((count as usize).min(data.len() / 7));
        for _ in 0..count {
            if data.is_empty() {
                return Err(RecordsError::Inconsistent {
                    base_offset,
                    problem: format!("header says {count} records, found {}", records.len()),
                });
            }
            records.push(Record::decode(&mut data, base)?);
        }
        if !data.is_empty() {
            return Err(RecordsError::Inconsistent {
                base_offset,
                problem: format!("{} bytes left after {count} records", data.len()),
            });
        }
        Ok(records)
    }

    /// Whether record offsets are exactly `base..=last` with no holes (compaction leaves holes).
    pub fn has_contiguous_offsets(&self) -> bool {
        i64::from(self.last_offset_delta()) + 1 == i64::from(self.record_count())
    }

    /// A copy to produce to another cluster: base offset 0 (the broker assigns offsets), leader
    /// epoch -1, this producer's id, epoch and sequence, transactional and control bits cleared,
    /// CRC recomputed. The records section is copied untouched.
    pub fn for_producer(&self, producer_id: i64, producer_epoch: i16, base_sequence: i32) -> RecordBatch {
        let mut bytes = crate::buffers::take(self.bytes.len());
        bytes.extend_from_slice(&self.bytes);
        bytes[0..8].copy_from_slice(&0i64.to_be_bytes());
        bytes[12..16].copy_from_slice(&(-1i32).to_be_bytes());
        let attributes = self.attributes() & !(TRANSACTIONAL_BIT | CONTROL_BIT);
        bytes[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
        bytes[PRODUCER_ID_AT..PRODUCER_ID_AT + 8].copy_from_slice(&producer_id.to_be_bytes());
        bytes[PRODUCER_EPOCH_AT..PRODUCER_EPOCH_AT + 2].copy_from_slice(&producer_epoch.to_be_bytes());
        bytes[BASE_SEQUENCE_AT..BASE_SEQUENCE_AT + 4].copy_from_slice(&base_sequence.to_be_bytes());
        let crc = crc32c::crc32c(&bytes[ATTRIBUTES_AT..]);
        bytes[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
        RecordBatch { bytes: crate::buffers::shared(bytes) }
    }

    /// The batch without its records below `offset`, re-encoded with the same codec, timestamp
    /// type, transactional bit, producer and leader epoch (the base sequence moves with the first
    /// record kept); the batch itself when nothing is below `offset`, `None` when nothing is left.
    /// A fetch from a log start that DeleteRecords moved into a batch returns the whole batch: the
    /// records before the log start are deleted for every consumer and must not be backed up.
    pub fn without_records_before(&self, offset: i64) -> Result<Option<RecordBatch>, RecordsError> {
        if self.base_offset() >= offset {
            return Ok(Some(self.clone()));
        }
        if self.last_offset() < offset {
            return Ok(None);
        }
        let records = self.records()?;
        let dropped = records.iter().take_while(|r| r.offset < offset).count();
        if dropped == records.len() {
            return Ok(None);
        }
        let base_sequence = match self.base_sequence() {
            -1 => -1,
            sequence => sequence.wrapping_add(i32::try_from(dropped).unwrap_or(i32::MAX)),
        };
        let options = BatchOptions {
            compression: self.compression()?,
            timestamp_type: self.timestamp_type(),
            transactional: self.is_transactional(),
            control: self.is_control(),
            producer_id: self.producer_id(),
            producer_epoch: self.producer_epoch(),
            base_sequence,
            partition_leader_epoch: self.partition_leader_epoch(),
        };
        RecordBatch::encode(&records[dropped..], &options).map(Some)
    }

    /// Encodes `records` (non-empty, offsets strictly increasing) as one batch.
    pub fn encode(records: &[Record], options: &BatchOptions) -> Result<Self, RecordsError> {
        let (first, last) = match (records.first(), records.last()) {
            (Some(first), Some(last)) => (first, last),
            _ => return Err(RecordsError::InvalidInput("a batch needs at least one record".into())),
        };
        if records.windows(2).any(|pair| pair[1].offset <= pair[0].offset) {
            return Err(RecordsError::InvalidInput("record offsets must increase strictly".into()));
        }
        let last_offset_delta = i32::try_from(last.offset - first.offset)
            .map_err(|_| RecordsError::InvalidInput("offsets of one batch must span less than 2^31".into()))?;
        let record_count = i32::try_from(records.len())
            .map_err(|_| RecordsError::InvalidInput("too many records for one batch".into()))?;
        let base = RecordBase { offset: first.offset, timestamp: first.timestamp, log_append_time: None };
        let max_timestamp = records.iter().map(|r| r.timestamp).max().unwrap_or(first.timestamp);

        let mut plain = Vec::new();
        for record in records {
            record.encode(base, &mut plain)?;
        }
        let section = options.compression.compress(&plain)?;

        let mut attributes = options.compression.id();
        if options.timestamp_type == TimestampType::LogAppendTime {
            attributes |= TIMESTAMP_TYPE_BIT;
        }
        if options.transactional {
            attributes |= TRANSACTIONAL_BIT;
        }
        if options.control {
            attributes |= CONTROL_BIT;
        }
        let total = BATCH_HEADER_LEN + section.len();
        let batch_length = i32::try_from(total - LOG_OVERHEAD)
            .map_err(|_| RecordsError::InvalidInput("batch is over 2 GiB".into()))?;
        let mut out = Vec::with_capacity(total);
        out.extend_from_slice(&first.offset.to_be_bytes());
        out.extend_from_slice(&batch_length.to_be_bytes());
        out.extend_from_slice(&options.partition_leader_epoch.to_be_bytes());
        out.push(2);
        out.extend_from_slice(&0u32.to_be_bytes());
        out.extend_from_slice(&attributes.to_be_bytes());
        out.extend_from_slice(&last_offset_delta.to_be_bytes());
        out.extend_from_slice(&first.timestamp.to_be_bytes());
        out.extend_from_slice(&max_timestamp.to_be_bytes());
        out.extend_from_slice(&options.producer_id.to_be_bytes());
        out.extend_from_slice(&options.producer_epoch.to_be_bytes());
        out.extend_from_slice(&options.base_sequence.to_be_bytes());
        out.extend_from_slice(&record_count.to_be_bytes());
        out.extend_from_slice(&section);
        let crc = crc32c::crc32c(&out[ATTRIBUTES_AT..]);
        out[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
        Ok(RecordBatch { bytes: Bytes::from(out) })
    }
}

/// Batch-level fields for [`RecordBatch::encode`]. The default is what a non-idempotent,
/// non-transactional producer writes without compression.
#[derive(Debug, Clone, Copy)]
pub struct BatchOptions {
    /// Codec of the records section.
    pub compression: Compression,
    /// Timestamp type attribute.
    pub timestamp_type: TimestampType,
    /// Transactional attribute.
    pub transactional: bool,
    /// Control attribute (COMMIT/ABORT marker batches, written by brokers).
    pub control: bool,
    /// Producer id (-1 for none).
    pub producer_id: i64,
    /// Producer epoch (-1 for none).
    pub producer_epoch: i16,
    /// First sequence number (-1 for none).
    pub base_sequence: i32,
    /// Leader epoch (-1: the broker fills it in).
    pub partition_leader_epoch: i32,
}

impl Default for BatchOptions {
    fn default() -> Self {
        Self {
            compression: Compression::None,
            timestamp_type: TimestampType::CreateTime,
            transactional: false,
            control: false,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            partition_leader_epoch: -1,
        }
    }
}
