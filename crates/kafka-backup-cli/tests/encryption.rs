//! Encrypted backups end to end: a backup of the Apache Kafka "source" cluster with
//! `storage.encryption`, restored and three-phase restored into the "target" cluster and compared
//! with confluent-kafka; no stored object holds a record's key, value or the topic name; a wrong
//! or missing key is named; altered and swapped segments are found; keys rotate; a killed
//! encrypted backup on S3 resumes exactly once.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use kafka_backup_testkit::{self as testkit, unique, KafkaCluster, RefRecord, StoreEmulator, StoreKind};
use tempfile::TempDir;

/// base64 of 32 bytes of 0x07, 0x08 and 0x09: three AES-256 keys.
const KEY_A: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";
const KEY_B: &str = "CAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAg=";
const KEY_C: &str = "CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk=";

fn key_file(dir: &Path, name: &str, key: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("{key}\n")).unwrap();
    path
}

/// The `storage:` section of `dir/store`, encrypted with the key in `key_file`.
fn encrypted_storage(dir: &Path, key_file: &Path) -> String {
    format!(
        "  backend: filesystem\n  path: {}\n  encryption:\n    key_file: {}\n",
        dir.join("store").display(),
        key_file.display()
    )
}

/// Byte strings of the records (keys and values of 5 bytes or more) and the topic name.
fn known_contents(records: &[RefRecord], topic: &str) -> Vec<Vec<u8>> {
    let mut known: Vec<Vec<u8>> = records
        .iter()
        .flat_map(|r| [r.key.clone(), r.value.clone()])
        .flatten()
        .filter(|bytes| bytes.len() >= 5)
        .collect();
    known.push(topic.as_bytes().to_vec());
    known.sort();
    known.dedup();
    known
}

#[test]
fn an_encrypted_backup_restores_exactly_and_no_stored_object_holds_its_contents() {
    let (source, target) = (KafkaCluster::source().bootstrap(), KafkaCluster::target().bootstrap());
    let (topic, group, original) = fidelity_topic_with_group(&source);
    let dir = TempDir::new().unwrap();
    let key = key_file(dir.path(), "key-a", KEY_A);
    let storage = encrypted_storage(dir.path(), &key);
    // No compression: without encryption the values would be stored as they are.
    let config = write_config_on(dir.path(), &storage, &source, "secret", &topic, "  compression: none\n");
    let output = backup(&config);
    assert_success(&output);
    let summary = text(&output.stdout);
    assert!(summary.contains("encrypted (AES-256-GCM) with the key of id sha256:"), "{summary}");

    // Restore, then three-phase restore with the group's offsets (restore state, offset maps and
    // reset records are written into the backup too), and compare with confluent-kafka.
    let copy = unique("secret-copy");
    let settings = format!("  topic_mapping:\n    {topic}: {copy}\n");
    assert_success(&restore(&write_restore_config_on(dir.path(), &storage, "copy", &target, "secret", &settings), &[]));
    assert_eq!(testkit::consume(&target, &copy, &[0, 1]), original, "restored record by record");
    let recovered = unique("secret-dr");
    let settings = format!("  topic_mapping:\n    {topic}: {recovered}\n");
    let dr = write_restore_config_on(dir.path(), &storage, "dr", &target, "secret", &settings);
    assert_success(&run(&["three-phase-restore", "--config", dr.to_str().unwrap()]));
    assert_eq!(testkit::consume(&target, &recovered, &[0, 1]), original);
    assert_eq!(testkit::committed(&target, &group, &recovered, &[0, 1]), [(0, 7), (1, 24)].into());

    // Every stored object but the wrapped data key is sealed, and none holds a key, a value or
    // the topic name; the data key record holds neither the key nor its text.
    let known = known_contents(&original, &topic);
    let files = testkit::files_under(&dir.path().join("store"));
    assert!(files.len() > 10, "{} objects", files.len());
    for (path, bytes) in &files {
        if path.ends_with("encryption.json") {
            let record = String::from_utf8_lossy(bytes);
            assert!(record.contains("\"key_id\": \"sha256:") && !record.contains(KEY_A), "{record}");
            continue;
        }
        assert!(bytes.starts_with(b"KBE1"), "{} is not encrypted", path.display());
        for content in &known {
            let found = bytes.windows(content.len()).any(|window| window == content.as_slice());
            assert!(!found, "{} holds {:?}", path.display(), String::from_utf8_lossy(content));
        }
    }

    // Reading needs the key: without it, and with another one, the commands name the key id.
    let store = store_path(dir.path());
    let described = run(&["describe", "--config", config.to_str().unwrap(), "--backup-id", "secret"]);
    assert_success(&described);
    let described = text(&described.stdout);
    let line = described.lines().find(|l| l.contains("encryption:")).expect("an encryption line");
    assert!(line.contains("AES-256-GCM") && !line.contains(KEY_A), "{line}");
    let key_id = line.rsplit(' ').next().unwrap().to_string();
    assert!(key_id.starts_with("sha256:"), "{line}");
    let other_key = key_file(dir.path(), "key-b", KEY_B);
    for extra in [vec![], vec!["--encryption-key-file", other_key.to_str().unwrap()]] {
        let mut args = vec!["describe", "--path", &store, "--backup-id", "secret"];
        args.extend(extra.iter().copied());
        let refused = run(&args);
        assert!(!refused.status.success(), "{}", text(&refused.stdout));
        let stderr = text(&refused.stderr);
        assert!(stderr.contains(&key_id) && stderr.contains("--encryption-key-file"), "{stderr}");
    }
    let listed = run(&["list", "--path", &store, "--format", "json"]);
    assert_success(&listed);
    let rows: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(rows[0]["backup_id"], "secret");
    assert_eq!(
        (rows[0]["encryption_key_id"].as_str(), rows[0]["locked"].as_bool()),
        (Some(key_id.as_str()), Some(true))
    );
    let wrong = write_restore_config_on(
        dir.path(),
        &encrypted_storage(dir.path(), &other_key),
        "wrong",
        &target,
        "secret",
        &format!("  topic_mapping:\n    {topic}: {}\n", unique("never")),
    );
    let refused = restore(&wrong, &[]);
    assert!(!refused.status.success());
    assert!(text(&refused.stderr).contains(&key_id), "{}", text(&refused.stderr));
    // The key from an environment variable opens it too.
    let deep = binary()
        .args(["validate", "--path", &store, "--backup-id", "secret", "--deep", "--encryption-key-env", "TEST_KEY"])
        .env("TEST_KEY", KEY_A)
        .output()
        .unwrap();
    assert_success(&deep);
}

