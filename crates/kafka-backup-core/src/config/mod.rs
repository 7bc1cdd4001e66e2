//! The YAML configuration of `backup` and `restore`: `${VAR}` substitution, strict parsing
//! (unknown keys and wrong types are errors naming the key's path), then range checks. Layout
//! follows the design brief: `mode`, `backup_id`, `source`/`target`, `storage` (`storage_section.rs`),
//! `backup`/`restore`.

mod storage_section;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use storage_section::{keyring, storage_config, RawStorage};

use crate::kafka::msk_iam::AwsCredentialChain;
use crate::kafka::{
    ClientConfig, OidcSettings, OidcTokens, SaslCredentials, SaslMechanism, SaslSettings, Secret, SecurityProtocol,
    TlsSettings, NO_HOSTNAME_VERIFICATION,
};
use crate::offset_reset::{GroupSelection, GroupStrategy};
use crate::prune::RetentionPolicy;
use crate::records::Compression;
use crate::storage::{Keyring, StorageConfig};
use crate::topics::TopicSelector;

/// A configuration that cannot be used, with the key path and what to do.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// File path.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// `${VAR}` names a variable that is not set.
    #[error("config line {line}: environment variable {name} is not set (write $${{...}} for a literal ${{...}})")]
    MissingVariable {
        /// Variable name.
        name: String,
        /// 1-based line.
        line: usize,
    },
    /// YAML syntax, unknown key or wrong type.
    #[error("config key `{path}`: {message}")]
    Invalid {
        /// Dotted key path (`.` for the document root).
        path: String,
        /// What is wrong.
        message: String,
    },
}

fn invalid(path: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { path: path.to_string(), message: message.into() }
}

/// Replaces `${NAME}` with the environment variable's value; `$${` stays a literal `${`.
pub fn substitute_env(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        if rest[..at].ends_with('$') {
            out.push_str(&rest[..at - 1]);
            out.push_str("${");
            rest = &rest[at + 2..];
            continue;
        }
        out.push_str(&rest[..at]);
        let line = text[..text.len() - rest.len() + at].matches('\n').count() + 1;
        let close = rest[at..].find('}').ok_or_else(|| invalid(".", format!("line {line}: unterminated ${{")))?;
        let name = &rest[at + 2..at + close];
        let value = lookup(name).ok_or_else(|| ConfigError::MissingVariable { name: name.to_string(), line })?;
        out.push_str(&value);
        rest = &rest[at + close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// What the config asks the tool to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Back up topics.
    Backup,
    /// Restore a backup.
    Restore,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    mode: Mode,
    backup_id: String,
    source: Option<RawEndpoint>,
    target: Option<RawEndpoint>,
    storage: RawStorage,
    backup: Option<RawBackup>,
    restore: Option<RawRestore>,
    metrics: Option<RawMetrics>,
    retention: Option<RawRetention>,
}

/// `retention` (backup configs): what `prune --config` keeps.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetention {
    keep_last: Option<usize>,
    keep_within: Option<String>,
    keep_daily: Option<usize>,
    keep_weekly: Option<usize>,
    keep_monthly: Option<usize>,
    segment_retention: Option<String>,
}

fn retention_policy(raw: Option<RawRetention>) -> Result<Option<RetentionPolicy>, ConfigError> {
    let Some(raw) = raw else { return Ok(None) };
    let duration = |key: &str, text: Option<String>| {
        text.map(|text| {
            humantime::parse_duration(&text).map_err(|e| {
                invalid(&format!("retention.{key}"), format!("{text:?} is not a duration like 7d or 12h: {e}"))
            })
        })
        .transpose()
    };
    let policy = RetentionPolicy {
        keep_last: raw.keep_last,
        keep_within: duration("keep_within", raw.keep_within)?,
        keep_daily: raw.keep_daily,
        keep_weekly: raw.keep_weekly,
        keep_monthly: raw.keep_monthly,
        segment_retention: duration("segment_retention", raw.segment_retention)?,
    };
    if !policy.selects_backups() && policy.segment_retention.is_none() {
        return Err(invalid(
            "retention",
            "set at least one of keep_last, keep_within, keep_daily, keep_weekly, keep_monthly, segment_retention",
        ));
    }
    Ok(Some(policy))
}

/// `metrics`: the Prometheus endpoint.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    enabled: Option<bool>,
    listen: Option<String>,
}

/// Where `/metrics`, `/health` and `/ready` are served when the endpoint is on.
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9464";

