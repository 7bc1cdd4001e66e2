//! Where the test infrastructure is and small things every test needs: the repository root, the
//! programs `scripts/install-test-infra.sh` installs, local tool servers, free ports, unique names.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

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
