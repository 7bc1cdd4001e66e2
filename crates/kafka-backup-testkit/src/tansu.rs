//! Tansu, the Kafka-compatible broker of the compatibility suite: one in-memory broker per test.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::infra::{free_port, infra_program};

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
