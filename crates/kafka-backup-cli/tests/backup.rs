//! `kafka-backup backup`, `list`, `describe` and `validate` as a user runs them, against a real
//! broker (Tansu) whose data confluent-kafka wrote and read: what the backup holds is compared
//! record by record with what the independent client reads from the source.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use kafka_backup_core::group_snapshots::{load_snapshots, GroupOffsetsSnapshot};
use kafka_backup_core::records::Compression;
use kafka_backup_core::storage::BackupStore;
use kafka_backup_testkit::{self as testkit, Broker, MockCluster, RefRecord};
use tempfile::TempDir;

/// Produces the fidelity records to partitions 0 and 2 of a 3-partition topic (1 stays empty).
fn produce_fidelity_topic(broker: &Broker, topic: &str) -> Vec<RefRecord> {
    testkit::create_topic(&broker.bootstrap(), topic, 3, &[]);
    let mut records = testkit::fidelity_records(0);
    records.extend(testkit::fidelity_records(2));
    testkit::produce(&broker.bootstrap(), topic, &records, &[("compression.type", "lz4"), ("linger.ms", "100")])
}

#[test]
fn a_backup_holds_exactly_what_the_source_has_with_every_segment_codec() {
    let broker = Broker::start("fidelity");
    let produced = produce_fidelity_topic(&broker, "orders");
    testkit::create_topic(&broker.bootstrap(), "untouched", 2, &[]);
    let source = testkit::consume(&broker.bootstrap(), "orders", &[0, 1, 2], produced.len());
    assert_eq!(source.len(), produced.len());
    let dir = TempDir::new().unwrap();
    for codec in Compression::ALL {
        let id = format!("fidelity-{}", codec.name());
        let config =
            write_config(dir.path(), &broker.bootstrap(), &id, "*", &format!("  compression: {}\n", codec.name()));
        let output = backup(&config);
        assert_success(&output);
        assert!(text(&output.stdout).contains("48 records"), "{}", text(&output.stdout));
        assert_eq!(backed_up_records(dir.path(), &id, "orders"), source, "segment codec {codec:?}");
        assert_success(&validate(dir.path(), &id, true));
    }

    let manifest = describe_json(dir.path(), "fidelity-zstd");
    let topic = |name: &str| manifest["topics"].as_array().unwrap().iter().find(|t| t["name"] == name).unwrap().clone();
    let orders = topic("orders");
    assert_eq!(orders["partition_count"], 3);
    assert_eq!(orders["replication_factor"], 1);
    let segments = |p: usize| orders["partitions"][p]["segments"].as_array().unwrap().len();
    assert_eq!((segments(0), segments(1), segments(2)), (1, 0, 1), "partition 1 is empty, not missing");
    let empty = topic("untouched");
    assert_eq!(empty["partitions"].as_array().unwrap().len(), 2);
    assert_eq!(manifest["source_cluster_id"], "fidelity");
    let segment = &orders["partitions"][0]["segments"][0];
    assert_eq!(segment["min_timestamp"], 86_400_000, "true minimum of out-of-order CreateTime");
    assert_eq!(segment["max_timestamp"], 4_102_444_800_000i64);
    assert_eq!(segment["record_count"], 24);

    let listed = run(&["list", "--path", &store_path(dir.path())]);
    assert_success(&listed);
    for codec in Compression::ALL {
        assert!(text(&listed.stdout).contains(&format!("fidelity-{}", codec.name())));
    }
    let described =
        run(&["describe", "--path", &store_path(dir.path()), "--backup-id", "fidelity-zstd", "--format", "yaml"]);
    assert_success(&described);
    assert!(text(&described.stdout).contains("backup_id: fidelity-zstd"));
}

#[test]
fn a_rerun_adds_only_what_was_produced_since() {
    let broker = Broker::start("incremental");
    testkit::create_topic(&broker.bootstrap(), "events", 1, &[]);
    testkit::produce_one_per_batch(&broker.bootstrap(), "events", 0, 30);
    let dir = TempDir::new().unwrap();
    let config = write_config(dir.path(), &broker.bootstrap(), "daily", "events", "  segment_max_bytes: 1024\n");
    assert_success(&backup(&config));
    assert_eq!(backed_up_records(dir.path(), "daily", "events").len(), 30);
    testkit::produce_one_per_batch(&broker.bootstrap(), "events", 0, 20);
    let output = backup(&config);
    assert_success(&output);
    assert!(text(&output.stdout).contains("20 records"), "{}", text(&output.stdout));
    let source = testkit::consume(&broker.bootstrap(), "events", &[0], 50);
    assert_eq!(backed_up_records(dir.path(), "daily", "events"), source);
    assert_success(&validate(dir.path(), "daily", true));
    let nothing_new = backup(&config);
    assert_success(&nothing_new);
    assert!(text(&nothing_new.stdout).contains(" 0 records"), "{}", text(&nothing_new.stdout));
}

