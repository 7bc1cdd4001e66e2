//! `kafka-backup backup`, `list`, `describe` and `validate` as a user runs them, against the shared
//! Apache Kafka "source" cluster whose data confluent-kafka wrote and read: what the backup holds is
//! compared record by record with what the independent client reads from the source, partition by
//! partition to its end. Every test names its topics and groups with `testkit::unique`.

mod common;

use std::time::Duration;

use common::*;
use kafka_backup_core::group_snapshots::{load_snapshots, GroupOffsetsSnapshot};
use kafka_backup_core::records::Compression;
use kafka_backup_core::storage::BackupStore;
use kafka_backup_testkit::{self as testkit, unique, KafkaCluster, RefRecord};
use tempfile::TempDir;

/// Produces the fidelity records to partitions 0 and 2 of a 3-partition topic (1 stays empty).
fn produce_fidelity_topic(bootstrap: &str, topic: &str) -> Vec<RefRecord> {
    testkit::create_topic(bootstrap, topic, 3, testkit::FIDELITY_TOPIC_CONFIGS);
    let mut records = testkit::fidelity_records(0);
    records.extend(testkit::fidelity_records(2));
    testkit::produce(bootstrap, topic, &records, &[("compression.type", "lz4"), ("linger.ms", "100")])
}

#[test]
fn a_backup_holds_exactly_what_the_source_has_with_every_segment_codec() {
    let source = KafkaCluster::source();
    let prefix = unique("fidelity");
    let (orders, untouched) = (format!("{prefix}-orders"), format!("{prefix}-untouched"));
    let produced = produce_fidelity_topic(&source.bootstrap(), &orders);
    testkit::create_topic(&source.bootstrap(), &untouched, 2, &[]);
    let original = testkit::consume(&source.bootstrap(), &orders, &[0, 1, 2]);
    assert_eq!(original.len(), produced.len());
    let dir = TempDir::new().unwrap();
    for codec in Compression::ALL {
        let id = format!("fidelity-{}", codec.name());
        let settings = format!("  compression: {}\n", codec.name());
        let config = write_config(dir.path(), &source.bootstrap(), &id, &format!("{prefix}-*"), &settings);
        let output = backup(&config);
        assert_success(&output);
        assert!(text(&output.stdout).contains("48 records"), "{}", text(&output.stdout));
        assert_eq!(backed_up_records(dir.path(), &id, &orders), original, "segment codec {codec:?}");
        assert_success(&validate(dir.path(), &id, true));
    }

    let manifest = describe_json(dir.path(), "fidelity-zstd");
    let topic = |name: &str| manifest["topics"].as_array().unwrap().iter().find(|t| t["name"] == name).unwrap().clone();
    let described = topic(&orders);
    assert_eq!(described["partition_count"], 3);
    assert_eq!(described["replication_factor"], 1);
    let segments = |p: usize| described["partitions"][p]["segments"].as_array().unwrap().len();
    assert_eq!((segments(0), segments(1), segments(2)), (1, 0, 1), "partition 1 is empty, not missing");
    assert_eq!(topic(&untouched)["partitions"].as_array().unwrap().len(), 2);
    assert_eq!(manifest["source_cluster_id"], source.cluster_id());
    let segment = &described["partitions"][0]["segments"][0];
    assert_eq!(segment["min_timestamp"], 86_400_000, "true minimum of out-of-order CreateTime");
    assert_eq!(segment["max_timestamp"], 4_102_444_800_000i64);
    assert_eq!(segment["record_count"], 24);

    let listed = run(&["list", "--path", &store_path(dir.path())]);
    assert_success(&listed);
    for codec in Compression::ALL {
        assert!(text(&listed.stdout).contains(&format!("fidelity-{}", codec.name())));
    }
    let listed = run(&["list", "--path", &store_path(dir.path()), "--format", "json"]);
    assert_success(&listed);
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).expect("list --format json is JSON");
    let ids: Vec<&str> = listed.as_array().expect("a list").iter().map(|b| b["backup_id"].as_str().unwrap()).collect();
    let expected: Vec<String> = Compression::ALL.iter().map(|c| format!("fidelity-{}", c.name())).collect();
    let mut sorted_ids = ids.clone();
    sorted_ids.sort();
    let mut expected_sorted: Vec<&str> = expected.iter().map(String::as_str).collect();
    expected_sorted.sort();
    assert_eq!(sorted_ids, expected_sorted);
    let described =
        run(&["describe", "--path", &store_path(dir.path()), "--backup-id", "fidelity-zstd", "--format", "yaml"]);
    assert_success(&described);
    assert!(text(&described.stdout).contains("backup_id: fidelity-zstd"));
}

