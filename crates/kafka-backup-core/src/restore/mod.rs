//! The restore engine: plans the restore, creates missing topics, then restores every partition
//! with an idempotent producer, recording durable progress and the source -> target offset map.
//!
//! Restore state lives with the backup (see `state.rs`), under
//! `restores/{target cluster id}/{target topic}/partition={p}/`, or `.../repartitioned/` for a
//! topic whose records are routed by key into another partition count.

mod access;
mod incarnations;
mod partition;
mod plan;
mod prepare;
mod rate;
mod readiness;
mod repartition;
mod settings;
mod state;
mod target;
mod timestamps;
mod workers;

use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::ResponseError;
use serde::Serialize;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

pub use access::RestoredAccess;
pub use incarnations::{choose_incarnations, ChosenIncarnations};
pub use plan::{build_plan, PartitionPlan, RestorePlan, SharePosition, TopicCreation, TopicPlan};
pub use prepare::{prepare, PreparedBatch, SourceOffsets, ORIGINAL_OFFSET_HEADER};
pub use settings::{RestoreConfig, RestoreSettings, StartOffset};
pub use state::{load_offset_map, load_started, recorded_state_dirs, RestoreCommit, RestoreIdentity, RestoreStarted};
pub use workers::{restore_worker_boards, RestoreWorkerBoard};

use crate::error::EngineError;
use crate::kafka::{ClientConfig, ClusterMetadata, KafkaClient, NewTopic};
use crate::layout::restore_state_dir;
use crate::manifest::BackupManifest;
use crate::metrics::metrics;
use crate::segment::CHUNK_BYTES;
use crate::stop_signal::{join_stopping_on_failure, stop_on_shutdown};
use crate::storage::BackupStore;
use crate::topics::TopicPartition;
use partition::{PartitionRestore, RestoreOutcome};
use rate::RateLimiter;
use readiness::NewPartitions;
use repartition::RepartitionRestore;
use target::TargetPartition;

/// How long a created topic may take to have leaders, and its leaders to bring up one more of its
/// partitions' logs.
const NEW_TOPIC_TIMEOUT: Duration = Duration::from_secs(30);

/// What a restore run did (or, for a dry run, would do).
#[derive(Debug, Clone, Default, Serialize)]
pub struct RestoreReport {
    /// The plan followed.
    pub plan: RestorePlan,
    /// True when nothing was written (dry run).
    pub dry_run: bool,
    /// Topics created.
    pub created_topics: Vec<String>,
    /// Existing topics emptied before the restore (`purge_before_restore`).
    pub purged_topics: Vec<String>,
    /// Records produced by this run.
    pub records: i64,
    /// Batches produced by this run.
    pub batches: u64,
    /// Record-batch bytes produced.
    pub bytes: u64,
    /// Records found already restored by an earlier, interrupted run.
    pub already_restored: i64,
    /// True when a stop signal ended the restore early.
    pub interrupted: bool,
    /// For a worker of a group (`restore.group_id`): its part in the restore.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker: Option<WorkerReport>,
    /// Wall time.
    #[serde(rename = "duration_seconds", serialize_with = "crate::seconds::serialize")]
    pub duration: Duration,
}

impl RestoreReport {
    /// Counts what a partition task wrote and found already restored.
    fn add(&mut self, outcome: RestoreOutcome) {
        metrics().restore_partitions.with_label_values(&["done"]).inc();
        self.records += outcome.written.records;
        self.batches += outcome.written.batches;
        self.bytes += outcome.written.bytes;
        self.already_restored += outcome.already_restored;
    }
}

/// What one worker of a group did in a shared restore.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WorkerReport {
    /// The group.
    pub group: String,
    /// The worker's name.
    pub worker: String,
    /// Generations it took part in.
    pub generations: u32,
    /// Partitions it lost to another worker that took them over (fenced).
    pub partitions_lost: u64,
    /// True for the worker that found the restore complete as the group's leader: it switched
    /// topics back to LogAppendTime and, with a consumer-group strategy, translates the offsets.
    pub finished_the_restore: bool,
}

/// The name restore state is kept under for a target cluster: its id, or `unknown-cluster` for a
/// broker that reports none.
fn target_cluster_id(metadata: &ClusterMetadata) -> String {
    metadata.cluster_id.clone().unwrap_or_else(|| "unknown-cluster".to_string())
}