/// The endpoint's address: on when the section is present (unless `enabled: false`).
fn metrics_listen(raw: Option<RawMetrics>) -> Result<Option<std::net::SocketAddr>, ConfigError> {
    let Some(raw) = raw else { return Ok(None) };
    if raw.enabled == Some(false) {
        return Ok(None);
    }
    let listen = raw.listen.as_deref().unwrap_or(DEFAULT_METRICS_LISTEN);
    listen.parse().map(Some).map_err(|_| {
        invalid(
            "metrics.listen",
            format!("{listen:?} is not IP:PORT (e.g. {DEFAULT_METRICS_LISTEN}, or 0.0.0.0:9464 for every interface)"),
        )
    })
}

/// `source` or `target`: a cluster and/or a topic selection, checked per mode.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEndpoint {
    bootstrap_servers: Option<Vec<String>>,
    topics: Option<RawTopics>,
    groups: Option<RawTopics>,
    security_protocol: Option<String>,
    ssl_ca_location: Option<PathBuf>,
    ssl_certificate_location: Option<PathBuf>,
    ssl_key_location: Option<PathBuf>,
    ssl_key_password: Option<String>,
    ssl_endpoint_identification_algorithm: Option<String>,
    sasl_mechanism: Option<String>,
    sasl_username: Option<String>,
    sasl_password: Option<String>,
    sasl_password_file: Option<PathBuf>,
    sasl_oauthbearer_token: Option<String>,
    sasl_oauthbearer_token_file: Option<PathBuf>,
    sasl_oauthbearer_token_endpoint_url: Option<String>,
    sasl_oauthbearer_client_id: Option<String>,
    sasl_oauthbearer_client_secret: Option<String>,
    sasl_oauthbearer_scope: Option<String>,
    sasl_aws_region: Option<String>,
    client_id: Option<String>,
    connect_timeout_secs: Option<u64>,
    request_timeout_secs: Option<u64>,
    bootstrap_timeout_secs: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTopics {
    include: Vec<String>,
    #[serde(default)]
    exclude: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRestore {
    time_window_start: Option<i64>,
    time_window_end: Option<i64>,
    topic_mapping: Option<BTreeMap<String, String>>,
    partition_mapping: Option<BTreeMap<String, BTreeMap<i32, i32>>>,
    create_topics: Option<bool>,
    repartition: Option<bool>,
    dry_run: Option<bool>,
    max_concurrent_partitions: Option<usize>,
    rate_limit_bytes_per_sec: Option<u64>,
    rate_limit_records_per_sec: Option<u64>,
    produce_compression: Option<String>,
    include_original_offset_header: Option<bool>,
    consumer_group_strategy: Option<String>,
    consumer_groups: Option<RawTopics>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBackup {
    compression: Option<String>,
    compression_level: Option<i32>,
    segment_max_bytes: Option<u64>,
    segment_max_interval_ms: Option<u64>,
    checkpoint_interval_secs: Option<u64>,
    max_concurrent_partitions: Option<usize>,
    continuous: Option<bool>,
}

/// Segment and scheduling settings of a backup.
#[derive(Debug, Clone, PartialEq)]
pub struct BackupSettings {
    /// Codec of whole segments.
    pub compression: Compression,
    /// Codec level (zstd 1-22, gzip 0-9); `None` for the codec's default.
    pub compression_level: Option<i32>,
    /// A segment is closed when its batches reach this many bytes.
    pub segment_max_bytes: u64,
    /// A segment is closed when it has been open this long.
    pub segment_max_interval: Duration,
    /// How often progress (`state/progress.json`) is written.
    pub checkpoint_interval: Duration,
    /// Partitions backed up at the same time.
    pub max_concurrent_partitions: usize,
    /// Keep tailing after the snapshot until SIGINT/SIGTERM.
    pub continuous: bool,
}

/// A checked backup configuration, ready to run.
#[derive(Debug, Clone)]
pub struct BackupConfig {
    /// Identifier of the backup: its directory under the storage root.
    pub backup_id: String,
    /// How to reach the source cluster.
    pub source: ClientConfig,
    /// Which topics to back up.
    pub topics: TopicSelector,
    /// Which consumer groups' committed offsets to snapshot (all by default).
    pub groups: TopicSelector,
    /// Where to store the backup.
    pub storage: StorageConfig,
    /// The keys new backups are encrypted with (and old ones opened with); `None`: not encrypted.
    pub encryption: Option<Keyring>,
    /// Segment and scheduling settings.
    pub settings: BackupSettings,
    /// Address of the metrics endpoint, `None` when it is off.
    pub metrics: Option<std::net::SocketAddr>,
    /// What `prune --config` keeps of the backups in this storage.
    pub retention: Option<RetentionPolicy>,
}

const MIB: u64 = 1024 * 1024;

/// Point-in-time window: records whose timestamp lies in `start..=end` (either bound optional).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeWindow {
    /// Earliest timestamp kept (epoch ms, inclusive).
    pub start: Option<i64>,
    /// Latest timestamp kept (epoch ms, inclusive).
    pub end: Option<i64>,
}

impl TimeWindow {
    /// Whether `timestamp` is inside the window.
    pub fn contains(&self, timestamp: i64) -> bool {
        self.start.is_none_or(|start| timestamp >= start) && self.end.is_none_or(|end| timestamp <= end)
    }

    /// Whether the whole range `min..=max` is inside the window.
    pub fn covers(&self, min: i64, max: i64) -> bool {
        self.contains(min) && self.contains(max)
    }

    /// Whether no timestamp of `min..=max` can be inside the window.
    pub fn excludes(&self, min: i64, max: i64) -> bool {
        self.start.is_some_and(|start| max < start) || self.end.is_some_and(|end| min > end)
    }
}

/// Restore settings.
#[derive(Debug, Clone, PartialEq)]
pub struct RestoreSettings {
    /// Which records to restore, by timestamp.
    pub window: TimeWindow,
    /// Source topic -> target topic.
    pub topic_mapping: BTreeMap<String, String>,
    /// Source topic -> (source partition -> target partition).
    pub partition_mapping: BTreeMap<String, BTreeMap<i32, i32>>,
    /// Create missing target topics like the backed-up ones.
    pub create_topics: bool,
    /// Allow a target partition count different from the source's (records re-keyed by murmur2).
    pub repartition: bool,
    /// Print the plan and write nothing.
    pub dry_run: bool,
    /// Partitions restored at the same time.
    pub max_concurrent_partitions: usize,
    /// Cap on produced record-batch bytes per second.
    pub rate_limit_bytes_per_sec: Option<u64>,
    /// Cap on produced records per second.
    pub rate_limit_records_per_sec: Option<u64>,
    /// Codec of produced batches; `None` keeps each source batch's codec.
    pub produce_compression: Option<Compression>,
    /// Add an `x-original-offset` header (the source offset) to every restored record.
    pub include_original_offset_header: bool,
    /// How consumer-group offsets are carried over; `None` leaves it to the command
    /// (`restore`: skip, `three-phase-restore`: exact).
    pub consumer_group_strategy: Option<GroupStrategy>,
}

/// A checked restore configuration, ready to run.
#[derive(Debug, Clone)]
pub struct RestoreConfig {
    /// The backup to restore.
    pub backup_id: String,
    /// The cluster to restore into.
    pub target: ClientConfig,
    /// Which backed-up topics to restore.
    pub topics: TopicSelector,
    /// Where the backup is stored.
    pub storage: StorageConfig,
    /// The keys an encrypted backup opens with.
    pub encryption: Option<Keyring>,
    /// Which consumer groups get their offsets translated (`None`: all).
    pub groups: Option<GroupSelection>,
    /// Restore settings.
    pub settings: RestoreSettings,
    /// Address of the metrics endpoint, `None` when it is off.
    pub metrics: Option<std::net::SocketAddr>,
}

fn read_config(path: &std::path::Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })
}

