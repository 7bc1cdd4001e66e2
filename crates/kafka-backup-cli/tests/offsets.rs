//! Consumer-group offset recovery as a user runs it: groups commit on the Apache Kafka "source"
//! cluster, the backup snapshots them, and after `three-phase-restore` (or `restore` +
//! `offset-reset`) a confluent-kafka consumer in each group on the "target" cluster reads first
//! exactly the record the group would have read next on the source. Share groups' start offsets
//! (KIP-932) likewise, read with Kafka's Java admin client.

mod common;

use std::time::Duration;

use common::*;
use kafka_backup_testkit::{self as testkit, unique, GroupMember, KafkaCluster, RefRecord, ShareMember};
use tempfile::TempDir;

/// Produces records `numbers` (distinct keys, values and timestamps) to partition 0.
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
    testkit::produce(bootstrap, topic, &records, &[]);
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

/// A new one-partition topic: order-0..=4 at offsets 0..=4, a committed transaction's record at 5
/// and its marker at 6 (an offset with no record, not restored), order-7..=9 at 7..=9.
fn orders_with_a_marker_at_6(bootstrap: &str) -> String {
    let orders = unique("orders");
    testkit::create_topic(bootstrap, &orders, 1, &[]);
    let base = now_ms() - 600_000;
    produce_numbered(bootstrap, &orders, 0..5, |n| base + n as i64);
    testkit::produce_transactions(bootstrap, &orders, 0, &[(1, true)]);
    produce_numbered(bootstrap, &orders, 7..10, |n| base + n as i64);
    orders
}

fn clusters() -> (String, String) {
    (KafkaCluster::source().bootstrap(), KafkaCluster::target().bootstrap())
}

fn target_id() -> &'static str {
    KafkaCluster::target().cluster_id()
}

#[test]
fn after_a_three_phase_restore_every_group_reads_first_the_record_it_would_have_read_next() {
    let (s, t) = clusters();
    let orders = orders_with_a_marker_at_6(&s);
    let names: Vec<String> = ["at-zero", "in-middle", "on-marker-gap", "at-end"].map(unique).into();
    let (at_zero, in_middle, on_gap, at_end) = (&names[0], &names[1], &names[2], &names[3]);
    for (group, offset) in [(at_zero, 0), (in_middle, 3), (on_gap, 6), (at_end, 10)] {
        testkit::commit(&s, group, &[(&orders, 0, offset)]);
    }
    let reading = [at_zero.as_str(), in_middle, on_gap];
    let next_on_source = testkit::first_record_as_groups(&s, &orders, &reading);
    assert_eq!(next_on_source[on_gap].value.as_deref(), Some(&b"order-7"[..]), "the gap is a marker");

    let dir = TempDir::new().unwrap();
    assert_success(&backup(&write_config(dir.path(), &s, "nightly", &orders, "")));
    let restored_topic = unique("orders-restored");
    let settings = format!("  topic_mapping:\n    {orders}: {restored_topic}\n");
    let report = three_phase_restore(&write_restore_config(dir.path(), "dr", &t, "nightly", &settings));
    assert!(report.contains(&format!("Committed 4 offsets of 4 groups on cluster {}", target_id())), "{report}");

    // Exact target offsets: 0..=5 kept their offsets, the marker was not restored, 7 became 6.
    for (group, expected) in [(at_zero, 0), (in_middle, 3), (on_gap, 6), (at_end, 9)] {
        let committed = testkit::committed(&t, group, &restored_topic, &[0]);
        assert_eq!(committed[&0], expected, "group {group}");
    }
    let next_on_target = testkit::first_record_as_groups(&t, &restored_topic, &reading);
    for (group, record) in &next_on_source {
        assert_eq!(content(&next_on_target[group]), content(record), "group {group} on the renamed topic");
    }
    assert_resumes_after_the_restored_records(&t, &restored_topic, at_end);
}

/// A group placed at the end reads first what is written after the restore, nothing restored again.
fn assert_resumes_after_the_restored_records(bootstrap: &str, topic: &str, group: &str) {
    produce_numbered(bootstrap, topic, 100..101, |_| now_ms());
    let first = testkit::first_record_as_groups(bootstrap, topic, &[group]);
    assert_eq!(first[group].value.as_deref(), Some(&b"order-100"[..]), "group {group}");
}

