//! Every key of a backup directory (`{prefix}/{backup_id}/...`), built and parsed here only, so the
//! module writing an object and the one reading it cannot drift apart. Pure functions, no I/O:
//!
//! ```text
//! manifest.json                                   consolidated view, rewritten at the start and end of a run
//! state/progress.json                             per-partition progress, rewritten every checkpoint interval
//! state/workers/{worker}.json                     the same for each worker of a group sharing the backup
//! encryption.json                                 the wrapped data key of an encrypted backup
//! deleting.json                                   a prune is deleting this backup
//! groups/snapshot-{taken_at_ms}.json              consumer-group offsets (see `group_snapshots`)
//! topics/{topic}/incarnation.json                 a re-created topic's new incarnation (see `incarnations`)
//! topics/{topic}/partition={p}/segment-{start}-{suffix}.{ext}  segment object (see `segment`)
//! topics/{topic}/partition={p}/segment-{start}.json    its metadata: the commit record
//! topics/{topic}/partition={p}/gap-{from}.json         an offset range lost to retention
//! topics/{topic}/partition={p}/pruned-{before}.json    offsets below `before` were pruned (see `prune`)
//! restores/{cluster}/{topic}/partition={p}/started.json           a restore began (see `restore`)
//! restores/{cluster}/{topic}/partition={p}/p{src}-segment-{start}.json  a restored segment, offset map
//! restores/{cluster}/{topic}/repartitioned/...     the same for a topic restored by key
//! restores/{cluster}/{topic}/timestamp-type-switched.json  the topic is CreateTime for a restore
//! offset-resets/{cluster}/{reset_id}.json          group offsets before a reset (see `offset_reset`)
//! offset-resets/{cluster}/{reset_id}.rolled-back.json  the reset was rolled back
//! ```
//!
//! Offsets and times in names are zero-padded to 20 digits so keys sort by them. `{topic}` is the
//! topic's name in the backup: its Kafka name, or `{name}@{n}` for its n-th incarnation from the
//! second on (Kafka names cannot hold `@`).

use crate::records::Compression;
use crate::segment::extension;

/// The consolidated manifest.
pub const MANIFEST_KEY: &str = "manifest.json";
/// The progress object of running backups.
pub const PROGRESS_KEY: &str = "state/progress.json";
/// Folder of the progress objects of a group's workers.
pub const WORKERS_DIR: &str = "state/workers";
/// Folder of the state objects of the workers sharing a restore of the backup.
pub const RESTORE_WORKERS_DIR: &str = "state/restore-workers";
/// The wrapped data key of an encrypted backup.
pub const DATA_KEY_OBJECT: &str = "encryption.json";
/// The marker of a prune deleting the backup.
pub const DELETING_KEY: &str = "deleting.json";
/// Folder of the backed-up partitions.
pub const TOPICS_DIR: &str = "topics";
/// Folder of the consumer-group snapshots.
pub const SNAPSHOTS_DIR: &str = "groups";
/// Folder of the restore state directories.
pub const RESTORES_DIR: &str = "restores";
/// Folder of the access snapshots (ACLs, quotas, SCRAM users).
pub const ACCESS_DIR: &str = "access";
/// Folder of the offset-reset records.
pub const RESETS_DIR: &str = "offset-resets";
const STARTED: &str = "started.json";
const INCARNATION: &str = "incarnation.json";
const ROLLED_BACK: &str = ".rolled-back.json";

/// The state object of the worker named `worker` restoring into `target_cluster_id` (see
/// `restore::workers`).
pub fn restore_worker_key(target_cluster_id: &str, worker: &str) -> String {
    format!("{RESTORE_WORKERS_DIR}/{target_cluster_id}/{worker}.json")
}

/// The progress object of the worker named `worker` (see `worker_group`).
pub fn worker_progress_key(worker: &str) -> String {
    format!("{WORKERS_DIR}/{worker}.json")
}

/// The folder holding `topic`-`partition`'s segments and commit records.
pub fn partition_folder(topic: &str, partition: i32) -> String {
    format!("{TOPICS_DIR}/{topic}/partition={partition}")
}

/// A fresh key for the segment object starting at `start` of `topic`-`partition`: the start
/// offset and a random suffix, so that an upload never lands on another run's object (the commit
/// record names the object that counts).
pub fn segment_key(topic: &str, partition: i32, start: i64, codec: Compression) -> String {
    let suffix = fastrand::u32(..);
    format!("{}/segment-{start:020}-{suffix:08x}.{}", partition_folder(topic, partition), extension(codec))
}