/// Substitutes variables and parses the raw document, with key paths in errors.
fn parse_raw(text: &str, lookup: impl Fn(&str) -> Option<String>, expected: Mode) -> Result<RawConfig, ConfigError> {
    let text = substitute_env(text, lookup)?;
    let deserializer = serde_yaml_ng::Deserializer::from_str(&text);
    let raw: RawConfig = serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let path = e.path().to_string();
        invalid(&path, e.into_inner().to_string())
    })?;
    if raw.mode != expected {
        let (wanted, other) = match expected {
            Mode::Backup => ("backup", "restore"),
            Mode::Restore => ("restore", "backup"),
        };
        return Err(invalid(
            "mode",
            format!("this command needs mode: {wanted}; use `kafka-backup {other}` for this file"),
        ));
    }
    check_backup_id(&raw.backup_id)?;
    let (unused, section) = match expected {
        Mode::Backup => {
            ([("target", raw.target.is_some()), ("restore", raw.restore.is_some()), ("retention", false)], "backup")
        }
        Mode::Restore => {
            ([("backup", raw.backup.is_some()), ("retention", raw.retention.is_some()), ("target", false)], "restore")
        }
    };
    if let Some((key, _)) = unused.iter().find(|(_, present)| *present) {
        return Err(invalid(key, format!("not used in mode {section}")));
    }
    Ok(raw)
}

