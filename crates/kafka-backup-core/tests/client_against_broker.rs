//! The Kafka client against a real broker (Tansu), checked with confluent-kafka: bounded
//! failure on dead or silent brokers, reconnect after a real broker kill and restart, metadata,
//! offsets, topic administration, idempotent producing, and consumer-group calls.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_backup_core::kafka::{
    ClientConfig, CommittedOffset, IsolationLevel, KafkaClient, KafkaError, NewTopic, OffsetSpec,
};
use kafka_backup_core::records::{BatchOptions, Record, RecordBatch};
use kafka_backup_core::retry::RetryPolicy;
use kafka_backup_testkit::{self as testkit, Broker};
use kafka_protocol::ResponseError;

fn quick_config(bootstrap: Vec<String>) -> ClientConfig {
    let mut config = ClientConfig::new(bootstrap);
    config.bootstrap_timeout = Duration::from_secs(2);
    config.request_timeout = Duration::from_millis(700);
    config.retry = RetryPolicy { deadline: Duration::from_secs(3), ..RetryPolicy::default() };
    config
}

#[tokio::test]
async fn an_unreachable_bootstrap_list_fails_in_bounded_time_naming_every_server() {
    let dead = [testkit::free_port(), testkit::free_port()].map(|p| format!("127.0.0.1:{p}"));
    let started = Instant::now();
    let error = KafkaClient::connect(quick_config(dead.to_vec())).await.err().expect("must fail");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    assert!(matches!(error, KafkaError::BootstrapFailed { .. }), "{error}");
    let text = error.to_string();
    assert!(text.contains(&dead[0]) && text.contains(&dead[1]) && text.contains("refused"), "{text}");
}

#[tokio::test]
async fn a_broker_that_accepts_but_never_answers_times_out() {
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = silent.local_addr().unwrap().to_string();
    let started = Instant::now();
    let error = KafkaClient::connect(quick_config(vec![address.clone()])).await.err().expect("must fail");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    let text = error.to_string();
    assert!(text.contains(&address) && text.contains("ApiVersions"), "{text}");
}

#[tokio::test]
async fn the_client_reconnects_after_the_broker_is_killed_and_restarted() {
    let mut broker = Broker::start("restart");
    let port = broker.port();
    let client = KafkaClient::connect(quick_config(vec![broker.bootstrap()])).await.unwrap();
    broker.kill();
    let error = client.refresh_metadata(Some(&[])).await;
    assert!(error.is_err(), "the broker is down");
    let _restarted = Broker::start_on(port, "restart");
    testkit::create_topic(&format!("127.0.0.1:{port}"), "after-restart", 2, &[]);
    let metadata = client.refresh_metadata(None).await.expect("reconnected");
    assert_eq!(metadata.topics["after-restart"].partitions.len(), 2);
}

#[tokio::test]
async fn metadata_and_offsets_match_what_librdkafka_wrote() {
    let broker = Broker::start("offsets");
    testkit::create_topic(&broker.bootstrap(), "events", 3, &[]);
    testkit::produce_one_per_batch(&broker.bootstrap(), "events", 1, 5);
    let client = KafkaClient::connect(ClientConfig::new(vec![broker.bootstrap()])).await.unwrap();
    let metadata = client.refresh_metadata(None).await.unwrap();
    assert_eq!(metadata.cluster_id.as_deref(), Some("offsets"));
    let events = &metadata.topics["events"];
    assert_eq!(events.partitions.keys().copied().collect::<Vec<_>>(), vec![0, 1, 2]);
    assert!(events.partitions.values().all(|p| p.leader.is_some()));
    let latest =
        client.list_offsets("events", &[0, 1, 2], OffsetSpec::Latest, IsolationLevel::ReadCommitted).await.unwrap();
    assert_eq!(latest, vec![(0, 0), (1, 5), (2, 0)]);
    let earliest =
        client.list_offsets("events", &[1], OffsetSpec::Earliest, IsolationLevel::ReadUncommitted).await.unwrap();
    assert_eq!(earliest, vec![(1, 0)]);
}

#[tokio::test]
async fn an_unknown_topic_is_a_clear_error_not_a_retry_loop() {
    let broker = Broker::start("unknown");
    let client = KafkaClient::connect(quick_config(vec![broker.bootstrap()])).await.unwrap();
    let started = Instant::now();
    let error = client
        .list_offsets("no-such-topic", &[0], OffsetSpec::Latest, IsolationLevel::ReadCommitted)
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
    assert!(error.to_string().contains("no-such-topic"), "{error}");
    assert!(error.to_string().contains("does not exist"), "{error}");
}

