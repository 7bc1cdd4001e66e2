//! A restore shared by the workers of a group (`restore.group_id`): the leader prepares the target
//! and divides the target partitions left to restore; each worker restores its own with a producer
//! per partition whose transactional id fences the partition's earlier writers when it moves.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::partition::RestoreOutcome;
use super::state::load_started;
use super::{
    access, build_plan, create_topics, purge_targets, spawn_partitions, timestamps, RestoreConfig, RestorePlan,
    RestoreReport, RestoreTarget, WorkerReport, Writers,
};
use crate::clock::now_ms;
use crate::error::EngineError;
use crate::kafka::{ClusterMetadata, KafkaClient};
use crate::layout::{restore_commit_key, restore_state_dir, restore_worker_key, RESTORES_DIR, RESTORE_WORKERS_DIR};
use crate::manifest::to_json;
use crate::manifest::BackupManifest;
use crate::stop_signal::stop_on_shutdown;
use crate::storage::{BackupStore, StorageError};
use crate::topics::TopicPartition;
use crate::worker_group::{count_lost, weights, Generation, GenerationEnd, Worker, WorkerGroup, WorkerState};

/// The producers of a worker's target partitions in one generation.
pub(super) struct PartitionWriters {
    client: Arc<KafkaClient>,
    store: BackupStore,
    group_id: String,
    assigned: BTreeSet<TopicPartition>,
    unclaimed: BTreeSet<TopicPartition>,
}

impl PartitionWriters {
    /// Whether this worker restores `partition` in this generation.
    pub fn assigned(&self, partition: &TopicPartition) -> bool {
        self.assigned.contains(partition)
    }

    /// The producer id and epoch that write `partition` (restore state in `state_dir`): its
    /// transactional id's, with a new epoch. A partition whose restore started and that no member
    /// of the group held before (its worker was removed, or killed, and may still be writing) gets
    /// its earlier writers fenced first: one abort marker in the partition, after which their
    /// batches are refused.
    pub async fn producer(&self, partition: &TopicPartition, state_dir: &str) -> Result<(i64, i16), EngineError> {
        let id = format!("{}:{}:{}", self.group_id, partition.topic, partition.partition);
        let orphaned = self.unclaimed.contains(partition) && load_started(&self.store, state_dir).await?.is_some();
        let producer = if orphaned {
            tracing::info!(%partition, transactional_id = %id, "fencing the partition's earlier writers");
            self.client.fence_partition_writers(&id, &partition.topic, partition.partition).await
        } else {
            self.client.init_transactional_producer(&id).await
        };
        producer.map_err(EngineError::kafka(format!("getting the producer of {partition} (transactional id {id})")))
    }

    /// A partition task's result: lost to another worker when its writes were fenced or its state
    /// records refused (create-only: the other worker wrote them first).
    pub fn settle(
        &self,
        partition: &TopicPartition,
        result: Result<RestoreOutcome, EngineError>,
    ) -> Result<RestoreOutcome, EngineError> {
        match result {
            Err(
                error @ (EngineError::PartitionLost { .. } | EngineError::Storage(StorageError::AlreadyExists { .. })),
            ) => {
                count_lost(partition);
                tracing::warn!(%partition, %error, "lost the partition to another worker; nothing is written twice");
                Ok(RestoreOutcome { lost: Some(partition.clone()), ..RestoreOutcome::default() })
            }
            other => other,
        }
    }
}

/// A restore worker's state object (`state/restore-workers/{cluster}/{worker}.json`), written at
/// each generation it joins and when it ends, which `describe` lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreWorkerBoard {
    /// The cluster restored into.
    pub target_cluster_id: String,
    /// When it was written (epoch ms).
    pub updated_at_ms: i64,
    /// False once the worker ended (the restore complete, stopped, or failed); a killed worker's
    /// stays true, at the time it was last written.
    pub running: bool,
    /// Its group, generation and target partitions.
    pub worker: WorkerState,
}

