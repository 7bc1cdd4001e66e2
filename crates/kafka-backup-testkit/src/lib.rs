//! Test support: Apache Kafka clusters shared by the tests of a run (`tools/clusters.py`), Tansu
//! brokers for the compatibility suite, object-store emulators (`store_emulator.rs`), and the
//! confluent-kafka reference client (`tools/refclient.py`), all installed by `scripts/install-test-infra.sh`.

mod store_emulator;
mod token_endpoint;

pub use store_emulator::{BucketListing, FaultyProxy, StoreEmulator, StoreKind, AZURITE_ACCOUNT, AZURITE_KEY};
pub use token_endpoint::TokenEndpoint;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// The repository root (this crate lives in `crates/kafka-backup-testkit`).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("repo root")
}

/// A program the infrastructure script links into `.test-infra/bin`. Panics with the fix when
/// it is missing: a test that needs a broker must fail, never skip silently.
pub fn infra_program(name: &str) -> PathBuf {
    let path = repo_root().join(".test-infra/bin").join(name);
    assert!(
        path.exists(),
        "{} is missing: run scripts/install-test-infra.sh first (scripts/test.sh does it)",
        path.display()
    );
    path
}

/// Starts `tools/{tool}` with `args` (a local server for tests that runs until its stdin closes),
/// its stderr going to `stderr`; waits for its "ready PORT" line and returns it with the port.
pub fn start_tool_server(tool: &str, args: &[&str], stderr: Stdio) -> (Child, u16) {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(infra_program("python"))
        .arg(repo_root().join("tools").join(tool))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap_or_else(|e| panic!("start tools/{tool}: {e}"));
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("piped stdout")).read_line(&mut line).expect("tool output");
    let port = line.strip_prefix("ready ").and_then(|p| p.trim().parse().ok());
    let port = port.unwrap_or_else(|| panic!("tools/{tool} did not start: {line:?}"));
    (child, port)
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// Every file under `dir` (recursively) with its bytes, sorted by path.
pub fn files_under(dir: &std::path::Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(folder).expect("a readable directory") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                folders.push(path);
            } else {
                let bytes = std::fs::read(&path).expect("a readable file");
                files.push((path, bytes));
            }
        }
    }
    files.sort();
    files
}

/// A name no other test of this run or an earlier run on the same cluster uses: `{prefix}-{suffix}`.
/// Tests share clusters, so every topic and group a test creates is named with this.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_nanos() as u64;
    let seed = nanos ^ (u64::from(std::process::id()) << 40) ^ u64::from(COUNTER.fetch_add(1, Ordering::Relaxed));
    format!("{prefix}-{:x}", seed & 0xff_ffff_ffff)
}

/// A listener of a cluster node: its name (PLAINTEXT, SSL, MTLS, SASL_PLAINTEXT, SASL_SSL,
/// REAUTH; see `tools/clusters.py`) and `127.0.0.1:port`.
pub type Listeners = BTreeMap<String, String>;

#[derive(Debug, Deserialize)]
struct ClusterNode {
    id: i32,
    listeners: Listeners,
    log: PathBuf,
}

/// Broker logs of the clusters this test binary uses, printed (their last lines) when a test fails.
static BROKER_LOGS: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

/// Installs, once, a panic hook that prints the tail of every broker log after the usual message.
fn print_broker_logs_on_failure(logs: impl Iterator<Item = PathBuf>) {
    static HOOK: std::sync::Once = std::sync::Once::new();
    BROKER_LOGS.lock().unwrap_or_else(|p| p.into_inner()).extend(logs);
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            previous(info);
            for log in BROKER_LOGS.lock().unwrap_or_else(|p| p.into_inner()).iter() {
                let text = std::fs::read_to_string(log).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(15).collect();
                eprintln!("--- last lines of {}:", log.display());
                tail.iter().rev().for_each(|line| eprintln!("{line}"));
            }
        }));
    });
}