fn topic_selector(endpoint: &RawEndpoint, path: &str) -> Result<TopicSelector, ConfigError> {
    let topics = endpoint.topics.as_ref().ok_or_else(|| invalid(path, "missing `topics` (include/exclude)"))?;
    selector_or_all(Some(topics), &format!("{path}.topics"))
}

/// The selector the patterns describe, or one selecting every name when they are absent.
fn selector_or_all(patterns: Option<&RawTopics>, path: &str) -> Result<TopicSelector, ConfigError> {
    let all = ["*".to_string()];
    let (include, exclude) = patterns.map_or((&all[..], &[][..]), |p| (&p.include[..], &p.exclude[..]));
    TopicSelector::new(include, exclude).map_err(|message| invalid(path, message))
}

/// The cluster a config file talks to, with its connection settings: `source` of a backup config,
/// `target` of a restore config (for commands such as `cluster-info --config`).
pub fn cluster_of_config_file(path: &std::path::Path) -> Result<ClientConfig, ConfigError> {
    Ok(match load_either(path)? {
        Either::Backup(config) => config.source,
        Either::Restore(config) => config.target,
    })
}

/// The storage a config file of either mode names, with its encryption keys (for the commands
/// that read backups).
pub fn storage_of_config_file(path: &std::path::Path) -> Result<(StorageConfig, Option<Keyring>), ConfigError> {
    Ok(match load_either(path)? {
        Either::Backup(config) => (config.storage, config.encryption),
        Either::Restore(config) => (config.storage, config.encryption),
    })
}

enum Either {
    Backup(BackupConfig),
    Restore(RestoreConfig),
}

fn load_either(path: &std::path::Path) -> Result<Either, ConfigError> {
    #[derive(Deserialize)]
    struct ModeOnly {
        mode: Mode,
    }
    let text = read_config(path)?;
    let mode = serde_yaml_ng::from_str::<ModeOnly>(&text).map_err(|e| invalid("mode", e.to_string()))?.mode;
    let lookup = |name: &str| std::env::var(name).ok();
    match mode {
        Mode::Backup => Ok(Either::Backup(BackupConfig::from_yaml(&text, lookup)?)),
        Mode::Restore => Ok(Either::Restore(RestoreConfig::from_yaml(&text, lookup)?)),
    }
}

impl BackupConfig {
    /// Reads, substitutes, parses and checks a backup config file.
    pub fn load(path: &std::path::Path) -> Result<Self, ConfigError> {
        Self::from_yaml(&read_config(path)?, |name| std::env::var(name).ok())
    }

    /// Parses config text, taking `${VAR}` values from `lookup`.
    pub fn from_yaml(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut raw = parse_raw(text, lookup, Mode::Backup)?;
        let source = raw.source.as_ref().ok_or_else(|| invalid("source", "missing: the cluster to back up"))?;
        Ok(Self {
            backup_id: raw.backup_id.clone(),
            source: client_config(source, "source")?,
            topics: topic_selector(source, "source")?,
            groups: selector_or_all(source.groups.as_ref(), "source.groups")?,
            encryption: keyring(&mut raw.storage)?,
            storage: storage_config(raw.storage)?,
            settings: backup_settings(raw.backup.unwrap_or_default())?,
            metrics: metrics_listen(raw.metrics)?,
            retention: retention_policy(raw.retention)?,
        })
    }
}

impl RestoreConfig {
    /// Reads, substitutes, parses and checks a restore config file.
    pub fn load(path: &std::path::Path) -> Result<Self, ConfigError> {
        Self::from_yaml(&read_config(path)?, |name| std::env::var(name).ok())
    }