#[test]
fn a_time_window_restore_uses_the_last_snapshot_before_its_end_and_ends_groups_past_it() {
    let (s, t) = clusters();
    let events = unique("events");
    testkit::create_topic(&s, &events, 1, &[]);
    let now = now_ms();
    // Records 0..=5 an hour ago, 6..=9 half an hour ahead: a window ending now keeps 0..=5.
    produce_numbered(&s, &events, 0..10, |n| if n < 6 { now - 3_600_000 + n as i64 } else { now + 1_800_000 });
    let (history, past_window) = (unique("history"), unique("past-window"));
    testkit::commit(&s, &history, &[(&events, 0, 2)]);
    testkit::commit(&s, &past_window, &[(&events, 0, 8)]);
    let dir = TempDir::new().unwrap();
    let config = write_config(dir.path(), &s, "hourly", &events, "");
    assert_success(&backup(&config));
    std::thread::sleep(Duration::from_millis(50));
    let window_end = now_ms();
    std::thread::sleep(Duration::from_millis(50));
    // Later the group moved on; the second run's snapshot holds that, after the window's end.
    testkit::commit(&s, &history, &[(&events, 0, 4)]);
    assert_success(&backup(&config));

    let pitr = unique("events-pitr");
    let restore = format!("  time_window_end: {window_end}\n  topic_mapping:\n    {events}: {pitr}\n");
    let report = three_phase_restore(&write_restore_config(dir.path(), "pitr", &t, "hourly", &restore));
    assert!(report.contains("Committed 2 offsets of 2 groups"), "{report}");
    assert_eq!(testkit::committed(&t, &history, &pitr, &[0])[&0], 2, "the snapshot before the window end");
    assert_eq!(testkit::committed(&t, &past_window, &pitr, &[0])[&0], 6, "past the window: the end");

    let first = testkit::first_record_as_groups(&t, &pitr, &[&history]);
    assert_eq!(first[&history].value.as_deref(), Some(&b"order-2"[..]));
    assert_resumes_after_the_restored_records(&t, &pitr, &past_window);
}

#[test]
fn restore_with_a_strategy_commits_offsets_on_the_mapped_partitions() {
    let (s, t) = clusters();
    let (moves, mover) = (unique("moves"), unique("mover"));
    testkit::create_topic(&s, &moves, 2, &[]);
    testkit::produce_small(&s, &moves, 0, 3);
    testkit::produce_small(&s, &moves, 1, 5);
    testkit::commit(&s, &mover, &[(&moves, 0, 1), (&moves, 1, 4)]);
    let dir = TempDir::new().unwrap();
    assert_success(&backup(&write_config(dir.path(), &s, "swap", &moves, "")));
    let moved = unique("moved");
    let settings = format!(
        "  topic_mapping:\n    {moves}: {moved}\n  partition_mapping:\n    {moves}: {{0: 1, 1: 0}}\n  \
         consumer_group_strategy: exact\n"
    );
    let output = restore(&write_restore_config(dir.path(), "swap", &t, "swap", &settings), &[]);
    assert_success(&output);
    assert!(text(&output.stdout).contains("Committed 2 offsets of 1 groups"), "{}", text(&output.stdout));
    let committed = testkit::committed(&t, &mover, &moved, &[0, 1]);
    assert_eq!((committed[&1], committed[&0]), (1, 4), "source partition 0 went to 1 and 1 to 0");

    // Routed by key into another partition count, a source offset has no single target position.
    let regrouped = unique("regrouped");
    testkit::create_topic(&t, &regrouped, 3, &[]);
    let settings = format!("  topic_mapping:\n    {moves}: {regrouped}\n  repartition: true\n");
    assert_success(&restore(&write_restore_config(dir.path(), "regroup", &t, "swap", &settings), &[]));
    let path = store_path(dir.path());
    let output =
        run(&["offset-reset", "plan", "--path", &path, "--backup-id", "swap", "--all-groups", "--format", "json"]);
    assert_success(&output);
    let plan: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let routed: Vec<&serde_json::Value> =
        plan["offsets"].as_array().unwrap().iter().filter(|o| o["target_topic"] == regrouped.as_str()).collect();
    assert_eq!(routed.len(), 2);
    for offset in routed {
        assert!(offset["target_offset"].is_null(), "{offset}");
        assert!(offset["note"].as_str().unwrap().contains("routed by key"), "{offset}");
    }
}

