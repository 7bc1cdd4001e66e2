//! The restore plan: which backed-up topics and partitions go where on the target, which topics
//! must be created and how, what the time window selects, and every conflict that blocks the
//! restore. Built without writing anything; `dry_run` prints it.

use std::collections::BTreeMap;

use serde::Serialize;

use super::RestoreConfig;
use crate::kafka::{AclBinding, ClientQuota, ClusterMetadata, ScramUser};
use crate::manifest::BackupManifest;

/// The topic config that makes the broker stamp records with its own time at append.
const TIMESTAMP_TYPE_CONFIG: &str = "message.timestamp.type";
/// Everything a restore will do.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RestorePlan {
    /// Backup restored.
    pub backup_id: String,
    /// Time window (epoch ms, inclusive bounds).
    pub window_start: Option<i64>,
    /// Time window end.
    pub window_end: Option<i64>,
    /// Topics restored.
    pub topics: Vec<TopicPlan>,
    /// Problems that block the restore.
    pub conflicts: Vec<String>,
    /// Things to know that do not block it.
    pub warnings: Vec<String>,
    /// ACL bindings created on the target (`restore.metadata: [acls]`), topic names mapped.
    pub acls: Vec<AclBinding>,
    /// Client quotas set on the target (`restore.metadata: [quotas]`).
    pub quotas: Vec<ClientQuota>,
    /// SCRAM users of the source, to create by hand (`restore.metadata: [users]`).
    pub scram_users: Vec<ScramUser>,
    /// Share-group start offsets of the source on restored partitions, translated after the data
    /// (`restore.metadata: [share_groups]`).
    pub share_groups: Vec<SharePosition>,
}

/// Where a share group stood on a restored partition of the source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SharePosition {
    /// Share group.
    pub group: String,
    /// Topic on the target.
    pub target_topic: String,
    /// Partition in the backup (the same on the target).
    pub partition: i32,
    /// Start offset on the source.
    pub source_offset: i64,
}

/// One topic's restore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TopicPlan {
    /// Name in the backup.
    pub source: String,
    /// Name on the target.
    pub target: String,
    /// Present when the target topic will be created.
    pub create: Option<TopicCreation>,
    /// The target's partition count when records are routed by key (`repartition`).
    pub repartition: Option<i32>,
    /// True when the existing target topic is emptied first (`purge_before_restore`).
    pub purge: bool,
    /// True when the existing LogAppendTime target topic is switched to CreateTime for the restore
    /// and back after it (`switch_to_create_time`).
    pub switch_to_create_time: bool,
    /// Partitions restored.
    pub partitions: Vec<PartitionPlan>,
}

/// How a missing target topic is created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TopicCreation {
    /// Partition count.
    pub partitions: i32,
    /// Replication factor (the original, capped at the target's broker count).
    pub replication_factor: i16,
    /// Topic configs from the backup.
    pub configs: BTreeMap<String, String>,
}

/// One partition's restore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionPlan {
    /// Partition in the backup.
    pub source: i32,
    /// Partition on the target.
    pub target: i32,
    /// First source offset restored (`restore.start_offset`); `None`: the first backed up.
    pub start_offset: Option<i64>,
    /// Segments that may hold records in the window (from the start offset).
    pub segments: usize,
    /// Records in those segments (an upper bound when the window cuts through segments).
    pub records: i64,
    /// Stored bytes of those segments.
    pub bytes: u64,
}

impl RestorePlan {
    /// Records the plan restores at most.
    pub fn records(&self) -> i64 {
        self.topics.iter().flat_map(|t| &t.partitions).map(|p| p.records).sum()
    }
}

