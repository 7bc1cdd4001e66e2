//! Helpers shared by the CLI integration tests: running the binary, writing configs, reading
//! what a backup holds with the core reader, and waiting for conditions.
#![allow(dead_code)] // each test file uses a different subset

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long a wait may last before the test calls it a hang: generous, so that only a hang (never
/// a slow machine) fails a test; no test asserts how fast anything is.
pub const HANG: Duration = Duration::from_secs(120);

use kafka_backup_core::backup::BackupConfig;
use kafka_backup_core::manifest::BackupManifest;
use kafka_backup_core::records::TimestampType;
use kafka_backup_core::segment::read_segment;
use kafka_backup_core::storage::BackupStore;
use kafka_backup_testkit::{self as testkit, unique, RefRecord};
use tempfile::TempDir;

pub fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kafka-backup"))
}

/// Starts `kafka-backup` with `args`, its output piped (or discarded with `quiet`).
pub fn spawn(args: &[&str], quiet: bool) -> Child {
    let output = || if quiet { Stdio::null() } else { Stdio::piped() };
    binary().args(args).stdout(output()).stderr(output()).spawn().expect("start kafka-backup")
}

pub fn run(args: &[&str]) -> Output {
    binary().args(args).output().expect("run kafka-backup")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// `host:port,host:port` as a YAML list.
fn yaml_servers(bootstrap: &str) -> String {
    let quoted: Vec<String> = bootstrap.split(',').map(|server| format!("\"{server}\"")).collect();
    format!("[{}]", quoted.join(", "))
}

/// Writes a backup config into `dir` and returns its path.
pub fn write_config(dir: &Path, bootstrap: &str, backup_id: &str, include: &str, backup: &str) -> PathBuf {
    write_config_on(dir, &filesystem_storage(dir), bootstrap, backup_id, include, backup)
}

/// The `storage:` section of a store in `dir/store`.
fn filesystem_storage(dir: &Path) -> String {
    format!("  backend: filesystem\n  path: {}\n", dir.join("store").display())
}

/// Like [`write_config`], with the `storage:` section given (YAML lines indented by two).
pub fn write_config_on(
    dir: &Path,
    storage: &str,
    bootstrap: &str,
    backup_id: &str,
    include: &str,
    backup: &str,
) -> PathBuf {
    let path = dir.join(format!("{backup_id}.yaml"));
    let yaml = format!(
        "mode: backup\nbackup_id: {backup_id}\nsource:\n  bootstrap_servers: {}\n  topics:\n    include: [\"{include}\"]\n\
         storage:\n{storage}backup:\n{backup}",
        yaml_servers(bootstrap),
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
    let records = backed_up_records_if_any(dir, backup_id, topic);
    assert!(!records.is_empty() || backup_exists(dir, backup_id), "backup {backup_id} does not exist");
    records
}

fn backup_exists(dir: &Path, backup_id: &str) -> bool {
    dir.join("store").join(backup_id).join("manifest.json").exists()
}

/// The records committed so far in the backup (none while it has no manifest or no such topic).
pub fn backed_up_records_if_any(dir: &Path, backup_id: &str, topic: &str) -> Vec<RefRecord> {
    let Ok(root) = BackupStore::existing_directory(&dir.join("store")) else { return Vec::new() };
    records_in_store(&root, backup_id, topic)
}

/// The records committed so far in backup `backup_id` under `root`, decoded by our reader.
pub fn records_in_store(root: &BackupStore, backup_id: &str, topic: &str) -> Vec<RefRecord> {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = root.child(backup_id);
        let Some(manifest) = BackupManifest::load(&store).await.unwrap() else { return Vec::new() };
        let Some(backed_up) = manifest.topic(topic) else { return Vec::new() };
        let mut records = Vec::new();
        for partition in &backed_up.partitions {
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

/// Files under `dir`'s store whose path satisfies `wanted`.
pub fn count_store_files(dir: &Path, wanted: impl Fn(&Path) -> bool) -> usize {
    let mut count = 0;
    let mut stack = vec![dir.join("store")];
    while let Some(folder) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(folder) else { continue };
        for path in entries.map(|e| e.unwrap().path()) {
            if path.is_dir() {
                stack.push(path);
            } else if wanted(&path) {
                count += 1;
            }
        }
    }
    count
}

/// Staging files (`NAME#DIGITS`, the filesystem backend's before its rename) under `dir`'s store.
pub fn staging_files(dir: &Path) -> usize {
    count_store_files(dir, |path| {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        name.rsplit_once('#').is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    })
}

/// Commit records (segment metadata objects) written so far under `dir`'s store.
pub fn committed_segments(dir: &Path) -> usize {
    count_store_files(dir, |path| {
        path.file_name().unwrap().to_string_lossy().starts_with("segment-") && path.extension().unwrap() == "json"
    })
}

/// The segment object files of `topic`-`partition` in backup `backup_id`.
pub fn segment_files(dir: &Path, backup_id: &str, topic: &str, partition: i32) -> Vec<PathBuf> {
    let folder = dir.join(format!("store/{backup_id}/topics/{topic}/partition={partition}"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(folder)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("segment-"))
        .filter(|p| p.extension().is_some_and(|e| e != "json"))
        .collect();
    files.sort();
    files
}

/// Files of restore state (started records and per-segment commits) written under `dir`'s store.
pub fn restore_state_files(dir: &Path) -> usize {
    count_store_files(dir, |path| path.to_string_lossy().contains("/restores/"))
}

/// Waits until `condition` holds; panics naming `what` after `timeout` (use [`HANG`]).
pub fn wait_for(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends `signal` (`-TERM`, `-INT`) to `child`.
pub fn send_signal(child: &Child, signal: &str) {
    let status = Command::new("kill").args([signal, &child.id().to_string()]).status().unwrap();
    assert!(status.success());
}

/// Waits for `child` to exit and collects its output; kills it and panics after `timeout`.
pub fn wait_with_deadline(mut child: Child, timeout: Duration) -> Output {
    let deadline = Instant::now() + timeout;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("kafka-backup did not exit within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// The records without their offsets (offsets differ when markers or gaps were not restored).
pub fn without_offsets(records: &[RefRecord]) -> Vec<RefRecord> {
    records.iter().map(|r| RefRecord { offset: None, ..r.clone() }).collect()
}

/// Writes a restore config (backup `backup_id` from `dir`'s store into `bootstrap`).
pub fn write_restore_config(dir: &Path, name: &str, bootstrap: &str, backup_id: &str, restore: &str) -> PathBuf {
    write_restore_config_on(dir, &filesystem_storage(dir), name, bootstrap, backup_id, restore)
}

/// Like [`write_restore_config`], with the `storage:` section given (YAML lines indented by two).
pub fn write_restore_config_on(
    dir: &Path,
    storage: &str,
    name: &str,
    bootstrap: &str,
    backup_id: &str,
    restore: &str,
) -> PathBuf {
    let path = dir.join(format!("{name}.yaml"));
    let yaml = format!(
        "mode: restore\nbackup_id: {backup_id}\ntarget:\n  bootstrap_servers: {}\n\
         storage:\n{storage}restore:\n{restore}",
        yaml_servers(bootstrap),
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

/// A topic of two partitions holding the fidelity records, and a group committed on it.
pub fn fidelity_topic_with_group(source: &str) -> (String, String, Vec<RefRecord>) {
    let topic = unique("stored");
    testkit::create_topic(source, &topic, 2, testkit::FIDELITY_TOPIC_CONFIGS);
    let mut records = testkit::fidelity_records(0);
    records.extend(testkit::fidelity_records(1));
    testkit::produce(source, &topic, &records, &[("compression.type", "lz4"), ("linger.ms", "50")]);
    let group = unique("reader");
    testkit::commit(source, &group, &[(&topic, 0, 7), (&topic, 1, 24)]);
    let original = testkit::consume(source, &topic, &[0, 1]);
    assert_eq!(original.len(), records.len());
    (topic, group, original)
}

/// A topic of `count` records of 1 KiB: with small segments, hundreds of objects to store.
pub fn many_segments(source: &str, count: usize) -> (String, Vec<RefRecord>) {
    let topic = unique("faulty");
    testkit::create_topic(source, &topic, 1, &[]);
    let records: Vec<RefRecord> = (0..count)
        .map(|i| RefRecord {
            partition: Some(0),
            key: Some(format!("key-{i}").into_bytes()),
            value: Some(format!("{i:08}").into_bytes().repeat(128)),
            ..RefRecord::default()
        })
        .collect();
    testkit::produce(source, &topic, &records, &[("linger.ms", "5"), ("batch.num.messages", "50")]);
    let original = testkit::consume(source, &topic, &[0]);
    assert_eq!(original.len(), count);
    (topic, original)
}

/// Starts `backup --config CONFIG` and waits until it has committed a first segment.
pub fn backup_under_way(store: &BackupStore, config: &std::path::Path, backup_id: &str) -> std::process::Child {
    let mut child = spawn(&["backup", "--config", config.to_str().unwrap()], false);
    wait_for("a first committed segment", HANG, || {
        assert!(child.try_wait().unwrap().is_none(), "the backup ended before its first segment was seen");
        committed_segments_in(store, backup_id) > 0
    });
    child
}

/// Commit records of segments in backup `backup_id` so far.
pub fn committed_segments_in(store: &BackupStore, backup_id: &str) -> usize {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let listed = runtime.block_on(store.list(&format!("{backup_id}/topics"))).unwrap();
    listed.iter().filter(|object| object.key.ends_with(".json")).count()
}

/// The store a backup config names, opened as `list` opens it (with the config's keys).
pub fn store_of(config: &Path) -> BackupStore {
    let config = BackupConfig::load(config).unwrap();
    BackupStore::open_existing(&config.location.store.storage).unwrap().with_encryption(config.location.store.keyring)
}

/// Backs up 3000 records of `source` (keys, null keys, several headers with a duplicate key and a
/// null value) and restores them into `target`, killing the restore at several points, then lets
/// it finish; returns the source records, the target records and the last run's output. A killed
/// run's staged state files must be gone after the last run.
pub fn restore_with_kills(
    source: &str,
    target: &str,
    restore_settings: &str,
    target_partitions: Option<i32>,
) -> (Vec<RefRecord>, Vec<RefRecord>, String) {
    let ledger = unique("ledger");
    testkit::create_topic(source, &ledger, 2, &[]);
    let records: Vec<RefRecord> = (0..3000)
        .map(|i| RefRecord {
            partition: Some(i % 2),
            key: (i % 7 != 0).then(|| format!("entry-{}", i % 101).into_bytes()),
            value: Some(format!("{i:06}{}", ".".repeat(494)).into_bytes()),
            headers: testkit::sample_headers(i as usize),
            ..RefRecord::default()
        })
        .collect();
    testkit::produce(source, &ledger, &records, &[("linger.ms", "5"), ("batch.num.messages", "20")]);
    let original = testkit::consume(source, &ledger, &[0, 1]);
    let dir = TempDir::new().unwrap();
    assert_success(&backup(&write_config(dir.path(), source, "big", &ledger, "  segment_max_bytes: 20000\n")));
    if let Some(count) = target_partitions {
        testkit::create_topic(target, &ledger, count, &[]);
    }
    // Throttled so that each run has restored some segments, and not all, when it is killed: the
    // kill waits for the event "one more segment's restore committed", then lands a little later
    // each round. A run that ends before its event is not a kill.
    let settings = format!("  rate_limit_bytes_per_sec: 300000\n{restore_settings}");
    let config = write_restore_config(dir.path(), "slow", target, "big", &settings);
    let mut kills = 0;
    for round in 0..5u64 {
        let before = restore_state_files(dir.path());
        let mut child = spawn(&["restore", "--config", config.to_str().unwrap()], true);
        wait_for("a restored segment's commit", HANG, || {
            child.try_wait().unwrap().is_some() || restore_state_files(dir.path()) > before + 1
        });
        std::thread::sleep(std::time::Duration::from_millis(round * 53));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            kills += 1;
        } else {
            let status = child.wait().unwrap();
            assert!(status.success(), "restore run {round} failed ({status}) before it could be killed");
        }
        child.wait().unwrap();
    }
    assert!(kills >= 3, "the restore finished before it committed a segment ({kills} kills)");
    let partitions: Vec<i32> = (0..target_partitions.unwrap_or(2)).collect();
    let partial = testkit::consume(target, &ledger, &partitions);
    assert!(!partial.is_empty() && partial.len() < original.len(), "the killed runs wrote {} records", partial.len());
    // What a kill between staging a state file and renaming it into place leaves (the runs above
    // leave some or none, depending on where their kills fell).
    let clusters = dir.path().join("store/big/restores");
    let cluster = std::fs::read_dir(clusters).unwrap().next().unwrap().unwrap().path();
    let state = cluster.join(&ledger).join(if target_partitions.is_some() { "repartitioned" } else { "partition=0" });
    std::fs::write(state.join("p0-segment-00000000000000999999.json#3"), b"{\"half\": ").unwrap();
    let last = restore(&config, &[]);
    assert_success(&last);
    let restored = testkit::consume(target, &ledger, &partitions);
    assert_eq!(staging_files(dir.path()), 0, "the killed runs' staged restore state is cleaned");
    (original, restored, text(&last.stdout))
}

/// `GET path` on 127.0.0.1:`port`: the status code and the body.
pub fn get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    let status = answer.split(' ').nth(1)?.parse().ok()?;
    let body = answer.split_once("\r\n\r\n")?.1.to_string();
    Some((status, body))
}

/// The value of the sample of the exposition text `metrics` named `name` whose labels include
/// `labels` (`key="value"` each), if there is one.
pub fn metric_value(metrics: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
        let wanted = metric == name && labels.iter().all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
        wanted.then(|| value.parse().ok()).flatten()
    })
}

/// The sum of every series of metric `name` carrying `labels` (0 when there is none).
pub fn metric_sum(metrics: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    metrics
        .lines()
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
            let wanted = metric == name && labels.iter().all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
            wanted.then(|| value.parse::<f64>().ok()).flatten()
        })
        .sum()
}

/// Starts a backup of `topic` into `dir` as backup `id` (`settings` under `backup:`) with its
/// metrics endpoint on a free port; returns the process (output piped) and the port.
pub fn backup_with_metrics(dir: &Path, bootstrap: &str, id: &str, topic: &str, settings: &str) -> (Child, u16) {
    let port = testkit::free_port();
    let config = write_config(dir, bootstrap, id, topic, settings);
    let with_metrics = std::fs::read_to_string(&config).unwrap() + &format!("metrics:\n  listen: 127.0.0.1:{port}\n");
    std::fs::write(&config, with_metrics).unwrap();
    (spawn(&["backup", "--config", config.to_str().unwrap()], false), port)
}

/// Waits until each broker of `bootstrap` (asked on its own) names a leader for every one of the
/// `partitions` of `topic`: a new topic reaches the brokers' metadata one after another.
pub fn wait_until_every_broker_knows(bootstrap: &str, topic: &str, partitions: i32) {
    let led_by = |node: &str| testkit::describe_topic(node, topic).iter().filter(|(_, leader, _)| *leader > 0).count();
    wait_for("every broker to know the new topic's leaders", HANG, || {
        bootstrap.split(',').all(|node| led_by(node) == partitions as usize)
    });
}
