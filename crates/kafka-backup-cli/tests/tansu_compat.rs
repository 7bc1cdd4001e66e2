//! The compatibility suite against Tansu, a Kafka-compatible broker written in Rust, so that a
//! change that breaks a Kafka-compatible broker is caught: backup (snapshot, continuous in fetch
//! rounds, across a topic re-created under it, and shared by two workers of a group), restore (with kills, and shared by two workers:
//! Tansu serves the group calls and the transactional producer ids), point-in-time restore and
//! three-phase restore. Apache Kafka is the primary broker of every other suite.
//! Tansu's gaps (GUIDE.md section 3) shape the data: records go one per batch, because its high
//! watermark is the last batch's base offset + 1, and nothing here asserts on the gaps.

mod common;

use common::*;
use kafka_backup_testkit::{self as testkit, Broker, KafkaCluster, RefRecord};
use tempfile::TempDir;

#[test]
fn backup_and_restore_round_trip_every_record_on_tansu() {
    let (source, target) = (Broker::start("tansu-source"), Broker::start("tansu-target"));
    testkit::create_topic(&source.bootstrap(), "orders", 2, &[]);
    let records: Vec<RefRecord> =
        testkit::fidelity_records(0).into_iter().chain(testkit::fidelity_records(1)).collect();
    testkit::produce(&source.bootstrap(), "orders", &records, &[("batch.num.messages", "1"), ("linger.ms", "0")]);
    let original = testkit::consume(&source.bootstrap(), "orders", &[0, 1]);
    assert_eq!(original.len(), records.len());

    let dir = TempDir::new().unwrap();
    let backed_up = backup(&write_config(dir.path(), &source.bootstrap(), "compat", "orders", ""));
    assert_success(&backed_up);
    // Tansu lacks (or garbles) the APIs that read ACLs, quotas and SCRAM users: each is a warning
    // naming what was not captured, never a failed backup.
    let report = text(&backed_up.stdout);
    assert!(report.contains("SCRAM users were not captured"), "{report}");
    assert_eq!(backed_up_records(dir.path(), "compat", "orders"), original);
    assert_success(&validate(dir.path(), "compat", true));
    let described = describe_json(dir.path(), "compat");
    assert_eq!(described["source_cluster_id"], "tansu-source");

    let config = write_restore_config(dir.path(), "compat", &target.bootstrap(), "compat", "");
    assert_success(&restore(&config, &[]));
    assert_eq!(testkit::consume(&target.bootstrap(), "orders", &[0, 1]), original);
}

#[test]
fn point_in_time_and_three_phase_restore_on_tansu() {
    let (source, target) = (Broker::start("tansu-source"), Broker::start("tansu-target"));
    testkit::create_topic(&source.bootstrap(), "events", 1, &[]);
    let records: Vec<RefRecord> = (0..10)
        .map(|i| RefRecord {
            partition: Some(0),
            key: Some(format!("k{i}").into_bytes()),
            value: Some(format!("v{i}").into_bytes()),
            timestamp: Some(1_700_000_000_000 + i * 1000),
            ..RefRecord::default()
        })
        .collect();
    testkit::produce(&source.bootstrap(), "events", &records, &[("batch.num.messages", "1"), ("linger.ms", "0")]);
    testkit::commit(&source.bootstrap(), "billing", &[("events", 0, 6)]);
    let original = testkit::consume(&source.bootstrap(), "events", &[0]);
    let dir = TempDir::new().unwrap();
    assert_success(&backup(&write_config(dir.path(), &source.bootstrap(), "compat", "events", "")));

    // Records from 3 on by time, renamed; billing at 6 stays on the record it would read next.
    let settings = "  time_window_start: 1700000003000\n  topic_mapping:\n    events: events-pitr\n";
    let output = run(&[
        "three-phase-restore",
        "--config",
        write_restore_config(dir.path(), "pitr", &target.bootstrap(), "compat", settings).to_str().unwrap(),
    ]);
    assert_success(&output);
    let restored = testkit::consume(&target.bootstrap(), "events-pitr", &[0]);
    assert_eq!(without_offsets(&restored), without_offsets(&original[3..]));
    assert_eq!(testkit::committed(&target.bootstrap(), "billing", "events-pitr", &[0])[&0], 3);
}