/// A local Apache Kafka cluster (KRaft) started by `tools/clusters.py`: once per test binary and
/// shared by its tests (the JVM takes seconds to start), left running for the next run, which
/// reuses it. Stopped by `scripts/test.sh` at the end or `scripts/brokers.sh stop`. A failing test
/// prints the last lines of each node's log.
#[derive(Debug, Deserialize)]
pub struct KafkaCluster {
    name: String,
    cluster_id: String,
    bootstrap: String,
    nodes: Vec<ClusterNode>,
    tls_dir: PathBuf,
}

impl KafkaCluster {
    /// The single-node "source" cluster.
    pub fn source() -> &'static KafkaCluster {
        static CLUSTER: OnceLock<KafkaCluster> = OnceLock::new();
        CLUSTER.get_or_init(|| KafkaCluster::start("source"))
    }

    /// The single-node "target" cluster.
    pub fn target() -> &'static KafkaCluster {
        static CLUSTER: OnceLock<KafkaCluster> = OnceLock::new();
        CLUSTER.get_or_init(|| KafkaCluster::start("target"))
    }

    /// The three-node "triple" cluster (replication factor 3, min.insync.replicas 2).
    pub fn triple() -> &'static KafkaCluster {
        static CLUSTER: OnceLock<KafkaCluster> = OnceLock::new();
        CLUSTER.get_or_init(|| KafkaCluster::start("triple"))
    }

    fn start(name: &str) -> KafkaCluster {
        let output = clusters_py(&["start", name]);
        let cluster: KafkaCluster =
            serde_json::from_slice(&output).unwrap_or_else(|e| panic!("clusters.py start {name} answered: {e}"));
        print_broker_logs_on_failure(cluster.nodes.iter().map(|n| n.log.clone()));
        cluster
    }

    /// The PLAINTEXT listeners of every node, comma-separated.
    pub fn bootstrap(&self) -> String {
        self.bootstrap.clone()
    }

    /// The address of listener `name` on the first node.
    pub fn listener(&self, name: &str) -> String {
        self.nodes[0]
            .listeners
            .get(name)
            .unwrap_or_else(|| panic!("cluster {} has no {name} listener", self.name))
            .clone()
    }

    /// The cluster id the brokers report.
    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    /// The node ids.
    pub fn node_ids(&self) -> Vec<i32> {
        self.nodes.iter().map(|n| n.id).collect()
    }

    /// The folder with the test CA (`ca.pem`), client certificate and keys.
    pub fn tls_dir(&self) -> &std::path::Path {
        &self.tls_dir
    }

    /// SIGKILLs node `id` (a crash; its data stays on disk).
    pub fn kill_node(&self, id: i32) {
        clusters_py(&["kill", &self.name, &id.to_string()]);
    }

    /// Restarts the killed nodes on their ports with their data, and waits until every node is back.
    pub fn restart_killed_nodes(&self) {
        clusters_py(&["start", &self.name]);
    }
}