#[test]
fn a_rerun_adds_only_what_was_produced_since() {
    let source = KafkaCluster::source();
    let events = unique("events");
    testkit::create_topic(&source.bootstrap(), &events, 1, &[]);
    testkit::produce_small(&source.bootstrap(), &events, 0, 30);
    let dir = TempDir::new().unwrap();
    let config = write_config(dir.path(), &source.bootstrap(), "daily", &events, "  segment_max_bytes: 1024\n");
    assert_success(&backup(&config));
    assert_eq!(backed_up_records(dir.path(), "daily", &events).len(), 30);
    testkit::produce_small(&source.bootstrap(), &events, 0, 20);
    let output = backup(&config);
    assert_success(&output);
    assert!(text(&output.stdout).contains(" 20 records"), "{}", text(&output.stdout));
    let original = testkit::consume(&source.bootstrap(), &events, &[0]);
    assert_eq!(original.len(), 50);
    assert_eq!(backed_up_records(dir.path(), "daily", &events), original);
    assert_success(&validate(dir.path(), "daily", true));
    let nothing_new = backup(&config);
    assert_success(&nothing_new);
    assert!(text(&nothing_new.stdout).contains(" 0 records"), "{}", text(&nothing_new.stdout));
    assert_eq!(backed_up_records(dir.path(), "daily", &events), original, "a run with nothing new adds nothing");
}

#[test]
fn a_backup_killed_at_any_moment_resumes_with_every_record_exactly_once() {
    let source = KafkaCluster::source();
    let stream = unique("stream");
    testkit::create_topic(&source.bootstrap(), &stream, 2, &[]);
    let records: Vec<RefRecord> = (0..12000)
        .map(|i| RefRecord {
            partition: Some(i % 2),
            key: Some(format!("key-{i}").into_bytes()),
            value: Some(vec![b'a' + (i % 26) as u8; 700]),
            ..RefRecord::default()
        })
        .collect();
    testkit::produce(&source.bootstrap(), &stream, &records, &[("linger.ms", "5"), ("batch.num.messages", "50")]);
    let original = testkit::consume(&source.bootstrap(), &stream, &[0, 1]);
    assert_eq!(original.len(), records.len());

    let dir = TempDir::new().unwrap();
    let settings = "  segment_max_bytes: 16384\n  max_concurrent_partitions: 2\n  compression: gzip\n";
    let config = write_config(dir.path(), &source.bootstrap(), "killed", &stream, settings);
    // Each run is killed on an event: once it has committed a few more segments, then after a
    // delay that varies so that the kill lands at different points (mid-fetch, mid-encode,
    // between object and commit). A run that ends before its event is not a kill.
    let mut kills = 0;
    for round in 0..6u64 {
        let committed_before = committed_segments(dir.path());
        let mut child = spawn(&["backup", "--config", config.to_str().unwrap()], true);
        wait_for("a few more committed segments", HANG, || {
            child.try_wait().unwrap().is_some() || committed_segments(dir.path()) >= committed_before + 3
        });
        std::thread::sleep(Duration::from_millis(round * 7));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            kills += 1;
        }
        child.wait().unwrap();
    }
    assert!(kills >= 4, "the backup finished before a few segments were committed ({kills} kills)");
    // A kill between writing a staging file and renaming it leaves the file; plant one for sure.
    let partition = dir.path().join(format!("store/killed/topics/{stream}/partition=0"));
    std::fs::write(partition.join("segment-00000000000099999999.bin#7"), b"half a segment").unwrap();
    assert_success(&backup(&config));
    assert_eq!(staging_files(dir.path()), 0, "the next run removed the staging files");
    assert_eq!(backed_up_records(dir.path(), "killed", &stream), original, "every record exactly once");
    assert_success(&validate(dir.path(), "killed", true));
}