/// Every restore worker's state object the backup in `store` holds.
pub async fn restore_worker_boards(store: &BackupStore) -> Result<Vec<RestoreWorkerBoard>, EngineError> {
    let mut boards = Vec::new();
    for object in store.list(RESTORE_WORKERS_DIR).await? {
        let body = store.get(&object.key).await?;
        match serde_json::from_slice(&body) {
            Ok(board) => boards.push(board),
            Err(error) => tracing::warn!(key = %object.key, %error, "a restore worker's state object is unreadable"),
        }
    }
    Ok(boards)
}

/// What the leaders of this process's generations created and purged.
#[derive(Default)]
struct Prepared {
    created: BTreeSet<String>,
    purged: BTreeSet<String>,
}

/// How a generation's work ended.
enum Waited {
    Generation(GenerationEnd),
    /// Every assigned partition is restored: rejoin, claiming none of them.
    Done,
    /// These partitions went to another worker: rejoin without them.
    Lost(Vec<TopicPartition>),
    Stopped,
    Failed(EngineError),
}

/// A restore shared through a group.
pub(super) struct SharedRestore<'a> {
    pub config: &'a RestoreConfig,
    pub group: &'a WorkerGroup,
    pub target: &'a RestoreTarget,
    pub manifest: &'a BackupManifest,
}

