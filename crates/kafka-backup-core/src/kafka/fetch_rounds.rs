//! Fetching many partitions with one request per broker, as Kafka's consumers do: a partition that
//! wants records joins the next round of the fetcher of the broker that serves it (its leader, or
//! a read replica in this client's rack), which sends one Fetch for every partition waiting, in a
//! fetch session (`fetch_session`), long-polls, and answers each (records, nothing new, or its own
//! error). A partition whose task is busy has not asked again and is left out of the round, so it
//! never holds up the others. Each round asks for at most what the byte budget has free, and the
//! bytes handed out count against it until their holder drops them: memory follows the budget, not
//! the number of partitions. A partition that names its topic's id (Fetch 13+, KIP-516) is read
//! only from that topic: one deleted and created again under its name is an unknown topic then,
//! never the new topic's records at the old position.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use kafka_protocol::messages::fetch_request::FetchTopic;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use kafka_protocol::messages::fetch_request::ForgottenTopic;
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::FetchResponse;
use uuid::Uuid;

use super::client::KafkaClient;
use super::connection::BrokerConnection;
use super::fetch_session::{FetchSession, Marks, PartitionKey, SessionRequest, Want};
use super::log::{
    fetch_partition, fetch_request, fetches_by_id, gone_topic_id, left_out_by_id, partition_context, topic_name,
    FetchOptions, FetchedPartition, LAST_FETCH_BY_NAME,
};
use super::KafkaError;
use crate::metrics::{metrics, Timer};

/// Bytes a round asks for at least, when the budget is nearly spent (a broker returns one whole
/// batch of the first partition regardless).
const MIN_ROUND_BYTES: i32 = 1024 * 1024;

/// A partition's records, with their share of the byte budget: released when dropped.
pub struct RoundFetch {
    /// What the broker answered for the partition.
    pub fetched: FetchedPartition,
    _budget: Option<OwnedSemaphorePermit>,
}

impl From<FetchedPartition> for RoundFetch {
    /// Records fetched outside the rounds (they count against no budget of these).
    fn from(fetched: FetchedPartition) -> Self {
        Self { fetched, _budget: None }
    }
}

/// A partition waiting for the next round.
struct Wanted {
    topic: String,
    /// The id of the topic the partition reads, if known.
    topic_id: Option<Uuid>,
    partition: i32,
    offset: i64,
    max_bytes: i32,
    options: FetchOptions,
    answer: oneshot::Sender<Result<FetchedPartition, KafkaError>>,
}

/// The fetchers of one run, one per broker, started on first use.
pub struct FetchRounds {
    client: Arc<KafkaClient>,
    budget: Arc<Semaphore>,
    budget_bytes: i32,
    fetchers: Mutex<HashMap<i32, mpsc::UnboundedSender<Wanted>>>,
}

impl FetchRounds {
    /// Fetchers over `client` sharing `budget_bytes` of fetched records.
    pub fn new(client: Arc<KafkaClient>, budget_bytes: i32) -> Self {
        let budget_bytes = budget_bytes.max(MIN_ROUND_BYTES);
        Self {
            client,
            budget: Arc::new(Semaphore::new(budget_bytes as usize)),
            budget_bytes,
            fetchers: Mutex::default(),
        }
    }

    /// Fetches `topic`-`partition` from `offset` (at most `max_bytes` of it) in the next round of
    /// the fetcher of the broker that serves it, under the client's retry policy: after a lost
    /// connection, a leader that moved or a read replica that fell behind, the broker is looked up
    /// again and the partition asks again. OFFSET_OUT_OF_RANGE and the other errors a retry cannot
    /// mend are the caller's.
    pub async fn fetch(
        &self,
        (topic, topic_id): (&str, Option<Uuid>),
        partition: i32,
        offset: i64,
        max_bytes: i32,
        options: FetchOptions,
    ) -> Result<RoundFetch, KafkaError> {
        let fetched = self
            .client
            .config()
            .retry
            .run("Fetch", || async {
                let node = self.client.fetch_node(topic, partition).await?;
                let (answer, answered) = oneshot::channel();
                let wanted =
                    Wanted { topic: topic.to_string(), topic_id, partition, offset, max_bytes, options, answer };
                self.fetcher(node).send(wanted).map_err(|_| lost(node, "its fetcher stopped"))?;
                let result = answered.await.unwrap_or_else(|_| Err(lost(node, "its fetcher stopped")));
                let result = result.map_err(|error| {
                    self.client.fetch_failed(topic, partition, gone_topic_id(error, topic, partition))
                });
                if result.as_ref().is_err_and(KafkaError::invalidates_metadata) {
                    self.client.forget_topic(topic);
                }
                result
            })
            .await?;
        // The bytes are taken from the budget as they arrive (a round asks for no more than is
        // free, so this waits only when a broker returned more than asked: one large batch).
        let bytes = fetched.records.len().min(self.budget_bytes as usize) as u32;
        let permit = match bytes {
            0 => None,
            bytes => Some(self.budget.clone().acquire_many_owned(bytes).await.expect("the budget is never closed")),
        };
        Ok(RoundFetch { fetched, _budget: permit })
    }