/// Tansu reports a partition's end as its last batch's base offset + 1: a resumed restore finds
/// what the killed runs wrote by reading whole batches, not by trusting that end.
#[test]
fn a_restore_into_tansu_killed_at_any_moment_finishes_with_every_record_exactly_once() {
    let target = Broker::start("tansu-kill-target");
    let (original, restored, _) =
        restore_with_kills(&KafkaCluster::source().bootstrap(), &target.bootstrap(), "", None);
    assert_eq!(restored, original, "no duplicate, no loss, same offsets, whole records");
}

/// A continuous backup fetches in rounds (one Fetch for every partition of a broker): on Tansu too.
#[test]
fn a_continuous_backup_in_fetch_rounds_holds_every_record_on_tansu() {
    let source = Broker::start("tansu-rounds");
    testkit::create_topic(&source.bootstrap(), "stream", 3, &[]);
    let mut records = Vec::new();
    for partition in 0..3 {
        records.extend(testkit::produce_one_per_batch(&source.bootstrap(), "stream", partition, 20));
    }
    let dir = TempDir::new().unwrap();
    let settings = "  continuous: true\n  segment_max_interval_ms: 500\n";
    let config = write_config(dir.path(), &source.bootstrap(), "rounds", "stream", settings);
    let child = spawn(&["backup", "--config", config.to_str().unwrap()], false);
    wait_for("every record backed up", HANG, || backed_up_records_if_any(dir.path(), "rounds", "stream").len() == 60);
    for partition in 0..3 {
        testkit::produce_one_per_batch(&source.bootstrap(), "stream", partition, 5);
    }
    wait_for("the later records backed up", HANG, || {
        backed_up_records_if_any(dir.path(), "rounds", "stream").len() == 75
    });
    send_signal(&child, "-TERM");
    assert_success(&wait_with_deadline(child, HANG));
    let original = testkit::consume(&source.bootstrap(), "stream", &[0, 1, 2]);
    assert_eq!(original.len(), 75);
    assert_eq!(backed_up_records(dir.path(), "rounds", "stream"), original, "every record exactly once");
}

#[test]
fn two_workers_share_a_continuous_backup_on_tansu() {
    let source = Broker::start("tansu-workers");
    testkit::create_topic(&source.bootstrap(), "shared", 4, &[]);
    for partition in 0..4 {
        testkit::produce_one_per_batch(&source.bootstrap(), "shared", partition, 10);
    }
    let dir = TempDir::new().unwrap();
    let settings = "  continuous: true\n  segment_max_interval_ms: 500\n  group_id: tansu-workers\n  \
                    group_session_timeout_ms: 10000\n";
    let config = write_config(dir.path(), &source.bootstrap(), "workers", "shared", settings);
    let workers: Vec<_> = (0..2).map(|_| spawn(&["backup", "--config", config.to_str().unwrap()], false)).collect();
    // The workers' progress objects (written once they joined): partitions held in the latest generation.
    let held = || {
        let folder = dir.path().join("store/workers/state/workers");
        let boards: Vec<serde_json::Value> = std::fs::read_dir(folder)
            .map(|entries| {
                entries.filter_map(|e| serde_json::from_slice(&std::fs::read(e.ok()?.path()).ok()?).ok()).collect()
            })
            .unwrap_or_default();
        let latest = boards.iter().filter_map(|b| b["worker"]["generation"].as_i64()).max();
        let current = boards.iter().filter(|b| b["worker"]["generation"].as_i64() == latest);
        current.map(|b| b["worker"]["partitions"]["shared"].as_array().map_or(0, Vec::len)).collect::<Vec<_>>()
    };
    wait_for("both workers to hold partitions", HANG, || {
        let held = held();
        held.len() == 2 && held.iter().all(|&n| n > 0) && held.iter().sum::<usize>() == 4
    });
    wait_for("every record backed up", HANG, || backed_up_records_if_any(dir.path(), "workers", "shared").len() == 40);
    for worker in workers {
        send_signal(&worker, "-TERM");
        assert_success(&wait_with_deadline(worker, HANG));
    }
    let original = testkit::consume(&source.bootstrap(), "shared", &[0, 1, 2, 3]);
    assert_eq!(backed_up_records(dir.path(), "workers", "shared"), original, "every record exactly once");
}