/// Connects to a target cluster and reads its id, as restore state is kept under it.
pub async fn connect_target(config: &ClientConfig) -> Result<(KafkaClient, String), EngineError> {
    let client =
        KafkaClient::connect(config.clone()).await.map_err(EngineError::kafka("connecting to the target cluster"))?;
    let metadata = client.refresh_metadata(Some(&[])).await.map_err(EngineError::kafka("reading target metadata"))?;
    let cluster_id = target_cluster_id(&metadata);
    Ok((client, cluster_id))
}

/// What a restore reads from and writes to, opened once and shared by the phases of a
/// three-phase restore: the backup's directory in its store, and the target cluster.
pub struct RestoreTarget {
    /// The backup's directory (restore state and offset maps are written under it).
    pub store: BackupStore,
    /// A client of the target cluster.
    pub client: Arc<KafkaClient>,
    /// The target cluster's id, as restore state is kept under it.
    pub cluster_id: String,
}

impl RestoreTarget {
    /// Opens the store `config` names (for writing) and connects to its target cluster.
    pub async fn open(config: &RestoreConfig) -> Result<Self, EngineError> {
        let store = config.location.open_for_writing().await?;
        let (client, cluster_id) = connect_target(&config.target).await?;
        Ok(Self { store, client: Arc::new(client), cluster_id })
    }
}

/// Restores the backup `config` names into `target` (or only plans it, for a dry run).
pub async fn run_restore(
    config: &RestoreConfig,
    target: &RestoreTarget,
    shutdown: watch::Receiver<bool>,
) -> Result<RestoreReport, EngineError> {
    let started = Instant::now();
    let chosen = choose_incarnations(config, config.location.manifest(&target.store).await?);
    let (config, manifest) = (&chosen.config, chosen.manifest);
    let metadata = target.client.refresh_metadata(None).await.map_err(EngineError::kafka("reading target metadata"))?;
    let mut plan = build_plan(config, &manifest, &metadata);
    plan.warnings.extend(chosen.warnings);
    plan.conflicts.extend(chosen.conflicts);
    timestamps::check_timestamp_types(target, &metadata, &mut plan, config.settings.switch_to_create_time).await?;
    access::plan_access(target, config, &manifest, &mut plan).await?;
    let mut report = RestoreReport { plan, dry_run: config.settings.dry_run, ..RestoreReport::default() };
    if report.dry_run {
        // A dry run shows the plan with its conflicts; the caller decides how to fail.
        report.duration = started.elapsed();
        return Ok(report);
    }
    if !report.plan.conflicts.is_empty() {
        return Err(EngineError::Conflicts { conflicts: report.plan.conflicts });
    }
    if let Some(group) = &config.settings.workers {
        let shared = workers::SharedRestore { config, group, target, manifest: &manifest };
        let mut report = shared.run(report, shutdown).await?;
        report.duration = started.elapsed();
        return Ok(report);
    }
    let created = create_topics(&target.client, &report.plan).await?;
    report.created_topics = created.iter().map(|(topic, _)| topic.clone()).collect();
    report.purged_topics = purge_targets(target, &report.plan, &metadata).await?;
    timestamps::switch_to_create_time(target, &report.plan).await?;
    access::restore_access(target, &report.plan).await?;
    // A failed partition stops the others at their next segment, as an operator's stop does.
    let (stop_sender, stop) = stop_on_shutdown(shutdown);
    let producer = target.client.init_producer_id().await.map_err(EngineError::kafka("getting a producer id"))?;
    let writers = Writers::Run(producer);
    let mut tasks = spawn_partitions(config, target, &manifest, &report.plan, created, writers, stop).await?;
    metrics().restore_partitions.with_label_values(&["planned"]).set(tasks.len() as i64);
    metrics().progress.expect(report.plan.records().max(0) as u64);
    metrics().restore_partitions.with_label_values(&["done"]).set(0);
    metrics().set_ready(true);
    let failed = join_stopping_on_failure(&mut tasks, &stop_sender, |outcome| {
        report.interrupted |= outcome.interrupted;
        report.add(outcome);
    })
    .await;
    if let Some(error) = failed {
        return Err(error);
    }
    if report.interrupted {
        if report.plan.topics.iter().any(|t| t.switch_to_create_time) {
            tracing::warn!("topics switched to CreateTime stay so until a run of this restore completes");
        }
    } else {
        timestamps::switch_back(target, &report.plan).await?;
    }
    report.duration = started.elapsed();
    Ok(report)
}

