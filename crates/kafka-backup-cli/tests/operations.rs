//! What operators see of a run, against the Apache Kafka "source" and "target" clusters: the
//! Prometheus endpoint scraped during a continuous backup and parsed by the official Python client,
//! its health and readiness answers; progress on a pseudo-terminal; every command's JSON output and
//! JSON log lines; `find` over backups with gaps.

mod common;

use std::io::Write;
use std::process::Stdio;

use common::*;
use kafka_backup_testkit::{self as testkit, infra_program, repo_root, unique, KafkaCluster};
use tempfile::TempDir;

/// The exposition text parsed by `prometheus_client` (tools/parse_metrics.py), which fails on
/// anything that is not valid exposition format.
fn parse(exposition: &str) -> serde_json::Value {
    let mut parser = std::process::Command::new(infra_program("python"))
        .arg(repo_root().join("tools/parse_metrics.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    parser.stdin.take().unwrap().write_all(exposition.as_bytes()).unwrap();
    let output = parser.wait_with_output().unwrap();
    assert_success(&output);
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The value of sample `name` with `labels` among the parsed `families`.
fn sample(families: &serde_json::Value, family: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let samples = families[family]["samples"].as_array()?;
    samples.iter().find_map(|s| {
        let matches = s[0] == name && labels.iter().all(|(k, v)| s[1][*k] == *v);
        matches.then(|| s[2].as_f64()).flatten()
    })
}

#[test]
fn metrics_health_and_readiness_are_served_during_a_continuous_backup() {
    let source = KafkaCluster::source().bootstrap();
    let topic = unique("metered");
    testkit::create_topic(&source, &topic, 2, &[]);
    testkit::produce_small(&source, &topic, 0, 100);
    let dir = TempDir::new().unwrap();
    let settings = "  continuous: true\n  segment_max_interval_ms: 500\n  checkpoint_interval_secs: 1\n";
    let (child, port) = backup_with_metrics(dir.path(), &source, "metered", &topic, settings);

    wait_for("the backup to be ready", HANG, || get(port, "/ready").is_some_and(|(status, _)| status == 200));
    assert_eq!(get(port, "/health"), Some((200, "ok\n".to_string())));
    assert_eq!(get(port, "/nothing").map(|(status, _)| status), Some(404));
    let scrape = || {
        let (status, body) = get(port, "/metrics").expect("metrics answer");
        assert_eq!(status, 200);
        parse(&body)
    };
    let labels = [("topic", topic.as_str()), ("partition", "0")];
    let records = |families: &serde_json::Value| {
        sample(families, "kafka_backup_records", "kafka_backup_records_total", &labels).unwrap_or(0.0)
    };
    wait_for("the first 100 records in the metrics", HANG, || records(&scrape()) == 100.0);
    testkit::produce_small(&source, &topic, 0, 50);
    wait_for("the next 50 records in the metrics", HANG, || {
        let families = scrape();
        records(&families) == 150.0
            && sample(&families, "kafka_backup_lag_records", "kafka_backup_lag_records", &labels) == Some(0.0)
    });
    wait_for("a committed segment in the metrics", HANG, || {
        let families = scrape();
        let segments = "kafka_backup_segments_committed_total";
        sample(&families, "kafka_backup_segments_committed", segments, &labels).unwrap_or(0.0) >= 1.0
    });
    let families = scrape();
    let types = [
        ("kafka_backup_records", "counter"),
        ("kafka_backup_read_bytes", "counter"),
        ("kafka_backup_stored_bytes", "counter"),
        ("kafka_backup_segments_committed", "counter"),
        ("kafka_backup_last_segment_commit_timestamp_seconds", "gauge"),
        ("kafka_backup_lag_records", "gauge"),
        ("kafka_backup_storage_request_duration_seconds", "histogram"),
        ("kafka_backup_kafka_request_duration_seconds", "histogram"),
    ];
    for (family, kind) in types {
        assert_eq!(families[family]["type"], kind, "{family}: {}", families[family]);
    }
    let fetches = sample(
        &families,
        "kafka_backup_kafka_request_duration_seconds",
        "kafka_backup_kafka_request_duration_seconds_count",
        &[("api", "Fetch")],
    );
    assert!(fetches.unwrap_or(0.0) >= 1.0, "{}", families["kafka_backup_kafka_request_duration_seconds"]);
    let committed_at = sample(
        &families,
        "kafka_backup_last_segment_commit_timestamp_seconds",
        "kafka_backup_last_segment_commit_timestamp_seconds",
        &labels,
    );
    let now = now_ms() as f64 / 1000.0;
    assert!(committed_at.is_some_and(|at| at > now - 600.0 && at <= now + 1.0), "{committed_at:?}");

    send_signal(&child, "-TERM");
    let output = wait_with_deadline(child, HANG);
    assert_success(&output);
}

#[test]
fn the_uncommitted_age_grows_while_records_wait_for_their_segment_and_drops_to_zero_at_the_commit() {
    let source = KafkaCluster::source().bootstrap();
    let topic = unique("recovery-point");
    testkit::create_topic(&source, &topic, 1, &[]);
    let dir = TempDir::new().unwrap();
    let settings = "  continuous: true\n  segment_max_interval_ms: 5000\n";
    let (child, port) = backup_with_metrics(dir.path(), &source, "rpo", &topic, settings);
    wait_for("the backup to be ready", HANG, || get(port, "/ready").is_some_and(|(status, _)| status == 200));
    let labels = [("topic", topic.as_str()), ("partition", "0")];
    let read = |name: &str| {
        let (_, body) = get(port, "/metrics").expect("metrics answer");
        metric_value(&body, name, &labels)
    };
    testkit::produce_small(&source, &topic, 0, 10);
    wait_for("the records to be fetched", HANG, || read("kafka_backup_records_total") == Some(10.0));
    wait_for("an age for the uncommitted records", HANG, || {
        read("kafka_backup_uncommitted_age_seconds").is_some_and(|age| age > 0.0)
    });
    let first = read("kafka_backup_uncommitted_age_seconds").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let later = read("kafka_backup_uncommitted_age_seconds").unwrap();
    assert_eq!(read("kafka_backup_segments_committed_total"), None, "nothing committed yet (5 s interval)");
    assert!(later >= first + 0.5 && later < 5.0, "the age grows while the segment is open: {first} then {later}");
    wait_for("the segment to commit and the age to drop to 0", HANG, || {
        read("kafka_backup_segments_committed_total") == Some(1.0)
            && read("kafka_backup_uncommitted_age_seconds") == Some(0.0)
    });
    send_signal(&child, "-TERM");
    assert_success(&wait_with_deadline(child, HANG));
}

/// `kafka-backup ARGS` on a pseudo-terminal (tools/in_pty.py): everything it drew, and its status.
fn on_terminal(args: &[&str]) -> (bool, String) {
    let output = std::process::Command::new(infra_program("python"))
        .arg(repo_root().join("tools/in_pty.py"))
        .arg(env!("CARGO_BIN_EXE_kafka-backup"))
        .args(args)
        .output()
        .unwrap();
    (output.status.success(), text(&output.stdout))
}

#[test]
fn progress_is_drawn_on_a_terminal_only_and_never_with_quiet() {
    let source = KafkaCluster::source().bootstrap();
    let topic = unique("progress");
    testkit::create_topic(&source, &topic, 1, &[]);
    testkit::produce_small(&source, &topic, 0, 30_000);
    let dir = TempDir::new().unwrap();
    let drawn = "/30,000 records";
    let config = write_config(dir.path(), &source, "drawn", &topic, "");
    let (ok, screen) = on_terminal(&["backup", "--config", config.to_str().unwrap()]);
    assert!(ok, "{screen}");
    assert!(screen.contains(drawn) && screen.contains("backup ["), "no progress on a terminal: {screen}");
    assert!(screen.contains("Backup drawn"), "the summary follows: {screen}");

    let config = write_config(dir.path(), &source, "detailed", &topic, "");
    let (ok, screen) = on_terminal(&["backup", "--config", config.to_str().unwrap(), "--progress-partitions"]);
    assert!(ok && screen.contains(&format!("{topic}-0: 30000 records, lag 0")), "{screen}");

    let config = write_config(dir.path(), &source, "quiet", &topic, "");
    let (ok, screen) = on_terminal(&["backup", "--config", config.to_str().unwrap(), "--quiet"]);
    assert!(ok && screen.contains("Backup quiet") && !screen.contains(drawn), "{screen}");

    let config = write_config(dir.path(), &source, "piped", &topic, "");
    let output = backup(&config);
    assert_success(&output);
    let all = text(&output.stdout) + &text(&output.stderr);
    assert!(!all.contains(drawn) && !all.contains('\r') && !all.contains('\u{1b}'), "{all}");
}

fn json_of(output: &std::process::Output) -> serde_json::Value {
    assert_success(output);
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(&output.stdout)))
}

#[test]
fn every_command_answers_in_json_and_logs_as_json_lines() {
    let (source, target) = (KafkaCluster::source().bootstrap(), KafkaCluster::target().bootstrap());
    let (topic, group, original) = fidelity_topic_with_group(&source);
    let dir = TempDir::new().unwrap();
    let config = write_config(dir.path(), &source, "json", &topic, "");
    let config_arg = config.to_str().unwrap();
    let store = store_path(dir.path());
    let json = |args: &[&str]| json_of(&run(args));

    let backed_up = json(&["backup", "--config", config_arg, "--format", "json"]);
    assert_eq!(backed_up["counters"]["records"], original.len() as u64, "{backed_up}");
    assert!(backed_up["duration_seconds"].as_f64().is_some() && backed_up["interrupted"] == false, "{backed_up}");
    let listed = json(&["list", "--path", &store, "--format", "json"]);
    assert_eq!(listed[0]["backup_id"], "json");
    let described = json(&["describe", "--path", &store, "--backup-id", "json", "--format", "json"]);
    assert_eq!(described["topics"][0]["name"], topic.as_str());
    let validated = json(&["validate", "--path", &store, "--backup-id", "json", "--deep", "--format", "json"]);
    assert_eq!((validated["ok"].as_bool(), validated["depth"].as_str()), (Some(true), Some("deep")), "{validated}");
    assert_eq!(validated["records_checked"], original.len() as u64);
    let cluster = json(&["cluster-info", "--bootstrap-servers", &target, "--format", "json"]);
    assert_eq!(cluster["cluster_id"], KafkaCluster::target().cluster_id());

    let copy = unique("json-copy");
    let settings = format!("  topic_mapping:\n    {topic}: {copy}\n");
    let restore_config = write_restore_config(dir.path(), "copy", &target, "json", &settings);
    let restore_arg = restore_config.to_str().unwrap();
    let planned = json(&["restore", "--config", restore_arg, "--dry-run", "--format", "json"]);
    assert_eq!(planned["restore"]["dry_run"], true);
    assert_eq!(planned["restore"]["plan"]["topics"][0]["target"], copy.as_str(), "{planned}");
    let restored = json(&["three-phase-restore", "--config", restore_arg, "--format", "json"]);
    assert_eq!(restored["restore"]["records"], original.len() as u64, "{restored}");
    assert_eq!(restored["strategy"], "exact");
    let reset_id = restored["reset"]["reset_id"].as_str().expect("a reset record").to_string();
    let verified = json(&["verify", "--config", restore_arg, "--format", "json"]);
    assert_eq!(verified["partitions"].as_array().map(Vec::len), Some(2));

    let location = ["--path", &store, "--backup-id", "json", "--bootstrap-servers", &target];
    let mut plan_args = vec!["offset-reset", "plan"];
    plan_args.extend(location);
    plan_args.extend(["--groups", &group, "--format", "json"]);
    let plan = json(&plan_args);
    assert!(plan["offsets"].as_array().is_some_and(|o| !o.is_empty()), "{plan}");
    let mut rollback_args = vec!["offset-reset", "rollback"];
    rollback_args.extend(location);
    rollback_args.extend(["--reset-id", &reset_id, "--format", "json"]);
    let rolled_back = json(&rollback_args);
    assert_eq!(rolled_back["reset_id"], reset_id.as_str(), "{rolled_back}");
    plan_args[1] = "execute";
    let executed = json(&plan_args);
    assert!(executed["reset"]["reset_id"].as_str().is_some_and(|id| id != reset_id), "{executed}");

    // JSON logs: every stderr line is one JSON object; the failure itself is one, with the error.
    let failed = run(&["validate", "--path", &store, "--backup-id", "missing", "--log-format", "json"]);
    assert!(!failed.status.success());
    let lines: Vec<serde_json::Value> = text(&failed.stderr)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}")))
        .collect();
    let last = lines.last().expect("an error line");
    assert_eq!(last["level"], "ERROR");
    assert!(last["error"].as_str().is_some_and(|e| e.contains("no backup missing")), "{last}");
    assert!(last["timestamp"].is_string(), "{last}");
}

