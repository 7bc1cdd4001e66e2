//! The backup engine: selects topics, captures their metadata and the consumer groups' committed
//! offsets, resumes every partition from its last committed segment, runs partitions concurrently
//! (snapshot or continuous), checkpoints progress, consolidates the manifest and reports.

mod incarnations;
mod partition;
mod progress;
mod published;
mod settings;
mod transactions;
mod upload;
mod workers;

use crate::access_snapshots::{read_access, save_access_snapshot, AccessSnapshot, AclScope};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

pub use partition::PartitionOutcome;
pub use progress::{progress_boards, PartitionProgress, ProgressBoard, WorkerState};
pub use settings::{BackupConfig, BackupSettings};
pub use transactions::TransactionFilter;

use crate::clock::now_ms;
use crate::error::EngineError;
use crate::group_snapshots::{save_snapshot, take_snapshot};
use crate::kafka::{
    ClusterMetadata, FetchRounds, IsolationLevel, KafkaClient, KafkaError, OffsetSpec, TopicConfigEntry, TopicMetadata,
};
use crate::layout::{PROGRESS_KEY, RESETS_DIR, RESTORES_DIR, TOPICS_DIR};
use crate::manifest::{to_json, BackupManifest, OffsetGap, PartitionBackup, MANIFEST_FORMAT_VERSION};
use crate::metrics::metrics;
use crate::stop_signal::{join_stopping_on_failure, stop_on_shutdown};
use crate::storage::{BackupStore, StorageError};
use crate::topics::{TopicPartition, TopicSelector};
use crate::worker_group::{count_lost, PartitionsByTopic};
use incarnations::Incarnations;
use partition::{PartitionTask, FETCH_BUFFER_BYTES};
use published::ProgressGroup;

/// Records, batches and bytes a run (or one partition of it) moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    /// Records stored.
    pub records: i64,
    /// Batches stored.
    pub batches: u64,
    /// Control and aborted-transaction batches left out.
    pub dropped_batches: u64,
    /// Bytes of record batches read (before segment compression).
    pub bytes_in: u64,
    /// Bytes written to storage.
    pub bytes_stored: u64,
    /// Segments committed.
    pub segments: u64,
}

impl std::ops::AddAssign for Counters {
    fn add_assign(&mut self, other: Self) {
        self.records += other.records;
        self.batches += other.batches;
        self.dropped_batches += other.dropped_batches;
        self.bytes_in += other.bytes_in;
        self.bytes_stored += other.bytes_stored;
        self.segments += other.segments;
    }
}

/// What a backup run did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BackupReport {
    /// Backup id.
    pub backup_id: String,
    /// Where the backup is stored.
    pub location: String,
    /// Topics covered.
    pub topics: usize,
    /// Partitions covered.
    pub partitions: usize,
    /// What this run moved.
    pub counters: Counters,
    /// Offsets lost to retention, by `topic-partition`.
    #[serde(serialize_with = "gaps_as_objects")]
    pub gaps: Vec<(String, OffsetGap)>,
    /// True when a stop signal ended a snapshot before it was complete.
    pub interrupted: bool,
    /// Things the operator must know that did not stop the backup.
    pub warnings: Vec<String>,
    /// Consumer-group offset snapshots written by this run.
    pub group_snapshots: usize,
    /// Groups in the run's first snapshot (those with offsets on backed-up topics).
    pub groups: usize,
    /// Wall time of the run.
    #[serde(rename = "duration_seconds", serialize_with = "crate::seconds::serialize")]
    pub duration: Duration,
    /// Id of the key the backup is encrypted with, `None` when it is not encrypted.
    pub encryption_key_id: Option<String>,
}

/// `[{"partition": "t-0", "from": 10, "to": 20}]`.
fn gaps_as_objects<S: serde::Serializer>(gaps: &[(String, OffsetGap)], serializer: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = serializer.serialize_seq(Some(gaps.len()))?;
    for (partition, gap) in gaps {
        seq.serialize_element(&serde_json::json!({ "partition": partition, "from": gap.from, "to": gap.to }))?;
    }
    seq.end()
}

