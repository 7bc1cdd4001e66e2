//! Writing one target partition: producing prepared batches with the run's idempotent producer
//! (several in flight, in order, each acknowledgement checked against the expected offset), and,
//! after an interruption, matching what the partition already holds against the batches to write.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::ResponseError;

use super::prepare::{PreparedBatch, SourceOffsets};
use super::rate::RateLimiter;
use super::RestoreError;
use crate::kafka::{FetchOptions, IsolationLevel, KafkaClient, KafkaError, OffsetSpec, PendingProduce};
use crate::offset_map::MappedBatch;
use crate::records::{split_batches, Record};

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

/// A batch sent and not yet acknowledged.
struct InFlight<'a> {
    ack: PendingProduce,
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
    fn name(&self) -> String {
        format!("{}-{}", self.topic, self.partition)
    }

    fn changed(&self, detail: String) -> RestoreError {
        RestoreError::TargetChanged { partition: self.name(), detail }
    }

    fn kafka(&self, action: &str) -> impl FnOnce(KafkaError) -> RestoreError {
        crate::error::EngineError::kafka(format!("{action} {}", self.name()))
    }

    /// The partition's end offset now.
    pub async fn end_offset(&self) -> Result<i64, RestoreError> {
        let end = self
            .client
            .list_offsets(&self.topic, &[self.partition], OffsetSpec::Latest, IsolationLevel::ReadUncommitted)
            .await
            .map_err(self.kafka("reading the end offset of"))?;
        Ok(end.first().map_or(0, |&(_, offset)| offset))
    }

    /// Produces `batches` from `*next` on, advancing it; returns where each batch landed. Any
    /// failure stops here: a re-run matches the partition's tail against the backup and continues
    /// exactly after what did land, so an error can neither duplicate nor lose records.
    pub async fn produce(
        &mut self,
        batches: &[PreparedBatch],
        next: &mut i64,
        written: &mut Written,
    ) -> Result<Vec<MappedBatch>, RestoreError> {
        let (producer_id, producer_epoch) = self.producer;
        let mut landed = Vec::with_capacity(batches.len());
        let mut in_flight: VecDeque<InFlight> = VecDeque::new();
        for batch in batches {
            self.limiter.acquire(batch.batch.size() as u64, batch.records as u64).await;
            let bytes = batch.batch.for_producer(producer_id, producer_epoch, self.sequence).as_bytes().clone();
            let ack = self
                .client
                .start_produce(&self.topic, self.partition, bytes, PRODUCE_TIMEOUT)
                .await
                .map_err(self.kafka("producing to"))?;
            in_flight.push_back(InFlight { ack, expected: *next, batch });
            *next += batch.records;
            self.sequence = next_sequence(self.sequence, batch.records);
            if in_flight.len() >= MAX_IN_FLIGHT {
                let sent = in_flight.pop_front().expect("non-empty");
                landed.push(self.acknowledged(sent, written).await?);
            }
        }
        while let Some(sent) = in_flight.pop_front() {
            landed.push(self.acknowledged(sent, written).await?);
        }
        Ok(landed)
    }

    async fn acknowledged(&self, sent: InFlight<'_>, written: &mut Written) -> Result<MappedBatch, RestoreError> {
        match sent.ack.ack().await {
            Ok(ack) if ack.base_offset == sent.expected => {}
            Ok(ack) => {
                return Err(self.changed(format!(
                    "a batch landed at offset {} where this restore expected {}: another producer is writing to \
                     the target; restore into a topic nothing else writes to",
                    ack.base_offset, sent.expected
                )))
            }
            // A retried request the broker had already appended (Tansu reports it this way).
            Err(error) if error.response_error() == Some(ResponseError::DuplicateSequenceNumber) => {}
            Err(error) => return Err(self.kafka("producing to")(error)),
        }
        written.records += sent.batch.records;
        written.batches += 1;
        written.bytes += sent.batch.batch.size() as u64;
        Ok(mapped(&sent.batch.source, sent.expected))
    }

    /// After an interruption: the records the partition holds from `next` on must be the first
    /// of `batches`, record for record. Returns where those batches are.
    pub async fn match_tail(&self, next: i64, batches: &[PreparedBatch]) -> Result<Vec<MappedBatch>, RestoreError> {
        let found = self.read_from(next).await?;
        let (mut matched, mut landed, mut offset) = (0usize, Vec::new(), next);
        while matched < found.len() {
            let Some(batch) = batches.get(landed.len()) else {
                return Err(self.changed(format!(
                    "it holds {} records after offset {next} but this restore wrote only {matched} of them; \
                     another producer wrote to it",
                    found.len()
                )));
            };
            let expected = batch.batch.records().map_err(|source| RestoreError::Records {
                partition: self.name(),
                offset,
                source,
            })?;
            let present = found.get(matched..matched + expected.len()).unwrap_or_default();
            let same = |a: &Record, b: &Record| {
                (&a.key, &a.value, &a.headers, a.timestamp) == (&b.key, &b.value, &b.headers, b.timestamp)
            };
            if present.len() != expected.len() || !present.iter().zip(&expected).all(|(a, b)| same(a, b)) {
                return Err(self.changed(format!(
                    "the records at offsets {offset}.. differ from the backup; another producer wrote to it"
                )));
            }
            landed.push(mapped(&batch.source, offset));
            matched += expected.len();
            offset += batch.records;
        }
        Ok(landed)
    }

    /// Every record of the partition from `offset` to its end.
    async fn read_from(&self, mut offset: i64) -> Result<Vec<Record>, RestoreError> {
        let options = FetchOptions {
            max_wait: Duration::from_millis(100),
            isolation: IsolationLevel::ReadUncommitted,
            ..FetchOptions::default()
        };
        let mut records = Vec::new();
        loop {
            let fetched = self
                .client
                .fetch(&self.topic, self.partition, offset, &options)
                .await
                .map_err(self.kafka("reading back"))?;
            let split = split_batches(fetched.records).map_err(|source| RestoreError::Records {
                partition: self.name(),
                offset,
                source,
            })?;
            let whole: Vec<_> = split.batches.into_iter().filter(|b| b.last_offset() >= offset).collect();
            if whole.is_empty() {
                return Ok(records);
            }
            for batch in whole {
                let decoded = batch.records().map_err(|source| RestoreError::Records {
                    partition: self.name(),
                    offset,
                    source,
                })?;
                records.extend(decoded.into_iter().filter(|r| r.offset >= offset));
                offset = batch.last_offset() + 1;
            }
        }
    }
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