#[test]
fn find_names_the_backups_holding_a_topic_at_a_time_with_their_offsets_and_gaps() {
    let source = KafkaCluster::source().bootstrap();
    let topic = unique("found");
    testkit::create_topic(&source, &topic, 1, &[]);
    testkit::produce_small(&source, &topic, 0, 100);
    let dir = TempDir::new().unwrap();
    let first_records = now_ms();
    for id in ["early", "gapped"] {
        assert_success(&backup(&write_config(dir.path(), &source, id, &topic, "")));
    }
    testkit::produce_small(&source, &topic, 0, 100);
    testkit::delete_records(&source, &topic, 0, 150);
    for id in ["gapped", "late"] {
        assert_success(&backup(&write_config(dir.path(), &source, id, &topic, "")));
    }
    let store = store_path(dir.path());
    let find = |at: i64| {
        let output = run(&["find", "--path", &store, "--topic", &topic, "--at", &at.to_string(), "--format", "json"]);
        assert_success(&output);
        serde_json::from_slice::<serde_json::Value>(&output.stdout).unwrap()
    };
    let found = find(first_records);
    let holding: Vec<&str> =
        found["holding"].as_array().unwrap().iter().map(|h| h["backup_id"].as_str().unwrap()).collect();
    assert_eq!(holding, ["gapped", "early"], "the most recently updated first: {found}");
    assert_eq!(found["not_at_that_time"], serde_json::json!(["late"]), "{found}");
    let gapped = &found["holding"][0]["partitions"][0];
    assert_eq!((gapped["first_offset"].as_i64(), gapped["last_offset"].as_i64()), (Some(0), Some(199)), "{gapped}");
    assert_eq!((gapped["gaps"][0]["from"].as_i64(), gapped["gaps"][0]["to"].as_i64()), (Some(100), Some(150)));
    assert_eq!(gapped["records"], 150);
    let early = &found["holding"][1]["partitions"][0];
    assert_eq!((early["last_offset"].as_i64(), early["records"].as_i64()), (Some(99), Some(100)), "{early}");

    // After every backup was written: nobody holds that time.
    let found = find(now_ms() + 3_600_000);
    assert_eq!(found["holding"], serde_json::json!([]), "{found}");
    // Text, with an RFC 3339 time.
    let output = run(&["find", "--path", &store, "--topic", &topic, "--at", "2001-01-01T00:00:00Z"]);
    assert_success(&output);
    assert!(text(&output.stdout).contains("none"), "{}", text(&output.stdout));
}