impl BackupReport {
    /// Bytes read per byte stored.
    pub fn compression_ratio(&self) -> f64 {
        if self.counters.bytes_stored == 0 {
            1.0
        } else {
            self.counters.bytes_in as f64 / self.counters.bytes_stored as f64
        }
    }

    /// Bytes read per second.
    pub fn throughput_bytes_per_sec(&self) -> f64 {
        self.counters.bytes_in as f64 / self.duration.as_secs_f64().max(1e-9)
    }

    fn add(&mut self, partition: String, outcome: PartitionOutcome) {
        self.counters += outcome.counters;
        self.interrupted |= outcome.interrupted;
        self.gaps.extend(outcome.gaps.into_iter().map(|gap| (partition.clone(), gap)));
    }
}

/// Runs a backup until its snapshot is complete (or, in continuous mode, until `shutdown`
/// turns true), then consolidates the manifest.
pub async fn run_backup(config: &BackupConfig, shutdown: watch::Receiver<bool>) -> Result<BackupReport, EngineError> {
    let started = Instant::now();
    let client = Arc::new(
        KafkaClient::connect(config.source.clone())
            .await
            .map_err(EngineError::kafka("connecting to the source cluster"))?,
    );
    let (store, encryption_key_id) = open_backup(config).await?;
    let metadata = client.refresh_metadata(None).await.map_err(EngineError::kafka("reading source metadata"))?;
    let topics = selected_topics(config, &metadata)?;
    let mut manifest = load_manifest(config, &store, &metadata).await?;
    let incarnations = Arc::new(Incarnations::new(client.clone(), store.clone()));
    if let Some(group) = &config.settings.workers {
        let shared =
            workers::SharedRun { config, group, client: &client, store: &store, topics: &topics, incarnations };
        let mut report = shared.run(manifest, shutdown).await?;
        report.encryption_key_id = encryption_key_id;
        report.duration = started.elapsed();
        return Ok(report);
    }
    let mut warnings = capture_metadata(&client, &mut manifest, &topics, &incarnations).await?;
    manifest.save(&store).await?;

    let (stop_sender, stop) = stop_on_shutdown(shutdown);
    let progress = Arc::new(Mutex::new(ProgressBoard {
        updated_at_ms: now_ms(),
        running: true,
        checkpoint_interval_ms: config.settings.checkpoint_interval.as_millis() as u64,
        ..ProgressBoard::default()
    }));
    write_progress(&store, PROGRESS_KEY, &progress).await?;
    let run = PartitionRun {
        config,
        client: &client,
        store: &store,
        manifest: &manifest,
        incarnations: &incarnations,
        stop,
        progress: &progress,
    };
    let every_partition =
        topics.iter().map(|topic| (topic.name.clone(), topic.partitions.keys().copied().collect())).collect();
    let (mut tasks, partition_count) = run.spawn(&every_partition).await?;

    let snapshotter = Arc::new(GroupSnapshotter::new(config, &client, &store, &topics));
    // Taken with the snapshot bounds above, so the committed offsets point into the data backed up.
    let (groups, group_warnings) = snapshotter.snapshot().await?;
    warnings.extend(group_warnings);
    let published = published_progress(config, &client);
    let checkpoints = tokio::spawn(checkpoint_periodically(
        store.clone(),
        (PROGRESS_KEY.to_string(), progress.clone()),
        config.settings.checkpoint_interval,
        config.settings.continuous.then(|| snapshotter.clone()),
        published.clone(),
    ));
    let mut report = BackupReport {
        backup_id: config.location.backup_id.clone(),
        location: store.description().to_string(),
        topics: topics.len(),
        partitions: partition_count,
        warnings,
        groups,
        encryption_key_id,
        ..BackupReport::default()
    };
    metrics().set_ready(true);
    let first_error =
        join_stopping_on_failure(&mut tasks, &stop_sender, |(name, outcome)| report.add(name, outcome)).await;
    checkpoints.abort();
    if let Some(published) = &published {
        published.publish(&progress).await;
    }
    report.group_snapshots = snapshotter.taken.load(Ordering::Relaxed);
    finish_run(&store, (PROGRESS_KEY, &progress), manifest).await?;
    if let Some(error) = first_error {
        return Err(error);
    }
    report.duration = started.elapsed();
    Ok(report)
}

