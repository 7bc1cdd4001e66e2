//! Processes that share one backup through Kafka's own group coordinator: a worker joins a group
//! with a protocol type of ours (never mixed with consumer groups), the leader divides the
//! partitions (`assignment`), heartbeats keep the generation, and a rebalance or removal ends it.

mod assignment;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::ResponseError;

pub use assignment::{assign, by_topic, flatten, weights, PartitionsByTopic, WorkerAssignment, WorkerClaim};

use crate::error::EngineError;
use crate::kafka::{JoinTerms, KafkaClient, KafkaError, Membership};
use crate::metrics::metrics;
use crate::retry::Retriable;
use crate::topics::TopicPartition;

/// The group protocol type of kafka-backup workers: a consumer group of the same name is refused
/// by the coordinator (INCONSISTENT_GROUP_PROTOCOL) instead of being mixed with ours.
pub const PROTOCOL_TYPE: &str = "kafka-backup";
/// The one assignment protocol (its JSON claim and assignment formats are versioned by name).
const PROTOCOL_NAME: &str = "weighted-sticky-v1";
/// Wait between two attempts to join while the coordinator is moving or loading.
const JOIN_BACKOFF: Duration = Duration::from_millis(500);

/// How a process takes part in a group of workers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerGroup {
    /// The group's id on the source cluster.
    pub group_id: String,
    /// Static membership (KIP-345): a restarted worker with the same id gets its partitions back
    /// without a rebalance, if it returns within the session timeout.
    pub instance_id: Option<String>,
    /// A worker not heard of for this long loses its partitions.
    pub session_timeout: Duration,
    /// How long a rebalance waits for the workers to commit their open segments and rejoin.
    pub rebalance_timeout: Duration,
}

impl WorkerGroup {
    /// How often a worker tells the coordinator it is alive: five times per session timeout.
    pub fn heartbeat_interval(&self) -> Duration {
        self.session_timeout / 5
    }

    /// The worker's name in logs, metrics and `describe`: its static id, else host and process id.
    pub fn worker_name(&self) -> String {
        match &self.instance_id {
            Some(id) => id.clone(),
            None => {
                let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
                format!("{}-{}", host.trim(), std::process::id())
            }
        }
    }
}

/// A worker's place in its group, as its state object shows it (`describe` lists them).
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WorkerState {
    /// The worker's name (its static id, or host and process id).
    pub name: String,
    /// The group.
    pub group: String,
    /// Its member id in the current generation.
    pub member_id: String,
    /// The generation.
    pub generation: i32,
    /// Whether it leads the group.
    pub leader: bool,
    /// The partitions it holds.
    pub partitions: PartitionsByTopic,
}

impl WorkerState {
    /// The state of `worker` in `generation`.
    pub fn of(worker: &Worker, generation: &Generation) -> Self {
        Self {
            name: worker.name.clone(),
            group: worker.group.group_id.clone(),
            member_id: generation.member_id.clone(),
            generation: generation.id,
            leader: generation.leader,
            partitions: by_topic(&generation.partitions),
        }
    }
}

/// One generation of the group, as this worker sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generation {
    /// The generation id.
    pub id: i32,
    /// This worker's member id in it.
    pub member_id: String,
    /// Whether this worker leads it (and so takes the group snapshots and the metadata).
    pub leader: bool,
    /// The partitions this worker works on.
    pub partitions: Vec<TopicPartition>,
    /// Those of `partitions` no member held in the previous generation: their last worker left
    /// the group or was removed from it, and may still be writing.
    pub unclaimed: Vec<TopicPartition>,
    /// True when the leader found no work left (a restore that is complete): every worker stops.
    pub finished: bool,
}

/// Why a generation ended.
#[derive(Debug)]
pub enum GenerationEnd {
    /// The group rebalances: commit, then join again.
    Rebalance,
    /// The coordinator removed this worker (it was silent past the session timeout): its
    /// partitions belong to others now.
    Removed(KafkaError),
}

/// A process's membership in a group of workers.
pub struct Worker {
    client: Arc<KafkaClient>,
    group: WorkerGroup,
    member: Membership,
    name: String,
    /// The generation whose work this worker finished, told at its next join.
    finished_generation: Option<i32>,
}

impl Worker {
    /// A worker of `group` that has not joined yet.
    pub fn new(client: Arc<KafkaClient>, group: WorkerGroup) -> Self {
        let member = Membership::new(&group.group_id, group.instance_id.as_deref());
        let name = group.worker_name();
        Self { client, group, member, name, finished_generation: None }
    }

