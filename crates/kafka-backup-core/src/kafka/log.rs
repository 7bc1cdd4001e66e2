//! Partition log calls, routed to the partition leader: ListOffsets, Fetch, Produce and
//! DeleteRecords.
//! Record sets travel as raw bytes; `records` decodes them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::delete_records_request::{DeleteRecordsPartition, DeleteRecordsTopic};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    BrokerId, DeleteRecordsRequest, FetchRequest, ListOffsetsRequest, ProduceRequest, ProduceResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use uuid::Uuid;

use super::client::{only_answer, KafkaClient, Route};
use super::connection::{BrokerConnection, PendingResponse};
use super::KafkaError;
use crate::metrics::metrics;

/// Which offset ListOffsets should return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    /// The log start offset.
    Earliest,
    /// The log end offset (high watermark), or the last stable offset under read_committed.
    Latest,
    /// The first offset whose timestamp is at or after this many epoch milliseconds.
    Timestamp(i64),
}

impl OffsetSpec {
    pub(super) fn wire_value(self) -> i64 {
        match self {
            Self::Earliest => -2,
            Self::Latest => -1,
            Self::Timestamp(ms) => ms,
        }
    }
}

/// Whether reads see records of open and aborted transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IsolationLevel {
    /// Everything up to the high watermark.
    ReadUncommitted,
    /// Only up to the last stable offset; aborted transactions are reported for filtering.
    #[default]
    ReadCommitted,
}

impl IsolationLevel {
    pub(super) fn wire_value(self) -> i8 {
        match self {
            Self::ReadUncommitted => 0,
            Self::ReadCommitted => 1,
        }
    }
}

/// Limits of one fetch.
#[derive(Debug, Clone, Copy)]
pub struct FetchOptions {
    /// Longest time the broker may wait for `min_bytes`.
    pub max_wait: Duration,
    /// Bytes the broker should gather before answering.
    pub min_bytes: i32,
    /// Most bytes for this partition (the broker returns at least one whole batch regardless).
    pub max_bytes: i32,
    /// Transaction visibility.
    pub isolation: IsolationLevel,
}

impl Default for FetchOptions {
    fn default() -> Self {
        Self {
            max_wait: Duration::from_millis(500),
            min_bytes: 1,
            max_bytes: 8 * 1024 * 1024,
            isolation: IsolationLevel::ReadCommitted,
        }
    }
}

/// A transaction that was aborted, as reported by a read_committed fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTransaction {
    /// Producer of the transaction.
    pub producer_id: i64,
    /// First offset of the transaction in this partition.
    pub first_offset: i64,
}

/// What one fetch returned for one partition.
#[derive(Debug, Clone)]
pub struct FetchedPartition {
    /// Offset after the last replicated record.
    pub high_watermark: i64,
    /// Offset after the last record of a finished transaction (-1 if unknown).
    pub last_stable_offset: i64,
    /// First offset still in the log (-1 if unknown).
    pub log_start_offset: i64,
    /// Aborted transactions overlapping the returned records (read_committed only).
    pub aborted_transactions: Vec<AbortedTransaction>,
    /// Raw record set: whole batches, possibly followed by a partial one.
    pub records: Bytes,
}

/// Where a produced batch landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProduceAck {
    /// Offset assigned to the first record.
    pub base_offset: i64,
    /// Broker append time for LogAppendTime topics, else -1.
    pub log_append_time: i64,
}

/// A Fetch request (no fetch session) for `topics`, at most `max_bytes` in all, from a client in
/// `rack` (KIP-392: the leader may name a replica in that rack to fetch from; "" for none).
pub(super) fn fetch_request(
    options: &FetchOptions,
    max_bytes: i32,
    topics: Vec<FetchTopic>,
    rack: &str,
) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(options.max_wait.as_millis().min(i32::MAX as u128) as i32)
        .with_min_bytes(options.min_bytes)
        .with_max_bytes(max_bytes)
        .with_isolation_level(options.isolation.wire_value())
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(topics)
        .with_rack_id(StrBytes::from_string(rack.to_string()))
}

/// One partition of a Fetch request: from `offset`, at most `max_bytes` (at least one batch).
pub(super) fn fetch_partition(partition: i32, offset: i64, max_bytes: i32) -> FetchPartition {
    FetchPartition::default()
        .with_partition(partition)
        .with_current_leader_epoch(-1)
        .with_fetch_offset(offset)
        .with_last_fetched_epoch(-1)
        .with_log_start_offset(-1)
        .with_partition_max_bytes(max_bytes)
}