#[test]
fn a_backup_killed_at_any_moment_resumes_with_every_record_exactly_once() {
    let broker = Broker::start("kill");
    testkit::create_topic(&broker.bootstrap(), "stream", 2, &[]);
    let records: Vec<RefRecord> = (0..12000)
        .map(|i| RefRecord {
            partition: Some(i % 2),
            key: Some(format!("key-{i}").into_bytes()),
            value: Some(vec![b'a' + (i % 26) as u8; 700]),
            ..RefRecord::default()
        })
        .collect();
    testkit::produce(&broker.bootstrap(), "stream", &records, &[("linger.ms", "5"), ("batch.num.messages", "50")]);
    let source = testkit::consume(&broker.bootstrap(), "stream", &[0, 1], records.len());
    assert_eq!(source.len(), records.len());

    let dir = TempDir::new().unwrap();
    let settings = "  segment_max_bytes: 16384\n  max_concurrent_partitions: 2\n  compression: gzip\n";
    let config = write_config(dir.path(), &broker.bootstrap(), "killed", "stream", settings);
    // Each run is killed once it has committed a few more segments, after a delay that varies so
    // that the kill lands at different points (mid-fetch, mid-encode, between object and commit).
    let mut kills = 0;
    for round in 0..6u64 {
        let committed_before = committed_segments(dir.path());
        let mut child = binary()
            .args(["backup", "--config", config.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while child.try_wait().unwrap().is_none()
            && committed_segments(dir.path()) < committed_before + 3
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(Duration::from_millis(round * 7));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            kills += 1;
        }
        child.wait().unwrap();
    }
    assert!(kills >= 4, "the backup finished too fast to be killed mid-run ({kills} kills)");
    assert_success(&backup(&config));
    assert_eq!(backed_up_records(dir.path(), "killed", "stream"), source, "every record exactly once");
    assert_success(&validate(dir.path(), "killed", true));
}

#[test]
fn continuous_mode_tails_until_sigterm_then_flushes_and_exits_cleanly() {
    let broker = Broker::start("continuous");
    testkit::create_topic(&broker.bootstrap(), "live", 1, &[]);
    testkit::produce_one_per_batch(&broker.bootstrap(), "live", 0, 10);
    let dir = TempDir::new().unwrap();
    let settings = "  continuous: true\n  segment_max_interval_ms: 500\n  checkpoint_interval_secs: 1\n";
    let config = write_config(dir.path(), &broker.bootstrap(), "tail", "live", settings);
    let child = binary()
        .args(["backup", "--config", config.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let progress = dir.path().join("store/tail/state/progress.json");
    let next_offset = || -> i64 {
        let Ok(body) = std::fs::read(&progress) else { return -1 };
        let board: serde_json::Value = serde_json::from_slice(&body).unwrap();
        board["partitions"]["live"]["0"]["next_offset"].as_i64().unwrap_or(-1)
    };
    wait_for("the first records to be read", Duration::from_secs(20), || next_offset() == 10);
    wait_for("a segment rolled by age while tailing", Duration::from_secs(20), || committed_segments(dir.path()) >= 1);
    testkit::produce_one_per_batch(&broker.bootstrap(), "live", 0, 15);
    wait_for("records produced while tailing", Duration::from_secs(20), || next_offset() == 25);
    terminate(&child);
    let started = Instant::now();
    let output = child.wait_with_output().unwrap();
    assert!(started.elapsed() < Duration::from_secs(10), "shutdown took {:?}", started.elapsed());
    assert_success(&output);
    let source = testkit::consume(&broker.bootstrap(), "live", &[0], 25);
    assert_eq!(backed_up_records(dir.path(), "tail", "live"), source, "the open segment was flushed at shutdown");
}

#[test]
fn deep_validation_finds_flipped_truncated_and_missing_segments() {
    let broker = Broker::start("corrupt");
    testkit::create_topic(&broker.bootstrap(), "ledger", 3, &[]);
    for partition in 0..3 {
        testkit::produce_one_per_batch(&broker.bootstrap(), "ledger", partition, 8);
    }
    let dir = TempDir::new().unwrap();
    let config = write_config(dir.path(), &broker.bootstrap(), "audit", "ledger", "  compression: none\n");
    assert_success(&backup(&config));
    assert_success(&validate(dir.path(), "audit", true));
    let segment = |p: i32| {
        let folder = dir.path().join(format!("store/audit/topics/ledger/partition={p}"));
        std::fs::read_dir(folder).unwrap().map(|e| e.unwrap().path()).find(|p| p.extension().unwrap() == "bin").unwrap()
    };

    let flipped = segment(0);
    let mut bytes = std::fs::read(&flipped).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&flipped, bytes).unwrap();
    assert_success(&validate(dir.path(), "audit", false));
    let deep = validate(dir.path(), "audit", true);
    assert!(!deep.status.success());
    assert!(text(&deep.stdout).contains("ledger-0") && text(&deep.stdout).contains("CRC"), "{}", text(&deep.stdout));

    let truncated = segment(1);
    let bytes = std::fs::read(&truncated).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() - 10]).unwrap();
    std::fs::remove_file(segment(2)).unwrap();
    let shallow = validate(dir.path(), "audit", false);
    assert!(!shallow.status.success());
    let report = text(&shallow.stdout);
    assert!(report.contains("ledger-1") && report.contains("size"), "{report}");
    assert!(report.contains("ledger-2") && report.contains("missing"), "{report}");
    assert!(text(&shallow.stderr).contains("2 problems"), "{}", text(&shallow.stderr));
}