    /// The worker's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn terms(&self, owned: &[TopicPartition]) -> Result<JoinTerms, EngineError> {
        let claim = WorkerClaim {
            worker: self.name.clone(),
            owned: by_topic(owned),
            finished_generation: self.finished_generation,
        };
        Ok(JoinTerms {
            protocol_type: PROTOCOL_TYPE.into(),
            protocol_name: PROTOCOL_NAME.into(),
            metadata: Bytes::from(serde_json::to_vec(&claim).map_err(|e| self.failed(e.to_string()))?),
            session_timeout: self.group.session_timeout,
            rebalance_timeout: self.group.rebalance_timeout,
        })
    }

    fn failed(&self, detail: String) -> EngineError {
        EngineError::Workers { group: self.group.group_id.clone(), detail }
    }

    /// Joins the next generation, telling the leader what this worker held (`owned`); as the leader,
    /// divides the work `weigh` returns (each partition and its weight; `None` when the work is
    /// finished), heartbeating meanwhile. Retries while the coordinator moves or loads, or the group
    /// rebalances again, within the rebalance timeout.
    pub async fn join<W, F>(&mut self, owned: &[TopicPartition], weigh: W) -> Result<Generation, EngineError>
    where
        W: Fn() -> F,
        F: Future<Output = Result<Option<BTreeMap<TopicPartition, u64>>, EngineError>>,
    {
        metrics().set_ready(false);
        let terms = self.terms(owned)?;
        let deadline = Instant::now() + self.group.rebalance_timeout + self.group.session_timeout;
        loop {
            match self.join_once(&terms, &weigh).await {
                Ok(generation) => {
                    let labels = [self.group.group_id.as_str()];
                    metrics().worker_generation.with_label_values(&labels).set(i64::from(generation.id));
                    metrics().worker_leader.with_label_values(&labels).set(i64::from(generation.leader));
                    metrics().worker_partitions.with_label_values(&labels).set(generation.partitions.len() as i64);
                    metrics().worker_assigned.reset();
                    for tp in &generation.partitions {
                        let partition = tp.partition.to_string();
                        metrics().worker_assigned.with_label_values(&[tp.topic.as_str(), &partition]).set(1);
                    }
                    metrics().rebalances.with_label_values(&labels).inc();
                    metrics().set_ready(!generation.partitions.is_empty());
                    return Ok(generation);
                }
                Err(JoinFailure::Engine(error)) => return Err(error),
                Err(JoinFailure::Kafka(error)) => {
                    let fenced = error.response_error() == Some(ResponseError::FencedInstanceId);
                    if fenced {
                        return Err(self.failed(format!(
                            "another process runs with group_instance_id {:?}: give each worker its own ({error})",
                            self.member.instance_id.as_deref().unwrap_or_default()
                        )));
                    }
                    if matches!(
                        error.response_error(),
                        Some(ResponseError::UnknownMemberId | ResponseError::IllegalGeneration)
                    ) {
                        self.member.member_id.clear();
                    }
                    if !rejoinable(&error) || Instant::now() + JOIN_BACKOFF > deadline {
                        return Err(self.failed(format!("cannot join: {error}")));
                    }
                    tracing::debug!(group = %self.group.group_id, %error, "joining the group again");
                    tokio::time::sleep(JOIN_BACKOFF).await;
                }
            }
        }
    }

    async fn join_once<W, F>(&mut self, terms: &JoinTerms, weigh: &W) -> Result<Generation, JoinFailure>
    where
        W: Fn() -> F,
        F: Future<Output = Result<Option<BTreeMap<TopicPartition, u64>>, EngineError>>,
    {
        let joined = self.client.join_group(&mut self.member, terms).await?;
        let leader = joined.leader == self.member.member_id;
        let assignments = if leader && !joined.skip_assignment {
            let mut claims = BTreeMap::new();
            for member in &joined.members {
                let claim: WorkerClaim = serde_json::from_slice(&member.metadata).map_err(|e| {
                    self.failed(format!(
                        "member {} sent a claim this version cannot read ({e}): run one kafka-backup version per group",
                        member.member_id
                    ))
                })?;
                claims.insert(member.member_id.clone(), claim);
            }
            let work = self.heartbeating(weigh()).await?;
            let finished = work.is_none();
            let work = work.unwrap_or_default();
            let claimed: BTreeSet<TopicPartition> = claims.values().flat_map(|c| flatten(&c.owned)).collect();
            let divided = assign(&claims, &work);
            for (member, partitions) in &divided {
                let worker = claims.get(member).map_or("?", |c| c.worker.as_str());
                tracing::info!(group = %self.group.group_id, generation = self.member.generation, %worker,
                    partitions = partitions.len(), "assigned");
            }
            divided
                .into_iter()
                .map(|(member, partitions)| {
                    let unclaimed = partitions.iter().filter(|tp| !claimed.contains(*tp));
                    let assignment = WorkerAssignment {
                        partitions: by_topic(&partitions),
                        unclaimed: by_topic(unclaimed),
                        finished,
                    };
                    let body = serde_json::to_vec(&assignment).expect("an assignment serializes");
                    (member, Bytes::from(body))
                })
                .collect()
        } else {
            Vec::new()
        };
        let mine = self.client.sync_group(&self.member, terms, assignments).await?;
        let assignment: WorkerAssignment = if mine.is_empty() {
            WorkerAssignment::default()
        } else {
            serde_json::from_slice(&mine)
                .map_err(|e| self.failed(format!("the leader sent an assignment this version cannot read ({e})")))?
        };
        Ok(Generation {
            id: self.member.generation,
            member_id: self.member.member_id.clone(),
            leader,
            partitions: flatten(&assignment.partitions),
            unclaimed: flatten(&assignment.unclaimed),
            finished: assignment.finished,
        })
    }

    /// Runs `work` (the leader's weighing and preparation) while heartbeating, as it may outlast a
    /// session timeout; a failed heartbeat shows again at SyncGroup, which ends the join.
    async fn heartbeating<F: Future>(&self, work: F) -> F::Output {
        let mut ticker = tokio::time::interval(self.group.heartbeat_interval());
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        tokio::pin!(work);
        loop {
            tokio::select! {
                done = &mut work => return done,
                _ = ticker.tick() => {
                    if let Err(error) = self.client.heartbeat(&self.member).await {
                        tracing::debug!(group = %self.group.group_id, %error, "heartbeat while assigning");
                    }
                }
            }
        }
    }

    /// Heartbeats every heartbeat interval until the generation ends, and says why.
    pub async fn until_generation_ends(&self) -> GenerationEnd {
        let mut ticker = tokio::time::interval(self.group.heartbeat_interval());
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            match self.client.heartbeat(&self.member).await {
                Ok(()) => {}
                Err(error) => match error.response_error() {
                    Some(ResponseError::RebalanceInProgress) => return GenerationEnd::Rebalance,
                    Some(
                        ResponseError::UnknownMemberId
                        | ResponseError::IllegalGeneration
                        | ResponseError::FencedInstanceId,
                    ) => return GenerationEnd::Removed(error),
                    // The coordinator moved or a connection dropped: rejoin through the new one.
                    _ if rejoinable(&error) => return GenerationEnd::Rebalance,
                    _ => return GenerationEnd::Removed(error),
                },
            }
        }
    }

    /// Says, at the next join, that this worker finished `generation`'s work: the coordinator then
    /// starts a new generation, whose leader gives out what is left (or ends the work).
    pub fn finished(&mut self, generation: &Generation) {
        self.finished_generation = Some(generation.id);
    }

    /// After `end`, forgets the member id if the coordinator removed this worker.
    pub fn generation_ended(&mut self, end: &GenerationEnd) {
        if let GenerationEnd::Removed(error) = end {
            tracing::warn!(group = %self.group.group_id, worker = %self.name, %error,
                "removed from the group (silent past the session timeout?): its partitions were given to other workers");
            self.member.member_id.clear();
        }
    }

    /// Leaves the group so that the partitions move at once. A static member stays: its restart
    /// within the session timeout gets its partitions back without a rebalance (KIP-345).
    pub async fn leave(&self) {
        metrics().set_ready(false);
        if self.member.instance_id.is_some() || self.member.member_id.is_empty() {
            return;
        }
        if let Err(error) = self.client.leave_group(&self.member).await {
            tracing::warn!(group = %self.group.group_id, %error, "could not leave the group; its partitions move after the session timeout");
        }
    }
}

/// Counts `partition` as lost to another worker (`kafka_backup_worker_partitions_lost_total`).
pub fn count_lost(partition: &TopicPartition) {
    let number = partition.partition.to_string();
    metrics().partitions_lost.with_label_values(&[partition.topic.as_str(), &number]).inc();
}

/// Why one join attempt failed.
enum JoinFailure {
    Kafka(KafkaError),
    Engine(EngineError),
}

impl From<KafkaError> for JoinFailure {
    fn from(error: KafkaError) -> Self {
        Self::Kafka(error)
    }
}

impl From<EngineError> for JoinFailure {
    fn from(error: EngineError) -> Self {
        Self::Engine(error)
    }
}

/// Errors after which joining again may succeed.
fn rejoinable(error: &KafkaError) -> bool {
    error.is_retriable()
        || matches!(
            error.response_error(),
            Some(
                ResponseError::RebalanceInProgress
                    | ResponseError::UnknownMemberId
                    | ResponseError::IllegalGeneration
                    | ResponseError::MemberIdRequired
            )
        )
}
