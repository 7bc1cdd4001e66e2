//! The YAML configuration of `backup` (and later `restore`): `${VAR}` substitution, strict
//! parsing (unknown keys and wrong types are errors naming the key's path), then range checks.
//! Layout follows the design brief: `mode`, `backup_id`, `source`, `storage`, `backup`.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::kafka::{ClientConfig, SecurityProtocol};
use crate::records::Compression;
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
    source: RawSource,
    storage: RawStorage,
    #[serde(default)]
    backup: RawBackup,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    bootstrap_servers: Vec<String>,
    topics: RawTopics,
    security_protocol: Option<String>,
    sasl_mechanism: Option<String>,
    sasl_username: Option<String>,
    sasl_password: Option<String>,
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStorage {
    backend: String,
    path: Option<PathBuf>,
    prefix: Option<String>,
    bucket: Option<String>,
    region: Option<String>,
    endpoint: Option<String>,
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

/// Where backups are stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageConfig {
    /// A local directory (objects written atomically with fsync).
    Filesystem {
        /// Root directory.
        path: PathBuf,
        /// Key prefix below the root.
        prefix: String,
    },
    /// Process memory, for tests: gone when the process exits.
    Memory {
        /// Key prefix.
        prefix: String,
    },
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
    /// Where to store the backup.
    pub storage: StorageConfig,
    /// Segment and scheduling settings.
    pub settings: BackupSettings,
}

const MIB: u64 = 1024 * 1024;

impl BackupConfig {
    /// Reads, substitutes, parses and checks a backup config file.
    pub fn load(path: &std::path::Path) -> Result<Self, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        Self::from_yaml(&text, |name| std::env::var(name).ok())
    }

    /// Parses config text, taking `${VAR}` values from `lookup`.
    pub fn from_yaml(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let text = substitute_env(text, lookup)?;
        let deserializer = serde_yaml_ng::Deserializer::from_str(&text);
        let raw: RawConfig = serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let path = e.path().to_string();
            invalid(&path, e.into_inner().to_string())
        })?;
        if raw.mode != Mode::Backup {
            return Err(invalid("mode", "restore is not implemented yet (issue #4); this command needs mode: backup"));
        }
        check_backup_id(&raw.backup_id)?;
        Ok(Self {
            backup_id: raw.backup_id,
            source: client_config(&raw.source)?,
            topics: TopicSelector::new(&raw.source.topics.include, &raw.source.topics.exclude)
                .map_err(|message| invalid("source.topics", message))?,
            storage: storage_config(raw.storage)?,
            settings: backup_settings(raw.backup)?,
        })
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

fn client_config(source: &RawSource) -> Result<ClientConfig, ConfigError> {
    if source.bootstrap_servers.is_empty() {
        return Err(invalid("source.bootstrap_servers", "give at least one host:port"));
    }
    let mut config = ClientConfig::new(source.bootstrap_servers.clone());
    if let Some(protocol) = &source.security_protocol {
        config.security_protocol =
            protocol.parse::<SecurityProtocol>().map_err(|e| invalid("source.security_protocol", e.to_string()))?;
    }
    for (key, value) in [
        ("sasl_mechanism", &source.sasl_mechanism),
        ("sasl_username", &source.sasl_username),
        ("sasl_password", &source.sasl_password),
    ] {
        if value.is_some() {
            return Err(invalid(
                &format!("source.{key}"),
                "SASL authentication is not supported yet; remove the SASL settings",
            ));
        }
    }
    if let Some(client_id) = &source.client_id {
        config.client_id = client_id.clone();
    }
    if let Some(secs) = source.connect_timeout_secs {
        config.connect_timeout = Duration::from_secs(in_range("source.connect_timeout_secs", secs, 1, 600)?);
    }
    if let Some(secs) = source.request_timeout_secs {
        config.request_timeout = Duration::from_secs(in_range("source.request_timeout_secs", secs, 1, 3600)?);
    }
    if let Some(secs) = source.bootstrap_timeout_secs {
        let secs = in_range("source.bootstrap_timeout_secs", secs, 1, 3600)?;
        config.bootstrap_timeout = Duration::from_secs(secs);
    }
    config.validate().map_err(|e| invalid("source", e.to_string()))?;
    Ok(config)
}

fn storage_config(storage: RawStorage) -> Result<StorageConfig, ConfigError> {
    let prefix = storage.prefix.unwrap_or_default().trim_matches('/').to_string();
    let remote_keys = [("bucket", &storage.bucket), ("region", &storage.region), ("endpoint", &storage.endpoint)];
    match storage.backend.as_str() {
        "filesystem" | "memory" => {
            if let Some((key, _)) = remote_keys.iter().find(|(_, v)| v.is_some()) {
                return Err(invalid(&format!("storage.{key}"), format!("not used by backend {}", storage.backend)));
            }
            if storage.backend == "memory" {
                return match storage.path {
                    Some(_) => Err(invalid("storage.path", "not used by backend memory")),
                    None => Ok(StorageConfig::Memory { prefix }),
                };
            }
            let path = storage.path.ok_or_else(|| invalid("storage.path", "backend filesystem needs a directory"))?;
            Ok(StorageConfig::Filesystem { path, prefix })
        }
        "s3" | "azure" | "gcs" => {
            Err(invalid("storage.backend", format!("{} is not supported yet; use filesystem for now", storage.backend)))
        }
        other => Err(invalid(
            "storage.backend",
            format!("unknown backend {other:?}; expected filesystem, memory, s3, azure or gcs"),
        )),
    }
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
    fn unsupported_features_are_refused_not_ignored() {
        let text = MINIMAL.replace("  topics:", "  sasl_mechanism: PLAIN\n  topics:");
        assert!(error_of(&text).contains("source.sasl_mechanism"));
        let text = MINIMAL.replace("  topics:", "  security_protocol: SSL\n  topics:");
        assert!(error_of(&text).contains("not supported yet"));
        let text = MINIMAL.replace("backend: filesystem\n  path: /var/backups", "backend: s3\n  bucket: b");
        assert!(error_of(&text).contains("storage.backend") && error_of(&text).contains("s3"));
        let text = MINIMAL.replace("mode: backup", "mode: restore");
        assert!(error_of(&text).contains("mode"));
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
