//! `kafka-backup restore` as a user runs it: backed up from a "source" Tansu broker, restored into
//! a "target" one, and the target read back with confluent-kafka and compared record by record.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use kafka_backup_core::restore::{load_offset_map, load_started};
use kafka_backup_core::storage::BackupStore;
use kafka_backup_testkit::{self as testkit, Broker, MockCluster, RefRecord};
use tempfile::TempDir;

/// Backs up topic `topic` of `source` into `dir` as backup `id`.
fn back_up(dir: &TempDir, source: &str, id: &str, topic: &str, settings: &str) {
    let config = write_config(dir.path(), source, id, topic, settings);
    assert_success(&backup(&config));
}

fn without_offsets(records: &[RefRecord]) -> Vec<RefRecord> {
    records.iter().map(|r| RefRecord { offset: None, ..r.clone() }).collect()
}

#[test]
fn a_restore_reproduces_every_record_exactly_under_a_new_name() {
    let (source, target) = (Broker::start("source"), Broker::start("target"));
    testkit::create_topic(&source.bootstrap(), "orders", 3, &[]);
    let mut records = testkit::fidelity_records(0);
    records.extend(testkit::fidelity_records(2));
    testkit::produce(&source.bootstrap(), "orders", &records, &[("compression.type", "zstd"), ("linger.ms", "100")]);
    let original = testkit::consume(&source.bootstrap(), "orders", &[0, 1, 2], records.len());
    let dir = TempDir::new().unwrap();
    back_up(&dir, &source.bootstrap(), "full", "orders", "  compression: lz4\n");

    let config = write_restore_config(
        dir.path(),
        "plain",
        &target.bootstrap(),
        "full",
        "  topic_mapping:\n    orders: orders-copy\n",
    );
    let output = restore(&config, &[]);
    assert_success(&output);
    assert!(text(&output.stdout).contains("created topics: orders-copy"), "{}", text(&output.stdout));
    let restored = testkit::consume(&target.bootstrap(), "orders-copy", &[0, 1, 2], original.len());
    assert_eq!(restored, original, "keys, values, nulls, headers, timestamps, partitions and offsets");

    let again = restore(&config, &[]);
    assert_success(&again);
    assert!(text(&again.stdout).contains("Restored 0 records"), "{}", text(&again.stdout));

    let mapped = write_restore_config(
        dir.path(),
        "mapped",
        &target.bootstrap(),
        "full",
        "  topic_mapping:\n    orders: orders-moved\n  partition_mapping:\n    orders: {0: 2, 2: 0}\n",
    );
    assert_success(&restore(&mapped, &[]));
    let moved = testkit::consume(&target.bootstrap(), "orders-moved", &[0, 1, 2], original.len());
    let expected: Vec<RefRecord> =
        original.iter().map(|r| RefRecord { partition: r.partition.map(|p| 2 - p), ..r.clone() }).collect();
    let mut expected = expected;
    expected.sort_by_key(|r| (r.partition, r.offset));
    assert_eq!(moved, expected);
}

#[test]
fn a_time_window_keeps_exactly_the_records_inside_it_with_inclusive_bounds() {
    let (source, target) = (Broker::start("source"), Broker::start("target"));
    testkit::create_topic(&source.bootstrap(), "events", 1, &[]);
    // One batch with out-of-order CreateTime: 2000 and 3000 are the bounds.
    let timestamps = [1000i64, 5000, 2000, 3000, 1999, 3001, 2500, 2000];
    let records: Vec<RefRecord> = timestamps
        .iter()
        .enumerate()
        .map(|(i, &t)| RefRecord {
            partition: Some(0),
            key: Some(format!("k{i}").into_bytes()),
            value: Some(format!("t={t}").into_bytes()),
            timestamp: Some(t),
            ..RefRecord::default()
        })
        .collect();
    testkit::produce(&source.bootstrap(), "events", &records, &[("linger.ms", "200")]);
    let original = testkit::consume(&source.bootstrap(), "events", &[0], records.len());
    let dir = TempDir::new().unwrap();
    back_up(&dir, &source.bootstrap(), "pitr", "events", "  compression: zstd\n");

    let config = write_restore_config(
        dir.path(),
        "window",
        &target.bootstrap(),
        "pitr",
        "  time_window_start: 2000\n  time_window_end: 3000\n",
    );
    assert_success(&restore(&config, &[]));
    let expected: Vec<RefRecord> =
        original.iter().filter(|r| (2000..=3000).contains(&r.timestamp.unwrap())).cloned().collect();
    assert_eq!(expected.len(), 4);
    let restored = testkit::consume(&target.bootstrap(), "events", &[0], expected.len());
    assert_eq!(without_offsets(&restored), without_offsets(&expected));

    // The recorded offset map sends a committed source offset to the first restored record at or
    // after it, never past one: in-window source offsets 2, 3, 6, 7 became target offsets 0..=3.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let map = runtime.block_on(async {
        let store = BackupStore::existing_directory(&dir.path().join("store")).unwrap().child("pitr");
        let dir = "restores/target/events/partition=0";
        let started = load_started(&store, dir).await.unwrap().expect("restore recorded");
        load_offset_map(&store, dir, &started, 0, None).await.unwrap()
    });
    let translated: Vec<i64> = (0..=8).map(|committed| map.translate(committed)).collect();
    assert_eq!(translated, vec![0, 0, 0, 1, 2, 2, 2, 3, 4]);
}