/// The next offset continuous backup `id` has read from `topic`-0, from its progress board.
fn next_offset_read(dir: &TempDir, id: &str, topic: &str) -> i64 {
    let Ok(body) = std::fs::read(dir.path().join(format!("store/{id}/state/progress.json"))) else { return -1 };
    let board: serde_json::Value = serde_json::from_slice(&body).unwrap();
    board["partitions"][topic]["0"]["next_offset"].as_i64().unwrap_or(-1)
}

#[test]
fn continuous_mode_flushes_the_open_segment_on_sigterm_and_on_sigint() {
    let source = KafkaCluster::source();
    let live = unique("live");
    testkit::create_topic(&source.bootstrap(), &live, 1, &[]);
    testkit::produce_small(&source.bootstrap(), &live, 0, 10);
    let dir = TempDir::new().unwrap();
    // Segments roll only by size or after ten minutes: what the signal finds is an open segment.
    let settings = "  continuous: true\n  segment_max_interval_ms: 600000\n  checkpoint_interval_secs: 1\n";
    let config = write_config(dir.path(), &source.bootstrap(), "tail", &live, settings);
    for (signal, produced) in [("-TERM", 10), ("-INT", 25)] {
        let child = spawn(&["backup", "--config", config.to_str().unwrap()], false);
        wait_for("every record to be read", HANG, || next_offset_read(&dir, "tail", &live) == produced);
        let before = backed_up_records_if_any(dir.path(), "tail", &live).len();
        assert!(before < produced as usize, "the segment was still open when the signal came ({before} committed)");
        send_signal(&child, signal);
        let output = wait_with_deadline(child, HANG);
        assert_success(&output);
        let original = testkit::consume(&source.bootstrap(), &live, &[0]);
        assert_eq!(original.len(), produced as usize);
        assert_eq!(backed_up_records(dir.path(), "tail", &live), original, "{signal}: the open segment was flushed");
        testkit::produce_small(&source.bootstrap(), &live, 0, 15);
    }
}

#[test]
fn continuous_mode_rolls_segments_by_age_while_tailing() {
    let source = KafkaCluster::source();
    let live = unique("aged");
    testkit::create_topic(&source.bootstrap(), &live, 1, &[]);
    testkit::produce_small(&source.bootstrap(), &live, 0, 10);
    let dir = TempDir::new().unwrap();
    let settings = "  continuous: true\n  segment_max_interval_ms: 500\n  checkpoint_interval_secs: 1\n";
    let config = write_config(dir.path(), &source.bootstrap(), "aged", &live, settings);
    let child = spawn(&["backup", "--config", config.to_str().unwrap()], false);
    wait_for("a segment rolled by age while tailing", HANG, || {
        backed_up_records_if_any(dir.path(), "aged", &live).len() == 10
    });
    testkit::produce_small(&source.bootstrap(), &live, 0, 5);
    wait_for("the next segment rolled by age", HANG, || {
        backed_up_records_if_any(dir.path(), "aged", &live).len() == 15
    });
    send_signal(&child, "-TERM");
    assert_success(&wait_with_deadline(child, HANG));
    assert_eq!(backed_up_records(dir.path(), "aged", &live), testkit::consume(&source.bootstrap(), &live, &[0]));
}