/// Empties the existing target topics the plan purges: every partition's records below its high
/// watermark are deleted (the offsets go on from there). A topic that a restore from this backup
/// into this cluster already started is left alone, so that a resumed restore never deletes what
/// it wrote. Returns the topics purged.
async fn purge_targets(
    target: &RestoreTarget,
    plan: &RestorePlan,
    metadata: &ClusterMetadata,
) -> Result<Vec<String>, EngineError> {
    let started = recorded_state_dirs(&target.store).await?;
    let mut purged = Vec::new();
    for topic in plan.topics.iter().filter(|t| t.purge) {
        // A partition this backup's restore already started (or the whole topic, restored by key)
        // is not purged again: the restore resumes there.
        let resumed = |partition: i32| {
            started.iter().any(|dir| {
                dir.cluster_id == target.cluster_id
                    && dir.target_topic == topic.target
                    && dir.target_partition.is_none_or(|p| p == partition)
            })
        };
        let partitions = metadata.topics.get(&topic.target).map(|t| t.partitions.keys().copied().collect::<Vec<_>>());
        let mut emptied = false;
        for partition in partitions.unwrap_or_default() {
            if resumed(partition) {
                tracing::warn!(topic = %topic.target, partition, "not purged: the restore of this partition already started and resumes");
                continue;
            }
            let start = target
                .client
                .delete_records_to_end(&topic.target, partition, NEW_TOPIC_TIMEOUT)
                .await
                .map_err(EngineError::kafka(format!("purging {}-{partition}", topic.target)))?;
            tracing::info!(topic = %topic.target, partition, log_start = start, "purged before the restore");
            emptied = true;
        }
        if emptied {
            purged.push(topic.target.clone());
        }
    }
    Ok(purged)
}

/// Creates the target topics the plan creates; returns them with their partition counts. A topic
/// created meanwhile is restored into only if it has the partitions the plan creates.
async fn create_topics(client: &KafkaClient, plan: &RestorePlan) -> Result<Vec<(String, i32)>, EngineError> {
    let new_topics: Vec<NewTopic> = plan
        .topics
        .iter()
        .filter_map(|topic| {
            let create = topic.create.as_ref()?;
            Some(NewTopic {
                name: topic.target.clone(),
                partitions: create.partitions,
                replication_factor: create.replication_factor,
                configs: create.configs.clone().into_iter().collect(),
            })
        })
        .collect();
    // Every topic in one CreateTopics per hundred, not one per topic (an estate has thousands).
    let answers = client
        .create_topics(&new_topics, NEW_TOPIC_TIMEOUT)
        .await
        .map_err(EngineError::kafka("creating the target topics"))?;
    let mut created = Vec::new();
    for (topic, (_, answer)) in new_topics.iter().zip(answers) {
        match answer {
            Ok(()) => created.push((topic.name.clone(), topic.partitions)),
            Err(error) if error.response_error() == Some(ResponseError::TopicAlreadyExists) => {
                // The plan's metadata did not show it (created meanwhile, or a broker's metadata
                // lagged): restore into it only if it has the partitions the plan created.
                let metadata = client
                    .refresh_metadata(Some(std::slice::from_ref(&topic.name)))
                    .await
                    .map_err(EngineError::kafka(format!("reading topic {}", topic.name)))?;
                let found = metadata.topics.get(&topic.name).map_or(0, |t| t.partitions.len());
                if found != topic.partitions as usize {
                    return Err(EngineError::Conflicts {
                        conflicts: vec![format!(
                            "target topic {} exists after all (created meanwhile, or missing from the metadata the \
                             plan was built on) with {found} partitions where the plan creates {}; run the restore \
                             again to plan against it",
                            topic.name, topic.partitions
                        )],
                    });
                }
            }
            Err(error) => return Err(EngineError::kafka(format!("creating topic {}", topic.name))(error)),
        }
    }
    Ok(created)
}

type RestoreTasks = JoinSet<Result<RestoreOutcome, EngineError>>;

/// Who writes the target partitions: the run's one idempotent producer, or, for a worker of a
/// group, a producer per target partition that fences the partition's earlier writers (see `workers`).
enum Writers {
    Run((i64, i16)),
    Group(Arc<workers::PartitionWriters>),
}

