//! Fetching many partitions with one request per broker, as Kafka's consumers do: a partition that
//! wants records joins the next round of its leader's fetcher, which sends one Fetch for every
//! partition waiting, long-polls, and answers each (records, nothing new, or its own error). A
//! partition whose task is busy has not asked again and is left out of the round, so it never
//! holds up the others. Each round asks for at most what the byte budget has free, and the bytes
//! handed out count against it until their holder drops them: memory follows the budget, not the
//! number of partitions.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use kafka_protocol::messages::fetch_request::FetchTopic;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use super::client::KafkaClient;
use super::log::{fetch_partition, fetch_request, partition_context, topic_name, FetchOptions, FetchedPartition};
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
    /// its leader's fetcher, under the client's retry policy: after a lost connection or a leader
    /// that moved, the leader is looked up again and the partition asks again. OFFSET_OUT_OF_RANGE
    /// and the other errors a retry cannot mend are the caller's.
    pub async fn fetch(
        &self,
        topic: &str,
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
                let leader = self.client.leader_id(topic, partition).await?;
                let (answer, answered) = oneshot::channel();
                let wanted = Wanted { topic: topic.to_string(), partition, offset, max_bytes, options, answer };
                self.fetcher(leader).send(wanted).map_err(|_| lost(leader, "its fetcher stopped"))?;
                let result = answered.await.unwrap_or_else(|_| Err(lost(leader, "its fetcher stopped")));
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

/// The fetcher of one broker: one Fetch in flight, for every partition waiting.
struct BrokerFetcher {
    client: Arc<KafkaClient>,
    node: i32,
    budget: Arc<Semaphore>,
    budget_bytes: i32,
}

impl BrokerFetcher {
    /// Runs rounds until every sender is gone (the run ended).
    async fn serve(self, mut waiting: mpsc::UnboundedReceiver<Wanted>) {
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
            for wanted in next_round.drain(..).filter(|w| !w.answer.is_closed()) {
                if round.iter().any(|r| (&r.topic, r.partition) == (&wanted.topic, wanted.partition)) {
                    later.push(wanted);
                } else {
                    round.push(wanted);
                }
            }
            next_round = later;
            if round.is_empty() {
                continue;
            }
            self.run_round(round).await;
        }
    }

    /// Sends one Fetch for `round` and answers each partition.
    async fn run_round(&self, round: Vec<Wanted>) {
        // Ask for what the budget has free (what the partitions hold is counted as they take it).
        let free = (self.budget.available_permits() as i32).min(self.budget_bytes);
        let max_bytes = free.max(MIN_ROUND_BYTES);
        let mut topics: BTreeMap<&str, Vec<_>> = BTreeMap::new();
        for wanted in &round {
            let partition = fetch_partition(wanted.partition, wanted.offset, wanted.max_bytes.min(max_bytes));
            topics.entry(wanted.topic.as_str()).or_default().push(partition);
        }
        let topics = topics
            .into_iter()
            .map(|(topic, partitions)| FetchTopic::default().with_topic(topic_name(topic)).with_partitions(partitions))
            .collect();
        let request = fetch_request(&round[0].options, max_bytes, topics);
        let timer = Timer::start();
        let answered = match self.client.node_fetch_connection(self.node).await {
            Ok(connection) => connection.send(&request).await.map(|response| (response, connection)),
            Err(error) => Err(error),
        };
        timer.observe(&metrics().kafka_seconds, "Fetch");
        let (response, connection) = match answered {
            Ok(answered) => answered,
            Err(error) => {
                metrics().kafka_errors.with_label_values(&["Fetch", error.kind()]).inc();
                round.into_iter().for_each(|wanted| drop(wanted.answer.send(Err(error.clone()))));
                return;
            }
        };
        let mut answers: HashMap<(String, i32), Result<FetchedPartition, KafkaError>> = HashMap::new();
        for topic in response.responses {
            let name = topic.topic.to_string();
            for data in topic.partitions {
                let index = data.partition_index;
                let answer = match data.error_code {
                    0 => Ok(FetchedPartition::from(data)),
                    code => Err(KafkaError::broker(
                        "Fetch",
                        partition_context(&name, index),
                        connection.address(),
                        code,
                        None,
                    )),
                };
                answers.insert((name.clone(), index), answer);
            }
        }
        metrics().fetched_partitions.with_label_values(&[] as &[&str]).inc_by(round.len() as u64);
        for wanted in round {
            let answer = match (response.error_code, answers.remove(&(wanted.topic.clone(), wanted.partition))) {
                (0, Some(answer)) => answer,
                (0, None) => Err(KafkaError::no_answer(
                    "Fetch",
                    connection.address(),
                    format!("no answer{}", partition_context(&wanted.topic, wanted.partition)),
                )),
                (code, _) => Err(KafkaError::broker(
                    "Fetch",
                    partition_context(&wanted.topic, wanted.partition),
                    connection.address(),
                    code,
                    None,
                )),
            };
            let _ = wanted.answer.send(answer);
        }
    }
}