/// The start offset of a segment object key (of either form: `segment-N.EXT` written by 0.1,
/// `segment-N-SUFFIX.EXT`); `None` for commit records, gap records and anything else.
pub fn segment_object_start(key: &str) -> Option<i64> {
    let name = key.rsplit('/').next()?;
    if name.ends_with(".json") {
        return None;
    }
    let digits = name.strip_prefix("segment-")?.get(..20)?;
    digits.bytes().all(|b| b.is_ascii_digit()).then(|| digits.parse().ok()).flatten()
}

/// Key of the metadata (commit record) of the segment starting at `start`.
pub fn segment_metadata_key(topic: &str, partition: i32, start: i64) -> String {
    format!("{}/segment-{start:020}.json", partition_folder(topic, partition))
}

/// The name in the backup of the `incarnation`-th incarnation of topic `topic` (counted from 1).
pub fn stored_topic(topic: &str, incarnation: u32) -> String {
    match incarnation {
        0 | 1 => topic.to_string(),
        n => format!("{topic}@{n}"),
    }
}

/// The Kafka name and incarnation of a topic's name in the backup (the inverse of [`stored_topic`]).
pub fn incarnation_of(stored_topic: &str) -> (&str, u32) {
    match stored_topic.rsplit_once('@') {
        Some((topic, n)) => match n.parse() {
            Ok(n) if n > 1 => (topic, n),
            _ => (stored_topic, 1),
        },
        None => (stored_topic, 1),
    }
}

/// Key of the record of the incarnation stored as `stored_topic` (see `incarnations`).
pub fn incarnation_key(stored_topic: &str) -> String {
    format!("{TOPICS_DIR}/{stored_topic}/{INCARNATION}")
}

/// The stored topic name of an incarnation record's key; `None` for any other key.
pub fn parse_incarnation_key(key: &str) -> Option<&str> {
    let stored = key.strip_prefix(TOPICS_DIR)?.strip_prefix('/')?.strip_suffix(INCARNATION)?.strip_suffix('/')?;
    (!stored.is_empty() && !stored.contains('/')).then_some(stored)
}

/// Key of the gap record starting at `from`.
pub fn gap_key(topic: &str, partition: i32, from: i64) -> String {
    format!("{}/gap-{from:020}.json", partition_folder(topic, partition))
}

/// Key of the marker saying that offsets below `before` were pruned.
pub fn pruned_key(topic: &str, partition: i32, before: i64) -> String {
    format!("{}/pruned-{before:020}.json", partition_folder(topic, partition))
}

/// The number a segment object, commit record, gap record, prune marker or group snapshot key
/// starts at (offset or time in its name), with the kind of object; `None` for anything else.
pub fn object_start(key: &str) -> Option<(&str, i64)> {
    let name = key.rsplit('/').next()?;
    let (kind, rest) = name.split_once('-')?;
    let digits = rest.get(..20)?;
    digits.bytes().all(|b| b.is_ascii_digit()).then(|| Some((kind, digits.parse().ok()?))).flatten()
}

/// Splits `topics/{topic}/partition={p}/{file}` into its parts.
pub fn parse_partition_key(key: &str) -> Option<(&str, i32, &str)> {
    let rest = key.strip_prefix(TOPICS_DIR)?.strip_prefix('/')?;
    let mut parts = rest.split('/');
    let (topic, partition, file) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    Some((topic, partition.strip_prefix("partition=")?.parse().ok()?, file))
}

/// A record (JSON) object in a partition's folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionRecord {
    /// The commit record of the segment starting at this offset.
    Segment(i64),
    /// A gap starting at this offset.
    Gap(i64),
    /// Offsets below this one were pruned.
    Pruned(i64),
}

/// Splits the key of a record object in a partition's folder into topic, partition and record;
/// `None` for segment objects and anything else.
pub fn parse_partition_record(key: &str) -> Option<(&str, i32, PartitionRecord)> {
    let (topic, partition, file) = parse_partition_key(key)?;
    if !file.ends_with(".json") {
        return None;
    }
    let record = match object_start(file)? {
        ("segment", start) => PartitionRecord::Segment(start),
        ("gap", from) => PartitionRecord::Gap(from),
        ("pruned", before) => PartitionRecord::Pruned(before),
        _ => return None,
    };
    Some((topic, partition, record))
}

/// Key of the access snapshot taken at `taken_at_ms`.
pub fn access_snapshot_key(taken_at_ms: i64) -> String {
    format!("{ACCESS_DIR}/snapshot-{taken_at_ms:020}.json")
}

/// Key of the consumer-group snapshot taken at `taken_at_ms`.
pub fn snapshot_key(taken_at_ms: i64) -> String {
    format!("{SNAPSHOTS_DIR}/snapshot-{taken_at_ms:020}.json")
}

