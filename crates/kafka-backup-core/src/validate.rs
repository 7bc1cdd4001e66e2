//! Backup integrity checks. Shallow: every segment the manifest lists exists with its recorded
//! size. Deep: every segment is read and its object CRC, payload CRC, batch CRCs, record count,
//! offsets and timestamps are checked, and covered offset ranges must be continuous except where
//! a retention gap was recorded. In an encrypted backup, deep also authenticates every chunk of
//! every segment (a segment altered, cut or swapped with another does not open); without its key,
//! only object lengths and the presence of committed segments are checked.

use serde::Serialize;

use crate::backup_location::BackupLocation;
use crate::error::EngineError;
use crate::layout::{parse_partition_key, parse_partition_record, segment_object_start, PartitionRecord, TOPICS_DIR};
use crate::manifest::{BackupManifest, PartitionBackup};
use crate::segment::{read_segment, SegmentMetadata};
use crate::storage::{BackupStore, StorageError};
use crate::topics::TopicPartition;

/// One problem found, naming the object or partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// `topic-partition`.
    pub partition: String,
    /// Segment key, when the problem is in one segment.
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
}

/// The result of a validation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ValidationReport {
    /// Segments checked.
    pub segments_checked: u64,
    /// Records counted (deep only).
    pub records_checked: i64,
    /// Problems found; empty means the backup is intact.
    pub problems: Vec<Problem>,
}

impl ValidationReport {
    /// True when nothing is wrong.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// How far a validation went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Depth {
    /// An encrypted backup without its key: object lengths and committed segments only.
    Keyless,
    /// Every segment the manifest lists exists with its size.
    Shallow,
    /// Every segment read and checked.
    Deep,
}

/// Validates the backup at `location`, deep or shallow; shallow on an encrypted backup whose key
/// was not given is keyless (deep needs the key, and says so).
pub async fn validate_backup(location: &BackupLocation, deep: bool) -> Result<(ValidationReport, Depth), EngineError> {
    let store = location.open_for_reading()?;
    if !deep && store.is_locked().await? {
        return Ok((validate_sealed(&store).await?, Depth::Keyless));
    }
    let manifest = location.manifest(&store).await?;
    let depth = if deep { Depth::Deep } else { Depth::Shallow };
    Ok((validate(&store, &manifest, deep).await?, depth))
}

/// Validates `manifest`'s segments in `store` (the backup's directory).
pub async fn validate(
    store: &BackupStore,
    manifest: &BackupManifest,
    deep: bool,
) -> Result<ValidationReport, StorageError> {
    let mut report = ValidationReport::default();
    for topic in &manifest.topics {
        for partition in &topic.partitions {
            let name = format!("{}-{}", topic.name, partition.partition);
            check_continuity(&name, partition, &mut report);
            for segment in &partition.segments {
                report.segments_checked += 1;
                let problem =
                    |message: String| Problem { partition: name.clone(), key: Some(segment.key.clone()), message };
                // An encrypted segment that does not open is a problem of the backup, not a failed check.
                let size = match store.size(&segment.key).await {
                    Err(StorageError::Unreadable { reason, .. }) => Err(reason),
                    size => Ok(size?),
                };
                match size {
                    Err(reason) => report.problems.push(problem(reason)),
                    Ok(None) => report.problems.push(problem("segment object is missing".into())),
                    Ok(Some(size)) if size != segment.stored_bytes => report
                        .problems
                        .push(problem(format!("size is {size} bytes, the manifest says {}", segment.stored_bytes))),
                    Ok(Some(_)) if deep => match store.get(&segment.key).await {
                        Err(StorageError::Unreadable { reason, .. }) => report.problems.push(problem(reason)),
                        read => match check_segment_content(segment, &read?) {
                            Ok(records) => report.records_checked += records,
                            Err(message) => report.problems.push(problem(message)),
                        },
                    },
                    Ok(Some(_)) => {}
                }
            }
        }
    }
    Ok(report)
}

