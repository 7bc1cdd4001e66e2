//! Restore verification: the target topics of a restore compared with the backup record by record
//! (a hash of key, value, headers and timestamp), with the restore's own mapping and time window.
//!
//! Each target partition is read from where the restore began writing it (its `started.json`), or
//! from its log start when the backup holds no restore into it, and compared in order with the
//! backup's records of the source partition in the window. The two streams are walked side by
//! side; only records that do not match yet are held, so memory follows the differences, not the
//! data. A topic restored by key (`repartition`) is compared as one multiset over its partitions.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::EngineError;
use crate::kafka::KafkaClient;
use crate::layout::restore_state_dir;
use crate::log_reader::LogReader;
use crate::manifest::PartitionBackup;
use crate::records::{Record, RecordHeader};
use crate::restore::RestoreConfig;
use crate::restore::{build_plan, choose_incarnations, connect_target, load_started, ORIGINAL_OFFSET_HEADER};
use crate::segment::SegmentError;
use crate::storage::BackupStore;
use crate::stored_segment::StoredSegment;
use crate::time_window::TimeWindow;

/// What `verify` found in one target partition (or one topic restored by key).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PartitionCheck {
    /// Topic in the backup.
    pub source_topic: String,
    /// Partitions of it compared.
    pub source_partitions: Vec<i32>,
    /// Topic on the target.
    pub target_topic: String,
    /// The target partition, `None` for a topic restored by key (all its partitions together).
    pub target_partition: Option<i32>,
    /// Records the backup holds in the window.
    pub expected: u64,
    /// Records found on the target.
    pub found: u64,
    /// Expected records the target lacks.
    pub missing: u64,
    /// Records on the target the backup does not hold.
    pub extra: u64,
    /// The first position where the two differ, described.
    pub first_difference: Option<String>,
}

impl PartitionCheck {
    /// True when the target holds exactly the expected records, in order.
    pub fn is_identical(&self) -> bool {
        self.missing == 0 && self.extra == 0 && self.first_difference.is_none()
    }
}

/// The result of a verification.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Backup id.
    pub backup_id: String,
    /// Cluster id of the target.
    pub target_cluster: String,
    /// One entry per target partition (or topic restored by key).
    pub partitions: Vec<PartitionCheck>,
    /// Wall time.
    #[serde(rename = "duration_seconds", serialize_with = "crate::seconds::serialize")]
    pub duration: Duration,
}

impl VerifyReport {
    /// True when every partition is identical.
    pub fn is_identical(&self) -> bool {
        self.partitions.iter().all(PartitionCheck::is_identical)
    }

    /// Records compared on the backup's side.
    pub fn expected(&self) -> u64 {
        self.partitions.iter().map(|p| p.expected).sum()
    }
}

/// A record as the comparison sees it: 128 bits of the SHA-256 of its key, value, headers and timestamp.
type RecordHash = [u8; 16];

fn record_hash(record: &Record, extra_header: Option<&RecordHeader>) -> RecordHash {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    let mut optional = |bytes: Option<&[u8]>| match bytes {
        None => context.update(&[0]),
        Some(bytes) => {
            context.update(&[1]);
            context.update(&(bytes.len() as u64).to_be_bytes());
            context.update(bytes);
        }
    };
    optional(record.key.as_deref());
    optional(record.value.as_deref());
    for header in record.headers.iter().chain(extra_header) {
        optional(Some(&header.key));
        optional(header.value.as_deref());
    }
    context.update(&(record.headers.len() + usize::from(extra_header.is_some())).to_be_bytes());
    context.update(&record.timestamp.to_be_bytes());
    let digest = context.finish();
    digest.as_ref()[..16].try_into().expect("SHA-256 has 32 bytes")
}

/// The side-by-side walk of the expected and the found records.
#[derive(Default)]
struct Comparison {
    /// +n: expected n more times than found so far; -n: found n more times than expected.
    unmatched: HashMap<RecordHash, i64>,
    expected: u64,
    found: u64,
    first_difference: Option<String>,
    /// Compare in order (one partition) or as a multiset (a topic restored by key).
    ordered: bool,
}

impl Comparison {
    fn count(&mut self, hash: RecordHash, by: i64) {
        let entry = self.unmatched.entry(hash).or_default();
        *entry += by;
        if *entry == 0 {
            self.unmatched.remove(&hash);
        }
    }

