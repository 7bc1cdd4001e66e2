//! Turning a backed-up batch into the batch to produce: skipped when the time window or the start
//! offset excludes it, passed through byte for byte when nothing must change (only producer fields
//! and CRC are rewritten at send time), re-encoded only for window or start boundaries, holes in
//! offsets, a new codec, LogAppendTime timestamps or the optional `x-original-offset` header.

use bytes::Bytes;

use super::RestoreSettings;
use crate::error::EngineError;
use crate::records::{BatchOptions, Record, RecordBatch, RecordHeader, RecordsError, TimestampType};
use crate::segment::SegmentMetadata;
use crate::storage::BackupStore;
use crate::stored_segment::StoredSegment;
use crate::topics::TopicPartition;

/// Header carrying a record's source offset when `include_original_offset_header` is set.
pub const ORIGINAL_OFFSET_HEADER: &str = "x-original-offset";

/// The source offsets of a prepared batch's records, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceOffsets {
    /// Every offset of `first..=last`.
    Range(i64, i64),
    /// These offsets.
    List(Vec<i64>),
}

/// A batch ready to produce (before producer fields are set).
#[derive(Debug, Clone)]
pub struct PreparedBatch {
    /// The batch; record offsets are `0..count` relative to its base.
    pub batch: RecordBatch,
    /// Where its records came from.
    pub source: SourceOffsets,
    /// Records in it.
    pub records: i64,
}

/// Reads a whole stored segment and prepares its batches of the `source` partition.
pub async fn prepare_segment(
    store: &BackupStore,
    segment: &SegmentMetadata,
    settings: &RestoreSettings,
    source: &TopicPartition,
) -> Result<Vec<PreparedBatch>, EngineError> {
    let mut chunks = StoredSegment::open(store, segment, settings.window).await?;
    let mut prepared = Vec::new();
    while let Some(batches) = chunks.next_batches().await? {
        prepared.extend(prepare_batches(&batches, settings, source)?);
    }
    Ok(prepared)
}

/// Prepares the batches of one chunk of the `source` partition.
pub fn prepare_batches(
    batches: &[RecordBatch],
    settings: &RestoreSettings,
    source: &TopicPartition,
) -> Result<Vec<PreparedBatch>, EngineError> {
    let mut prepared = Vec::with_capacity(batches.len());
    let start = settings.start_offset.of(&source.topic, source.partition);
    for batch in batches {
        let ready = prepare(batch, settings, start).map_err(|error| EngineError::Records {
            partition: source.clone(),
            offset: batch.base_offset(),
            source: error,
        })?;
        prepared.extend(ready);
    }
    Ok(prepared)
}