#[test]
fn deep_validation_finds_flipped_truncated_and_missing_segments() {
    let source = KafkaCluster::source();
    let ledger = unique("ledger");
    testkit::create_topic(&source.bootstrap(), &ledger, 3, &[]);
    for partition in 0..3 {
        testkit::produce_small(&source.bootstrap(), &ledger, partition, 8);
    }
    let dir = TempDir::new().unwrap();
    let config = write_config(dir.path(), &source.bootstrap(), "audit", &ledger, "  compression: none\n");
    assert_success(&backup(&config));
    assert_success(&validate(dir.path(), "audit", true));
    let segment = |p: i32| segment_files(dir.path(), "audit", &ledger, p).remove(0);

    let flipped = segment(0);
    let mut bytes = std::fs::read(&flipped).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&flipped, bytes).unwrap();
    assert_success(&validate(dir.path(), "audit", false));
    let deep = validate(dir.path(), "audit", true);
    assert!(!deep.status.success());
    assert!(
        text(&deep.stdout).contains(&format!("{ledger}-0")) && text(&deep.stdout).contains("CRC"),
        "{}",
        text(&deep.stdout)
    );

    let truncated = segment(1);
    let bytes = std::fs::read(&truncated).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() - 10]).unwrap();
    std::fs::remove_file(segment(2)).unwrap();
    let shallow = validate(dir.path(), "audit", false);
    assert!(!shallow.status.success());
    let report = text(&shallow.stdout);
    assert!(report.contains(&format!("{ledger}-1")) && report.contains("size"), "{report}");
    assert!(report.contains(&format!("{ledger}-2")) && report.contains("missing"), "{report}");
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
    let child = spawn(&["backup", "--config", unreachable.to_str().unwrap()], false);
    let output = wait_with_deadline(child, HANG);
    assert!(!output.status.success());
    assert!(text(&output.stderr).contains(&dead), "{}", text(&output.stderr));

    let missing = run(&["describe", "--path", &dir.path().join("nowhere").display().to_string(), "--backup-id", "x"]);
    assert!(!missing.status.success());
    assert!(text(&missing.stderr).contains("no such directory"), "{}", text(&missing.stderr));
    assert!(!dir.path().join("nowhere").exists(), "a read-only command created a directory");

    let source = KafkaCluster::source();
    let pattern = format!("{}-*", unique("nothing"));
    let no_match = write_config(dir.path(), &source.bootstrap(), "none", &pattern, "  compression: zstd\n");
    let output = backup(&no_match);
    assert!(!output.status.success());
    assert!(text(&output.stderr).contains("no topic"), "{}", text(&output.stderr));
}

#[test]
fn offsets_deleted_by_retention_become_a_recorded_gap_not_a_failure() {
    let source = KafkaCluster::source();
    let retained = unique("retained");
    testkit::create_topic(&source.bootstrap(), &retained, 1, &[]);
    testkit::produce_small(&source.bootstrap(), &retained, 0, 1000);
    let dir = TempDir::new().unwrap();
    let config = write_config(dir.path(), &source.bootstrap(), "retention", &retained, "  compression: lz4\n");
    assert_success(&backup(&config));
    let first = backed_up_records(dir.path(), "retention", &retained);
    assert_eq!(first.iter().map(|r| r.offset.unwrap()).collect::<Vec<_>>(), (0..1000).collect::<Vec<_>>());

    // More records arrive, then the log start moves past some of them before the next run.
    testkit::produce_small(&source.bootstrap(), &retained, 0, 1000);
    testkit::delete_records(&source.bootstrap(), &retained, 0, 1500);
    let output = backup(&config);
    assert_success(&output);
    assert!(
        text(&output.stdout).contains(&format!("GAP {retained}-0: offsets 1000..1500")),
        "{}",
        text(&output.stdout)
    );
    let manifest = describe_json(dir.path(), "retention");
    let gaps = manifest["topics"][0]["partitions"][0]["gaps"].as_array().unwrap().clone();
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    assert_eq!((gaps[0]["from"].as_i64(), gaps[0]["to"].as_i64()), (Some(1000), Some(1500)));

    let still_there = testkit::consume(&source.bootstrap(), &retained, &[0]);
    assert_eq!(still_there.first().and_then(|r| r.offset), Some(1500));
    let everything = backed_up_records(dir.path(), "retention", &retained);
    let (before, after) = everything.split_at(1000);
    assert_eq!(before, &first[..]);
    assert_eq!(after, &still_there[..], "the backup continued exactly at the new log start");
    assert_success(&validate(dir.path(), "retention", true));
}

/// Records of `size` bytes each for `partition`, enough of them to span many fetches.
fn large_records(partition: i32, count: usize, size: usize) -> Vec<RefRecord> {
    (0..count)
        .map(|i| RefRecord {
            partition: Some(partition),
            key: Some(format!("large-{i}").into_bytes()),
            value: Some(format!("{i:08}").into_bytes().repeat(size / 8)),
            ..RefRecord::default()
        })
        .collect()
}