impl From<PartitionData> for FetchedPartition {
    fn from(data: PartitionData) -> Self {
        Self {
            high_watermark: data.high_watermark,
            last_stable_offset: data.last_stable_offset,
            log_start_offset: data.log_start_offset,
            aborted_transactions: data
                .aborted_transactions
                .unwrap_or_default()
                .iter()
                .map(|a| AbortedTransaction { producer_id: a.producer_id.0, first_offset: a.first_offset })
                .collect(),
            records: data.records.unwrap_or_default(),
        }
    }
}

/// The last Fetch version that names topics; from 13 on, a Fetch names them by id.
pub(super) const LAST_FETCH_BY_NAME: i16 = 12;

/// A fetch by topic id answered that the broker has no topic of that id: the topic is gone (asking
/// again under that id cannot help), said as an unknown topic, which is not retried.
pub(super) fn gone_topic_id(error: KafkaError, topic: &str, partition: i32) -> KafkaError {
    match error.response_error() {
        Some(ResponseError::UnknownTopicId | ResponseError::InconsistentTopicId) => {
            KafkaError::UnknownTopicOrPartition { topic: topic.to_string(), partition: Some(partition) }
        }
        _ => error,
    }
}

/// Whether a Fetch of version `max` at most, sent on `connection`, names its topics by id.
pub(super) fn fetches_by_id(connection: &BrokerConnection, max: i16) -> bool {
    connection.version_for::<FetchRequest>().is_ok_and(|version| version.min(max) > LAST_FETCH_BY_NAME)
}

/// A full Fetch by topic id answered without `topic`-`partition`: Apache Kafka answers
/// UNKNOWN_TOPIC_ID for an id it does not have, Tansu leaves the partition out. Either way no topic
/// of that id is there, said as an unknown topic (the backup then checks the metadata).
pub(super) fn left_out_by_id(topic: &str, partition: i32) -> KafkaError {
    KafkaError::UnknownTopicOrPartition { topic: topic.to_string(), partition: Some(partition) }
}

pub(super) fn topic_name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}

pub(super) fn partition_context(topic: &str, partition: i32) -> String {
    format!(" for {topic}-{partition}")
}