    /// Parses config text, taking `${VAR}` values from `lookup`.
    pub fn from_yaml(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut raw = parse_raw(text, lookup, Mode::Restore)?;
        let target = raw.target.as_ref().ok_or_else(|| invalid("target", "missing: the cluster to restore into"))?;
        if target.groups.is_some() {
            return Err(invalid("target.groups", "not used in mode restore"));
        }
        if target.topics.is_some() {
            return Err(invalid(
                "target.topics",
                "not used: choose topics with source.topics and restore.topic_mapping",
            ));
        }
        let topics = match &raw.source {
            None => selector_or_all(None, "source.topics")?,
            Some(source) => {
                if source.bootstrap_servers.is_some() {
                    return Err(invalid(
                        "source.bootstrap_servers",
                        "not used in mode restore (the data comes from storage)",
                    ));
                }
                if source.groups.is_some() {
                    return Err(invalid("source.groups", "not used in mode restore"));
                }
                topic_selector(source, "source")?
            }
        };
        Ok(Self {
            backup_id: raw.backup_id.clone(),
            target: client_config(target, "target")?,
            topics,
            encryption: keyring(&mut raw.storage)?,
            storage: storage_config(raw.storage)?,
            groups: match raw.restore.as_ref().and_then(|r| r.consumer_groups.as_ref()) {
                None => None,
                Some(patterns) => {
                    Some(GroupSelection::patterns(selector_or_all(Some(patterns), "restore.consumer_groups")?))
                }
            },
            settings: restore_settings(raw.restore.unwrap_or_default())?,
            metrics: metrics_listen(raw.metrics)?,
        })
    }
}

fn restore_settings(raw: RawRestore) -> Result<RestoreSettings, ConfigError> {
    let include_original_offset_header = raw.include_original_offset_header.unwrap_or(false);
    let consumer_group_strategy = match raw.consumer_group_strategy.as_deref() {
        None => None,
        Some(name) => {
            let strategy: GroupStrategy = name.parse().map_err(|e| invalid("restore.consumer_group_strategy", e))?;
            if strategy.reads_offset_headers() && !include_original_offset_header {
                return Err(invalid(
                    "restore.consumer_group_strategy",
                    format!("{strategy} reads the x-original-offset headers: set restore.include_original_offset_header: true"),
                ));
            }
            Some(strategy)
        }
    };
    let window = TimeWindow { start: raw.time_window_start, end: raw.time_window_end };
    if let (Some(start), Some(end)) = (window.start, window.end) {
        if start > end {
            return Err(invalid("restore.time_window_start", format!("{start} is after time_window_end {end}")));
        }
    }
    let repartition = raw.repartition.unwrap_or(false);
    let partition_mapping = raw.partition_mapping.unwrap_or_default();
    for (topic, mapping) in &partition_mapping {
        let path = format!("restore.partition_mapping.{topic}");
        if repartition {
            return Err(invalid(&path, "cannot be combined with restore.repartition (records are routed by key)"));
        }
        let mut targets = std::collections::BTreeSet::new();
        for (&source, &target) in mapping {
            if source < 0 || target < 0 {
                return Err(invalid(&path, format!("partitions are never negative ({source} -> {target})")));
            }
            if !targets.insert(target) {
                return Err(invalid(&path, format!("two source partitions map to target partition {target}")));
            }
        }
    }
    let produce_compression = match raw.produce_compression.as_deref() {
        None => None,
        Some(name) => Some(Compression::ALL.into_iter().find(|c| c.name() == name).ok_or_else(|| {
            invalid(
                "restore.produce_compression",
                format!("unknown codec {name:?}; expected zstd, lz4, gzip, snappy or none"),
            )
        })?),
    };
    let positive = |key: &str, value: Option<u64>| match value {
        Some(0) => Err(invalid(key, "must be positive (remove the key for no limit)")),
        other => Ok(other),
    };
    Ok(RestoreSettings {
        window,
        topic_mapping: raw.topic_mapping.unwrap_or_default(),
        partition_mapping,
        create_topics: raw.create_topics.unwrap_or(true),
        repartition,
        dry_run: raw.dry_run.unwrap_or(false),
        max_concurrent_partitions: in_range(
            "restore.max_concurrent_partitions",
            raw.max_concurrent_partitions.unwrap_or(4),
            1,
            1024,
        )?,
        rate_limit_bytes_per_sec: positive("restore.rate_limit_bytes_per_sec", raw.rate_limit_bytes_per_sec)?,
        rate_limit_records_per_sec: positive("restore.rate_limit_records_per_sec", raw.rate_limit_records_per_sec)?,
        produce_compression,
        include_original_offset_header,
        consumer_group_strategy,
    })
}

