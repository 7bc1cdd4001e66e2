//! Object-store emulators for tests (`tools/store_emulator.py`): moto for S3, azurite for Azure
//! Blob, one per test, with a bucket made and listed by each cloud's own SDK (`tools/store_admin.py`).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};

use serde::Deserialize;
use tempfile::TempDir;

use crate::{free_port, infra_program, repo_root, start_tool_server};

/// The emulated service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// S3 (moto; state in memory, lost when it stops).
    S3,
    /// Azure Blob (azurite; blobs on disk, kept across a restart).
    Azure,
}

impl StoreKind {
    fn name(self) -> &'static str {
        match self {
            StoreKind::S3 => "s3",
            StoreKind::Azure => "azure",
        }
    }
}

/// The emulator's well-known Azure account and key.
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
/// The key of [`AZURITE_ACCOUNT`] (public, published with the emulator).
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// A watcher that freezes the emulator on the first multipart upload
/// ([`StoreEmulator::freeze_on_next_upload`]).
pub struct UploadFreeze {
    child: Child,
    stdout: BufReader<std::process::ChildStdout>,
}

impl UploadFreeze {
    /// Waits until an upload was caught: its key, or why none was (after 120 s).
    pub fn key(mut self) -> Result<String, String> {
        let mut key = String::new();
        self.stdout.read_line(&mut key).map_err(|e| e.to_string())?;
        let output = self.child.wait_with_output().map_err(|e| e.to_string())?;
        match output.status.success() {
            true => Ok(key.trim().to_string()),
            false => Err(String::from_utf8_lossy(&output.stderr).into_owned()),
        }
    }
}

/// A running emulator with one bucket (or container) named `bucket`; stopped when dropped.
pub struct StoreEmulator {
    kind: StoreKind,
    port: u16,
    data: TempDir,
    wrapper: Option<(Child, ChildStdin)>,
    pid: u32,
    /// The bucket (S3) or container (Azure) the tests use.
    pub bucket: String,
}

/// What a bucket holds, read with the cloud's SDK.
#[derive(Debug, Deserialize)]
pub struct BucketListing {
    /// Every object's key and size.
    pub objects: BTreeMap<String, u64>,
    /// Keys of multipart uploads neither completed nor aborted (S3).
    pub incomplete_uploads: Vec<String>,
    /// Each object's storage class (S3).
    pub storage_classes: BTreeMap<String, String>,
    /// Each object's server-side encryption (S3; "none" without).
    pub encryption: BTreeMap<String, String>,
}

impl StoreEmulator {
    /// Starts an emulator of `kind` on a free port and creates the bucket `backups`.
    pub fn start(kind: StoreKind) -> Self {
        let mut emulator = Self {
            kind,
            port: free_port(),
            data: TempDir::new().expect("emulator data dir"),
            wrapper: None,
            pid: 0,
            bucket: "backups".into(),
        };
        emulator.launch();
        emulator.admin("create");
        emulator
    }

