//! What operators see of a run, against the Apache Kafka "source" and "target" clusters: the
//! Prometheus endpoint scraped during a continuous backup and parsed by the official Python client,
//! its health and readiness answers.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Stdio;

use common::*;
use kafka_backup_testkit::{self as testkit, free_port, infra_program, repo_root, unique, KafkaCluster};
use tempfile::TempDir;

/// `GET path` on 127.0.0.1:`port`: the status code and the body.
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    let status = answer.split(' ').nth(1)?.parse().ok()?;
    let body = answer.split_once("\r\n\r\n")?.1.to_string();
    Some((status, body))
}

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
    let port = free_port();
    let settings = "  continuous: true\n  segment_max_interval_ms: 500\n  checkpoint_interval_secs: 1\n";
    let config = write_config(dir.path(), &source, "metered", &topic, settings);
    let with_metrics = std::fs::read_to_string(&config).unwrap() + &format!("metrics:\n  listen: 127.0.0.1:{port}\n");
    std::fs::write(&config, with_metrics).unwrap();
    let child = spawn(&["backup", "--config", config.to_str().unwrap()], false);

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