#[test]
fn bad_input_fails_with_a_message_naming_the_problem() {
    let dir = TempDir::new().unwrap();
    let unknown_key = write_config(dir.path(), "127.0.0.1:1", "typo", "*", "  segment_max_byte: 10\n");
    let output = backup(&unknown_key);
    assert!(!output.status.success());
    assert!(
        text(&output.stderr).contains("backup") && text(&output.stderr).contains("segment_max_byte"),
        "{}",
        text(&output.stderr)
    );

    let dead = format!("127.0.0.1:{}", testkit::free_port());
    let unreachable = write_config(dir.path(), &dead, "dead", "*", "  compression: zstd\n");
    let text_config =
        std::fs::read_to_string(&unreachable).unwrap().replace("topics:", "bootstrap_timeout_secs: 2\n  topics:");
    std::fs::write(&unreachable, text_config).unwrap();
    let started = Instant::now();
    let output = backup(&unreachable);
    assert!(!output.status.success());
    assert!(text(&output.stderr).contains(&dead), "{}", text(&output.stderr));
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());

    let missing = run(&["describe", "--path", &dir.path().join("nowhere").display().to_string(), "--backup-id", "x"]);
    assert!(!missing.status.success());
    assert!(text(&missing.stderr).contains("no such directory"), "{}", text(&missing.stderr));
    assert!(!dir.path().join("nowhere").exists(), "a read-only command created a directory");

    let broker = Broker::start("bad-input");
    let no_match = write_config(dir.path(), &broker.bootstrap(), "none", "nothing-*", "  compression: zstd\n");
    let output = backup(&no_match);
    assert!(!output.status.success());
    assert!(text(&output.stderr).contains("no topic"), "{}", text(&output.stderr));
}

#[test]
fn offsets_deleted_by_retention_become_a_recorded_gap_not_a_failure() {
    // librdkafka's mock cluster keeps a few MiB per partition: producing more moves the log start.
    let mut cluster = MockCluster::start();
    cluster.produce("retained", 0, 1000, 1000);
    let dir = TempDir::new().unwrap();
    let config = write_config(dir.path(), cluster.bootstrap(), "retention", "retained", "  compression: lz4\n");
    assert_success(&backup(&config));
    let first = backed_up_records(dir.path(), "retention", "retained");
    assert_eq!(first.iter().map(|r| r.offset.unwrap()).collect::<Vec<_>>(), (0..1000).collect::<Vec<_>>());

    cluster.produce("retained", 0, 12_000, 1000);
    let output = backup(&config);
    assert_success(&output);
    // The mock cluster has no group APIs: the data is backed up and the operator is told.
    assert!(
        text(&output.stdout).contains("WARNING consumer-group offsets were not captured"),
        "{}",
        text(&output.stdout)
    );
    assert!(text(&output.stdout).contains("GAP retained-0: offsets 1000.."), "{}", text(&output.stdout));
    let manifest = describe_json(dir.path(), "retention");
    let gaps = manifest["topics"][0]["partitions"][0]["gaps"].as_array().unwrap().clone();
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    assert_eq!(gaps[0]["from"], 1000);
    let log_start = gaps[0]["to"].as_i64().unwrap();
    assert!(log_start > 1000 && log_start < 13_000, "log start {log_start}");

    let still_there = testkit::consume(cluster.bootstrap(), "retained", &[0], (13_000 - log_start) as usize);
    assert_eq!(still_there.first().and_then(|r| r.offset), Some(log_start));
    let everything = backed_up_records(dir.path(), "retention", "retained");
    let (before, after) = everything.split_at(1000);
    assert_eq!(before, &first[..]);
    assert_eq!(after, &still_there[..], "the backup continued exactly at the new log start");
    assert_success(&validate(dir.path(), "retention", true));
}

