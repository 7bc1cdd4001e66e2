//! Transactional ids as writer fences: InitProducerId with a transactional id (the same producer id
//! each time, its epoch bumped), and an empty aborted transaction that puts the new epoch on a partition.

use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, EndTxnRequest, InitProducerIdRequest, ProducerId, TopicName, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;

use super::client::{KafkaClient, Route};
use super::KafkaError;

/// The transaction timeout given with a transactional id: the fencing transaction is ended at once.
const TRANSACTION_TIMEOUT_MS: i32 = 60_000;

fn transactional_id(id: &str) -> TransactionalId {
    TransactionalId(StrBytes::from_string(id.to_string()))
}

fn failed(api: &'static str, id: &str, broker: &str, code: i16) -> KafkaError {
    KafkaError::broker(api, format!(" for transactional id {id}"), broker, code, None)
}

impl KafkaClient {
    /// The producer id of `id` with a new epoch: a producer still using an older epoch of it is
    /// refused (INVALID_PRODUCER_EPOCH) by every partition that has seen the new one. Retried while
    /// the id's previous transaction is being completed.
    pub async fn init_transactional_producer(&self, id: &str) -> Result<(i64, i16), KafkaError> {
        self.on("InitProducerId", Route::TransactionCoordinator(id), |connection| async move {
            let request = InitProducerIdRequest::default()
                .with_transactional_id(Some(transactional_id(id)))
                .with_transaction_timeout_ms(TRANSACTION_TIMEOUT_MS)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1);
            let response = connection.send(&request).await?;
            if response.error_code != 0 {
                return Err(failed("InitProducerId", id, connection.address(), response.error_code));
            }
            Ok((response.producer_id.0, response.producer_epoch))
        })
        .await
    }

    /// Fences every earlier writer of `topic`-`partition` that used `id`'s producer id: bumps the
    /// epoch, adds the partition to an empty transaction and aborts it, so that the coordinator
    /// writes an abort marker with the new epoch into the partition (one offset, a control record
    /// that no consumer sees), after which the partition refuses the older epochs. Returns the producer
    /// id and epoch to write with, once the marker is written.
    pub async fn fence_partition_writers(
        &self,
        id: &str,
        topic: &str,
        partition: i32,
    ) -> Result<(i64, i16), KafkaError> {
        let (producer_id, epoch) = self.init_transactional_producer(id).await?;
        self.on("AddPartitionsToTxn", Route::TransactionCoordinator(id), |connection| async move {
            let request = AddPartitionsToTxnRequest::default()
                .with_v3_and_below_transactional_id(transactional_id(id))
                .with_v3_and_below_producer_id(ProducerId(producer_id))
                .with_v3_and_below_producer_epoch(epoch)
                .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                    .with_partitions(vec![partition])]);
            let response = connection.send(&request).await?;
            let code = response
                .results_by_topic_v3_and_below
                .iter()
                .flat_map(|t| &t.results_by_partition)
                .map(|p| p.partition_error_code)
                .find(|&code| code != 0)
                .unwrap_or(response.error_code);
            if code != 0 {
                return Err(failed("AddPartitionsToTxn", id, connection.address(), code));
            }
            Ok(())
        })
        .await?;
        self.on("EndTxn", Route::TransactionCoordinator(id), |connection| async move {
            let request = EndTxnRequest::default()
                .with_transactional_id(transactional_id(id))
                .with_producer_id(ProducerId(producer_id))
                .with_producer_epoch(epoch)
                .with_committed(false);
            let response = connection.send(&request).await?;
            if response.error_code != 0 {
                return Err(failed("EndTxn", id, connection.address(), response.error_code));
            }
            Ok(())
        })
        .await?;
        // The markers are written after EndTxn answers; the id is initialized again (refused with
        // CONCURRENT_TRANSACTIONS, and retried, until they are), which bumps the epoch once more.
        self.init_transactional_producer(id).await
    }
}
