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
        // A template unit is verified as one of its instances.
        let name = unit.file_name().unwrap().to_string_lossy().replace("@.", "@1.");
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

/// `helm ARGS` (built by scripts/install-test-infra.sh into .test-infra/bin).
fn helm(args: &[&str]) -> std::process::Output {
    let helm = repo_root().join(".test-infra/bin/helm");
    assert!(helm.exists(), "{} is missing: run scripts/install-test-infra.sh", helm.display());
    Command::new(helm).args(args).output().unwrap()
}

/// The pod spec of a rendered workload.
fn pod_spec(object: &serde_yaml_ng::Value) -> &serde_yaml_ng::Value {
    match object["kind"].as_str().unwrap() {
        "CronJob" => &object["spec"]["jobTemplate"]["spec"]["template"],
        _ => &object["spec"]["template"],
    }
}

#[test]
fn the_helm_chart_lints_renders_every_workload_and_its_configs_pass_the_binarys_check() {
    let chart = repo_root().join("deploy/helm/kafka-backup");
    let chart = chart.to_str().unwrap();
    let lint = helm(&["lint", "--strict", chart]);
    assert_success(&lint);

    let role = "serviceAccount.annotations.eks\\.amazonaws\\.com/role-arn=arn:aws:iam::123456789012:role/kafka-backup";
    let everything = [
        "--set",
        "backup.schedule.enabled=true",
        "--set",
        "restore.enabled=true",
        "--set",
        "metrics.serviceMonitor.enabled=true",
        "--set",
        "metrics.port=9555",
        "--set",
        role,
    ];
    let mut args = vec!["template", "dr", chart];
    args.extend_from_slice(&everything);
    let rendered = helm(&args);
    assert_success(&rendered);
    let objects = rendered_objects(&rendered);
    let of_kind = |kind: &str| objects.iter().filter(|o| o["kind"] == kind).collect::<Vec<_>>();
    for kind in ["Deployment", "CronJob", "Job", "ConfigMap", "Service", "ServiceMonitor", "ServiceAccount"] {
        assert_eq!(of_kind(kind).len(), 1, "one {kind} rendered");
    }
    let account = of_kind("ServiceAccount")[0];
    assert!(account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].is_string(), "{account:?}");

    // Every config file passes the binary's own check, and says where its metrics are served.
    let dir = tempfile::TempDir::new().unwrap();
    let binary = env!("CARGO_BIN_EXE_kafka-backup");
    let files = of_kind("ConfigMap")[0]["data"].as_mapping().unwrap().clone();
    assert_eq!(files.len(), 3, "continuous, snapshot and restore configs");
    for (name, body) in &files {
        let path = dir.path().join(name.as_str().unwrap());
        std::fs::write(&path, body.as_str().unwrap()).unwrap();
        let check =
            Command::new(binary).args(["config", "check", "--config", path.to_str().unwrap()]).output().unwrap();
        assert_success(&check);
        let config: serde_yaml_ng::Value = serde_yaml_ng::from_str(body.as_str().unwrap()).unwrap();
        assert_eq!(config["metrics"]["listen"], "0.0.0.0:9555", "{name:?}");
    }

    // Each workload: its command parses and names a config of the ConfigMap; the metrics port is
    // the config's; the continuous backup's probes ask /health and /ready there; non-root, with a
    // read-only root file system.
    for workload in [of_kind("Deployment")[0], of_kind("CronJob")[0], of_kind("Job")[0]] {
        let pod = pod_spec(workload);
        let container = &pod["spec"]["containers"][0];
        let args: Vec<&str> = container["args"].as_sequence().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
        let help = Command::new(binary).args(&args).arg("--help").output().unwrap();
        assert_success(&help);
        let file = args.last().unwrap().strip_prefix("/etc/kafka-backup/").expect("a config of the ConfigMap");
        assert!(files.contains_key(file), "{file}");
        assert_eq!(container["ports"][0]["containerPort"], 9555);
        assert_eq!(container["ports"][0]["name"], "metrics");
        assert_eq!(pod["metadata"]["annotations"]["prometheus.io/port"], "9555");
        assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
        assert_eq!(pod["spec"]["securityContext"]["runAsNonRoot"], true);
        if workload["kind"] == "Deployment" {
            assert_eq!(args[2], "backup");
            assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/health");
            assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/ready");
            assert_eq!(container["livenessProbe"]["httpGet"]["port"], "metrics");
            let config: serde_yaml_ng::Value = serde_yaml_ng::from_str(files[file].as_str().unwrap()).unwrap();
            assert_eq!(config["backup"]["continuous"], true);
        }
    }

    // Several workers of one backup need a group: refused without one, not ignored.
    let refused = helm(&["template", "dr", chart, "--set", "backup.continuous.replicas=2"]);
    assert!(!refused.status.success() && text(&refused.stderr).contains("needs backup.continuous.groupId"));
    // With one, the workers' config names the group (and passes the binary's check), the snapshot's does not.
    let workers = helm(&[
        "template",
        "dr",
        chart,
        "--set",
        "backup.continuous.replicas=3",
        "--set",
        "backup.continuous.groupId=dr-workers",
        "--set",
        "backup.schedule.enabled=true",
    ]);
    assert_success(&workers);
    let objects = rendered_objects(&workers);
    let deployment = objects.iter().find(|o| o["kind"] == "Deployment").expect("a Deployment");
    assert_eq!(deployment["spec"]["replicas"], 3);
    assert_eq!(deployment["spec"]["strategy"]["type"], "RollingUpdate");
    let files = &objects.iter().find(|o| o["kind"] == "ConfigMap").expect("a ConfigMap")["data"];
    let continuous: serde_yaml_ng::Value = serde_yaml_ng::from_str(files["continuous.yaml"].as_str().unwrap()).unwrap();
    assert_eq!(continuous["backup"]["group_id"], "dr-workers");
    let snapshot: serde_yaml_ng::Value = serde_yaml_ng::from_str(files["snapshot.yaml"].as_str().unwrap()).unwrap();
    assert!(snapshot["backup"].get("group_id").is_none(), "a snapshot is one process");
    let dir = tempfile::TempDir::new().unwrap();
    let config = dir.path().join("continuous.yaml");
    std::fs::write(&config, files["continuous.yaml"].as_str().unwrap()).unwrap();
    assert_success(&run(&["config", "check", "--config", config.to_str().unwrap()]));

    // A restore shared by several pods: a Job running them in parallel, its config naming the group.
    let refused = helm(&["template", "dr", chart, "--set", "restore.enabled=true", "--set", "restore.workers=3"]);
    assert!(!refused.status.success() && text(&refused.stderr).contains("needs restore.groupId"));
    let shared = helm(&[
        "template",
        "dr",
        chart,
        "--set",
        "restore.enabled=true",
        "--set",
        "restore.workers=3",
        "--set",
        "restore.groupId=dr-restore",
    ]);
    assert_success(&shared);
    let objects = rendered_objects(&shared);
    let job = objects.iter().find(|o| o["kind"] == "Job").expect("a Job");
    assert_eq!((job["spec"]["parallelism"].as_i64(), job["spec"]["completions"].as_i64()), (Some(3), Some(3)));
    let files = &objects.iter().find(|o| o["kind"] == "ConfigMap").expect("a ConfigMap")["data"];
    let restore: serde_yaml_ng::Value = serde_yaml_ng::from_str(files["restore.yaml"].as_str().unwrap()).unwrap();
    assert_eq!(restore["restore"]["group_id"], "dr-restore");
    let config = dir.path().join("restore.yaml");
    std::fs::write(&config, files["restore.yaml"].as_str().unwrap()).unwrap();
    assert_success(&run(&["config", "check", "--config", config.to_str().unwrap()]));
}

/// The objects `helm template` rendered.
fn rendered_objects(rendered: &std::process::Output) -> Vec<serde_yaml_ng::Value> {
    text(&rendered.stdout)
        .split("\n---")
        .map(|document| serde_yaml_ng::from_str(document).unwrap())
        .filter(|object: &serde_yaml_ng::Value| !object.is_null())
        .collect()
}