#[test]
fn transaction_markers_are_never_backed_up_and_the_backup_matches_a_read_committed_consumer() {
    let broker = Broker::start("transactions");
    testkit::create_topic(&broker.bootstrap(), "payments", 1, &[]);
    testkit::produce_transactions(&broker.bootstrap(), "payments", 0, &[(3, true), (2, false), (4, true)]);
    let dir = TempDir::new().unwrap();
    let config = write_config(dir.path(), &broker.bootstrap(), "txn", "payments", "  compression: zstd\n");
    let output = backup(&config);
    assert_success(&output);
    assert!(text(&output.stdout).contains("left out 3 control"), "{}", text(&output.stdout));
    // Apache Kafka drops the aborted transaction for read_committed readers; Tansu does not report
    // aborted transactions (a known gap), so the consumer and the backup both keep it there. The
    // backup must agree with the independent read_committed consumer either way.
    let backed_up = backed_up_records(dir.path(), "txn", "payments");
    let committed_view = testkit::consume(&broker.bootstrap(), "payments", &[0], backed_up.len());
    assert_eq!(backed_up, committed_view);
    let offsets: Vec<i64> = backed_up.iter().map(|r| r.offset.unwrap()).collect();
    assert!(
        !offsets.contains(&3) && !offsets.contains(&6) && !offsets.contains(&11),
        "markers at 3, 6, 11: {offsets:?}"
    );
    assert_success(&validate(dir.path(), "txn", true));
}

#[test]
fn committed_group_offsets_are_snapshotted_and_continuous_mode_keeps_their_history() {
    let broker = Broker::start("group-snapshots");
    testkit::create_topic(&broker.bootstrap(), "orders", 2, &[]);
    testkit::create_topic(&broker.bootstrap(), "other", 1, &[]);
    testkit::produce_one_per_batch(&broker.bootstrap(), "orders", 0, 6);
    testkit::produce_one_per_batch(&broker.bootstrap(), "orders", 1, 3);
    testkit::produce_one_per_batch(&broker.bootstrap(), "other", 0, 2);
    testkit::commit(&broker.bootstrap(), "billing", &[("orders", 0, 4), ("orders", 1, 3)]);
    testkit::commit(&broker.bootstrap(), "audit", &[("other", 0, 1)]);
    testkit::commit(&broker.bootstrap(), "tmp-debug", &[("orders", 0, 1)]);

    let dir = TempDir::new().unwrap();
    let config = write_config(
        dir.path(),
        &broker.bootstrap(),
        "history",
        "orders",
        "  continuous: true\n  checkpoint_interval_secs: 1\n",
    );
    let with_groups = std::fs::read_to_string(&config)
        .unwrap()
        .replace("storage:", "  groups:\n    include: [\"*\"]\n    exclude: [\"tmp-*\"]\nstorage:");
    std::fs::write(&config, with_groups).unwrap();
    let child = binary()
        .args(["backup", "--config", config.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let snapshots = || {
        let Ok(root) = BackupStore::existing_directory(&dir.path().join("store")) else { return Vec::new() };
        runtime.block_on(async { load_snapshots(&root.child("history")).await.unwrap_or_default() })
    };
    wait_for("the first snapshot", Duration::from_secs(20), || !snapshots().is_empty());
    testkit::commit(&broker.bootstrap(), "billing", &[("orders", 0, 6)]);
    let billing_p0 = |s: &GroupOffsetsSnapshot| {
        s.groups.get("billing").and_then(|o| o.iter().find(|o| o.partition == 0)).map(|o| o.offset)
    };
    wait_for("a snapshot with the new commit", Duration::from_secs(20), || {
        snapshots().iter().any(|s| billing_p0(s) == Some(6))
    });
    terminate(&child);
    let output = child.wait_with_output().unwrap();
    assert_success(&output);

    let history = snapshots();
    let first = &history[0];
    assert_eq!(
        first.groups.keys().collect::<Vec<_>>(),
        vec!["billing"],
        "audit reads another topic, tmp-* is excluded"
    );
    let offsets: Vec<_> = first.groups["billing"].iter().map(|o| (o.topic.as_str(), o.partition, o.offset)).collect();
    assert_eq!(offsets, vec![("orders", 0, 4), ("orders", 1, 3)]);
    assert!(history.windows(2).all(|w| w[0].taken_at_ms < w[1].taken_at_ms));
    assert_eq!(billing_p0(history.last().unwrap()), Some(6));
    assert!(text(&output.stdout).contains("groups with offsets on these topics"), "{}", text(&output.stdout));

    let described = run(&["describe", "--path", &store_path(dir.path()), "--backup-id", "history"]);
    assert!(
        text(&described.stdout).contains(&format!("consumer-group offsets: {} snapshots", history.len())),
        "{}",
        text(&described.stdout)
    );
}