    fn launch(&mut self) {
        let mut child = Command::new(infra_program("python"))
            .arg(repo_root().join("tools/store_emulator.py"))
            .args([self.kind.name(), &self.port.to_string(), &self.data.path().display().to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start tools/store_emulator.py");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).expect("emulator output");
        let pid = line.strip_prefix("ready ").and_then(|p| p.trim().parse().ok());
        self.pid = pid.unwrap_or_else(|| panic!("{} emulator did not start: {line:?}", self.kind.name()));
        let stdin = child.stdin.take().unwrap();
        self.wrapper = Some((child, stdin));
    }

    /// The endpoint URL our config's `storage.endpoint` takes (Azure: with the account path).
    pub fn endpoint(&self) -> String {
        match self.kind {
            StoreKind::S3 => format!("http://127.0.0.1:{}", self.port),
            StoreKind::Azure => format!("http://127.0.0.1:{}/{AZURITE_ACCOUNT}", self.port),
        }
    }

    /// The `storage:` section (YAML, indented under `storage:`) reaching `prefix` in the bucket.
    pub fn storage_yaml(&self, prefix: &str) -> String {
        self.storage_yaml_at(&self.endpoint(), prefix)
    }

    /// Like [`Self::storage_yaml`], through another endpoint (a [`FaultyProxy`] in front of it).
    pub fn storage_yaml_at(&self, endpoint: &str, prefix: &str) -> String {
        match self.kind {
            StoreKind::S3 => format!(
                "  backend: s3\n  bucket: {}\n  prefix: {prefix}\n  endpoint: {endpoint}\n  allow_http: true\n  path_style: true\n  region: us-east-1\n  access_key_id: test\n  secret_access_key: test\n",
                self.bucket,
            ),
            StoreKind::Azure => format!(
                "  backend: azure\n  container: {}\n  prefix: {prefix}\n  account: {AZURITE_ACCOUNT}\n  endpoint: {endpoint}\n  allow_http: true\n  account_key: {AZURITE_KEY}\n",
                self.bucket,
            ),
        }
    }

    /// The `--path` URL of `prefix` in the bucket.
    pub fn url(&self, prefix: &str) -> String {
        match self.kind {
            StoreKind::S3 => format!("s3://{}/{prefix}", self.bucket),
            StoreKind::Azure => format!("az://{}/{prefix}", self.bucket),
        }
    }

    /// The environment a `--path` command needs to reach this emulator (each cloud's standard variables).
    pub fn env(&self) -> Vec<(String, String)> {
        let pairs: Vec<(&str, String)> = match self.kind {
            StoreKind::S3 => vec![
                ("AWS_ENDPOINT_URL", self.endpoint()),
                ("AWS_ALLOW_HTTP", "true".into()),
                ("AWS_REGION", "us-east-1".into()),
                ("AWS_ACCESS_KEY_ID", "test".into()),
                ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ],
            StoreKind::Azure => vec![
                ("AZURE_STORAGE_ACCOUNT_NAME", AZURITE_ACCOUNT.into()),
                ("AZURE_STORAGE_ACCOUNT_KEY", AZURITE_KEY.into()),
                ("AZURE_STORAGE_ENDPOINT", self.endpoint()),
                ("AZURE_ALLOW_HTTP", "true".into()),
            ],
        };
        pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }

    /// Every object in the bucket and every incomplete multipart upload, read with the cloud's SDK.
    pub fn list(&self) -> BucketListing {
        serde_json::from_str(&self.admin("list")).expect("store_admin.py list output")
    }

    /// Starts watching for the first multipart upload (S3), returning once the watcher polls:
    /// it freezes the emulator (SIGSTOP) the moment one is under way. Started before the writer,
    /// so a short upload cannot finish while the watcher is still starting. [`Self::resume`] lets
    /// the emulator go on.
    pub fn freeze_on_next_upload(&self) -> UploadFreeze {
        let mut child = Command::new(infra_program("python"))
            .arg(repo_root().join("tools/store_admin.py"))
            .args(["freeze-on-upload", self.kind.name(), &self.endpoint(), &self.bucket, &self.pid.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run tools/store_admin.py");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
        let mut ready = String::new();
        stdout.read_line(&mut ready).expect("read tools/store_admin.py");
        assert_eq!(ready.trim(), "ready", "store_admin.py freeze-on-upload did not start polling");
        UploadFreeze { child, stdout }
    }

    /// Freezes the emulator (S3) as soon as object `key` exists. Call [`StoreEmulator::resume`] to
    /// let it go on.
    pub fn stall_when_object_exists(&self, key: &str) {
        self.admin_with("freeze-on-object", &[key, &self.pid.to_string()]);
    }

    /// Starts a multipart upload of `key` and leaves it unfinished (S3), as a killed writer would.
    pub fn start_unfinished_upload(&self, key: &str) {
        self.admin_with("start-upload", &[key]);
    }

    fn admin(&self, command: &str) -> String {
        self.admin_with(command, &[])
    }

    fn admin_with(&self, command: &str, extra: &[&str]) -> String {
        let output = Command::new(infra_program("python"))
            .arg(repo_root().join("tools/store_admin.py"))
            .args([command, self.kind.name(), &self.endpoint(), &self.bucket])
            .args(extra)
            .output()
            .expect("run tools/store_admin.py");
        assert!(output.status.success(), "store_admin.py {command}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).expect("utf-8")
    }

    /// Starts an HTTP proxy in front of the emulator that answers every `every_503`th request
    /// with "503 Slow Down" and resets the connection after every `every_reset`th (0: never).
    pub fn faulty_proxy(&self, every_503: u32, every_reset: u32) -> FaultyProxy {
        let log = self.data.path().join(format!("faulty-proxy-{}.log", free_port()));
        let (child, port) = start_tool_server(
            "faulty_proxy.py",
            &[&self.port.to_string(), &every_503.to_string(), &every_reset.to_string()],
            std::fs::File::create(&log).expect("proxy log").into(),
        );
        let path = match self.kind {
            StoreKind::S3 => String::new(),
            StoreKind::Azure => format!("/{AZURITE_ACCOUNT}"),
        };
        FaultyProxy { child, endpoint: format!("http://127.0.0.1:{port}{path}"), log }
    }

    /// Freezes the emulator (SIGSTOP): requests hang until [`Self::resume`].
    pub fn stall(&self) {
        self.signal("-STOP");
    }

    /// Lets a stalled emulator go on (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    /// Takes the emulator down at once: its clients see refused connections, as in a crash.
    /// moto gets SIGKILL; azurite SIGINT, because it saves its metadata database only every
    /// few seconds and on an interrupt, so a SIGKILL (or SIGTERM) would lose containers and blobs
    /// already acknowledged (a real service never does; the emulator's gap, not a fault to test).
    pub fn kill(&mut self) {
        self.signal(match self.kind {
            StoreKind::S3 => "-KILL",
            StoreKind::Azure => "-INT",
        });
        // Let it exit on its own (azurite saves its database) before the wrapper cleans up.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while self.alive() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        if let Some((mut child, stdin)) = self.wrapper.take() {
            drop(stdin);
            let _ = child.wait();
        }
    }

    /// Starts the emulator again on the same port and data directory (Azure keeps its blobs).
    pub fn restart(&mut self) {
        assert!(self.wrapper.is_none(), "restart follows kill");
        self.launch();
    }

    /// Whether the emulator still runs (a zombie waiting for the wrapper to reap it does not).
    fn alive(&self) -> bool {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).unwrap_or_default();
        let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next());
        state.is_some_and(|state| state != "Z")
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill").args([signal, &self.pid.to_string()]).status().expect("kill");
        assert!(status.success(), "kill {signal} {}", self.pid);
    }
}

/// A proxy failing chosen requests to an emulator (`tools/faulty_proxy.py`); stopped when dropped.
pub struct FaultyProxy {
    child: Child,
    /// The endpoint to give our config instead of the emulator's.
    pub endpoint: String,
    log: std::path::PathBuf,
}

impl FaultyProxy {
    /// How many requests got a 503 and how many had their connection reset so far.
    pub fn faults(&self) -> (usize, usize) {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        (log.lines().filter(|l| l.ends_with(": 503")).count(), log.lines().filter(|l| l.contains(": reset")).count())
    }
}

impl Drop for FaultyProxy {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

impl Drop for StoreEmulator {
    /// Closes the wrapper's stdin: it stops the emulator and exits.
    fn drop(&mut self) {
        if let Some((mut child, stdin)) = self.wrapper.take() {
            drop(stdin);
            let _ = child.wait();
        }
    }
}
