//! Every command on the cloud object stores, end to end: backups of the Apache Kafka "source"
//! cluster stored on S3 (moto) and Azure Blob (azurite), read back by `list`, `describe` and
//! `validate --deep` through `--path` URLs and each cloud's standard environment, restored and
//! three-phase restored into the "target" cluster and compared with confluent-kafka record by
//! record; and the faults a store has: a stalled emulator, a killed and restarted one.

mod common;

use std::process::Output;
use std::time::Duration;

use common::*;
use kafka_backup_testkit::{self as testkit, unique, KafkaCluster, RefRecord, StoreEmulator, StoreKind};
use tempfile::TempDir;

/// `kafka-backup ARGS` with the emulator's cloud environment (endpoint, keys, plain HTTP allowed).
fn run_on(emulator: &StoreEmulator, args: &[&str]) -> Output {
    binary().args(args).envs(emulator.env()).output().expect("run kafka-backup")
}

fn every_command_round_trips_on(kind: StoreKind) {
    let (source, target) = (KafkaCluster::source().bootstrap(), KafkaCluster::target().bootstrap());
    let emulator = StoreEmulator::start(kind);
    let (topic, group, original) = fidelity_topic_with_group(&source);
    let dir = TempDir::new().unwrap();
    let storage = emulator.storage_yaml("kafka/prod");
    let config = write_config_on(dir.path(), &storage, &source, "nightly", &topic, "  compression: zstd\n");
    assert_success(&backup(&config));

    // The read-only commands reach the store by URL and the cloud's standard environment.
    let url = emulator.url("kafka/prod");
    let listed = run_on(&emulator, &["list", "--path", &url]);
    assert_success(&listed);
    assert!(text(&listed.stdout).contains("nightly"), "{}", text(&listed.stdout));
    let described = run_on(&emulator, &["describe", "--path", &url, "--backup-id", "nightly", "--format", "json"]);
    assert_success(&described);
    let manifest: serde_json::Value = serde_json::from_slice(&described.stdout).unwrap();
    assert_eq!(manifest["topics"][0]["name"], topic.as_str());
    assert_success(&run_on(&emulator, &["validate", "--path", &url, "--backup-id", "nightly", "--deep"]));
    assert_success(&run(&["validate", "--config", config.to_str().unwrap(), "--backup-id", "nightly"]));

    // Restore under a new name, then three-phase restore with the group's offsets.
    let copy = unique("stored-copy");
    let settings = format!("  topic_mapping:\n    {topic}: {copy}\n");
    let restore_config = write_restore_config_on(dir.path(), &storage, "copy", &target, "nightly", &settings);
    assert_success(&restore(&restore_config, &[]));
    assert_eq!(testkit::consume(&target, &copy, &[0, 1]), original, "restored record by record");

    let recovered = unique("stored-dr");
    let settings = format!("  topic_mapping:\n    {topic}: {recovered}\n");
    let dr_config = write_restore_config_on(dir.path(), &storage, "dr", &target, "nightly", &settings);
    let output = run(&["three-phase-restore", "--config", dr_config.to_str().unwrap()]);
    assert_success(&output);
    assert_eq!(testkit::consume(&target, &recovered, &[0, 1]), original);
    assert_eq!(testkit::committed(&target, &group, &recovered, &[0, 1]), [(0, 7), (1, 24)].into());
    // offset-reset plans from the store alone, by URL.
    let args =
        ["offset-reset", "plan", "--path", &url, "--backup-id", "nightly", "--groups", &group, "--format", "json"];
    let planned = run_on(&emulator, &args);
    assert_success(&planned);
    let plan: serde_json::Value = serde_json::from_slice(&planned.stdout).unwrap();
    let offsets = plan["offsets"].as_array().unwrap();
    let on_recovered: Vec<_> = offsets.iter().filter(|o| o["target_topic"] == recovered.as_str()).collect();
    assert_eq!(on_recovered.len(), 2, "{plan}");

    // Everything the runs wrote is under the prefix, read by the cloud's own SDK.
    let listing = emulator.list();
    assert!(listing.objects.keys().all(|key| key.starts_with("kafka/prod/nightly/")), "{:?}", listing.objects);
    assert!(listing.objects.keys().any(|key| key.contains("/segment-")), "{:?}", listing.objects);
    assert!(listing.incomplete_uploads.is_empty());
}

#[test]
fn every_command_round_trips_on_s3() {
    every_command_round_trips_on(StoreKind::S3);
}

