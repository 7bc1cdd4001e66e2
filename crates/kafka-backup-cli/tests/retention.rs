//! `prune` on stores holding many backups of the Apache Kafka "source" cluster: a policy keeps what
//! it names (dry run first), never a backup a run is writing; a segment retention drops old
//! segments of a backup that then still validates and restores exactly what it still holds; and a
//! prune killed mid-deletion on S3 (the emulator frozen under it) leaves nothing that `list`,
//! `validate` or `restore` take for a whole backup, and its re-run finishes the job.

mod common;

use std::process::Output;

use common::*;
use kafka_backup_testkit::{self as testkit, unique, KafkaCluster, RefRecord, StoreEmulator, StoreKind};
use tempfile::TempDir;

fn prune_json(args: &[&str]) -> serde_json::Value {
    let mut all = vec!["prune"];
    all.extend_from_slice(args);
    all.extend(["--format", "json"]);
    let output = run(&all);
    assert_success(&output);
    serde_json::from_slice(&output.stdout).unwrap()
}

/// `backup_id -> keep` of a prune report.
fn decisions(report: &serde_json::Value) -> std::collections::BTreeMap<String, bool> {
    let backups = report["backups"].as_array().unwrap();
    backups.iter().map(|b| (b["backup_id"].as_str().unwrap().to_string(), b["keep"].as_bool().unwrap())).collect()
}

/// The backup ids a `list --format json` printed.
fn backup_ids(listing: &Output) -> Vec<String> {
    assert_success(listing);
    let rows: serde_json::Value = serde_json::from_slice(&listing.stdout).unwrap();
    rows.as_array().unwrap().iter().map(|r| r["backup_id"].as_str().unwrap().to_string()).collect()
}

fn listed(store: &str) -> Vec<String> {
    backup_ids(&run(&["list", "--path", store, "--format", "json"]))
}

/// A topic of 300 records of 1 KiB: with 100 KB segments, several segments.
fn topic_of_segments(source: &str) -> (String, Vec<RefRecord>) {
    let topic = unique("retained");
    testkit::create_topic(source, &topic, 1, &[]);
    testkit::produce(source, &topic, &testkit::incompressible_records(0, 300), &[("batch.num.messages", "20")]);
    let original = testkit::consume(source, &topic, &[0]);
    assert_eq!(original.len(), 300);
    (topic, original)
}

const SMALL_SEGMENTS: &str = "  compression: none\n  segment_max_bytes: 100000\n  checkpoint_interval_secs: 1\n";

#[test]
fn prune_keeps_what_the_policy_names_never_a_running_backup_and_drops_old_segments() {
    let (source, target) = (KafkaCluster::source().bootstrap(), KafkaCluster::target().bootstrap());
    let (topic, original) = topic_of_segments(&source);
    let dir = TempDir::new().unwrap();
    for id in ["b1", "b2", "b3"] {
        assert_success(&backup(&write_config(dir.path(), &source, id, &topic, SMALL_SEGMENTS)));
    }
    let continuous = format!("{SMALL_SEGMENTS}  continuous: true\n");
    let live_config = write_config(dir.path(), &source, "live", &topic, &continuous);
    let live = spawn(&["backup", "--config", live_config.to_str().unwrap()], false);
    wait_for("the live backup's progress", HANG, || dir.path().join("store/live/state/progress.json").exists());
    assert_success(&backup(&write_config(dir.path(), &source, "b4", &topic, SMALL_SEGMENTS)));
    let store = store_path(dir.path());

    let planned = prune_json(&["--path", &store, "--keep-last", "2", "--dry-run"]);
    let expected: std::collections::BTreeMap<String, bool> =
        [("b1", false), ("b2", false), ("b3", true), ("b4", true), ("live", true)].map(|(k, v)| (k.into(), v)).into();
    assert_eq!(decisions(&planned), expected, "{planned}");
    let live_reasons = planned["backups"].as_array().unwrap().iter().find(|b| b["backup_id"] == "live").unwrap();
    assert!(live_reasons["reasons"][0].as_str().unwrap().contains("a backup run is writing it"), "{live_reasons}");
    assert_eq!(listed(&store).len(), 5, "a dry run deletes nothing");

    let pruned = prune_json(&["--path", &store, "--keep-last", "2"]);
    assert_eq!(decisions(&pruned), expected);
    assert_eq!(listed(&store), ["b3", "b4", "live"]);
    for gone in ["b1", "b2"] {
        let folder = dir.path().join("store").join(gone);
        assert!(!folder.exists() || testkit::files_under(&folder).is_empty(), "{gone} keeps objects");
    }
    send_signal(&live, "-TERM");
    assert_success(&wait_with_deadline(live, HANG));

    // Segment retention: every segment of b4 but the last is older than 1 ms; of its two group
    // snapshots, the older goes.
    assert_success(&backup(&write_config(dir.path(), &source, "b4", &topic, SMALL_SEGMENTS)));
    let snapshots_of = |id: &str| std::fs::read_dir(dir.path().join("store").join(id).join("groups")).unwrap().count();
    let snapshots = || snapshots_of("b4");
    assert_eq!(snapshots(), 2);
    // Every kept backup keeps only its latest snapshot (the live run took one per checkpoint).
    let older: usize = ["b3", "b4", "live"].iter().map(|id| snapshots_of(id) - 1).sum();
    let described = describe_json(dir.path(), "b4");
    let segments = described["topics"][0]["partitions"][0]["segments"].as_array().unwrap().clone();
    assert!(segments.len() >= 3, "{described}");
    let kept_from = segments.last().unwrap()["start_offset"].as_i64().unwrap();
    let config = write_config(dir.path(), &source, "b4", &topic, SMALL_SEGMENTS);
    let with_retention =
        std::fs::read_to_string(&config).unwrap() + "retention:\n  keep_last: 10\n  segment_retention: 1ms\n";
    std::fs::write(&config, with_retention).unwrap();
    let report = prune_json(&["--config", config.to_str().unwrap()]);
    let dropped = report["segments"].as_array().unwrap().iter().find(|s| s["backup_id"] == "b4").unwrap();
    assert_eq!(
        (dropped["segments"].as_u64(), dropped["before_offset"].as_i64()),
        (Some(segments.len() as u64 - 1), Some(kept_from))
    );
    assert_eq!((report["group_snapshots_pruned"].as_u64(), snapshots()), (Some(older as u64), 1), "{report}");
    assert!(["b3", "live"].iter().all(|id| snapshots_of(id) == 1), "{report}");
    let described = describe_json(dir.path(), "b4");
    let partition = &described["topics"][0]["partitions"][0];
    assert_eq!(partition["segments"].as_array().unwrap().len(), 1, "{partition}");
    assert_eq!(partition["pruned_before"], kept_from);
    assert_success(&validate(dir.path(), "b4", true));
    let copy = unique("retained-copy");
    let restore_config =
        write_restore_config(dir.path(), "b4-copy", &target, "b4", &format!("  topic_mapping:\n    {topic}: {copy}\n"));
    assert_success(&restore(&restore_config, &[]));
    let still_held: Vec<RefRecord> = original.iter().filter(|r| r.offset >= Some(kept_from)).cloned().collect();
    assert_eq!(without_offsets(&testkit::consume(&target, &copy, &[0])), without_offsets(&still_held));
    // The backup goes on from where it was, not from the pruned start.
    assert_success(&backup(&config));
    assert_eq!(describe_json(dir.path(), "b4")["topics"][0]["partitions"][0]["segments"].as_array().unwrap().len(), 1);
}

