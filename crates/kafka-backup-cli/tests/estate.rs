//! Continuous backups of many partitions, on the 3-node Apache Kafka cluster: fetches go out as one
//! request per broker for all its partitions, in fetch sessions (counted in the run's own request
//! metrics), a record produced to any of hundreds of quiet partitions reaches a committed segment,
//! SIGTERM ends the run with every record backed up (compared with confluent-kafka), with
//! `client_rack` every record comes from the replica in that rack (KIP-392), and a group snapshot
//! of many groups asks each coordinator once, not each group.

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
    wait_until_every_broker_knows(&bootstrap, &topic, PARTITIONS);
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
        let answered = metric_sum(&metrics, "kafka_backup_fetched_partitions_total", &[]);
        let full = metric_sum(&metrics, "kafka_backup_fetch_requests_total", &[("kind", "full")]);
        (requests.expect("Fetch requests are counted"), answered, full)
    };
    let (requests_before, answered_before, full_before) = counts();

    // A record to one quiet partition of many is committed while the rest stay quiet.
    wait_for("the first records to be committed", HANG, || {
        backed_up_records_if_any(dir.path(), "estate", &topic).len() == PARTITIONS as usize
    });
    let partition = fastrand_partition();
    testkit::produce(&bootstrap, &topic, &[one_record(partition, "later")], &[]);
    wait_for("the later record to be committed", HANG, || {
        backed_up_records_if_any(dir.path(), "estate", &topic).len() == PARTITIONS as usize + 1
    });

    let (requests, answered, full) = counts();
    let (requests, answered, full) = (requests - requests_before, answered - answered_before, full - full_before);
    let brokers = cluster.node_ids().len();
    eprintln!("quiet window: {requests} Fetch requests ({full} full) answered {answered} partitions");
    assert!(
        requests > 0.0 && answered >= requests * 20.0,
        "{requests} Fetch requests answered {answered} partitions ({PARTITIONS} partitions on {brokers} brokers)"
    );
    // In fetch sessions, a quiet round names no partition: all but a new session's first are
    // incremental.
    assert!(full <= brokers as f64, "{full} of {requests} Fetch requests were full ({brokers} brokers)");

    send_signal(&child, "-TERM");
    let output = wait_with_deadline(child, HANG);
    assert_success(&output);
    let all: Vec<i32> = (0..PARTITIONS).collect();
    let original = testkit::consume(&bootstrap, &topic, &all);
    assert_eq!(original.len(), PARTITIONS as usize + 1);
    assert_eq!(backed_up_records(dir.path(), "estate", &topic), original, "every record exactly once");
}

#[test]
fn with_a_client_rack_every_record_comes_from_the_replica_in_that_rack() {
    let cluster = KafkaCluster::triple();
    let bootstrap = cluster.bootstrap();
    let topic = unique("racks");
    testkit::create_topic(&bootstrap, &topic, 6, &[]);
    wait_until_every_broker_knows(&bootstrap, &topic, 6);
    let first_node = bootstrap.split(',').next().unwrap();
    // A node may answer with the topic before its partitions (metadata still propagating).
    let mut leaders: Vec<i32> = Vec::new();
    wait_for("the first node to describe every partition", HANG, || {
        leaders = testkit::describe_topic(first_node, &topic).iter().map(|(_, leader, _)| *leader).collect();
        leaders.len() == 6
    });
    assert!(leaders.iter().any(|&leader| leader != 2), "some partitions are led from another rack: {leaders:?}");
    let records: Vec<RefRecord> = (0..1200).map(|i| one_record(i % 6, &format!("value-{i}"))).collect();
    testkit::produce(&bootstrap, &topic, &records, &[("acks", "all")]);

    let dir = TempDir::new().unwrap();
    let settings = "  continuous: true\n  segment_max_interval_ms: 500\n";
    let port = testkit::free_port();
    let config = write_config(dir.path(), &bootstrap, "racks", &topic, settings);
    let yaml = std::fs::read_to_string(&config).unwrap().replace("source:\n", "source:\n  client_rack: rack-2\n");
    std::fs::write(&config, yaml + &format!("metrics:\n  listen: 127.0.0.1:{port}\n")).unwrap();
    let child = spawn(&["backup", "--config", config.to_str().unwrap()], false);
    let held = || backed_up_records_if_any(dir.path(), "racks", &topic).len();
    wait_for("every record to be backed up", HANG, || held() == records.len());
    let more: Vec<RefRecord> = (0..600).map(|i| one_record(i % 6, &format!("later-{i}"))).collect();
    testkit::produce(&bootstrap, &topic, &more, &[("acks", "all")]);
    wait_for("the later records to be backed up", HANG, || held() == records.len() + more.len());

    let metrics = get(port, "/metrics").map(|(_, body)| body).unwrap_or_default();
    let bytes_from =
        |node: i32| metric_sum(&metrics, "kafka_backup_fetched_bytes_total", &[("broker", &node.to_string())]);
    eprintln!("fetched bytes by broker: 1: {}, 2: {}, 3: {}", bytes_from(1), bytes_from(2), bytes_from(3));
    assert!(bytes_from(2) > 0.0, "records were fetched from node 2 (rack-2)");
    assert_eq!((bytes_from(1), bytes_from(3)), (0.0, 0.0), "no record bytes came from the other racks");

    send_signal(&child, "-TERM");
    assert_success(&wait_with_deadline(child, HANG));
    let original = testkit::consume(&bootstrap, &topic, &(0..6).collect::<Vec<_>>());
    assert_eq!(backed_up_records(dir.path(), "racks", &topic), original, "every record exactly once");

    // A snapshot fetches partition by partition, from the same replica.
    let snapshot = write_config(dir.path(), &bootstrap, "racks-snapshot", &topic, "");
    let yaml = std::fs::read_to_string(&snapshot).unwrap().replace("source:\n", "source:\n  client_rack: rack-2\n");
    std::fs::write(&snapshot, yaml).unwrap();
    assert_success(&backup(&snapshot));
    assert_eq!(backed_up_records(dir.path(), "racks-snapshot", &topic), original, "the snapshot holds every record");
}