#[test]
fn retention_moving_the_log_start_under_a_running_backup_becomes_a_recorded_gap() {
    let source = KafkaCluster::source();
    let topic = unique("retained-live");
    testkit::create_topic(&source.bootstrap(), &topic, 1, &[]);
    let first = testkit::produce_small(&source.bootstrap(), &topic, 0, 1000);
    let dir = TempDir::new().unwrap();
    let settings = "  continuous: true\n  segment_max_interval_ms: 500\n  checkpoint_interval_secs: 1\n";
    let config = write_config(dir.path(), &source.bootstrap(), "live-gap", &topic, settings);
    let child = spawn(&["backup", "--config", config.to_str().unwrap()], false);
    wait_for("the first records to be read", HANG, || next_offset_read(&dir, "live-gap", &topic) == 1000);

    // The backup is held (SIGSTOP) while 48 MiB arrive: one fetch plus one prefetch of 8 MiB each
    // can be in flight, so most of it is still unread when retention deletes all of it.
    send_signal(&child, "-STOP");
    let held_back = testkit::produce(&source.bootstrap(), &topic, &large_records(0, 1536, 32 * 1024), &[]);
    let log_end = held_back.last().and_then(|r| r.offset).unwrap() + 1;
    testkit::delete_records(&source.bootstrap(), &topic, 0, log_end);
    send_signal(&child, "-CONT");
    let after = testkit::produce_small(&source.bootstrap(), &topic, 0, 200);
    wait_for("the records after the gap to be backed up", HANG, || {
        backed_up_records_if_any(dir.path(), "live-gap", &topic).last().and_then(|r| r.offset)
            == after.last().and_then(|r| r.offset)
    });
    send_signal(&child, "-TERM");
    assert_success(&wait_with_deadline(child, HANG));

    let manifest = describe_json(dir.path(), "live-gap");
    let gaps = manifest["topics"][0]["partitions"][0]["gaps"].as_array().unwrap().clone();
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    let (gap_from, gap_to) = (gaps[0]["from"].as_i64().unwrap(), gaps[0]["to"].as_i64().unwrap());
    assert_eq!(gap_to, log_end, "the gap ends at the new log start");
    assert!(gap_from < log_end - 512, "most of the held-back records were deleted unread (gap from {gap_from})");

    // Every record outside the gap is backed up exactly once, as the producer wrote it.
    let expected: Vec<RefRecord> = first
        .iter()
        .chain(held_back.iter().filter(|r| r.offset.unwrap() < gap_from))
        .chain(testkit::consume(&source.bootstrap(), &topic, &[0]).iter())
        .map(|r| RefRecord { timestamp: None, timestamp_type: None, ..r.clone() })
        .collect();
    let backed_up: Vec<RefRecord> = backed_up_records(dir.path(), "live-gap", &topic)
        .into_iter()
        .map(|r| RefRecord { timestamp: None, timestamp_type: None, ..r })
        .collect();
    assert_eq!(backed_up.len(), expected.len());
    assert!(backed_up == expected, "the backup holds every record outside the gap, once each");
    assert_success(&validate(dir.path(), "live-gap", true));
}