    /// The queue of broker `node`'s fetcher, started on first use.
    fn fetcher(&self, node: i32) -> mpsc::UnboundedSender<Wanted> {
        let mut fetchers = self.fetchers.lock().expect("fetchers lock");
        fetchers
            .entry(node)
            .or_insert_with(|| {
                let (queue, waiting) = mpsc::unbounded_channel();
                let fetcher = BrokerFetcher {
                    client: self.client.clone(),
                    node,
                    budget: self.budget.clone(),
                    budget_bytes: self.budget_bytes,
                    session: FetchSession::default(),
                    topic_ids: HashMap::new(),
                };
                tokio::spawn(fetcher.serve(waiting));
                queue
            })
            .clone()
    }
}

fn lost(node: i32, reason: &str) -> KafkaError {
    KafkaError::ConnectionLost { broker: format!("node {node}"), reason: reason.to_string() }
}

/// The fetcher of one broker: one Fetch in flight, for every partition waiting, in one session.
struct BrokerFetcher {
    client: Arc<KafkaClient>,
    node: i32,
    budget: Arc<Semaphore>,
    budget_bytes: i32,
    session: FetchSession,
    /// The id of each topic of the session, as its partitions named it.
    topic_ids: HashMap<String, Uuid>,
}

impl BrokerFetcher {
    /// Runs rounds until every sender is gone (the run ended).
    async fn serve(mut self, mut waiting: mpsc::UnboundedReceiver<Wanted>) {
        let mut next_round: Vec<Wanted> = Vec::new();
        loop {
            if next_round.is_empty() {
                match waiting.recv().await {
                    Some(first) => next_round.push(first),
                    None => return,
                }
                // The partitions answered by the last round ask again together: let them.
                tokio::task::yield_now().await;
            }
            while let Ok(more) = waiting.try_recv() {
                next_round.push(more);
            }
            // A partition asks once per round (a later ask, e.g. after a retry, waits for the next).
            let mut round: Vec<Wanted> = Vec::new();
            let mut later = Vec::new();
            let mut asking: HashSet<(String, i32)> = HashSet::with_capacity(next_round.len());
            for wanted in next_round.drain(..).filter(|w| !w.answer.is_closed()) {
                if asking.insert((wanted.topic.clone(), wanted.partition)) {
                    round.push(wanted);
                } else {
                    later.push(wanted);
                }
            }
            next_round = later;
            if round.is_empty() {
                continue;
            }
            self.run_round(round).await;
        }
    }

    /// Sends one Fetch for `round` (again in full if the broker lost the session) and answers
    /// each partition.
    async fn run_round(&mut self, round: Vec<Wanted>) {
        for wanted in &round {
            let Some(id) = wanted.topic_id else { continue };
            if self.topic_ids.insert(wanted.topic.clone(), id).is_some_and(|known| known != id) {
                // The broker's session holds the old topic's partitions: a new session names the new.
                self.session.reset();
            }
        }
        let wants: Vec<Want> = round
            .iter()
            .map(|w| Want { key: (w.topic.clone(), w.partition), offset: w.offset, max_bytes: w.max_bytes })
            .collect();
        let mut answered = self.send(&round[0].options, &wants).await;
        if let Ok((response, ..)) = &answered {
            if FetchSession::is_lost(response.error_code) {
                tracing::debug!(node = self.node, code = response.error_code, "fetch session lost; starting a new one");
                self.session.reset();
                answered = self.send(&round[0].options, &wants).await;
            }
        }
        let (response, request, connection, by_id) = match answered {
            Ok(answered) => answered,
            Err(error) => {
                self.session.reset();
                metrics().kafka_errors.with_label_values(&["Fetch", error.kind()]).inc();
                round.into_iter().for_each(|wanted| drop(wanted.answer.send(Err(error.clone()))));
                return;
            }
        };
        if response.error_code != 0 {
            self.session.reset();
            let answer = |wanted: &Wanted| {
                let context = partition_context(&wanted.topic, wanted.partition);
                KafkaError::broker("Fetch", context, connection.address(), response.error_code, None)
            };
            for wanted in round {
                let error = answer(&wanted);
                let _ = wanted.answer.send(Err(error));
            }
            return;
        }
        let node = self.node.to_string();
        metrics().fetched_partitions.with_label_values(&[&node]).inc_by(round.len() as u64);
        let session_id = response.session_id;
        let mut answers: HashMap<PartitionKey, Result<FetchedPartition, KafkaError>> = HashMap::new();
        for topic in response.responses {
            let name = match topic.topic.is_empty() {
                true => self.topic_ids.iter().find(|(_, id)| **id == topic.topic_id).map(|(name, _)| name.clone()),
                false => Some(topic.topic.to_string()),
            };
            let Some(name) = name else { continue };
            for data in topic.partitions {
                let key = (name.clone(), data.partition_index);
                answers.insert(key, self.partition_answer(&name, data, connection.address()));
            }
        }
        let marks = answers.iter().filter_map(|(key, answer)| Some((key.clone(), marks_of(answer.as_ref().ok()?))));
        self.session.answered(&request, &wants, session_id, marks.collect::<Vec<_>>());
        for (key, answer) in &answers {
            if answer.is_err() {
                self.session.partition_failed(key);
            }
        }
        for wanted in round {
            let key = (wanted.topic.clone(), wanted.partition);
            let answer = match answers.remove(&key) {
                Some(answer) => answer,
                // An incremental answer leaves out the partitions where nothing moved.
                None if !request.is_full() => Ok(nothing_new(self.session.marks(&key))),
                None if by_id => Err(left_out_by_id(&wanted.topic, wanted.partition)),
                None => Err(KafkaError::no_answer(
                    "Fetch",
                    connection.address(),
                    format!("no answer{}", partition_context(&wanted.topic, wanted.partition)),
                )),
            };
            let _ = wanted.answer.send(answer);
        }
    }

