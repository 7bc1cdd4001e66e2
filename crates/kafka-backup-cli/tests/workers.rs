//! Several processes sharing one continuous backup through Kafka's group coordinator, on the
//! 3-node Apache Kafka cluster: partitions spread over the workers and move when one is killed,
//! added, or paused past its session timeout (that one loses them cleanly); the backup equals the
//! source record for record (confluent-kafka), `validate --deep` passes and no segment overlaps
//! another. With static membership a restarted worker gets its partitions back without a rebalance;
//! `source.progress_group` shows the backup's position as a consumer group's committed offsets.
//! Three workers share a restore through a kill and a pause past the session timeout: the target
//! equals the source record for record (confluent-kafka), the moved partitions' earlier writers fenced.
//! Two workers agree on one new incarnation of a topic deleted and re-created under them.

mod common;

use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use kafka_backup_testkit::{self as testkit, unique, KafkaCluster, RefRecord};
use tempfile::TempDir;

const SESSION_TIMEOUT_MS: u64 = 6_000;

/// One worker process: its name, metrics port, log and output files.
struct Worker {
    name: String,
    port: u16,
    log: PathBuf,
    out: PathBuf,
    child: Option<Child>,
}

impl Worker {
    /// Starts a backup worker of group `group` with the config `config`; static with `instance`.
    fn start(dir: &Path, config: &Path, group: &str, name: &str, instance: bool) -> Self {
        Self::launch("backup", dir, config, group, name, instance)
    }

    /// Starts `command` (backup or restore) as a worker of group `group` with the config `config`.
    fn launch(command: &str, dir: &Path, config: &Path, group: &str, name: &str, instance: bool) -> Self {
        let port = testkit::free_port();
        let own = dir.join(format!("{name}.yaml"));
        let yaml = std::fs::read_to_string(config).unwrap() + &format!("metrics:\n  listen: 127.0.0.1:{port}\n");
        std::fs::write(&own, yaml).unwrap();
        let (log, out) = (dir.join(format!("{name}.log")), dir.join(format!("{name}.out")));
        let mut args = vec![command, "--config", own.to_str().unwrap(), "--group-id", group];
        if instance {
            args.extend(["--group-instance-id", name]);
        }
        let child = binary()
            .args(&args)
            .env("RUST_LOG", "info")
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start kafka-backup");
        Self { name: name.into(), port, log, out, child: Some(child) }
    }

