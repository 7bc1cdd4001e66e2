//! Backup and restore through broker failures on the 3-node Apache Kafka cluster ("triple":
//! replication factor 3, min.insync.replicas 2): a partition leader is killed (SIGKILL) while the
//! run is under way, restarted, and leadership moved back by a preferred-leader election. The run
//! finishes, and confluent-kafka finds every record exactly once. The continuous backup's fetch
//! sessions start over with the restarted broker.

mod common;

use std::io::Read;
use std::sync::Mutex;

use common::*;
use kafka_backup_testkit::{self as testkit, unique, KafkaCluster, RefRecord};
use tempfile::TempDir;

const PARTITIONS: [i32; 3] = [0, 1, 2];

/// One failure at a time: two tests each killing a node would leave one of three brokers.
static ONE_FAILURE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// `count` records spread over the three partitions, numbered from `from`.
fn numbered(from: usize, count: usize) -> Vec<RefRecord> {
    (from..from + count)
        .map(|i| RefRecord {
            partition: Some((i % 3) as i32),
            key: Some(format!("key-{i}").into_bytes()),
            value: Some(format!("{i:08}{}", "x".repeat(300)).into_bytes()),
            ..RefRecord::default()
        })
        .collect()
}

fn leader_of(bootstrap: &str, topic: &str, partition: i32) -> i32 {
    testkit::describe_topic(bootstrap, topic).into_iter().find(|(p, _, _)| *p == partition).expect("partition").1
}

/// A node killed by a test; dropped, it is started again (also when the test fails half-way),
/// so that every test begins with three nodes.
struct KilledNode<'a> {
    cluster: &'a KafkaCluster,
    id: i32,
}

impl Drop for KilledNode<'_> {
    fn drop(&mut self) {
        self.cluster.restart_killed_nodes();
    }
}

/// Kills the leader of `topic`-0.
fn kill_leader<'a>(cluster: &'a KafkaCluster, topic: &str) -> KilledNode<'a> {
    let id = leader_of(&cluster.bootstrap(), topic, 0);
    cluster.kill_node(id);
    KilledNode { cluster, id }
}

/// Brings the killed node back and hands leadership back to the preferred replicas: a second move.
fn restart_and_move_leaders_back(killed: KilledNode<'_>, topic: &str) {
    let (cluster, id) = (killed.cluster, killed.id);
    drop(killed);
    wait_for("the restarted node to lead again", HANG, || {
        testkit::elect_preferred_leaders(&cluster.bootstrap(), topic, &PARTITIONS)
            && testkit::describe_topic(&cluster.bootstrap(), topic).iter().any(|(_, leader, _)| *leader == id)
    });
}

/// Waits for `condition`, failing with the run's output if it exited meanwhile.
fn wait_while_running(child: &mut std::process::Child, what: &str, mut condition: impl FnMut() -> bool) {
    wait_for(what, HANG, || child.try_wait().unwrap().is_some() || condition());
    if let Some(status) = child.try_wait().unwrap() {
        let mut said = String::new();
        if let Some(mut stdout) = child.stdout.take() {
            stdout.read_to_string(&mut said).unwrap();
        }
        if let Some(mut stderr) = child.stderr.take() {
            stderr.read_to_string(&mut said).unwrap();
        }
        panic!("the run ended ({status}) before {what}:\n{said}");
    }
}