    /// Sends the session's request for `wants`; returns the response with the request it answers,
    /// the connection and whether the request named its topics by id.
    async fn send(
        &self,
        options: &FetchOptions,
        wants: &[Want],
    ) -> Result<(FetchResponse, SessionRequest, Arc<BrokerConnection>, bool), KafkaError> {
        // Ask for what the budget has free (what the partitions hold is counted as they take it).
        let free = (self.budget.available_permits() as i32).min(self.budget_bytes);
        let max_bytes = free.max(MIN_ROUND_BYTES);
        let request = self.session.request(wants);
        let id_of = |topic: &str| self.topic_ids.get(topic).copied().unwrap_or_default();
        let mut topics: BTreeMap<&str, Vec<_>> = BTreeMap::new();
        for want in &request.send {
            let partition = fetch_partition(want.key.1, want.offset, want.max_bytes.min(max_bytes));
            topics.entry(want.key.0.as_str()).or_default().push(partition);
        }
        // Each topic by name and id: the version sent uses one of them.
        let topics = topics
            .into_iter()
            .map(|(topic, partitions)| {
                FetchTopic::default()
                    .with_topic(topic_name(topic))
                    .with_topic_id(id_of(topic))
                    .with_partitions(partitions)
            })
            .collect();
        let mut forgotten: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (topic, partition) in &request.forget {
            forgotten.entry(topic.as_str()).or_default().push(*partition);
        }
        let forgotten = forgotten
            .into_iter()
            .map(|(topic, partitions)| {
                ForgottenTopic::default()
                    .with_topic(topic_name(topic))
                    .with_topic_id(id_of(topic))
                    .with_partitions(partitions)
            })
            .collect();
        // By id only when every topic named has one (a broker without ids: by name, Fetch 12).
        let mut named = request.send.iter().map(|w| &w.key).chain(&request.forget);
        let by_id = named.all(|(topic, _)| self.topic_ids.contains_key(topic));
        let max_version = if by_id { i16::MAX } else { LAST_FETCH_BY_NAME };
        let fetch = fetch_request(options, max_bytes, topics, self.client.config().rack())
            .with_session_id(request.session_id)
            .with_session_epoch(request.epoch)
            .with_forgotten_topics_data(forgotten);
        let kind = if request.is_full() { "full" } else { "incremental" };
        metrics().fetch_requests.with_label_values(&[&self.node.to_string(), kind]).inc();
        let timer = Timer::start();
        let answered = match self.client.node_fetch_connection(self.node).await {
            Ok(connection) => {
                let by_id = fetches_by_id(&connection, max_version);
                let response = connection.send_at_most(&fetch, max_version).await;
                response.map(|response| (response, request, connection, by_id))
            }
            Err(error) => Err(error),
        };
        timer.observe(&metrics().kafka_seconds, "Fetch");
        answered
    }

    /// One partition's answer: its records, or its error; a read replica the leader named for
    /// this client's rack serves the partition's next fetches.
    fn partition_answer(
        &self,
        topic: &str,
        data: PartitionData,
        address: &str,
    ) -> Result<FetchedPartition, KafkaError> {
        match data.error_code {
            0 => {
                self.client.note_read_replica(topic, data.partition_index, self.node, data.preferred_read_replica.0);
                let fetched = FetchedPartition::from(data);
                let node = self.node.to_string();
                metrics().fetched_bytes.with_label_values(&[&node]).inc_by(fetched.records.len() as u64);
                Ok(fetched)
            }
            code => {
                Err(KafkaError::broker("Fetch", partition_context(topic, data.partition_index), address, code, None))
            }
        }
    }
}

fn marks_of(fetched: &FetchedPartition) -> Marks {
    Marks {
        high_watermark: fetched.high_watermark,
        last_stable_offset: fetched.last_stable_offset,
        log_start_offset: fetched.log_start_offset,
    }
}

/// The answer for a partition an incremental response left out: no records, the last marks.
fn nothing_new(marks: Marks) -> FetchedPartition {
    FetchedPartition {
        high_watermark: marks.high_watermark,
        last_stable_offset: marks.last_stable_offset,
        log_start_offset: marks.log_start_offset,
        aborted_transactions: Vec::new(),
        records: Default::default(),
    }
}