fn clusters_py(args: &[&str]) -> Vec<u8> {
    let output = Command::new(infra_program("python"))
        .arg(repo_root().join("tools/clusters.py"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run tools/clusters.py");
    assert!(
        output.status.success(),
        "tools/clusters.py {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// A Tansu broker process with in-memory storage, bound to 127.0.0.1: the Kafka-compatible
/// broker of the compatibility suite. Starts in milliseconds, so each test has its own.
pub struct Broker {
    child: Option<Child>,
    port: u16,
    cluster_id: String,
}

impl Broker {
    /// Starts a broker on a free port.
    pub fn start(cluster_id: &str) -> Self {
        Self::start_on(free_port(), cluster_id)
    }

    /// Starts a broker on `port` (used to restart one where clients expect it).
    pub fn start_on(port: u16, cluster_id: &str) -> Self {
        let url = format!("tcp://127.0.0.1:{port}");
        let log = std::fs::File::create(std::env::temp_dir().join(format!("tansu-{port}.log"))).expect("log file");
        let child = Command::new(infra_program("tansu"))
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
            .args(["--storage-engine", "memory://tansu/", "--cluster-id", cluster_id])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start tansu");
        let broker = Broker { child: Some(child), port, cluster_id: cluster_id.to_string() };
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "tansu did not listen on port {port} within 15 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        broker
    }

    /// `127.0.0.1:port`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The cluster id the broker reports.
    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    /// SIGKILLs the broker and waits for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts an interactive refclient command, talking JSON lines over stdin/stdout.
fn spawn_interactive(command: &str) -> (Child, std::io::BufReader<std::process::ChildStdout>) {
    let mut child = Command::new(infra_program("python"))
        .arg(repo_root().join("tools/refclient.py"))
        .arg(command)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("start refclient.py {command}: {e}"));
    let answers = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    (child, answers)
}

fn read_json_line(reader: &mut impl std::io::BufRead) -> serde_json::Value {
    let mut line = String::new();
    reader.read_line(&mut line).expect("read from refclient.py");
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("refclient.py said {line:?}: {e}"))
}

/// A confluent-kafka consumer that stays a member of a group until dropped.
pub struct GroupMember {
    child: Child,
}

impl GroupMember {
    /// Joins classic group `group` on `topic` and waits until the consumer has its assignment.
    pub fn join(bootstrap: &str, topic: &str, group: &str) -> Self {
        Self::join_with_protocol(bootstrap, topic, group, "classic")
    }

    /// Joins with `group.protocol` `protocol`: "classic", or "consumer" for a KIP-848 group.
    pub fn join_with_protocol(bootstrap: &str, topic: &str, group: &str, protocol: &str) -> Self {
        let (mut child, mut answers) = spawn_interactive("hold-group");
        let request =
            serde_json::json!({"bootstrap": bootstrap, "topic": topic, "group": group, "group_protocol": protocol});
        writeln!(child.stdin.as_mut().expect("stdin"), "{request}").expect("send to refclient.py");
        assert_eq!(read_json_line(&mut answers)["joined"], true, "the consumer did not join group {group}");
        GroupMember { child }
    }
}

impl Drop for GroupMember {
    /// Closes stdin: the consumer leaves the group cleanly and exits.
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// A record as the reference client sees it. Bytes travel as hex to and from Python.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RefRecord {
    /// Partition (chosen by the producer's partitioner when `None`).
    pub partition: Option<i32>,
    /// Offset (filled in by produce and consume).
    pub offset: Option<i64>,
    /// Key.
    #[serde(with = "hex_bytes")]
    pub key: Option<Vec<u8>>,
    /// Value.
    #[serde(with = "hex_bytes")]
    pub value: Option<Vec<u8>>,
    /// Headers in order, duplicates kept.
    #[serde(with = "hex_headers")]
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    /// Timestamp in epoch ms (producer default when `None`).
    pub timestamp: Option<i64>,
    /// `create_time` or `log_append_time` (filled in by consume).
    pub timestamp_type: Option<String>,
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn to_hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn from_hex(text: &str) -> Vec<u8> {
        (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex")).collect()
    }

    pub fn serialize<S: Serializer>(value: &Option<Vec<u8>>, serializer: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(bytes) => serializer.serialize_some(&to_hex(bytes)),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Vec<u8>>, D::Error> {
        Ok(Option::<String>::deserialize(deserializer)?.map(|text| from_hex(&text)))
    }
}

mod hex_headers {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::hex_bytes::{from_hex, to_hex};

    type Headers = Vec<(String, Option<Vec<u8>>)>;

    pub fn serialize<S: Serializer>(headers: &Headers, serializer: S) -> Result<S::Ok, S::Error> {
        headers
            .iter()
            .map(|(key, value)| (key.clone(), value.as_deref().map(to_hex)))
            .collect::<Vec<_>>()
            .serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Headers, D::Error> {
        let raw = Vec::<(String, Option<String>)>::deserialize(deserializer)?;
        Ok(raw.into_iter().map(|(key, value)| (key, value.map(|v| from_hex(&v)))).collect())
    }
}

/// Runs one `tools/refclient.py` command with a JSON request and returns its JSON answer.
fn refclient(command: &str, request: serde_json::Value) -> serde_json::Value {
    let mut child = Command::new(infra_program("python"))
        .arg(repo_root().join("tools/refclient.py"))
        .arg(command)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start refclient.py");
    child.stdin.take().expect("stdin").write_all(request.to_string().as_bytes()).expect("write request");
    let output = child.wait_with_output().expect("refclient.py");
    assert!(output.status.success(), "refclient.py {command} failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("refclient.py answer is JSON")
}

fn records_of(answer: serde_json::Value) -> Vec<RefRecord> {
    serde_json::from_value(answer["records"].clone()).expect("records")
}

/// Creates a topic with confluent-kafka's AdminClient (the cluster's default replication factor).
pub fn create_topic(bootstrap: &str, topic: &str, partitions: i32, configs: &[(&str, &str)]) {
    let configs: BTreeMap<&str, &str> = configs.iter().copied().collect();
    refclient(
        "create-topic",
        serde_json::json!({"bootstrap": bootstrap, "topic": topic, "partitions": partitions, "configs": configs}),
    );
}

/// Produces `records` with confluent-kafka and extra librdkafka `config`; returns them with
/// the partition and offset each was written at.
pub fn produce(bootstrap: &str, topic: &str, records: &[RefRecord], config: &[(&str, &str)]) -> Vec<RefRecord> {
    let config: BTreeMap<&str, &str> = config.iter().copied().collect();
    records_of(refclient(
        "produce",
        serde_json::json!({"bootstrap": bootstrap, "topic": topic, "config": config, "records": records}),
    ))
}

/// The topic configs the fidelity records need on Apache Kafka 4: its brokers refuse records
/// stamped more than an hour ahead by default (`log.message.timestamp.after.max.ms`), and time
/// retention would delete records stamped decades ago within seconds.
pub const FIDELITY_TOPIC_CONFIGS: &[(&str, &str)] =
    &[("message.timestamp.after.max.ms", "9223372036854775807"), ("retention.ms", "-1")];

/// Records covering the fidelity cases (their topic needs [`FIDELITY_TOPIC_CONFIGS`]), all for `partition`: null vs empty keys and values,
/// duplicate header keys in a set order, null header values, and timestamps decades apart (and out
/// of order) inside one batch.
pub fn fidelity_records(partition: i32) -> Vec<RefRecord> {
    let timestamps = [1_000_000_000_000i64, 4_102_444_800_000, 1_700_000_000_000, 86_400_000];
    let mut records = Vec::new();
    for i in 0..24usize {
        let header_value = |text: &str| Some(text.as_bytes().to_vec());
        records.push(RefRecord {
            partition: Some(partition),
            key: match i % 4 {
                0 => None,
                1 => Some(Vec::new()),
                _ => Some(format!("key-{i}").into_bytes()),
            },
            value: match i % 5 {
                0 => None,
                1 => Some(Vec::new()),
                _ => Some(format!("value-{i}-").repeat(i * 7).into_bytes()),
            },
            headers: match i % 3 {
                0 => vec![],
                1 => vec![
                    ("dup".into(), header_value("first")),
                    ("dup".into(), None),
                    ("dup".into(), header_value("third")),
                ],
                _ => vec![("z".into(), header_value("1")), ("a".into(), Some(vec![])), ("m".into(), None)],
            },
            timestamp: Some(timestamps[i % timestamps.len()]),
            ..RefRecord::default()
        });
    }
    records
}

/// `count` small records (`k{i}` / `v{i}`) for `partition`.
fn small_records(partition: i32, count: usize) -> Vec<RefRecord> {
    (0..count)
        .map(|i| RefRecord {
            partition: Some(partition),
            key: Some(format!("k{i}").into_bytes()),
            value: Some(format!("v{i}").into_bytes()),
            ..RefRecord::default()
        })
        .collect()
}

/// `count` small records (`k{i}` / `v{i}`) for `partition`, each with three headers in a set
/// order: a duplicate key (`trace`) whose second value is null, and an empty value; every fifth
/// record has a null key. What a restore that rewrites records must keep byte for byte.
pub fn records_with_headers(partition: i32, count: usize) -> Vec<RefRecord> {
    small_records(partition, count)
        .into_iter()
        .enumerate()
        .map(|(i, record)| RefRecord {
            key: if i % 5 == 4 { None } else { record.key },
            headers: sample_headers(i),
            ..record
        })
        .collect()
}

/// The headers of record `i` of [`records_with_headers`].
pub fn sample_headers(i: usize) -> Vec<(String, Option<Vec<u8>>)> {
    vec![
        ("trace".into(), Some(format!("t{i}").into_bytes())),
        ("trace".into(), None),
        ("empty".into(), Some(Vec::new())),
    ]
}

/// `count` records for `partition` with keys `key-{i}` and 1 KiB values of pseudo-random bytes,
/// which no codec compresses: segments, chunks and upload parts then have predictable sizes.
pub fn incompressible_records(partition: i32, count: usize) -> Vec<RefRecord> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next_byte = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state as u8
    };
    (0..count)
        .map(|i| RefRecord {
            partition: Some(partition),
            key: Some(format!("key-{i}").into_bytes()),
            value: Some((0..1024).map(|_| next_byte()).collect()),
            ..RefRecord::default()
        })
        .collect()
}

/// Produces `count` small records (`k{i}` / `v{i}`) to `partition`, batched as the producer likes.
pub fn produce_small(bootstrap: &str, topic: &str, partition: i32, count: usize) -> Vec<RefRecord> {
    produce(bootstrap, topic, &small_records(partition, count), &[])
}

/// Produces `count` small records to `partition`, one record per batch: Tansu's high watermark
/// counts batches rather than records (GUIDE.md, known Tansu gaps), so the compatibility suite
/// writes single-record batches; also for tests that want many batches.
pub fn produce_one_per_batch(bootstrap: &str, topic: &str, partition: i32, count: usize) -> Vec<RefRecord> {
    produce(bootstrap, topic, &small_records(partition, count), &[("batch.num.messages", "1"), ("linger.ms", "0")])
}

/// Runs transactions on `topic`-`partition` with one transactional producer: `(record count,
/// commit?)` each, committed or aborted in order, so the log holds COMMIT and ABORT markers.
pub fn produce_transactions(bootstrap: &str, topic: &str, partition: i32, transactions: &[(usize, bool)]) {
    let transactions: Vec<_> =
        transactions.iter().map(|(count, commit)| serde_json::json!({"count": count, "commit": commit})).collect();
    refclient(
        "produce-transactions",
        serde_json::json!({"bootstrap": bootstrap, "topic": topic, "partition": partition,
                           "transactions": transactions, "transactional_id": unique("refclient-tx")}),
    );
}

/// Reads every record of `partitions` of `topic` with confluent-kafka (read_committed), each
/// partition from its start to its end (partition EOF); panics if an end is not reached within
/// 60 s. Returns them in partition, offset order.
pub fn consume(bootstrap: &str, topic: &str, partitions: &[i32]) -> Vec<RefRecord> {
    consume_with(bootstrap, topic, partitions, "read_committed")
}

/// [`consume`] with `isolation.level` `isolation` ("read_committed" or "read_uncommitted").
pub fn consume_with(bootstrap: &str, topic: &str, partitions: &[i32], isolation: &str) -> Vec<RefRecord> {
    records_of(refclient(
        "consume",
        serde_json::json!({"bootstrap": bootstrap, "topic": topic, "partitions": partitions, "isolation": isolation}),
    ))
}

/// Deletes the records of `topic`-`partition` before offset `before` (moves the log start).
pub fn delete_records(bootstrap: &str, topic: &str, partition: i32, before: i64) {
    refclient(
        "delete-records",
        serde_json::json!({"bootstrap": bootstrap, "topic": topic, "partition": partition, "before": before}),
    );
}

/// The topic configs set on `topic` (not the broker's defaults), as confluent-kafka describes them.
pub fn topic_configs(bootstrap: &str, topic: &str) -> BTreeMap<String, String> {
    let answer = refclient("topic-configs", serde_json::json!({"bootstrap": bootstrap, "topic": topic}));
    serde_json::from_value(answer["configs"].clone()).expect("configs")
}

/// Adds an ACL: `principal` (e.g. `User:alice`) is `permission` ("ALLOW" or "DENY") `operation`
/// (READ, WRITE, DESCRIBE, ...) on the topic or group `name` (`resource` "topic" or "group").
/// Through the PLAINTEXT listener, whose anonymous principal is a super user of the test clusters.
/// Once a resource has an ACL, the clusters' `allow.everyone.if.no.acl.found` no longer applies to it.
pub fn add_acl(bootstrap: &str, resource: &str, name: &str, principal: &str, operation: &str, permission: &str) {
    refclient(
        "acl",
        serde_json::json!({"bootstrap": bootstrap, "resource": resource, "name": name,
                           "principal": principal, "operation": operation, "permission": permission}),
    );
}

/// An unsigned JWT for `sub` that the test clusters' unsecured OAUTHBEARER validator accepts,
/// valid for `lifetime_s` seconds from now (negative: already expired).
pub fn unsecured_jwt(sub: &str, lifetime_s: i64) -> String {
    let answer = refclient("unsecured-jwt", serde_json::json!({"sub": sub, "lifetime_s": lifetime_s}));
    answer["token"].as_str().expect("token").to_string()
}

/// The names of the topics of the cluster.
pub fn topics(bootstrap: &str) -> Vec<String> {
    let answer = refclient("list-topics", serde_json::json!({"bootstrap": bootstrap}));
    serde_json::from_value(answer["topics"].clone()).expect("topics")
}

/// Moves the leadership of `partitions` of `topic` back to their preferred replicas; false while
/// a preferred replica is not available yet (a restarted broker still catching up).
pub fn elect_preferred_leaders(bootstrap: &str, topic: &str, partitions: &[i32]) -> bool {
    let answer = refclient(
        "elect-preferred-leaders",
        serde_json::json!({"bootstrap": bootstrap, "topic": topic, "partitions": partitions}),
    );
    answer["elected"] == true
}

/// Each partition of `topic` with its leader and replicas: `(partition, leader, replicas)`.
pub fn describe_topic(bootstrap: &str, topic: &str) -> Vec<(i32, i32, Vec<i32>)> {
    let answer = refclient("describe-topic", serde_json::json!({"bootstrap": bootstrap, "topic": topic}));
    answer["partitions"]
        .as_array()
        .expect("partitions")
        .iter()
        .map(|p| {
            let replicas = p["replicas"].as_array().expect("replicas").iter().map(|r| r.as_i64().unwrap() as i32);
            (p["partition"].as_i64().unwrap() as i32, p["leader"].as_i64().unwrap() as i32, replicas.collect())
        })
        .collect()
}

/// Commits offsets for `group` with confluent-kafka.
pub fn commit(bootstrap: &str, group: &str, offsets: &[(&str, i32, i64)]) {
    let offsets: Vec<_> = offsets
        .iter()
        .map(|(topic, partition, offset)| serde_json::json!({"topic": topic, "partition": partition, "offset": offset}))
        .collect();
    refclient("commit", serde_json::json!({"bootstrap": bootstrap, "group": group, "offsets": offsets}));
}

/// The first record a subscribed confluent-kafka consumer of each group reads from `topic`,
/// starting at the group's committed offset (no reset policy), committing nothing.
pub fn first_record_as_groups(bootstrap: &str, topic: &str, groups: &[&str]) -> BTreeMap<String, RefRecord> {
    let answer = refclient(
        "first-as-groups",
        serde_json::json!({"bootstrap": bootstrap, "topic": topic, "groups": groups, "timeout_s": 40}),
    );
    serde_json::from_value(answer["first"].clone()).expect("first records")
}

/// The offsets confluent-kafka sees committed for `group` on `partitions` of `topic`.
pub fn committed(bootstrap: &str, group: &str, topic: &str, partitions: &[i32]) -> BTreeMap<i32, i64> {
    let answer = refclient(
        "committed",
        serde_json::json!({"bootstrap": bootstrap, "group": group, "topic": topic, "partitions": partitions}),
    );
    let offsets: BTreeMap<String, i64> = serde_json::from_value(answer["offsets"].clone()).expect("offsets");
    offsets.into_iter().map(|(p, o)| (p.parse().expect("partition"), o)).collect()
}
