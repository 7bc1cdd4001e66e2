//! `kafka-backup restore` as a user runs it: backed up from the Apache Kafka "source" cluster,
//! restored into the "target" one, and the target read back to the end of every partition with
//! confluent-kafka and compared record by record with what confluent-kafka read from the source.

mod common;

use std::time::Instant;

use common::*;
use kafka_backup_core::restore::{load_offset_map, load_started};
use kafka_backup_core::storage::BackupStore;
use kafka_backup_testkit::{self as testkit, unique, KafkaCluster, RefRecord};
use tempfile::TempDir;

/// Backs up topic `topic` of `source` into `dir` as backup `id`.
fn back_up(dir: &TempDir, source: &str, id: &str, topic: &str, settings: &str) {
    let config = write_config(dir.path(), source, id, topic, settings);
    assert_success(&backup(&config));
}

fn clusters() -> (String, String) {
    (KafkaCluster::source().bootstrap(), KafkaCluster::target().bootstrap())
}

#[test]
fn a_restore_reproduces_every_record_exactly_under_a_new_name() {
    let (source, target) = clusters();
    let orders = unique("orders");
    testkit::create_topic(&source, &orders, 3, testkit::FIDELITY_TOPIC_CONFIGS);
    let mut records = testkit::fidelity_records(0);
    records.extend(testkit::fidelity_records(2));
    testkit::produce(&source, &orders, &records, &[("compression.type", "zstd"), ("linger.ms", "100")]);
    let original = testkit::consume(&source, &orders, &[0, 1, 2]);
    assert_eq!(original.len(), records.len());
    let dir = TempDir::new().unwrap();
    back_up(&dir, &source, "full", &orders, "  compression: lz4\n");

    let copy = unique("orders-copy");
    let config = write_restore_config(
        dir.path(),
        "plain",
        &target,
        "full",
        &format!("  topic_mapping:\n    {orders}: {copy}\n"),
    );
    let output = restore(&config, &[]);
    assert_success(&output);
    assert!(text(&output.stdout).contains(&format!("created topics: {copy}")), "{}", text(&output.stdout));
    let restored = testkit::consume(&target, &copy, &[0, 1, 2]);
    assert_eq!(restored, original, "keys, values, nulls, headers, timestamps, partitions and offsets");

    let again = restore(&config, &[]);
    assert_success(&again);
    assert!(text(&again.stdout).contains("Restored 0 records"), "{}", text(&again.stdout));
    assert_eq!(testkit::consume(&target, &copy, &[0, 1, 2]), original, "a second run wrote nothing");

    let moved = unique("orders-moved");
    let mapped = write_restore_config(
        dir.path(),
        "mapped",
        &target,
        "full",
        &format!("  topic_mapping:\n    {orders}: {moved}\n  partition_mapping:\n    {orders}: {{0: 2, 2: 0}}\n"),
    );
    assert_success(&restore(&mapped, &[]));
    let mut expected: Vec<RefRecord> =
        original.iter().map(|r| RefRecord { partition: r.partition.map(|p| 2 - p), ..r.clone() }).collect();
    expected.sort_by_key(|r| (r.partition, r.offset));
    assert_eq!(testkit::consume(&target, &moved, &[0, 1, 2]), expected);
}

/// A new topic `name-…` of `partitions` partitions, 40 records with headers each, backed up as
/// backup `name`: its name and its records as confluent-kafka reads them.
fn backed_up_with_headers(dir: &TempDir, source: &str, name: &str, partitions: i32) -> (String, Vec<RefRecord>) {
    let topic = unique(name);
    testkit::create_topic(source, &topic, partitions, &[]);
    let records: Vec<RefRecord> = (0..partitions).flat_map(|p| testkit::records_with_headers(p, 40)).collect();
    testkit::produce(source, &topic, &records, &[]);
    let original = testkit::consume(source, &topic, &(0..partitions).collect::<Vec<_>>());
    back_up(dir, source, name, &topic, "");
    (topic, original)
}

#[test]
fn source_partitions_restore_only_the_partitions_named() {
    let (source, target) = clusters();
    let dir = TempDir::new().unwrap();
    let (topic, original) = backed_up_with_headers(&dir, &source, "partial", 3);

    let copy = unique("partial-copy");
    let settings = format!("  topic_mapping:\n    {topic}: {copy}\n  source_partitions:\n    {topic}: [0, 2]\n");
    let config = write_restore_config(dir.path(), "partial", &target, "partial", &settings);
    let plan = restore(&config, &["--dry-run", "--format", "json"]);
    assert_success(&plan);
    let report: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    let planned: Vec<i64> = report["restore"]["plan"]["topics"][0]["partitions"]
        .as_array()
        .unwrap_or_else(|| panic!("{report}"))
        .iter()
        .map(|p| p["source"].as_i64().unwrap())
        .collect();
    assert_eq!(planned, [0, 2], "the plan names the partitions restored");
    assert_success(&restore(&config, &[]));
    let expected: Vec<RefRecord> = original.iter().filter(|r| r.partition != Some(1)).cloned().collect();
    assert_eq!(
        testkit::consume(&target, &copy, &[0, 1, 2]),
        expected,
        "partitions 0 and 2, record for record; 1 empty"
    );
}

#[test]
fn a_start_offset_restores_a_partition_from_that_source_offset_and_verify_agrees() {
    let (source, target) = clusters();
    let dir = TempDir::new().unwrap();
    let (topic, original) = backed_up_with_headers(&dir, &source, "started", 2);

    let copy = unique("started-copy");
    let settings = format!("  topic_mapping:\n    {topic}: {copy}\n  start_offset:\n    {topic}: {{0: 25}}\n");
    let config = write_restore_config(dir.path(), "started", &target, "started", &settings);
    let dry = restore(&config, &["--dry-run"]);
    assert_success(&dry);
    let plan = text(&dry.stdout);
    assert!(plan.contains("partition 0 -> 0 from source offset 25: "), "{plan}");
    assert!(plan.contains("partition 1 -> 1: "), "partition 1 from its first record: {plan}");
    assert_success(&restore(&config, &[]));
    let expected: Vec<RefRecord> =
        original.iter().filter(|r| r.partition == Some(1) || r.offset.is_some_and(|o| o >= 25)).cloned().collect();
    assert_eq!(expected.len(), 15 + 40);
    assert_eq!(
        without_offsets(&testkit::consume(&target, &copy, &[0, 1])),
        without_offsets(&expected),
        "partition 0 from source offset 25, partition 1 whole, record for record"
    );
    // verify compares the same selection: nothing missing, nothing extra.
    let verified = run(&["verify", "--config", config.to_str().unwrap()]);
    assert_success(&verified);
}

