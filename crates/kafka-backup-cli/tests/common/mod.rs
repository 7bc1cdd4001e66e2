//! Helpers shared by the CLI integration tests: running the binary, writing configs, reading
//! what a backup holds with the core reader, and waiting for conditions.
#![allow(dead_code)] // each test file uses a different subset

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use kafka_backup_core::manifest::BackupManifest;
use kafka_backup_core::records::TimestampType;
use kafka_backup_core::segment::read_segment;
use kafka_backup_core::storage::BackupStore;
use kafka_backup_testkit::RefRecord;

pub fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kafka-backup"))
}

pub fn run(args: &[&str]) -> Output {
    binary().args(args).output().expect("run kafka-backup")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Writes a backup config into `dir` and returns its path.
pub fn write_config(dir: &Path, bootstrap: &str, backup_id: &str, include: &str, backup: &str) -> PathBuf {
    let path = dir.join(format!("{backup_id}.yaml"));
    let yaml = format!(
        "mode: backup\nbackup_id: {backup_id}\nsource:\n  bootstrap_servers: [\"{bootstrap}\"]\n  topics:\n    include: [\"{include}\"]\n\
         storage:\n  backend: filesystem\n  path: {}\nbackup:\n{backup}",
        dir.join("store").display()
    );
    std::fs::write(&path, yaml).unwrap();
    path
}

pub fn backup(config: &Path) -> Output {
    run(&["backup", "--config", config.to_str().unwrap()])
}

pub fn assert_success(output: &Output) {
    assert!(
        output.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        output.status,
        text(&output.stdout),
        text(&output.stderr)
    );
}

pub fn store_path(dir: &Path) -> String {
    dir.join("store").display().to_string()
}

/// Every record in the backup, decoded by our reader, as the reference client would show it.
pub fn backed_up_records(dir: &Path, backup_id: &str, topic: &str) -> Vec<RefRecord> {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = BackupStore::existing_directory(&dir.join("store")).unwrap().child(backup_id);
        let manifest = BackupManifest::load(&store).await.unwrap().expect("backup exists");
        let mut records = Vec::new();
        for partition in &manifest.topic(topic).expect("topic in backup").partitions {
            for segment in &partition.segments {
                for batch in read_segment(&store.get(&segment.key).await.unwrap()).unwrap() {
                    let timestamp_type = match batch.timestamp_type() {
                        TimestampType::CreateTime => "create_time",
                        TimestampType::LogAppendTime => "log_append_time",
                    };
                    for record in batch.records().unwrap() {
                        records.push(RefRecord {
                            partition: Some(partition.partition),
                            offset: Some(record.offset),
                            key: record.key.map(|k| k.to_vec()),
                            value: record.value.map(|v| v.to_vec()),
                            headers: record
                                .headers
                                .into_iter()
                                .map(|h| (String::from_utf8(h.key.to_vec()).unwrap(), h.value.map(|v| v.to_vec())))
                                .collect(),
                            timestamp: Some(record.timestamp),
                            timestamp_type: Some(timestamp_type.into()),
                        });
                    }
                }
            }
        }
        records
    })
}

pub fn describe_json(dir: &Path, backup_id: &str) -> serde_json::Value {
    let output = run(&["describe", "--path", &store_path(dir), "--backup-id", backup_id, "--format", "json"]);
    assert_success(&output);
    serde_json::from_slice(&output.stdout).expect("describe --format json is JSON")
}

pub fn validate(dir: &Path, backup_id: &str, deep: bool) -> Output {
    let path = store_path(dir);
    let mut args = vec!["validate", "--path", path.as_str(), "--backup-id", backup_id];
    if deep {
        args.push("--deep");
    }
    run(&args)
}

/// Commit records (segment metadata objects) written so far under `dir`'s store.
pub fn committed_segments(dir: &Path) -> usize {
    let mut count = 0;
    let mut stack = vec![dir.join("store")];
    while let Some(folder) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(folder) else { continue };
        for path in entries.map(|e| e.unwrap().path()) {
            if path.is_dir() {
                stack.push(path);
            } else if path.file_name().unwrap().to_string_lossy().starts_with("segment-")
                && path.extension().unwrap() == "json"
            {
                count += 1;
            }
        }
    }
    count
}

pub fn wait_for(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn terminate(child: &Child) {
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
}

/// Writes a restore config (backup `backup_id` from `dir`'s store into `bootstrap`).
pub fn write_restore_config(dir: &Path, name: &str, bootstrap: &str, backup_id: &str, restore: &str) -> PathBuf {
    let path = dir.join(format!("{name}.yaml"));
    let yaml = format!(
        "mode: restore\nbackup_id: {backup_id}\ntarget:\n  bootstrap_servers: [\"{bootstrap}\"]\n\
         storage:\n  backend: filesystem\n  path: {}\nrestore:\n{restore}",
        dir.join("store").display()
    );
    std::fs::write(&path, yaml).unwrap();
    path
}

/// Runs `kafka-backup restore --config FILE` plus extra arguments.
pub fn restore(config: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["restore", "--config", config.to_str().unwrap()];
    args.extend_from_slice(extra);
    run(&args)
}