/// `sasl_mechanism` with its credentials: `sasl_username` and the password (`sasl_password`,
/// usually `${ENV}`, or `sasl_password_file`, its last newline dropped) for PLAIN and SCRAM; the
/// token source for OAUTHBEARER ([`bearer_credentials`]).
fn sasl_settings(source: &RawEndpoint, role: &str) -> Result<Option<SaslSettings>, ConfigError> {
    let key = |name: &str| format!("{role}.{name}");
    let password = match (&source.sasl_password, &source.sasl_password_file) {
        (Some(_), Some(_)) => {
            return Err(invalid(&key("sasl_password_file"), "give sasl_password or sasl_password_file, not both"))
        }
        (Some(password), None) => Some(password.clone()),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| invalid(&key("sasl_password_file"), format!("cannot read {}: {e}", path.display())))?;
            Some(text.strip_suffix('\n').unwrap_or(&text).to_string())
        }
        (None, None) => None,
    };
    let token = bearer_credentials(source, &key)?;
    let Some(mechanism) = &source.sasl_mechanism else {
        if source.sasl_username.is_some() || password.is_some() || token.is_some() || source.sasl_aws_region.is_some() {
            return Err(invalid(&key("sasl_mechanism"), "SASL credentials are given without sasl_mechanism"));
        }
        return Ok(None);
    };
    let mechanism: SaslMechanism =
        mechanism.parse().map_err(|e: crate::kafka::KafkaError| invalid(&key("sasl_mechanism"), e.to_string()))?;
    if source.sasl_aws_region.is_some() && mechanism != SaslMechanism::AwsMskIam {
        return Err(invalid(&key("sasl_aws_region"), "only used with sasl_mechanism: AWS_MSK_IAM"));
    }
    let credentials = match (mechanism, &source.sasl_username, password, token) {
        (SaslMechanism::AwsMskIam, None, None, None) => {
            let from_env = || std::env::var("AWS_REGION").or_else(|_| std::env::var("AWS_DEFAULT_REGION")).ok();
            let region = source.sasl_aws_region.clone().or_else(from_env).ok_or_else(|| {
                invalid(&key("sasl_aws_region"), "AWS_MSK_IAM needs the cluster's region (or AWS_REGION set)")
            })?;
            let chain = AwsCredentialChain::from_env(&region).map_err(|e| invalid(&key("sasl_mechanism"), e))?;
            SaslCredentials::Aws(std::sync::Arc::new(chain))
        }
        (SaslMechanism::AwsMskIam, ..) => {
            return Err(invalid(
                &key("sasl_mechanism"),
                "AWS_MSK_IAM takes its credentials from the AWS environment, not sasl_username, password or token",
            ))
        }
        (SaslMechanism::OauthBearer, None, None, Some(token)) => token,
        (SaslMechanism::OauthBearer, ..) => {
            return Err(invalid(
                &key("sasl_mechanism"),
                "OAUTHBEARER needs sasl_oauthbearer_token, sasl_oauthbearer_token_file or \
                 sasl_oauthbearer_token_endpoint_url, and no user or password",
            ))
        }
        (_, Some(username), Some(password), None) => {
            SaslCredentials::Password { username: username.clone(), password: Secret::new(password) }
        }
        _ => {
            return Err(invalid(
                &key("sasl_mechanism"),
                format!(
                    "{} needs sasl_username and sasl_password (or sasl_password_file) together, and no token",
                    mechanism.name()
                ),
            ))
        }
    };
    Ok(Some(SaslSettings { mechanism, credentials }))
}