#[test]
fn an_existing_log_append_time_topic_is_switched_to_create_time_for_the_restore_and_back() {
    let (source, target) = clusters();
    let topic = unique("stamped");
    testkit::create_topic(&source, &topic, 1, &[]);
    testkit::produce(&source, &topic, &testkit::records_with_headers(0, 30), &[]);
    let original = testkit::consume(&source, &topic, &[0]);
    let dir = TempDir::new().unwrap();
    back_up(&dir, &source, "stamped", &topic, "");
    let copy = unique("stamped-copy");
    testkit::create_topic(&target, &copy, 1, &[("message.timestamp.type", "LogAppendTime")]);

    // Without the setting the plan says the timestamps would be lost.
    let mapping = format!("  topic_mapping:\n    {topic}: {copy}\n");
    let config = write_restore_config(dir.path(), "stamped", &target, "stamped", &mapping);
    let plan = restore(&config, &["--dry-run", "--format", "json"]);
    assert_success(&plan);
    let report: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    assert_eq!(report["restore"]["plan"]["topics"][0]["switch_to_create_time"], false, "{report}");
    assert!(report["restore"]["plan"]["warnings"].to_string().contains("original timestamps are lost"), "{report}");

    // With it, the topic is CreateTime while the restore writes and LogAppendTime again after it.
    let settings = format!("{mapping}  switch_to_create_time: true\n");
    let config = write_restore_config(dir.path(), "stamped", &target, "stamped", &settings);
    let plan = restore(&config, &["--dry-run", "--format", "json"]);
    let report: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    assert_eq!(report["restore"]["plan"]["topics"][0]["switch_to_create_time"], true, "{report}");
    assert_eq!(
        testkit::topic_configs(&target, &copy)["message.timestamp.type"],
        "LogAppendTime",
        "a dry run alters nothing"
    );
    assert_success(&restore(&config, &[]));
    assert_eq!(testkit::consume(&target, &copy, &[0]), original, "every record with its own timestamp and type");
    assert_eq!(testkit::topic_configs(&target, &copy)["message.timestamp.type"], "LogAppendTime");
    let markers = count_store_files(dir.path(), |path| path.ends_with("timestamp-type-switched.json"));
    assert_eq!(markers, 0, "the switch record is removed once the topic is switched back");
}

#[test]
fn purge_before_restore_empties_the_target_first_and_never_a_resumed_restore() {
    let (source, target) = clusters();
    let topic = unique("purged");
    testkit::create_topic(&source, &topic, 2, &[]);
    let mut records = testkit::records_with_headers(0, 40);
    records.extend(testkit::records_with_headers(1, 30));
    testkit::produce(&source, &topic, &records, &[]);
    let original = testkit::consume(&source, &topic, &[0, 1]);
    let dir = TempDir::new().unwrap();
    back_up(&dir, &source, "purge", &topic, "");

    // The target topic exists and holds other records: 25 in partition 0, 10 in partition 1.
    let copy = unique("purged-copy");
    testkit::create_topic(&target, &copy, 2, &[]);
    testkit::produce_small(&target, &copy, 0, 25);
    testkit::produce_small(&target, &copy, 1, 10);
    let settings = format!("  topic_mapping:\n    {topic}: {copy}\n  purge_before_restore: true\n");
    let config = write_restore_config(dir.path(), "purge", &target, "purge", &settings);
    let plan = restore(&config, &["--dry-run", "--format", "json"]);
    assert_success(&plan);
    let report: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    assert_eq!(report["restore"]["plan"]["topics"][0]["purge"], true, "{report}");
    assert!(report["restore"]["plan"]["warnings"].to_string().contains("deleted before the restore"), "{report}");
    assert_eq!(testkit::consume(&target, &copy, &[0, 1]).len(), 35, "a dry run deletes nothing");

    let output = restore(&config, &[]);
    assert_success(&output);
    assert!(text(&output.stdout).contains(&format!("purged before the restore: {copy}")), "{}", text(&output.stdout));
    // Only the restored records are left, after the offsets the deleted ones had.
    let shifted: Vec<RefRecord> = original
        .iter()
        .map(|r| {
            let before = if r.partition == Some(0) { 25 } else { 10 };
            RefRecord { offset: r.offset.map(|o| o + before), ..r.clone() }
        })
        .collect();
    assert_eq!(testkit::consume(&target, &copy, &[0, 1]), shifted, "every restored record, nothing else");

    // Run again: the restore resumes (nothing left to write) and purges nothing it wrote.
    let again = restore(&config, &[]);
    assert_success(&again);
    assert!(
        text(&again.stdout).contains("Restored 0 records")
            && !text(&again.stdout).contains("purged before the restore:"),
        "{}",
        text(&again.stdout)
    );
    assert_eq!(testkit::consume(&target, &copy, &[0, 1]), shifted, "the restored records stay");
}