#[test]
fn a_dry_run_prints_the_plan_and_writes_nothing() {
    let (source, target) = (Broker::start("source"), Broker::start("target"));
    testkit::create_topic(&source.bootstrap(), "audit", 2, &[]);
    testkit::produce_one_per_batch(&source.bootstrap(), "audit", 1, 5);
    let dir = TempDir::new().unwrap();
    back_up(&dir, &source.bootstrap(), "plan", "audit", "  compression: none\n");
    let config =
        write_restore_config(dir.path(), "dry", &target.bootstrap(), "plan", "  topic_mapping:\n    audit: audit-dr\n");
    let output = restore(&config, &["--dry-run"]);
    assert_success(&output);
    let plan = text(&output.stdout);
    assert!(plan.contains("audit -> audit-dr (create with 2 partitions, replication factor 1)"), "{plan}");
    assert!(plan.contains("partition 1 -> 1: 1 segments, up to 5 records"), "{plan}");
    assert!(plan.contains("Dry run: nothing was written."), "{plan}");
    let info = run(&["cluster-info", "--bootstrap-servers", &target.bootstrap(), "--format", "json"]);
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    assert!(info["topics"].as_array().unwrap().is_empty(), "the target is untouched: {info}");
    assert!(!dir.path().join("store/plan/restores").exists(), "no restore state was written");
}

/// Restores a 3000-record backup, killing the restore at several points, then lets it finish;
/// returns the source and target records. `target_partitions` pre-creates the target topic.
fn restore_with_kills(restore_settings: &str, target_partitions: Option<i32>) -> (Vec<RefRecord>, Vec<RefRecord>) {
    let (source, target) = (Broker::start("source"), Broker::start("target"));
    testkit::create_topic(&source.bootstrap(), "ledger", 2, &[]);
    let records: Vec<RefRecord> = (0..3000)
        .map(|i| RefRecord {
            partition: Some(i % 2),
            key: (i % 7 != 0).then(|| format!("entry-{}", i % 101).into_bytes()),
            value: Some(format!("{i:06}{}", ".".repeat(494)).into_bytes()),
            ..RefRecord::default()
        })
        .collect();
    testkit::produce(&source.bootstrap(), "ledger", &records, &[("linger.ms", "5"), ("batch.num.messages", "20")]);
    let original = testkit::consume(&source.bootstrap(), "ledger", &[0, 1], records.len());
    let dir = TempDir::new().unwrap();
    back_up(&dir, &source.bootstrap(), "big", "ledger", "  segment_max_bytes: 20000\n");
    if let Some(count) = target_partitions {
        testkit::create_topic(&target.bootstrap(), "ledger", count, &[]);
    }
    // Throttled so that each run can be killed mid-way, at a different point each time.
    let settings = format!("  rate_limit_bytes_per_sec: 600000\n{restore_settings}");
    let config = write_restore_config(dir.path(), "slow", &target.bootstrap(), "big", &settings);
    let mut kills = 0;
    for round in 0..5u64 {
        let mut child = binary()
            .args(["restore", "--config", config.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(300 + round * 97));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            kills += 1;
        }
        child.wait().unwrap();
    }
    assert!(kills >= 3, "the restore finished too fast to be killed mid-run ({kills} kills)");
    assert_success(&restore(&config, &[]));
    let partitions: Vec<i32> = (0..target_partitions.unwrap_or(2)).collect();
    let restored = testkit::consume(&target.bootstrap(), "ledger", &partitions, original.len() + 10);
    (original, restored)
}

#[test]
fn a_restore_killed_at_any_moment_finishes_with_every_record_exactly_once() {
    let (original, restored) = restore_with_kills("", None);
    assert_eq!(restored, original, "no duplicate, no loss, same offsets");
}