/// Opens the backup's directory for writing: removes what a killed run left (staging files,
/// unfinished uploads; not under `restores/` or `offset-resets/`, which other runs may be
/// writing; not at all when workers share the backup, whose uploads these may be) and sets its
/// encryption up. Returns the store and the id of the encryption key.
async fn open_backup(config: &BackupConfig) -> Result<(BackupStore, Option<String>), EngineError> {
    let store = config.location.open_for_writing().await?;
    let leftovers = if config.settings.workers.is_some() {
        0
    } else {
        store.remove_staging_leftovers("", &[RESTORES_DIR, RESETS_DIR])?
            + store.abort_unfinished_uploads(TOPICS_DIR).await?
    };
    if leftovers > 0 {
        tracing::info!(count = leftovers, "removed staging files and unfinished uploads left by an interrupted run");
    }
    let encryption_key_id = store.set_up_encryption(now_ms()).await?;
    if let Some(key_id) = &encryption_key_id {
        tracing::info!(%key_id, "every object of this backup is encrypted (AES-256-GCM)");
    }
    Ok((store, encryption_key_id))
}

/// The source topics the config selects; none is an error naming the topics found.
fn selected_topics<'a>(
    config: &BackupConfig,
    metadata: &'a ClusterMetadata,
) -> Result<Vec<&'a TopicMetadata>, EngineError> {
    let topics: Vec<&TopicMetadata> =
        metadata.topics.values().filter(|t| config.topics.matches(&t.name, t.is_internal)).collect();
    if topics.is_empty() {
        let found: Vec<&str> = metadata.topics.keys().map(String::as_str).collect();
        return Err(EngineError::NoTopics { found: found.join(", ") });
    }
    Ok(topics)
}

/// The manifest this run continues (or a new one), checked to be of this source cluster.
async fn load_manifest(
    config: &BackupConfig,
    store: &BackupStore,
    metadata: &ClusterMetadata,
) -> Result<BackupManifest, EngineError> {
    let backup_id = &config.location.backup_id;
    let manifest = BackupManifest::load(store)
        .await?
        .unwrap_or_else(|| BackupManifest::new(backup_id, metadata.cluster_id.clone(), now_ms()));
    if let (Some(expected), Some(found)) = (&manifest.source_cluster_id, &metadata.cluster_id) {
        if expected != found {
            return Err(EngineError::ClusterMismatch {
                backup_id: backup_id.clone(),
                expected: expected.clone(),
                found: found.clone(),
            });
        }
    }
    Ok(manifest)
}

/// Captures the selected topics' metadata into `manifest` (to be saved), each under the name of
/// the incarnation it is backed up as now; returns the warnings.
async fn capture_metadata(
    client: &KafkaClient,
    manifest: &mut BackupManifest,
    topics: &[&TopicMetadata],
    incarnations: &Incarnations,
) -> Result<Vec<String>, EngineError> {
    let mut warnings = Vec::new();
    // One DescribeConfigs for every topic (a few hundred at a time), not one per topic.
    let names: Vec<String> = topics.iter().map(|t| t.name.clone()).collect();
    let described = match client.describe_topics_configs(&names).await {
        Ok(described) => described,
        Err(error) if error.is_refusal() => names.iter().map(|name| (name.clone(), Err(error.clone()))).collect(),
        Err(error) => return Err(EngineError::kafka("reading the configs of the backed-up topics")(error)),
    };
    for (topic, (_, configs)) in topics.iter().zip(described) {
        let (stored, recreated) = incarnations.begin(manifest, topic).await?;
        warnings.extend(recreated);
        let (configs, warning) = kept_configs(&topic.name, configs)?;
        warnings.extend(warning);
        record_topic_metadata(manifest, topic, &stored, configs);
    }
    manifest.updated_at_ms = now_ms();
    manifest.tool_version = env!("CARGO_PKG_VERSION").to_string();
    manifest.format_version = MANIFEST_FORMAT_VERSION;
    Ok(warnings)
}