#[test]
fn a_restore_into_an_existing_non_empty_topic_appends_after_what_is_there() {
    let (source, target) = clusters();
    let events = unique("appended");
    testkit::create_topic(&source, &events, 1, &[]);
    testkit::produce_small(&source, &events, 0, 40);
    let original = testkit::consume(&source, &events, &[0]);
    let dir = TempDir::new().unwrap();
    back_up(&dir, &source, "append", &events, "");
    testkit::create_topic(&target, &events, 1, &[]);
    let already = testkit::produce(
        &target,
        &events,
        &[RefRecord { partition: Some(0), value: Some(b"was here first".to_vec()), ..RefRecord::default() }],
        &[],
    );
    let output = restore(&write_restore_config(dir.path(), "append", &target, "append", ""), &[]);
    assert_success(&output);
    assert!(text(&output.stdout).contains("Restored 40 records"), "{}", text(&output.stdout));
    let restored = testkit::consume(&target, &events, &[0]);
    assert_eq!(restored.len(), 41);
    assert_eq!(restored[0].value, already[0].value, "the existing record is untouched");
    let shifted: Vec<RefRecord> =
        original.iter().map(|r| RefRecord { offset: r.offset.map(|o| o + 1), ..r.clone() }).collect();
    assert_eq!(restored[1..], shifted[..], "restored after it, in order, each offset one further");
}

#[test]
fn a_time_window_keeps_exactly_the_records_inside_it_with_inclusive_bounds() {
    let (source, target) = clusters();
    let events = unique("events");
    testkit::create_topic(&source, &events, 1, &[]);
    // One batch with out-of-order CreateTime, an hour ago: base + 2000 and base + 3000 are the bounds.
    let base = now_ms() - 3_600_000;
    let offsets_in_time = [1000i64, 5000, 2000, 3000, 1999, 3001, 2500, 2000];
    let records: Vec<RefRecord> = offsets_in_time
        .iter()
        .enumerate()
        .map(|(i, &t)| RefRecord {
            partition: Some(0),
            key: Some(format!("k{i}").into_bytes()),
            value: Some(format!("t={t}").into_bytes()),
            headers: testkit::sample_headers(i),
            timestamp: Some(base + t),
            ..RefRecord::default()
        })
        .collect();
    testkit::produce(&source, &events, &records, &[("linger.ms", "200")]);
    let original = testkit::consume(&source, &events, &[0]);
    let dir = TempDir::new().unwrap();
    back_up(&dir, &source, "pitr", &events, "  compression: zstd\n");

    let window = format!("  time_window_start: {}\n  time_window_end: {}\n", base + 2000, base + 3000);
    let config = write_restore_config(dir.path(), "window", &target, "pitr", &window);
    assert_success(&restore(&config, &[]));
    let expected: Vec<RefRecord> =
        original.iter().filter(|r| (base + 2000..=base + 3000).contains(&r.timestamp.unwrap())).cloned().collect();
    assert_eq!(expected.len(), 4);
    let restored = testkit::consume(&target, &events, &[0]);
    assert_eq!(without_offsets(&restored), without_offsets(&expected));

    // The recorded offset map sends a committed source offset to the first restored record at or
    // after it, never past one: in-window source offsets 2, 3, 6, 7 became target offsets 0..=3.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let map = runtime.block_on(async {
        let store = BackupStore::existing_directory(&dir.path().join("store")).unwrap().child("pitr");
        let dir = format!("restores/{}/{events}/partition=0", KafkaCluster::target().cluster_id());
        let started = load_started(&store, &dir).await.unwrap().expect("restore recorded");
        load_offset_map(&store, &dir, &started, 0, None).await.unwrap()
    });
    let translated: Vec<i64> = (0..=8).map(|committed| map.translate(committed)).collect();
    assert_eq!(translated, vec![0, 0, 0, 1, 2, 2, 2, 3, 4]);
}

#[test]
fn a_dry_run_prints_the_plan_and_writes_nothing() {
    let (source, target) = clusters();
    let audit = unique("audit");
    testkit::create_topic(&source, &audit, 2, &[]);
    testkit::produce_small(&source, &audit, 1, 5);
    let dir = TempDir::new().unwrap();
    back_up(&dir, &source, "plan", &audit, "  compression: none\n");
    let renamed = unique("audit-dr");
    let config = write_restore_config(
        dir.path(),
        "dry",
        &target,
        "plan",
        &format!("  topic_mapping:\n    {audit}: {renamed}\n"),
    );
    let output = restore(&config, &["--dry-run"]);
    assert_success(&output);
    let plan = text(&output.stdout);
    assert!(plan.contains(&format!("{audit} -> {renamed} (create with 2 partitions, replication factor 1)")), "{plan}");
    assert!(plan.contains("partition 1 -> 1: 1 segments, up to 5 records"), "{plan}");
    assert!(plan.contains("Dry run: nothing was written."), "{plan}");
    assert!(!testkit::topics(&target).contains(&renamed), "the target is untouched");
    assert!(!dir.path().join("store/plan/restores").exists(), "no restore state was written");
}

/// The records without partition and offset, sorted by value (each value is unique): what a
/// restore that routes records by key must keep whole.
fn placement_free(records: &[RefRecord]) -> Vec<RefRecord> {
    let mut records: Vec<RefRecord> =
        records.iter().map(|r| RefRecord { partition: None, offset: None, ..r.clone() }).collect();
    records.sort_by(|a, b| a.value.cmp(&b.value));
    records
}

/// The last run continued where the killed ones stopped: it produced fewer records than the backup
/// holds (whether it also found landed but uncommitted records depends on where the last kill fell).
fn assert_resumed(last_run: &str, total: usize) {
    let restored: usize = last_run
        .split("Restored ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no \"Restored N records\" line: {last_run}"));
    assert!(restored < total, "the last run restored {restored} of {total} records: it did not resume");
}

#[test]
fn a_restore_killed_at_any_moment_finishes_with_every_record_exactly_once() {
    let (original, restored, last_run) =
        restore_with_kills(&KafkaCluster::source().bootstrap(), &KafkaCluster::target().bootstrap(), "", None);
    assert_resumed(&last_run, original.len());
    assert_eq!(restored, original, "no duplicate, no loss, same offsets");
}

