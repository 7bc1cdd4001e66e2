//! A continuous backup shared by the workers of a group (`backup.group_id`): each generation, the
//! partitions this worker is assigned are backed up from their committed segments; at the
//! generation's end they commit what they hold and stop before the worker rejoins.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::incarnations::Incarnations;
use super::published::ProgressGroup;
use super::{
    capture_metadata, checkpoint_periodically, finish_run, published_progress, write_progress, BackupConfig,
    BackupReport, GroupSnapshotter, PartitionRun, PartitionTasks, ProgressBoard, WorkerState,
};
use crate::clock::now_ms;
use crate::error::EngineError;
use crate::kafka::{IsolationLevel, KafkaClient, OffsetSpec, TopicMetadata};
use crate::layout::worker_progress_key;
use crate::manifest::BackupManifest;
use crate::stop_signal::stop_on_shutdown;
use crate::storage::BackupStore;
use crate::topics::TopicPartition;
use crate::worker_group::{by_topic, weights, Generation, GenerationEnd, Worker, WorkerGroup};

/// What the workers of one process share.
pub(super) struct SharedRun<'a> {
    pub config: &'a BackupConfig,
    pub group: &'a WorkerGroup,
    pub client: &'a Arc<KafkaClient>,
    pub store: &'a BackupStore,
    pub topics: &'a [&'a TopicMetadata],
    pub incarnations: Arc<Incarnations>,
}

/// What a worker records across generations: its progress object (and where it is written) and
/// the group snapshots it takes while it leads.
struct WorkerRecords {
    key: String,
    board: Arc<Mutex<ProgressBoard>>,
    snapshotter: Arc<GroupSnapshotter>,
}

/// A generation's stop signal, partition tasks, checkpoint task and progress-group publisher.
type GenerationTasks = (watch::Sender<bool>, PartitionTasks, JoinHandle<()>, Option<Arc<ProgressGroup>>);

/// How a generation's wait ended.
enum Waited {
    Generation(GenerationEnd),
    Stopped,
    Failed(EngineError),
}