/// A backup of six records (timestamps a minute apart, an hour ago) with groups `ledger` at 2 and
/// `audit` at 4, restored as `{topic}-dr` with the original-offset header, so that every strategy
/// applies. Returns the store folder, the restored topic and the two group names.
struct Restored {
    dir: TempDir,
    topic: String,
    ledger: String,
    audit: String,
}

fn restored_with_two_groups() -> Restored {
    let (s, t) = clusters();
    let payments = unique("payments");
    testkit::create_topic(&s, &payments, 1, &[]);
    let base = now_ms() - 3_600_000;
    produce_numbered(&s, &payments, 0..6, |n| base + 60_000 * n as i64);
    let (ledger, audit) = (unique("ledger"), unique("audit"));
    testkit::commit(&s, &ledger, &[(&payments, 0, 2)]);
    testkit::commit(&s, &audit, &[(&payments, 0, 4)]);
    let dir = TempDir::new().unwrap();
    assert_success(&backup(&write_config(dir.path(), &s, "daily", &payments, "")));
    let topic = format!("{payments}-dr");
    let settings = format!("  topic_mapping:\n    {payments}: {topic}\n  include_original_offset_header: true\n");
    assert_success(&restore(&write_restore_config(dir.path(), "dr", &t, "daily", &settings), &[]));
    Restored { dir, topic, ledger, audit }
}

fn plan(dir: &TempDir, extra: &[&str]) -> std::process::Output {
    let path = store_path(dir.path());
    let mut args = vec!["offset-reset", "plan", "--path", &path, "--backup-id", "daily"];
    args.extend_from_slice(extra);
    run(&args)
}

fn execute(dir: &TempDir, extra: &[&str]) -> std::process::Output {
    let (path, t) = (store_path(dir.path()), clusters().1);
    let mut args = vec!["offset-reset", "execute", "--path", &path, "--backup-id", "daily"];
    args.extend_from_slice(&["--bootstrap-servers", &t]);
    args.extend_from_slice(extra);
    run(&args)
}

fn rollback(dir: &TempDir) -> std::process::Output {
    let (path, t) = (store_path(dir.path()), clusters().1);
    run(&["offset-reset", "rollback", "--path", &path, "--backup-id", "daily", "--bootstrap-servers", &t])
}

fn planned_targets(output: &std::process::Output) -> Vec<(String, Option<i64>)> {
    assert_success(output);
    let plan: serde_json::Value = serde_json::from_slice(&output.stdout).expect("--format json is JSON");
    let offsets = plan["offsets"].as_array().expect("offsets");
    let mut targets: Vec<_> =
        offsets.iter().map(|o| (o["group"].as_str().unwrap().to_string(), o["target_offset"].as_i64())).collect();
    targets.sort();
    targets
}

