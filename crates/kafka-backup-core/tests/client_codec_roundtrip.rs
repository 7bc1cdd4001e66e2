//! Round trips through the Apache Kafka "source" cluster checked with an independent client
//! (confluent-kafka / librdkafka): batches librdkafka produced decode exactly with our codec for
//! every compression codec, and batches our codec encodes read back exactly in librdkafka.

use std::time::Duration;

use bytes::Bytes;
use kafka_backup_core::kafka::{ClientConfig, FetchOptions, IsolationLevel, KafkaClient};
use kafka_backup_core::records::{split_batches, BatchOptions, Compression, Record, RecordBatch, RecordHeader};
use kafka_backup_testkit::{self as testkit, unique, KafkaCluster, RefRecord};

async fn connect() -> KafkaClient {
    KafkaClient::connect(ClientConfig::new(vec![KafkaCluster::source().bootstrap()])).await.expect("connect")
}

fn to_header(key: &str, value: &Option<Vec<u8>>) -> RecordHeader {
    RecordHeader { key: Bytes::from(key.to_string()), value: value.clone().map(Bytes::from) }
}

fn to_record(reference: &RefRecord) -> Record {
    Record {
        offset: reference.offset.expect("offset"),
        timestamp: reference.timestamp.expect("timestamp"),
        key: reference.key.clone().map(Bytes::from),
        value: reference.value.clone().map(Bytes::from),
        headers: reference.headers.iter().map(|(k, v)| to_header(k, v)).collect(),
    }
}

/// Fetches `topic`-0 from offset 0 to its high watermark.
async fn fetch_all(client: &KafkaClient, topic: &str) -> (Vec<RecordBatch>, Vec<Record>) {
    let options = FetchOptions { isolation: IsolationLevel::ReadUncommitted, ..FetchOptions::default() };
    let (mut batches, mut records, mut offset, mut high_watermark) = (Vec::new(), Vec::new(), 0i64, 1i64);
    while offset < high_watermark {
        let fetched = client.fetch(topic, 0, offset, &options).await.expect("fetch");
        high_watermark = fetched.high_watermark;
        for batch in split_batches(fetched.records).expect("split").batches {
            if batch.last_offset() < offset {
                continue;
            }
            records.extend(batch.records().expect("decode").into_iter().filter(|r| r.offset >= offset));
            offset = batch.last_offset() + 1;
            batches.push(batch);
        }
    }
    (batches, records)
}

#[tokio::test]
async fn batches_produced_by_librdkafka_decode_exactly_for_every_codec() {
    let bootstrap = KafkaCluster::source().bootstrap();
    let client = connect().await;
    for codec in Compression::ALL {
        let topic = unique(&format!("librdkafka-{}", codec.name()));
        testkit::create_topic(&bootstrap, &topic, 1, testkit::FIDELITY_TOPIC_CONFIGS);
        let produced = testkit::produce(
            &bootstrap,
            &topic,
            &testkit::fidelity_records(0),
            &[("compression.type", codec.name()), ("linger.ms", "200"), ("enable.idempotence", "false")],
        );
        let (batches, decoded) = fetch_all(&client, &topic).await;
        let expected: Vec<Record> = produced.iter().map(to_record).collect();
        assert_eq!(decoded, expected, "codec {codec:?}");
        assert!(batches.iter().any(|b| b.record_count() > 1), "{codec:?}: librdkafka should batch several records");
        for batch in &batches {
            batch.verify_crc().expect("crc");
            assert_eq!(batch.compression().unwrap(), codec, "the broker kept librdkafka's {codec:?} batch");
        }
    }
}

#[tokio::test]
async fn batches_encoded_by_us_are_read_back_exactly_by_librdkafka() {
    let bootstrap = KafkaCluster::source().bootstrap();
    let client = connect().await;
    for codec in Compression::ALL {
        let topic = unique(&format!("ours-{}", codec.name()));
        testkit::create_topic(&bootstrap, &topic, 1, testkit::FIDELITY_TOPIC_CONFIGS);
        let mut reference = testkit::fidelity_records(0);
        for (offset, record) in reference.iter_mut().enumerate() {
            record.offset = Some(offset as i64);
        }
        let records: Vec<Record> = reference.iter().map(to_record).collect();
        // Two batches, so that the second's base offset is assigned by the broker too.
        let options = BatchOptions { compression: codec, ..BatchOptions::default() };
        for chunk in records.chunks(records.len() / 2) {
            // Apache Kafka takes produced batches with base offset 0 only (it assigns the offsets).
            let from_zero: Vec<Record> =
                chunk.iter().map(|r| Record { offset: r.offset - chunk[0].offset, ..r.clone() }).collect();
            let batch = RecordBatch::encode(&from_zero, &options).expect("encode");
            let ack =
                client.produce(&topic, 0, batch.as_bytes().clone(), Duration::from_secs(10)).await.expect("produce");
            assert_eq!(ack.base_offset, chunk[0].offset, "{codec:?}");
        }
        let consumed = testkit::consume(&bootstrap, &topic, &[0]);
        for record in &mut reference {
            record.timestamp_type = Some("create_time".into());
        }
        assert_eq!(consumed, reference, "codec {codec:?}");
    }
}
