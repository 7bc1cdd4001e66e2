//! The Kafka client against real brokers, checked with confluent-kafka: failure (not a hang) on
//! dead or silent brokers, reconnect after a real broker kill and restart (Tansu, which restarts
//! on its port in milliseconds), and against the Apache Kafka "source" cluster: metadata, offsets,
//! topic administration, idempotent producing, and consumer-group calls.

use std::future::Future;
use std::net::TcpListener;
use std::time::Duration;

use bytes::Bytes;
use kafka_backup_core::kafka::{
    ClientConfig, CommittedOffset, IsolationLevel, KafkaClient, KafkaError, NewTopic, OffsetSpec,
};
use kafka_backup_core::records::{BatchOptions, Record, RecordBatch};
use kafka_backup_core::retry::RetryPolicy;
use kafka_backup_testkit::{self as testkit, unique, Broker, KafkaCluster};
use kafka_protocol::ResponseError;

/// Runs `call`, panicking if it hangs: only a hang fails here, never a slow machine.
async fn without_hanging<T>(call: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(120), call).await.expect("the call hung")
}

fn source() -> Vec<String> {
    vec![KafkaCluster::source().bootstrap()]
}

fn quick_config(bootstrap: Vec<String>) -> ClientConfig {
    let mut config = ClientConfig::new(bootstrap);
    config.bootstrap_timeout = Duration::from_secs(2);
    config.request_timeout = Duration::from_millis(700);
    config.retry = RetryPolicy { deadline: Duration::from_secs(3), ..RetryPolicy::default() };
    config
}

#[tokio::test]
async fn an_unreachable_bootstrap_list_fails_naming_every_server() {
    let dead = [testkit::free_port(), testkit::free_port()].map(|p| format!("127.0.0.1:{p}"));
    let error = without_hanging(KafkaClient::connect(quick_config(dead.to_vec()))).await.err().expect("must fail");
    assert!(matches!(error, KafkaError::BootstrapFailed { .. }), "{error}");
    let text = error.to_string();
    assert!(text.contains(&dead[0]) && text.contains(&dead[1]) && text.contains("refused"), "{text}");
}

#[tokio::test]
async fn a_broker_that_accepts_but_never_answers_times_out() {
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = silent.local_addr().unwrap().to_string();
    let error =
        without_hanging(KafkaClient::connect(quick_config(vec![address.clone()]))).await.err().expect("must fail");
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
    let cluster = KafkaCluster::source();
    let events = unique("events");
    testkit::create_topic(&cluster.bootstrap(), &events, 3, &[]);
    testkit::produce_small(&cluster.bootstrap(), &events, 1, 5);
    let client = KafkaClient::connect(ClientConfig::new(source())).await.unwrap();
    let metadata = client.refresh_metadata(None).await.unwrap();
    assert_eq!(metadata.cluster_id.as_deref(), Some(cluster.cluster_id()));
    let described = &metadata.topics[&events];
    assert_eq!(described.partitions.keys().copied().collect::<Vec<_>>(), vec![0, 1, 2]);
    assert!(described.partitions.values().all(|p| p.leader.is_some()));
    let latest =
        client.list_offsets(&events, &[0, 1, 2], OffsetSpec::Latest, IsolationLevel::ReadCommitted).await.unwrap();
    assert_eq!(latest, vec![(0, 0), (1, 5), (2, 0)]);
    let earliest =
        client.list_offsets(&events, &[1], OffsetSpec::Earliest, IsolationLevel::ReadUncommitted).await.unwrap();
    assert_eq!(earliest, vec![(1, 0)]);
}

#[tokio::test]
async fn an_unknown_topic_is_a_clear_error_not_a_retry_loop() {
    let client = KafkaClient::connect(quick_config(source())).await.unwrap();
    let missing = unique("no-such-topic");
    let error = without_hanging(client.list_offsets(&missing, &[0], OffsetSpec::Latest, IsolationLevel::ReadCommitted))
        .await
        .unwrap_err();
    assert!(error.to_string().contains(&missing), "{error}");
    assert!(error.to_string().contains("does not exist"), "{error}");
}

