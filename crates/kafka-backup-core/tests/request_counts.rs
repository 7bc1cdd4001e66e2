//! How many requests the client sends for many partitions, groups or topics, on the 3-node Apache
//! Kafka cluster, counted by its own request metrics: one per broker (or one in all), not one per
//! partition, group or topic; and the batched answers equal the ones asked one by one.
//! A test binary of its own, so that no other test adds to the process-wide counts.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kafka_backup_core::kafka::{ClientConfig, IsolationLevel, KafkaClient, NewTopic, OffsetSpec};
use kafka_backup_core::metrics::metrics;
use kafka_backup_testkit::{self as testkit, unique, KafkaCluster, RefRecord};
use kafka_protocol::ResponseError;

const PARTITIONS: i32 = 30;

fn requests(api: &str) -> u64 {
    metrics().kafka_seconds.with_label_values(&[api]).get_sample_count()
}

/// A new topic of `PARTITIONS` partitions on the 3-node cluster, once the reference client, asking
/// each broker on its own, sees a leader for each (a broker that learns of the topic late would
/// answer with a retry): the cluster, its bootstrap list and the topic.
fn new_topic(prefix: &str) -> (&'static KafkaCluster, String, String) {
    let cluster = KafkaCluster::triple();
    let (bootstrap, topic) = (cluster.bootstrap(), unique(prefix));
    testkit::create_topic(&bootstrap, &topic, PARTITIONS, &[]);
    let started = Instant::now();
    let led_by =
        |node: &str| testkit::describe_topic(node, &topic).iter().filter(|(_, leader, _)| *leader >= 0).count();
    while !bootstrap.split(',').all(|node| led_by(node) == PARTITIONS as usize) {
        assert!(started.elapsed() < Duration::from_secs(60), "{topic} has no leader for every partition");
        std::thread::sleep(Duration::from_millis(200));
    }
    (cluster, bootstrap, topic)
}