/// A partition picked from the clock: any one of them must do.
fn fastrand_partition() -> i32 {
    (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos() % PARTITIONS as u32)
        as i32
}

#[test]
fn a_group_snapshot_of_many_groups_asks_each_coordinator_once_and_holds_every_groups_offset() {
    const GROUPS: i64 = 60;
    let cluster = KafkaCluster::triple();
    let bootstrap = cluster.bootstrap();
    let topic = unique("estate-groups");
    testkit::create_topic(&bootstrap, &topic, 3, &[]);
    wait_until_every_broker_knows(&bootstrap, &topic, 3);
    for partition in 0..3 {
        testkit::produce_small(&bootstrap, &topic, partition, GROUPS as usize);
    }
    // Group i commits offset i: every group's own position, spread over the three coordinators.
    let prefix = unique("estate-group");
    let commits: Vec<(String, i32, i64)> = (0..GROUPS).map(|i| (format!("{prefix}-{i}"), (i % 3) as i32, i)).collect();
    testkit::commit_many(&bootstrap, &topic, &commits);

    let dir = TempDir::new().unwrap();
    let settings = "  continuous: true\n  checkpoint_interval_secs: 1\n";
    let (child, port) = backup_with_metrics(dir.path(), &bootstrap, "groups", &topic, settings);
    let snapshots_dir = dir.path().join("store").join("groups").join("groups");
    let snapshots = || std::fs::read_dir(&snapshots_dir).map(|d| d.count()).unwrap_or(0);
    wait_for("three group snapshots", HANG, || snapshots() >= 3);
    let metrics = get(port, "/metrics").map(|(_, body)| body).unwrap_or_default();
    let taken = snapshots() + 1; // one may be under way
    send_signal(&child, "-TERM");
    assert_success(&wait_with_deadline(child, HANG));

    let requests = |api: &str| {
        metric_value(&metrics, "kafka_backup_kafka_request_duration_seconds_count", &[("api", api)]).unwrap_or(0.0)
    };
    let brokers = cluster.node_ids().len() as f64;
    for api in ["OffsetFetch", "DescribeGroups"] {
        let per_snapshot = requests(api) / taken as f64;
        eprintln!("{api}: {} requests for {taken} snapshots of {GROUPS}+ groups", requests(api));
        assert!(
            requests(api) > 0.0 && per_snapshot <= brokers,
            "{api}: {} requests for {taken} snapshots: more than one per coordinator ({brokers} brokers)",
            requests(api)
        );
    }
    let described = describe_json(dir.path(), "groups");
    let groups = &described["group_snapshot"]["groups"];
    for (group, partition, offset) in &commits {
        let kept = &groups[group.as_str()];
        assert_eq!(kept[0]["partition"].as_i64(), Some(i64::from(*partition)), "{group}: {kept}");
        assert_eq!(kept[0]["offset"].as_i64(), Some(*offset), "{group}: {kept}");
        let shape = &described["group_snapshot"]["descriptions"][group.as_str()];
        assert_eq!(shape["state"], "Empty", "{group}: {shape}");
    }
}
