//! Writing one target partition: producing prepared batches with the run's idempotent producer
//! (several in flight, in order, each acknowledgement checked against the expected offset; after a
//! retriable failure such as a leader moving or a broker dying, every unacknowledged batch is sent
//! again in order with its own sequence number, which the broker deduplicates), and, after an
//! interruption, matching what the partition already holds against the batches to write.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use kafka_protocol::ResponseError;

use super::prepare::{PreparedBatch, SourceOffsets};
use super::rate::RateLimiter;
use crate::error::EngineError;
use crate::kafka::{KafkaClient, KafkaError, PendingProduce};
use crate::log_reader::LogReader;
use crate::metrics::{metrics, Metrics};
use crate::offset_map::MappedBatch;
use crate::records::Record;
use crate::retry::Retriable;
use crate::topics::TopicPartition;

const PRODUCE_TIMEOUT: Duration = Duration::from_secs(30);
/// Batches sent ahead of acknowledgements: Kafka keeps the order of an idempotent producer's
/// batches for up to five in flight per partition.
const MAX_IN_FLIGHT: usize = 5;

/// What a target partition received.
#[derive(Debug, Default)]
pub(super) struct Written {
    pub records: i64,
    pub batches: u64,
    pub bytes: u64,
}

/// One partition of the target cluster and this run's producer state for it.
pub(super) struct TargetPartition {
    pub client: Arc<KafkaClient>,
    pub topic: String,
    pub partition: i32,
    pub producer: (i64, i16),
    pub limiter: Arc<RateLimiter>,
    /// Next sequence number of this run's producer on this partition.
    pub sequence: i32,
}

/// A batch sent and not yet acknowledged: its bytes (with this producer's id, epoch and
/// sequence) are kept to be sent again as they are.
struct InFlight<'a> {
    bytes: Bytes,
    /// The answer to await, or why the batch could not be sent.
    ack: Result<PendingProduce, KafkaError>,
    expected: i64,
    batch: &'a PreparedBatch,
}

fn mapped(source: &SourceOffsets, target_first: i64) -> MappedBatch {
    match source {
        SourceOffsets::Range(first, last) => MappedBatch {
            source_first: *first,
            source_last: *last,
            target_first,
            count: last - first + 1,
            source_offsets: None,
        },
        SourceOffsets::List(offsets) => MappedBatch::new(offsets, target_first),
    }
}

/// Kafka sequence numbers wrap from `i32::MAX` to 0.
fn next_sequence(sequence: i32, records: i64) -> i32 {
    ((i64::from(sequence) + records) % (i64::from(i32::MAX) + 1)) as i32
}

impl TargetPartition {
    fn name(&self) -> TopicPartition {
        TopicPartition::new(&self.topic, self.partition)
    }

    fn changed(&self, detail: String) -> EngineError {
        EngineError::TargetChanged { partition: self.name(), detail }
    }

    /// A failed produce; refused for an old producer epoch, the partition was taken over by
    /// another worker that fenced this one (see `kafka::transactions`).
    fn produce_failed(&self, error: KafkaError) -> EngineError {
        match error.response_error() {
            Some(ResponseError::InvalidProducerEpoch | ResponseError::ProducerFenced) => {
                EngineError::PartitionLost { partition: self.name(), detail: error.to_string() }
            }
            _ => EngineError::kafka(format!("producing to {}", self.name()))(error),
        }
    }

    /// The partition's end offset now, in whole batches (a Kafka-compatible broker may report an
    /// end inside its last batch: see `log_reader`).
    pub async fn end_offset(&self) -> Result<i64, EngineError> {
        LogReader::log_end(&self.client, &self.topic, self.partition).await
    }