#[test]
fn a_repartitioned_restore_killed_at_any_moment_finishes_with_every_record_exactly_once() {
    let (original, restored) = restore_with_kills("  repartition: true\n", Some(3));
    let values = |records: &[RefRecord]| {
        let mut values: Vec<_> = records.iter().map(|r| (r.key.clone(), r.value.clone())).collect();
        values.sort();
        values
    };
    assert_eq!(restored.len(), original.len(), "no duplicate, no loss");
    assert_eq!(values(&restored), values(&original));
    // Per key, one target partition, in source order: source partition 0 is restored before 1.
    let id = |r: &RefRecord| String::from_utf8_lossy(&r.value.as_ref().unwrap()[..6]).into_owned();
    for key in original.iter().filter_map(|r| r.key.clone()).take(20) {
        let expected: Vec<String> = original.iter().filter(|r| r.key.as_ref() == Some(&key)).map(id).collect();
        let mut mine: Vec<&RefRecord> = restored.iter().filter(|r| r.key.as_ref() == Some(&key)).collect();
        mine.sort_by_key(|r| r.offset);
        let partitions: std::collections::BTreeSet<_> = mine.iter().map(|r| r.partition).collect();
        assert_eq!(partitions.len(), 1, "key {key:?} is in one partition");
        assert_eq!(mine.into_iter().map(id).collect::<Vec<_>>(), expected, "order of key {key:?}");
    }
}

#[test]
fn a_backup_with_retention_gaps_and_empty_partitions_restores_what_it_holds() {
    let mut cluster = MockCluster::start();
    cluster.produce("retained", 0, 500, 1000);
    let dir = TempDir::new().unwrap();
    back_up(&dir, cluster.bootstrap(), "gappy", "retained", "  compression: zstd\n");
    cluster.produce("retained", 0, 12_000, 1000);
    back_up(&dir, cluster.bootstrap(), "gappy", "retained", "  compression: zstd\n");
    let held = backed_up_records(dir.path(), "gappy", "retained");
    assert!(held.len() > 500 && held[500].offset.unwrap() > 500, "the backup has a gap after offset 499");

    let target = Broker::start("target");
    let config =
        write_restore_config(dir.path(), "gap", &target.bootstrap(), "gappy", "  max_concurrent_partitions: 2\n");
    let output = restore(&config, &[]);
    assert_success(&output);
    assert!(text(&output.stdout).contains("create with 4 partitions"), "{}", text(&output.stdout));
    let restored = testkit::consume(&target.bootstrap(), "retained", &[0, 1, 2, 3], held.len());
    assert_eq!(without_offsets(&restored), without_offsets(&held));
}

#[test]
fn the_rate_limit_is_honoured_within_ten_percent() {
    let (source, target) = (Broker::start("source"), Broker::start("target"));
    testkit::create_topic(&source.bootstrap(), "bulk", 1, &[]);
    let records: Vec<RefRecord> = (0..2000)
        .map(|i| RefRecord {
            partition: Some(0),
            value: Some(vec![b'z'; 1000]),
            key: Some(format!("{i}").into_bytes()),
            ..RefRecord::default()
        })
        .collect();
    testkit::produce(&source.bootstrap(), "bulk", &records, &[("linger.ms", "5"), ("batch.num.messages", "50")]);
    let dir = TempDir::new().unwrap();
    back_up(&dir, &source.bootstrap(), "bulk", "bulk", "  compression: none\n");
    let limit = 1_000_000u64;
    let config = write_restore_config(
        dir.path(),
        "rate",
        &target.bootstrap(),
        "bulk",
        &format!("  rate_limit_bytes_per_sec: {limit}\n"),
    );
    let started = Instant::now();
    let output = restore(&config, &[]);
    let elapsed = started.elapsed().as_secs_f64();
    assert_success(&output);
    let restored = testkit::consume(&target.bootstrap(), "bulk", &[0], records.len());
    assert_eq!(restored.len(), records.len());
    // Bytes produced are the record batches: a little more than the 2 MB of values.
    let produced_bytes = 2000.0 * 1000.0;
    let rate = produced_bytes / elapsed;
    assert!(rate <= limit as f64 * 1.1, "{rate:.0} B/s exceeds the limit of {limit} B/s by more than 10%");
    assert!(rate >= limit as f64 * 0.5, "{rate:.0} B/s is far below the limit of {limit} B/s");
}