/// The state directory of a restore into `target_topic` of cluster `cluster_id`: one per target
/// partition, or one for a topic restored by key (`target_partition` `None`).
pub fn restore_state_dir(cluster_id: &str, target_topic: &str, target_partition: Option<i32>) -> String {
    match target_partition {
        Some(partition) => format!("{RESTORES_DIR}/{cluster_id}/{target_topic}/partition={partition}"),
        None => format!("{RESTORES_DIR}/{cluster_id}/{target_topic}/repartitioned"),
    }
}

/// The record that a restore into `target_topic` of cluster `cluster_id` switched the topic's
/// timestamp type to CreateTime, to switch back when a restore of it completes.
pub fn timestamp_switch_key(cluster_id: &str, target_topic: &str) -> String {
    format!("{RESTORES_DIR}/{cluster_id}/{target_topic}/timestamp-type-switched.json")
}

/// The record of a restore's start in its state directory `dir`.
pub fn restore_started_key(dir: &str) -> String {
    format!("{dir}/{STARTED}")
}

/// The commit record, in the restore state directory `dir`, of the source segment of
/// `source_partition` starting at `source_start`.
pub fn restore_commit_key(dir: &str, source_partition: i32, source_start: i64) -> String {
    format!("{dir}/p{source_partition}-segment-{source_start:020}.json")
}

/// A restore state directory found in a backup: where it is and what it was written for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreStateDir {
    /// The directory's key (as [`restore_state_dir`] builds it).
    pub dir: String,
    /// Target cluster id.
    pub cluster_id: String,
    /// Target topic.
    pub target_topic: String,
    /// Target partition, `None` for a topic restored by key.
    pub target_partition: Option<i32>,
}

impl RestoreStateDir {
    /// The state directory whose start record is `key`; `None` for any other key.
    pub fn of_started_key(key: &str) -> Option<Self> {
        let dir = key.strip_suffix(STARTED)?.strip_suffix('/')?;
        let [RESTORES_DIR, cluster_id, target_topic, leaf] = dir.split('/').collect::<Vec<_>>()[..] else {
            return None;
        };
        let target_partition = match leaf.strip_prefix("partition=") {
            Some(number) => Some(number.parse().ok()?),
            None if leaf == "repartitioned" => None,
            None => return None,
        };
        Some(Self {
            dir: dir.to_string(),
            cluster_id: cluster_id.to_string(),
            target_topic: target_topic.to_string(),
            target_partition,
        })
    }
}

/// The folder of the offset resets on cluster `cluster_id`.
pub fn resets_dir(cluster_id: &str) -> String {
    format!("{RESETS_DIR}/{cluster_id}")
}

/// The record of offset reset `reset_id` on cluster `cluster_id` (the offsets before it).
pub fn reset_key(cluster_id: &str, reset_id: &str) -> String {
    format!("{}/{reset_id}.json", resets_dir(cluster_id))
}

/// The marker saying offset reset `reset_id` on cluster `cluster_id` was rolled back.
pub fn rolled_back_key(cluster_id: &str, reset_id: &str) -> String {
    format!("{}/{reset_id}{ROLLED_BACK}", resets_dir(cluster_id))
}