/// What every partition task of a run shares.
struct PartitionRun<'a> {
    config: &'a BackupConfig,
    client: &'a Arc<KafkaClient>,
    store: &'a BackupStore,
    manifest: &'a BackupManifest,
    incarnations: &'a Arc<Incarnations>,
    stop: watch::Receiver<bool>,
    progress: &'a Arc<Mutex<ProgressBoard>>,
}

type PartitionTasks = JoinSet<Result<(String, PartitionOutcome), EngineError>>;

impl PartitionRun<'_> {
    /// Starts one task per partition of `work`, each resuming after its last committed segment
    /// (a snapshot ends at the offsets the partitions end at now). Returns them and their count.
    /// A worker of a group takes a commit refused because another worker committed first as the
    /// partition lost ([`PartitionOutcome::lost`]), not as a failure.
    async fn spawn(&self, work: &PartitionsByTopic) -> Result<(PartitionTasks, usize), EngineError> {
        let permits = Arc::new(Semaphore::new(self.config.settings.max_concurrent_partitions));
        let rounds = Arc::new(FetchRounds::new(self.client.clone(), FETCH_BUFFER_BYTES));
        let shared = self.config.settings.workers.is_some();
        let mut tasks = JoinSet::new();
        for (topic, partitions) in work {
            let ends = if self.config.settings.continuous {
                BTreeMap::new()
            } else {
                self.client
                    .list_offsets(topic, partitions, OffsetSpec::Latest, IsolationLevel::ReadCommitted)
                    .await
                    .map_err(EngineError::kafka(&format!("reading the snapshot end offsets of {topic}")))?
                    .into_iter()
                    .collect()
            };
            let (stored_topic, topic_id) = self.incarnations.backed_up_as(self.manifest, topic).await;
            for &partition in partitions {
                let backed_up = self.manifest.partition(&stored_topic, partition);
                let task = PartitionTask {
                    client: self.client.clone(),
                    rounds: rounds.clone(),
                    store: self.store.clone(),
                    settings: self.config.settings.clone(),
                    topic: topic.clone(),
                    stored_topic: stored_topic.clone(),
                    topic_id: topic_id.clone(),
                    incarnations: self.incarnations.clone(),
                    partition,
                    resume_from: backed_up.and_then(PartitionBackup::next_offset),
                    shared,
                    committed_objects: match backed_up {
                        Some(backed_up) if shared => backed_up.segments.iter().map(|s| s.key.clone()).collect(),
                        _ => HashSet::new(),
                    },
                    end: ends.get(&partition).copied(),
                    stop: self.stop.clone(),
                    permits: permits.clone(),
                    progress: self.progress.clone(),
                };
                let held = TopicPartition::new(topic, partition);
                let name = held.to_string();
                tasks.spawn(async move {
                    match task.run().await {
                        Err(EngineError::Conflict { key }) if shared => {
                            count_lost(&held);
                            tracing::warn!(partition = %name, %key, "another worker committed this partition first: \
                                it is that worker's now; this one drops it and rejoins the group");
                            Ok((name, PartitionOutcome { lost: true, ..PartitionOutcome::default() }))
                        }
                        outcome => Ok((name, outcome?)),
                    }
                });
            }
        }
        let count = tasks.len();
        Ok((tasks, count))
    }
}