    /// Compares the next expected record (`(hash, source offset)`) with the next found one.
    fn step(&mut self, expected: Option<(RecordHash, i64)>, found: Option<(RecordHash, i64)>) {
        let position = self.expected.max(self.found);
        if self.ordered && self.first_difference.is_none() {
            self.first_difference = match (expected, found) {
                (Some((e, _)), Some((f, _))) if e == f => None,
                (Some((_, source)), Some((_, target))) => Some(format!(
                    "record {position}: source offset {source} differs from target offset {target} \
                     (key, value, headers or timestamp)"
                )),
                (Some((_, source)), None) => {
                    Some(format!("record {position}: the target ends where source offset {source} should follow"))
                }
                (None, Some((_, target))) => {
                    Some(format!("record {position}: target offset {target} follows the last expected record"))
                }
                (None, None) => None,
            };
        }
        if let Some((hash, _)) = expected {
            self.expected += 1;
            self.count(hash, 1);
        }
        if let Some((hash, _)) = found {
            self.found += 1;
            self.count(hash, -1);
        }
    }

    fn finish(mut self, mut check: PartitionCheck) -> PartitionCheck {
        check.expected = self.expected;
        check.found = self.found;
        check.missing = self.unmatched.values().filter(|n| **n > 0).map(|n| *n as u64).sum();
        check.extra = self.unmatched.values().filter(|n| **n < 0).map(|n| n.unsigned_abs()).sum();
        if !self.ordered && (check.missing > 0 || check.extra > 0) {
            self.first_difference = Some(format!("{} records missing, {} extra", check.missing, check.extra));
        }
        check.first_difference = self.first_difference;
        check
    }
}

/// The backup's records of one source partition in the window and from the start offset, as the
/// restore writes them.
struct Expected<'a> {
    store: &'a BackupStore,
    window: TimeWindow,
    start: Option<i64>,
    with_offset_header: bool,
    segments: std::vec::IntoIter<crate::segment::SegmentMetadata>,
    open: Option<StoredSegment>,
}

impl<'a> Expected<'a> {
    fn new(store: &'a BackupStore, topic: &str, partition: &PartitionBackup, config: &RestoreConfig) -> Self {
        let settings = &config.settings;
        let segments: Vec<_> = partition
            .segments
            .iter()
            .filter(|s| settings.may_restore(topic, partition.partition, s))
            .cloned()
            .collect();
        Self {
            store,
            window: settings.window,
            start: settings.start_offset.of(topic, partition.partition),
            with_offset_header: config.settings.include_original_offset_header,
            segments: segments.into_iter(),
            open: None,
        }
    }

    /// The next records' hashes and source offsets, `None` at the end.
    async fn next(&mut self) -> Result<Option<Vec<(RecordHash, i64)>>, EngineError> {
        loop {
            if self.open.is_none() {
                let Some(segment) = self.segments.next() else { return Ok(None) };
                self.open = Some(StoredSegment::open(self.store, &segment, self.window).await?);
            }
            let segment = self.open.as_mut().expect("opened above");
            let Some(batches) = segment.next_batches().await? else {
                self.open = None;
                continue;
            };
            let mut hashes = Vec::new();
            for batch in batches.iter().filter(|b| !b.is_control()) {
                let records = batch.records().map_err(|source| EngineError::Segment {
                    key: segment.key().to_string(),
                    source: SegmentError::Batch(source),
                })?;
                let restored =
                    |r: &&Record| self.window.contains(r.timestamp) && self.start.is_none_or(|s| r.offset >= s);
                for record in records.iter().filter(restored) {
                    let header = self.with_offset_header.then(|| RecordHeader {
                        key: bytes::Bytes::from_static(ORIGINAL_OFFSET_HEADER.as_bytes()),
                        value: Some(bytes::Bytes::from(record.offset.to_string())),
                    });
                    hashes.push((record_hash(record, header.as_ref()), record.offset));
                }
            }
            if !hashes.is_empty() {
                return Ok(Some(hashes));
            }
        }
    }
}

/// A buffered stream of `(hash, offset)`.
#[derive(Default)]
struct Pending {
    buffer: std::collections::VecDeque<(RecordHash, i64)>,
    done: bool,
}

/// What a verification reads: the backup, the target cluster, the restore's settings.
struct Sides<'a> {
    store: &'a BackupStore,
    client: &'a KafkaClient,
    config: &'a RestoreConfig,
}