#[tokio::test]
async fn topics_are_created_with_configs_and_duplicates_are_recognisable() {
    let broker = Broker::start("admin");
    let client = KafkaClient::connect(ClientConfig::new(vec![broker.bootstrap()])).await.unwrap();
    let topic = NewTopic {
        name: "compacted".into(),
        partitions: 4,
        replication_factor: 1,
        configs: vec![("cleanup.policy".into(), "compact".into()), ("retention.ms".into(), "3600000".into())],
    };
    client.create_topic(&topic, Duration::from_secs(10)).await.unwrap();
    assert_eq!(client.cached_metadata().topics["compacted"].partitions.len(), 4);
    let configs = client.describe_topic_configs("compacted").await.unwrap();
    let value_of = |name: &str| configs.iter().find(|c| c.name == name).and_then(|c| c.value.clone());
    assert_eq!(value_of("cleanup.policy").as_deref(), Some("compact"));
    assert_eq!(value_of("retention.ms").as_deref(), Some("3600000"));
    let again = client.create_topic(&topic, Duration::from_secs(10)).await.unwrap_err();
    assert_eq!(again.response_error(), Some(ResponseError::TopicAlreadyExists), "{again}");
}

#[tokio::test]
async fn idempotent_batches_land_once_and_librdkafka_reads_them() {
    let broker = Broker::start("idempotent");
    testkit::create_topic(&broker.bootstrap(), "idem", 1, &[]);
    let client = KafkaClient::connect(ClientConfig::new(vec![broker.bootstrap()])).await.unwrap();
    let (producer_id, producer_epoch) = client.init_producer_id().await.unwrap();
    assert!(producer_id >= 0, "producer id {producer_id}");
    let record = |offset: i64| Record {
        offset,
        timestamp: 1_700_000_000_000 + offset,
        key: Some(Bytes::from(format!("k{offset}"))),
        value: Some(Bytes::from(format!("v{offset}"))),
        headers: vec![],
    };
    let options = BatchOptions { producer_id, producer_epoch, base_sequence: 0, ..BatchOptions::default() };
    let batch = RecordBatch::encode(&[record(0), record(1)], &options).unwrap();
    let ack = client.produce("idem", 0, batch.as_bytes().clone(), Duration::from_secs(10)).await.unwrap();
    assert_eq!(ack.base_offset, 0);
    // The same batch again, as a retry after a lost acknowledgement would send it.
    // Apache Kafka acknowledges it with the original offset; Tansu answers DUPLICATE_SEQUENCE_NUMBER.
    match client.produce("idem", 0, batch.as_bytes().clone(), Duration::from_secs(10)).await {
        Ok(again) => assert_eq!(again.base_offset, 0),
        Err(error) => assert_eq!(error.response_error(), Some(ResponseError::DuplicateSequenceNumber), "{error}"),
    }
    let next = RecordBatch::encode(&[record(2)], &BatchOptions { base_sequence: 2, ..options }).unwrap();
    client.produce("idem", 0, next.as_bytes().clone(), Duration::from_secs(10)).await.unwrap();
    let consumed = testkit::consume(&broker.bootstrap(), "idem", &[0], 3);
    let values: Vec<_> = consumed.iter().map(|r| r.value.clone().unwrap()).collect();
    assert_eq!(values, vec![b"v0".to_vec(), b"v1".to_vec(), b"v2".to_vec()]);
    assert_eq!(consumed.last().unwrap().offset, Some(2), "the duplicate took no offsets");
}

#[tokio::test]
async fn group_offsets_round_trip_between_our_client_and_librdkafka() {
    let broker = Broker::start("groups");
    testkit::create_topic(&broker.bootstrap(), "orders", 2, &[]);
    testkit::produce_one_per_batch(&broker.bootstrap(), "orders", 0, 3);
    testkit::produce_one_per_batch(&broker.bootstrap(), "orders", 1, 3);
    testkit::commit(&broker.bootstrap(), "billing", &[("orders", 0, 2), ("orders", 1, 3)]);

    let client = KafkaClient::connect(ClientConfig::new(vec![broker.bootstrap()])).await.unwrap();
    let mut offsets = client.committed_offsets("billing").await.unwrap();
    offsets.sort_by_key(|o| o.partition);
    let seen: Vec<_> = offsets.iter().map(|o| (o.topic.as_str(), o.partition, o.offset)).collect();
    assert_eq!(seen, vec![("orders", 0, 2), ("orders", 1, 3)]);

    let ours = [
        CommittedOffset { topic: "orders".into(), partition: 0, offset: 1, metadata: None },
        CommittedOffset { topic: "orders".into(), partition: 1, offset: 0, metadata: None },
    ];
    client.commit_offsets("restored-group", &ours).await.unwrap();
    let read_back = testkit::committed(&broker.bootstrap(), "restored-group", "orders", &[0, 1]);
    assert_eq!(read_back.into_iter().collect::<Vec<_>>(), vec![(0, 1), (1, 0)]);

    let groups = client.list_groups().await.unwrap();
    let ids: Vec<_> = groups.iter().map(|g| g.group_id.as_str()).collect();
    assert!(ids.contains(&"billing") && ids.contains(&"restored-group"), "{ids:?}");
    let described = client.describe_group("billing").await.unwrap();
    assert_eq!(described.group_id, "billing");
    assert!(!described.state.is_empty());
}
