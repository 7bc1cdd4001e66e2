//! `verify --config restore.yaml` against the Apache Kafka "target" cluster: a restore verifies
//! identical (in order per partition, and as a whole for a topic restored by key), and a record
//! added to, changed on, or missing from the target is caught, counted and named, with a non-zero
//! exit. The altered targets are written with confluent-kafka, not by our restore.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use kafka_backup_testkit::{self as testkit, unique, KafkaCluster, RefRecord};
use tempfile::TempDir;

fn verify(config: &Path) -> (bool, serde_json::Value, String) {
    let output = run(&["verify", "--config", config.to_str().unwrap(), "--format", "json"]);
    let report = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("verify --format json is JSON ({e}): {}", text(&output.stdout)));
    (output.status.success(), report, text(&output.stderr))
}

/// The check of target partition `partition` in a JSON report.
fn check(report: &serde_json::Value, partition: i64) -> &serde_json::Value {
    let checks = report["partitions"].as_array().unwrap();
    checks.iter().find(|c| c["target_partition"] == partition).unwrap_or_else(|| panic!("{report}"))
}

fn counts(check: &serde_json::Value) -> (u64, u64, u64, u64) {
    let n = |key: &str| check[key].as_u64().unwrap();
    (n("expected"), n("found"), n("missing"), n("extra"))
}

/// A restore config of backup "verified" mapping `topic` to `target_topic`, with `extra` settings.
fn restore_config(dir: &Path, name: &str, topic: &str, target_topic: &str, extra: &str) -> PathBuf {
    let target = KafkaCluster::target().bootstrap();
    let settings = format!("  topic_mapping:\n    {topic}: {target_topic}\n{extra}");
    write_restore_config(dir, name, &target, "verified", &settings)
}

/// `records` written to a new two-partition topic on the target by confluent-kafka.
fn written_by_hand(records: &[RefRecord]) -> String {
    let target = KafkaCluster::target().bootstrap();
    let topic = unique("by-hand");
    testkit::create_topic(&target, &topic, 2, testkit::FIDELITY_TOPIC_CONFIGS);
    testkit::produce(&target, &topic, records, &[]);
    topic
}

#[test]
fn verify_finds_a_restore_identical_and_every_record_added_changed_or_missing() {
    let source = KafkaCluster::source().bootstrap();
    let target = KafkaCluster::target().bootstrap();
    let (topic, _group, original) = fidelity_topic_with_group(&source);
    let dir = TempDir::new().unwrap();
    assert_success(&backup(&write_config(dir.path(), &source, "verified", &topic, "")));

    let copy = unique("verified-copy");
    let config = restore_config(dir.path(), "copy", &topic, &copy, "");
    assert_success(&restore(&config, &[]));
    let (ok, report, stderr) = verify(&config);
    assert!(ok, "{report} {stderr}");
    for partition in [0, 1] {
        let per_partition = original.iter().filter(|r| r.partition == Some(partition as i32)).count() as u64;
        assert_eq!(counts(check(&report, partition)), (per_partition, per_partition, 0, 0));
    }
    let text_output = run(&["verify", "--config", config.to_str().unwrap()]);
    assert_success(&text_output);
    assert!(text(&text_output.stdout).contains("OK: the target holds exactly"), "{}", text(&text_output.stdout));

    // A record added to the target after the restore.
    let added = RefRecord { partition: Some(0), value: Some(b"late".to_vec()), ..RefRecord::default() };
    testkit::produce(&target, &copy, &[added], &[]);
    let (ok, report, stderr) = verify(&config);
    assert!(!ok && stderr.contains("1 of 2 target partitions differ"), "{stderr}");
    let added_check = check(&report, 0);
    assert_eq!((counts(added_check).2, counts(added_check).3), (0, 1), "{added_check}");
    assert!(added_check["first_difference"].as_str().unwrap().contains("follows the last expected record"));
    assert_eq!(counts(check(&report, 1)).2 + counts(check(&report, 1)).3, 0);

    // One value changed, in partition 1: one missing and one extra, named at its position.
    let mut changed = original.clone();
    let at = changed.iter().position(|r| r.partition == Some(1) && r.value.as_ref().is_some_and(|v| v.len() > 10));
    let at = at.unwrap();
    changed[at].value.as_mut().unwrap()[0] ^= 0x20;
    let position = changed[..at].iter().filter(|r| r.partition == Some(1)).count();
    let config = restore_config(dir.path(), "changed", &topic, &written_by_hand(&changed), "");
    let (ok, report, _) = verify(&config);
    assert!(!ok);
    let changed_check = check(&report, 1);
    assert_eq!((counts(changed_check).2, counts(changed_check).3), (1, 1), "{changed_check}");
    let difference = changed_check["first_difference"].as_str().unwrap();
    assert!(difference.starts_with(&format!("record {position}: ")), "{difference}");
    assert!(check(&report, 0)["first_difference"].is_null(), "{report}");

    // One record missing (the third of partition 0).
    let third = original.iter().enumerate().filter(|(_, r)| r.partition == Some(0)).nth(2).unwrap().0;
    let mut missing = original.clone();
    missing.remove(third);
    let config = restore_config(dir.path(), "missing", &topic, &written_by_hand(&missing), "");
    let (ok, report, _) = verify(&config);
    assert!(!ok);
    let missing_check = check(&report, 0);
    let expected = counts(missing_check).0;
    assert_eq!(counts(missing_check), (expected, expected - 1, 1, 0), "{missing_check}");
    assert!(missing_check["first_difference"].as_str().unwrap().starts_with("record 2: "), "{missing_check}");

    // A target topic that does not exist: everything missing.
    let config = restore_config(dir.path(), "absent", &topic, &unique("never-restored"), "");
    let (ok, report, _) = verify(&config);
    assert!(!ok && report["partitions"][0]["first_difference"].as_str().unwrap().contains("does not exist"));
}

#[test]
fn verify_compares_a_topic_restored_by_key_as_a_whole() {
    let source = KafkaCluster::source().bootstrap();
    let target = KafkaCluster::target().bootstrap();
    let (topic, _group, original) = fidelity_topic_with_group(&source);
    let dir = TempDir::new().unwrap();
    assert_success(&backup(&write_config(dir.path(), &source, "verified", &topic, "")));
    let rekeyed = unique("verified-rekeyed");
    testkit::create_topic(&target, &rekeyed, 3, testkit::FIDELITY_TOPIC_CONFIGS);
    let config = restore_config(dir.path(), "rekeyed", &topic, &rekeyed, "  repartition: true\n");
    assert_success(&restore(&config, &[]));
    let (ok, report, stderr) = verify(&config);
    assert!(ok, "{report} {stderr}");
    let whole = &report["partitions"][0];
    assert!(whole["target_partition"].is_null(), "{whole}");
    assert_eq!(counts(whole), (original.len() as u64, original.len() as u64, 0, 0));
}