#[test]
fn a_continuous_backup_rides_through_a_leader_kill_restart_and_election() {
    let _turn = ONE_FAILURE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let cluster = KafkaCluster::triple();
    let bootstrap = cluster.bootstrap();
    let topic = unique("replicated");
    testkit::create_topic(&bootstrap, &topic, 3, &[]);
    assert!(testkit::describe_topic(&bootstrap, &topic).iter().all(|(_, _, replicas)| replicas.len() == 3));
    testkit::produce(&bootstrap, &topic, &numbered(0, 3000), &[("acks", "all")]);

    let dir = TempDir::new().unwrap();
    let settings = "  continuous: true\n  segment_max_interval_ms: 500\n  checkpoint_interval_secs: 1\n";
    let (child, port) = backup_with_metrics(dir.path(), &bootstrap, "ha", &topic, settings);
    let held = || backed_up_records_if_any(dir.path(), "ha", &topic).len();
    wait_for("the first records to be backed up", HANG, || held() == 3000);
    // Fetch sessions (KIP-227): a restarted broker has lost the session, and its fetcher opens a new
    // one with a full request.
    let full_requests = || {
        let metrics = get(port, "/metrics").map(|(_, body)| body).unwrap_or_default();
        metric_sum(&metrics, "kafka_backup_fetch_requests_total", &[("kind", "full")])
    };
    let full_before = full_requests();

    let killed = kill_leader(cluster, &topic);
    testkit::produce(&bootstrap, &topic, &numbered(3000, 3000), &[("acks", "all")]);
    wait_for("records produced while a broker is down", HANG, || held() == 6000);
    restart_and_move_leaders_back(killed, &topic);
    testkit::produce(&bootstrap, &topic, &numbered(6000, 3000), &[("acks", "all")]);
    wait_for("records produced after the leaders moved back", HANG, || held() == 9000);
    assert!(
        full_requests() > full_before,
        "a new fetch session after the restart ({full_before} full requests before)"
    );
    send_signal(&child, "-TERM");
    let output = wait_with_deadline(child, HANG);
    assert_success(&output);

    let original = testkit::consume(&bootstrap, &topic, &PARTITIONS);
    assert_eq!(original.len(), 9000);
    assert_eq!(backed_up_records(dir.path(), "ha", &topic), original, "every record exactly once");
    assert_success(&validate(dir.path(), "ha", true));
}

#[test]
fn a_restore_rides_through_a_leader_kill_restart_and_election() {
    let _turn = ONE_FAILURE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let source = KafkaCluster::source().bootstrap();
    let cluster = KafkaCluster::triple();
    let topic = unique("restored-ha");
    testkit::create_topic(&source, &topic, 3, &[]);
    // Batches of 50 records and segments of about one batch: each restored segment commits, so
    // the commits say how far the restore got.
    testkit::produce(&source, &topic, &numbered(0, 6000), &[("batch.num.messages", "50"), ("linger.ms", "5")]);
    let original = testkit::consume(&source, &topic, &PARTITIONS);
    let dir = TempDir::new().unwrap();
    assert_success(&backup(&write_config(dir.path(), &source, "ha", &topic, "  segment_max_bytes: 16384\n")));

    // Into a replicated topic (the backup holds the source's replication factor, 1, which a dead
    // broker would leave without a replica); throttled, so that the kill and the restart fall
    // while it runs.
    testkit::create_topic(&cluster.bootstrap(), &topic, 3, &[]);
    let settings = "  rate_limit_bytes_per_sec: 100000\n";
    let config = write_restore_config(dir.path(), "ha", &cluster.bootstrap(), "ha", settings);
    let mut child = spawn(&["restore", "--config", config.to_str().unwrap()], false);
    // Progress is read from the restore's own commits: a consumer would wait out the leaderless
    // seconds after the kill.
    let commits = || restore_state_files(dir.path());
    wait_while_running(&mut child, "a few segments were restored", || commits() > 3);
    let killed = kill_leader(cluster, &topic);
    let before = commits();
    wait_while_running(&mut child, "segments were restored while a broker was down", || commits() > before + 3);
    restart_and_move_leaders_back(killed, &topic);
    let output = wait_with_deadline(child, HANG);
    assert_success(&output);
    assert!(text(&output.stdout).contains("Restored 6000 records"), "{}", text(&output.stdout));
    assert_eq!(testkit::consume(&cluster.bootstrap(), &topic, &PARTITIONS), original, "exactly once, same offsets");
}