#[test]
fn every_command_round_trips_on_azure_blob() {
    every_command_round_trips_on(StoreKind::Azure);
}

#[test]
fn a_backup_killed_mid_upload_on_s3_leaves_no_data_and_resumes_exactly_once() {
    let source = KafkaCluster::source().bootstrap();
    let emulator = StoreEmulator::start(StoreKind::S3);
    let (topic, original) = many_segments(&source, 8_000);
    let dir = TempDir::new().unwrap();
    let settings = "  segment_max_bytes: 4096\n  compression: gzip\n";
    let config = write_config_on(dir.path(), &emulator.storage_yaml("p"), &source, "cut", &topic, settings);
    let store = store_of(&config);
    let committed = || committed_segments_in(&store, "cut");
    let mut kills = 0;
    for round in 0..4u64 {
        let committed_before = committed();
        let mut child = spawn(&["backup", "--config", config.to_str().unwrap()], true);
        wait_for("a few more committed segments", HANG, || {
            child.try_wait().unwrap().is_some() || committed() >= committed_before + 3
        });
        std::thread::sleep(Duration::from_millis(round * 11));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            kills += 1;
        }
        child.wait().unwrap();
        // What a killed run leaves is either committed data or nothing validate counts.
        let url = emulator.url("p");
        assert_success(&run_on(&emulator, &["validate", "--path", &url, "--backup-id", "cut", "--deep"]));
    }
    assert!(kills >= 2, "the backup finished before it could be killed ({kills} kills)");
    assert_success(&backup(&config));
    assert_eq!(records_in_store(&store, "cut", &topic), original, "every record exactly once");
    assert!(emulator.list().incomplete_uploads.is_empty());
}

/// A topic whose one segment spans several upload parts (values that do not compress).
fn large_segment_topic(source: &str, count: usize) -> (String, Vec<RefRecord>) {
    let topic = unique("large");
    testkit::create_topic(source, &topic, 1, &[]);
    let records = testkit::incompressible_records(0, count);
    testkit::produce(source, &topic, &records, &[("linger.ms", "5")]);
    let original = testkit::consume(source, &topic, &[0]);
    assert_eq!(original.len(), count);
    (topic, original)
}

fn large_segments_stream_as_multipart_uploads_on(kind: StoreKind) {
    let (source, target) = (KafkaCluster::source().bootstrap(), KafkaCluster::target().bootstrap());
    let emulator = StoreEmulator::start(kind);
    let (topic, original) = large_segment_topic(&source, 14_000);
    let dir = TempDir::new().unwrap();
    let storage = emulator.storage_yaml("big");
    let config = write_config_on(dir.path(), &storage, &source, "large", &topic, "  compression: lz4\n");
    assert_success(&backup(&config));
    let listing = emulator.list();
    let largest = listing.objects.values().max().copied().unwrap_or(0);
    assert!(largest > 10 * 1024 * 1024, "one segment object of several parts: {:?}", listing.objects);
    assert!(listing.incomplete_uploads.is_empty(), "{:?}", listing.incomplete_uploads);
    let url = emulator.url("big");
    assert_success(&run_on(&emulator, &["validate", "--path", &url, "--backup-id", "large", "--deep"]));
    let copy = unique("large-copy");
    let settings = format!("  topic_mapping:\n    {topic}: {copy}\n");
    let restore_config = write_restore_config_on(dir.path(), &storage, "copy", &target, "large", &settings);
    assert_success(&restore(&restore_config, &[]));
    assert!(testkit::consume(&target, &copy, &[0]) == original, "restored record by record");
}

#[test]
fn large_segments_stream_as_multipart_uploads_on_s3() {
    large_segments_stream_as_multipart_uploads_on(StoreKind::S3);
}

#[test]
fn large_segments_stream_as_block_uploads_on_azure_blob() {
    large_segments_stream_as_multipart_uploads_on(StoreKind::Azure);
}

