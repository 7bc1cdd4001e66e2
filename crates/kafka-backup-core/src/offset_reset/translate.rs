//! Target offsets found without the recorded offset map: the map rebuilt from the restored
//! records' `x-original-offset` headers, and the lookup of a committed record's timestamp.

use std::future::Future;

use crate::error::EngineError;
use crate::kafka::{KafkaClient, OffsetSpec};
use crate::log_reader::LogReader;
use crate::manifest::PartitionBackup;
use crate::offset_map::{MappedBatch, OffsetMap};
use crate::records::{Record, RecordBatch, RecordsError};
use crate::restore::ORIGINAL_OFFSET_HEADER;
use crate::segment::read_segment;
use crate::segment::SegmentError;
use crate::storage::BackupStore;

/// The source offset a restored record carries in its `x-original-offset` header.
fn original_offset(record: &Record) -> Option<Result<i64, String>> {
    let header = record.headers.iter().rev().find(|h| h.key.as_ref() == ORIGINAL_OFFSET_HEADER.as_bytes())?;
    let text = header.value.as_deref().map(String::from_utf8_lossy).unwrap_or_default();
    Some(text.parse().map_err(|_| format!("record {} has {ORIGINAL_OFFSET_HEADER}: {text:?}", record.offset)))
}

/// Builds an offset map from (source, target) pairs in target order, as runs of consecutive offsets.
#[derive(Default)]
struct MapBuilder {
    batches: Vec<MappedBatch>,
}

impl MapBuilder {
    fn push(&mut self, source: i64, target: i64) -> Result<(), String> {
        if let Some(last) = self.batches.last_mut() {
            if source <= last.source_last {
                return Err(format!(
                    "{ORIGINAL_OFFSET_HEADER} goes back from {} to {source} at target offset {target} \
                     (several restores into one partition?)",
                    last.source_last
                ));
            }
            if source == last.source_last + 1 && target == last.target_next() {
                last.source_last = source;
                last.count += 1;
                return Ok(());
            }
        }
        self.batches.push(MappedBatch::new(&[source], target));
        Ok(())
    }
}

/// Rebuilds the offset map of target `topic`-`partition` by reading every record back and taking
/// its `x-original-offset` header; records without one (written by others) are passed over. The
/// inner error says why the headers give no usable map.
pub(super) async fn read_back_offset_map(
    client: &KafkaClient,
    topic: &str,
    partition: i32,
) -> Result<Result<OffsetMap, String>, EngineError> {
    let mut reader = LogReader::open(client, topic, partition, None).await?;
    let mut builder = MapBuilder::default();
    let (mut records, mut without_header) = (0u64, 0u64);
    while let Some(batch) = reader.next_records().await? {
        for record in &batch {
            records += 1;
            match original_offset(record) {
                None => without_header += 1,
                Some(Err(reason)) => return Ok(Err(reason)),
                Some(Ok(source)) => {
                    if let Err(reason) = builder.push(source, record.offset) {
                        return Ok(Err(reason));
                    }
                }
            }
        }
    }
    if records > 0 && records == without_header {
        return Ok(Err(format!(
            "no record of {topic}-{partition} carries {ORIGINAL_OFFSET_HEADER} (restore with \
             include_original_offset_header: true, or use the exact strategy)"
        )));
    }
    Ok(Ok(OffsetMap::new(builder.batches, reader.end())))
}

/// Timestamp of the first record at or after offset `committed` in `batches`, if any.
pub fn first_record_at_or_after(batches: &[RecordBatch], committed: i64) -> Result<Option<i64>, RecordsError> {
    for batch in batches.iter().filter(|b| b.last_offset() >= committed && !b.is_control()) {
        if let Some(record) = batch.records()?.into_iter().find(|r| r.offset >= committed) {
            return Ok(Some(record.timestamp));
        }
    }
    Ok(None)
}

/// Timestamp of the record a group committed at `committed` would read next, from the backup;
/// `None` when the backup holds no record at or after it.
pub(super) async fn committed_record_timestamp(
    store: &BackupStore,
    backed_up: &PartitionBackup,
    committed: i64,
) -> Result<Option<i64>, EngineError> {
    for segment in backed_up.segments.iter().filter(|s| s.last_offset >= committed && s.record_count > 0) {
        let bytes = store.get(&segment.key).await?;
        let batches =
            read_segment(&bytes).map_err(|source| EngineError::Segment { key: segment.key.clone(), source })?;
        let found = first_record_at_or_after(&batches, committed)
            .map_err(|source| EngineError::Segment { key: segment.key.clone(), source: SegmentError::Batch(source) })?;
        if found.is_some() {
            return Ok(found);
        }
    }
    Ok(None)
}