/// The OAUTHBEARER token source, if one is given: a token (`sasl_oauthbearer_token`), a file
/// holding one (`sasl_oauthbearer_token_file`), or an OIDC token endpoint
/// (`sasl_oauthbearer_token_endpoint_url` with `_client_id`, `_client_secret` and an optional `_scope`).
fn bearer_credentials(
    source: &RawEndpoint,
    key: &dyn Fn(&str) -> String,
) -> Result<Option<SaslCredentials>, ConfigError> {
    let client = (&source.sasl_oauthbearer_client_id, &source.sasl_oauthbearer_client_secret);
    match (
        &source.sasl_oauthbearer_token,
        &source.sasl_oauthbearer_token_file,
        &source.sasl_oauthbearer_token_endpoint_url,
    ) {
        (None, None, None) if client.0.is_some() || client.1.is_some() || source.sasl_oauthbearer_scope.is_some() => {
            Err(invalid(
                &key("sasl_oauthbearer_token_endpoint_url"),
                "the OIDC client settings need the token endpoint",
            ))
        }
        (None, None, None) => Ok(None),
        (Some(token), None, None) => Ok(Some(SaslCredentials::Token(Secret::new(token.clone())))),
        (None, Some(path), None) => Ok(Some(SaslCredentials::TokenFile(path.clone()))),
        (None, None, Some(endpoint)) => {
            let (Some(client_id), Some(client_secret)) = client else {
                return Err(invalid(
                    &key("sasl_oauthbearer_token_endpoint_url"),
                    "the token endpoint needs sasl_oauthbearer_client_id and sasl_oauthbearer_client_secret",
                ));
            };
            let settings = OidcSettings {
                token_endpoint: endpoint.clone(),
                client_id: client_id.clone(),
                client_secret: Secret::new(client_secret.clone()),
                scope: source.sasl_oauthbearer_scope.clone(),
            };
            settings.check_endpoint().map_err(|e| invalid(&key("sasl_oauthbearer_token_endpoint_url"), e))?;
            Ok(Some(SaslCredentials::Oidc(std::sync::Arc::new(OidcTokens::new(settings)))))
        }
        _ => Err(invalid(
            &key("sasl_oauthbearer_token"),
            "give one of sasl_oauthbearer_token, sasl_oauthbearer_token_file or sasl_oauthbearer_token_endpoint_url",
        )),
    }
}

fn check_backup_id(id: &str) -> Result<(), ConfigError> {
    let valid = !id.is_empty()
        && id.len() <= 200
        && id.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        && !id.starts_with('.');
    if valid {
        Ok(())
    } else {
        Err(invalid("backup_id", format!("{id:?} must be 1-200 characters of A-Z a-z 0-9 . _ - (not starting with .)")))
    }
}

fn client_config(source: &RawEndpoint, role: &str) -> Result<ClientConfig, ConfigError> {
    let servers = source.bootstrap_servers.clone().unwrap_or_default();
    if servers.is_empty() {
        return Err(invalid(&format!("{role}.bootstrap_servers"), "give at least one host:port"));
    }
    let mut config = ClientConfig::new(servers);
    if let Some(protocol) = &source.security_protocol {
        config.security_protocol = protocol
            .parse::<SecurityProtocol>()
            .map_err(|e| invalid(&format!("{role}.security_protocol"), e.to_string()))?;
    }
    config.sasl = sasl_settings(source, role)?;
    config.tls = TlsSettings {
        ca_location: source.ssl_ca_location.clone(),
        certificate_location: source.ssl_certificate_location.clone(),
        key_location: source.ssl_key_location.clone(),
        key_password: source.ssl_key_password.clone().map(Secret::new),
        verify_hostname: match source.ssl_endpoint_identification_algorithm.as_deref() {
            None | Some("https") => true,
            Some(NO_HOSTNAME_VERIFICATION) => false,
            Some(other) => {
                return Err(invalid(
                    &format!("{role}.ssl_endpoint_identification_algorithm"),
                    format!("{other:?}: use https (the default: verify broker host names) or none"),
                ))
            }
        },
    };
    if let Some(client_id) = &source.client_id {
        config.client_id = client_id.clone();
    }
    if let Some(secs) = source.connect_timeout_secs {
        config.connect_timeout = Duration::from_secs(in_range(&format!("{role}.connect_timeout_secs"), secs, 1, 600)?);
    }
    if let Some(secs) = source.request_timeout_secs {
        config.request_timeout = Duration::from_secs(in_range(&format!("{role}.request_timeout_secs"), secs, 1, 3600)?);
    }
    if let Some(secs) = source.bootstrap_timeout_secs {
        let secs = in_range(&format!("{role}.bootstrap_timeout_secs"), secs, 1, 3600)?;
        config.bootstrap_timeout = Duration::from_secs(secs);
    }
    config.validate().map_err(|e| invalid(role, e.to_string()))?;
    Ok(config)
}

fn in_range<T: PartialOrd + std::fmt::Display + Copy>(key: &str, value: T, min: T, max: T) -> Result<T, ConfigError> {
    if value < min || value > max {
        return Err(invalid(key, format!("{value} is out of range {min}..={max}")));
    }
    Ok(value)
}