/// Marks the run ended on the progress board and consolidates the manifest with every commit
/// record the partitions wrote (even after a failure: what was committed stays listed).
async fn finish_run(
    store: &BackupStore,
    (progress_key, progress): (&str, &Mutex<ProgressBoard>),
    mut manifest: BackupManifest,
) -> Result<(), EngineError> {
    {
        let mut board = progress.lock().expect("progress lock");
        board.running = false;
        board.updated_at_ms = now_ms();
    }
    write_progress(store, progress_key, progress).await?;
    if let Some(consolidated) = BackupManifest::load(store).await? {
        manifest = consolidated;
    }
    manifest.updated_at_ms = now_ms();
    manifest.save(store).await?;
    Ok(())
}

/// Records partition count, replication factor, id and the topic's non-default `configs` into the
/// manifest's entry `stored_topic` (its incarnation's name in the backup).
fn record_topic_metadata(
    manifest: &mut BackupManifest,
    topic: &TopicMetadata,
    stored_topic: &str,
    configs: Option<BTreeMap<String, String>>,
) {
    for &partition in topic.partitions.keys() {
        manifest.partition_mut(stored_topic, partition);
    }
    let entry = manifest.topics.iter_mut().find(|t| t.name == stored_topic).expect("partition_mut created the topic");
    entry.partition_count = topic.partitions.len() as i32;
    entry.replication_factor = topic.partitions.values().map(|p| p.replicas.len()).max().unwrap_or(0) as i16;
    entry.configs = configs;
    if topic.topic_id.is_some() {
        entry.topic_id.clone_from(&topic.topic_id);
    }
}

/// A topic's configs to keep (`None`: not captured) and the warning that says why they were not.
type KeptConfigs = (Option<BTreeMap<String, String>>, Option<String>);

/// The topic's non-default configs.
async fn topic_configs(client: &KafkaClient, topic: &str) -> Result<KeptConfigs, EngineError> {
    kept_configs(topic, client.describe_topic_configs(topic).await)
}

/// The configs of `topic` to keep from what DescribeConfigs answered. A source that refuses to
/// describe them (no permission, or no such API) gives a warning, not a failed backup: the data
/// matters more, and the manifest says the configs are missing.
fn kept_configs(topic: &str, described: Result<Vec<TopicConfigEntry>, KafkaError>) -> Result<KeptConfigs, EngineError> {
    match described {
        Ok(entries) => Ok((Some(configs_to_keep(entries)), None)),
        Err(error) if error.is_refusal() => {
            Ok((None, Some(format!("configs of topic {topic} were not captured: {error}"))))
        }
        Err(error) => Err(EngineError::kafka(format!("reading the configs of topic {topic}"))(error)),
    }
}

/// The configs worth re-creating a topic with: set on the topic (the source cluster's broker-wide
/// defaults are not the topic's; the target cluster has its own), readable (sensitive values are
/// hidden by the broker and cannot be restored anyway).
fn configs_to_keep(entries: Vec<TopicConfigEntry>) -> BTreeMap<String, String> {
    entries.into_iter().filter(|c| c.set_on_topic && !c.is_sensitive).filter_map(|c| Some((c.name, c.value?))).collect()
}

async fn write_progress(store: &BackupStore, key: &str, progress: &Mutex<ProgressBoard>) -> Result<(), StorageError> {
    let board = progress.lock().expect("progress lock").clone();
    store.put(key, to_json(&board)).await
}

/// The publisher of `source.progress_group`, if it is set.
fn published_progress(config: &BackupConfig, client: &Arc<KafkaClient>) -> Option<Arc<ProgressGroup>> {
    let group = config.progress_group.as_deref()?;
    Some(Arc::new(ProgressGroup::new(client.clone(), group, &config.location.backup_id)))
}

/// Snapshots consumer-group offsets into the backup and counts them.
struct GroupSnapshotter {
    client: Arc<KafkaClient>,
    store: BackupStore,
    selector: TopicSelector,
    topics: BTreeSet<String>,
    taken: AtomicUsize,
    /// Every ACL binding, not only those of the backed-up topics and groups.
    cluster_acls: bool,
    /// The last access snapshot this run stored.
    access: Mutex<Option<AccessSnapshot>>,
}

