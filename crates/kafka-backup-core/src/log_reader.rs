//! Reading a partition back from a cluster, record by record, from an offset to the end it had when
//! reading began: what a restore wrote, for offset maps and for verification. The end is read in
//! whole batches: some Kafka-compatible brokers report a high watermark inside the last batch
//! (Tansu's memory storage: the last batch's base offset + 1), and every record of a batch that
//! starts before the reported end was written.

use std::time::Duration;

use crate::error::EngineError;
use crate::kafka::{FetchOptions, IsolationLevel, KafkaClient, OffsetSpec};
use crate::records::{split_batches, Record};
use crate::topics::TopicPartition;

/// A partition being read from `next` up to `end`.
pub struct LogReader<'a> {
    client: &'a KafkaClient,
    topic: String,
    partition: i32,
    next: i64,
    end: i64,
    options: FetchOptions,
}

impl<'a> LogReader<'a> {
    /// Reads `topic`-`partition` from `from` (the log start when `None` or when `from` was deleted)
    /// to its current end.
    pub async fn open(
        client: &'a KafkaClient,
        topic: &str,
        partition: i32,
        from: Option<i64>,
    ) -> Result<LogReader<'a>, EngineError> {
        let context = || format!("reading {topic}-{partition} back");
        let bound = |spec| client.partition_offset(topic, partition, spec);
        let start = bound(OffsetSpec::Earliest).await.map_err(EngineError::kafka(context()))?;
        let end = bound(OffsetSpec::Latest).await.map_err(EngineError::kafka(context()))?;
        let options = FetchOptions {
            isolation: IsolationLevel::ReadUncommitted,
            max_wait: Duration::from_millis(100),
            ..FetchOptions::default()
        };
        let next = from.map_or(start, |from| from.max(start));
        Ok(Self { client, topic: topic.to_string(), partition, next, end, options })
    }

    /// The end of `topic`-`partition` in whole batches (see the module header): its reported end,
    /// checked by reading the batch holding the offset before it.
    pub async fn log_end(client: &'a KafkaClient, topic: &str, partition: i32) -> Result<i64, EngineError> {
        let mut reader = Self::open(client, topic, partition, None).await?;
        reader.next = reader.next.max(reader.end - 1);
        while reader.next_records().await?.is_some() {}
        Ok(reader.end())
    }

    /// The offset the next records are read from (the log start when reading began before it).
    pub fn position(&self) -> i64 {
        self.next
    }

    /// Where the partition ended when reading began: its reported end, or the end of the last
    /// batch read when that batch goes on past it.
    pub fn end(&self) -> i64 {
        self.end.max(self.next)
    }

    /// The next records (those of control batches left out), `None` once the end is reached.
    pub async fn next_records(&mut self) -> Result<Option<Vec<Record>>, EngineError> {
        let name = TopicPartition::new(&self.topic, self.partition);
        while self.next < self.end {
            let fetched = self
                .client
                .fetch(&self.topic, self.partition, self.next, &self.options)
                .await
                .map_err(EngineError::kafka(format!("reading {name} back")))?;
            let (at, end) = (self.next, self.end);
            let decode_error = |source| EngineError::Records { partition: name.clone(), offset: at, source };
            let batches = split_batches(fetched.records).map_err(decode_error)?.batches;
            let batches: Vec<_> =
                batches.into_iter().filter(|b| b.last_offset() >= at && b.base_offset() < end).collect();
            if batches.is_empty() {
                break;
            }
            let mut records = Vec::new();
            for batch in &batches {
                if !batch.is_control() {
                    records.extend(batch.records().map_err(decode_error)?.into_iter().filter(|r| r.offset >= at));
                }
                self.next = batch.last_offset() + 1;
            }
            if !records.is_empty() {
                return Ok(Some(records));
            }
        }
        Ok(None)
    }
}
