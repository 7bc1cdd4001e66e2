//! Consumer-group offset recovery as a user runs it: groups commit on a "source" Tansu broker,
//! the backup snapshots them, and after `three-phase-restore` (or `restore` + `offset-reset`) a
//! confluent-kafka consumer in each group on the "target" broker reads first exactly the record
//! the group would have read next on the source.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use kafka_backup_testkit::{self as testkit, Broker, GroupMember, RefRecord};
use tempfile::TempDir;

/// Produces one record per batch (Tansu's high watermark counts batches) with distinct values.
fn produce_numbered(bootstrap: &str, topic: &str, numbers: std::ops::Range<usize>, timestamp: impl Fn(usize) -> i64) {
    let records: Vec<RefRecord> = numbers
        .map(|n| RefRecord {
            partition: Some(0),
            key: Some(format!("key-{n}").into_bytes()),
            value: Some(format!("order-{n}").into_bytes()),
            headers: vec![("seq".to_string(), Some(n.to_string().into_bytes()))],
            timestamp: Some(timestamp(n)),
            ..RefRecord::default()
        })
        .collect();
    testkit::produce(bootstrap, topic, &records, &[("batch.num.messages", "1"), ("linger.ms", "0")]);
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

/// The parts of a record a consumer sees, without where it sits (offsets differ across clusters).
fn content(record: &RefRecord) -> (Option<Vec<u8>>, Option<Vec<u8>>, i64) {
    (record.key.clone(), record.value.clone(), record.timestamp.unwrap())
}

fn three_phase_restore(config: &std::path::Path) -> String {
    let output = run(&["three-phase-restore", "--config", config.to_str().unwrap()]);
    assert_success(&output);
    text(&output.stdout)
}

#[test]
fn after_a_three_phase_restore_every_group_reads_first_the_record_it_would_have_read_next() {
    let (source, target) = (Broker::start("source"), Broker::start("target"));
    let (s, t) = (source.bootstrap(), target.bootstrap());
    testkit::create_topic(&s, "orders", 1, &[]);
    produce_numbered(&s, "orders", 0..5, |n| 1_000 + n as i64);
    // A committed transaction: its record at offset 5, its marker at 6, an offset with no record.
    testkit::produce_transactions(&s, "orders", 0, &[(1, true)]);
    produce_numbered(&s, "orders", 7..10, |n| 1_000 + n as i64);
    let groups = [("at-zero", 0), ("in-middle", 3), ("on-marker-gap", 6), ("at-end", 10)];
    for (group, offset) in groups {
        testkit::commit(&s, group, &[("orders", 0, offset)]);
    }
    let next_on_source = testkit::first_record_as_groups(&s, "orders", &["at-zero", "in-middle", "on-marker-gap"]);
    assert_eq!(next_on_source["on-marker-gap"].value.as_deref(), Some(&b"order-7"[..]), "the gap is a marker");

    let dir = TempDir::new().unwrap();
    assert_success(&backup(&write_config(dir.path(), &s, "nightly", "orders", "")));
    let config =
        write_restore_config(dir.path(), "dr", &t, "nightly", "  topic_mapping:\n    orders: orders-restored\n");
    let report = three_phase_restore(&config);
    assert!(report.contains("Committed 4 offsets of 4 groups on cluster target"), "{report}");

    // Exact target offsets: 0..=5 kept their offsets, the marker was not restored, 7 became 6.
    for (group, expected) in [("at-zero", 0), ("in-middle", 3), ("on-marker-gap", 6), ("at-end", 9)] {
        let committed = testkit::committed(&t, group, "orders-restored", &[0]);
        assert_eq!(committed[&0], expected, "group {group}");
    }
    let next_on_target =
        testkit::first_record_as_groups(&t, "orders-restored", &["at-zero", "in-middle", "on-marker-gap"]);
    for (group, record) in &next_on_source {
        assert_eq!(content(&next_on_target[group]), content(record), "group {group} on the renamed topic");
    }
    assert_resumes_after_the_restored_records(&t, "orders-restored", "at-end");
}

/// A group placed at the end reads first what is written after the restore, nothing restored again.
fn assert_resumes_after_the_restored_records(bootstrap: &str, topic: &str, group: &str) {
    produce_numbered(bootstrap, topic, 100..101, |_| now_ms());
    let first = testkit::first_record_as_groups(bootstrap, topic, &[group]);
    assert_eq!(first[group].value.as_deref(), Some(&b"order-100"[..]), "group {group}");
}

#[test]
fn a_time_window_restore_uses_the_last_snapshot_before_its_end_and_ends_groups_past_it() {
    let (source, target) = (Broker::start("source"), Broker::start("target"));
    let (s, t) = (source.bootstrap(), target.bootstrap());
    testkit::create_topic(&s, "events", 1, &[]);
    let now = now_ms();
    // Records 0..=5 an hour ago, 6..=9 an hour ahead: a window ending now keeps 0..=5.
    produce_numbered(&s, "events", 0..10, |n| if n < 6 { now - 3_600_000 + n as i64 } else { now + 3_600_000 });
    testkit::commit(&s, "history", &[("events", 0, 2)]);
    testkit::commit(&s, "past-window", &[("events", 0, 8)]);
    let dir = TempDir::new().unwrap();
    let config = write_config(dir.path(), &s, "hourly", "events", "");
    assert_success(&backup(&config));
    std::thread::sleep(Duration::from_millis(50));
    let window_end = now_ms();
    std::thread::sleep(Duration::from_millis(50));
    // Later the group moved on; the second run's snapshot holds that, after the window's end.
    testkit::commit(&s, "history", &[("events", 0, 4)]);
    assert_success(&backup(&config));

    let restore = format!("  time_window_end: {window_end}\n  topic_mapping:\n    events: events-pitr\n");
    let report = three_phase_restore(&write_restore_config(dir.path(), "pitr", &t, "hourly", &restore));
    assert!(report.contains("Committed 2 offsets of 2 groups"), "{report}");
    assert_eq!(testkit::committed(&t, "history", "events-pitr", &[0])[&0], 2, "the snapshot before the window end");
    assert_eq!(testkit::committed(&t, "past-window", "events-pitr", &[0])[&0], 6, "past the window: the end");

    let first = testkit::first_record_as_groups(&t, "events-pitr", &["history"]);
    assert_eq!(first["history"].value.as_deref(), Some(&b"order-2"[..]));
    assert_resumes_after_the_restored_records(&t, "events-pitr", "past-window");
}

#[test]
fn restore_with_a_strategy_commits_offsets_on_the_mapped_partitions() {
    let (source, target) = (Broker::start("source"), Broker::start("target"));
    let (s, t) = (source.bootstrap(), target.bootstrap());
    testkit::create_topic(&s, "moves", 2, &[]);
    testkit::produce_one_per_batch(&s, "moves", 0, 3);
    testkit::produce_one_per_batch(&s, "moves", 1, 5);
    testkit::commit(&s, "mover", &[("moves", 0, 1), ("moves", 1, 4)]);
    let dir = TempDir::new().unwrap();
    assert_success(&backup(&write_config(dir.path(), &s, "swap", "moves", "")));
    let settings = "  topic_mapping:\n    moves: moved\n  partition_mapping:\n    moves: {0: 1, 1: 0}\n  \
                    consumer_group_strategy: exact\n";
    let output = restore(&write_restore_config(dir.path(), "swap", &t, "swap", settings), &[]);
    assert_success(&output);
    assert!(text(&output.stdout).contains("Committed 2 offsets of 1 groups"), "{}", text(&output.stdout));
    let committed = testkit::committed(&t, "mover", "moved", &[0, 1]);
    assert_eq!((committed[&1], committed[&0]), (1, 4), "source partition 0 went to 1 and 1 to 0");

    // Routed by key into another partition count, a source offset has no single target position.
    testkit::create_topic(&t, "regrouped", 3, &[]);
    let settings = "  topic_mapping:\n    moves: regrouped\n  repartition: true\n";
    assert_success(&restore(&write_restore_config(dir.path(), "regroup", &t, "swap", settings), &[]));
    let path = store_path(dir.path());
    let output =
        run(&["offset-reset", "plan", "--path", &path, "--backup-id", "swap", "--all-groups", "--format", "json"]);
    assert_success(&output);
    let plan: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let regrouped: Vec<&serde_json::Value> =
        plan["offsets"].as_array().unwrap().iter().filter(|o| o["target_topic"] == "regrouped").collect();
    assert_eq!(regrouped.len(), 2);
    for offset in regrouped {
        assert!(offset["target_offset"].is_null(), "{offset}");
        assert!(offset["note"].as_str().unwrap().contains("routed by key"), "{offset}");
    }
}

fn plan(dir: &TempDir, extra: &[&str]) -> std::process::Output {
    let path = store_path(dir.path());
    let mut args = vec!["offset-reset", "plan", "--path", &path, "--backup-id", "daily"];
    args.extend_from_slice(extra);
    run(&args)
}

fn planned_targets(output: &std::process::Output) -> Vec<(String, Option<i64>)> {
    assert_success(output);
    let plan: serde_json::Value = serde_json::from_slice(&output.stdout).expect("--format json is JSON");
    let offsets = plan["offsets"].as_array().expect("offsets");
    offsets.iter().map(|o| (o["group"].as_str().unwrap().to_string(), o["target_offset"].as_i64())).collect()
}

#[test]
fn offset_reset_plans_in_every_format_refuses_active_groups_executes_and_rolls_back() {
    let (source, target) = (Broker::start("source"), Broker::start("target"));
    let (s, t) = (source.bootstrap(), target.bootstrap());
    testkit::create_topic(&s, "payments", 1, &[]);
    produce_numbered(&s, "payments", 0..6, |n| 5_000 + n as i64);
    testkit::commit(&s, "ledger", &[("payments", 0, 2)]);
    testkit::commit(&s, "audit", &[("payments", 0, 4)]);
    let dir = TempDir::new().unwrap();
    assert_success(&backup(&write_config(dir.path(), &s, "daily", "payments", "")));
    let restore_settings = "  topic_mapping:\n    payments: payments-dr\n  include_original_offset_header: true\n";
    assert_success(&restore(&write_restore_config(dir.path(), "dr", &t, "daily", restore_settings), &[]));

    // Plans need no target cluster for the recorded map; every format says the same.
    let exact = planned_targets(&plan(&dir, &["--groups", "ledger,audit", "--format", "json"]));
    assert_eq!(exact, vec![("audit".to_string(), Some(4)), ("ledger".to_string(), Some(2))]);
    let csv = text(&plan(&dir, &["--all-groups", "--format", "csv"]).stdout);
    let rows: Vec<&str> = csv.lines().collect();
    assert!(rows[0].starts_with("group,source_topic,source_partition,source_offset"), "{csv}");
    assert_eq!(rows.len(), 3, "{csv}");
    assert!(rows[2].starts_with("ledger,payments,0,2,") && rows[2].contains(",payments-dr,0,2,exact,"), "{csv}");
    let shell = text(&plan(&dir, &["--groups", "ledger", "--format", "shell"]).stdout);
    assert!(
        shell.contains("--group 'ledger' --topic 'payments-dr:0' --reset-offsets --to-offset 2 --execute"),
        "{shell}"
    );
    let table = plan(&dir, &["--groups", "ledger,nobody"]);
    assert_success(&table);
    let table = text(&table.stdout);
    assert!(table.contains("payments-0") && table.contains("payments-dr-0"), "{table}");
    assert!(table.contains("WARNING group nobody has no committed offsets"), "{table}");
    let neither = plan(&dir, &[]);
    assert!(!neither.status.success(), "--groups or --all-groups is required");

    // The headers read back from the target give the same offsets as the recorded map.
    let headers =
        plan(&dir, &["--all-groups", "--strategy", "header-based", "--bootstrap-servers", &t, "--format", "json"]);
    assert_eq!(planned_targets(&headers), exact);

    // Tansu answers every ListOffsets by timestamp with 0 (a gap listed in the guide), so only the
    // request path is run here; the lookup rule is unit-tested against a model of Kafka's answer.
    let by_time =
        plan(&dir, &["--all-groups", "--strategy", "timestamp-based", "--bootstrap-servers", &t, "--format", "json"]);
    assert_eq!(planned_targets(&by_time).len(), 2);
    assert!(text(&by_time.stdout).contains("\"method\": \"timestamp-based\""));

    // audit already consumed on the target; cluster-scan keeps that commit.
    testkit::commit(&t, "audit", &[("payments-dr", 0, 1)]);
    let scan =
        plan(&dir, &["--all-groups", "--strategy", "cluster-scan", "--bootstrap-servers", &t, "--format", "json"]);
    assert_eq!(planned_targets(&scan), vec![("audit".to_string(), Some(1)), ("ledger".to_string(), Some(2))]);

    let path = store_path(dir.path());
    let execute = |extra: &[&str]| {
        let mut args = vec!["offset-reset", "execute", "--path", &path, "--backup-id", "daily", "--all-groups"];
        args.extend_from_slice(&["--bootstrap-servers", &t]);
        args.extend_from_slice(extra);
        run(&args)
    };
    {
        let _member = GroupMember::join(&t, "payments-dr", "ledger");
        let refused = execute(&[]);
        assert!(!refused.status.success(), "a group with members is refused");
        let stderr = text(&refused.stderr);
        assert!(stderr.contains("ledger") && stderr.contains("active members"), "{stderr}");
        assert_eq!(testkit::committed(&t, "audit", "payments-dr", &[0])[&0], 1, "nothing changed");
    }
    let manual = execute(&["--strategy", "manual"]);
    assert!(!manual.status.success() && text(&manual.stderr).contains("only reports"), "{}", text(&manual.stderr));
    // The member left when it closed: the same command now goes through.
    let executed = execute(&[]);
    assert_success(&executed);
    assert!(text(&executed.stdout).contains("Committed 2 offsets of 2 groups"), "{}", text(&executed.stdout));
    assert_eq!(testkit::committed(&t, "ledger", "payments-dr", &[0])[&0], 2);
    assert_eq!(testkit::committed(&t, "audit", "payments-dr", &[0])[&0], 4);

    // The restore config names the storage, the backup and the target.
    let config = dir.path().join("dr.yaml");
    let rollback = || run(&["offset-reset", "rollback", "--config", config.to_str().unwrap()]);
    let undone = rollback();
    assert_success(&undone);
    let undone = text(&undone.stdout);
    assert!(undone.contains("previous offsets restored for: audit"), "{undone}");
    assert!(undone.contains("deleted (they had no offsets before the reset): ledger"), "{undone}");
    assert_eq!(testkit::committed(&t, "audit", "payments-dr", &[0])[&0], 1, "audit's own commit is back");
    assert!(testkit::committed(&t, "ledger", "payments-dr", &[0])[&0] < 0, "ledger has no offset again");
    let again = rollback();
    assert!(!again.status.success() && text(&again.stderr).contains("left to roll back"), "{}", text(&again.stderr));
}