    /// Produces `batches` from `*next` on, advancing it; returns where each batch landed. Any
    /// failure stops here: a re-run matches the partition's tail against the backup and continues
    /// exactly after what did land, so an error can neither duplicate nor lose records.
    pub async fn produce(
        &mut self,
        batches: &[PreparedBatch],
        next: &mut i64,
        written: &mut Written,
    ) -> Result<Vec<MappedBatch>, EngineError> {
        let (producer_id, producer_epoch) = self.producer;
        let mut landed = Vec::with_capacity(batches.len());
        let mut in_flight: VecDeque<InFlight> = VecDeque::new();
        for batch in batches {
            self.limiter.acquire(batch.batch.size() as u64, batch.records as u64).await;
            let bytes = batch.batch.for_producer(producer_id, producer_epoch, self.sequence).as_bytes().clone();
            let ack = self.client.start_produce(&self.topic, self.partition, bytes.clone(), PRODUCE_TIMEOUT).await;
            if let Err(error) = &ack {
                if !error.is_retriable() {
                    return Err(self.produce_failed(error.clone()));
                }
            }
            in_flight.push_back(InFlight { bytes, ack, expected: *next, batch });
            *next += batch.records;
            self.sequence = next_sequence(self.sequence, batch.records);
            if in_flight.len() >= MAX_IN_FLIGHT {
                landed.push(self.acknowledged(&mut in_flight, written).await?);
            }
        }
        while !in_flight.is_empty() {
            landed.push(self.acknowledged(&mut in_flight, written).await?);
        }
        Ok(landed)
    }

    /// Waits for the oldest batch in flight to be acknowledged and removes it. A retriable failure
    /// (a batch never sent counts as one) sends every batch in flight again, in order, after the
    /// retry policy's backoff and with the leader looked up afresh, until the policy's deadline.
    async fn acknowledged(
        &self,
        in_flight: &mut VecDeque<InFlight<'_>>,
        written: &mut Written,
    ) -> Result<MappedBatch, EngineError> {
        let retry = &self.client.config().retry;
        let started = Instant::now();
        let mut attempts = 0u32;
        loop {
            let oldest = in_flight.front_mut().expect("a batch in flight");
            // (The placeholder is never read: the batch is removed, or every ack is replaced below.)
            let awaited =
                KafkaError::ConnectionLost { broker: self.name().to_string(), reason: "answer already awaited".into() };
            let answer = match std::mem::replace(&mut oldest.ack, Err(awaited)) {
                Ok(ack) => ack.ack().await,
                Err(error) => Err(error),
            };
            let error = match answer {
                Ok(ack) if ack.base_offset == oldest.expected => break,
                Ok(ack) => {
                    return Err(self.changed(format!(
                        "a batch landed at offset {} where this restore expected {}: another producer is writing \
                         to the target; restore into a topic nothing else writes to",
                        ack.base_offset, oldest.expected
                    )))
                }
                // A batch sent again that the broker had already appended (Tansu reports it this way).
                Err(error) if error.response_error() == Some(ResponseError::DuplicateSequenceNumber) => break,
                Err(error) => error,
            };
            attempts += 1;
            let wait = retry.backoff(attempts - 1);
            if !error.is_retriable() || started.elapsed() + wait > retry.deadline {
                let error = if error.is_retriable() { error.gave_up(attempts, started.elapsed()) } else { error };
                return Err(self.produce_failed(error));
            }
            tracing::warn!(partition = %self.name(), %error, attempt = attempts, "producing failed; sending the batches in flight again");
            tokio::time::sleep(wait).await;
            self.client.forget_topic(&self.topic);
            // Answers to the earlier sends are no longer awaited; a batch that cannot be sent keeps
            // its error, and the ones after it are not sent (they would arrive out of order).
            let mut blocked: Option<KafkaError> = None;
            for sent in in_flight.iter_mut() {
                sent.ack = match &blocked {
                    Some(error) => Err(error.clone()),
                    None => {
                        self.client
                            .start_produce(&self.topic, self.partition, sent.bytes.clone(), PRODUCE_TIMEOUT)
                            .await
                    }
                };
                if let Err(error) = &sent.ack {
                    if !error.is_retriable() {
                        return Err(self.produce_failed(error.clone()));
                    }
                    blocked.get_or_insert_with(|| error.clone());
                }
            }
        }
        let sent = in_flight.pop_front().expect("a batch in flight");
        written.records += sent.batch.records;
        let labels = Metrics::partition_labels(&self.topic, self.partition);
        metrics().restored_records.with_label_values(&labels).inc_by(sent.batch.records as u64);
        metrics().restored_bytes.with_label_values(&labels).inc_by(sent.batch.batch.size() as u64);
        metrics().progress.done(sent.batch.records as u64, sent.batch.batch.size() as u64);
        written.batches += 1;
        written.bytes += sent.batch.batch.size() as u64;
        Ok(mapped(&sent.batch.source, sent.expected))
    }