/// The target offset for a committed record with `timestamp` (`None`: past the end of the backup):
/// the first target record at or after that time (ListOffsets by timestamp, which answers -1 when
/// there is none), else the end of the partition. `list_offsets` asks the target partition.
pub async fn offset_for_timestamp<F, Fut, E>(timestamp: Option<i64>, list_offsets: F) -> Result<i64, E>
where
    F: Fn(OffsetSpec) -> Fut,
    Fut: Future<Output = Result<i64, E>>,
{
    if let Some(timestamp) = timestamp {
        let offset = list_offsets(OffsetSpec::Timestamp(timestamp)).await?;
        if offset >= 0 {
            return Ok(offset);
        }
    }
    list_offsets(OffsetSpec::Latest).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{BatchOptions, RecordHeader};
    use bytes::Bytes;

    fn record(offset: i64, timestamp: i64, source: Option<&str>) -> Record {
        let headers = source
            .map(|s| {
                vec![RecordHeader {
                    key: Bytes::from_static(b"x-original-offset"),
                    value: Some(Bytes::copy_from_slice(s.as_bytes())),
                }]
            })
            .unwrap_or_default();
        Record { offset, timestamp, key: None, value: Some(Bytes::from_static(b"v")), headers }
    }

    #[test]
    fn runs_of_header_offsets_become_compact_batches() {
        let mut builder = MapBuilder::default();
        for (source, target) in [(0, 10), (1, 11), (2, 12), (5, 13), (6, 14), (9, 20)] {
            builder.push(source, target).unwrap();
        }
        assert_eq!(builder.batches.len(), 3);
        let map = OffsetMap::new(builder.batches, 21);
        let expected = [(0, 10), (2, 12), (3, 13), (5, 13), (7, 20), (9, 20), (10, 21)];
        for (committed, target) in expected {
            assert_eq!(map.translate(committed), target, "committed {committed}");
        }
        let mut backwards = MapBuilder::default();
        backwards.push(5, 0).unwrap();
        assert!(backwards.push(5, 1).unwrap_err().contains("several restores"));
    }

    #[test]
    fn the_header_value_is_a_decimal_offset() {
        assert_eq!(original_offset(&record(0, 0, Some("42"))), Some(Ok(42)));
        assert_eq!(original_offset(&record(0, 0, None)), None);
        assert!(original_offset(&record(3, 0, Some("x"))).unwrap().unwrap_err().contains("record 3"));
    }

    #[test]
    fn the_committed_record_is_the_first_at_or_after_the_offset() {
        // Offsets 10, 11, 14 (a gap), timestamps out of order.
        let records = [record(10, 500, None), record(11, 300, None), record(14, 900, None)];
        let batch = RecordBatch::encode(&records, &BatchOptions::default()).unwrap();
        let batches = [batch];
        assert_eq!(first_record_at_or_after(&batches, 0).unwrap(), Some(500));
        assert_eq!(first_record_at_or_after(&batches, 11).unwrap(), Some(300));
        assert_eq!(first_record_at_or_after(&batches, 12).unwrap(), Some(900));
        assert_eq!(first_record_at_or_after(&batches, 15).unwrap(), None);
    }

    /// A target log as Kafka answers ListOffsets: by timestamp, the first offset whose timestamp
    /// is at or after it (-1 if none); latest, the end.
    fn target_log(timestamps: &[i64], spec: OffsetSpec) -> Result<i64, ()> {
        Ok(match spec {
            OffsetSpec::Timestamp(t) => timestamps.iter().position(|&ts| ts >= t).map_or(-1, |p| p as i64),
            OffsetSpec::Latest => timestamps.len() as i64,
            OffsetSpec::Earliest => 0,
        })
    }

    #[tokio::test]
    async fn timestamps_are_looked_up_on_the_target_or_fall_back_to_its_end() {
        let log = [100, 200, 200, 300];
        let lookup = |spec| async move { target_log(&log, spec) };
        assert_eq!(offset_for_timestamp(Some(200), lookup).await, Ok(1));
        assert_eq!(offset_for_timestamp(Some(50), lookup).await, Ok(0));
        assert_eq!(offset_for_timestamp(Some(301), lookup).await, Ok(4), "after every record: the end");
        assert_eq!(offset_for_timestamp(None, lookup).await, Ok(4), "past the backup: the end");
    }
}