#[test]
fn offset_reset_plans_in_every_format_refuses_active_groups_executes_and_rolls_back() {
    let Restored { dir, topic, ledger, audit } = restored_with_two_groups();
    let t = clusters().1;

    // Plans need no target cluster for the recorded map; every format says the same.
    let both = format!("{ledger},{audit}");
    let exact = planned_targets(&plan(&dir, &["--groups", &both, "--format", "json"]));
    let mut expected = vec![(audit.clone(), Some(4)), (ledger.clone(), Some(2))];
    expected.sort();
    assert_eq!(exact, expected);
    let csv = text(&plan(&dir, &["--groups", &both, "--format", "csv"]).stdout);
    let rows: Vec<&str> = csv.lines().collect();
    assert!(rows[0].starts_with("group,source_topic,source_partition,source_offset"), "{csv}");
    assert_eq!(rows.len(), 3, "{csv}");
    let ledger_row = rows.iter().find(|r| r.starts_with(&format!("{ledger},"))).expect("ledger row");
    assert!(ledger_row.contains(",0,2,") && ledger_row.contains(&format!(",{topic},0,2,exact,")), "{csv}");
    let shell = text(&plan(&dir, &["--groups", &ledger, "--format", "shell"]).stdout);
    assert!(
        shell.contains(&format!("--group '{ledger}' --topic '{topic}:0' --reset-offsets --to-offset 2 --execute")),
        "{shell}"
    );
    let nobody = unique("nobody");
    let table = plan(&dir, &["--groups", &format!("{ledger},{nobody}")]);
    assert_success(&table);
    let table = text(&table.stdout);
    assert!(table.contains(&format!("{topic}-0")), "{table}");
    assert!(table.contains(&format!("WARNING group {nobody} has no committed offsets")), "{table}");
    assert!(!plan(&dir, &[]).status.success(), "--groups or --all-groups is required");

    // audit already consumed on the target; cluster-scan keeps that commit.
    testkit::commit(&t, &audit, &[(&topic, 0, 1)]);
    let scan =
        plan(&dir, &["--groups", &both, "--strategy", "cluster-scan", "--bootstrap-servers", &t, "--format", "json"]);
    let mut scanned = vec![(audit.clone(), Some(1)), (ledger.clone(), Some(2))];
    scanned.sort();
    assert_eq!(planned_targets(&scan), scanned);

    {
        let _member = GroupMember::join(&t, &topic, &ledger);
        let refused = execute(&dir, &["--groups", &both]);
        assert!(!refused.status.success(), "a group with members is refused");
        let stderr = text(&refused.stderr);
        assert!(stderr.contains(&ledger) && stderr.contains("active members"), "{stderr}");
        assert_eq!(testkit::committed(&t, &audit, &topic, &[0])[&0], 1, "nothing changed");
    }
    let manual = execute(&dir, &["--groups", &both, "--strategy", "manual"]);
    assert!(!manual.status.success() && text(&manual.stderr).contains("only reports"), "{}", text(&manual.stderr));
    // The member left when it closed: the same command now goes through.
    let executed = execute(&dir, &["--groups", &both]);
    assert_success(&executed);
    assert!(text(&executed.stdout).contains("Committed 2 offsets of 2 groups"), "{}", text(&executed.stdout));
    assert_eq!(testkit::committed(&t, &ledger, &topic, &[0])[&0], 2);
    assert_eq!(testkit::committed(&t, &audit, &topic, &[0])[&0], 4);

    // The restore config names the storage, the backup and the target.
    let config = dir.path().join("dr.yaml");
    let rollback = || run(&["offset-reset", "rollback", "--config", config.to_str().unwrap()]);
    let undone = rollback();
    assert_success(&undone);
    let undone = text(&undone.stdout);
    assert!(undone.contains(&format!("previous offsets restored for: {audit}")), "{undone}");
    assert!(undone.contains(&format!("deleted (they had no offsets before the reset): {ledger}")), "{undone}");
    assert_eq!(testkit::committed(&t, &audit, &topic, &[0])[&0], 1, "audit's own commit is back");
    assert!(testkit::committed(&t, &ledger, &topic, &[0])[&0] < 0, "ledger has no offset again");
    let again = rollback();
    assert!(!again.status.success() && text(&again.stderr).contains("left to roll back"), "{}", text(&again.stderr));
}

#[test]
fn every_translating_strategy_executes_end_to_end_and_commits_what_it_planned() {
    let Restored { dir, topic, ledger, audit } = restored_with_two_groups();
    let t = clusters().1;
    let both = format!("{ledger},{audit}");
    // header-based reads x-original-offset back; timestamp-based asks the target by the committed
    // record's timestamp (ListOffsets); cluster-scan is header-based where the group has no commit.
    for strategy in ["header-based", "timestamp-based", "cluster-scan"] {
        let planned = planned_targets(&plan(
            &dir,
            &["--groups", &both, "--strategy", strategy, "--bootstrap-servers", &t, "--format", "json"],
        ));
        let mut expected = vec![(audit.clone(), Some(4)), (ledger.clone(), Some(2))];
        expected.sort();
        assert_eq!(planned, expected, "strategy {strategy}");
        let executed = execute(&dir, &["--groups", &both, "--strategy", strategy]);
        assert_success(&executed);
        assert!(text(&executed.stdout).contains(&format!("strategy {strategy}")), "{}", text(&executed.stdout));
        assert_eq!(testkit::committed(&t, &ledger, &topic, &[0])[&0], 2, "{strategy}");
        assert_eq!(testkit::committed(&t, &audit, &topic, &[0])[&0], 4, "{strategy}");
        let first = testkit::first_record_as_groups(&t, &topic, &[&ledger, &audit]);
        assert_eq!(first[&ledger].value.as_deref(), Some(&b"order-2"[..]), "{strategy}");
        assert_eq!(first[&audit].value.as_deref(), Some(&b"order-4"[..]), "{strategy}");
        assert_success(&rollback(&dir));
        assert!(testkit::committed(&t, &ledger, &topic, &[0])[&0] < 0, "{strategy}: rolled back");
    }
}