fn backup_settings(raw: RawBackup) -> Result<BackupSettings, ConfigError> {
    let compression = match raw.compression.as_deref() {
        None => Compression::Zstd,
        Some(name) => Compression::ALL.into_iter().find(|c| c.name() == name).ok_or_else(|| {
            invalid("backup.compression", format!("unknown codec {name:?}; expected zstd, lz4, gzip, snappy or none"))
        })?,
    };
    let compression_level = match (raw.compression_level, compression.level_range()) {
        (None, _) => None,
        (Some(level), Some((min, max))) => Some(in_range("backup.compression_level", level, min, max)?),
        (Some(_), None) => {
            return Err(invalid(
                "backup.compression_level",
                format!("{} has no levels; remove the key", compression.name()),
            ))
        }
    };
    Ok(BackupSettings {
        compression,
        compression_level,
        segment_max_bytes: in_range(
            "backup.segment_max_bytes",
            raw.segment_max_bytes.unwrap_or(128 * MIB),
            1024,
            2048 * MIB,
        )?,
        segment_max_interval: Duration::from_millis(in_range(
            "backup.segment_max_interval_ms",
            raw.segment_max_interval_ms.unwrap_or(600_000),
            100,
            7 * 24 * 3_600_000,
        )?),
        checkpoint_interval: Duration::from_secs(in_range(
            "backup.checkpoint_interval_secs",
            raw.checkpoint_interval_secs.unwrap_or(5),
            1,
            3600,
        )?),
        max_concurrent_partitions: in_range(
            "backup.max_concurrent_partitions",
            raw.max_concurrent_partitions.unwrap_or(4),
            1,
            1024,
        )?,
        continuous: raw.continuous.unwrap_or(false),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let error = RestoreConfig::from_yaml(restore, |_| None).unwrap_err().to_string();
        assert!(error.contains("retention") && error.contains("not used in mode restore"), "{error}");
    }

    #[test]
    fn defaults_fill_an_empty_backup_section() {
        let config = parse(MINIMAL).unwrap();
        assert_eq!(config.backup_id, "nightly");
        assert_eq!(config.settings.compression, Compression::Zstd);
        assert_eq!(config.settings.segment_max_bytes, 128 * MIB);
        assert_eq!(config.settings.max_concurrent_partitions, 4);
        assert!(!config.settings.continuous);
        assert_eq!(config.storage, StorageConfig::Filesystem { path: "/var/backups".into(), prefix: String::new() });
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
        RestoreConfig::from_yaml(&format!("{RESTORE}{extra}"), |_| None).unwrap_err().to_string()
    }

    #[test]
    fn a_refused_target_key_is_named_under_target() {
        let text = RESTORE.replace("  bootstrap_servers", "  sasl_mechanism: PLAIN\n  bootstrap_servers");
        let error = RestoreConfig::from_yaml(&text, |_| None).unwrap_err().to_string();
        assert!(error.contains("target.sasl_mechanism"), "{error}");
    }

    #[test]
    fn a_minimal_restore_selects_every_topic_with_defaults() {
        let config = RestoreConfig::from_yaml(RESTORE, |_| None).unwrap();
        assert!(config.topics.matches("anything", false));
        assert!(config.settings.create_topics && !config.settings.dry_run);
        assert_eq!(config.settings.window, TimeWindow::default());
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
        let error = restore_error("restore:\n  produce_compression: brotli\n");
        assert!(error.contains("restore.produce_compression"), "{error}");
    }

    #[test]
    fn time_windows_are_inclusive() {
        let window = TimeWindow { start: Some(10), end: Some(20) };
        assert!(window.contains(10) && window.contains(20) && !window.contains(9) && !window.contains(21));
        assert!(window.covers(10, 20) && !window.covers(9, 20));
        assert!(window.excludes(0, 9) && window.excludes(21, 30) && !window.excludes(0, 10));
        assert!(TimeWindow::default().covers(i64::MIN, i64::MAX));
    }

    fn storage_of(section: &str) -> Result<StorageConfig, String> {
        let text = MINIMAL.replace("  backend: filesystem\n  path: /var/backups\n", section);
        parse(&text).map(|config| config.storage).map_err(|error| error.to_string())
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
        assert_eq!(
            (s3.region.as_deref(), s3.path_style, s3.max_concurrent_requests),
            (Some("eu-west-1"), Some(true), 4)
        );
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
        assert!(
            error("  backend: s3\n  bucket: b\n  account: a\n").contains("`storage.account`: not used by backend s3")
        );
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
        let secret =
            error("  backend: s3\n  bucket: b\n  access_key_id: a\n  secret_access_key: hush\n  account_key: k\n");
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
}