    /// Waits for the worker to end on its own and checks that it succeeded; returns its output.
    fn finished(&mut self) -> String {
        let output = wait_with_deadline(self.child.take().expect("running"), HANG);
        assert!(output.status.success(), "worker {} failed: {}", self.name, self.log_text());
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    fn metrics(&self) -> String {
        get(self.port, "/metrics").map(|(_, body)| body).unwrap_or_default()
    }

    /// Partitions the worker holds now (0 while it cannot be asked).
    fn partitions(&self) -> usize {
        metric_sum(&self.metrics(), "kafka_backup_worker_partitions", &[]) as usize
    }

    fn generation(&self) -> i64 {
        metric_sum(&self.metrics(), "kafka_backup_worker_generation", &[]) as i64
    }

    fn signal(&self, signal: &str) {
        send_signal(self.child.as_ref().expect("running"), signal);
    }

    /// SIGTERMs the worker and checks that it exits successfully.
    fn stop(&mut self) {
        self.signal("-TERM");
        let output = wait_with_deadline(self.child.take().expect("running"), HANG);
        assert!(output.status.success(), "worker {} failed: {}", self.name, self.log_text());
    }

    fn kill(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            let log = self.log_text();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("--- worker {} (last lines) ---", self.name);
            for line in tail.into_iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

/// Waits until `workers` hold `partitions` between them, each at least one.
fn wait_until_shared(what: &str, workers: &[&Worker], partitions: usize) {
    wait_for(what, HANG, || {
        let held: Vec<usize> = workers.iter().map(|w| w.partitions()).collect();
        held.iter().all(|&n| n > 0) && held.iter().sum::<usize>() == partitions
    });
}

/// Produces to every partition of `topic` until `stop` turns true; returns how many it produced.
fn produce_until(
    bootstrap: String,
    topic: String,
    partitions: i32,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let mut produced = 0;
        let mut round = 0;
        while !stop.load(Ordering::Relaxed) {
            let records: Vec<RefRecord> = (0..partitions * 4)
                .map(|i| RefRecord {
                    partition: Some(i % partitions),
                    key: Some(format!("k-{i}").into_bytes()),
                    value: Some(format!("round-{round}-{i}").into_bytes()),
                    ..RefRecord::default()
                })
                .collect();
            testkit::produce(&bootstrap, &topic, &records, &[("acks", "all")]);
            produced += records.len();
            round += 1;
            std::thread::sleep(Duration::from_millis(300));
        }
        produced
    })
}

fn worker_config(dir: &Path, bootstrap: &str, id: &str, topic: &str, session_timeout_ms: u64) -> PathBuf {
    let settings = format!(
        "  continuous: true\n  segment_max_interval_ms: 1000\n  checkpoint_interval_secs: 1\n  \
         group_session_timeout_ms: {session_timeout_ms}\n  group_rebalance_timeout_ms: 30000\n  group_id: unused\n"
    );
    write_config(dir, bootstrap, id, topic, &settings)
}

/// Every partition's segments, from `describe`: none starts before the previous one ended.
fn assert_no_segment_overlaps(dir: &Path, backup_id: &str) {
    let manifest = describe_json(dir, backup_id);
    for topic in manifest["topics"].as_array().unwrap() {
        for partition in topic["partitions"].as_array().unwrap() {
            let mut previous_end = -1;
            for segment in partition["segments"].as_array().unwrap() {
                let (start, end) = (segment["start_offset"].as_i64().unwrap(), segment["end_offset"].as_i64().unwrap());
                assert!(
                    start > previous_end,
                    "partition {}: a segment at {start} overlaps one ending at {previous_end}",
                    partition["partition"]
                );
                previous_end = end;
            }
        }
    }
}

/// A new topic of `partitions` on the 3-node cluster, known to every broker: the bootstrap and name.
fn new_topic(prefix: &str, partitions: i32) -> (String, String) {
    let bootstrap = KafkaCluster::triple().bootstrap();
    let topic = unique(prefix);
    testkit::create_topic(&bootstrap, &topic, partitions, &[]);
    wait_until_every_broker_knows(&bootstrap, &topic, partitions);
    (bootstrap, topic)
}

#[test]
fn workers_share_a_backup_through_kills_joins_and_a_pause_past_the_session_timeout() {
    const PARTITIONS: i32 = 24;
    let (bootstrap, topic) = new_topic("shared", PARTITIONS);
    let stop_producing = Arc::new(AtomicBool::new(false));
    let producer = produce_until(bootstrap.clone(), topic.clone(), PARTITIONS, stop_producing.clone());

    let dir = TempDir::new().unwrap();
    let group = unique("workers");
    let config = worker_config(dir.path(), &bootstrap, "shared", &topic, SESSION_TIMEOUT_MS);
    let mut a = Worker::start(dir.path(), &config, &group, "worker-a", false);
    let mut b = Worker::start(dir.path(), &config, &group, "worker-b", false);
    let mut c = Worker::start(dir.path(), &config, &group, "worker-c", false);
    wait_until_shared("three workers to share the partitions", &[&a, &b, &c], PARTITIONS as usize);

    // A killed worker's partitions go to the others after its session timeout.
    a.kill();
    wait_until_shared("the two others to take the killed worker's partitions", &[&b, &c], PARTITIONS as usize);
    // A new worker takes its share.
    let mut d = Worker::start(dir.path(), &config, &group, "worker-d", false);
    wait_until_shared("the new worker to take a share", &[&b, &c, &d], PARTITIONS as usize);
    // A worker paused past its session timeout is removed; continued, it must lose its partitions
    // cleanly (its late commits refused, nothing overwritten) and then rejoin.
    b.signal("-STOP");
    std::thread::sleep(Duration::from_millis(SESSION_TIMEOUT_MS + 2_000));
    wait_until_shared("the running workers to take the paused one's partitions", &[&c, &d], PARTITIONS as usize);
    b.signal("-CONT");
    wait_until_shared("the continued worker to rejoin", &[&b, &c, &d], PARTITIONS as usize);

    stop_producing.store(true, Ordering::Relaxed);
    let produced = producer.join().unwrap();
    let all: Vec<i32> = (0..PARTITIONS).collect();
    let original = testkit::consume(&bootstrap, &topic, &all);
    assert_eq!(original.len(), produced);
    wait_for("every record to be backed up", HANG, || {
        backed_up_records_if_any(dir.path(), "shared", &topic).len() >= original.len()
    });
    let lost: f64 =
        [&b, &c, &d].iter().map(|w| metric_sum(&w.metrics(), "kafka_backup_worker_partitions_lost_total", &[])).sum();
    // `describe` shows who holds what, in which generation.
    let described = describe_json(dir.path(), "shared");
    let boards = described["workers"].as_array().expect("describe lists the workers");
    // The killed worker's object stays as it left it, in an older generation.
    let latest = boards.iter().map(|board| board["worker"]["generation"].as_i64().unwrap()).max().unwrap();
    let held: u64 = boards
        .iter()
        .filter(|board| board["worker"]["generation"] == latest)
        .flat_map(|board| board["worker"]["partitions"].as_object().unwrap().values())
        .map(|partitions| partitions.as_array().unwrap().len() as u64)
        .sum();
    assert_eq!(
        held, PARTITIONS as u64,
        "the latest generation's workers hold every partition: {}",
        described["workers"]
    );
    for worker in [&mut b, &mut c, &mut d] {
        worker.stop();
    }
    eprintln!("produced {produced} records; partitions lost to another worker's commit: {lost}");
    assert_eq!(backed_up_records(dir.path(), "shared", &topic), original, "every record exactly once, in order");
    assert_success(&validate(dir.path(), "shared", true));
    assert_no_segment_overlaps(dir.path(), "shared");
}

#[test]
fn workers_sharing_a_backup_agree_on_the_new_incarnation_of_a_topic_re_created_under_them() {
    const PARTITIONS: i32 = 6;
    let (bootstrap, topic) = new_topic("reborn-shared", PARTITIONS);
    let all: Vec<i32> = (0..PARTITIONS).collect();
    for partition in &all {
        testkit::produce_small(&bootstrap, &topic, *partition, 5);
    }
    let first_life = testkit::consume(&bootstrap, &topic, &all);
    let dir = TempDir::new().unwrap();
    let group = unique("reborn-workers");
    let config = worker_config(dir.path(), &bootstrap, "reborn", &topic, SESSION_TIMEOUT_MS);
    let mut a = Worker::start(dir.path(), &config, &group, "worker-a", false);
    let mut b = Worker::start(dir.path(), &config, &group, "worker-b", false);
    wait_until_shared("two workers to share the partitions", &[&a, &b], PARTITIONS as usize);
    wait_for("the first incarnation to be backed up", HANG, || {
        backed_up_records_if_any(dir.path(), "reborn", &topic).len() == first_life.len()
    });

    // Both processes find the new topic id; the first to record it names the incarnation for both.
    testkit::delete_topic(&bootstrap, &topic);
    testkit::create_topic(&bootstrap, &topic, PARTITIONS, &[]);
    wait_until_every_broker_knows(&bootstrap, &topic, PARTITIONS);
    for partition in &all {
        testkit::produce_small(&bootstrap, &topic, *partition, 7);
    }
    let second_life = testkit::consume(&bootstrap, &topic, &all);
    let second = format!("{topic}@2");
    wait_for("the second incarnation to be backed up", HANG, || {
        backed_up_records_if_any(dir.path(), "reborn", &second).len() == second_life.len()
    });
    a.stop();
    b.stop();
    assert_eq!(backed_up_records(dir.path(), "reborn", &topic), first_life, "the old topic, untouched");
    assert_eq!(backed_up_records(dir.path(), "reborn", &second), second_life, "the new one, exactly once");
    let manifest = describe_json(dir.path(), "reborn");
    let names: Vec<&str> = manifest["topics"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, [topic.as_str(), second.as_str()], "one new incarnation, not one per worker");
    assert_success(&validate(dir.path(), "reborn", true));
    assert_no_segment_overlaps(dir.path(), "reborn");
}

#[test]
fn a_static_worker_restarted_within_its_session_timeout_gets_its_partitions_back_without_a_rebalance() {
    const PARTITIONS: i32 = 8;
    let (bootstrap, topic) = new_topic("static", PARTITIONS);
    let dir = TempDir::new().unwrap();
    let group = unique("static-workers");
    let config = worker_config(dir.path(), &bootstrap, "static", &topic, 30_000);
    // The workers also publish their durable positions as a consumer group's offsets.
    let progress_group = unique("backup-lag");
    let yaml = std::fs::read_to_string(&config).unwrap();
    let yaml = yaml.replace("source:\n", &format!("source:\n  progress_group: {progress_group}\n"));
    std::fs::write(&config, yaml).unwrap();
    let mut one = Worker::start(dir.path(), &config, &group, "static-1", true);
    let mut two = Worker::start(dir.path(), &config, &group, "static-2", true);
    wait_until_shared("two static workers to share the partitions", &[&one, &two], PARTITIONS as usize);
    let generation = two.generation();
    let mut before = None;
    wait_for("the worker's progress object", HANG, || {
        before = worker_board(dir.path(), "static", "static-1").filter(|b| b["generation"] == generation);
        before.is_some()
    });
    let before = before.unwrap();

    // A rolling restart: each worker stopped and started again with its instance id.
    one.stop();
    let mut one = Worker::start(dir.path(), &config, &group, "static-1", true);
    wait_for("the restarted worker to hold partitions", HANG, || one.partitions() > 0);
    let mut after = None;
    wait_for("the restarted worker's progress object", HANG, || {
        after = worker_board(dir.path(), "static", "static-1").filter(|b| b["member_id"] != before["member_id"]);
        after.is_some()
    });
    assert_eq!(after.unwrap()["partitions"], before["partitions"], "the same partitions came back");
    assert_eq!(one.generation(), generation, "no new generation");
    assert_eq!(two.generation(), generation, "the other worker saw no rebalance");

    let records: Vec<RefRecord> = (0..80)
        .map(|i| RefRecord {
            partition: Some(i % PARTITIONS),
            value: Some(format!("v-{i}").into_bytes()),
            ..RefRecord::default()
        })
        .collect();
    testkit::produce(&bootstrap, &topic, &records, &[]);
    wait_for("every record to be backed up", HANG, || {
        backed_up_records_if_any(dir.path(), "static", &topic).len() == records.len()
    });
    // Read with confluent-kafka, as lag tools read it: each partition's committed offset is its end.
    let partitions: Vec<i32> = (0..PARTITIONS).collect();
    let ends: std::collections::BTreeMap<i32, i64> = partitions.iter().map(|&p| (p, 10)).collect();
    wait_for("the progress group to show every partition backed up", HANG, || {
        testkit::committed(&bootstrap, &progress_group, &topic, &partitions) == ends
    });
    one.stop();
    two.stop();
    let original = testkit::consume(&bootstrap, &topic, &(0..PARTITIONS).collect::<Vec<_>>());
    assert_eq!(backed_up_records(dir.path(), "static", &topic), original);
}

/// The worker part of the worker's progress object, once it is written.
fn worker_board(dir: &Path, backup_id: &str, worker: &str) -> Option<serde_json::Value> {
    let path = dir.join(format!("store/{backup_id}/state/workers/{worker}.json"));
    let board: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    Some(board["worker"].clone())
}

#[test]
fn workers_share_a_restore_through_a_kill_and_a_pause_past_the_session_timeout() {
    const PARTITIONS: i32 = 24;
    let (bootstrap, topic) = new_topic("restored-by-workers", PARTITIONS);
    let an_hour_ago = now_ms() - 3_600_000;
    let records: Vec<RefRecord> = (0..PARTITIONS * 200)
        .map(|i| RefRecord {
            partition: Some(i % PARTITIONS),
            key: Some(format!("key-{i}").into_bytes()),
            value: Some(format!("value-{i:06}").into_bytes().repeat(8)),
            headers: vec![("h".into(), Some(i.to_string().into_bytes())), ("h".into(), None)],
            timestamp: Some(an_hour_ago + i64::from(i)),
            ..RefRecord::default()
        })
        .collect();
    testkit::produce(&bootstrap, &topic, &records, &[("linger.ms", "5"), ("batch.num.messages", "20")]);
    let all: Vec<i32> = (0..PARTITIONS).collect();
    let original = testkit::consume(&bootstrap, &topic, &all);
    assert_eq!(original.len(), records.len());
    // A consumer group part-way through the topic, whose offsets the finishing worker translates.
    let reader = unique("reader");
    let positions: Vec<(&str, i32, i64)> = all.iter().map(|&p| (topic.as_str(), p, 120)).collect();
    testkit::commit(&bootstrap, &reader, &positions);
    let dir = TempDir::new().unwrap();
    // Small segments: a worker stops a partition at the end of a segment when the group rebalances.
    let config = write_config(dir.path(), &bootstrap, "to-share", &topic, "  segment_max_bytes: 4096\n");
    assert_success(&backup(&config));

    let target = unique("shared-restore");
    let settings = format!(
        "  topic_mapping:\n    {topic}: {target}\n  consumer_group_strategy: exact\n  \
         rate_limit_records_per_sec: 150\n  group_id: unused\n  \
         group_session_timeout_ms: {SESSION_TIMEOUT_MS}\n  group_rebalance_timeout_ms: 30000\n"
    );
    let config = write_restore_config(dir.path(), "shared-restore", &bootstrap, "to-share", &settings);
    let group = unique("restore-workers");
    let mut a = Worker::launch("restore", dir.path(), &config, &group, "restorer-a", false);
    let mut b = Worker::launch("restore", dir.path(), &config, &group, "restorer-b", false);
    let mut c = Worker::launch("restore", dir.path(), &config, &group, "restorer-c", false);
    wait_until_shared("three workers to share the target partitions", &[&a, &b, &c], PARTITIONS as usize);
    let restored = |worker: &Worker| metric_sum(&worker.metrics(), "kafka_backup_restored_records_total", &[]);
    wait_for("the first worker to restore records", HANG, || restored(&a) > 0.0);

    // Killed mid-restore: its partitions go to the others, which fence its producers first.
    a.kill();
    // Paused past its session timeout: removed from the group; continued, its writes are refused
    // (fenced) or its state records come second, and it loses those partitions cleanly.
    b.signal("-STOP");
    std::thread::sleep(Duration::from_millis(SESSION_TIMEOUT_MS + 2_000));
    b.signal("-CONT");
    let outputs = [b.finished(), c.finished()];

    let copied = testkit::consume(&bootstrap, &target, &all);
    assert_eq!(without_offsets(&copied), without_offsets(&original), "every record once, in order, in its partition");
    let finishers = outputs.iter().filter(|out| out.contains("found the restore complete and finished it")).count();
    assert_eq!(finishers, 1, "one worker finishes the restore: {outputs:?}");
    let logs = b.log_text() + &c.log_text();
    assert!(logs.contains("fencing the partition's earlier writers"), "the killed worker's partitions were fenced");
    // The offset maps hold where every batch landed (a fence's marker takes an offset): the group's
    // translated offsets point at the records it had reached, and `verify` finds no difference.
    let committed = testkit::committed(&bootstrap, &reader, &target, &all);
    for &partition in &all {
        let in_partition = |records: &[RefRecord]| -> Vec<RefRecord> {
            records.iter().filter(|r| r.partition == Some(partition)).cloned().collect()
        };
        let (source, copy) = (in_partition(&original), in_partition(&copied));
        let reached = source.iter().position(|r| r.offset == Some(120)).expect("offset 120 in the source");
        assert_eq!(committed[&partition], copy[reached].offset.unwrap(), "partition {partition}'s group offset");
    }
    let verified = run(&["verify", "--config", config.to_str().unwrap()]);
    assert_success(&verified);
    // `describe` lists the restore workers: every one that joined, the two that ended marked so.
    let described = describe_json(dir.path(), "to-share");
    let boards = described["restore_workers"].as_array().expect("describe lists the restore workers");
    assert!(boards.len() >= 3, "each worker wrote its state: {}", described["restore_workers"]);
    assert!(boards.iter().all(|b| b["worker"]["group"] == group.as_str()));
    let ended = boards.iter().filter(|b| b["running"] == false).count();
    assert_eq!(ended, 2, "the killed worker's object stays as it left it: {}", described["restore_workers"]);
}