#[test]
fn a_timestamp_based_plan_over_a_corrupt_segment_fails_naming_it() {
    let Restored { dir, topic, ledger, .. } = restored_with_two_groups();
    let source_topic = topic.trim_end_matches("-dr").to_string();
    let segment = segment_files(dir.path(), "daily", &source_topic, 0).remove(0);
    let mut bytes = std::fs::read(&segment).unwrap();
    let last = bytes.len() - 20;
    bytes[last] ^= 0x40;
    std::fs::write(&segment, bytes).unwrap();
    let t = clusters().1;
    let planned = plan(&dir, &["--groups", &ledger, "--strategy", "timestamp-based", "--bootstrap-servers", &t]);
    assert!(!planned.status.success(), "the committed record's timestamp cannot be read from a corrupt segment");
    let stderr = text(&planned.stderr);
    assert!(
        stderr.contains(&format!("topics/{source_topic}/partition=0/segment-")) && stderr.contains("corrupt"),
        "{stderr}"
    );
}

#[test]
fn a_kip_848_consumer_group_with_a_member_is_refused() {
    let Restored { dir, topic, ledger, audit } = restored_with_two_groups();
    let t = clusters().1;
    let _member = GroupMember::join_with_protocol(&t, &topic, &ledger, "consumer");
    let refused = execute(&dir, &["--groups", &format!("{ledger},{audit}")]);
    assert!(!refused.status.success(), "a KIP-848 group with a member is refused");
    let stderr = text(&refused.stderr);
    // Found by describing the groups, before any commit: the idle group is not changed either.
    assert!(stderr.contains(&format!("{ledger} (Stable, 1 members)")), "{stderr}");
    assert!(testkit::committed(&t, &ledger, &topic, &[0])[&0] < 0, "nothing was committed");
    assert!(testkit::committed(&t, &audit, &topic, &[0])[&0] < 0, "nothing was committed for the idle group");
}

#[test]
fn rollback_deletes_the_offsets_of_partitions_a_group_had_none_on_and_restores_the_others() {
    let (s, t) = clusters();
    let (orders, billing) = (unique("orders"), unique("billing"));
    testkit::create_topic(&s, &orders, 2, &[]);
    testkit::produce_small(&s, &orders, 0, 5);
    testkit::produce_small(&s, &orders, 1, 5);
    testkit::commit(&s, &billing, &[(&orders, 0, 3), (&orders, 1, 4)]);
    let dir = TempDir::new().unwrap();
    assert_success(&backup(&write_config(dir.path(), &s, "daily", &orders, "")));
    assert_success(&restore(&write_restore_config(dir.path(), "dr", &t, "daily", ""), &[]));
    // On the target the group already has an offset on partition 0, none on partition 1.
    testkit::commit(&t, &billing, &[(&orders, 0, 1)]);
    assert_success(&execute(&dir, &["--groups", &billing]));
    assert_eq!(testkit::committed(&t, &billing, &orders, &[0, 1]), [(0, 3), (1, 4)].into());
    let undone = rollback(&dir);
    assert_success(&undone);
    let committed = testkit::committed(&t, &billing, &orders, &[0, 1]);
    assert_eq!(committed[&0], 1, "partition 0 has its previous offset back");
    assert!(committed[&1] < 0, "partition 1 had no offset and has none again (OffsetDelete)");
}

