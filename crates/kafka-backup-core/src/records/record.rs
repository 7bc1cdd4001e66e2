//! One record of a v2 batch, with absolute offset and timestamp, and its wire encoding.
//! Headers are an ordered list: duplicate keys and null values survive byte for byte.

use bytes::{Buf, Bytes};

use super::varint::{read_varint, read_varlong, varint_len, varlong_len, write_varint, write_varlong};
use super::RecordsError;

/// A record with its batch context applied (absolute offset and timestamp).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Offset in the partition (`baseOffset + offsetDelta`).
    pub offset: i64,
    /// Milliseconds since the epoch; for LogAppendTime batches the batch's maxTimestamp.
    pub timestamp: i64,
    /// Key; `None` is a null key, distinct from an empty one.
    pub key: Option<Bytes>,
    /// Value; `None` is a null value (a tombstone), distinct from an empty one.
    pub value: Option<Bytes>,
    /// Headers in wire order, duplicates kept.
    pub headers: Vec<RecordHeader>,
}

/// One record header. Keys are kept as bytes (Kafka says UTF-8, but a backup must not judge).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordHeader {
    /// Header key.
    pub key: Bytes,
    /// Header value; `None` is a null value.
    pub value: Option<Bytes>,
}

/// Deltas relative to the batch that a record is decoded against or encoded into.
#[derive(Debug, Clone, Copy)]
pub(super) struct RecordBase {
    pub offset: i64,
    pub timestamp: i64,
    /// LogAppendTime batches override every record's timestamp with this value.
    pub log_append_time: Option<i64>,
}

/// Splits `len` bytes off the front of `data` (a `Bytes` view, so no copy).
fn take(data: &mut Bytes, len: i64, field: &'static str) -> Result<Bytes, RecordsError> {
    if len < 0 || len as u64 > data.len() as u64 {
        return Err(RecordsError::InvalidLength { field, length: len, available: data.len() });
    }
    Ok(data.split_to(len as usize))
}

fn take_nullable(data: &mut Bytes, field: &'static str) -> Result<Option<Bytes>, RecordsError> {
    let len = read_varint_bytes(data, field)?;
    if len == -1 {
        return Ok(None);
    }
    take(data, i64::from(len), field).map(Some)
}

/// Reads one varint-encoded field with `read` from the front of `data`, advancing it.
fn read_field<T>(
    data: &mut Bytes,
    field: &'static str,
    read: fn(&mut &[u8], &'static str) -> Result<T, RecordsError>,
) -> Result<T, RecordsError> {
    let mut slice = &data[..];
    let value = read(&mut slice, field)?;
    data.advance(data.len() - slice.len());
    Ok(value)
}

fn read_varint_bytes(data: &mut Bytes, field: &'static str) -> Result<i32, RecordsError> {
    read_field(data, field, read_varint)
}

impl Record {
    /// Decodes one length-prefixed record from the front of `data`, advancing it.
    pub(super) fn decode(data: &mut Bytes, base: RecordBase) -> Result<Self, RecordsError> {
        let length = read_varint_bytes(data, "record length")?;
        let mut body = take(data, i64::from(length), "record length")?;
        if body.is_empty() {
            return Err(RecordsError::Truncated { field: "record attributes" });
        }
        let _attributes = body.split_to(1);
        let timestamp_delta = read_field(&mut body, "timestampDelta", read_varlong)?;
        let offset_delta = read_varint_bytes(&mut body, "offsetDelta")?;
        let key = take_nullable(&mut body, "key")?;
        let value = take_nullable(&mut body, "value")?;
        let header_count = read_varint_bytes(&mut body, "header count")?;
        if header_count < 0 {
            return Err(RecordsError::InvalidLength {
                field: "header count",
                length: i64::from(header_count),
                available: body.len(),
            });
        }
        // Each header takes at least two bytes, so the remaining length bounds the allocation.
        let mut headers = Vec::with_capacity((header_count as usize).min(body.len() / 2));
        for _ in 0..header_count {
            let key_len = read_varint_bytes(&mut body, "header key length")?;
            let key = take(&mut body, i64::from(key_len), "header key")?;
            let value = take_nullable(&mut body, "header value")?;
            headers.push(RecordHeader { key, value });
        }
        if !body.is_empty() {
            return Err(RecordsError::TrailingBytes { what: "record", count: body.len() });
        }
        Ok(Record {
            offset: base.offset.wrapping_add(i64::from(offset_delta)),
            timestamp: base.log_append_time.unwrap_or_else(|| base.timestamp.wrapping_add(timestamp_delta)),
            key,
            value,
            headers,
        })
    }

    fn body_len(&self, timestamp_delta: i64, offset_delta: i32) -> usize {
        let nullable_len = |field: &Option<Bytes>| match field {
            None => varint_len(-1),
            Some(bytes) => varint_len(bytes.len() as i32) + bytes.len(),
        };
        1 + varlong_len(timestamp_delta)
            + varint_len(offset_delta)
            + nullable_len(&self.key)
            + nullable_len(&self.value)
            + varint_len(self.headers.len() as i32)
            + self
                .headers
                .iter()
                .map(|h| varint_len(h.key.len() as i32) + h.key.len() + nullable_len(&h.value))
                .sum::<usize>()
    }

    /// Appends the length-prefixed wire form of this record relative to `base`.
    pub(super) fn encode(&self, base: RecordBase, out: &mut Vec<u8>) -> Result<(), RecordsError> {
        let offset_delta = i32::try_from(self.offset - base.offset).map_err(|_| {
            RecordsError::InvalidInput(format!("offset {} is too far from base offset {}", self.offset, base.offset))
        })?;
        let timestamp_delta = self.timestamp.wrapping_sub(base.timestamp);
        let body_len = self.body_len(timestamp_delta, offset_delta);
        let body_len = i32::try_from(body_len)
            .map_err(|_| RecordsError::InvalidInput(format!("record at offset {} is over 2 GiB", self.offset)))?;
        let write_nullable = |out: &mut Vec<u8>, field: &Option<Bytes>| match field {
            None => write_varint(out, -1),
            Some(bytes) => {
                write_varint(out, bytes.len() as i32);
                out.extend_from_slice(bytes);
            }
        };
        write_varint(out, body_len);
        out.push(0);
        write_varlong(out, timestamp_delta);
        write_varint(out, offset_delta);
        write_nullable(out, &self.key);
        write_nullable(out, &self.value);
        write_varint(out, self.headers.len() as i32);
        for header in &self.headers {
            write_varint(out, header.key.len() as i32);
            out.extend_from_slice(&header.key);
            write_nullable(out, &header.value);
        }
        Ok(())
    }
}
