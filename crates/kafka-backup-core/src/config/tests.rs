//! Resolution of config files: defaults, every range check and refusal, `${VAR}` substitution,
//! and the key paths errors name.

use super::*;
use crate::kafka::{SecurityProtocol, TlsSettings};
use crate::secret::Secret;
use crate::storage::StorageConfig;

const MINIMAL: &str = "
mode: backup
backup_id: nightly
source:
  bootstrap_servers: [\"k1:9092\"]
  topics:
    include: [\"orders-*\"]
storage:
  backend: filesystem
  path: /var/backups
";

fn parse(text: &str) -> Result<BackupConfig, ConfigError> {
    BackupConfig::from_yaml(text, |name| (name == "KAFKA_HOST").then(|| "kafka.internal".to_string()))
}

fn error_of(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

#[test]
fn the_metrics_section_turns_the_endpoint_on_at_its_address() {
    assert_eq!(parse(MINIMAL).unwrap().metrics, None, "off without the section");
    let on = |section: &str| parse(&format!("{MINIMAL}metrics:\n{section}"));
    assert_eq!(on("  enabled: true\n").unwrap().metrics, Some(DEFAULT_METRICS_LISTEN.parse().unwrap()));
    assert_eq!(on("  listen: 0.0.0.0:9500\n").unwrap().metrics, Some("0.0.0.0:9500".parse().unwrap()));
    assert_eq!(on("  enabled: false\n  listen: 0.0.0.0:9500\n").unwrap().metrics, None);
    let error = on("  listen: localhost\n").unwrap_err().to_string();
    assert!(error.contains("metrics.listen") && error.contains("IP:PORT"), "{error}");
    assert!(on("  port: 9\n").unwrap_err().to_string().contains("port"));
}

#[test]
fn the_retention_section_gives_prune_its_policy() {
    let with = |section: &str| parse(&format!("{MINIMAL}retention:\n{section}"));
    let policy = with("  keep_last: 3\n  keep_within: 7d\n  keep_daily: 7\n  keep_weekly: 4\n  keep_monthly: 12\n  segment_retention: 30d\n")
        .unwrap()
        .retention
        .unwrap();
    assert_eq!(
        policy,
        RetentionPolicy {
            keep_last: Some(3),
            keep_within: Some(Duration::from_secs(7 * 86_400)),
            keep_daily: Some(7),
            keep_weekly: Some(4),
            keep_monthly: Some(12),
            segment_retention: Some(Duration::from_secs(30 * 86_400)),
        }
    );
    assert!(with("  keep_within: soon\n").unwrap_err().to_string().contains("retention.keep_within"));
    assert!(parse(&format!("{MINIMAL}retention: {{}}\n")).is_err(), "an empty policy is refused");
    let restore = "mode: restore\nbackup_id: b\ntarget:\n  bootstrap_servers: [\"k:9\"]\nstorage:\n  backend: memory\nretention:\n  keep_last: 1\n";
    let error = RestoreJob::from_yaml(restore, |_| None).unwrap_err().to_string();
    assert!(error.contains("retention") && error.contains("not used in mode restore"), "{error}");
}

#[test]
fn defaults_fill_an_empty_backup_section() {
    let config = parse(MINIMAL).unwrap();
    assert_eq!(config.location.backup_id, "nightly");
    assert_eq!(config.settings.compression, Compression::Zstd);
    assert_eq!(config.settings.segment_max_bytes, 128 * MIB);
    assert_eq!(config.settings.max_concurrent_partitions, 4);
    assert!(!config.settings.continuous);
    assert_eq!(
        config.location.store.storage,
        StorageConfig::Filesystem { path: "/var/backups".into(), prefix: String::new() }
    );
}

#[test]
fn unknown_keys_are_named_with_their_path() {
    let text = MINIMAL.replace("include:", "inclde:");
    assert!(error_of(&text).contains("source.topics"), "{}", error_of(&text));
    let text = format!("{MINIMAL}backup:\n  segment_max_byte: 10\n");
    let error = error_of(&text);
    assert!(error.contains("backup") && error.contains("segment_max_byte"), "{error}");
}

#[test]
fn wrong_types_and_ranges_are_named() {
    let error = error_of(&format!("{MINIMAL}backup:\n  max_concurrent_partitions: many\n"));
    assert!(error.contains("backup.max_concurrent_partitions"), "{error}");
    let error = error_of(&format!("{MINIMAL}backup:\n  max_concurrent_partitions: 0\n"));
    assert!(error.contains("backup.max_concurrent_partitions") && error.contains("out of range"), "{error}");
    let error = error_of(&format!("{MINIMAL}backup:\n  compression: lz4\n  compression_level: 3\n"));
    assert!(error.contains("backup.compression_level") && error.contains("no levels"), "{error}");
    let error = error_of(&format!("{MINIMAL}backup:\n  compression: zstd\n  compression_level: 40\n"));
    assert!(error.contains("1..=22"), "{error}");
    let error = error_of(&format!("{MINIMAL}backup:\n  compression: brotli\n"));
    assert!(error.contains("brotli"), "{error}");
}

#[test]
fn environment_variables_are_substituted_and_missing_ones_named() {
    let text = MINIMAL.replace("k1:9092", "${KAFKA_HOST}:9092");
    assert_eq!(parse(&text).unwrap().source.bootstrap_servers, vec!["kafka.internal:9092"]);
    let text = MINIMAL.replace("k1:9092", "${NOT_SET_ANYWHERE}:9092");
    let error = error_of(&text);
    assert!(error.contains("NOT_SET_ANYWHERE") && error.contains("line 5"), "{error}");
    assert_eq!(substitute_env("a $${LITERAL} b", |_| None).unwrap(), "a ${LITERAL} b");
}

#[test]
fn tls_settings_are_parsed_into_the_client_config() {
    // Real PEM files (the test CA of scripts/install-test-infra.sh): parsing checks them.
    let tls = kafka_backup_testkit::repo_root().join(".test-infra/tls");
    let text = MINIMAL.replace(
        "  topics:",
        &format!(
            "  security_protocol: SSL\n  ssl_ca_location: {0}/ca.pem\n  ssl_certificate_location: \
                 {0}/client.pem\n  ssl_key_location: {0}/client-encrypted.key\n  ssl_key_password: \
                 client-key-secret\n  ssl_endpoint_identification_algorithm: none\n  topics:",
            tls.display()
        ),
    );
    let source = parse(&text).unwrap().source;
    assert_eq!(source.security_protocol, SecurityProtocol::Ssl);
    let expected = TlsSettings {
        ca_location: Some(tls.join("ca.pem")),
        certificate_location: Some(tls.join("client.pem")),
        key_location: Some(tls.join("client-encrypted.key")),
        key_password: Some(Secret::new("client-key-secret".into())),
        verify_hostname: false,
    };
    assert_eq!(source.tls, expected);
}

#[test]
fn unsupported_features_are_refused_not_ignored() {
    let text = MINIMAL.replace("  topics:", "  sasl_mechanism: PLAIN\n  topics:");
    assert!(error_of(&text).contains("source.sasl_mechanism") && error_of(&text).contains("together"));
    let text = MINIMAL
        .replace("  topics:", "  sasl_mechanism: OAUTHBEARER\n  sasl_username: u\n  sasl_password: p\n  topics:");
    assert!(error_of(&text).contains("source.sasl_mechanism") && error_of(&text).contains("OAUTHBEARER"));
    let tls = kafka_backup_testkit::repo_root().join(".test-infra/tls");
    let text = MINIMAL.replace(
        "  topics:",
        &format!(
            "  security_protocol: SSL\n  ssl_certificate_location: {0}/client.pem\n  ssl_key_location: \
                 {0}/client-encrypted.key\n  ssl_key_password: not-the-password\n  topics:",
            tls.display()
        ),
    );
    let error = error_of(&text);
    assert!(error.contains("ssl_key_password does not open") && !error.contains("not-the-password"), "{error}");
    let text = MINIMAL.replace("  topics:", "  ssl_endpoint_identification_algorithm: maybe\n  topics:");
    assert!(error_of(&text).contains("source.ssl_endpoint_identification_algorithm"));
    let text = MINIMAL.replace("mode: backup", "mode: restore");
    assert!(error_of(&text).contains("mode"));
    let text = format!("{MINIMAL}restore:\n  dry_run: true\n");
    assert!(error_of(&text).contains("`restore`: not used in mode backup"), "{}", error_of(&text));
}

const RESTORE: &str = "
mode: restore
backup_id: nightly
target:
  bootstrap_servers: [\"dr:9092\"]
storage:
  backend: filesystem
  path: /var/backups
";

fn restore_error(extra: &str) -> String {
    RestoreJob::from_yaml(&format!("{RESTORE}{extra}"), |_| None).unwrap_err().to_string()
}

#[test]
fn a_refused_target_key_is_named_under_target() {
    let text = RESTORE.replace("  bootstrap_servers", "  sasl_mechanism: PLAIN\n  bootstrap_servers");
    let error = RestoreJob::from_yaml(&text, |_| None).unwrap_err().to_string();
    assert!(error.contains("target.sasl_mechanism"), "{error}");
}

#[test]
fn a_minimal_restore_selects_every_topic_with_defaults() {
    let config = RestoreJob::from_yaml(RESTORE, |_| None).unwrap().restore;
    assert!(config.topics.matches("anything", false));
    assert!(config.settings.create_topics && !config.settings.dry_run);
    assert_eq!(config.settings.window, TimeWindow::default());
}

#[test]
fn workers_share_a_restore_unless_it_routes_by_key_and_the_command_line_overrides_the_group() {
    let yaml = format!("{RESTORE}restore:\n  group_id: dr-restore\n  group_rebalance_timeout_ms: 120000\n");
    let shared = RestoreJob::from_yaml(&yaml, |_| None).unwrap().restore;
    let group = shared.settings.workers.clone().expect("a worker group");
    assert_eq!((group.group_id.as_str(), group.session_timeout), ("dr-restore", Duration::from_secs(30)));
    assert_eq!(group.rebalance_timeout, Duration::from_secs(120));
    let group = shared.with_group(None, Some("restore-0".into())).unwrap().settings.workers.unwrap();
    assert_eq!((group.group_id.as_str(), group.instance_id.as_deref()), ("dr-restore", Some("restore-0")));

    let error = restore_error("restore:\n  repartition: true\n  group_id: dr-restore\n");
    assert!(error.contains("restore.group_id") && error.contains("repartition"), "{error}");
    let by_key = RestoreJob::from_yaml(&format!("{RESTORE}restore:\n  repartition: true\n"), |_| None).unwrap();
    let error = by_key.restore.with_group(Some("g".into()), None).unwrap_err().to_string();
    assert!(error.contains("restore.group_id") && error.contains("repartition"), "{error}");
    let error = restore_error("restore:\n  group_session_timeout_ms: 6000\n");
    assert!(error.contains("restore.group_id") && error.contains("missing"), "{error}");
    let error = restore_error("restore:\n  group_id: \"a/b\"\n");
    assert!(error.contains("restore.group_id"), "{error}");
}

#[test]
fn restore_metadata_takes_acls_quotas_users_and_share_groups_and_refuses_schemas() {
    let yaml = format!("{RESTORE}restore:\n  metadata: [acls, quotas]\n");
    let metadata = RestoreJob::from_yaml(&yaml, |_| None).unwrap().restore.settings.metadata;
    assert!(metadata.acls && metadata.quotas && !metadata.users && !metadata.share_groups);
    let yaml = format!("{RESTORE}restore:\n  metadata: [share_groups]\n");
    assert!(RestoreJob::from_yaml(&yaml, |_| None).unwrap().restore.settings.metadata.share_groups);
    let none = RestoreJob::from_yaml(RESTORE, |_| None).unwrap().restore.settings.metadata;
    assert_eq!(none, RestoredAccess::default(), "nothing by default");
    let error = restore_error("restore:\n  metadata: [acls, schemas]\n");
    assert!(error.contains("restore.metadata") && error.contains("schemas") && error.contains("not implemented"));
    let error = restore_error("restore:\n  metadata: [acl]\n");
    assert!(error.contains("restore.metadata") && error.contains("\"acl\""), "{error}");
    let backup = parse(&format!("{MINIMAL}backup:\n  cluster_acls: true\n")).unwrap();
    assert!(backup.settings.cluster_acls && !parse(MINIMAL).unwrap().settings.cluster_acls);
}

#[test]
fn restore_incarnations_name_one_per_topic_counting_from_one() {
    let yaml = format!("{RESTORE}restore:\n  incarnations:\n    orders: 2\n");
    let incarnations = RestoreJob::from_yaml(&yaml, |_| None).unwrap().restore.settings.incarnations;
    assert_eq!(incarnations, BTreeMap::from([("orders".to_string(), 2)]));
    let error = restore_error("restore:\n  incarnations:\n    orders: 0\n");
    assert!(error.contains("restore.incarnations.orders") && error.contains("count from 1"), "{error}");
    let error = restore_error("restore:\n  incarnations:\n    orders: -1\n");
    assert!(error.contains("restore.incarnations"), "{error}");
}

#[test]
fn restore_start_offset_is_earliest_one_offset_or_offsets_by_partition_and_latest_is_refused() {
    let start = |yaml: &str| {
        RestoreJob::from_yaml(&format!("{RESTORE}restore:\n{yaml}"), |_| None)
            .map(|job| job.restore.settings.start_offset)
    };
    assert_eq!(RestoreJob::from_yaml(RESTORE, |_| None).unwrap().restore.settings.start_offset, StartOffset::Earliest);
    assert_eq!(start("  start_offset: earliest\n").unwrap(), StartOffset::Earliest);
    assert_eq!(start("  start_offset: 1200\n").unwrap(), StartOffset::Every(1200));
    let by_partition = start("  start_offset:\n    orders: {0: 5, 2: 7}\n").unwrap();
    assert_eq!(
        (by_partition.of("orders", 0), by_partition.of("orders", 1), by_partition.of("other", 0)),
        (Some(5), None, None)
    );
    let error = restore_error("restore:\n  start_offset: latest\n");
    assert!(error.contains("restore.start_offset") && error.contains("time_window_start"), "{error}");
    let error = restore_error("restore:\n  start_offset: -3\n");
    assert!(error.contains("restore.start_offset"), "{error}");
    let error = restore_error("restore:\n  start_offset:\n    orders: {x: 1}\n");
    assert!(error.contains("restore.start_offset.orders"), "{error}");
}

#[test]
fn bad_restore_settings_are_named() {
    let error = restore_error("restore:\n  time_window_start: 5\n  time_window_end: 4\n");
    assert!(error.contains("restore.time_window_start"), "{error}");
    let error = restore_error("restore:\n  partition_mapping:\n    t: {0: 1, 1: 1}\n");
    assert!(error.contains("restore.partition_mapping.t") && error.contains("target partition 1"), "{error}");
    let error = restore_error("restore:\n  repartition: true\n  partition_mapping:\n    t: {0: 1}\n");
    assert!(error.contains("repartition"), "{error}");
    let error = restore_error("restore:\n  consumer_group_strategy: headers\n");
    assert!(error.contains("restore.consumer_group_strategy") && error.contains("header-based"), "{error}");
    let error = restore_error("restore:\n  consumer_group_strategy: header-based\n");
    assert!(error.contains("include_original_offset_header: true"), "{error}");
    let error = restore_error("restore:\n  consumer_groups:\n    include: [\"~(\"]\n");
    assert!(error.contains("restore.consumer_groups"), "{error}");
    let error = restore_error("restore:\n  rate_limit_bytes_per_sec: 0\n");
    assert!(error.contains("restore.rate_limit_bytes_per_sec"), "{error}");
    let error = restore_error("source:\n  bootstrap_servers: [\"x:1\"]\n  topics:\n    include: [\"*\"]\n");
    assert!(error.contains("source.bootstrap_servers"), "{error}");
    let error = restore_error("backup:\n  compression: zstd\n");
    assert!(error.contains("`backup`: not used in mode restore"), "{error}");
    let error = restore_error("restore:\n  source_partitions:\n    t: []\n");
    assert!(error.contains("restore.source_partitions.t") && error.contains("at least one"), "{error}");
    let error = restore_error("restore:\n  source_partitions:\n    t: [0, -1]\n");
    assert!(error.contains("restore.source_partitions.t") && error.contains("-1"), "{error}");
    let error = restore_error("restore:\n  produce_compression: brotli\n");
    assert!(error.contains("restore.produce_compression"), "{error}");
}

fn storage_of(section: &str) -> Result<StorageConfig, String> {
    let text = MINIMAL.replace("  backend: filesystem\n  path: /var/backups\n", section);
    parse(&text).map(|config| config.location.store.storage).map_err(|error| error.to_string())
}

#[test]
fn cloud_storage_sections_resolve_from_keys_or_a_url() {
    use crate::secret::Secret;
    use crate::storage::{CloudProvider, ServerSideEncryption};
    let section =
        "  backend: s3\n  bucket: b\n  prefix: /k/p/\n  region: eu-west-1\n  endpoint: https://minio:9000\n  \
                       path_style: true\n  access_key_id: AK\n  secret_access_key: sk-secret\n  \
                       server_side_encryption: aws:kms\n  sse_kms_key_id: key-1\n  storage_class: STANDARD_IA\n  \
                       request_timeout_secs: 5\n  max_concurrent_requests: 4\n";
    let StorageConfig::Cloud(s3) = storage_of(section).unwrap() else { panic!("not cloud") };
    assert_eq!((s3.provider, s3.bucket.as_str(), s3.prefix.as_str()), (CloudProvider::S3, "b", "k/p"));
    assert_eq!((s3.region.as_deref(), s3.path_style, s3.max_concurrent_requests), (Some("eu-west-1"), Some(true), 4));
    assert_eq!(s3.credentials.secret_access_key, Some(Secret::new("sk-secret".into())));
    assert_eq!(s3.server_side_encryption, Some(ServerSideEncryption::Kms { key_id: Some("key-1".into()) }));
    assert_eq!(s3.request_timeout, Duration::from_secs(5));
    assert!(!format!("{s3:?}").contains("sk-secret"), "secrets never show in Debug");

    let by_url = storage_of("  url: az://backups/kafka\n  account: acct\n  account_key: k\n").unwrap();
    let StorageConfig::Cloud(azure) = by_url else { panic!("not cloud") };
    assert_eq!(
        (azure.provider, azure.bucket.as_str(), azure.prefix.as_str()),
        (CloudProvider::Azure, "backups", "kafka")
    );
    assert_eq!(azure.account.as_deref(), Some("acct"));
    let local = storage_of("  url: file:///srv/b\n").unwrap();
    assert_eq!(local, StorageConfig::Filesystem { path: "/srv/b".into(), prefix: String::new() });
    assert!(matches!(storage_of("  backend: gcs\n  bucket: g\n").unwrap(), StorageConfig::Cloud(_)));
}

#[test]
fn cloud_storage_mistakes_are_named() {
    let error = |section: &str| storage_of(section).unwrap_err();
    assert!(error("  backend: s3\n").contains("storage.bucket"), "{}", error("  backend: s3\n"));
    assert!(error("  backend: azure\n  bucket: b\n").contains("storage.container"));
    assert!(error("  backend: s3\n  bucket: b\n  account: a\n").contains("`storage.account`: not used by backend s3"));
    assert!(error("  backend: filesystem\n  path: /x\n  region: r\n").contains("storage.region"));
    assert!(error("  backend: s3\n  bucket: b\n  endpoint: http://minio:9000\n").contains("allow_http"));
    assert!(error("  backend: s3\n  bucket: b\n  access_key_id: a\n").contains("secret_access_key"));
    assert!(error("  backend: s3\n  bucket: b\n  server_side_encryption: rot13\n").contains("AES256"));
    assert!(error("  backend: s3\n  bucket: b\n  sse_kms_key_id: k\n").contains("aws:kms"));
    assert!(error("  url: s3://b/p\n  prefix: q\n").contains("storage.prefix"));
    assert!(error("  url: s3://b\n  backend: azure\n").contains("does not match"));
    assert!(error("  url: ftp://b\n").contains("unknown scheme"));
    assert!(error("  backend: tape\n").contains("unknown backend"));
    assert!(error("  prefix: p\n").contains("storage.url"));
    let secret = error("  backend: s3\n  bucket: b\n  access_key_id: a\n  secret_access_key: hush\n  account_key: k\n");
    assert!(!secret.contains("hush"), "{secret}");
}

#[test]
fn storage_and_id_are_checked() {
    let error = error_of(&MINIMAL.replace("  path: /var/backups\n", ""));
    assert!(error.contains("storage.path"), "{error}");
    let error = error_of(&MINIMAL.replace("nightly", "../escape"));
    assert!(error.contains("backup_id"), "{error}");
    let error = error_of(&MINIMAL.replace("[\"k1:9092\"]", "[]"));
    assert!(error.contains("source.bootstrap_servers"), "{error}");
}

#[test]
fn the_client_rack_goes_to_the_client_and_an_empty_one_is_refused() {
    let source = parse(&MINIMAL.replace("  topics:", "  client_rack: eu-west-1a\n  topics:")).unwrap().source;
    assert_eq!(source.rack(), "eu-west-1a");
    assert_eq!(parse(MINIMAL).unwrap().source.rack(), "", "no rack unless given");
    let error = error_of(&MINIMAL.replace("  topics:", "  client_rack: \" \"\n  topics:"));
    assert!(error.contains("source.client_rack"), "{error}");
}

#[test]
fn workers_of_a_group_share_only_a_continuous_backup_and_the_command_line_overrides_the_group() {
    let shared = parse(&format!(
        "{MINIMAL}backup:\n  continuous: true\n  group_id: dr-workers\n  group_session_timeout_ms: 10000\n"
    ))
    .unwrap();
    let group = shared.settings.workers.clone().expect("a worker group");
    assert_eq!((group.group_id.as_str(), group.instance_id.as_deref()), ("dr-workers", None));
    assert_eq!(group.session_timeout, Duration::from_secs(10));
    assert_eq!(group.rebalance_timeout, Duration::from_secs(60));
    assert_eq!(group.heartbeat_interval(), Duration::from_secs(2));
    let overridden = shared.with_group(Some("other".into()), Some("pod-1".into())).unwrap();
    let group = overridden.settings.workers.unwrap();
    assert_eq!((group.group_id.as_str(), group.instance_id.as_deref()), ("other", Some("pod-1")));

    let error = error_of(&format!("{MINIMAL}backup:\n  group_id: dr-workers\n"));
    assert!(error.contains("backup.group_id") && error.contains("continuous: true"), "{error}");
    let error = parse(MINIMAL).unwrap().with_group(Some("g".into()), None).unwrap_err().to_string();
    assert!(error.contains("continuous: true"), "a snapshot is refused from the command line too: {error}");
    let error = error_of(&format!("{MINIMAL}backup:\n  continuous: true\n  group_instance_id: pod-1\n"));
    assert!(error.contains("backup.group_id") && error.contains("missing"), "{error}");
    let error = error_of(&format!("{MINIMAL}backup:\n  continuous: true\n  group_id: \"a b\"\n"));
    assert!(error.contains("backup.group_id"), "{error}");
    assert!(parse(MINIMAL).unwrap().settings.workers.is_none(), "one process without a group");
}

#[test]
fn the_progress_group_belongs_to_the_source() {
    let with = parse(&MINIMAL.replace("  topics:", "  progress_group: backup-lag\n  topics:")).unwrap();
    assert_eq!(with.progress_group.as_deref(), Some("backup-lag"));
    assert_eq!(parse(MINIMAL).unwrap().progress_group, None);
    let error = error_of(&MINIMAL.replace("  topics:", "  progress_group: \"\"\n  topics:"));
    assert!(error.contains("source.progress_group"), "{error}");
    let text = RESTORE.replace("  bootstrap_servers", "  progress_group: lag\n  bootstrap_servers");
    let error = RestoreJob::from_yaml(&text, |_| None).unwrap_err().to_string();
    assert!(error.contains("target.progress_group"), "{error}");
}