/// The answer for `topic`-`partition` among a response's per-partition `answers` (matched by
/// `index`), or the error it carries (`code`: error code and message), naming `api` and the broker.
fn partition_answer<P>(
    (api, address): (&'static str, &str),
    (topic, partition): (&str, i32),
    answers: impl IntoIterator<Item = P>,
    index: impl Fn(&P) -> i32,
    code: impl Fn(&P) -> (i16, Option<String>),
) -> Result<P, KafkaError> {
    let answer = answers
        .into_iter()
        .find(|answer| index(answer) == partition)
        .ok_or_else(|| KafkaError::no_answer(api, address, format!("no answer for {topic}-{partition}")))?;
    match code(&answer) {
        (0, _) => Ok(answer),
        (code, message) => Err(KafkaError::broker(api, partition_context(topic, partition), address, code, message)),
    }
}

/// The offset matching `spec` (read with `isolation`) of each of `partitions` of `topic`, in one
/// ListOffsets on `connection`.
pub(super) async fn list_offsets_on(
    connection: Arc<BrokerConnection>,
    (topic, spec, isolation): (&str, OffsetSpec, IsolationLevel),
    partitions: Vec<i32>,
) -> Result<Vec<(i32, Result<i64, KafkaError>)>, KafkaError> {
    let asked = partitions.iter().map(|&partition| {
        ListOffsetsPartition::default()
            .with_partition_index(partition)
            .with_current_leader_epoch(-1)
            .with_timestamp(spec.wire_value())
    });
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_isolation_level(isolation.wire_value())
        .with_topics(vec![ListOffsetsTopic::default().with_name(topic_name(topic)).with_partitions(asked.collect())]);
    let response = connection.send(&request).await?;
    let answers: Vec<_> = response.topics.into_iter().flat_map(|t| t.partitions).collect();
    let answer = |partition| {
        let found = partition_answer(
            ("ListOffsets", connection.address()),
            (topic, partition),
            &answers,
            |p| p.partition_index,
            |p| (p.error_code, None),
        );
        (partition, found.map(|p| p.offset))
    };
    Ok(partitions.into_iter().map(answer).collect())
}

impl KafkaClient {
    /// The offset matching `spec` for `partition` of `topic`, read uncommitted (the log's own
    /// bounds; -1 for a timestamp after the last record, as Kafka answers).
    pub async fn partition_offset(&self, topic: &str, partition: i32, spec: OffsetSpec) -> Result<i64, KafkaError> {
        let offsets = self.list_offsets(topic, &[partition], spec, IsolationLevel::ReadUncommitted).await?;
        Ok(offsets.first().map(|&(_, offset)| offset).expect("list_offsets answers every partition asked, or fails"))
    }

    /// The offset matching `spec` for each of `partitions` of `topic`: one ListOffsets per leader
    /// for all of its partitions (a partition whose leader moved is asked again on its own).
    pub async fn list_offsets(
        &self,
        topic: &str,
        partitions: &[i32],
        spec: OffsetSpec,
        isolation: IsolationLevel,
    ) -> Result<Vec<(i32, i64)>, KafkaError> {
        let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
        let mut unrouted = Vec::new();
        for &partition in partitions {
            match self.leader_id(topic, partition).await {
                Ok(leader) => by_leader.entry(leader).or_default().push(partition),
                Err(_) => unrouted.push(partition),
            }
        }
        let batches = by_leader.into_iter().map(|(leader, asked)| (Route::Node(leader), asked)).collect();
        let asked = (topic, spec, isolation);
        let batch = |connection, partitions| list_offsets_on(connection, asked, partitions);
        let single = |partition: i32| {
            self.on("ListOffsets", Route::Leader(topic, partition), move |connection| async move {
                only_answer(list_offsets_on(connection, asked, vec![partition]).await?)
            })
        };
        let forget = |_: &i32| self.forget_topic(topic);
        let mut answered = self.per_broker("ListOffsets", (batches, unrouted), (batch, single), forget).await;
        partitions.iter().map(|&p| Ok((p, answered.remove(&p).expect("every partition answered")?))).collect()
    }

    /// Fetches from `offset` of `topic`-`partition`. OFFSET_OUT_OF_RANGE and other partition
    /// errors that retrying cannot fix are returned to the caller, who decides what they mean.
    pub async fn fetch(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        options: &FetchOptions,
    ) -> Result<FetchedPartition, KafkaError> {
        self.fetch_topic((topic, None), partition, offset, options).await
    }

    /// [`Self::fetch`] from the topic of id `topic_id` only, when it is given (Fetch 13+): a topic
    /// deleted and created again under the name is then an unknown topic, never the new one.
    pub async fn fetch_topic(
        &self,
        (topic, topic_id): (&str, Option<Uuid>),
        partition: i32,
        offset: i64,
        options: &FetchOptions,
    ) -> Result<FetchedPartition, KafkaError> {
        let max_version = if topic_id.is_some() { i16::MAX } else { LAST_FETCH_BY_NAME };
        self.on("Fetch", Route::Fetch(topic, partition), |connection| async move {
            let node = self.fetch_node(topic, partition).await?;
            let by_id = fetches_by_id(&connection, max_version);
            let topics = vec![FetchTopic::default()
                .with_topic(topic_name(topic))
                .with_topic_id(topic_id.unwrap_or_default())
                .with_partitions(vec![fetch_partition(partition, offset, options.max_bytes)])];
            let request = fetch_request(options, options.max_bytes, topics, self.config().rack());
            let response = connection.send_at_most(&request, max_version).await?;
            if response.error_code != 0 {
                return Err(KafkaError::broker(
                    "Fetch",
                    partition_context(topic, partition),
                    connection.address(),
                    response.error_code,
                    None,
                ));
            }
            let answers: Vec<PartitionData> = response.responses.into_iter().flat_map(|t| t.partitions).collect();
            if by_id && !answers.iter().any(|p| p.partition_index == partition) {
                return Err(left_out_by_id(topic, partition));
            }
            let data = partition_answer(
                ("Fetch", connection.address()),
                (topic, partition),
                answers,
                |p| p.partition_index,
                |p| (p.error_code, None),
            )
            .map_err(|error| gone_topic_id(error, topic, partition))?;
            self.note_read_replica(topic, partition, node, data.preferred_read_replica.0);
            let fetched = FetchedPartition::from(data);
            metrics().fetched_bytes.with_label_values(&[&node.to_string()]).inc_by(fetched.records.len() as u64);
            Ok(fetched)
        })
        .await
    }

    /// Deletes every record of `topic`-`partition` below its high watermark (DeleteRecords to the
    /// end: the log start moves there, the offsets go on from where they were); returns the new
    /// log start.
    pub async fn delete_records_to_end(
        &self,
        topic: &str,
        partition: i32,
        timeout: Duration,
    ) -> Result<i64, KafkaError> {
        self.on("DeleteRecords", Route::Leader(topic, partition), |connection| async move {
            let request = DeleteRecordsRequest::default()
                .with_timeout_ms(timeout.as_millis().min(i32::MAX as u128) as i32)
                .with_topics(vec![DeleteRecordsTopic::default().with_name(topic_name(topic)).with_partitions(vec![
                    // -1: the high watermark.
                    DeleteRecordsPartition::default().with_partition_index(partition).with_offset(-1),
                ])]);
            let response = connection.send(&request).await?;
            let answer = partition_answer(
                ("DeleteRecords", connection.address()),
                (topic, partition),
                response.topics.iter().flat_map(|t| t.partitions.iter()),
                |p| p.partition_index,
                |p| (p.error_code, None),
            )?;
            Ok(answer.low_watermark)
        })
        .await
    }

    /// Appends `batches` (one encoded record batch) to `topic`-`partition` with acks=all.
    /// Retries after retriable errors; batches from an idempotent producer (producer id and
    /// sequence set) are deduplicated by the broker, others may be written twice on retry.
    pub async fn produce(
        &self,
        topic: &str,
        partition: i32,
        batches: Bytes,
        timeout: Duration,
    ) -> Result<ProduceAck, KafkaError> {
        let request = produce_request(topic, partition, batches, timeout);
        let request = &request;
        self.on("Produce", Route::Produce(topic, partition), |connection| async move {
            let response = connection.send(request).await?;
            produce_ack(&response, topic, partition, connection.address())
        })
        .await
    }

    /// Sends a batch to the leader of `topic`-`partition` now, without waiting for the answer:
    /// batches started one after another leave in that order, so an idempotent producer can keep
    /// several in flight. No retry: a failure is returned by [`PendingProduce::ack`].
    pub async fn start_produce(
        &self,
        topic: &str,
        partition: i32,
        batches: Bytes,
        timeout: Duration,
    ) -> Result<PendingProduce, KafkaError> {
        let connection = self.produce_connection(topic, partition).await?;
        let pending = connection.start(&produce_request(topic, partition, batches, timeout))?;
        Ok(PendingProduce {
            pending,
            topic: topic.to_string(),
            partition,
            address: connection.address().to_string(),
            _connection: connection,
        })
    }
}

/// A produce request on the wire.
pub struct PendingProduce {
    pending: PendingResponse<ProduceRequest>,
    topic: String,
    partition: i32,
    address: String,
    /// Keeps the connection open until the answer arrives, even when the pool replaces it meanwhile
    /// (a retired SASL session): dropping the last handle closes it and would lose the answer.
    _connection: Arc<BrokerConnection>,
}

impl PendingProduce {
    /// Waits for the broker's acknowledgement.
    pub async fn ack(self) -> Result<ProduceAck, KafkaError> {
        let response = self.pending.response().await?;
        produce_ack(&response, &self.topic, self.partition, &self.address)
    }
}

fn produce_request(topic: &str, partition: i32, batches: Bytes, timeout: Duration) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(timeout.as_millis().min(i32::MAX as u128) as i32)
        .with_topic_data(vec![TopicProduceData::default().with_name(topic_name(topic)).with_partition_data(vec![
            PartitionProduceData::default().with_index(partition).with_records(Some(batches)),
        ])])
}

fn produce_ack(
    response: &ProduceResponse,
    topic: &str,
    partition: i32,
    address: &str,
) -> Result<ProduceAck, KafkaError> {
    let answer = partition_answer(
        ("Produce", address),
        (topic, partition),
        response.responses.iter().flat_map(|t| t.partition_responses.iter()),
        |p| p.index,
        |p| (p.error_code, p.error_message.as_ref().map(|m| m.to_string())),
    )?;
    Ok(ProduceAck { base_offset: answer.base_offset, log_append_time: answer.log_append_time_ms })
}