#[test]
fn a_restore_killed_inside_a_segment_of_many_chunks_resumes_mid_segment_exactly_once() {
    let (source, target) = clusters();
    let journal = unique("journal");
    testkit::create_topic(&source, &journal, 1, &[]);
    // 12 MiB in one segment of three 4 MiB chunks (values that do not compress).
    let records = testkit::incompressible_records(0, 12_000);
    testkit::produce(&source, &journal, &records, &[("linger.ms", "5")]);
    let original = testkit::consume(&source, &journal, &[0]);
    let dir = TempDir::new().unwrap();
    back_up(&dir, &source, "chunked", &journal, "  compression: none\n");
    let config = write_restore_config(dir.path(), "paced", &target, "chunked", "  rate_limit_bytes_per_sec: 2000000\n");
    // Paced at 2 MB/s, the run is past its first chunk and short of the end after 3.5 s.
    let mut child = spawn(&["restore", "--config", config.to_str().unwrap()], true);
    std::thread::sleep(std::time::Duration::from_millis(3500));
    assert!(child.try_wait().unwrap().is_none(), "the restore finished before it was killed");
    child.kill().unwrap();
    child.wait().unwrap();
    let partial = testkit::consume(&target, &journal, &[0]);
    assert!(partial.len() > 4200 && partial.len() < original.len(), "the killed run wrote {} records", partial.len());
    assert_eq!(restore_state_files(dir.path()), 1, "only the started record: the segment was not committed");

    let last = restore(&config, &[]);
    assert_success(&last);
    assert_resumed(&text(&last.stdout), original.len());
    assert!(testkit::consume(&target, &journal, &[0]) == original, "no duplicate, no loss, same offsets");
}

#[test]
fn a_repartitioned_restore_killed_at_any_moment_finishes_with_every_record_exactly_once() {
    let (original, restored, last_run) = restore_with_kills(
        &KafkaCluster::source().bootstrap(),
        &KafkaCluster::target().bootstrap(),
        "  repartition: true\n",
        Some(3),
    );
    assert_resumed(&last_run, original.len());
    assert_eq!(placement_free(&restored), placement_free(&original), "no duplicate, no loss, whole records");
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
    let (source, target) = clusters();
    let retained = unique("retained");
    testkit::create_topic(&source, &retained, 4, &[]);
    testkit::produce_small(&source, &retained, 0, 500);
    testkit::produce_small(&source, &retained, 2, 30);
    let dir = TempDir::new().unwrap();
    back_up(&dir, &source, "gappy", &retained, "  compression: zstd\n");
    // What confluent-kafka saw before and after the log start moved: the backup holds the union.
    let before = testkit::consume(&source, &retained, &[0, 1, 2, 3]);
    testkit::produce_small(&source, &retained, 0, 500);
    testkit::delete_records(&source, &retained, 0, 700);
    back_up(&dir, &source, "gappy", &retained, "  compression: zstd\n");
    let after = testkit::consume(&source, &retained, &[0, 1, 2, 3]);
    let mut expected: Vec<RefRecord> =
        before.iter().filter(|r| r.offset < Some(700) && r.partition == Some(0)).cloned().collect();
    expected.extend(after);
    expected.sort_by_key(|r| (r.partition, r.offset));
    assert_eq!(expected.len(), 500 + 300 + 30);
    assert_eq!(expected[500].offset, Some(700), "the source lost offsets 500..700 between the runs");
    assert_eq!(backed_up_records(dir.path(), "gappy", &retained), expected);

    let config = write_restore_config(dir.path(), "gap", &target, "gappy", "  max_concurrent_partitions: 2\n");
    let output = restore(&config, &[]);
    assert_success(&output);
    assert!(text(&output.stdout).contains("create with 4 partitions"), "{}", text(&output.stdout));
    let restored = testkit::consume(&target, &retained, &[0, 1, 2, 3]);
    assert_eq!(without_offsets(&restored), without_offsets(&expected));
}

#[test]
fn the_rate_limit_is_never_exceeded() {
    let (source, target) = clusters();
    let bulk = unique("bulk");
    testkit::create_topic(&source, &bulk, 1, &[]);
    let records: Vec<RefRecord> = (0..2000)
        .map(|i| RefRecord {
            partition: Some(0),
            value: Some(vec![b'z'; 1000]),
            key: Some(format!("{i}").into_bytes()),
            ..RefRecord::default()
        })
        .collect();
    testkit::produce(&source, &bulk, &records, &[("linger.ms", "5"), ("batch.num.messages", "50")]);
    let dir = TempDir::new().unwrap();
    back_up(&dir, &source, "bulk", &bulk, "  compression: none\n");
    let limit = 1_000_000u64;
    let config =
        write_restore_config(dir.path(), "rate", &target, "bulk", &format!("  rate_limit_bytes_per_sec: {limit}\n"));
    // Only a lower bound: the limiter paces from the first byte (no burst), so 2 MB of values at
    // 1 MB/s take at least 2 s whatever the machine; a slow machine only makes it longer. The
    // pacing itself is unit-tested on a paused clock (restore/rate.rs).
    let started = Instant::now();
    let output = restore(&config, &[]);
    let elapsed = started.elapsed().as_secs_f64();
    assert_success(&output);
    assert_eq!(testkit::consume(&target, &bulk, &[0]).len(), records.len());
    let produced_bytes = 2000.0 * 1000.0;
    assert!(elapsed >= produced_bytes / limit as f64, "{produced_bytes} bytes in {elapsed:.2} s exceed {limit} B/s");
}

