//! Continuous backups of many partitions, on the 3-node Apache Kafka cluster: fetches go out as one
//! request per broker for all its partitions (counted in the run's own request metrics), a record
//! produced to any of hundreds of quiet partitions reaches a committed segment, and SIGTERM ends
//! the run with every record backed up (compared with confluent-kafka).

mod common;

use common::*;
use kafka_backup_testkit::{self as testkit, unique, KafkaCluster, RefRecord};
use tempfile::TempDir;

const PARTITIONS: i32 = 300;

fn one_record(partition: i32, text: &str) -> RefRecord {
    RefRecord {
        partition: Some(partition),
        key: Some(format!("key-{partition}").into_bytes()),
        value: Some(text.as_bytes().to_vec()),
        ..RefRecord::default()
    }
}

#[test]
fn hundreds_of_quiet_partitions_are_fetched_once_per_broker_and_a_record_anywhere_is_committed() {
    let cluster = KafkaCluster::triple();
    let bootstrap = cluster.bootstrap();
    let topic = unique("estate");
    testkit::create_topic(&bootstrap, &topic, PARTITIONS, &[]);
    let first: Vec<RefRecord> = (0..PARTITIONS).map(|p| one_record(p, "first")).collect();
    testkit::produce(&bootstrap, &topic, &first, &[]);

    let dir = TempDir::new().unwrap();
    let settings = "  continuous: true\n  segment_max_interval_ms: 1000\n";
    let (child, port) = backup_with_metrics(dir.path(), &bootstrap, "estate", &topic, settings);
    let scrape = || get(port, "/metrics").map(|(_, body)| body).unwrap_or_default();
    let records_read = |metrics: &str| {
        (0..PARTITIONS)
            .filter_map(|p| {
                let labels = [("topic", topic.as_str()), ("partition", &p.to_string())];
                metric_value(metrics, "kafka_backup_records_total", &labels)
            })
            .sum::<f64>()
    };
    wait_for("every partition's first record to be read", HANG, || records_read(&scrape()) == f64::from(PARTITIONS));
    // Counted from here on, while the partitions are quiet: fetched one by one, each request
    // would answer one partition; in rounds, one request per broker answers all of its partitions.
    let counts = || {
        let metrics = scrape();
        let requests = metric_value(&metrics, "kafka_backup_kafka_request_duration_seconds_count", &[("api", "Fetch")]);
        let answered = metric_value(&metrics, "kafka_backup_fetched_partitions_total", &[]);
        (requests.expect("Fetch requests are counted"), answered.expect("answered partitions are counted"))
    };
    let (requests_before, answered_before) = counts();

    // A record to one quiet partition of many is committed while the rest stay quiet.
    wait_for("the first records to be committed", HANG, || {
        backed_up_records_if_any(dir.path(), "estate", &topic).len() == PARTITIONS as usize
    });
    let partition = fastrand_partition();
    testkit::produce(&bootstrap, &topic, &[one_record(partition, "later")], &[]);
    wait_for("the later record to be committed", HANG, || {
        backed_up_records_if_any(dir.path(), "estate", &topic).len() == PARTITIONS as usize + 1
    });

    let (requests, answered) = counts();
    let (requests, answered) = (requests - requests_before, answered - answered_before);
    let brokers = cluster.node_ids().len();
    eprintln!("quiet window: {requests} Fetch requests answered {answered} partitions");
    assert!(
        requests > 0.0 && answered >= requests * 20.0,
        "{requests} Fetch requests answered {answered} partitions ({PARTITIONS} partitions on {brokers} brokers)"
    );

    send_signal(&child, "-TERM");
    let output = wait_with_deadline(child, HANG);
    assert_success(&output);
    let all: Vec<i32> = (0..PARTITIONS).collect();
    let original = testkit::consume(&bootstrap, &topic, &all);
    assert_eq!(original.len(), PARTITIONS as usize + 1);
    assert_eq!(backed_up_records(dir.path(), "estate", &topic), original, "every record exactly once");
}

/// A partition picked from the clock: any one of them must do.
fn fastrand_partition() -> i32 {
    (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos() % PARTITIONS as u32)
        as i32
}