/// Feeds `comparison` with the records of `sources` (partitions of `source_topic`) in the backup
/// and those of the target partition `target` from offset `from` on.
async fn compare_partition(
    sides: &Sides<'_>,
    source_topic: &str,
    sources: &[&PartitionBackup],
    target: (&str, i32),
    from: Option<i64>,
    comparison: &mut Comparison,
) -> Result<(), EngineError> {
    let Sides { store, client, config } = *sides;
    let ordered = comparison.ordered;
    let mut reader = LogReader::open(client, target.0, target.1, from).await?;
    let (mut expected, mut found) = (Pending::default(), Pending::default());
    let mut sources = sources.iter();
    let mut source = sources.next().map(|p| Expected::new(store, source_topic, p, config));
    loop {
        while expected.buffer.is_empty() && !expected.done {
            match &mut source {
                None => expected.done = true,
                Some(stream) => match stream.next().await? {
                    Some(hashes) => expected.buffer.extend(hashes),
                    None => source = sources.next().map(|p| Expected::new(store, source_topic, p, config)),
                },
            }
        }
        while found.buffer.is_empty() && !found.done {
            match reader.next_records().await? {
                Some(records) => found.buffer.extend(records.iter().map(|r| (record_hash(r, None), r.offset))),
                None => found.done = true,
            }
        }
        if !ordered {
            // A multiset: drain each side as it comes.
            for e in expected.buffer.drain(..) {
                comparison.step(Some(e), None);
            }
            for f in found.buffer.drain(..) {
                comparison.step(None, Some(f));
            }
        }
        let (e, f) = (expected.buffer.pop_front(), found.buffer.pop_front());
        if e.is_none() && f.is_none() && expected.done && found.done {
            return Ok(());
        }
        if e.is_some() || f.is_some() {
            comparison.step(e, f);
        }
    }
}

