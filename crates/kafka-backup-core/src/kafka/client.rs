//! The cluster client: bootstrap, a connection pool keyed by broker address, the metadata cache,
//! and routing (any broker, a partition's leader, a group's coordinator) under the retry policy.
//! The typed API calls live beside it (`log.rs`, `admin.rs`, `groups.rs`).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{MetadataRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::config::ClientConfig;
use super::connection::BrokerConnection;
use super::metadata::{BrokerInfo, ClusterMetadata};
use super::KafkaError;
use crate::metrics::{metrics, Timer};
use crate::retry::Retriable;

/// Which broker a request must go to.
#[derive(Debug, Clone, Copy)]
pub(super) enum Route<'a> {
    /// Any live broker.
    Any,
    /// The leader of a topic-partition.
    Leader(&'a str, i32),
    /// The replica that serves fetches of a topic-partition (its leader, or the read replica the
    /// leader named: [`KafkaClient::fetch_node`]), on connections of their own for fetches: a
    /// broker answers one request of a connection at a time, and a fetch may wait there for data
    /// (long poll), so other requests (metadata, group offsets, produce) must not queue behind it.
    Fetch(&'a str, i32),
    /// The leader of a topic-partition, on connections of their own for produces.
    Produce(&'a str, i32),
    /// The broker at an address (the coordinator of a batch of groups).
    Broker(&'a str),
    /// The broker of a node id (the leader of a batch of partitions).
    Node(i32),
    /// The controller the metadata names (any broker when it names none: it forwards).
    Controller,
    /// The coordinator of a consumer group.
    Coordinator(&'a str),
    /// The transaction coordinator of a transactional id.
    TransactionCoordinator(&'a str),
}

/// What a coordinator coordinates: a group, or a transactional id (FindCoordinator's key types).
#[derive(Debug, Clone, Copy)]
pub(super) enum Coordinated<'a> {
    Group(&'a str),
    Transaction(&'a str),
}

impl Coordinated<'_> {
    /// FindCoordinator's key type.
    pub(super) fn key_type(self) -> i8 {
        match self {
            Self::Group(_) => 0,
            Self::Transaction(_) => 1,
        }
    }

    /// A key of the same kind.
    pub(super) fn with_key(self, key: &str) -> Coordinated<'_> {
        match self {
            Self::Group(_) => Coordinated::Group(key),
            Self::Transaction(_) => Coordinated::Transaction(key),
        }
    }

    /// The group or transactional id.
    pub(super) fn key(&self) -> &str {
        match self {
            Self::Group(key) | Self::Transaction(key) => key,
        }
    }

    /// What error messages name: ` for group G` or ` for transactional id T`.
    pub(super) fn context(&self) -> String {
        match self {
            Self::Group(group) => format!(" for group {group}"),
            Self::Transaction(id) => format!(" for transactional id {id}"),
        }
    }

    /// The coordinator cache's key (a group and a transactional id may share a name).
    fn cache_key(&self) -> String {
        format!("{}:{}", self.key_type(), self.key())
    }
}

/// The one answer of a request that asked for one key (see [`KafkaClient::per_broker`]).
pub(super) fn only_answer<K, T>(answers: Vec<(K, Result<T, KafkaError>)>) -> Result<T, KafkaError> {
    answers.into_iter().next().map(|(_, answer)| answer).expect("an answer per key asked")
}

/// Each of `asked` (the topics, groups, ... a request named: `what`) with its entry of
/// `answered`, in the order asked; one the response left out gets an error naming `api`.
pub(super) fn in_asked_order<T>(
    (api, address, what): (&'static str, &str, &str),
    asked: &[String],
    mut answered: HashMap<String, Result<T, KafkaError>>,
) -> Vec<(String, Result<T, KafkaError>)> {
    let answer = |key: &String| {
        let missing = || KafkaError::no_answer(api, address, format!("no result for {what} {key}"));
        (key.clone(), answered.remove(key).unwrap_or_else(|| Err(missing())))
    };
    asked.iter().map(answer).collect()
}

/// Connections per broker for fetches, and as many for produces: a broker answers the requests
/// of one connection one at a time, so the partitions of a broker are spread over a few (a
/// partition always uses the same one, which keeps its produces in order), and many partitions
/// with small requests are not served one request at a time; the count stays bounded however
/// many partitions there are.
const LANES: i32 = 4;

/// Pool key suffix of the connection that carries `kind` requests of `partition`.
fn lane(kind: &str, partition: i32) -> String {
    format!("#{kind}-{}", partition.rem_euclid(LANES))
}

/// A client for one Kafka cluster. Cheap to share behind an `Arc`; all methods take `&self`.
pub struct KafkaClient {
    config: ClientConfig,
    connections: Mutex<HashMap<String, Arc<BrokerConnection>>>,
    metadata: RwLock<Arc<ClusterMetadata>>,
    coordinators: Mutex<HashMap<String, BrokerInfo>>,
    /// KIP-392: the replica each partition's leader named for fetches from this client's rack, and
    /// since when.
    read_replicas: Mutex<HashMap<(String, i32), (i32, Instant)>>,
}

/// How long a read replica named by a leader is used before the leader is asked again (Kafka's
/// consumers keep it for `metadata.max.age.ms`, 5 minutes).
const READ_REPLICA_LIFETIME: Duration = Duration::from_secs(300);

impl KafkaClient {
    /// Validates `config` and reaches the cluster through the first bootstrap server that
    /// answers, retrying until `bootstrap_timeout`; the error names every server tried.
    pub async fn connect(config: ClientConfig) -> Result<Self, KafkaError> {
        config.validate()?;
        let client = Self {
            config,
            connections: Mutex::new(HashMap::new()),
            metadata: RwLock::new(Arc::new(ClusterMetadata::default())),
            coordinators: Mutex::new(HashMap::new()),
            read_replicas: Mutex::new(HashMap::new()),
        };
        client.bootstrap().await?;
        Ok(client)
    }

    /// Tries the bootstrap servers in turn until one answers. A round in which every server failed
    /// in a way a retry cannot mend (a TLS refusal, an unsupported API) ends at once with the first
    /// such error: no retry storm against a broker that says no.
    async fn bootstrap(&self) -> Result<(), KafkaError> {
        let started = Instant::now();
        let mut last_error = String::from("no attempt finished");
        let attempt_all = async {
            let mut round = 0;
            loop {
                let mut lasting: Option<KafkaError> = None;
                let mut all_lasting = true;
                for server in &self.config.bootstrap_servers {
                    match self.fetch_metadata_from(server, Some(&[])).await {
                        Ok(metadata) => {
                            self.store_metadata(metadata, false);
                            return Ok(());
                        }
                        Err(error) => {
                            tracing::debug!(%server, %error, "bootstrap server did not answer");
                            last_error = format!("{server}: {error}");
                            if error.is_retriable() {
                                all_lasting = false;
                            } else {
                                lasting.get_or_insert(error);
                            }
                        }
                    }
                }
                if let (true, Some(error)) = (all_lasting, lasting) {
                    return Err(error);
                }
                tokio::time::sleep(self.config.retry.backoff(round)).await;
                round += 1;
            }
        };
        match tokio::time::timeout(self.config.bootstrap_timeout, attempt_all).await {
            Ok(answered) => answered,
            Err(_) => Err(KafkaError::BootstrapFailed {
                servers: self.config.bootstrap_servers.join(", "),
                elapsed: started.elapsed(),
                last_error,
            }),
        }
    }

    /// The client's settings.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// The cached metadata, without a round trip.
    pub fn cached_metadata(&self) -> Arc<ClusterMetadata> {
        self.metadata.read().expect("metadata lock").clone()
    }

    /// Fresh metadata for `topics` (all topics when `None`), merged into the cache.
    pub async fn refresh_metadata(&self, topics: Option<&[String]>) -> Result<Arc<ClusterMetadata>, KafkaError> {
        let fresh = self
            .config
            .retry
            .run("Metadata", || async {
                let connection = self.any_connection().await?;
                self.fetch_metadata_from(connection.address(), topics).await
            })
            .await?;
        Ok(self.store_metadata(fresh, topics.is_none()))
    }

    fn store_metadata(&self, fresh: ClusterMetadata, full: bool) -> Arc<ClusterMetadata> {
        let mut cache = self.metadata.write().expect("metadata lock");
        let mut merged = (**cache).clone();
        merged.merge(fresh, full);
        *cache = Arc::new(merged);
        cache.clone()
    }

    /// Drops a topic from the cache so that the next routing of it asks the cluster again (after
    /// an error that says its leaders moved).
    pub fn forget_topic(&self, topic: &str) {
        let mut cache = self.metadata.write().expect("metadata lock");
        if cache.topics.contains_key(topic) {
            let mut pruned = (**cache).clone();
            pruned.topics.remove(topic);
            *cache = Arc::new(pruned);
        }
    }

    async fn fetch_metadata_from(
        &self,
        address: &str,
        topics: Option<&[String]>,
    ) -> Result<ClusterMetadata, KafkaError> {
        let connection = self.connection(address).await?;
        let request = MetadataRequest::default()
            .with_topics(topics.map(|names| {
                names
                    .iter()
                    .map(|name| {
                        MetadataRequestTopic::default().with_name(Some(TopicName(StrBytes::from_string(name.clone()))))
                    })
                    .collect()
            }))
            .with_allow_auto_topic_creation(false);
        let response = connection.send(&request).await?;
        ClusterMetadata::from_response(&response, topics, address)
    }

    /// A pooled connection to `address`, opened (or reopened after a failure) on demand.
    pub(super) async fn connection(&self, address: &str) -> Result<Arc<BrokerConnection>, KafkaError> {
        self.connection_in(address, "").await
    }

    /// A pooled connection to `address` in `lane` (`""`, or one of [`lane`]'s).
    async fn connection_in(&self, address: &str, lane: &str) -> Result<Arc<BrokerConnection>, KafkaError> {
        let key = format!("{address}{lane}");
        if let Some(existing) = self.connections.lock().expect("pool lock").get(&key) {
            if !existing.is_closed() {
                return Ok(existing.clone());
            }
        }
        let fresh = Arc::new(BrokerConnection::connect(address, &self.config).await?);
        let mut pool = self.connections.lock().expect("pool lock");
        match pool.get(&key) {
            // Another request opened one meanwhile: all use that one (the requests of a partition
            // must share a connection to stay in order); this one closes unused.
            Some(existing) if !existing.is_closed() => Ok(existing.clone()),
            _ => {
                pool.insert(key, fresh.clone());
                Ok(fresh)
            }
        }
    }

    /// A connection to some live broker: a pooled one outside the lanes if any, else each known
    /// broker in turn.
    pub(super) async fn any_connection(&self) -> Result<Arc<BrokerConnection>, KafkaError> {
        let pooled = self
            .connections
            .lock()
            .expect("pool lock")
            .iter()
            .find(|(key, c)| !key.contains('#') && !c.is_closed())
            .map(|(_, c)| c.clone());
        if let Some(connection) = pooled {
            return Ok(connection);
        }
        let metadata = self.cached_metadata();
        let mut candidates: Vec<String> = metadata.brokers.values().map(BrokerInfo::address).collect();
        candidates.extend(self.config.bootstrap_servers.iter().cloned());
        let mut last_error = None;
        for address in candidates {
            match self.connection(&address).await {
                Ok(connection) => return Ok(connection),
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| KafkaError::Config("no brokers known".into())))
    }

    /// A connection to broker `node_id`, refreshing metadata if the node is not known yet.
    pub(super) async fn node_connection(&self, node_id: i32) -> Result<Arc<BrokerConnection>, KafkaError> {
        self.node_connection_in(node_id, "").await
    }

    async fn node_connection_in(&self, node_id: i32, lane: &str) -> Result<Arc<BrokerConnection>, KafkaError> {
        let known = self.cached_metadata().brokers.get(&node_id).cloned();
        let broker = match known {
            Some(broker) => broker,
            None => self.refresh_metadata(Some(&[])).await?.brokers.get(&node_id).cloned().ok_or_else(|| {
                KafkaError::ConnectionLost {
                    broker: format!("node {node_id}"),
                    reason: "broker is not in the cluster metadata".into(),
                }
            })?,
        };
        self.connection_in(&broker.address(), lane).await
    }

    /// The current leader's connection for `topic`-`partition`, in `lane`.
    pub(super) async fn leader_connection(
        &self,
        topic: &str,
        partition: i32,
        lane: &str,
    ) -> Result<Arc<BrokerConnection>, KafkaError> {
        let leader = self.leader_id(topic, partition).await?;
        self.node_connection_in(leader, lane).await
    }

    /// The node id of the current leader of `topic`-`partition` (metadata read if not cached).
    pub(super) async fn leader_id(&self, topic: &str, partition: i32) -> Result<i32, KafkaError> {
        let mut metadata = self.cached_metadata();
        if !metadata.topics.contains_key(topic) {
            metadata = self.refresh_metadata(Some(&[topic.to_string()])).await?;
        }
        let partition_metadata =
            metadata.topics.get(topic).and_then(|t| t.partitions.get(&partition)).ok_or_else(|| {
                KafkaError::UnknownTopicOrPartition { topic: topic.to_string(), partition: Some(partition) }
            })?;
        partition_metadata.leader.ok_or_else(|| KafkaError::NoLeader { topic: topic.to_string(), partition })
    }

    /// The node that serves fetches of `topic`-`partition`: the read replica its leader named for
    /// this client's rack (`client_rack`, KIP-392) while that holds, else the leader.
    pub(super) async fn fetch_node(&self, topic: &str, partition: i32) -> Result<i32, KafkaError> {
        match self.read_replica(topic, partition) {
            Some(replica) => Ok(replica),
            None => self.leader_id(topic, partition).await,
        }
    }

    /// The read replica in use for `topic`-`partition`, if any (expired ones are dropped).
    pub(super) fn read_replica(&self, topic: &str, partition: i32) -> Option<i32> {
        let mut replicas = self.read_replicas.lock().expect("read replicas lock");
        let key = (topic.to_string(), partition);
        match replicas.get(&key) {
            Some(&(node, since)) if since.elapsed() < READ_REPLICA_LIFETIME => Some(node),
            Some(_) => {
                replicas.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Takes in a fetch answer's `preferred_read_replica` for `topic`-`partition`, given by
    /// `node`: a replica other than the one asked serves the next fetches.
    pub(super) fn note_read_replica(&self, topic: &str, partition: i32, node: i32, preferred: i32) {
        if preferred >= 0 && preferred != node {
            tracing::debug!(
                topic,
                partition,
                leader = node,
                replica = preferred,
                "fetching from the read replica the leader named"
            );
            let mut replicas = self.read_replicas.lock().expect("read replicas lock");
            replicas.insert((topic.to_string(), partition), (preferred, Instant::now()));
        }
    }

    /// A fetch of `topic`-`partition` failed with `error`: if a read replica served it, the next
    /// fetch goes to the leader, and an offset out of range there (a follower behind its leader)
    /// becomes a retry at the leader instead of a gap.
    pub(super) fn fetch_failed(&self, topic: &str, partition: i32, error: KafkaError) -> KafkaError {
        let replica = self.read_replicas.lock().expect("read replicas lock").remove(&(topic.to_string(), partition));
        match replica {
            Some((node, _)) if error.response_error() == Some(ResponseError::OffsetOutOfRange) => {
                KafkaError::ReplicaBehind { topic: topic.to_string(), partition, node }
            }
            _ => error,
        }
    }

    /// The connection of broker `node_id` that carries its fetch rounds (see `fetch_rounds`): one
    /// of its own, since a round long-polls.
    pub(super) async fn node_fetch_connection(&self, node_id: i32) -> Result<Arc<BrokerConnection>, KafkaError> {
        self.node_connection_in(node_id, "#fetch-rounds").await
    }

    /// The connection that carries the produces of `topic`-`partition`, always the same one (in
    /// order) while its leader stays.
    pub(super) async fn produce_connection(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<Arc<BrokerConnection>, KafkaError> {
        self.leader_connection(topic, partition, &lane("produce", partition)).await
    }

    /// Runs `operation` against the broker `route` names, under the retry policy. After an
    /// error that says the leader or coordinator moved, the cached one is forgotten so that the
    /// next attempt looks it up again.
    pub(super) async fn on<T, Op, Fut>(&self, api: &str, route: Route<'_>, operation: Op) -> Result<T, KafkaError>
    where
        Op: Fn(Arc<BrokerConnection>) -> Fut,
        Fut: Future<Output = Result<T, KafkaError>>,
    {
        self.config.retry.run(api, || self.attempt(api, route, &operation)).await
    }

    /// Asks each broker of `batches` once for its keys (`batch`: every key's answer, or the
    /// request's failure). A key whose answer says to try again (a leader or coordinator moved,
    /// one loading), every key of a batch that failed as a whole, and every key of `unrouted` (no
    /// broker known for it) is asked again on its own with `single`, under the retry policy, after
    /// `forget` dropped what routed it. Returns every key's answer.
    pub(super) async fn per_broker<K, T, Batch, BatchFut, Single, SingleFut>(
        &self,
        api: &'static str,
        (batches, mut unrouted): (Vec<(Route<'_>, Vec<K>)>, Vec<K>),
        (batch, single): (Batch, Single),
        forget: impl Fn(&K),
    ) -> HashMap<K, Result<T, KafkaError>>
    where
        K: Clone + Eq + std::hash::Hash,
        Batch: Fn(Arc<BrokerConnection>, Vec<K>) -> BatchFut,
        BatchFut: Future<Output = Result<Vec<(K, Result<T, KafkaError>)>, KafkaError>>,
        Single: Fn(K) -> SingleFut,
        SingleFut: Future<Output = Result<T, KafkaError>>,
    {
        let mut answered = HashMap::new();
        for (route, keys) in batches {
            match self.attempt(api, route, &|connection| batch(connection, keys.clone())).await {
                Ok(answers) => {
                    for (key, answer) in answers {
                        match answer {
                            Err(error) if error.is_retriable() => {
                                forget(&key);
                                unrouted.push(key);
                            }
                            answer => {
                                answered.insert(key, answer);
                            }
                        }
                    }
                }
                Err(_) => {
                    keys.iter().for_each(&forget);
                    unrouted.extend(keys);
                }
            }
        }
        for key in unrouted {
            let answer = single(key.clone()).await;
            answered.insert(key, answer);
        }
        answered
    }

    /// One attempt of [`Self::on`]: `operation` once against the broker `route` names.
    pub(super) async fn attempt<T, Op, Fut>(&self, api: &str, route: Route<'_>, operation: &Op) -> Result<T, KafkaError>
    where
        Op: Fn(Arc<BrokerConnection>) -> Fut,
        Fut: Future<Output = Result<T, KafkaError>>,
    {
        let connection = match route {
            Route::Any => self.any_connection().await,
            Route::Broker(address) => self.connection_in(address, "").await,
            Route::Node(node) => self.node_connection(node).await,
            Route::Controller => match self.cached_metadata().controller_id {
                id if id >= 0 => self.node_connection(id).await,
                _ => self.any_connection().await,
            },
            Route::Leader(topic, partition) => self.leader_connection(topic, partition, "").await,
            Route::Fetch(topic, partition) => match self.fetch_node(topic, partition).await {
                Ok(node) => self.node_connection_in(node, &lane("fetch", partition)).await,
                Err(error) => Err(error),
            },
            Route::Produce(topic, partition) => self.produce_connection(topic, partition).await,
            Route::Coordinator(group) => self.coordinator_connection(Coordinated::Group(group)).await,
            Route::TransactionCoordinator(id) => self.coordinator_connection(Coordinated::Transaction(id)).await,
        };
        let timer = Timer::start();
        let result = match connection {
            Ok(connection) => operation(connection).await,
            Err(error) => Err(error),
        };
        timer.observe(&metrics().kafka_seconds, api);
        let result = match route {
            Route::Fetch(topic, partition) => result.map_err(|error| self.fetch_failed(topic, partition, error)),
            _ => result,
        };
        if let Err(error) = &result {
            metrics().kafka_errors.with_label_values(&[api, error.kind()]).inc();
            match route {
                Route::Leader(topic, _) | Route::Fetch(topic, _) | Route::Produce(topic, _)
                    if error.invalidates_metadata() =>
                {
                    self.forget_topic(topic)
                }
                Route::Coordinator(group) if error.invalidates_coordinator() => {
                    self.forget_coordinator(Coordinated::Group(group))
                }
                Route::TransactionCoordinator(id) if error.invalidates_coordinator() => {
                    self.forget_coordinator(Coordinated::Transaction(id))
                }
                _ => {}
            }
        }
        result
    }

    async fn coordinator_connection(&self, coordinated: Coordinated<'_>) -> Result<Arc<BrokerConnection>, KafkaError> {
        self.coordinator_connection_in(coordinated, "").await
    }

    /// A connection to the coordinator of `coordinated` in `lane`: a group member's JoinGroup may
    /// wait a whole rebalance, and a broker answers a connection's requests one at a time.
    pub(super) async fn coordinator_connection_in(
        &self,
        coordinated: Coordinated<'_>,
        lane: &str,
    ) -> Result<Arc<BrokerConnection>, KafkaError> {
        let coordinator = match self.cached_coordinator(coordinated) {
            Some(coordinator) => coordinator,
            None => {
                // Boxed: the lookup itself goes through `on`, which may call back here.
                let found = Box::pin(self.lookup_coordinator(coordinated)).await?;
                self.remember_coordinator(coordinated, found.clone());
                found
            }
        };
        self.connection_in(&coordinator.address(), lane).await
    }

    /// The coordinator of `coordinated` as last found, if it is known.
    pub(super) fn cached_coordinator(&self, coordinated: Coordinated<'_>) -> Option<BrokerInfo> {
        self.coordinators.lock().expect("coordinator lock").get(&coordinated.cache_key()).cloned()
    }

    /// Keeps `coordinator` as the coordinator of `coordinated`.
    pub(super) fn remember_coordinator(&self, coordinated: Coordinated<'_>, coordinator: BrokerInfo) {
        self.coordinators.lock().expect("coordinator lock").insert(coordinated.cache_key(), coordinator);
    }

    /// Forgets the coordinator of `coordinated` after an error that says it moved.
    pub(super) fn forget_coordinator(&self, coordinated: Coordinated<'_>) {
        self.coordinators.lock().expect("coordinator lock").remove(&coordinated.cache_key());
    }
}