#[test]
fn conflicts_and_offset_headers() {
    let (source, target) = clusters();
    let payments = unique("payments");
    testkit::create_topic(&source, &payments, 2, &[]);
    testkit::produce(&source, &payments, &testkit::records_with_headers(0, 4), &[]);
    let original = testkit::consume(&source, &payments, &[0, 1]);
    let dir = TempDir::new().unwrap();
    back_up(&dir, &source, "pay", &payments, "  compression: none\n");

    testkit::create_topic(&target, &payments, 5, &[]);
    let clash = write_restore_config(dir.path(), "clash", &target, "pay", "  dry_run: false\n");
    let output = restore(&clash, &[]);
    assert!(!output.status.success());
    assert!(
        text(&output.stderr).contains(&format!("target topic {payments} has 5 partitions")),
        "{}",
        text(&output.stderr)
    );
    let dry = restore(&clash, &["--dry-run"]);
    assert!(!dry.status.success(), "a dry run with conflicts fails too");
    assert!(
        text(&dry.stdout).contains(&format!("CONFLICT target topic {payments} has 5 partitions")),
        "{}",
        text(&dry.stdout)
    );
    assert!(text(&dry.stdout).contains("partition 1 -> 1"), "the plan is shown: {}", text(&dry.stdout));
    assert!(testkit::consume(&target, &payments, &[0, 1, 2, 3, 4]).is_empty(), "nothing was written");

    // A missing target topic with create_topics: false is a conflict, not a silent creation.
    let absent = unique("absent");
    let settings = format!("  create_topics: false\n  topic_mapping:\n    {payments}: {absent}\n");
    let refused = restore(&write_restore_config(dir.path(), "absent", &target, "pay", &settings), &[]);
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr)
            .contains(&format!("target topic {absent} does not exist and restore.create_topics is false")),
        "{}",
        text(&refused.stderr)
    );
    assert!(!testkit::topics(&target).contains(&absent), "the topic was not created");

    let with_headers = unique("payments-h");
    let headers = write_restore_config(
        dir.path(),
        "headers",
        &target,
        "pay",
        &format!("  topic_mapping:\n    {payments}: {with_headers}\n  include_original_offset_header: true\n"),
    );
    assert_success(&restore(&headers, &[]));
    // Each record whole, with the header after its own.
    let expected: Vec<RefRecord> = original
        .iter()
        .map(|r| {
            let mut headers = r.headers.clone();
            headers.push(("x-original-offset".to_string(), Some(r.offset.unwrap().to_string().into_bytes())));
            RefRecord { headers, ..r.clone() }
        })
        .collect();
    assert_eq!(testkit::consume(&target, &with_headers, &[0, 1]), expected);
}

#[test]
fn repartitioned_records_land_where_the_java_partitioner_puts_their_keys() {
    let (source, target) = clusters();
    let users = unique("users");
    testkit::create_topic(&source, &users, 2, &[]);
    let records: Vec<RefRecord> = (0..400)
        .map(|i| RefRecord {
            partition: Some(i % 2),
            key: (i % 10 != 0).then(|| format!("user-{}", i % 37).into_bytes()),
            value: Some(format!("event-{i}").into_bytes()),
            headers: testkit::sample_headers(i as usize),
            ..RefRecord::default()
        })
        .collect();
    testkit::produce(&source, &users, &records, &[("linger.ms", "20")]);
    let original = testkit::consume(&source, &users, &[0, 1]);
    let dir = TempDir::new().unwrap();
    back_up(&dir, &source, "users", &users, "  segment_max_bytes: 4096\n");

    testkit::create_topic(&target, &users, 5, &[]);
    let config = write_restore_config(dir.path(), "repartition", &target, "users", "  repartition: true\n");
    let output = restore(&config, &["--dry-run"]);
    assert_success(&output);
    assert!(text(&output.stdout).contains("records routed by key into its 5 partitions"), "{}", text(&output.stdout));
    let output = restore(&config, &[]);
    assert_success(&output);
    assert!(text(&output.stdout).contains("Restored 400 records"), "{}", text(&output.stdout));
    let restored = testkit::consume(&target, &users, &[0, 1, 2, 3, 4]);
    assert_eq!(restored.len(), records.len());

    // The independent reference: librdkafka's Java-compatible murmur2 partitioner.
    let keyed: Vec<RefRecord> =
        records.iter().filter(|r| r.key.is_some()).map(|r| RefRecord { partition: None, ..r.clone() }).collect();
    let reference = unique("reference");
    testkit::create_topic(&target, &reference, 5, &[]);
    let placed = testkit::produce(&target, &reference, &keyed, &[("partitioner", "murmur2")]);
    let expected: std::collections::BTreeMap<Vec<u8>, i32> =
        placed.iter().map(|r| (r.key.clone().unwrap(), r.partition.unwrap())).collect();
    for record in restored.iter().filter(|r| r.key.is_some()) {
        assert_eq!(Some(expected[record.key.as_ref().unwrap()]), record.partition, "key {:?}", record.key);
    }
    let null_keyed = restored.iter().filter(|r| r.key.is_none()).count();
    assert_eq!(null_keyed, 40);
    assert_eq!(placement_free(&restored), placement_free(&original), "every record exactly once, whole");

    let again = restore(&config, &[]);
    assert_success(&again);
    assert!(text(&again.stdout).contains("Restored 0 records"), "{}", text(&again.stdout));
    assert_eq!(testkit::consume(&target, &users, &[0, 1, 2, 3, 4]), restored, "a second run wrote nothing");
}

#[test]
fn topic_configs_set_on_the_source_topic_are_recreated_and_cluster_defaults_are_not_copied() {
    let (source, target) = clusters();
    let compacted = unique("compacted");
    let configs = [("cleanup.policy", "compact"), ("retention.ms", "7200000"), ("max.message.bytes", "2000000")];
    testkit::create_topic(&source, &compacted, 2, &configs);
    testkit::produce_small(&source, &compacted, 0, 10);
    let set_on_source = testkit::topic_configs(&source, &compacted);
    let expected: std::collections::BTreeMap<String, String> =
        configs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    assert_eq!(set_on_source, expected, "confluent-kafka sees the three configs set on the topic");

    let dir = TempDir::new().unwrap();
    back_up(&dir, &source, "configs", &compacted, "");
    let described = describe_json(dir.path(), "configs");
    let captured: std::collections::BTreeMap<String, String> =
        serde_json::from_value(described["topics"][0]["configs"].clone()).expect("configs in the manifest");
    assert_eq!(captured, expected, "only what is set on the topic, not the source brokers' defaults");

    let copy = unique("compacted-copy");
    let settings = format!("  topic_mapping:\n    {compacted}: {copy}\n");
    let output = restore(&write_restore_config(dir.path(), "configs", &target, "configs", &settings), &[]);
    assert_success(&output);
    assert_eq!(testkit::topic_configs(&target, &copy), expected, "recreated with the same configs, and no others");
    assert_eq!(testkit::consume(&target, &copy, &[0, 1]).len(), 10);
}

