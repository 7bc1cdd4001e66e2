//! Restoring a topic into a target with another partition count: each record goes where the Java
//! default partitioner puts its key (murmur2), null keys round-robin. Source partitions are
//! restored one after another so every target partition receives a deterministic order, which is
//! what lets a resumed run match the target's tails against the backup.

use std::collections::BTreeMap;

use tokio::sync::watch;

use super::partition::RestoreOutcome;
use super::prepare::{prepare_segment, PreparedBatch, SourceOffsets};
use super::state::{commit, load_progress, RestoreCommit, RestoreIdentity};
use super::target::TargetPartition;
use super::RestoreSettings;
use crate::error::EngineError;
use crate::partitioner::partition_for_key;
use crate::records::{BatchOptions, Record, RecordBatch};
use crate::segment::SegmentMetadata;
use crate::storage::BackupStore;
use crate::topics::TopicPartition;

/// Everything a repartitioned topic's restore needs.
pub(super) struct RepartitionRestore {
    pub store: BackupStore,
    pub settings: RestoreSettings,
    pub source_topic: String,
    /// Source partitions and their segments, in partition order.
    pub sources: Vec<(i32, Vec<SegmentMetadata>)>,
    /// Every target partition, indexed by partition number.
    pub targets: Vec<TargetPartition>,
    pub state_dir: String,
    pub stop: watch::Receiver<bool>,
}

impl RepartitionRestore {
    pub async fn run(mut self) -> Result<RestoreOutcome, EngineError> {
        let mut outcome = RestoreOutcome::default();
        let partitions = self.targets.len() as i32;
        let source_partitions = self.sources.iter().map(|(p, _)| *p).collect();
        let identity = RestoreIdentity::new(&self.settings, &self.source_topic, source_partitions, Some(partitions));
        let targets = &self.targets;
        // Routing by key is refused with workers: this run alone writes the state directory.
        let progress = load_progress(&self.store, (&self.state_dir, false), identity, || async {
            let mut ends = BTreeMap::new();
            for target in targets {
                ends.insert(target.partition, target.end_offset().await?);
            }
            Ok(ends)
        })
        .await?;
        let mut next = progress.target_next.clone();
        let mut null_keys = progress.null_keys_routed;
        let mut check_tail = progress.resumed;
        for (source_partition, segments) in &mut self.sources {
            segments.sort_by_key(|s| s.start_offset);
            for segment in segments.iter() {
                if *self.stop.borrow() {
                    outcome.interrupted = true;
                    return Ok(outcome);
                }
                if progress.commits.contains_key(&segment.key)
                    || !self.settings.may_restore(&self.source_topic, *source_partition, segment)
                {
                    continue;
                }
                let partition = TopicPartition::new(&self.source_topic, *source_partition);
                let prepared = prepare_segment(&self.store, segment, &self.settings, &partition).await?;
                let routed = route(&prepared, partitions, &mut null_keys).map_err(|source| EngineError::Records {
                    partition,
                    offset: segment.start_offset,
                    source,
                })?;
                let mut record = RestoreCommit {
                    source_partition: *source_partition,
                    source_segment: segment.key.clone(),
                    source_start: segment.start_offset,
                    batches: BTreeMap::new(),
                    target_next: BTreeMap::new(),
                    null_keys_routed: null_keys,
                };
                for (partition, batches) in routed {
                    let target = &mut self.targets[partition as usize];
                    let position = next.entry(partition).or_insert(0);
                    let mut landed = Vec::new();
                    if check_tail {
                        let continue_at;
                        (landed, continue_at) = target.match_tail(*position, &batches, false).await?;
                        outcome.already_restored += landed.iter().map(|b| b.count).sum::<i64>();
                        *position = continue_at;
                    }
                    landed.extend(target.produce(&batches[landed.len()..], position, &mut outcome.written).await?);
                    record.batches.insert(partition, landed);
                    record.target_next.insert(partition, *position);
                }
                check_tail = false;
                commit(&self.store, &self.state_dir, &record).await?;
            }
        }
        Ok(outcome)
    }
}