impl SharedRun<'_> {
    /// Works in the group until `shutdown`: joins, backs up the assigned partitions, and rejoins
    /// after each rebalance; leaves the group at the end.
    pub async fn run(
        &self,
        manifest: BackupManifest,
        shutdown: watch::Receiver<bool>,
    ) -> Result<BackupReport, EngineError> {
        let (_stop_sender, mut stop) = stop_on_shutdown(shutdown);
        let mut worker = Worker::new(self.client.clone(), self.group.clone());
        let records = WorkerRecords {
            key: worker_progress_key(worker.name()),
            board: Arc::new(Mutex::new(ProgressBoard {
                updated_at_ms: now_ms(),
                running: true,
                checkpoint_interval_ms: self.config.settings.checkpoint_interval.as_millis() as u64,
                ..ProgressBoard::default()
            })),
            snapshotter: Arc::new(GroupSnapshotter::new(self.config, self.client, self.store, self.topics)),
        };
        let mut report = BackupReport {
            backup_id: self.config.location.backup_id.clone(),
            location: self.store.description().to_string(),
            topics: self.topics.len(),
            ..BackupReport::default()
        };
        let mut owned: Vec<TopicPartition> = Vec::new();
        let mut failure = None;
        tracing::info!(group = %self.group.group_id, worker = %worker.name(), "joining the group of workers");
        while failure.is_none() && !*stop.borrow() {
            let joined = tokio::select! {
                joined = worker.join(&owned, || self.pending_work(&manifest)) => joined,
                _ = stop.changed() => break,
            };
            let generation = match joined {
                Ok(generation) => generation,
                Err(error) => {
                    failure = Some(error);
                    break;
                }
            };
            owned = generation.partitions.clone();
            self.show(&worker, &generation, &records.board);
            if let Err(error) = write_progress(self.store, &records.key, &records.board).await {
                tracing::warn!(%error, "could not write the worker's progress; data progress is unaffected");
            }
            let end = self.work(&worker, &manifest, &generation, &records, &mut stop, &mut report).await;
            match end {
                Ok(Waited::Generation(end)) => {
                    // Removed, it holds nothing: its old partitions have owners it must not claim back.
                    if matches!(end, GenerationEnd::Removed(_)) {
                        owned.clear();
                    }
                    worker.generation_ended(&end);
                }
                Ok(Waited::Stopped) => break,
                Ok(Waited::Failed(error)) | Err(error) => failure = Some(error),
            }
        }
        worker.leave().await;
        report.group_snapshots = records.snapshotter.taken.load(std::sync::atomic::Ordering::Relaxed);
        let consolidated = BackupManifest::load(self.store).await?.unwrap_or(manifest);
        finish_run(self.store, (&records.key, &records.board), consolidated).await?;
        match failure {
            Some(error) => Err(error),
            None => Ok(report),
        }
    }

    /// Backs up `generation`'s partitions until it ends (or the run stops or fails), then stops
    /// them: each commits what it holds. Heartbeats go on from the start, also while the
    /// generation is set up: at thousands of partitions, reading the resume points and the
    /// leader's duties can outlast a session timeout.
    async fn work(
        &self,
        worker: &Worker,
        known: &BackupManifest,
        generation: &Generation,
        records: &WorkerRecords,
        stop: &mut watch::Receiver<bool>,
        report: &mut BackupReport,
    ) -> Result<Waited, EngineError> {
        let heartbeats = worker.until_generation_ends();
        tokio::pin!(heartbeats);
        let set_up = tokio::select! {
            end = &mut heartbeats => return Ok(Waited::Generation(end)),
            _ = stop.changed() => return Ok(Waited::Stopped),
            set_up = self.set_up(known, generation, records, report) => set_up?,
        };
        let (generation_stopper, mut tasks, checkpoints, published) = set_up;
        let mut lost = 0;
        let waited = loop {
            tokio::select! {
                end = &mut heartbeats => break Waited::Generation(end),
                _ = stop.changed() => break Waited::Stopped,
                Some(joined) = tasks.join_next(), if !tasks.is_empty() => {
                    match joined.expect("partition tasks do not panic") {
                        Ok((name, outcome)) => {
                            lost += usize::from(outcome.lost);
                            let was_lost = outcome.lost;
                            report.add(name, outcome);
                            if was_lost {
                                // Rejoin: the leader gives the partition to whoever holds it now.
                                break Waited::Generation(GenerationEnd::Rebalance);
                            }
                        }
                        Err(error) => break Waited::Failed(error),
                    }
                }
            }
        };
        let _ = generation_stopper.send(true);
        let mut waited = waited;
        while let Some(joined) = tasks.join_next().await {
            match joined.expect("partition tasks do not panic") {
                Ok((name, outcome)) => {
                    lost += usize::from(outcome.lost);
                    report.add(name, outcome);
                }
                Err(error) if !matches!(waited, Waited::Failed(_)) => waited = Waited::Failed(error),
                Err(error) => tracing::warn!(%error, "a partition failed while the worker was stopping"),
            }
        }
        checkpoints.abort();
        // A worker removed from the group publishes nothing more: its positions may be behind
        // those the partitions' new owners publish.
        let removed = matches!(waited, Waited::Generation(GenerationEnd::Removed(_)));
        if let Some(published) = published.as_ref().filter(|_| !removed) {
            published.publish(&records.board).await;
        }
        if lost > 0 {
            tracing::warn!(group = %self.group.group_id, lost, generation = generation.id,
                "partitions lost to another worker's commit; nothing is written twice");
        }
        Ok(waited)
    }

    /// Starts the generation: the leader's duties, then a task per assigned partition resuming
    /// from the commit records read now (the partitions may come from a worker that committed
    /// since), and the checkpoints. Returns the generation's stop, the tasks, the checkpoint task
    /// and the progress-group publisher.
    async fn set_up(
        &self,
        known: &BackupManifest,
        generation: &Generation,
        records: &WorkerRecords,
        report: &mut BackupReport,
    ) -> Result<GenerationTasks, EngineError> {
        let manifest = if generation.leader {
            let (manifest, warnings) = self.lead(known, &records.snapshotter).await?;
            report.warnings.extend(warnings);
            manifest
        } else {
            self.committed(known).await?
        };
        let (generation_stopper, generation_stop) = watch::channel(false);
        let run = PartitionRun {
            config: self.config,
            client: self.client,
            store: self.store,
            manifest: &manifest,
            incarnations: &self.incarnations,
            stop: generation_stop,
            progress: &records.board,
        };
        let (tasks, count) = run.spawn(&by_topic(&generation.partitions)).await?;
        report.partitions = report.partitions.max(count);
        let published = published_progress(self.config, self.client);
        let checkpoints = tokio::spawn(checkpoint_periodically(
            self.store.clone(),
            (records.key.clone(), records.board.clone()),
            self.config.settings.checkpoint_interval,
            generation.leader.then(|| records.snapshotter.clone()),
            published.clone(),
        ));
        Ok((generation_stopper, tasks, checkpoints, published))
    }

    /// The manifest with every commit made so far (`known` while none is saved yet).
    async fn committed(&self, known: &BackupManifest) -> Result<BackupManifest, EngineError> {
        Ok(BackupManifest::load(self.store).await?.unwrap_or_else(|| known.clone()))
    }

    /// The leader's duties at the start of its generation: the topics' metadata into the manifest
    /// (saved) and a consumer-group snapshot; returns the manifest and their warnings.
    async fn lead(
        &self,
        known: &BackupManifest,
        snapshotter: &GroupSnapshotter,
    ) -> Result<(BackupManifest, Vec<String>), EngineError> {
        let mut manifest = self.committed(known).await?;
        let mut warnings = capture_metadata(self.client, &mut manifest, self.topics, &self.incarnations).await?;
        manifest.save(self.store).await?;
        let (_, snapshot_warnings) = snapshotter.snapshot().await?;
        warnings.extend(snapshot_warnings);
        Ok((manifest, warnings))
    }

    /// The work the leader divides: each partition of the selected topics and its weight (the
    /// records between its backed-up offset and its high watermark, plus an even share).
    async fn pending_work(&self, known: &BackupManifest) -> Result<Option<BTreeMap<TopicPartition, u64>>, EngineError> {
        let manifest = self.committed(known).await?;
        let mut pending = BTreeMap::new();
        for topic in self.topics {
            let partitions: Vec<i32> = topic.partitions.keys().copied().collect();
            let ends = self
                .client
                .list_offsets(&topic.name, &partitions, OffsetSpec::Latest, IsolationLevel::ReadCommitted)
                .await
                .map_err(EngineError::kafka(&format!("reading the end offsets of {}", topic.name)))?;
            let (stored_topic, _) = self.incarnations.backed_up_as(&manifest, &topic.name).await;
            for (partition, end) in ends {
                let next = manifest.partition(&stored_topic, partition).and_then(|p| p.next_offset()).unwrap_or(0);
                pending.insert(TopicPartition::new(&topic.name, partition), (end - next).max(0) as u64);
            }
        }
        // A continuous backup is never finished.
        Ok(Some(weights(&pending)))
    }

    /// Shows the generation in the worker's progress object, logs and metrics.
    fn show(&self, worker: &Worker, generation: &Generation, progress: &Mutex<ProgressBoard>) {
        tracing::info!(group = %self.group.group_id, worker = %worker.name(), generation = generation.id,
            leader = generation.leader, partitions = generation.partitions.len(), "joined the group");
        let mut board = progress.lock().expect("progress lock");
        board.partitions.clear();
        board.updated_at_ms = now_ms();
        board.worker = Some(WorkerState::of(worker, generation));
    }
}
