//! The local Apache Kafka clusters of the tests (`tools/clusters.py`): started once per test binary,
//! shared by its tests, with their listeners, nodes and logs.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use serde::Deserialize;

use crate::infra::{infra_program, repo_root};

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