#[test]
fn conflicts_and_offset_headers() {
    let (source, target) = (Broker::start("source"), Broker::start("target"));
    testkit::create_topic(&source.bootstrap(), "payments", 2, &[]);
    testkit::produce_one_per_batch(&source.bootstrap(), "payments", 0, 4);
    let dir = TempDir::new().unwrap();
    back_up(&dir, &source.bootstrap(), "pay", "payments", "  compression: none\n");

    testkit::create_topic(&target.bootstrap(), "payments", 5, &[]);
    let clash = write_restore_config(dir.path(), "clash", &target.bootstrap(), "pay", "  dry_run: false\n");
    let output = restore(&clash, &[]);
    assert!(!output.status.success());
    assert!(text(&output.stderr).contains("target topic payments has 5 partitions"), "{}", text(&output.stderr));
    let dry = restore(&clash, &["--dry-run"]);
    assert!(!dry.status.success(), "a dry run with conflicts fails too");
    assert!(text(&dry.stdout).contains("CONFLICT target topic payments has 5 partitions"), "{}", text(&dry.stdout));
    assert!(text(&dry.stdout).contains("partition 1 -> 1"), "the plan is shown: {}", text(&dry.stdout));

    let headers = write_restore_config(
        dir.path(),
        "headers",
        &target.bootstrap(),
        "pay",
        "  topic_mapping:\n    payments: payments-h\n  include_original_offset_header: true\n",
    );
    assert_success(&restore(&headers, &[]));
    let restored = testkit::consume(&target.bootstrap(), "payments-h", &[0], 4);
    let offsets: Vec<_> = restored.iter().map(|r| r.headers.last().cloned().unwrap()).collect();
    let expected: Vec<_> =
        (0..4).map(|i| ("x-original-offset".to_string(), Some(i.to_string().into_bytes()))).collect();
    assert_eq!(offsets, expected);
}

#[test]
fn repartitioned_records_land_where_the_java_partitioner_puts_their_keys() {
    let (source, target) = (Broker::start("source"), Broker::start("target"));
    testkit::create_topic(&source.bootstrap(), "users", 2, &[]);
    let records: Vec<RefRecord> = (0..400)
        .map(|i| RefRecord {
            partition: Some(i % 2),
            key: (i % 10 != 0).then(|| format!("user-{}", i % 37).into_bytes()),
            value: Some(format!("event-{i}").into_bytes()),
            ..RefRecord::default()
        })
        .collect();
    testkit::produce(&source.bootstrap(), "users", &records, &[("linger.ms", "20")]);
    let dir = TempDir::new().unwrap();
    back_up(&dir, &source.bootstrap(), "users", "users", "  segment_max_bytes: 4096\n");

    testkit::create_topic(&target.bootstrap(), "users", 5, &[]);
    let config = write_restore_config(dir.path(), "repartition", &target.bootstrap(), "users", "  repartition: true\n");
    let output = restore(&config, &["--dry-run"]);
    assert_success(&output);
    assert!(text(&output.stdout).contains("records routed by key into its 5 partitions"), "{}", text(&output.stdout));
    let output = restore(&config, &[]);
    assert_success(&output);
    assert!(text(&output.stdout).contains("Restored 400 records"), "{}", text(&output.stdout));
    let restored = testkit::consume(&target.bootstrap(), "users", &[0, 1, 2, 3, 4], records.len());
    assert_eq!(restored.len(), records.len());

    // The independent reference: librdkafka's Java-compatible murmur2 partitioner.
    let keyed: Vec<RefRecord> =
        records.iter().filter(|r| r.key.is_some()).map(|r| RefRecord { partition: None, ..r.clone() }).collect();
    testkit::create_topic(&target.bootstrap(), "reference", 5, &[]);
    let placed = testkit::produce(&target.bootstrap(), "reference", &keyed, &[("partitioner", "murmur2")]);
    let expected: std::collections::BTreeMap<Vec<u8>, i32> =
        placed.iter().map(|r| (r.key.clone().unwrap(), r.partition.unwrap())).collect();
    for record in restored.iter().filter(|r| r.key.is_some()) {
        assert_eq!(Some(expected[record.key.as_ref().unwrap()]), record.partition, "key {:?}", record.key);
    }
    let null_keyed = restored.iter().filter(|r| r.key.is_none()).count();
    assert_eq!(null_keyed, 40);
    let mut values: Vec<_> = restored.iter().map(|r| r.value.clone().unwrap()).collect();
    values.sort();
    let mut original: Vec<_> = records.iter().map(|r| r.value.clone().unwrap()).collect();
    original.sort();
    assert_eq!(values, original, "every record exactly once");

    let again = restore(&config, &[]);
    assert_success(&again);
    assert!(text(&again.stdout).contains("Restored 0 records"), "{}", text(&again.stdout));
}