/// Splits prepared batches by target partition, keeping each source batch's records together
/// (and in order) within a partition and its codec.
fn route(
    prepared: &[PreparedBatch],
    partitions: i32,
    null_keys: &mut u64,
) -> Result<BTreeMap<i32, Vec<PreparedBatch>>, crate::records::RecordsError> {
    let mut routed: BTreeMap<i32, Vec<PreparedBatch>> = BTreeMap::new();
    for batch in prepared {
        let offsets = match &batch.source {
            SourceOffsets::Range(first, last) => (*first..=*last).collect(),
            SourceOffsets::List(offsets) => offsets.clone(),
        };
        let mut groups: BTreeMap<i32, (Vec<Record>, Vec<i64>)> = BTreeMap::new();
        for (record, offset) in batch.batch.records()?.into_iter().zip(offsets) {
            let partition = match &record.key {
                Some(key) => partition_for_key(key, partitions),
                None => {
                    let partition = (*null_keys % partitions as u64) as i32;
                    *null_keys += 1;
                    partition
                }
            };
            let group = groups.entry(partition).or_default();
            group.0.push(record);
            group.1.push(offset);
        }
        let options = BatchOptions { compression: batch.batch.compression()?, ..BatchOptions::default() };
        for (partition, (records, offsets)) in groups {
            let rebased: Vec<Record> = records
                .into_iter()
                .enumerate()
                .map(|(index, record)| Record { offset: index as i64, ..record })
                .collect();
            let count = rebased.len() as i64;
            let source = match (offsets.first(), offsets.last()) {
                (Some(&first), Some(&last)) if last - first + 1 == count => SourceOffsets::Range(first, last),
                _ => SourceOffsets::List(offsets),
            };
            let encoded = RecordBatch::encode(&rebased, &options)?;
            routed.entry(partition).or_default().push(PreparedBatch { batch: encoded, source, records: count });
        }
    }
    Ok(routed)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    #[test]
    fn keys_follow_murmur2_and_null_keys_take_turns() {
        let records: Vec<Record> = [Some("foobar"), None, Some("21"), None, None, Some("foobar")]
            .iter()
            .enumerate()
            .map(|(i, key)| Record {
                offset: 100 + i as i64,
                timestamp: 5,
                key: key.map(|k| Bytes::from(k.to_string())),
                value: Some(Bytes::from(format!("v{i}"))),
                headers: vec![],
            })
            .collect();
        let rebased: Vec<Record> =
            records.iter().enumerate().map(|(i, r)| Record { offset: i as i64, ..r.clone() }).collect();
        let batch = RecordBatch::encode(&rebased, &BatchOptions::default()).unwrap();
        let prepared = vec![PreparedBatch { batch, source: SourceOffsets::Range(100, 105), records: 6 }];
        let mut null_keys = 1;
        let routed = route(&prepared, 3, &mut null_keys).unwrap();
        assert_eq!(null_keys, 4);
        let placed: BTreeMap<i32, Vec<i64>> = routed
            .iter()
            .map(|(p, batches)| {
                let offsets = batches
                    .iter()
                    .flat_map(|b| match &b.source {
                        SourceOffsets::Range(f, l) => (*f..=*l).collect::<Vec<_>>(),
                        SourceOffsets::List(o) => o.clone(),
                    })
                    .collect();
                (*p, offsets)
            })
            .collect();
        let foobar = partition_for_key(b"foobar", 3);
        assert!(placed[&foobar].contains(&100) && placed[&foobar].contains(&105));
        assert!(placed[&partition_for_key(b"21", 3)].contains(&102));
        // Null keys at 101, 103, 104 go to partitions 1, 2, 0 (the counter started at 1).
        assert!(placed[&1].contains(&101) && placed[&2].contains(&103) && placed[&0].contains(&104));
        for batches in routed.values() {
            for batch in batches {
                assert!(batch.batch.has_contiguous_offsets());
            }
        }
    }
}
