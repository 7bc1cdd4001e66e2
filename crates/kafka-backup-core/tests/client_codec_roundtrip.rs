//! Round trips through a real broker (Tansu) checked with an independent client
//! (confluent-kafka / librdkafka): batches librdkafka produced decode exactly with our codec for
//! every compression codec, and batches our codec encodes read back exactly in librdkafka.

use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_backup_core::kafka::{ClientConfig, FetchOptions, IsolationLevel, KafkaClient};
use kafka_backup_core::records::{split_batches, BatchOptions, Compression, Record, RecordBatch, RecordHeader};
use kafka_backup_testkit::{self as testkit, Broker, RefRecord};

async fn connect(broker: &Broker) -> KafkaClient {
    KafkaClient::connect(ClientConfig::new(vec![broker.bootstrap()])).await.expect("connect")
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

/// Fetches `topic`-0 from offset 0 until `expected` records were decoded (or 20 s passed).
async fn fetch_all(client: &KafkaClient, topic: &str, expected: usize) -> (Vec<RecordBatch>, Vec<Record>) {
    let options = FetchOptions { isolation: IsolationLevel::ReadUncommitted, ..FetchOptions::default() };
    let deadline = Instant::now() + Duration::from_secs(20);
    let (mut batches, mut records, mut offset) = (Vec::new(), Vec::new(), 0i64);
    while records.len() < expected && Instant::now() < deadline {
        let fetched = client.fetch(topic, 0, offset, &options).await.expect("fetch");
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
    let broker = Broker::start("codec-source");
    let client = connect(&broker).await;
    for codec in Compression::ALL {
        let topic = format!("librdkafka-{}", codec.name());
        testkit::create_topic(&broker.bootstrap(), &topic, 1, &[]);
        let produced = testkit::produce(
            &broker.bootstrap(),
            &topic,
            &testkit::fidelity_records(0),
            &[("compression.type", codec.name()), ("linger.ms", "200"), ("enable.idempotence", "false")],
        );
        let (batches, decoded) = fetch_all(&client, &topic, produced.len()).await;
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
    let broker = Broker::start("codec-target");
    let client = connect(&broker).await;
    for codec in Compression::ALL {
        let topic = format!("ours-{}", codec.name());
        testkit::create_topic(&broker.bootstrap(), &topic, 1, &[]);
        let mut reference = testkit::fidelity_records(0);
        for (offset, record) in reference.iter_mut().enumerate() {
            record.offset = Some(offset as i64);
        }
        let records: Vec<Record> = reference.iter().map(to_record).collect();
        // Two batches, so that the second's base offset is assigned by the broker too.
        let options = BatchOptions { compression: codec, ..BatchOptions::default() };
        for chunk in records.chunks(records.len() / 2) {
            let batch = RecordBatch::encode(chunk, &options).expect("encode");
            let ack =
                client.produce(&topic, 0, batch.as_bytes().clone(), Duration::from_secs(10)).await.expect("produce");
            assert_eq!(ack.base_offset, chunk[0].offset, "{codec:?}");
        }
        let consumed = testkit::consume(&broker.bootstrap(), &topic, &[0], reference.len());
        for record in &mut reference {
            record.timestamp_type = Some("create_time".into());
        }
        assert_eq!(consumed, reference, "codec {codec:?}");
    }
}