/// Checks an encrypted backup without its key (its manifest and commit records cannot be read):
/// every object has a length an encrypted object can have, and every commit record (named by its
/// segment's start offset) has a segment object starting there. Contents need the key: `validate`
/// with it, deep.
pub async fn validate_sealed(store: &BackupStore) -> Result<ValidationReport, StorageError> {
    let mut report = ValidationReport::default();
    let objects = store.list(TOPICS_DIR).await?;
    let partition_of = |key: &str| parse_partition_key(key).map(|(topic, partition, _)| (topic.to_string(), partition));
    let name_of = |key: &str| {
        partition_of(key)
            .map_or_else(String::new, |(topic, partition)| TopicPartition::new(topic, partition).to_string())
    };
    for object in &objects {
        if let Err(StorageError::Unreadable { reason, .. }) = store.size(&object.key).await {
            report.problems.push(Problem {
                partition: name_of(&object.key),
                key: Some(object.key.clone()),
                message: reason,
            });
        }
        let Some((_, _, PartitionRecord::Segment(start))) = parse_partition_record(&object.key) else { continue };
        report.segments_checked += 1;
        let partition = partition_of(&object.key);
        let has_segment =
            objects.iter().any(|o| segment_object_start(&o.key) == Some(start) && partition_of(&o.key) == partition);
        if !has_segment {
            report.problems.push(Problem {
                partition: name_of(&object.key),
                key: Some(object.key.clone()),
                message: "the commit record's segment object is missing".into(),
            });
        }
    }
    Ok(report)
}

/// Covered ranges must follow each other, except across a recorded gap.
fn check_continuity(name: &str, partition: &PartitionBackup, report: &mut ValidationReport) {
    let mut expected: Option<i64> = None;
    for segment in &partition.segments {
        if let Some(next) = expected {
            let bridged = partition.gaps.iter().any(|g| g.from == next && g.to == segment.start_offset);
            if segment.start_offset != next && !bridged {
                report.problems.push(Problem {
                    partition: name.to_string(),
                    key: Some(segment.key.clone()),
                    message: format!(
                        "starts at offset {}, but the previous segment ended before {next} and no gap was recorded",
                        segment.start_offset
                    ),
                });
            }
        }
        expected = Some(segment.end_offset + 1);
    }
}

/// Reads a segment and compares it with its metadata; returns its record count.
fn check_segment_content(segment: &SegmentMetadata, bytes: &bytes::Bytes) -> Result<i64, String> {
    let crc = format!("{:08x}", crc32c::crc32c(bytes));
    if crc != segment.crc32c {
        return Err(format!("object CRC-32C is {crc}, the manifest says {}", segment.crc32c));
    }
    let batches = read_segment(bytes).map_err(|e| e.to_string())?;
    let records: i64 = batches.iter().map(|b| i64::from(b.record_count())).sum();
    if records != segment.record_count || batches.len() as u64 != u64::from(segment.batch_count) {
        return Err(format!(
            "holds {records} records in {} batches, the manifest says {} in {}",
            batches.len(),
            segment.record_count,
            segment.batch_count
        ));
    }
    let mut previous_last = segment.start_offset - 1;
    for batch in &batches {
        if batch.base_offset() <= previous_last || batch.last_offset() > segment.end_offset {
            return Err(format!(
                "batch {}..={} is out of order or outside the covered range {}..={}",
                batch.base_offset(),
                batch.last_offset(),
                segment.start_offset,
                segment.end_offset
            ));
        }
        previous_last = batch.last_offset();
        let decoded = batch.records().map_err(|e| e.to_string())?;
        if let Some(r) =
            decoded.iter().find(|r| r.timestamp < segment.min_timestamp || r.timestamp > segment.max_timestamp)
        {
            return Err(format!("record {} has timestamp {} outside the recorded range", r.offset, r.timestamp));
        }
    }
    Ok(records)
}
