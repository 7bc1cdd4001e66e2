//! What ships for deployment, checked as the tools that consume it check it: the systemd units
//! under `deploy/systemd` pass `systemd-analyze verify` (with the binary path pointed at the one
//! built here), and every `kafka-backup` command line in them parses; every metric the Grafana
//! dashboard and the Prometheus alert rules under `deploy/monitoring` name is served by a live
//! `/metrics`.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::*;
use kafka_backup_testkit::{self as testkit, repo_root, unique, KafkaCluster};

const INSTALLED: &str = "/usr/local/bin/kafka-backup";

fn units() -> Vec<PathBuf> {
    let mut units: Vec<PathBuf> =
        std::fs::read_dir(repo_root().join("deploy/systemd")).unwrap().map(|entry| entry.unwrap().path()).collect();
    units.sort();
    units
}

#[test]
fn systemd_units_verify_and_their_commands_parse() {
    let dir = tempfile::TempDir::new().unwrap();
    let binary = env!("CARGO_BIN_EXE_kafka-backup");
    let mut names = Vec::new();
    let mut commands = Vec::new();
    for unit in units() {
        let text = std::fs::read_to_string(&unit).unwrap();
        for line in text.lines() {
            if let Some(command) = line.strip_prefix("ExecStart=").or_else(|| line.strip_prefix("ExecStartPre=")) {
                commands.push(command.to_string());
            }
        }
        let name = unit.file_name().unwrap().to_string_lossy().into_owned();
        std::fs::write(dir.path().join(&name), text.replace(INSTALLED, binary)).unwrap();
        names.push(name);
    }
    assert!(names.iter().any(|n| n.ends_with(".timer")) && names.len() >= 3, "{names:?}");
    let verify = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(&names)
        .current_dir(dir.path())
        .output()
        .expect("systemd-analyze (Debian package systemd) is needed to check the units");
    assert!(
        verify.status.success(),
        "systemd-analyze verify: {}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );

    // Each command line parses as written (its --help stops before anything runs).
    assert!(commands.len() >= 3, "{commands:?}");
    for command in commands {
        let words: Vec<&str> = command.split_whitespace().collect();
        assert_eq!(words[0], INSTALLED, "{command}");
        let output = Command::new(binary).args(&words[1..]).arg("--help").output().unwrap();
        assert!(output.status.success(), "{command}: {}", String::from_utf8_lossy(&output.stderr));
    }
}

/// Every `kafka_backup_*` name in `text`.
fn metric_names(text: &str) -> Vec<String> {
    let mut names: Vec<String> = text
        .match_indices("kafka_backup_")
        .map(|(at, _)| text[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect())
        .collect();
    names.sort();
    names.dedup();
    names
}

#[test]
fn every_metric_the_dashboard_and_the_alert_rules_name_is_served() {
    let monitoring = repo_root().join("deploy/monitoring");
    let rules_text = std::fs::read_to_string(monitoring.join("alerts.yaml")).unwrap();
    let dashboard_text = std::fs::read_to_string(monitoring.join("dashboard.json")).unwrap();

    // The files are what their consumers load: rule groups with an expression, a duration and a
    // severity per alert; a dashboard whose panels each query something.
    let rules: serde_yaml_ng::Value = serde_yaml_ng::from_str(&rules_text).expect("alerts.yaml is YAML");
    let alerts = rules["groups"][0]["rules"].as_sequence().expect("a group of rules");
    assert!(alerts.len() >= 5, "{alerts:?}");
    for alert in alerts {
        let name = alert["alert"].as_str().expect("each rule is an alert");
        assert!(alert["expr"].as_str().is_some_and(|e| e.contains("kafka_backup_")), "{name}");
        assert!(alert["for"].is_string() && alert["labels"]["severity"].is_string(), "{name}");
        assert!(alert["annotations"]["summary"].is_string(), "{name}");
    }
    let dashboard: serde_json::Value = serde_json::from_str(&dashboard_text).expect("dashboard.json is JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(panels.iter().all(|p| p["targets"].as_array().is_some_and(|t| !t.is_empty())), "every panel queries");

    // A live /metrics: a continuous backup, asked while it runs.
    let source = KafkaCluster::source().bootstrap();
    let topic = unique("monitored");
    testkit::create_topic(&source, &topic, 1, &[]);
    testkit::produce_small(&source, &topic, 0, 10);
    let dir = tempfile::TempDir::new().unwrap();
    let settings = "  continuous: true\n  segment_max_interval_ms: 500\n";
    let (child, port) = backup_with_metrics(dir.path(), &source, "monitored", &topic, settings);
    wait_for("the backup to be ready", HANG, || get(port, "/ready").is_some_and(|(status, _)| status == 200));
    let (_, served) = get(port, "/metrics").expect("metrics answer");
    send_signal(&child, "-TERM");
    assert_success(&wait_with_deadline(child, HANG));

    let served_type =
        |name: &str| served.lines().find_map(|line| line.strip_prefix(&format!("# TYPE {name} ")).map(str::to_string));
    let named = metric_names(&(rules_text + &dashboard_text));
    assert!(named.len() >= 10, "{named:?}");
    for name in named {
        let histogram_series = ["_bucket", "_count", "_sum"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .is_some_and(|base| served_type(base).as_deref() == Some("histogram"));
        assert!(
            served_type(&name).is_some() || histogram_series,
            "{name} is named in deploy/monitoring but not served"
        );
    }
}