#[test]
fn a_backup_killed_mid_multipart_upload_leaves_no_data_and_a_rerun_completes_exactly_once() {
    let source = KafkaCluster::source().bootstrap();
    let emulator = StoreEmulator::start(StoreKind::S3);
    let (topic, original) = large_segment_topic(&source, 30_000);
    let dir = TempDir::new().unwrap();
    let config =
        write_config_on(dir.path(), &emulator.storage_yaml("cut"), &source, "cut", &topic, "  compression: none\n");
    // Frozen as soon as the upload starts, the store cannot complete it before our process dies.
    let freeze = emulator.freeze_on_next_upload();
    let mut child = spawn(&["backup", "--config", config.to_str().unwrap()], false);
    let caught = freeze.key();
    let ended_first = child.try_wait().unwrap().is_some();
    child.kill().unwrap();
    let output = child.wait_with_output().unwrap();
    let key = caught.unwrap_or_else(|e| panic!("no upload caught ({e}); backup stderr: {}", text(&output.stderr)));
    assert!(!ended_first, "the backup ended before its upload was caught: {}", text(&output.stderr));
    emulator.resume();
    assert!(key.contains("/segment-"), "{key}");
    let url = emulator.url("cut");
    // The upload stays unfinished, or completes from requests already sent (the store was frozen
    // with them in its socket) without the commit record our dead process never wrote.
    let leftovers = emulator.list();
    let committed = |objects: &std::collections::BTreeMap<String, u64>| {
        objects.keys().filter(|k| k.contains("/segment-") && k.ends_with(".json")).count()
    };
    let data = |objects: &std::collections::BTreeMap<String, u64>| {
        objects.keys().filter(|k| k.contains("/segment-") && !k.ends_with(".json")).count()
    };
    assert_eq!(committed(&leftovers.objects), 0, "{leftovers:?}");
    assert!(data(&leftovers.objects) == 1 || !leftovers.incomplete_uploads.is_empty(), "{leftovers:?}");
    // An unfinished upload of someone else's, outside this backup: it must survive the clean-up.
    emulator.start_unfinished_upload("cut/other-backup/topics/t/partition=0/segment-x.bin");
    // Nothing of the killed upload counts: no backup, or one that validates.
    let listed = run_on(&emulator, &["list", "--path", &url]);
    assert_success(&listed);
    assert_success(&backup(&config));
    assert_success(&run_on(&emulator, &["validate", "--path", &url, "--backup-id", "cut", "--deep"]));
    assert!(records_in_store(&store_of(&config), "cut", &topic) == original, "every record exactly once");
    let after = emulator.list();
    assert_eq!(data(&after.objects), committed(&after.objects), "an uncommitted object of the killed run is removed");
    assert_eq!(
        after.incomplete_uploads,
        vec!["cut/other-backup/topics/t/partition=0/segment-x.bin".to_string()],
        "the killed run's unfinished upload was aborted, nobody else's"
    );
}

#[test]
fn two_runs_with_one_backup_id_on_s3_fail_loudly_instead_of_overwriting() {
    let source = KafkaCluster::source().bootstrap();
    let emulator = StoreEmulator::start(StoreKind::S3);
    let topic = unique("twice");
    testkit::create_topic(&source, &topic, 1, &[]);
    testkit::produce_small(&source, &topic, 0, 10);
    let dir = TempDir::new().unwrap();
    let storage = emulator.storage_yaml("p");
    // Run A tails with its segment open; run B, same backup_id, backs up the same offsets meanwhile.
    let tailing = "  continuous: true\n  segment_max_interval_ms: 600000\n  checkpoint_interval_secs: 1\n";
    let config_a = write_config_on(dir.path(), &storage, &source, "shared", &topic, tailing);
    let store = store_of(&config_a);
    let run_a = spawn(&["backup", "--config", config_a.to_str().unwrap()], false);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    wait_for("run A to read every record", HANG, || {
        let Ok(progress) = runtime.block_on(store.get("shared/state/progress.json")) else { return false };
        let board: serde_json::Value = serde_json::from_slice(&progress).unwrap();
        board["partitions"][&topic]["0"]["next_offset"].as_i64() == Some(10)
    });
    let other = TempDir::new().unwrap();
    let config_b = write_config_on(other.path(), &storage, &source, "shared", &topic, "");
    assert_success(&backup(&config_b));
    // A's segment covers the offsets B committed: its commit record cannot be written over B's.
    send_signal(&run_a, "-TERM");
    let output = wait_with_deadline(run_a, HANG);
    assert!(!output.status.success(), "run A must fail");
    let stderr = text(&output.stderr);
    assert!(stderr.contains("another backup run with this backup_id"), "{stderr}");
    assert!(records_in_store(&store, "shared", &topic) == testkit::consume(&source, &topic, &[0]), "B's data intact");
}

#[test]
fn unknown_schemes_and_malformed_urls_are_refused_with_the_accepted_forms() {
    for (url, expected) in [
        ("ftp://host/dir", "unknown scheme \"ftp\""),
        ("s3://", "no bucket name"),
        ("s3://bucket/p?x=1", "query strings"),
    ] {
        let output = run(&["list", "--path", url]);
        assert!(!output.status.success());
        let stderr = text(&output.stderr);
        assert!(stderr.contains(expected), "{url}: {stderr}");
    }
    let output = run(&["list", "--path", "gopher://x"]);
    assert!(text(&output.stderr).contains("s3://BUCKET/PREFIX"), "{}", text(&output.stderr));
}