#[test]
fn two_workers_share_a_restore_on_tansu() {
    let broker = Broker::start("tansu-restore-workers");
    testkit::create_topic(&broker.bootstrap(), "orders", 4, &[]);
    for partition in 0..4 {
        testkit::produce_one_per_batch(&broker.bootstrap(), "orders", partition, 10);
    }
    let original = testkit::consume(&broker.bootstrap(), "orders", &[0, 1, 2, 3]);
    let dir = TempDir::new().unwrap();
    assert_success(&backup(&write_config(dir.path(), &broker.bootstrap(), "shared-restore", "orders", "")));
    let settings = "  topic_mapping:\n    orders: orders-copy\n  group_id: tansu-restorers\n  \
                    group_session_timeout_ms: 10000\n";
    let config = write_restore_config(dir.path(), "shared", &broker.bootstrap(), "shared-restore", settings);
    let workers: Vec<_> = (0..2).map(|_| spawn(&["restore", "--config", config.to_str().unwrap()], true)).collect();
    for worker in workers {
        assert_success(&wait_with_deadline(worker, HANG));
    }
    let copied = testkit::consume(&broker.bootstrap(), "orders-copy", &[0, 1, 2, 3]);
    assert_eq!(without_offsets(&copied), without_offsets(&original), "every record exactly once");
}

/// A topic deleted and created again under a continuous backup: Tansu leaves a partition of an
/// unknown topic id out of its Fetch answer (Kafka answers UNKNOWN_TOPIC_ID); the backup reads
/// either as the topic gone and carries on with the new incarnation, as it does on Kafka.
#[test]
fn a_topic_recreated_under_a_continuous_backup_on_tansu_becomes_a_new_incarnation() {
    let source = Broker::start("tansu-reborn");
    testkit::create_topic(&source.bootstrap(), "reborn", 1, &[]);
    testkit::produce_one_per_batch(&source.bootstrap(), "reborn", 0, 5);
    let first_life = testkit::consume(&source.bootstrap(), "reborn", &[0]);
    let dir = TempDir::new().unwrap();
    let settings = "  continuous: true\n  segment_max_interval_ms: 500\n";
    let config = write_config(dir.path(), &source.bootstrap(), "reborn", "reborn", settings);
    let child = spawn(&["backup", "--config", config.to_str().unwrap()], false);
    wait_for("the first incarnation backed up", HANG, || {
        backed_up_records_if_any(dir.path(), "reborn", "reborn").len() == first_life.len()
    });
    // Held while the topic is re-created and filled past the position the backup reads from.
    send_signal(&child, "-STOP");
    testkit::delete_topic(&source.bootstrap(), "reborn");
    testkit::create_topic(&source.bootstrap(), "reborn", 1, &[]);
    testkit::produce_one_per_batch(&source.bootstrap(), "reborn", 0, 8);
    let second_life = testkit::consume(&source.bootstrap(), "reborn", &[0]);
    assert_eq!(second_life.len(), 8);
    send_signal(&child, "-CONT");
    wait_for("the second incarnation backed up", HANG, || {
        backed_up_records_if_any(dir.path(), "reborn", "reborn@2").len() == second_life.len()
    });
    send_signal(&child, "-TERM");
    let output = wait_with_deadline(child, HANG);
    assert_success(&output);
    let log = text(&output.stderr) + &text(&output.stdout);
    assert!(log.contains("deleted and created again"), "the user is told: {log}");
    assert_eq!(backed_up_records(dir.path(), "reborn", "reborn"), first_life, "the first incarnation is untouched");
    assert_eq!(backed_up_records(dir.path(), "reborn", "reborn@2"), second_life);
    assert_success(&validate(dir.path(), "reborn", true));
}