/// The reset id a key under [`resets_dir`] is about, and whether it is the rolled-back marker.
pub fn parse_reset_key(key: &str) -> Option<(&str, bool)> {
    let name = key.rsplit('/').next()?;
    match name.strip_suffix(ROLLED_BACK) {
        Some(id) => Some((id, true)),
        None => name.strip_suffix(".json").map(|id| (id, false)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backup_keys_sort_by_offset_and_parse_back() {
        let a = segment_metadata_key("orders.eu", 3, 9);
        let b = segment_metadata_key("orders.eu", 3, 10);
        assert!(a < b);
        assert_eq!(parse_partition_key(&a), Some(("orders.eu", 3, "segment-00000000000000000009.json")));
        assert_eq!(object_start(&a), Some(("segment", 9)));
        assert_eq!(object_start(&gap_key("t", 0, 4)), Some(("gap", 4)));
        assert_eq!(object_start(&pruned_key("t", 0, 6)), Some(("pruned", 6)));
        assert_eq!(object_start(&snapshot_key(1_700_000_000_000)), Some(("snapshot", 1_700_000_000_000)));
        assert_eq!(
            parse_partition_record(&segment_metadata_key("t", 3, 9)),
            Some(("t", 3, PartitionRecord::Segment(9)))
        );
        assert_eq!(parse_partition_record(&gap_key("t", 0, 4)), Some(("t", 0, PartitionRecord::Gap(4))));
        assert_eq!(parse_partition_record(&pruned_key("t", 0, 6)), Some(("t", 0, PartitionRecord::Pruned(6))));
        let object = segment_key("t", 0, 5, Compression::Zstd);
        assert_eq!(parse_partition_record(&object), None, "a segment object is not a record");
        let (one, two) = (segment_key("t", 0, 5, Compression::Lz4), segment_key("t", 0, 5, Compression::Lz4));
        assert!(
            one.starts_with("topics/t/partition=0/segment-00000000000000000005-") && one.ends_with(".lz4"),
            "{one}"
        );
        assert_ne!(one, two, "every upload gets a key of its own");
        assert_eq!(segment_object_start(&one), Some(5));
        assert_eq!(segment_object_start("topics/t/partition=0/segment-00000000000000000007.zst"), Some(7), "0.1 keys");
        assert_eq!(segment_object_start(&segment_metadata_key("t", 0, 5)), None);
        assert_eq!(segment_object_start(&gap_key("t", 0, 5)), None);
        assert_eq!(segment_object_start("topics/t/partition=0/segment-12.bin"), None);
        assert_eq!(parse_partition_key("topics/t/topic.json"), None);
        assert_eq!(parse_partition_key("topicsx/t/partition=0/a.json"), None);
    }

    #[test]
    fn a_topics_incarnations_have_names_that_give_it_back() {
        assert_eq!(stored_topic("orders", 1), "orders");
        assert_eq!(stored_topic("orders", 3), "orders@3");
        assert_eq!(incarnation_of("orders@3"), ("orders", 3));
        assert_eq!(incarnation_of("orders"), ("orders", 1));
        assert_eq!(incarnation_of("orders@x"), ("orders@x", 1));
    }

    #[test]
    fn incarnation_records_are_found_again_and_nothing_else_is_one() {
        let key = incarnation_key("orders@2");
        assert_eq!(key, "topics/orders@2/incarnation.json");
        assert_eq!(parse_incarnation_key(&key), Some("orders@2"));
        assert_eq!(parse_partition_key(&key), None, "not a partition's object");
        assert_eq!(parse_incarnation_key("topics/orders/partition=0/incarnation.json"), None);
        assert_eq!(parse_incarnation_key("topics//incarnation.json"), None);
        assert_eq!(parse_incarnation_key(&segment_metadata_key("orders", 0, 0)), None);
    }

    #[test]
    fn restore_state_directories_are_found_again_from_their_start_records() {
        for partition in [Some(7), None] {
            let dir = restore_state_dir("cluster-A", "orders.eu", partition);
            let found = RestoreStateDir::of_started_key(&restore_started_key(&dir)).unwrap();
            let expected = RestoreStateDir {
                dir: dir.clone(),
                cluster_id: "cluster-A".into(),
                target_topic: "orders.eu".into(),
                target_partition: partition,
            };
            assert_eq!(found, expected);
            assert_eq!(RestoreStateDir::of_started_key(&restore_commit_key(&dir, 0, 0)), None);
        }
        assert!(restore_commit_key("d", 2, 9) < restore_commit_key("d", 2, 10));
        assert_eq!(RestoreStateDir::of_started_key("restores/c/t/partition=x/started.json"), None);
        assert_eq!(RestoreStateDir::of_started_key("restores/c/t/other/started.json"), None);
        assert_eq!(RestoreStateDir::of_started_key("restores/c/t/partition=1/notstarted.json"), None);
    }

    #[test]
    fn worker_objects_of_backups_and_restores_live_in_folders_of_their_own() {
        let (backup, restore) = (worker_progress_key("pod-1"), restore_worker_key("cluster-A", "pod-1"));
        assert!(
            backup.starts_with(&format!("{WORKERS_DIR}/")) && restore.starts_with(&format!("{RESTORE_WORKERS_DIR}/"))
        );
        assert!(!restore.starts_with(&format!("{WORKERS_DIR}/")) && !restore.starts_with(RESTORES_DIR));
        assert_eq!(object_start(&access_snapshot_key(5)), Some(("snapshot", 5)));
    }

    #[test]
    fn reset_records_and_their_rollback_markers_parse_back() {
        let (record, marker) = (reset_key("c", "reset-1"), rolled_back_key("c", "reset-1"));
        assert!(record.starts_with(&resets_dir("c")) && marker.starts_with(&resets_dir("c")));
        assert_eq!(parse_reset_key(&record), Some(("reset-1", false)));
        assert_eq!(parse_reset_key(&marker), Some(("reset-1", true)));
        assert_eq!(parse_reset_key("offset-resets/c/notes.txt"), None);
    }
}