/// Starts one task per planned target partition (one per topic restored by key; for a worker,
/// only its own), each waiting for its partition's log to come up in a topic just `created`, then
/// for a restore slot.
async fn spawn_partitions(
    config: &RestoreConfig,
    target: &RestoreTarget,
    manifest: &BackupManifest,
    plan: &RestorePlan,
    created: Vec<(String, i32)>,
    writers: Writers,
    stop: watch::Receiver<bool>,
) -> Result<RestoreTasks, EngineError> {
    let (store, client, cluster_id) = (&target.store, &target.client, &target.cluster_id);
    // Each partition starts once its leader has created its log, not after the last one.
    let new_partitions = Arc::new(NewPartitions::watch(client.clone(), created, NEW_TOPIC_TIMEOUT));
    // Two slots per partition, one for a partition whose whole backup is smaller than a chunk: such
    // a partition holds less than a chunk in memory, and its time goes to round trips (offsets,
    // acknowledgements, durable commits), so twice as many of them run at once.
    let permits = Arc::new(Semaphore::new(2 * config.settings.max_concurrent_partitions));
    let limiter = Arc::new(RateLimiter::new(
        config.settings.rate_limit_bytes_per_sec,
        config.settings.rate_limit_records_per_sec,
    ));
    let mut tasks = JoinSet::new();
    let run_producer = match &writers {
        Writers::Run(producer) => *producer,
        Writers::Group(_) => (-1, -1),
    };
    let target_partition = |topic: &str, partition: i32| TargetPartition {
        client: client.clone(),
        topic: topic.to_string(),
        partition,
        producer: run_producer,
        limiter: limiter.clone(),
        sequence: 0,
    };
    for topic in &plan.topics {
        let backed_up = manifest.topic(&topic.source).expect("planned topics are in the manifest");
        let segments_of = |partition: i32| {
            backed_up
                .partitions
                .iter()
                .find(|p| p.partition == partition)
                .map(|p| p.segments.clone())
                .unwrap_or_default()
        };
        if let Some(count) = topic.repartition {
            if matches!(writers, Writers::Group(_)) {
                return Err(EngineError::Conflicts {
                    conflicts: vec![format!(
                        "{} is restored by key into {count} partitions, which one process does in source order: \
                         run it without restore.group_id",
                        topic.target
                    )],
                });
            }
            let task = RepartitionRestore {
                store: store.clone(),
                settings: config.settings.clone(),
                source_topic: topic.source.clone(),
                sources: topic.partitions.iter().map(|p| (p.source, segments_of(p.source))).collect(),
                targets: (0..count).map(|p| target_partition(&topic.target, p)).collect(),
                state_dir: restore_state_dir(cluster_id, &topic.target, None),
                stop: stop.clone(),
            };
            let (permits, new_partitions, topic_name) = (permits.clone(), new_partitions.clone(), topic.target.clone());
            tasks.spawn(async move {
                new_partitions.wait(&topic_name, None).await?;
                let _permit = permits.acquire_many_owned(2).await;
                task.run().await
            });
            continue;
        }
        for partition in &topic.partitions {
            let name = TopicPartition::new(&topic.target, partition.target);
            let group_writers = match &writers {
                Writers::Group(group) if !group.assigned(&name) => continue,
                Writers::Group(group) => Some(group.clone()),
                Writers::Run(_) => None,
            };
            let segments = segments_of(partition.source);
            let small = segments.iter().map(|s| s.uncompressed_bytes).sum::<u64>() < CHUNK_BYTES as u64;
            let slots = if small { 1 } else { 2 };
            let mut task = PartitionRestore {
                store: store.clone(),
                settings: config.settings.clone(),
                source_topic: topic.source.clone(),
                source_partition: partition.source,
                segments,
                target: target_partition(&topic.target, partition.target),
                state_dir: restore_state_dir(cluster_id, &topic.target, Some(partition.target)),
                stop: stop.clone(),
            };
            let (permits, new_partitions) = (permits.clone(), new_partitions.clone());
            tasks.spawn(async move {
                // Waiting holds no slot: the partitions whose logs are up restore meanwhile.
                new_partitions.wait(&name.topic, Some(name.partition)).await?;
                let _permit = permits.acquire_many_owned(slots).await;
                match group_writers {
                    Some(group) => {
                        let outcome = async {
                            task.target.producer = group.producer(&name, &task.state_dir).await?;
                            task.run().await
                        };
                        group.settle(&name, outcome.await)
                    }
                    None => task.run().await,
                }
            });
        }
    }
    Ok(tasks)
}
