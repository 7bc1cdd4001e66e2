//! The confluent-kafka reference client (`tools/refclient.py`): produce, consume, group and admin
//! calls through an independent client, to check what kafka-backup wrote and read.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Child, Command, Stdio};

use crate::infra::{infra_program, repo_root, unique};
use crate::records::{small_records, RefRecord};

/// Starts `tools/refclient.py COMMAND` with piped stdin and stdout.
fn start(command: &str, stderr: Stdio) -> Child {
    Command::new(infra_program("python"))
        .arg(repo_root().join("tools/refclient.py"))
        .arg(command)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap_or_else(|e| panic!("start refclient.py {command}: {e}"))
}

/// Starts an interactive refclient command, talking JSON lines over stdin/stdout.
fn spawn_interactive(command: &str) -> (Child, std::io::BufReader<std::process::ChildStdout>) {
    let mut child = start(command, Stdio::null());
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

/// A KafkaShareConsumer (Kafka's Java client) that stays a member of a share group until dropped.
pub struct ShareMember {
    child: Child,
}

impl ShareMember {
    /// Joins share group `group` on `topic` and waits until the group lists the member.
    pub fn join(bootstrap: &str, topic: &str, group: &str) -> Self {
        let root = crate::repo_root();
        let mut child = Command::new("java")
            .args(["-Xmx256m", &format!("-Dlog4j2.configurationFile={}", log4j_config().display())])
            .args(["-cp", &java_classpath(), "tools/ShareGroups.java", "hold", bootstrap, group, topic])
            .current_dir(&root)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("java runs ShareGroups.java hold");
        let mut answers = std::io::BufReader::new(child.stdout.take().expect("stdout"));
        loop {
            let mut line = String::new();
            let read = std::io::BufRead::read_line(&mut answers, &mut line).expect("read ShareGroups.java");
            assert!(read > 0, "the share consumer of {group} exited before joining");
            if line.starts_with('{') {
                assert_eq!(line.trim(), r#"{"joined": true}"#, "share group {group}");
                break;
            }
        }
        // The client keeps logging to stdout: drained, so that it never blocks on a full pipe.
        std::thread::spawn(move || std::io::copy(&mut answers, &mut std::io::sink()));
        ShareMember { child }
    }
}

impl Drop for ShareMember {
    /// Closes stdin: the consumer leaves the share group and exits.
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// Runs one `tools/refclient.py` command with a JSON request and returns its JSON answer.
fn refclient(command: &str, request: serde_json::Value) -> serde_json::Value {
    let mut child = start(command, Stdio::piped());
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

/// Deletes a topic with confluent-kafka's AdminClient, once the metadata no longer lists it.
pub fn delete_topic(bootstrap: &str, topic: &str) {
    refclient("delete-topic", serde_json::json!({"bootstrap": bootstrap, "topic": topic}));
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

/// Every ACL binding of the cluster, as confluent-kafka's admin client reads them: (resource
/// type, resource name, pattern type, principal, host, operation, permission), names as
/// `kafka-acls.sh` prints them.
pub fn acls(bootstrap: &str) -> Vec<[String; 7]> {
    let answer = refclient("describe-acls", serde_json::json!({"bootstrap": bootstrap}));
    let fields = ["resource_type", "resource_name", "pattern_type", "principal", "host", "operation", "permission"];
    answer["acls"]
        .as_array()
        .expect("acls")
        .iter()
        .map(|binding| fields.map(|field| binding[field].as_str().expect("a string field").to_string()))
        .collect()
}

/// The broker's jars the test infrastructure installs, as a Java class path.
fn java_classpath() -> String {
    format!("{}/*", crate::repo_root().join(".test-infra/kafka/libs").display())
}

/// The test clusters' logging configuration (client logs to standard output, INFO).
fn log4j_config() -> std::path::PathBuf {
    crate::repo_root().join("scripts/kafka/log4j2.properties")
}

/// Runs `program` (a main class or a single-file Java source) on the broker's jars the test
/// infrastructure installs, with `args`; returns its standard output.
fn run_java(program: &str, args: &[&str]) -> String {
    let root = crate::repo_root();
    let output = Command::new("java")
        .args(["-Xmx256m", &format!("-Dlog4j2.configurationFile={}", log4j_config().display())])
        .args(["-cp", &java_classpath(), program])
        .args(args)
        .current_dir(&root)
        .output()
        .unwrap_or_else(|e| panic!("java runs {program}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{program} {args:?} failed: {stdout}{}", String::from_utf8_lossy(&output.stderr));
    stdout
}

/// Runs Kafka's own `kafka-configs.sh` (`kafka.admin.ConfigCommand`) against `bootstrap` with
/// `args`; returns its standard output.
pub fn kafka_configs(bootstrap: &str, args: &[&str]) -> String {
    run_java("kafka.admin.ConfigCommand", &[&["--bootstrap-server", bootstrap], args].concat())
}

/// `tools/ShareGroups.java COMMAND bootstrap args...` (Kafka's Java admin client): its JSON answer.
fn share_groups_tool(command: &str, bootstrap: &str, args: &[&str]) -> serde_json::Value {
    let stdout = run_java("tools/ShareGroups.java", &[&[command, bootstrap], args].concat());
    let answer = stdout.lines().rev().find(|line| line.starts_with('{')).expect("a JSON answer");
    serde_json::from_str(answer).unwrap_or_else(|e| panic!("ShareGroups.java said {answer:?}: {e}"))
}

/// The start offsets of share group `group`, as Kafka's Java admin client reads them:
/// `(topic, partition, start offset)`, sorted.
pub fn share_group_offsets(bootstrap: &str, group: &str) -> Vec<(String, i32, i64)> {
    let answer = share_groups_tool("offsets", bootstrap, &[group]);
    let mut offsets: Vec<(String, i32, i64)> = answer["offsets"]
        .as_array()
        .expect("offsets")
        .iter()
        .map(|o| {
            let topic = o["topic"].as_str().expect("topic").to_string();
            (topic, o["partition"].as_i64().unwrap() as i32, o["start_offset"].as_i64().unwrap())
        })
        .collect();
    offsets.sort();
    offsets
}

/// Sets the start offset of share group `group` (created when missing) on `topic`-`partition`,
/// through Kafka's Java admin client.
pub fn alter_share_group_offset(bootstrap: &str, group: &str, topic: &str, partition: i32, offset: i64) {
    share_groups_tool("alter", bootstrap, &[group, topic, &partition.to_string(), &offset.to_string()]);
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

/// Commits `offset` of `topic`-`partition` for each `(group, partition, offset)`, with
/// confluent-kafka, in one process (an estate's worth of groups).
pub fn commit_many(bootstrap: &str, topic: &str, commits: &[(String, i32, i64)]) {
    let commits: Vec<_> = commits
        .iter()
        .map(|(group, partition, offset)| {
            serde_json::json!({"group": group, "offsets": [{"topic": topic, "partition": partition, "offset": offset}]})
        })
        .collect();
    refclient("commit-many", serde_json::json!({"bootstrap": bootstrap, "commits": commits}));
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

/// An unsigned JWT for `sub` that the test clusters' unsecured OAUTHBEARER validator accepts,
/// valid for `lifetime_s` seconds from now (negative: already expired).
pub fn unsecured_jwt(sub: &str, lifetime_s: i64) -> String {
    let answer = refclient("unsecured-jwt", serde_json::json!({"sub": sub, "lifetime_s": lifetime_s}));
    answer["token"].as_str().expect("token").to_string()
}