#[test]
fn three_phase_restore_with_skip_or_manual_commits_nothing_and_a_dry_run_writes_nothing() {
    let (s, t) = clusters();
    let (orders, billing) = (unique("orders"), unique("billing"));
    testkit::create_topic(&s, &orders, 1, &[]);
    testkit::produce_small(&s, &orders, 0, 5);
    testkit::commit(&s, &billing, &[(&orders, 0, 3)]);
    let dir = TempDir::new().unwrap();
    assert_success(&backup(&write_config(dir.path(), &s, "daily", &orders, "")));

    let dry_topic = unique("orders-dry");
    let settings = format!("  topic_mapping:\n    {orders}: {dry_topic}\n");
    let config = write_restore_config(dir.path(), "dry", &t, "daily", &settings);
    let dry = run(&["three-phase-restore", "--config", config.to_str().unwrap(), "--dry-run"]);
    assert_success(&dry);
    assert!(text(&dry.stdout).contains("Dry run: nothing was written."), "{}", text(&dry.stdout));
    assert!(!testkit::topics(&t).contains(&dry_topic), "no topic was created");
    assert!(testkit::committed(&t, &billing, &dry_topic, &[0])[&0] < 0, "no offset was committed");

    for strategy in ["skip", "manual"] {
        let restored_topic = unique(&format!("orders-{strategy}"));
        let settings =
            format!("  topic_mapping:\n    {orders}: {restored_topic}\n  consumer_group_strategy: {strategy}\n");
        let report = three_phase_restore(&write_restore_config(dir.path(), strategy, &t, "daily", &settings));
        assert_eq!(testkit::consume(&t, &restored_topic, &[0]).len(), 5, "{strategy}: the data is restored");
        assert!(
            testkit::committed(&t, &billing, &restored_topic, &[0])[&0] < 0,
            "{strategy} commits nothing: {report}"
        );
    }
}

#[test]
fn share_group_start_offsets_are_restored_exactly_under_the_renamed_topic_and_rolled_back() {
    let (s, t) = clusters();
    let orders = orders_with_a_marker_at_6(&s);
    let (queue, billing) = (unique("queue"), unique("billing"));
    // The share group's next record to deliver is order-7; a consumer group sits beside it.
    testkit::alter_share_group_offset(&s, &queue, &orders, 0, 7);
    testkit::commit(&s, &billing, &[(&orders, 0, 3)]);
    let dir = TempDir::new().unwrap();
    assert_success(&backup(&write_config(dir.path(), &s, "daily", &orders, "")));
    let described = run(&["describe", "--path", &store_path(dir.path()), "--backup-id", "daily"]);
    let kept = format!("share-group start offsets in the latest snapshot: 1 groups ({queue})");
    assert!(text(&described.stdout).contains(&kept), "{}", text(&described.stdout));

    let renamed = unique("orders-dr");
    let settings = format!("  topic_mapping:\n    {orders}: {renamed}\n  metadata: [share_groups]\n");
    let config = write_restore_config(dir.path(), "dr", &t, "daily", &settings);
    {
        // A share group with a member on the target: its offsets cannot be set, the plan says so.
        let _member = ShareMember::join(&t, &renamed, &queue);
        let refused = restore(&config, &[]);
        assert!(!refused.status.success(), "a share group with members on the target is a conflict");
        let said = text(&refused.stdout) + &text(&refused.stderr);
        assert!(said.contains(&format!("share group {queue} is Stable on the target")), "{said}");
        // (The member's subscription may have made the broker create the topic: it stays empty.)
        assert!(testkit::consume(&t, &renamed, &[0]).is_empty(), "nothing was restored");
    }
    let dry = restore(&config, &["--dry-run"]);
    assert_success(&dry);
    let plan = text(&dry.stdout);
    assert!(plan.contains(&format!("SHARE-GROUP {queue} {renamed}-0: start offset 7 on the source")), "{plan}");
    assert!(testkit::share_group_offsets(&t, &queue).is_empty(), "a dry run sets nothing");

    // `restore` leaves consumer groups alone (strategy skip) and sets the share group, exactly:
    // the marker at 6 was not restored, so order-7 is at 6 on the target.
    let restored = restore(&config, &[]);
    assert_success(&restored);
    let report = text(&restored.stdout);
    assert!(report.contains("Committed 1 offsets of 1 groups"), "{report}");
    assert_eq!(testkit::share_group_offsets(&t, &queue), vec![(renamed.clone(), 0, 6)], "{report}");
    assert_eq!(testkit::consume(&t, &renamed, &[0])[6].value.as_deref(), Some(&b"order-7"[..]));
    assert!(testkit::committed(&t, &billing, &renamed, &[0])[&0] < 0, "no consumer-group offset: {report}");

    // The share group did not exist on the target: rolling back deletes it.
    assert_success(&rollback(&dir));
    assert!(testkit::share_group_offsets(&t, &queue).is_empty(), "the share group is gone");
}