/// A restore of a 2000-record backup killed after its first segment commit: returns the store,
/// the source and restored topic names, the config and what the target held after the kill.
fn interrupted_restore() -> (TempDir, String, std::path::PathBuf, Vec<RefRecord>) {
    let (source, target) = clusters();
    let topic = unique("interrupted");
    testkit::create_topic(&source, &topic, 1, &[]);
    let records: Vec<RefRecord> = (0..2000)
        .map(|i| RefRecord {
            partition: Some(0),
            value: Some(format!("{i:06}{}", "-".repeat(400)).into_bytes()),
            ..RefRecord::default()
        })
        .collect();
    testkit::produce(&source, &topic, &records, &[("batch.num.messages", "50"), ("linger.ms", "5")]);
    let dir = TempDir::new().unwrap();
    back_up(&dir, &source, "cut", &topic, "  segment_max_bytes: 16384\n");
    let config = write_restore_config(dir.path(), "cut", &target, "cut", "  rate_limit_bytes_per_sec: 200000\n");
    let mut child = spawn(&["restore", "--config", config.to_str().unwrap()], true);
    wait_for("the first restored segment's commit", HANG, || restore_state_files(dir.path()) > 1);
    child.kill().unwrap();
    child.wait().unwrap();
    let partial = testkit::consume(&target, &topic, &[0]);
    assert!(!partial.is_empty() && partial.len() < records.len(), "the killed run wrote {} records", partial.len());
    (dir, topic, config, partial)
}

#[test]
fn a_resumed_restore_refuses_changed_settings_and_a_target_another_producer_wrote_to() {
    let target = clusters().1;
    let (dir, topic, config, partial) = interrupted_restore();

    // The same restore with another time window is another restore: refused, nothing written.
    let changed = write_restore_config(dir.path(), "changed", &target, "cut", "  time_window_start: 1\n");
    let output = restore(&changed, &[]);
    assert!(!output.status.success());
    assert!(text(&output.stderr).contains("an earlier restore"), "{}", text(&output.stderr));
    assert_eq!(testkit::consume(&target, &topic, &[0]), partial, "nothing was written");

    // Another producer appends to the target: the resumed restore finds its tail changed.
    let foreign =
        RefRecord { partition: Some(0), value: Some(b"not from the backup".to_vec()), ..RefRecord::default() };
    testkit::produce(&target, &topic, &[foreign], &[]);
    let output = restore(&config, &[]);
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(stderr.contains(&format!("target {topic}-0")) && stderr.contains("another producer"), "{stderr}");
    assert_eq!(testkit::consume(&target, &topic, &[0]).len(), partial.len() + 1, "nothing more was written");
}

/// Flips one bit near the end of the first segment of `topic`-`partition` in backup `id` (an
/// uncompressed segment: the byte lies in a record batch, whose CRC then fails).
fn corrupt_first_segment(dir: &TempDir, id: &str, topic: &str, partition: i32) {
    let segment = segment_files(dir.path(), id, topic, partition).remove(0);
    let mut bytes = std::fs::read(&segment).unwrap();
    let last = bytes.len() - 20;
    bytes[last] ^= 0x40;
    std::fs::write(&segment, bytes).unwrap();
}

#[test]
fn a_corrupt_segment_stops_the_restore_naming_it() {
    let (source, target) = clusters();
    let topic = unique("corrupt");
    testkit::create_topic(&source, &topic, 1, &[]);
    testkit::produce_small(&source, &topic, 0, 50);
    let dir = TempDir::new().unwrap();
    back_up(&dir, &source, "bad", &topic, "  compression: none\n");
    corrupt_first_segment(&dir, "bad", &topic, 0);

    let output = restore(&write_restore_config(dir.path(), "bad", &target, "bad", ""), &[]);
    assert!(!output.status.success(), "a corrupt segment is an error");
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains(&format!("topics/{topic}/partition=0/segment-")) && stderr.contains("corrupt"),
        "the error names the segment: {stderr}"
    );
    assert!(
        !testkit::topics(&target).contains(&topic) || testkit::consume(&target, &topic, &[0]).is_empty(),
        "no record of the corrupt segment was restored"
    );
}

#[test]
fn a_partition_that_fails_stops_the_other_partitions_of_the_restore() {
    let (source, target) = clusters();
    let topic = unique("one-fails");
    testkit::create_topic(&source, &topic, 2, &[]);
    testkit::produce_small(&source, &topic, 0, 50);
    // Partition 1: one record per batch in segments of about 1 KiB, dozens of segments to restore.
    testkit::produce_one_per_batch(&source, &topic, 1, 600);
    let long = testkit::consume(&source, &topic, &[1]);
    let dir = TempDir::new().unwrap();
    back_up(&dir, &source, "one-fails", &topic, "  compression: none\n  segment_max_bytes: 1024\n");
    assert!(segment_files(dir.path(), "one-fails", &topic, 1).len() > 20, "partition 1 spans many segments");
    corrupt_first_segment(&dir, "one-fails", &topic, 0);

    let output = restore(&write_restore_config(dir.path(), "one-fails", &target, "one-fails", ""), &[]);
    assert!(!output.status.success(), "a corrupt segment is an error");
    let stderr = text(&output.stderr);
    assert!(stderr.contains(&format!("topics/{topic}/partition=0/segment-")), "{stderr}");
    assert!(stderr.contains("stopping the others"), "{stderr}");
    // Partition 1 stopped at a segment boundary: what it restored is a prefix of the source, not all of it.
    let restored = testkit::consume(&target, &topic, &[1]);
    assert!(restored.len() < long.len(), "partition 1 ran on to its end ({} records)", restored.len());
    assert_eq!(without_offsets(&restored), without_offsets(&long[..restored.len()]));
}