/// A topic whose records land in several segments of one partition.
fn several_segments(source: &str) -> (String, Vec<RefRecord>) {
    let topic = unique("sealed");
    testkit::create_topic(source, &topic, 1, &[]);
    let records = testkit::incompressible_records(0, 400);
    testkit::produce(source, &topic, &records, &[("linger.ms", "5"), ("batch.num.messages", "20")]);
    let original = testkit::consume(source, &topic, &[0]);
    assert_eq!(original.len(), 400);
    (topic, original)
}

fn segment_files(store: &Path, backup_id: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = testkit::files_under(&store.join(backup_id))
        .into_iter()
        .map(|(path, _)| path)
        .filter(|path| path.to_string_lossy().contains("/segment-") && !path.to_string_lossy().ends_with(".json"))
        .collect();
    files.sort();
    files
}

#[test]
fn altered_and_swapped_segments_are_found_and_rotated_keys_keep_old_backups_readable() {
    let source = KafkaCluster::source().bootstrap();
    let (topic, original) = several_segments(&source);
    let dir = TempDir::new().unwrap();
    let key_a = key_file(dir.path(), "key-a", KEY_A);
    let small_segments = "  compression: none\n  segment_max_bytes: 100000\n";
    let old =
        write_config_on(dir.path(), &encrypted_storage(dir.path(), &key_a), &source, "old", &topic, small_segments);
    assert_success(&backup(&old));

    // Rotation: key C is the primary now, key A an additional key for the old backups.
    let key_c = key_file(dir.path(), "key-c", KEY_C);
    let rotated = format!(
        "  backend: filesystem\n  path: {}\n  encryption:\n    key_file: {}\n    key_id: 2026-q4\n    \
         additional_keys:\n      - key_file: {}\n",
        dir.path().join("store").display(),
        key_c.display(),
        key_a.display()
    );
    let new = write_config_on(dir.path(), &rotated, &source, "new", &topic, small_segments);
    let output = backup(&new);
    assert_success(&output);
    assert!(text(&output.stdout).contains("with the key of id 2026-q4"), "{}", text(&output.stdout));
    for backup_id in ["old", "new"] {
        assert_eq!(records_in_store(&store_of(&new), backup_id, &topic), original, "{backup_id} opens after rotation");
    }
    // Resuming the old backup with the rotated config keeps its own key.
    assert_success(&backup(&write_config_on(dir.path(), &rotated, &source, "old", &topic, small_segments)));

    let store = dir.path().join("store");
    let validate_deep =
        |backup_id: &str| run(&["validate", "--config", new.to_str().unwrap(), "--backup-id", backup_id, "--deep"]);
    assert_success(&validate_deep("old"));
    // One flipped byte in the middle of a segment of "old".
    let segments = segment_files(&store, "old");
    assert!(segments.len() >= 3, "{segments:?}");
    let mut bytes = std::fs::read(&segments[1]).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&segments[1], bytes).unwrap();
    let found = validate_deep("old");
    assert!(!found.status.success());
    let report = text(&found.stdout) + &text(&found.stderr);
    let name = segments[1].file_name().unwrap().to_string_lossy().to_string();
    assert!(report.contains(&name) && report.contains("authentication"), "{report}");
    // Without the key: lengths and committed segments only (the flipped byte needs the key).
    let store_arg = store.display().to_string();
    let keyless = || run(&["validate", "--path", &store_arg, "--backup-id", "old"]);
    let passed = keyless();
    assert_success(&passed);
    assert!(text(&passed.stdout).contains("keyless"), "{}", text(&passed.stdout));
    // A cut that leaves a length no encrypted object has (10 bytes into a chunk: less than its
    // tag); a cut elsewhere in the last chunk needs the key to be seen.
    let cut = &segments[2];
    let bytes = std::fs::read(cut).unwrap();
    let into_last_chunk = (bytes.len() - 36) % 65_552;
    let keep = bytes.len() - into_last_chunk + 10 - if into_last_chunk > 10 { 0 } else { 65_552 };
    std::fs::write(cut, &bytes[..keep]).unwrap();
    std::fs::remove_file(&segments[0]).unwrap();
    let found = keyless();
    assert!(!found.status.success());
    let report = text(&found.stdout);
    for (segment, says) in [(cut, "not a sealed length"), (&segments[0], "missing")] {
        let start = segment.file_name().unwrap().to_string_lossy()[..28].to_string();
        assert!(report.lines().any(|l| l.contains(&start) && l.contains(says)), "{start} {says}: {report}");
    }
    // Two segments of "new" swapped: each is bound to its own key.
    let segments = segment_files(&store, "new");
    let swap = dir.path().join("swap");
    std::fs::rename(&segments[0], &swap).unwrap();
    std::fs::rename(&segments[1], &segments[0]).unwrap();
    std::fs::rename(&swap, &segments[1]).unwrap();
    let found = validate_deep("new");
    assert!(!found.status.success());
    let report = text(&found.stdout) + &text(&found.stderr);
    for segment in &segments[..2] {
        assert!(report.contains(&*segment.file_name().unwrap().to_string_lossy()), "{report}");
    }
    // A backup started without encryption is not continued with it.
    let plain_storage = format!("  backend: filesystem\n  path: {}\n", store.display());
    assert_success(&backup(&write_config_on(dir.path(), &plain_storage, &source, "plain", &topic, "")));
    let refused = backup(&write_config_on(dir.path(), &rotated, &source, "plain", &topic, ""));
    assert!(!refused.status.success());
    assert!(text(&refused.stderr).contains("written without encryption"), "{}", text(&refused.stderr));
}