#[test]
fn share_group_positions_restored_with_an_old_incarnation_are_those_taken_while_it_was_live() {
    let (s, t) = clusters();
    let orders = orders_with_a_marker_at_6(&s);
    let queue = unique("queue");
    testkit::alter_share_group_offset(&s, &queue, &orders, 0, 7);
    let dir = TempDir::new().unwrap();
    let config = write_config(dir.path(), &s, "daily", &orders, "");
    assert_success(&backup(&config));
    // The topic is re-created and the share group moved on it: the next run's snapshot holds the
    // new incarnation's position, 2, which means nothing on the old one's records.
    testkit::delete_topic(&s, &orders);
    testkit::create_topic(&s, &orders, 1, &[]);
    testkit::produce_small(&s, &orders, 0, 4);
    testkit::alter_share_group_offset(&s, &queue, &orders, 0, 2);
    assert_success(&backup(&config));

    let plan_for = |name: &str, incarnation: &str| {
        let renamed = unique(&format!("orders-{name}"));
        let settings = format!("  topic_mapping:\n    {orders}: {renamed}\n  metadata: [share_groups]\n{incarnation}");
        let config = write_restore_config(dir.path(), name, &t, "daily", &settings);
        let dry = restore(&config, &["--dry-run"]);
        assert_success(&dry);
        (renamed, config, text(&dry.stdout))
    };
    let (renamed, config, plan) = plan_for("first", &format!("  incarnations:\n    {orders}: 1\n"));
    assert!(plan.contains("incarnation 1 of 2"), "{plan}");
    assert!(plan.contains(&format!("SHARE-GROUP {queue} {renamed}-0: start offset 7 on the source")), "{plan}");
    assert!(!plan.contains("start offset 2"), "the new incarnation's position is not listed: {plan}");
    let (latest, _, plan) = plan_for("latest", "");
    assert!(plan.contains(&format!("SHARE-GROUP {queue} {latest}-0: start offset 2 on the source")), "{plan}");

    // Restored, the old incarnation's position is set exactly: order-7 sits at 6 on the target.
    let restored = restore(&config, &[]);
    assert_success(&restored);
    assert_eq!(testkit::share_group_offsets(&t, &queue), vec![(renamed.clone(), 0, 6)], "{}", text(&restored.stdout));
    assert_eq!(testkit::consume(&t, &renamed, &[0])[6].value.as_deref(), Some(&b"order-7"[..]));
}

#[test]
fn group_snapshots_keep_each_groups_protocol_assignor_and_members_subscriptions() {
    let s = clusters().0;
    let orders = unique("orders");
    testkit::create_topic(&s, &orders, 1, &[]);
    testkit::produce_small(&s, &orders, 0, 3);
    let (classic, kip848) = (unique("classic"), unique("kip848"));
    testkit::commit(&s, &classic, &[(&orders, 0, 1)]);
    testkit::commit(&s, &kip848, &[(&orders, 0, 2)]);
    let _classic_member = GroupMember::join(&s, &orders, &classic);
    let _kip848_member = GroupMember::join_with_protocol(&s, &orders, &kip848, "consumer");
    let dir = TempDir::new().unwrap();
    assert_success(&backup(&write_config(dir.path(), &s, "daily", &orders, "")));

    let described = describe_json(dir.path(), "daily");
    let snapshot = &described["group_snapshot"];
    assert_eq!(snapshot["groups"][&kip848][0]["offset"], 2, "{snapshot}");
    // confluent-kafka's classic consumer picks the range assignor; the broker's default for
    // KIP-848 groups is uniform. Each member subscribed to the topic by name.
    for (group, protocol, assignor) in [(&classic, "classic", "range"), (&kip848, "consumer", "uniform")] {
        let shape = &snapshot["descriptions"][group];
        assert_eq!(
            (shape["protocol"].as_str(), shape["assignor"].as_str()),
            (Some(protocol), Some(assignor)),
            "{shape}"
        );
        assert_eq!(shape["state"], "Stable", "{shape}");
        let members = shape["members"].as_array().expect("members");
        assert_eq!(members.len(), 1, "{shape}");
        assert_eq!(members[0]["subscribed_topics"], serde_json::json!([orders]), "{shape}");
    }
    let text_view = run(&["describe", "--path", &store_path(dir.path()), "--backup-id", "daily"]);
    let shown = text(&text_view.stdout);
    assert!(shown.contains(&format!("{kip848} (consumer protocol, uniform, 1 members)")), "{shown}");
}