/// Plans the restore of `manifest` into the cluster described by `target`.
pub fn build_plan(config: &RestoreConfig, manifest: &BackupManifest, target: &ClusterMetadata) -> RestorePlan {
    let settings = &config.settings;
    let mut plan = RestorePlan {
        backup_id: manifest.backup_id.clone(),
        window_start: settings.window.start,
        window_end: settings.window.end,
        ..RestorePlan::default()
    };
    let mapped = settings.topic_mapping.keys().chain(settings.partition_mapping.keys());
    for name in mapped.chain(settings.source_partitions.keys()) {
        if manifest.topic(name).is_none() {
            plan.conflicts
                .push(format!("restore mapping names topic {name}, which is not in backup {}", manifest.backup_id));
        }
    }
    let broker_count = target.brokers.len().max(1) as i16;
    let mut targets_seen: BTreeMap<String, String> = BTreeMap::new();
    for topic in &manifest.topics {
        if !config.topics.matches(&topic.name, topic.name.starts_with("__")) {
            continue;
        }
        let target_name = settings.topic_mapping.get(&topic.name).cloned().unwrap_or_else(|| topic.name.clone());
        if let Some(other) = targets_seen.insert(target_name.clone(), topic.name.clone()) {
            plan.conflicts.push(format!("topics {other} and {} would both be restored into {target_name}", topic.name));
        }
        let mapping = settings.partition_mapping.get(&topic.name);
        let only = settings.source_partitions.get(&topic.name);
        for missing in only.into_iter().flatten().filter(|p| !topic.partitions.iter().any(|q| q.partition == **p)) {
            plan.conflicts
                .push(format!("restore.source_partitions.{}: partition {missing} is not in the backup", topic.name));
        }
        let mut partitions = Vec::new();
        for partition in topic.partitions.iter().filter(|p| only.is_none_or(|only| only.contains(&p.partition))) {
            let target_partition =
                mapping.and_then(|m| m.get(&partition.partition)).copied().unwrap_or(partition.partition);
            let in_window: Vec<_> = partition
                .segments
                .iter()
                .filter(|s| settings.may_restore(&topic.name, partition.partition, s))
                .collect();
            partitions.push(PartitionPlan {
                source: partition.partition,
                target: target_partition,
                start_offset: settings.start_offset.of(&topic.name, partition.partition),
                segments: in_window.len(),
                records: in_window.iter().map(|s| s.record_count).sum(),
                bytes: in_window.iter().map(|s| s.stored_bytes).sum(),
            });
        }
        if let Some(mapping) = mapping {
            for source in mapping.keys() {
                if !topic.partitions.iter().any(|p| p.partition == *source) {
                    plan.conflicts.push(format!(
                        "restore.partition_mapping.{}: partition {source} is not in the backup",
                        topic.name
                    ));
                }
            }
        }
        let needed = partitions.iter().map(|p| p.target + 1).max().unwrap_or(0).max(topic.partition_count);
        let mut repartition = None;
        let purge = settings.purge_before_restore && target.topics.contains_key(&target_name);
        if purge {
            plan.warnings.push(format!(
                "{target_name}: every record it holds is deleted before the restore (purge_before_restore: \
                 DeleteRecords up to each partition's high watermark), unless a restore of it from this backup \
                 already started"
            ));
        }
        let create = match target.topics.get(&target_name) {
            Some(existing) => {
                let count = existing.partitions.len() as i32;
                if count != topic.partition_count && settings.repartition {
                    repartition = Some(count);
                } else if count != topic.partition_count && mapping.is_none() {
                    plan.conflicts.push(format!(
                        "target topic {target_name} has {count} partitions, the backup of {} has {}; \
                         restore into a new topic (restore.topic_mapping), map partitions (restore.partition_mapping) \
                         or route records by key (restore.repartition)",
                        topic.name, topic.partition_count
                    ));
                } else if let Some(p) = partitions.iter().find(|p| p.target >= count) {
                    plan.conflicts.push(format!("target topic {target_name} has no partition {}", p.target));
                }
                None
            }
            None if !settings.create_topics => {
                plan.conflicts
                    .push(format!("target topic {target_name} does not exist and restore.create_topics is false"));
                None
            }
            None => {
                let original = topic.replication_factor.max(1);
                if original > broker_count {
                    plan.warnings.push(format!(
                        "{target_name}: replication factor {original} capped at the target's {broker_count} brokers"
                    ));
                }
                if topic.configs.is_none() {
                    plan.warnings
                        .push(format!("{target_name}: configs were not captured by the backup; broker defaults apply"));
                }
                let mut configs = topic.configs.clone().unwrap_or_default();
                // A LogAppendTime topic would have the target broker stamp every restored record
                // with the time of the restore: created as CreateTime, the records keep their times.
                if configs.get(TIMESTAMP_TYPE_CONFIG).is_some_and(|t| t == "LogAppendTime") {
                    configs.remove(TIMESTAMP_TYPE_CONFIG);
                    plan.warnings.push(format!(
                        "{target_name}: created with {TIMESTAMP_TYPE_CONFIG}=CreateTime, not the source's LogAppendTime, \
                         so that restored records keep their original timestamps; set it to LogAppendTime after the \
                         restore if new records should get broker time (kafka-configs --alter --add-config \
                         {TIMESTAMP_TYPE_CONFIG}=LogAppendTime)"
                    ));
                }
                Some(TopicCreation { partitions: needed, replication_factor: original.min(broker_count), configs })
            }
        };
        plan.topics.push(TopicPlan {
            source: topic.name.clone(),
            target: target_name,
            create,
            repartition,
            purge,
            switch_to_create_time: false,
            partitions,
        });
    }
    if plan.topics.is_empty() {
        plan.conflicts.push(format!("no topic of backup {} matches source.topics", manifest.backup_id));
    }
    plan
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::kafka::{BrokerInfo, PartitionMetadata, TopicMetadata};
    use crate::restore::RestoreConfig;
    use crate::restore::RestoreSettings;
    use crate::segment::SegmentMetadata;

    /// A restore of every topic of backup `b` with the default settings `change` changes.
    pub(crate) fn config(change: impl FnOnce(&mut RestoreSettings)) -> RestoreConfig {
        let mut settings = RestoreSettings::default();
        change(&mut settings);
        RestoreConfig {
            location: crate::backup_location::StoreLocation::new(
                crate::storage::StorageConfig::Memory { prefix: String::new() },
                None,
            )
            .backup("b"),
            target: crate::kafka::ClientConfig::new(vec!["t:1".into()]),
            topics: crate::topics::TopicSelector::new(&["*".to_string()], &[]).unwrap(),
            settings,
            metrics: None,
        }
    }

    fn segment(start: i64, min: i64, max: i64) -> SegmentMetadata {
        SegmentMetadata {
            key: format!("s{start}"),
            start_offset: start,
            end_offset: start + 9,
            first_offset: start,
            last_offset: start + 9,
            record_count: 10,
            batch_count: 1,
            min_timestamp: min,
            max_timestamp: max,
            uncompressed_bytes: 100,
            stored_bytes: 50,
            codec: "zstd".into(),
            crc32c: "0".into(),
        }
    }

    fn manifest() -> BackupManifest {
        let mut manifest = BackupManifest::new("b", None, 0);
        for (topic, count) in [("orders", 2), ("audit", 1)] {
            for p in 0..count {
                manifest.partition_mut(topic, p);
            }
        }
        let orders = manifest.topics.iter_mut().find(|t| t.name == "orders").unwrap();
        orders.partition_count = 2;
        orders.replication_factor = 3;
        orders.configs = Some([("cleanup.policy".to_string(), "compact".to_string())].into());
        orders.partitions[0].segments = vec![segment(0, 100, 200), segment(10, 300, 400)];
        let audit = manifest.topics.iter_mut().find(|t| t.name == "audit").unwrap();
        audit.partition_count = 1;
        audit.replication_factor = 1;
        manifest
    }

    fn target(topics: &[(&str, i32)]) -> ClusterMetadata {
        let mut metadata = ClusterMetadata::default();
        metadata.brokers.insert(1, BrokerInfo { node_id: 1, host: "t".into(), port: 1, rack: None });
        for (name, partitions) in topics {
            let partitions = (0..*partitions)
                .map(|p| {
                    (
                        p,
                        PartitionMetadata {
                            partition: p,
                            leader: Some(1),
                            leader_epoch: 0,
                            replicas: vec![1],
                            isr: vec![1],
                        },
                    )
                })
                .collect();
            metadata.topics.insert(
                name.to_string(),
                TopicMetadata { name: name.to_string(), is_internal: false, topic_id: None, partitions },
            );
        }
        metadata
    }

    #[test]
    fn missing_topics_are_created_like_the_backup_with_the_replication_factor_capped() {
        let plan = build_plan(&config(|s| s.window.start = Some(250)), &manifest(), &target(&[]));
        assert!(plan.conflicts.is_empty(), "{:?}", plan.conflicts);
        let orders = plan.topics.iter().find(|t| t.source == "orders").unwrap();
        let create = orders.create.as_ref().unwrap();
        assert_eq!((create.partitions, create.replication_factor), (2, 1));
        assert_eq!(create.configs["cleanup.policy"], "compact");
        assert!(plan.warnings.iter().any(|w| w.contains("replication factor 3 capped")), "{:?}", plan.warnings);
        assert!(plan.warnings.iter().any(|w| w.contains("audit: configs were not captured")), "{:?}", plan.warnings);
        assert_eq!(
            (orders.partitions[0].segments, orders.partitions[0].records),
            (1, 10),
            "the window skips a segment"
        );
        assert_eq!(plan.window_start, Some(250));
    }

    #[test]
    fn every_conflict_is_reported_at_once() {
        let restore = config(|s| {
            s.create_topics = false;
            s.topic_mapping = [("missing", "x"), ("audit", "orders")].map(|(a, b)| (a.into(), b.into())).into();
        });
        let plan = build_plan(&restore, &manifest(), &target(&[("orders", 5)]));
        let all = plan.conflicts.join("\n");
        assert!(all.contains("names topic missing, which is not in backup b"), "{all}");
        assert!(all.contains("topics audit and orders would both be restored into orders"), "{all}");
        assert!(all.contains("target topic orders has 5 partitions"), "{all}");
    }

    #[test]
    fn mapped_partitions_must_exist_on_an_existing_target() {
        let plan = build_plan(
            &config(|s| s.partition_mapping = [("orders".to_string(), [(0, 1), (1, 7)].into())].into()),
            &manifest(),
            &target(&[("orders", 2)]),
        );
        assert!(plan.conflicts.iter().any(|c| c.contains("has no partition 7")), "{:?}", plan.conflicts);
        let plan = build_plan(&config(|s| s.create_topics = false), &manifest(), &target(&[("orders", 2)]));
        assert!(plan.conflicts.iter().any(|c| c.contains("audit does not exist")), "{:?}", plan.conflicts);
    }

    #[test]
    fn source_partitions_restore_only_those_and_name_the_missing_ones() {
        let only = |partitions: &[i32]| {
            config(|s| s.source_partitions = [("orders".to_string(), partitions.iter().copied().collect())].into())
        };
        let plan = build_plan(&only(&[1]), &manifest(), &target(&[]));
        let orders = plan.topics.iter().find(|t| t.source == "orders").unwrap();
        assert_eq!(orders.partitions.iter().map(|p| p.source).collect::<Vec<_>>(), [1]);
        assert_eq!(orders.create.as_ref().map(|c| c.partitions), Some(2), "the topic is created whole");
        assert!(plan.topics.iter().any(|t| t.source == "audit" && !t.partitions.is_empty()), "other topics whole");
        assert!(plan.conflicts.is_empty(), "{:?}", plan.conflicts);
        let plan = build_plan(&only(&[1, 9]), &manifest(), &target(&[]));
        assert_eq!(plan.conflicts, ["restore.source_partitions.orders: partition 9 is not in the backup"]);
    }
}