#[test]
fn an_encrypted_backup_on_s3_killed_mid_run_resumes_exactly_once() {
    let source = KafkaCluster::source().bootstrap();
    let emulator = StoreEmulator::start(StoreKind::S3);
    let (topic, original) = many_segments(&source, 3000);
    let dir = TempDir::new().unwrap();
    let key = key_file(dir.path(), "key", KEY_A);
    let storage = format!("{}  encryption:\n    key_file: {}\n", emulator.storage_yaml("enc"), key.display());
    let settings = "  segment_max_bytes: 65536\n  checkpoint_interval_secs: 1\n";
    let config = write_config_on(dir.path(), &storage, &source, "killed", &topic, settings);
    let store = store_of(&config);
    let mut child = backup_under_way(&store, &config, "killed");
    child.kill().unwrap();
    child.wait().unwrap();
    assert_success(&backup(&config));
    let url = emulator.url("enc");
    let validate = |args: &[&str]| {
        let mut all = vec!["validate", "--path", url.as_str(), "--backup-id", "killed", "--deep"];
        all.extend_from_slice(args);
        binary().args(&all).envs(emulator.env()).output().unwrap()
    };
    assert_success(&validate(&["--encryption-key-file", key.to_str().unwrap()]));
    assert!(!validate(&[]).status.success(), "no key, no deep validation");
    assert_eq!(records_in_store(&store_of(&config), "killed", &topic), original, "every record exactly once");
}
