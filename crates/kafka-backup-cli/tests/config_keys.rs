//! Documented config keys that no other end-to-end test shows taking effect, each run against the
//! Apache Kafka clusters and checked from outside: topic exclusion, the zstd level, the request
//! timeout, the record rate limit, the consumer-group selection of a restore, and the refusal of
//! connection security that is not implemented yet or not complete; and configs of
//! osodevops/kafka-backup migrated by `config migrate --from oso`, then run. (`client_id` and `connect_timeout_secs` have
//! no effect observable from here: the first is only seen in broker request logs, the second needs
//! an address that never answers a TCP handshake, which loopback cannot give.)

mod common;

use std::net::TcpListener;
use std::time::Instant;

use common::*;
use kafka_backup_testkit::{self as testkit, unique, KafkaCluster, RefRecord};
use tempfile::TempDir;

fn source() -> String {
    KafkaCluster::source().bootstrap()
}

#[test]
fn topics_exclude_removes_topics_the_include_patterns_match() {
    let prefix = unique("selection");
    for name in ["kept", "dropped"] {
        testkit::create_topic(&source(), &format!("{prefix}-{name}"), 1, &[]);
        testkit::produce_small(&source(), &format!("{prefix}-{name}"), 0, 3);
    }
    let dir = TempDir::new().unwrap();
    let config = write_config(dir.path(), &source(), "selected", &format!("{prefix}-*"), "");
    let with_exclude = std::fs::read_to_string(&config)
        .unwrap()
        .replace("storage:", &format!("    exclude: [\"{prefix}-dropped\"]\nstorage:"));
    std::fs::write(&config, with_exclude).unwrap();
    assert_success(&backup(&config));
    let topics: Vec<String> = describe_json(dir.path(), "selected")["topics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(topics, vec![format!("{prefix}-kept")]);
}

#[test]
fn compression_level_changes_what_zstd_stores() {
    let topic = unique("levels");
    testkit::create_topic(&source(), &topic, 1, &[]);
    // Compressible but not trivially: numbered JSON-like lines.
    let records: Vec<RefRecord> = (0..3000)
        .map(|i| RefRecord {
            partition: Some(0),
            value: Some(
                format!("{{\"order\":{i},\"customer\":\"c-{}\",\"amount\":{}}}", i % 97, i * 7 % 1000).into_bytes(),
            ),
            ..RefRecord::default()
        })
        .collect();
    testkit::produce(&source(), &topic, &records, &[]);
    let dir = TempDir::new().unwrap();
    let stored = |level: u32| {
        let id = format!("zstd-{level}");
        let settings = format!("  compression: zstd\n  compression_level: {level}\n");
        assert_success(&backup(&write_config(dir.path(), &source(), &id, &topic, &settings)));
        assert_eq!(backed_up_records(dir.path(), &id, &topic).len(), 3000);
        let segment = segment_files(dir.path(), &id, &topic, 0).remove(0);
        std::fs::metadata(segment).unwrap().len()
    };
    let (fast, small) = (stored(1), stored(19));
    assert!(small < fast, "level 19 stores less than level 1: {small} vs {fast} bytes");
}

#[test]
fn request_timeout_secs_bounds_a_broker_that_accepts_but_never_answers() {
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = silent.local_addr().unwrap().to_string();
    let dir = TempDir::new().unwrap();
    let config = write_config(dir.path(), &address, "silent", "*", "");
    let text_config = std::fs::read_to_string(&config)
        .unwrap()
        .replace("  topics:", "  request_timeout_secs: 1\n  bootstrap_timeout_secs: 3\n  topics:");
    std::fs::write(&config, text_config).unwrap();
    let output = wait_with_deadline(spawn(&["backup", "--config", config.to_str().unwrap()], false), HANG);
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(stderr.contains(&address) && stderr.contains("ApiVersions") && stderr.contains("1s"), "{stderr}");
}

#[test]
fn rate_limit_records_per_sec_is_never_exceeded() {
    let topic = unique("records-rate");
    testkit::create_topic(&source(), &topic, 1, &[]);
    testkit::produce_small(&source(), &topic, 0, 600);
    let dir = TempDir::new().unwrap();
    assert_success(&backup(&write_config(dir.path(), &source(), "paced", &topic, "")));
    let target = KafkaCluster::target().bootstrap();
    let config = write_restore_config(dir.path(), "paced", &target, "paced", "  rate_limit_records_per_sec: 200\n");
    // A lower bound only (see restore.rs, the byte rate): 600 records at 200/s take at least 3 s.
    let started = Instant::now();
    assert_success(&restore(&config, &[]));
    let elapsed = started.elapsed().as_secs_f64();
    assert!(elapsed >= 3.0, "600 records in {elapsed:.2} s exceed 200 records/s");
    assert_eq!(testkit::consume(&target, &topic, &[0]).len(), 600);
}

#[test]
fn restore_consumer_groups_selects_the_groups_whose_offsets_are_committed() {
    let (s, t) = (source(), KafkaCluster::target().bootstrap());
    let topic = unique("chosen");
    testkit::create_topic(&s, &topic, 1, &[]);
    testkit::produce_small(&s, &topic, 0, 10);
    let prefix = unique("team");
    let (billing, shipping, scratch) =
        (format!("{prefix}-billing"), format!("{prefix}-shipping"), format!("{prefix}-scratch"));
    for (group, offset) in [(&billing, 3), (&shipping, 5), (&scratch, 7)] {
        testkit::commit(&s, group, &[(&topic, 0, offset)]);
    }
    let dir = TempDir::new().unwrap();
    assert_success(&backup(&write_config(dir.path(), &s, "teams", &topic, "")));
    let restored = unique("chosen-copy");
    let settings = format!(
        "  topic_mapping:\n    {topic}: {restored}\n  consumer_groups:\n    include: [\"{prefix}-*\"]\n    \
         exclude: [\"{scratch}\"]\n"
    );
    let output = run(&[
        "three-phase-restore",
        "--config",
        write_restore_config(dir.path(), "teams", &t, "teams", &settings).to_str().unwrap(),
    ]);
    assert_success(&output);
    assert_eq!(testkit::committed(&t, &billing, &restored, &[0])[&0], 3);
    assert_eq!(testkit::committed(&t, &shipping, &restored, &[0])[&0], 5);
    assert!(testkit::committed(&t, &scratch, &restored, &[0])[&0] < 0, "the excluded group is left alone");
}

#[test]
fn security_that_is_not_implemented_yet_is_refused_before_connecting() {
    let dir = TempDir::new().unwrap();
    let cases = [
        ("oauth", "  security_protocol: SASL_PLAINTEXT\n  sasl_mechanism: OAUTHBEARER\n  sasl_username: u\n  sasl_password: p\n", "OAUTHBEARER"),
        ("no-credentials", "  security_protocol: SASL_SSL\n", "needs sasl_mechanism"),
        ("half", "  sasl_mechanism: SCRAM-SHA-512\n", "source.sasl_mechanism"),
        (
            "msk-user",
            "  security_protocol: SASL_SSL\n  sasl_mechanism: AWS_MSK_IAM\n  sasl_username: u\n  sasl_password: p\n",
            "from the AWS environment",
        ),
        ("region-alone", "  sasl_aws_region: eu-west-1\n", "without sasl_mechanism"),
        (
            "oidc-without-endpoint",
            "  security_protocol: SASL_SSL\n  sasl_mechanism: OAUTHBEARER\n  sasl_oauthbearer_client_id: c\n",
            "need the token endpoint",
        ),
        (
            "oidc-without-secret",
            "  security_protocol: SASL_SSL\n  sasl_mechanism: OAUTHBEARER\n  sasl_oauthbearer_token_endpoint_url: \
             https://idp.example.com/token\n  sasl_oauthbearer_client_id: c\n",
            "sasl_oauthbearer_client_secret",
        ),
        (
            "oidc-in-clear",
            "  security_protocol: SASL_SSL\n  sasl_mechanism: OAUTHBEARER\n  sasl_oauthbearer_token_endpoint_url: \
             http://idp.example.com/token\n  sasl_oauthbearer_client_id: c\n  sasl_oauthbearer_client_secret: s\n",
            "in clear",
        ),
        (
            "two-token-sources",
            "  security_protocol: SASL_SSL\n  sasl_mechanism: OAUTHBEARER\n  sasl_oauthbearer_token: t\n  \
             sasl_oauthbearer_token_endpoint_url: https://idp.example.com/token\n",
            "give one of",
        ),
    ];
    for (id, settings, expected) in cases {
        let config = write_config(dir.path(), &source(), id, "*", "");
        let text_config =
            std::fs::read_to_string(&config).unwrap().replace("  topics:", &format!("{settings}  topics:"));
        std::fs::write(&config, text_config).unwrap();
        let output = backup(&config);
        assert!(!output.status.success(), "{settings} is refused, not ignored");
        assert!(text(&output.stderr).contains(expected), "{}", text(&output.stderr));
        assert!(!dir.path().join("store").join(id).exists(), "nothing was written for {id}");
    }
}

/// Runs `config migrate --from oso` on `old` (written to `dir`), writing `new.yaml`; returns the
/// migrated file and what the command said on stderr.
fn migrate(dir: &std::path::Path, name: &str, old: &str) -> (std::path::PathBuf, String) {
    let source = dir.join(format!("{name}-oso.yaml"));
    std::fs::write(&source, old).unwrap();
    let migrated = dir.join(format!("{name}.yaml"));
    let output =
        run(&["config", "migrate", "--from", "oso", source.to_str().unwrap(), "--output", migrated.to_str().unwrap()]);
    assert_success(&output);
    let again =
        run(&["config", "migrate", "--from", "oso", source.to_str().unwrap(), "--output", migrated.to_str().unwrap()]);
    assert!(!again.status.success() && text(&again.stderr).contains("never overwritten"), "{}", text(&again.stderr));
    assert_success(&run(&["config", "check", "--config", migrated.to_str().unwrap()]));
    (migrated, text(&output.stderr))
}

#[test]
fn a_migrated_osodevops_config_backs_up_and_restores_every_record() {
    let topic = unique("migrated");
    testkit::create_topic(&source(), &topic, 2, &[]);
    let mut records = testkit::records_with_headers(0, 40);
    records.extend(testkit::records_with_headers(1, 30));
    testkit::produce(&source(), &topic, &records, &[]);
    let original = testkit::consume(&source(), &topic, &[0, 1]);
    let dir = TempDir::new().unwrap();
    let store = dir.path().join("store");
    let servers = |bootstrap: String| bootstrap.split(',').map(|s| format!("\n    - {s}")).collect::<String>();

    // Their keys: `security:` block, `offset_storage`, `sync_interval_secs`, `metrics.port`.
    let backup = format!(
        "mode: backup\nbackup_id: migrated\nsource:\n  bootstrap_servers:{}\n  security:\n    security_protocol: PLAINTEXT\n  \
         topics:\n    include:\n      - {topic}\nstorage:\n  backend: filesystem\n  path: {}\nbackup:\n  compression: zstd\n  \
         sync_interval_secs: 30\n  continuous: false\noffset_storage:\n  backend: sqlite\n  db_path: ./offsets.db\n",
        servers(source()),
        store.display()
    );
    let (config, said) = migrate(dir.path(), "backup", &backup);
    assert!(said.contains("not carried over: backup.sync_interval_secs") && said.contains("offset_storage"), "{said}");
    assert_success(&run(&["backup", "--config", config.to_str().unwrap()]));

    let target = KafkaCluster::target().bootstrap();
    let restored = format!("{topic}-restored");
    let restore = format!(
        "mode: restore\nbackup_id: migrated\ntarget:\n  bootstrap_servers:{}\n  topics:\n    include:\n      - {topic}\n\
         storage:\n  backend: filesystem\n  path: {}\nrestore:\n  topic_mapping:\n    {topic}: {restored}\n  \
         create_topics: true\n  produce_batch_size: 1000\n  checkpoint_interval_secs: 60\n",
        servers(target.clone()),
        store.display()
    );
    let (config, said) = migrate(dir.path(), "restore", &restore);
    assert!(said.contains("restore.produce_batch_size") && said.contains("restore.checkpoint_interval_secs"), "{said}");
    assert_success(&run(&["restore", "--config", config.to_str().unwrap()]));
    assert_eq!(
        testkit::consume(&target, &restored, &[0, 1]),
        original,
        "every record, restored with the migrated configs"
    );
}