#[test]
fn a_stalled_s3_store_is_retried_and_the_backup_completes_exactly() {
    let source = KafkaCluster::source().bootstrap();
    let emulator = StoreEmulator::start(StoreKind::S3);
    let (topic, original) = many_segments(&source, 8_000);
    let dir = TempDir::new().unwrap();
    let storage = format!("{}  request_timeout_secs: 2\n  retry_timeout_secs: 60\n", emulator.storage_yaml("p"));
    let settings = "  segment_max_bytes: 16384\n  compression: none\n";
    let config = write_config_on(dir.path(), &storage, &source, "stalled", &topic, settings);
    let mut child = backup_under_way(&store_of(&config), &config, "stalled");
    // Requests in flight and new ones hang for 5 s (each times out after 2 s and is retried).
    emulator.stall();
    std::thread::sleep(Duration::from_secs(5));
    assert!(child.try_wait().unwrap().is_none(), "the run waits for the store");
    emulator.resume();
    assert_success(&wait_with_deadline(child, HANG));
    let url = emulator.url("p");
    assert_success(&run_on(&emulator, &["validate", "--path", &url, "--backup-id", "stalled", "--deep"]));
    assert_eq!(records_in_store(&store_of(&config), "stalled", &topic), original, "every record exactly once");
}

#[test]
fn throttled_and_reset_requests_on_s3_are_retried_and_every_record_lands_once() {
    let (source, target) = (KafkaCluster::source().bootstrap(), KafkaCluster::target().bootstrap());
    let emulator = StoreEmulator::start(StoreKind::S3);
    // Every 5th request is answered "503 Slow Down"; every 7th loses its answer to a reset connection.
    let proxy = emulator.faulty_proxy(5, 7);
    let (topic, original) = many_segments(&source, 4_000);
    let dir = TempDir::new().unwrap();
    let storage = emulator.storage_yaml_at(&proxy.endpoint, "p");
    let settings = "  segment_max_bytes: 65536\n";
    let config = write_config_on(dir.path(), &storage, &source, "flaky", &topic, settings);
    assert_success(&backup(&config));
    assert_success(&run(&["validate", "--config", config.to_str().unwrap(), "--backup-id", "flaky", "--deep"]));
    let copy = unique("flaky-copy");
    let mapping = format!("  topic_mapping:\n    {topic}: {copy}\n");
    let restore_config = write_restore_config_on(dir.path(), &storage, "copy", &target, "flaky", &mapping);
    assert_success(&restore(&restore_config, &[]));
    assert!(testkit::consume(&target, &copy, &[0]) == original, "restored record by record, each once");
    let (throttled, reset) = proxy.faults();
    assert!(throttled > 10 && reset > 10, "faults injected: {throttled} throttled, {reset} reset");
    // Nothing but the backup's own objects: no duplicate segment of a retried write counts.
    assert_eq!(records_in_store(&store_of(&config), "flaky", &topic), original);
}

#[test]
fn an_azure_store_killed_mid_backup_fails_the_run_or_is_retried_and_a_rerun_completes_exactly_once() {
    let source = KafkaCluster::source().bootstrap();
    let mut emulator = StoreEmulator::start(StoreKind::Azure);
    let (topic, original) = many_segments(&source, 8_000);
    let dir = TempDir::new().unwrap();
    let storage = format!("{}  request_timeout_secs: 2\n  retry_timeout_secs: 3\n", emulator.storage_yaml("p"));
    let settings = "  segment_max_bytes: 16384\n  compression: none\n";
    let config = write_config_on(dir.path(), &storage, &source, "killed", &topic, settings);
    let child = backup_under_way(&store_of(&config), &config, "killed");
    emulator.kill();
    let first = wait_with_deadline(child, HANG);
    emulator.restart();
    if !first.status.success() {
        let stderr = text(&first.stderr);
        assert!(stderr.contains("azure://"), "the error names the store: {stderr}");
    }
    assert_success(&backup(&config));
    let url = emulator.url("p");
    assert_success(&run_on(&emulator, &["validate", "--path", &url, "--backup-id", "killed", "--deep"]));
    assert_eq!(records_in_store(&store_of(&config), "killed", &topic), original, "every record exactly once");
}