#[test]
fn produce_compression_recompresses_what_is_restored_and_keeps_every_record() {
    let (source, target) = clusters();
    let topic = unique("recompressed");
    testkit::create_topic(&source, &topic, 1, &[]);
    testkit::produce(
        &source,
        &topic,
        &testkit::fidelity_records(0)[..12]
            .iter()
            .map(|r| RefRecord { timestamp: None, ..r.clone() })
            .collect::<Vec<_>>(),
        &[("compression.type", "lz4")],
    );
    let original = testkit::consume(&source, &topic, &[0]);
    let dir = TempDir::new().unwrap();
    back_up(&dir, &source, "gz", &topic, "");
    let copy = unique("recompressed-copy");
    let settings = format!("  topic_mapping:\n    {topic}: {copy}\n  produce_compression: gzip\n");
    assert_success(&restore(&write_restore_config(dir.path(), "gz", &target, "gz", &settings), &[]));
    assert_eq!(testkit::consume(&target, &copy, &[0]), original, "every record, same offsets");

    // The codec is a batch attribute no consumer shows: read the raw batches back.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let codecs = runtime.block_on(async {
        use kafka_backup_core::kafka::{ClientConfig, FetchOptions, KafkaClient};
        let client = KafkaClient::connect(ClientConfig::new(vec![target.clone()])).await.unwrap();
        let fetched = client.fetch(&copy, 0, 0, &FetchOptions::default()).await.unwrap();
        let batches = kafka_backup_core::records::split_batches(fetched.records).unwrap().batches;
        batches.iter().map(|b| b.compression().unwrap()).collect::<Vec<_>>()
    });
    assert!(
        !codecs.is_empty() && codecs.iter().all(|c| *c == kafka_backup_core::records::Compression::Gzip),
        "{codecs:?}"
    );
}

#[test]
fn log_append_time_records_keep_their_original_timestamps() {
    let (source, target) = clusters();
    let topic = unique("appended-time");
    testkit::create_topic(&source, &topic, 1, &[("message.timestamp.type", "LogAppendTime")]);
    testkit::produce(&source, &topic, &testkit::records_with_headers(0, 20), &[]);
    let original = testkit::consume(&source, &topic, &[0]);
    assert!(original.iter().all(|r| r.timestamp_type.as_deref() == Some("log_append_time")));
    std::thread::sleep(std::time::Duration::from_millis(20)); // the restore's append time differs
    let dir = TempDir::new().unwrap();
    back_up(&dir, &source, "lat", &topic, "");
    let copy = unique("appended-time-copy");
    let settings = format!("  topic_mapping:\n    {topic}: {copy}\n");
    let output = restore(&write_restore_config(dir.path(), "lat", &target, "lat", &settings), &[]);
    assert_success(&output);
    assert!(
        text(&output.stdout).contains("message.timestamp.type=CreateTime"),
        "the plan says so: {}",
        text(&output.stdout)
    );
    // Every record keeps the time the source broker gave it, now as its create time, and its key,
    // value and headers.
    let expected: Vec<RefRecord> =
        original.iter().map(|r| RefRecord { timestamp_type: Some("create_time".into()), ..r.clone() }).collect();
    assert_eq!(testkit::consume(&target, &copy, &[0]), expected);
}

/// One record of a Schema Registry's store topic, as the registry writes it: JSON key and value.
fn registry_record(key: &str, value: Option<&str>) -> RefRecord {
    RefRecord {
        partition: Some(0),
        key: Some(key.as_bytes().to_vec()),
        value: value.map(|v| v.as_bytes().to_vec()),
        ..RefRecord::default()
    }
}