/// A client of `bootstrap`, a comma-separated list.
async fn client_of(bootstrap: &str) -> KafkaClient {
    KafkaClient::connect(ClientConfig::new(bootstrap.split(',').map(String::from).collect())).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_offsets_of_many_partitions_take_one_list_offsets_per_leader_and_match_the_log() {
    let (_, bootstrap, topic) = new_topic("offsets-by-leader");
    // Partition p holds p records: each end offset is its own.
    let records: Vec<RefRecord> = (0..PARTITIONS)
        .flat_map(|p| {
            (0..p).map(move |i| RefRecord { partition: Some(p), value: Some(vec![i as u8]), ..RefRecord::default() })
        })
        .collect();
    testkit::produce(&bootstrap, &topic, &records, &[]);
    let leaders: BTreeMap<i32, i32> =
        testkit::describe_topic(&bootstrap, &topic).into_iter().map(|(p, leader, _)| (p, leader)).collect();
    let brokers = leaders.values().collect::<std::collections::BTreeSet<_>>().len() as u64;
    assert!(brokers > 1, "the partitions' leaders are spread: {leaders:?}");

    let client = client_of(&bootstrap).await;
    client.refresh_metadata(None).await.unwrap();
    let all: Vec<i32> = (0..PARTITIONS).collect();
    let before = requests("ListOffsets");
    let ends = client.list_offsets(&topic, &all, OffsetSpec::Latest, IsolationLevel::ReadUncommitted).await.unwrap();
    let starts =
        client.list_offsets(&topic, &all, OffsetSpec::Earliest, IsolationLevel::ReadUncommitted).await.unwrap();
    let sent = requests("ListOffsets") - before;
    assert_eq!(ends, all.iter().map(|&p| (p, i64::from(p))).collect::<Vec<_>>(), "in the order asked");
    assert!(starts.iter().all(|&(_, start)| start == 0), "{starts:?}");
    assert_eq!(sent, 2 * brokers, "two lookups of {PARTITIONS} partitions led by {brokers} brokers");
}

#[tokio::test(flavor = "multi_thread")]
async fn many_groups_take_one_find_coordinator_and_one_request_per_coordinator() {
    let (cluster, bootstrap, topic) = new_topic("offsets-by-coordinator");
    let prefix = unique("counted");
    let commits: Vec<(String, i32, i64)> =
        (0..30).map(|i| (format!("{prefix}-{i}"), i % PARTITIONS, i64::from(i))).collect();
    testkit::commit_many(&bootstrap, &topic, &commits);
    let groups: Vec<String> = commits.iter().map(|(group, ..)| group.clone()).collect();

    let client = client_of(&bootstrap).await;
    let counts = || ["FindCoordinator", "OffsetFetch", "DescribeGroups"].map(requests);
    let before = counts();
    let offsets = client.committed_offsets_of(&groups).await;
    let described = client.describe_groups(&groups).await;
    let after = counts();
    let sent: Vec<u64> = after.iter().zip(before).map(|(after, before)| after - before).collect();
    let brokers = cluster.node_ids().len() as u64;
    assert_eq!(sent[0], 1, "one FindCoordinator for all 30 groups, cached for the second call");
    assert!(sent[1] <= brokers && sent[2] <= brokers, "one per coordinator: {sent:?}");
    for ((group, partition, offset), (answered, found)) in commits.iter().zip(&offsets) {
        assert_eq!(group, answered, "in the order asked");
        let found = found.as_ref().unwrap();
        assert_eq!((found[0].partition, found[0].offset), (*partition, *offset), "{group}");
    }
    assert!(described.iter().all(|(_, d)| d.as_ref().unwrap().state == "Empty"), "{described:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_configs_of_many_topics_take_one_describe_configs_and_match_each_topics_own() {
    let bootstrap = KafkaCluster::triple().bootstrap();
    let prefix = unique("configs");
    let topics: Vec<String> = (0..20).map(|i| format!("{prefix}-{i}")).collect();
    for (i, topic) in topics.iter().enumerate() {
        let retention = (3_600_000 * (i + 1)).to_string();
        testkit::create_topic(&bootstrap, topic, 1, &[("retention.ms", retention.as_str())]);
    }
    let client = client_of(&bootstrap).await;
    let mut asked = topics.clone();
    asked.push(unique("no-such-topic"));
    let before = requests("DescribeConfigs");
    let described = client.describe_topics_configs(&asked).await.unwrap();
    assert_eq!(requests("DescribeConfigs") - before, 1, "one request for {} topics", asked.len());
    for (i, (topic, configs)) in described.iter().take(topics.len()).enumerate() {
        let configs = configs.as_ref().unwrap();
        let retention = configs.iter().find(|c| c.name == "retention.ms").unwrap();
        assert_eq!(retention.value, Some((3_600_000 * (i + 1)).to_string()), "{topic}");
        assert!(retention.set_on_topic, "{topic}");
        assert_eq!(configs, &client.describe_topic_configs(topic).await.unwrap(), "{topic}: the same as alone");
    }
    let (missing, answer) = described.last().unwrap();
    assert_eq!(missing, asked.last().unwrap(), "in the order asked");
    let error = answer.as_ref().unwrap_err().to_string();
    assert!(error.contains(missing.as_str()), "the missing topic's own error names it: {error}");
}

#[tokio::test(flavor = "multi_thread")]
async fn many_topics_are_created_in_one_create_topics_each_with_its_own_answer() {
    let bootstrap = KafkaCluster::triple().bootstrap();
    let existing = unique("created-before");
    testkit::create_topic(&bootstrap, &existing, 1, &[]);
    let prefix = unique("created");
    let mut topics: Vec<NewTopic> = (0..20)
        .map(|i| NewTopic {
            name: format!("{prefix}-{i}"),
            partitions: 1 + i % 3,
            replication_factor: 3,
            configs: vec![("retention.ms".to_string(), (3_600_000 * (i + 1)).to_string())],
        })
        .collect();
    topics.push(NewTopic { name: existing.clone(), partitions: 1, replication_factor: 1, configs: Vec::new() });
    let client = client_of(&bootstrap).await;
    let before = requests("CreateTopics");
    let answers = client.create_topics(&topics, Duration::from_secs(30)).await.unwrap();
    assert_eq!(requests("CreateTopics") - before, 1, "one request for {} topics", topics.len());
    let (last, already) = answers.last().unwrap();
    assert_eq!(last, &existing, "in the order asked");
    assert_eq!(already.as_ref().unwrap_err().response_error(), Some(ResponseError::TopicAlreadyExists));
    // Each created topic has its partitions, a leader for each (the call waited for them) and its
    // configs, as the reference client sees it.
    for (topic, (name, answer)) in topics.iter().zip(&answers).take(20) {
        assert!(answer.is_ok(), "{name}: {answer:?}");
        let described = testkit::describe_topic(&bootstrap, name);
        assert_eq!(described.len(), topic.partitions as usize, "{name}");
        assert!(described.iter().all(|(_, leader, replicas)| *leader >= 0 && replicas.len() == 3), "{described:?}");
        assert_eq!(testkit::topic_configs(&bootstrap, name)["retention.ms"], topic.configs[0].1, "{name}");
    }
}