/// Compares the target topics of the restore `config` describes with the backup.
pub async fn verify_restore(config: &RestoreConfig) -> Result<VerifyReport, EngineError> {
    let started = Instant::now();
    let (store, manifest) = config.location.open_existing().await?;
    let chosen = choose_incarnations(config, manifest);
    if !chosen.conflicts.is_empty() {
        return Err(EngineError::Conflicts { conflicts: chosen.conflicts });
    }
    let (config, manifest) = (&chosen.config, chosen.manifest);
    let (client, cluster_id) = connect_target(&config.target).await?;
    let metadata = client.refresh_metadata(None).await.map_err(EngineError::kafka("reading target metadata"))?;
    let plan = build_plan(config, &manifest, &metadata);
    let sides = Sides { store: &store, client: &client, config };
    let mut report = VerifyReport {
        backup_id: config.location.backup_id.clone(),
        target_cluster: cluster_id.clone(),
        ..VerifyReport::default()
    };
    for topic in &plan.topics {
        let backed_up = manifest.topic(&topic.source).expect("planned topics are in the manifest");
        let partition_of = |p: i32| backed_up.partitions.iter().find(|b| b.partition == p);
        let exists = metadata.topics.contains_key(&topic.target);
        let check = |sources: Vec<i32>, target_partition| PartitionCheck {
            source_topic: topic.source.clone(),
            source_partitions: sources,
            target_topic: topic.target.clone(),
            target_partition,
            ..PartitionCheck::default()
        };
        if let Some(count) = topic.repartition {
            let sources: Vec<&PartitionBackup> =
                topic.partitions.iter().filter_map(|p| partition_of(p.source)).collect();
            let started = load_started(&store, &restore_state_dir(&cluster_id, &topic.target, None)).await?;
            let mut comparison = Comparison::default();
            for target in 0..count {
                let from = started.as_ref().and_then(|s| s.target_start.get(&target).copied());
                // One multiset over the topic: the backup's records are fed once, with partition 0.
                let feeds = if target == 0 { &sources[..] } else { &[][..] };
                compare_partition(&sides, &topic.source, feeds, (&topic.target, target), from, &mut comparison).await?;
            }
            let sources = topic.partitions.iter().map(|p| p.source).collect();
            report.partitions.push(comparison.finish(check(sources, None)));
            continue;
        }
        for partition in &topic.partitions {
            let mut comparison = Comparison { ordered: true, ..Comparison::default() };
            let sources: Vec<&PartitionBackup> = partition_of(partition.source).into_iter().collect();
            if exists {
                let dir = restore_state_dir(&cluster_id, &topic.target, Some(partition.target));
                let from =
                    load_started(&store, &dir).await?.and_then(|s| s.target_start.get(&partition.target).copied());
                let target = (topic.target.as_str(), partition.target);
                compare_partition(&sides, &topic.source, &sources, target, from, &mut comparison).await?;
            } else {
                for source in &sources {
                    let mut expected = Expected::new(&store, &topic.source, source, config);
                    while let Some(hashes) = expected.next().await? {
                        hashes.into_iter().for_each(|e| comparison.step(Some(e), None));
                    }
                }
                comparison.first_difference = Some(format!("target topic {} does not exist", topic.target));
            }
            report.partitions.push(comparison.finish(check(vec![partition.source], Some(partition.target))));
        }
    }
    report.duration = started.elapsed();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn record(key: Option<&str>, value: Option<&str>, headers: &[(&str, Option<&str>)], timestamp: i64) -> Record {
        Record {
            offset: 0,
            timestamp,
            key: key.map(|k| Bytes::copy_from_slice(k.as_bytes())),
            value: value.map(|v| Bytes::copy_from_slice(v.as_bytes())),
            headers: headers
                .iter()
                .map(|(k, v)| RecordHeader {
                    key: Bytes::copy_from_slice(k.as_bytes()),
                    value: v.map(|v| Bytes::copy_from_slice(v.as_bytes())),
                })
                .collect(),
        }
    }

    #[test]
    fn the_hash_tells_nulls_from_empties_header_order_and_timestamps_apart() {
        let base = record(Some("k"), Some("v"), &[("a", Some("1")), ("b", None)], 5);
        let variants = [
            record(None, Some("v"), &[("a", Some("1")), ("b", None)], 5),
            record(Some(""), Some("v"), &[("a", Some("1")), ("b", None)], 5),
            record(Some("k"), None, &[("a", Some("1")), ("b", None)], 5),
            record(Some("k"), Some("v"), &[("b", None), ("a", Some("1"))], 5),
            record(Some("k"), Some("v"), &[("a", Some("1")), ("b", Some(""))], 5),
            record(Some("k"), Some("v"), &[("a", Some("1"))], 5),
            record(Some("k"), Some("v"), &[("a", Some("1")), ("b", None)], 6),
            record(Some("kv"), Some(""), &[("a", Some("1")), ("b", None)], 5),
        ];
        for variant in &variants {
            assert_ne!(record_hash(&base, None), record_hash(variant, None), "{variant:?}");
        }
        let with_header = record(Some("k"), Some("v"), &[("a", Some("1")), ("b", None), ("c", Some("7"))], 5);
        let extra = RecordHeader { key: Bytes::from_static(b"c"), value: Some(Bytes::from_static(b"7")) };
        assert_eq!(record_hash(&base, Some(&extra)), record_hash(&with_header, None));
    }

    #[test]
    fn an_ordered_comparison_counts_missing_extra_and_names_the_first_difference() {
        let hash = |n: u8| [n; 16];
        let mut same = Comparison { ordered: true, ..Comparison::default() };
        for n in 0..3 {
            same.step(Some((hash(n), n as i64)), Some((hash(n), 10 + n as i64)));
        }
        let check = same.finish(PartitionCheck::default());
        assert!(check.is_identical() && check.expected == 3 && check.found == 3);

        // One record missing in the middle: the rest is shifted by one, and still counts once.
        let mut shifted = Comparison { ordered: true, ..Comparison::default() };
        let found = [0u8, 2, 3];
        for (i, expected) in [0u8, 1, 2, 3].into_iter().enumerate() {
            let f = found.get(i).map(|n| (hash(*n), 10 + i as i64));
            shifted.step(Some((hash(expected), i as i64)), f);
        }
        let check = shifted.finish(PartitionCheck::default());
        assert_eq!((check.missing, check.extra, check.expected, check.found), (1, 0, 4, 3));
        assert!(check.first_difference.unwrap().contains("source offset 1 differs from target offset 11"));

        // Same records in another order: nothing missing or extra, but not identical.
        let mut reordered = Comparison { ordered: true, ..Comparison::default() };
        reordered.step(Some((hash(1), 0)), Some((hash(2), 10)));
        reordered.step(Some((hash(2), 1)), Some((hash(1), 11)));
        let check = reordered.finish(PartitionCheck::default());
        assert_eq!((check.missing, check.extra), (0, 0));
        assert!(!check.is_identical());
    }
}