#[test]
fn a_schema_registry_store_topic_comes_back_with_its_ids_order_and_compaction() {
    // The `_schemas` route (docs/configuration.md): the registry's store topic is backed up like
    // any topic and restored before a registry starts on the target, which rebuilds its schema
    // ids from the records. No registry runs here: the records are the registry's own format.
    let (source, target) = clusters();
    let store = format!("_schemas-{}", unique("registry"));
    testkit::create_topic(&source, &store, 1, &[("cleanup.policy", "compact")]);
    let schema = r#"{\"type\":\"record\",\"name\":\"Order\",\"fields\":[{\"name\":\"id\",\"type\":\"long\"}]}"#;
    let records = vec![
        registry_record(r#"{"keytype":"NOOP","magic":0}"#, None),
        registry_record(
            r#"{"keytype":"SCHEMA","subject":"orders-value","version":1,"magic":1}"#,
            Some(&format!(r#"{{"subject":"orders-value","version":1,"id":1,"schema":"{schema}","deleted":false}}"#)),
        ),
        registry_record(
            r#"{"keytype":"CONFIG","subject":"orders-value","magic":0}"#,
            Some(r#"{"compatibilityLevel":"FULL"}"#),
        ),
        // Ids need not be consecutive (schemas deleted, imported ones): the restore keeps each.
        registry_record(
            r#"{"keytype":"SCHEMA","subject":"payments-value","version":3,"magic":1}"#,
            Some(&format!(r#"{{"subject":"payments-value","version":3,"id":7,"schema":"{schema}","deleted":true}}"#)),
        ),
        registry_record(r#"{"keytype":"SCHEMA","subject":"payments-value","version":2,"magic":1}"#, None),
    ];
    testkit::produce(&source, &store, &records, &[]);
    let original = testkit::consume(&source, &store, &[0]);
    let dir = TempDir::new().unwrap();
    back_up(&dir, &source, "registry", &store, "");

    // The same topic name on the target (or set the target registry's kafkastore.topic).
    assert_success(&restore(&write_restore_config(dir.path(), "registry", &target, "registry", ""), &[]));
    assert_eq!(testkit::consume(&target, &store, &[0]), original, "record for record, offsets and nulls included");
    assert_eq!(testkit::topic_configs(&target, &store).get("cleanup.policy").map(String::as_str), Some("compact"));
}

#[test]
fn a_topic_recreated_under_a_continuous_backup_becomes_a_new_incarnation_and_each_restores_exactly() {
    let (source, target) = (KafkaCluster::source(), KafkaCluster::target());
    let topic = unique("reborn");
    testkit::create_topic(&source.bootstrap(), &topic, 2, &[]);
    testkit::produce_small(&source.bootstrap(), &topic, 0, 10);
    testkit::produce_small(&source.bootstrap(), &topic, 1, 5);
    let first_life = testkit::consume(&source.bootstrap(), &topic, &[0, 1]);
    let dir = TempDir::new().unwrap();
    let settings = "  continuous: true\n  segment_max_interval_ms: 500\n  checkpoint_interval_secs: 1\n";
    let config = write_config(dir.path(), &source.bootstrap(), "reborn", &topic, settings);
    let child = spawn(&["backup", "--config", config.to_str().unwrap()], false);
    wait_for("the first incarnation to be backed up", HANG, || {
        backed_up_records_if_any(dir.path(), "reborn", &topic).len() == first_life.len()
    });

    // Deleted and created again with one partition while the backup is held (SIGSTOP), and filled
    // past the position it reads partition 0 from: no error tells it, only the topic id does (a
    // fetch by name would read the new topic's records 10.. as the old one's). The new records
    // (headers, nulls, timestamps) go to a new incarnation, the old one is kept as it was.
    send_signal(&child, "-STOP");
    testkit::delete_topic(&source.bootstrap(), &topic);
    testkit::create_topic(&source.bootstrap(), &topic, 1, testkit::FIDELITY_TOPIC_CONFIGS);
    testkit::produce(&source.bootstrap(), &topic, &testkit::fidelity_records(0), &[]);
    let second_life = testkit::consume(&source.bootstrap(), &topic, &[0]);
    assert!(second_life.len() > 10, "the new topic is past the old position");
    send_signal(&child, "-CONT");
    let second = format!("{topic}@2");
    wait_for("the second incarnation to be backed up", HANG, || {
        backed_up_records_if_any(dir.path(), "reborn", &second).len() == second_life.len()
    });
    send_signal(&child, "-TERM");
    let output = wait_with_deadline(child, HANG);
    assert_success(&output);
    let log = text(&output.stderr) + &text(&output.stdout);
    assert!(log.contains("deleted and created again") && log.contains(&second), "the user is told: {log}");
    assert_eq!(backed_up_records(dir.path(), "reborn", &topic), first_life, "the first incarnation is untouched");
    assert_eq!(backed_up_records(dir.path(), "reborn", &second), second_life);
    assert_success(&validate(dir.path(), "reborn", true));

    let manifest = describe_json(dir.path(), "reborn");
    let entry = |name: &str| manifest["topics"].as_array().unwrap().iter().find(|t| t["name"] == name).unwrap().clone();
    let (old, new) = (entry(&topic), entry(&second));
    assert!(old["topic_id"].is_string() && new["topic_id"].is_string() && old["topic_id"] != new["topic_id"]);
    assert_eq!((old["partition_count"].as_i64(), new["partition_count"].as_i64()), (Some(2), Some(1)));
    let described = run(&["describe", "--path", &store_path(dir.path()), "--backup-id", "reborn"]);
    assert!(
        text(&described.stdout).contains(&format!("incarnation 2 of topic {topic}")),
        "{}",
        text(&described.stdout)
    );
    let found = run(&["find", "--path", &store_path(dir.path()), "--topic", &topic, "--at", &now_ms().to_string()]);
    assert!(text(&found.stdout).contains("incarnation 2 of the topic"), "{}", text(&found.stdout));

    // By default the latest incarnation is restored, as the topic is now.
    let latest = unique("reborn-latest");
    let restore_latest = write_restore_config(
        dir.path(),
        "latest",
        &target.bootstrap(),
        "reborn",
        &format!("  topic_mapping:\n    {topic}: {latest}\n"),
    );
    let planned = restore(&restore_latest, &["--dry-run"]);
    assert!(text(&planned.stdout).contains("incarnation 2 of 2 is restored"), "{}", text(&planned.stdout));
    assert_success(&restore(&restore_latest, &[]));
    assert_eq!(testkit::consume(&target.bootstrap(), &latest, &[0]), second_life, "record for record, offsets too");
    assert_success(&run(&["verify", "--config", restore_latest.to_str().unwrap()]));

    // The first one on request, both partitions, exactly as the deleted topic held them.
    let first = unique("reborn-first");
    let restore_first = write_restore_config(
        dir.path(),
        "first",
        &target.bootstrap(),
        "reborn",
        &format!("  topic_mapping:\n    {topic}: {first}\n  incarnations:\n    {topic}: 1\n"),
    );
    assert_success(&restore(&restore_first, &[]));
    assert_eq!(testkit::consume(&target.bootstrap(), &first, &[0, 1]), first_life);
    let missing = write_restore_config(
        dir.path(),
        "missing",
        &target.bootstrap(),
        "reborn",
        &format!("  incarnations:\n    {topic}: 3\n"),
    );
    let refused = restore(&missing, &[]);
    assert!(!refused.status.success());
    assert!(text(&refused.stderr).contains("the backup holds 1, 2"), "{}", text(&refused.stderr));

    // Re-created between two runs: the next run (a snapshot) finds the new id at its start.
    testkit::delete_topic(&source.bootstrap(), &topic);
    testkit::create_topic(&source.bootstrap(), &topic, 1, &[]);
    testkit::produce_small(&source.bootstrap(), &topic, 0, 7);
    let third_life = testkit::consume(&source.bootstrap(), &topic, &[0]);
    let snapshot = write_config(dir.path(), &source.bootstrap(), "reborn", &topic, "");
    let output = backup(&snapshot);
    assert_success(&output);
    let third = format!("{topic}@3");
    assert!(text(&output.stdout).contains(&format!("backed up as {third}")), "{}", text(&output.stdout));
    assert_eq!(backed_up_records(dir.path(), "reborn", &third), third_life);
    assert_eq!(backed_up_records(dir.path(), "reborn", &second), second_life, "the second is untouched");
}