impl GroupSnapshotter {
    fn new(config: &BackupConfig, client: &Arc<KafkaClient>, store: &BackupStore, topics: &[&TopicMetadata]) -> Self {
        Self {
            client: client.clone(),
            store: store.clone(),
            selector: config.groups.clone(),
            topics: topics.iter().map(|t| t.name.clone()).collect(),
            taken: AtomicUsize::new(0),
            cluster_acls: config.settings.cluster_acls,
            access: Mutex::new(None),
        }
    }

    /// Takes and stores one snapshot of the group offsets, and one of the access metadata (ACLs,
    /// quotas, SCRAM users) when it changed since the last this run stored; returns how many
    /// groups it holds and any warnings.
    async fn snapshot(&self) -> Result<(usize, Vec<String>), EngineError> {
        let (snapshot, mut warnings) = take_snapshot(&self.client, &self.selector, &self.topics, now_ms())
            .await
            .map_err(EngineError::kafka("reading consumer-group offsets"))?;
        save_snapshot(&self.store, &snapshot).await?;
        self.taken.fetch_add(1, Ordering::Relaxed);
        let groups = snapshot.groups.keys().cloned().collect();
        let scope = AclScope { topics: &self.topics, groups: &groups, cluster_wide: self.cluster_acls };
        let (access, access_warnings) = read_access(&self.client, &scope, snapshot.taken_at_ms).await;
        warnings.extend(access_warnings);
        let changed = self.access.lock().expect("access lock").as_ref().is_none_or(|last| !last.same_as(&access));
        if changed {
            save_access_snapshot(&self.store, &access).await?;
            *self.access.lock().expect("access lock") = Some(access);
        }
        Ok((snapshot.groups.len(), warnings))
    }
}

/// Every checkpoint interval: the progress object and, in continuous mode, a consumer-group
/// offset snapshot, so that the backup holds their history.
async fn checkpoint_periodically(
    store: BackupStore,
    (progress_key, progress): (String, Arc<Mutex<ProgressBoard>>),
    every: Duration,
    snapshots: Option<Arc<GroupSnapshotter>>,
    published: Option<Arc<ProgressGroup>>,
) {
    let mut ticker = tokio::time::interval(every);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        if let Err(error) = write_progress(&store, &progress_key, &progress).await {
            tracing::warn!(%error, "could not write backup progress; data progress is unaffected");
        }
        if let Some(published) = &published {
            published.publish(&progress).await;
        }
        if let Some(snapshotter) = &snapshots {
            if let Err(error) = snapshotter.snapshot().await {
                tracing::warn!(%error, "could not snapshot consumer-group offsets; trying again at the next checkpoint");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, value: Option<&str>, set_on_topic: bool, is_sensitive: bool) -> TopicConfigEntry {
        TopicConfigEntry { name: name.into(), value: value.map(Into::into), set_on_topic, is_sensitive }
    }

    #[test]
    fn only_readable_configs_set_on_the_topic_are_kept() {
        let kept = configs_to_keep(vec![
            entry("cleanup.policy", Some("compact"), true, false),
            entry("retention.ms", Some("604800000"), false, false),
            entry("sasl.jaas.config", None, true, true),
            entry("min.insync.replicas", Some("2"), true, false),
        ]);
        let expected: BTreeMap<String, String> =
            [("cleanup.policy", "compact"), ("min.insync.replicas", "2")].map(|(k, v)| (k.into(), v.into())).into();
        assert_eq!(kept, expected);
    }

    #[test]
    fn the_report_computes_ratio_and_throughput() {
        let counters = Counters { bytes_in: 300, bytes_stored: 100, ..Counters::default() };
        let report = BackupReport { counters, duration: Duration::from_secs(2), ..Default::default() };
        assert_eq!(report.compression_ratio(), 3.0);
        assert_eq!(report.throughput_bytes_per_sec(), 150.0);
        assert_eq!(BackupReport::default().compression_ratio(), 1.0);
    }
}