#[tokio::test]
async fn topics_are_created_with_configs_and_duplicates_are_recognisable() {
    let client = KafkaClient::connect(ClientConfig::new(source())).await.unwrap();
    let name = unique("compacted");
    let topic = NewTopic {
        name: name.clone(),
        partitions: 4,
        replication_factor: 1,
        configs: vec![("cleanup.policy".into(), "compact".into()), ("retention.ms".into(), "3600000".into())],
    };
    client.create_topic(&topic, Duration::from_secs(10)).await.unwrap();
    assert_eq!(client.cached_metadata().topics[&name].partitions.len(), 4);
    // Every leader is known at once; each partition answers once its leader has created its log.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while client.serving_partitions(&name).await.unwrap() != (0..4).collect() {
        assert!(tokio::time::Instant::now() < deadline, "partitions of {name} never answered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(client.serving_partitions("no-such-topic-here").await.is_err(), "an unknown topic is an error");
    let configs = client.describe_topic_configs(&name).await.unwrap();
    let config = |name: &str| configs.iter().find(|c| c.name == name).map(|c| (c.value.clone(), c.set_on_topic));
    assert_eq!(config("cleanup.policy"), Some((Some("compact".into()), true)));
    assert_eq!(config("retention.ms"), Some((Some("3600000".into()), true)));
    assert_eq!(config("segment.bytes").map(|(_, set)| set), Some(false), "a cluster default is not the topic's");
    let again = client.create_topic(&topic, Duration::from_secs(10)).await.unwrap_err();
    assert_eq!(again.response_error(), Some(ResponseError::TopicAlreadyExists), "{again}");
}

#[tokio::test]
async fn idempotent_batches_land_once_and_librdkafka_reads_them() {
    let bootstrap = KafkaCluster::source().bootstrap();
    let idem = unique("idem");
    testkit::create_topic(&bootstrap, &idem, 1, &[]);
    let client = KafkaClient::connect(ClientConfig::new(source())).await.unwrap();
    let (producer_id, producer_epoch) = client.init_producer_id().await.unwrap();
    assert!(producer_id >= 0, "producer id {producer_id}");
    // Current timestamps: older ones would fall to the topic's time retention at once.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let record = |offset: i64| Record {
        offset,
        timestamp: now + offset,
        key: Some(Bytes::from(format!("k{offset}"))),
        value: Some(Bytes::from(format!("v{offset}"))),
        headers: vec![],
    };
    let options = BatchOptions { producer_id, producer_epoch, base_sequence: 0, ..BatchOptions::default() };
    let batch = RecordBatch::encode(&[record(0), record(1)], &options).unwrap();
    let ack = client.produce(&idem, 0, batch.as_bytes().clone(), Duration::from_secs(10)).await.unwrap();
    assert_eq!(ack.base_offset, 0);
    // The same batch again, as a retry after a lost acknowledgement would send it: Apache Kafka
    // acknowledges it with the original offset and writes nothing.
    let again = client.produce(&idem, 0, batch.as_bytes().clone(), Duration::from_secs(10)).await.unwrap();
    assert_eq!(again.base_offset, 0);
    // Apache Kafka takes produced batches with base offset 0 only (it assigns the offsets).
    let next = RecordBatch::encode(&[Record { offset: 0, ..record(2) }], &BatchOptions { base_sequence: 2, ..options })
        .unwrap();
    client.produce(&idem, 0, next.as_bytes().clone(), Duration::from_secs(10)).await.unwrap();
    let consumed = testkit::consume(&bootstrap, &idem, &[0]);
    let values: Vec<_> = consumed.iter().map(|r| r.value.clone().unwrap()).collect();
    assert_eq!(values, vec![b"v0".to_vec(), b"v1".to_vec(), b"v2".to_vec()]);
    assert_eq!(consumed.last().unwrap().offset, Some(2), "the duplicate took no offsets");
}

#[tokio::test]
async fn group_offsets_round_trip_between_our_client_and_librdkafka() {
    let bootstrap = KafkaCluster::source().bootstrap();
    let (orders, billing, restored) = (unique("orders"), unique("billing"), unique("restored-group"));
    testkit::create_topic(&bootstrap, &orders, 2, &[]);
    testkit::produce_small(&bootstrap, &orders, 0, 3);
    testkit::produce_small(&bootstrap, &orders, 1, 3);
    testkit::commit(&bootstrap, &billing, &[(&orders, 0, 2), (&orders, 1, 3)]);

    let client = KafkaClient::connect(ClientConfig::new(source())).await.unwrap();
    let mut offsets = client.committed_offsets(&billing).await.unwrap();
    offsets.sort_by_key(|o| o.partition);
    let seen: Vec<_> = offsets.iter().map(|o| (o.topic.as_str(), o.partition, o.offset)).collect();
    assert_eq!(seen, vec![(orders.as_str(), 0, 2), (orders.as_str(), 1, 3)]);

    let ours = [
        CommittedOffset { topic: orders.clone(), partition: 0, offset: 1, metadata: None },
        CommittedOffset { topic: orders.clone(), partition: 1, offset: 0, metadata: None },
    ];
    client.commit_offsets(&restored, &ours).await.unwrap();
    let read_back = testkit::committed(&bootstrap, &restored, &orders, &[0, 1]);
    assert_eq!(read_back.into_iter().collect::<Vec<_>>(), vec![(0, 1), (1, 0)]);

    let groups = client.list_groups().await.unwrap();
    let ids: Vec<_> = groups.iter().map(|g| g.group_id.as_str()).collect();
    assert!(ids.contains(&billing.as_str()) && ids.contains(&restored.as_str()), "{ids:?}");
    let described = client.describe_group(&billing).await.unwrap();
    assert_eq!((described.group_id.as_str(), described.state.as_str()), (billing.as_str(), "Empty"));
    let never_seen = unique("never-seen");
    let unknown = client.describe_group(&never_seen).await.unwrap();
    assert_eq!((unknown.state.as_str(), unknown.members.len()), ("Dead", 0));

    // Asked together (one request per coordinator), each group gets the answer it gets alone.
    let asked = vec![never_seen.clone(), billing.clone(), restored.clone()];
    let together = client.describe_groups(&asked).await;
    let names: Vec<&String> = together.iter().map(|(group, _)| group).collect();
    assert_eq!(names, asked.iter().collect::<Vec<_>>(), "in the order asked");
    assert_eq!(together[0].1.as_ref().unwrap(), &unknown);
    assert_eq!(together[1].1.as_ref().unwrap(), &described);
    let offsets_together = client.committed_offsets_of(&asked).await;
    assert!(offsets_together[0].1.as_ref().unwrap().is_empty(), "a group never seen has no offsets");
    let sorted = |mut offsets: Vec<CommittedOffset>| {
        offsets.sort_by_key(|o| o.partition);
        offsets
    };
    let restored_alone = sorted(client.committed_offsets(&restored).await.unwrap());
    assert_eq!(sorted(offsets_together[1].1.clone().unwrap()), offsets);
    assert_eq!(sorted(offsets_together[2].1.clone().unwrap()), restored_alone);
}
