//! The `kafka-backup` binary as a user runs it: help, bad offset-reset input, and
//! `cluster-info` against the Apache Kafka "source" cluster whose data confluent-kafka wrote.

use std::process::{Command, Output};

use kafka_backup_testkit::{self as testkit, unique, KafkaCluster};

fn kafka_backup(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kafka-backup")).args(args).output().expect("run kafka-backup")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

const COMMANDS: [&str; 8] =
    ["backup", "restore", "list", "describe", "validate", "offset-reset", "three-phase-restore", "cluster-info"];

#[test]
fn help_lists_every_command_of_the_design() {
    let output = kafka_backup(&["--help"]);
    assert!(output.status.success());
    // The first word of each line of the "Commands:" list, so that "three-phase-restore" does not
    // stand in for "restore".
    let help = stdout(&output);
    let listed: Vec<&str> = help
        .lines()
        .skip_while(|line| !line.starts_with("Commands:"))
        .skip(1)
        .take_while(|line| line.starts_with("  "))
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    for command in COMMANDS {
        assert!(listed.contains(&command), "--help lacks {command}: {listed:?}");
    }
}

#[test]
fn offset_commands_name_what_is_missing_and_fail() {
    let dir = tempfile::TempDir::new().unwrap();
    let root = dir.path().to_str().unwrap();
    let cases: [(&[&str], &str); 5] = [
        (&["offset-reset", "plan", "--path", root, "--backup-id", "nightly"], "--groups"),
        (&["offset-reset", "plan", "--path", root, "--backup-id", "nightly", "--all-groups"], "no backup nightly"),
        (&["offset-reset", "plan", "--path", root, "--all-groups"], "--backup-id"),
        (
            &["offset-reset", "plan", "--path", root, "--backup-id", "b", "--groups", "g", "--strategy", "guess"],
            "guess",
        ),
        (&["three-phase-restore", "--config", "missing.yaml"], "missing.yaml"),
    ];
    for (args, expected) in cases {
        let output = kafka_backup(args);
        assert!(!output.status.success(), "{args:?} must exit non-zero");
        assert!(stderr(&output).contains(expected), "{args:?}: {}", stderr(&output));
    }
}

#[test]
fn cluster_info_reports_topics_leaders_and_offsets() {
    let cluster = KafkaCluster::source();
    let (payments, audit) = (unique("payments"), unique("audit"));
    testkit::create_topic(&cluster.bootstrap(), &payments, 2, &[]);
    testkit::create_topic(&cluster.bootstrap(), &audit, 1, &[]);
    testkit::produce_small(&cluster.bootstrap(), &payments, 1, 4);
    testkit::produce_small(&cluster.bootstrap(), &audit, 0, 2);

    let output = kafka_backup(&["cluster-info", "--bootstrap-servers", &cluster.bootstrap(), "--format", "json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let info: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON output");
    assert_eq!(info["cluster_id"], cluster.cluster_id());
    assert_eq!(info["brokers"][0]["address"], cluster.bootstrap());
    let topic = |name: &str| info["topics"].as_array().unwrap().iter().find(|t| t["name"] == name).cloned().unwrap();
    let offsets = |name: &str| -> Vec<(i64, i64, i64)> {
        topic(name)["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["partition"].as_i64().unwrap(),
                    p["earliest_offset"].as_i64().unwrap(),
                    p["latest_offset"].as_i64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(offsets(&payments), vec![(0, 0, 0), (1, 0, 4)]);
    assert_eq!(offsets(&audit), vec![(0, 0, 2)]);
    let leader = topic(&audit)["partitions"][0]["leader"].clone();
    assert_eq!(leader, info["brokers"][0]["node_id"]);

    let text = kafka_backup(&["cluster-info", "--bootstrap-servers", &cluster.bootstrap()]);
    assert!(text.status.success());
    let text = stdout(&text);
    assert!(
        text.contains(&format!("{payments} (2 partitions)")) && text.contains(&format!("{audit} (1 partitions)")),
        "{text}"
    );
}

#[test]
fn cluster_info_against_a_dead_broker_fails_naming_it() {
    let dead = format!("127.0.0.1:{}", testkit::free_port());
    let output = kafka_backup(&["cluster-info", "--bootstrap-servers", &dead, "--timeout-secs", "2"]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains(&dead), "{}", stderr(&output));
}

/// `kafka-backup config check --config FILE` with `env` set.
fn config_check(path: &std::path::Path, env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kafka-backup"))
        .args(["config", "check", "--config", path.to_str().unwrap()])
        .envs(env.iter().copied())
        .output()
        .expect("run kafka-backup")
}

#[test]
fn config_check_passes_every_example_and_names_what_is_wrong_without_connecting() {
    // Every shipped example, with the variables it names set (no broker runs at k:9092).
    let examples = testkit::repo_root().join("config");
    let key = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";
    let env = [
        ("KAFKA_BOOTSTRAP", "k:9092"),
        ("KAFKA_DR_BOOTSTRAP", "k:9092"),
        ("KAFKA_BACKUP_ENCRYPTION_KEY", key),
        ("KAFKA_SASL_PASSWORD", "sasl-secret"),
        ("AZURE_STORAGE_ACCOUNT_KEY", "YXp1cmUta2V5"),
        ("KAFKA_OIDC_CLIENT_SECRET", "oidc-secret"),
    ];
    let mut checked = 0;
    for entry in std::fs::read_dir(&examples).unwrap() {
        let path = entry.unwrap().path();
        let output = config_check(&path, &env);
        assert!(output.status.success(), "{}: {}", path.display(), stderr(&output));
        assert!(stdout(&output).starts_with("OK: "), "{}", stdout(&output));
        checked += 1;
    }
    assert!(checked >= 4, "the example configs were found");

    let dir = tempfile::TempDir::new().unwrap();
    let write = |name: &str, yaml: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, yaml).unwrap();
        path
    };
    let storage = "storage:\n  backend: filesystem\n  path: /tmp/kafka-backup-config-check\n";
    let valid = write(
        "valid.yaml",
        &format!(
            "mode: backup\nbackup_id: b1\nsource:\n  bootstrap_servers: [k:1]\n  topics:\n    include: [t]\n{storage}"
        ),
    );
    let json = Command::new(env!("CARGO_BIN_EXE_kafka-backup"))
        .args(["config", "check", "--config", valid.to_str().unwrap(), "--format", "json"])
        .output()
        .unwrap();
    let report: serde_json::Value =
        serde_json::from_slice(&json.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(&json)));
    assert_eq!((report["mode"].as_str(), report["backup_id"].as_str()), (Some("backup"), Some("b1")));

    let cases = [
        ("unknown-key.yaml", "mode: backup\nbackup_id: b\nsource:\n  bootstrap_servers: [k:1]\n  tpics: {}\n", "source.tpics"),
        ("missing-variable.yaml", "mode: backup\nbackup_id: b\nsource:\n  bootstrap_servers: [\"${NOT_SET_HERE}\"]\n", "NOT_SET_HERE"),
        (
            "missing-ca.yaml",
            "mode: backup\nbackup_id: b\nsource:\n  bootstrap_servers: [k:1]\n  security_protocol: SSL\n  ssl_ca_location: /nonexistent/ca.pem\n",
            "/nonexistent/ca.pem",
        ),
        ("bad-value.yaml", "mode: restore\nbackup_id: b\ntarget:\n  bootstrap_servers: [k:1]\nrestore:\n  max_concurrent_partitions: 0\n", "max_concurrent_partitions"),
    ];
    for (name, yaml, named) in cases {
        let output = config_check(&write(name, &format!("{yaml}{storage}")), &[]);
        assert_eq!(output.status.code(), Some(1), "{name} must fail");
        assert!(stderr(&output).contains(named) && stderr(&output).contains(name), "{name}: {}", stderr(&output));
    }
}

#[test]
fn completions_man_page_and_version_are_generated_by_the_binary() {
    for shell in ["bash", "zsh", "fish"] {
        let output = kafka_backup(&["completions", shell]);
        assert!(output.status.success(), "{shell}: {}", stderr(&output));
        let script = stdout(&output);
        for command in COMMANDS {
            assert!(script.contains(command), "{shell} completion lacks {command}");
        }
    }
    let man = kafka_backup(&["man"]);
    assert!(man.status.success());
    let page = stdout(&man);
    assert!(page.contains(".TH kafka-backup 1") && page.contains("three\\-phase\\-restore"), "{page}");
    let version = stdout(&kafka_backup(&["--version"]));
    assert!(version.starts_with(&format!("kafka-backup {} (commit ", env!("CARGO_PKG_VERSION"))), "{version}");
}
