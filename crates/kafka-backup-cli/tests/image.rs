//! The container image (deploy/image/Containerfile, built by scripts/image.sh, which
//! scripts/test.sh runs once before the tests): its configuration, and a backup and a restore run
//! inside it with `buildah run` against the Apache Kafka clusters, the records compared with
//! confluent-kafka. Also the static binary it carries (static, stripped, at most 25 MB) and the
//! release of scripts/release.sh (which scripts/test.sh runs: it builds the binary, the image and
//! the chart package).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};

use common::*;
use kafka_backup_testkit::{self as testkit, repo_root, unique, KafkaCluster};
use tempfile::TempDir;

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// `buildah ARGS` on the repo's own storage (scripts/buildah-env.sh).
fn buildah(args: &[&str]) -> Output {
    let script = r#". scripts/buildah-env.sh && exec buildah "${BUILDAH_STORAGE[@]}" "$@""#;
    Command::new("bash")
        .args(["-c", script, "buildah"])
        .args(args)
        .current_dir(repo_root())
        .output()
        .expect("bash and buildah (scripts/install-test-infra.sh installs buildah)")
}

fn image() -> String {
    let name = format!("localhost/kafka-backup:{VERSION}");
    let found = buildah(&["inspect", "--type", "image", &name]);
    assert!(
        found.status.success(),
        "image {name} not found: run scripts/image.sh first (scripts/test.sh does)\n{}",
        text(&found.stderr)
    );
    name
}

/// A working container of the image, removed when dropped.
struct Container(String);

impl Container {
    fn new() -> Self {
        let output = buildah(&["from", "--pull-never", "--quiet", &image()]);
        assert_success(&output);
        Self(text(&output.stdout).trim().to_string())
    }

    /// Runs `kafka-backup ARGS` in the container with `dir` mounted as /work (`buildah run` lays
    /// the image's own volume over a bind mount on /data, as a builder step would see it).
    fn run(&self, dir: &std::path::Path, args: &[&str]) -> Output {
        let volume = format!("{}:/work", dir.display());
        let mut command = vec!["run", "--isolation", "chroot", "--volume", &volume, &self.0, "--"];
        command.push("/usr/local/bin/kafka-backup");
        command.extend_from_slice(args);
        buildah(&command)
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = buildah(&["rm", &self.0]);
    }
}

#[test]
fn the_image_runs_as_a_non_root_user_with_data_volume_and_metrics_port() {
    let output = buildah(&["inspect", "--type", "image", &image()]);
    assert_success(&output);
    let inspected: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let config = &inspected["OCIv1"]["config"];
    assert_eq!(config["User"], "65532:65532", "{config}");
    assert!(config["ExposedPorts"].get("9464/tcp").is_some(), "{config}");
    assert!(config["Volumes"].get("/data").is_some(), "{config}");
    assert_eq!(config["Entrypoint"], serde_json::json!(["/usr/local/bin/kafka-backup"]), "{config}");
    assert_eq!(config["Labels"]["org.opencontainers.image.version"], VERSION, "{config}");

    let container = Container::new();
    let dir = TempDir::new().unwrap();
    let version = container.run(dir.path(), &["--version"]);
    assert_success(&version);
    assert!(text(&version.stdout).starts_with(&format!("kafka-backup {VERSION}")), "{}", text(&version.stdout));
}

#[test]
fn a_backup_and_a_restore_run_inside_the_image_and_keep_every_record() {
    let source = KafkaCluster::source().bootstrap();
    let target = KafkaCluster::target().bootstrap();
    let topic = unique("imaged");
    testkit::create_topic(&source, &topic, 2, &[]);
    let mut records = testkit::records_with_headers(0, 300);
    records.extend(testkit::records_with_headers(1, 200));
    testkit::produce(&source, &topic, &records, &[]);
    let original = testkit::consume(&source, &topic, &[0, 1]);

    // /work in the container is this directory, written by the image's user (uid 65532).
    let dir = TempDir::new().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let storage = "  backend: filesystem\n  path: /work/store\n";
    write_config_on(dir.path(), storage, &source, "imaged", &topic, "");
    let restored = format!("{topic}-restored");
    let mapping = format!("  topic_mapping:\n    {topic}: {restored}\n");
    write_restore_config_on(dir.path(), storage, "restore", &target, "imaged", &mapping);

    let container = Container::new();
    assert_success(&container.run(dir.path(), &["backup", "--config", "/work/imaged.yaml"]));
    let store = std::fs::metadata(dir.path().join("store")).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&store), 65532, "written by the image's non-root user");
    assert_success(&container.run(dir.path(), &["restore", "--config", "/work/restore.yaml"]));
    assert_eq!(testkit::consume(&target, &restored, &[0, 1]), original, "every record, byte for byte");
}

#[test]
fn the_static_binary_is_static_stripped_and_small() {
    let binary = repo_root().join("target/static/kafka-backup");
    assert!(binary.exists(), "{} is missing: run scripts/static-binary.sh (scripts/test.sh does)", binary.display());
    let size = std::fs::metadata(&binary).unwrap().len();
    assert!(size <= 25 * 1024 * 1024, "{size} bytes, more than 25 MB");
    let described = Command::new("file").arg(&binary).output().expect("file(1)");
    let described = text(&described.stdout);
    assert!(described.contains("statically linked") || described.contains("static-pie linked"), "{described}");
    assert!(described.contains("stripped") && !described.contains("not stripped"), "{described}");
}

#[test]
fn the_release_holds_the_binary_tarball_the_image_and_the_chart_with_their_checksums() {
    let dist = repo_root().join("target/dist").join(VERSION);
    assert!(
        dist.join("SHA256SUMS").exists(),
        "{} is missing: run scripts/release.sh (scripts/test.sh does)",
        dist.display()
    );
    let sums = std::fs::read_to_string(dist.join("SHA256SUMS")).unwrap();
    let name = format!("kafka-backup-{VERSION}-x86_64-linux-musl");
    for file in
        [format!("{name}.tar.gz"), format!("kafka-backup-{VERSION}.oci.tar"), format!("kafka-backup-{VERSION}.tgz")]
    {
        assert!(sums.lines().any(|line| line.ends_with(&format!("  {file}"))), "{file} in SHA256SUMS:\n{sums}");
    }
    let check =
        Command::new("sha256sum").args(["--check", "--quiet", "SHA256SUMS"]).current_dir(&dist).output().unwrap();
    assert_success(&check);

    let unpacked = TempDir::new().unwrap();
    let tar = Command::new("tar")
        .args(["-xzf", dist.join(format!("{name}.tar.gz")).to_str().unwrap(), "-C", unpacked.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert_success(&tar);
    let folder = unpacked.path().join(&name);
    let shipped = std::fs::read(folder.join("kafka-backup")).unwrap();
    assert_eq!(shipped, std::fs::read(repo_root().join("target/static/kafka-backup")).unwrap(), "the static binary");
    for file in ["LICENSE", "README.md", "CHANGELOG.md", "kafka-backup.1", "completions/kafka-backup.bash"] {
        assert!(std::fs::metadata(folder.join(file)).is_ok_and(|m| m.len() > 0), "{file} in the tarball");
    }
}