#[test]
fn aborted_transactions_and_markers_are_never_backed_up_and_the_backup_matches_a_read_committed_consumer() {
    let source = KafkaCluster::source();
    let payments = unique("payments");
    testkit::create_topic(&source.bootstrap(), &payments, 1, &[]);
    // Plain records, committed and aborted transactions interleaved on one partition.
    testkit::produce_small(&source.bootstrap(), &payments, 0, 2);
    testkit::produce_transactions(&source.bootstrap(), &payments, 0, &[(3, true), (2, false)]);
    testkit::produce_small(&source.bootstrap(), &payments, 0, 2);
    testkit::produce_transactions(&source.bootstrap(), &payments, 0, &[(2, false), (4, true)]);
    let committed_view = testkit::consume(&source.bootstrap(), &payments, &[0]);
    let everything = testkit::consume_with(&source.bootstrap(), &payments, &[0], "read_uncommitted");
    assert_eq!(committed_view.len(), 2 + 3 + 2 + 4, "what a read_committed consumer sees");
    assert_eq!(everything.len(), committed_view.len() + 4, "the aborted records are in the log");

    let dir = TempDir::new().unwrap();
    let config = write_config(dir.path(), &source.bootstrap(), "txn", &payments, "  compression: zstd\n");
    let output = backup(&config);
    assert_success(&output);
    assert!(text(&output.stdout).contains("left out"), "{}", text(&output.stdout));
    assert_eq!(backed_up_records(dir.path(), "txn", &payments), committed_view);
    assert_success(&validate(dir.path(), "txn", true));

    // Restored, the target holds the committed records only, and no control record.
    let target = KafkaCluster::target();
    let restored_topic = unique("payments-restored");
    let settings = format!("  topic_mapping:\n    {payments}: {restored_topic}\n");
    assert_success(&restore(&write_restore_config(dir.path(), "txn", &target.bootstrap(), "txn", &settings), &[]));
    let restored = testkit::consume_with(&target.bootstrap(), &restored_topic, &[0], "read_uncommitted");
    assert_eq!(without_offsets(&restored), without_offsets(&committed_view));
    let offsets: Vec<i64> = restored.iter().map(|r| r.offset.unwrap()).collect();
    assert_eq!(offsets, (0..committed_view.len() as i64).collect::<Vec<_>>(), "no control record was restored");
}

#[test]
fn committed_group_offsets_are_snapshotted_and_continuous_mode_keeps_their_history() {
    let source = KafkaCluster::source();
    let s = source.bootstrap();
    let (orders, other) = (unique("orders"), unique("other"));
    let (billing, audit, debug) = (unique("billing"), unique("audit"), unique("tmp-debug"));
    testkit::create_topic(&s, &orders, 2, &[]);
    testkit::create_topic(&s, &other, 1, &[]);
    testkit::produce_small(&s, &orders, 0, 6);
    testkit::produce_small(&s, &orders, 1, 3);
    testkit::produce_small(&s, &other, 0, 2);
    testkit::commit(&s, &billing, &[(&orders, 0, 4), (&orders, 1, 3)]);
    testkit::commit(&s, &audit, &[(&other, 0, 1)]);
    testkit::commit(&s, &debug, &[(&orders, 0, 1)]);

    let dir = TempDir::new().unwrap();
    let config =
        write_config(dir.path(), &s, "history", &orders, "  continuous: true\n  checkpoint_interval_secs: 1\n");
    let with_groups = std::fs::read_to_string(&config)
        .unwrap()
        .replace("storage:", "  groups:\n    include: [\"*\"]\n    exclude: [\"tmp-*\"]\nstorage:");
    std::fs::write(&config, with_groups).unwrap();
    let child = spawn(&["backup", "--config", config.to_str().unwrap()], false);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let snapshots = || {
        let Ok(root) = BackupStore::existing_directory(&dir.path().join("store")) else { return Vec::new() };
        runtime.block_on(async { load_snapshots(&root.child("history")).await.unwrap_or_default() })
    };
    wait_for("the first snapshot", HANG, || !snapshots().is_empty());
    testkit::commit(&s, &billing, &[(&orders, 0, 6)]);
    let billing_p0 = |s: &GroupOffsetsSnapshot| {
        s.groups.get(&billing).and_then(|o| o.iter().find(|o| o.partition == 0)).map(|o| o.offset)
    };
    wait_for("a snapshot with the new commit", HANG, || snapshots().iter().any(|s| billing_p0(s) == Some(6)));
    send_signal(&child, "-TERM");
    let output = wait_with_deadline(child, HANG);
    assert_success(&output);

    let history = snapshots();
    let first = &history[0];
    assert_eq!(first.groups.keys().collect::<Vec<_>>(), vec![&billing], "audit reads another topic, tmp-* is excluded");
    let offsets: Vec<_> = first.groups[&billing].iter().map(|o| (o.topic.as_str(), o.partition, o.offset)).collect();
    assert_eq!(offsets, vec![(orders.as_str(), 0, 4), (orders.as_str(), 1, 3)]);
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