    /// After an interruption: the records the partition holds from `next` on must be the first
    /// of `batches`, record for record; with `more_follows`, they may also go on past `batches`
    /// (the interrupted run wrote later chunks of the segment too). Returns where the matched
    /// batches are and where this restore continues: after the last matched record, or, when the
    /// partition holds nothing more, at its end (past the control records of a writer fence).
    pub async fn match_tail(
        &self,
        next: i64,
        batches: &[PreparedBatch],
        more_follows: bool,
    ) -> Result<(Vec<MappedBatch>, i64), EngineError> {
        let wanted: i64 = batches.iter().map(|b| b.records).sum();
        // One record more than the batches hold tells "another producer wrote" from "all there".
        let tail = self.read_from(next, wanted as usize + 1).await?;
        let mut found = tail.records;
        if more_follows {
            found.truncate(wanted as usize);
        }
        let (mut matched, mut landed, mut continue_at) = (0usize, Vec::new(), next);
        while matched < found.len() {
            let Some(batch) = batches.get(landed.len()) else {
                return Err(self.changed(format!(
                    "it holds {} records after offset {next} but this restore wrote only {matched} of them; \
                     another producer wrote to it",
                    found.len()
                )));
            };
            let offset = found[matched].offset;
            let expected = batch.batch.records().map_err(|source| EngineError::Records {
                partition: self.name(),
                offset,
                source,
            })?;
            let present = found.get(matched..matched + expected.len()).unwrap_or_default();
            let same = |a: &Record, b: &Record| {
                (&a.key, &a.value, &a.headers, a.timestamp) == (&b.key, &b.value, &b.headers, b.timestamp)
            };
            // A batch lands whole, on consecutive offsets (control records only ever fall between batches).
            let consecutive = present.iter().enumerate().all(|(i, r)| r.offset == offset + i as i64);
            if present.len() != expected.len()
                || !consecutive
                || !present.iter().zip(&expected).all(|(a, b)| same(a, b))
            {
                return Err(self.changed(format!(
                    "the records at offsets {offset}.. differ from the backup; another producer wrote to it"
                )));
            }
            landed.push(mapped(&batch.source, offset));
            matched += expected.len();
            continue_at = offset + batch.records;
        }
        if tail.to_end && matched == found.len() {
            continue_at = continue_at.max(tail.end);
        }
        Ok((landed, continue_at))
    }

    /// The records of the partition from `offset` on: up to `limit` of them (a few more when a
    /// batch goes past it), or all to its end.
    async fn read_from(&self, offset: i64, limit: usize) -> Result<Tail, EngineError> {
        let mut reader = LogReader::open(&self.client, &self.topic, self.partition, Some(offset)).await?;
        if reader.position() > offset {
            return Err(self.changed(format!(
                "its records from offset {offset} on were deleted (the log starts at {}); delete the restore \
                 state of this partition to restore it again",
                reader.position()
            )));
        }
        let mut records = Vec::new();
        let mut to_end = false;
        while records.len() < limit {
            let Some(more) = reader.next_records().await? else {
                to_end = true;
                break;
            };
            records.extend(more);
        }
        Ok(Tail { records, to_end, end: reader.end() })
    }
}

/// What a partition holds after an offset.
struct Tail {
    records: Vec<Record>,
    /// True when `records` go to the partition's end.
    to_end: bool,
    /// The partition's end when it was read.
    end: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences_wrap_like_kafka() {
        assert_eq!(next_sequence(5, 3), 8);
        assert_eq!(next_sequence(i32::MAX - 1, 3), 1);
    }
}