fn run_on(emulator: &StoreEmulator, args: &[&str]) -> Output {
    binary().args(args).envs(emulator.env()).output().expect("run kafka-backup")
}

#[test]
fn a_prune_killed_mid_deletion_on_s3_leaves_no_half_backup_and_its_rerun_finishes() {
    let source = KafkaCluster::source().bootstrap();
    let emulator = StoreEmulator::start(StoreKind::S3);
    // One record per batch and per segment: "old" is 600 objects, so deleting it takes a while.
    let topic = unique("retained");
    testkit::create_topic(&source, &topic, 1, &[]);
    testkit::produce(&source, &topic, &testkit::incompressible_records(0, 300), &[("batch.num.messages", "1")]);
    let original = testkit::consume(&source, &topic, &[0]);
    let dir = TempDir::new().unwrap();
    let storage = emulator.storage_yaml("p");
    let tiny_segments = "  compression: none\n  segment_max_bytes: 1024\n";
    for id in ["old", "new"] {
        assert_success(&backup(&write_config_on(dir.path(), &storage, &source, id, &topic, tiny_segments)));
    }
    let url = emulator.url("p");
    let prune = |extra: &[&str]| {
        let mut args = vec!["prune", "--path", url.as_str(), "--keep-last", "1"];
        args.extend_from_slice(extra);
        binary().args(&args).envs(emulator.env()).stdout(std::process::Stdio::piped()).spawn().unwrap()
    };
    let mut child = prune(&[]);
    emulator.stall_when_object_exists("p/old/deleting.json");
    child.kill().unwrap();
    child.wait().unwrap();
    emulator.resume();

    // Whatever the kill interrupted: "old" is either whole or not a backup at all.
    let ids = backup_ids(&run_on(&emulator, &["list", "--path", &url, "--format", "json"]));
    let validated = run_on(&emulator, &["validate", "--path", &url, "--backup-id", "old", "--deep"]);
    if ids.iter().any(|id| id == "old") {
        assert_success(&validated);
        assert_eq!(records_in_store(&store_of(&dir.path().join("old.yaml")), "old", &topic), original);
    } else {
        assert!(!validated.status.success());
        assert!(text(&validated.stderr).contains("no backup old"), "{}", text(&validated.stderr));
    }

    let rerun = prune(&[]).wait_with_output().unwrap();
    assert_success(&rerun);
    let objects = emulator.list().objects;
    assert!(objects.keys().all(|k| k.starts_with("p/new/")), "the re-run finished deleting old: {objects:?}");
    assert_eq!(backup_ids(&run_on(&emulator, &["list", "--path", &url, "--format", "json"])), ["new"]);
    assert_success(&run_on(&emulator, &["validate", "--path", &url, "--backup-id", "new", "--deep"]));
}