/// Prepares `batch` for the target, or `None` when none of its records is to be restored (in the
/// window, at or after `start`).
pub fn prepare(
    batch: &RecordBatch,
    settings: &RestoreSettings,
    start: Option<i64>,
) -> Result<Option<PreparedBatch>, RecordsError> {
    let window = settings.window;
    let from_start = |offset: i64| start.is_none_or(|start| offset >= start);
    if !from_start(batch.last_offset()) {
        return Ok(None);
    }
    // The header's maxTimestamp is a true maximum: a batch ending before the window is skipped
    // without decompressing it. (Its baseTimestamp is not a minimum, so the other side needs the records.)
    if window.start.is_some_and(|start| batch.max_timestamp() < start) {
        return Ok(None);
    }
    let Some((min, max)) = batch.timestamp_range()? else { return Ok(None) };
    if window.excludes(min, max) {
        return Ok(None);
    }
    let codec = batch.compression()?;
    let unchanged = window.covers(min, max)
        && from_start(batch.base_offset())
        && batch.has_contiguous_offsets()
        && batch.timestamp_type() == TimestampType::CreateTime
        && settings.produce_compression.is_none_or(|wanted| wanted == codec)
        && !settings.include_original_offset_header;
    if unchanged {
        let source = SourceOffsets::Range(batch.base_offset(), batch.last_offset());
        return Ok(Some(PreparedBatch { batch: batch.clone(), source, records: i64::from(batch.record_count()) }));
    }
    // records() gives LogAppendTime records the batch's append time; encoding them as CreateTime
    // keeps that value on the target instead of letting its broker stamp a new one.
    let kept: Vec<Record> =
        batch.records()?.into_iter().filter(|r| window.contains(r.timestamp) && from_start(r.offset)).collect();
    if kept.is_empty() {
        return Ok(None);
    }
    let source_offsets: Vec<i64> = kept.iter().map(|r| r.offset).collect();
    let rebased: Vec<Record> = kept
        .into_iter()
        .enumerate()
        .map(|(index, mut record)| {
            if settings.include_original_offset_header {
                record.headers.push(RecordHeader {
                    key: Bytes::from_static(ORIGINAL_OFFSET_HEADER.as_bytes()),
                    value: Some(Bytes::from(record.offset.to_string())),
                });
            }
            record.offset = index as i64;
            record
        })
        .collect();
    let options =
        BatchOptions { compression: settings.produce_compression.unwrap_or(codec), ..BatchOptions::default() };
    let records = rebased.len() as i64;
    let source = match (source_offsets.first(), source_offsets.last()) {
        (Some(&first), Some(&last)) if last - first + 1 == records => SourceOffsets::Range(first, last),
        _ => SourceOffsets::List(source_offsets),
    };
    Ok(Some(PreparedBatch { batch: RecordBatch::encode(&rebased, &options)?, source, records }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::Compression;
    use crate::time_window::TimeWindow;

    fn settings(window: TimeWindow) -> RestoreSettings {
        RestoreSettings { window, ..RestoreSettings::default() }
    }

    fn batch(offsets_and_times: &[(i64, i64)], compression: Compression) -> RecordBatch {
        let records: Vec<Record> = offsets_and_times
            .iter()
            .map(|&(offset, timestamp)| Record {
                offset,
                timestamp,
                key: Some(Bytes::from(format!("k{offset}"))),
                value: None,
                headers: vec![RecordHeader { key: Bytes::from_static(b"h"), value: None }],
            })
            .collect();
        RecordBatch::encode(&records, &BatchOptions { compression, ..BatchOptions::default() }).unwrap()
    }

    #[test]
    fn a_batch_inside_the_window_passes_through_unchanged() {
        let source = batch(&[(10, 100), (11, 50), (12, 300)], Compression::Zstd);
        let prepared =
            prepare(&source, &settings(TimeWindow { start: Some(50), end: Some(300) }), None).unwrap().unwrap();
        assert_eq!(prepared.batch, source);
        assert_eq!((prepared.source, prepared.records), (SourceOffsets::Range(10, 12), 3));
    }

    #[test]
    fn batches_outside_the_window_are_skipped_and_boundaries_filtered_per_record() {
        let source = batch(&[(10, 100), (11, 50), (12, 300)], Compression::Lz4);
        assert!(prepare(&source, &settings(TimeWindow { start: Some(301), end: None }), None).unwrap().is_none());
        assert!(prepare(&source, &settings(TimeWindow { start: None, end: Some(49) }), None).unwrap().is_none());
        // Out-of-order CreateTime: offset 11 (t=50) is inside although the first record is not.
        let prepared =
            prepare(&source, &settings(TimeWindow { start: Some(40), end: Some(60) }), None).unwrap().unwrap();
        assert_eq!(prepared.source, SourceOffsets::Range(11, 11));
        let records = prepared.batch.records().unwrap();
        assert_eq!((records[0].offset, records[0].timestamp), (0, 50));
        assert_eq!(records[0].headers, vec![RecordHeader { key: Bytes::from_static(b"h"), value: None }]);
        assert_eq!(prepared.batch.compression().unwrap(), Compression::Lz4);
        let both_ends =
            prepare(&source, &settings(TimeWindow { start: Some(100), end: Some(300) }), None).unwrap().unwrap();
        assert_eq!(both_ends.source, SourceOffsets::List(vec![10, 12]));
    }

    #[test]
    fn a_start_offset_skips_the_records_before_it() {
        let source = batch(&[(10, 100), (11, 50), (12, 300)], Compression::Snappy);
        let all = settings(TimeWindow::default());
        assert!(prepare(&source, &all, Some(13)).unwrap().is_none(), "a batch ending before the start");
        assert_eq!(prepare(&source, &all, Some(10)).unwrap().unwrap().batch, source, "from its first: unchanged");
        let cut = prepare(&source, &all, Some(11)).unwrap().unwrap();
        assert_eq!((cut.source, cut.records), (SourceOffsets::Range(11, 12), 2));
        assert_eq!(cut.batch.records().unwrap()[0].timestamp, 50);
    }

    #[test]
    fn holes_codecs_and_offset_headers_are_re_encoded() {
        let holes = batch(&[(3, 1), (7, 2)], Compression::None);
        let prepared = prepare(&holes, &settings(TimeWindow::default()), None).unwrap().unwrap();
        assert_eq!(prepared.source, SourceOffsets::List(vec![3, 7]));
        assert!(prepared.batch.has_contiguous_offsets());

        let mut with_options = settings(TimeWindow::default());
        with_options.produce_compression = Some(Compression::Gzip);
        with_options.include_original_offset_header = true;
        let prepared = prepare(&batch(&[(5, 1)], Compression::None), &with_options, None).unwrap().unwrap();
        assert_eq!(prepared.batch.compression().unwrap(), Compression::Gzip);
        let headers = &prepared.batch.records().unwrap()[0].headers;
        assert_eq!(headers.last().unwrap().value.as_deref(), Some(&b"5"[..]));
        assert_eq!(headers.len(), 2, "the original header is kept, the offset header appended");
    }
}