impl SharedRestore<'_> {
    /// Works in the group until the restore is complete (the leader finds nothing left) or the run
    /// stops: joins, restores the assigned partitions, rejoins after each rebalance and once its
    /// partitions are restored; leaves the group at the end.
    pub async fn run(
        &self,
        mut report: RestoreReport,
        shutdown: watch::Receiver<bool>,
    ) -> Result<RestoreReport, EngineError> {
        let (_stop_sender, mut stop) = stop_on_shutdown(shutdown);
        let mut worker = Worker::new(self.target.client.clone(), self.group.clone());
        let mut summary = WorkerReport {
            group: self.group.group_id.clone(),
            worker: worker.name().to_string(),
            ..Default::default()
        };
        let prepared = Mutex::new(Prepared::default());
        let mut owned: Vec<TopicPartition> = Vec::new();
        let mut failure = None;
        let mut state =
            WorkerState { name: worker.name().to_string(), group: self.group.group_id.clone(), ..Default::default() };
        tracing::info!(group = %self.group.group_id, worker = %worker.name(), "joining the group of restore workers");
        loop {
            if *stop.borrow() {
                report.interrupted = true;
                break;
            }
            let joined = tokio::select! {
                joined = worker.join(&owned, || self.lead(&prepared)) => joined,
                _ = stop.changed() => continue,
            };
            let generation = match joined {
                Ok(generation) => generation,
                Err(error) => {
                    failure = Some(error);
                    break;
                }
            };
            summary.generations += 1;
            if generation.finished {
                tracing::info!(group = %self.group.group_id, generation = generation.id, "the restore is complete");
                if generation.leader {
                    summary.finished_the_restore = true;
                    failure = self.finish().await.err();
                }
                break;
            }
            tracing::info!(group = %self.group.group_id, worker = %worker.name(), generation = generation.id,
                leader = generation.leader, partitions = generation.partitions.len(), "joined the group");
            state = WorkerState::of(&worker, &generation);
            self.show(&state, true).await;
            owned = generation.partitions.clone();
            match self.work(&worker, &generation, &mut stop, &mut report).await {
                Waited::Generation(end) => {
                    // Removed, it holds nothing: its old partitions have owners it must not claim back.
                    if matches!(end, GenerationEnd::Removed(_)) {
                        owned.clear();
                    }
                    worker.generation_ended(&end);
                }
                Waited::Done => {
                    owned.clear();
                    worker.finished(&generation);
                }
                Waited::Lost(lost) => {
                    summary.partitions_lost += lost.len() as u64;
                    owned.retain(|partition| !lost.contains(partition));
                }
                Waited::Stopped => report.interrupted = true,
                Waited::Failed(error) => failure = Some(error),
            }
            if failure.is_some() || report.interrupted {
                break;
            }
        }
        worker.leave().await;
        self.show(&state, false).await;
        let prepared = prepared.into_inner().expect("prepared lock");
        report.created_topics = prepared.created.into_iter().collect();
        report.purged_topics = prepared.purged.into_iter().collect();
        report.worker = Some(summary);
        failure.map_or(Ok(report), Err)
    }

    /// Restores `generation`'s partitions until they are done, the generation ends, or the run
    /// stops or fails; then stops them (each at the end of its segment, committed) and collects
    /// their outcomes.
    async fn work(
        &self,
        worker: &Worker,
        generation: &Generation,
        stop: &mut watch::Receiver<bool>,
        report: &mut RestoreReport,
    ) -> Waited {
        let heartbeats = worker.until_generation_ends();
        tokio::pin!(heartbeats);
        if generation.partitions.is_empty() {
            // Nothing to restore in this generation: wait for the next one.
            return tokio::select! {
                end = &mut heartbeats => Waited::Generation(end),
                _ = stop.changed() => Waited::Stopped,
            };
        }
        let planned = tokio::select! {
            end = &mut heartbeats => return Waited::Generation(end),
            _ = stop.changed() => return Waited::Stopped,
            planned = self.plan() => planned,
        };
        let plan = match planned {
            Ok((plan, _)) => plan,
            Err(error) => return Waited::Failed(error),
        };
        let writers = Arc::new(PartitionWriters {
            client: self.target.client.clone(),
            store: self.target.store.clone(),
            group_id: self.group.group_id.clone(),
            assigned: generation.partitions.iter().cloned().collect(),
            unclaimed: generation.unclaimed.iter().cloned().collect(),
        });
        let (generation_stopper, generation_stop) = watch::channel(false);
        let spawned = spawn_partitions(
            self.config,
            self.target,
            self.manifest,
            &plan,
            Vec::new(),
            Writers::Group(writers),
            generation_stop,
        )
        .await;
        report.plan = plan;
        let mut tasks = match spawned {
            Ok(tasks) => tasks,
            Err(error) => return Waited::Failed(error),
        };
        let mut lost = Vec::new();
        let mut waited = loop {
            tokio::select! {
                end = &mut heartbeats => break Waited::Generation(end),
                _ = stop.changed() => break Waited::Stopped,
                joined = tasks.join_next() => match joined {
                    None => break Waited::Done,
                    Some(joined) => match joined.expect("restore tasks do not panic") {
                        Ok(outcome) => {
                            let was_lost = outcome.lost.clone();
                            report.add(outcome);
                            if let Some(partition) = was_lost {
                                lost.push(partition);
                                // Rejoin: the leader gives the partition to whoever holds it now.
                                break Waited::Done;
                            }
                        }
                        Err(error) => break Waited::Failed(error),
                    },
                },
            }
        };
        let _ = generation_stopper.send(true);
        while let Some(joined) = tasks.join_next().await {
            match joined.expect("restore tasks do not panic") {
                Ok(outcome) => {
                    lost.extend(outcome.lost.clone());
                    report.add(outcome);
                }
                Err(error) if !matches!(waited, Waited::Failed(_)) => waited = Waited::Failed(error),
                Err(error) => tracing::warn!(%error, "a partition failed while the worker was stopping"),
            }
        }
        match waited {
            Waited::Done | Waited::Generation(GenerationEnd::Rebalance) if !lost.is_empty() => Waited::Lost(lost),
            other => other,
        }
    }

    /// Writes the worker's state object; a failure is a warning (the restore is unaffected).
    async fn show(&self, state: &WorkerState, running: bool) {
        let board = RestoreWorkerBoard {
            target_cluster_id: self.target.cluster_id.clone(),
            updated_at_ms: now_ms(),
            running,
            worker: state.clone(),
        };
        let key = restore_worker_key(&self.target.cluster_id, &state.name);
        if let Err(error) = self.target.store.put(&key, to_json(&board)).await {
            tracing::warn!(%key, %error, "could not write the restore worker's state object; the restore is unaffected");
        }
    }

    /// The plan against the target as it is now, refused with its conflicts.
    async fn plan(&self) -> Result<(RestorePlan, Arc<ClusterMetadata>), EngineError> {
        let client = &self.target.client;
        let metadata = client.refresh_metadata(None).await.map_err(EngineError::kafka("reading target metadata"))?;
        let mut plan = build_plan(self.config, self.manifest, &metadata);
        let switch = self.config.settings.switch_to_create_time;
        timestamps::check_timestamp_types(self.target, &metadata, &mut plan, switch).await?;
        if !plan.conflicts.is_empty() {
            return Err(EngineError::Conflicts { conflicts: plan.conflicts });
        }
        Ok((plan, metadata))
    }

    /// The leader's part of a join: prepares the target (topics created, purged and switched to
    /// CreateTime as the plan says, before any worker writes), then weighs the target partitions
    /// left to restore by their records; `None` once every partition is restored.
    async fn lead(&self, prepared: &Mutex<Prepared>) -> Result<Option<BTreeMap<TopicPartition, u64>>, EngineError> {
        let (plan, metadata) = self.plan().await?;
        let created = create_topics(&self.target.client, &plan).await?;
        let purged = purge_targets(self.target, &plan, &metadata).await?;
        timestamps::switch_to_create_time(self.target, &plan).await?;
        {
            let mut prepared = prepared.lock().expect("prepared lock");
            prepared.created.extend(created.into_iter().map(|(topic, _)| topic));
            prepared.purged.extend(purged);
        }
        let left = self.left_to_restore(&plan).await?;
        Ok((!left.is_empty()).then(|| weights(&left)))
    }

    /// Records left to restore per target partition (those with some): the records of the planned
    /// segments that have no commit record yet, from one listing of the restore state.
    async fn left_to_restore(&self, plan: &RestorePlan) -> Result<BTreeMap<TopicPartition, u64>, EngineError> {
        let cluster_id = &self.target.cluster_id;
        let committed: BTreeSet<String> = self
            .target
            .store
            .list(&format!("{RESTORES_DIR}/{cluster_id}"))
            .await?
            .into_iter()
            .map(|object| object.key)
            .collect();
        let settings = &self.config.settings;
        let mut left = BTreeMap::new();
        for topic in &plan.topics {
            let Some(backed_up) = self.manifest.topic(&topic.source) else { continue };
            for partition in &topic.partitions {
                let dir = restore_state_dir(cluster_id, &topic.target, Some(partition.target));
                let segments = backed_up.partitions.iter().filter(|p| p.partition == partition.source);
                let records: i64 = segments
                    .flat_map(|p| &p.segments)
                    .filter(|s| settings.may_restore(&topic.source, partition.source, s))
                    .filter(|s| !committed.contains(&restore_commit_key(&dir, partition.source, s.start_offset)))
                    .map(|s| s.record_count)
                    .sum();
                if records > 0 {
                    left.insert(TopicPartition::new(&topic.target, partition.target), records as u64);
                }
            }
        }
        Ok(left)
    }

    /// The finishing leader's duties: the topics switched to CreateTime go back to LogAppendTime,
    /// and the backup's ACLs and quotas are restored when the restore recreates them.
    async fn finish(&self) -> Result<(), EngineError> {
        let (mut plan, _) = self.plan().await?;
        timestamps::switch_back(self.target, &plan).await?;
        access::plan_access(self.target, self.config, self.manifest, &mut plan).await?;
        access::restore_access(self.target, &plan).await
    }
}
