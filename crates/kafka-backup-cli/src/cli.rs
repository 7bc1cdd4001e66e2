//! Command-line syntax: what the user typed, parsed by clap, with no I/O.
//! `commands` turns it into work.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use kafka_backup_core::offset_reset::GroupStrategy;

/// `--version`: the release and the commit it was built from.
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("KAFKA_BACKUP_COMMIT"), ")");

/// Back up Apache Kafka topics to object storage or a local directory and restore them, with
/// point-in-time recovery and consumer-group offset translation.
#[derive(Debug, Parser)]
#[command(name = "kafka-backup", version = VERSION, about, long_about = None)]
pub struct Cli {
    /// Log level when RUST_LOG is not set (error, warn, info, debug, trace).
    #[arg(long, global = true, default_value = "warn")]
    pub log_level: String,
    /// Log lines on stderr as text for people or as one JSON object per line for log pipelines.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// No progress display and only errors in the log (for scripts); results are still printed.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// Under the progress line, one line per partition (records done, and the lag of a backup).
    #[arg(long, global = true)]
    pub progress_partitions: bool,
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands of the design brief.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Back up topics to storage (config: mode backup).
    Backup(BackupArgs),
    /// Restore a backup into a cluster (config: mode restore).
    Restore(RestoreArgs),
    /// List the backups under a storage path.
    List(ListArgs),
    /// Show a backup's manifest.
    Describe(DescribeArgs),
    /// Check a backup's integrity.
    Validate(ValidateArgs),
    /// Plan, execute or roll back consumer-group offset resets on the target cluster.
    #[command(subcommand)]
    OffsetReset(OffsetResetCommand),
    /// Restore data, then translate and commit consumer-group offsets (strategy exact by default).
    ThreePhaseRestore(RestoreArgs),
    /// Show a cluster's id, brokers, topics, partition leaders and offsets.
    ClusterInfo(ClusterInfoArgs),
    /// Compare a restore's target topics with the backup, record by record (non-zero exit on any difference).
    Verify(VerifyArgs),
    /// Which backups under a path hold a topic at a point in time, with their offsets and gaps.
    Find(FindArgs),
    /// Delete the backups a retention policy does not keep, and old segments of those it keeps.
    Prune(PruneArgs),
    /// Check a config file without connecting to anything, or migrate one from another tool.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to stdout.
    Completions(CompletionsArgs),
    /// Print the man page (roff) to stdout: `kafka-backup man > kafka-backup.1`.
    Man,
}

/// `config` subcommands.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate a backup or restore config: YAML, keys, values, ${VAR}s and the files it names
    /// (certificates, keys, tokens), without connecting; exit 1 with the reason when it is not valid.
    Check(ConfigCheckArgs),
    /// Rewrite a config of another backup tool as ours (printed, or written to --output), naming
    /// every key that cannot be carried over and why.
    Migrate(ConfigMigrateArgs),
}

/// `config migrate` arguments.
#[derive(Debug, Args)]
pub struct ConfigMigrateArgs {
    /// The tool the config comes from: `oso` (osodevops/kafka-backup).
    #[arg(long, value_enum)]
    pub from: MigrateFrom,
    /// The config file to migrate.
    pub file: PathBuf,
    /// Write the migrated config here (refused if the file exists) instead of printing it.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

/// Tools whose configs `config migrate` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MigrateFrom {
    /// osodevops/kafka-backup.
    Oso,
}

/// `config check` arguments.
#[derive(Debug, Args)]
pub struct ConfigCheckArgs {
    /// The config file.
    #[arg(long, short)]
    pub config: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// `completions` arguments.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Formats of the log on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// `timestamp LEVEL target: message key=value`.
    Text,
    /// One JSON object per line: timestamp, level, target, fields.
    Json,
}

/// Output formats of reporting commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned text for people.
    Text,
    /// JSON for programs.
    Json,
}

/// `prune` arguments: the policy from the flags, or from `--config`'s `retention` section.
#[derive(Debug, Args)]
pub struct PruneArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Keep the N most recently written backups.
    #[arg(long)]
    pub keep_last: Option<usize>,
    /// Keep the backups written within this long (7d, 12h, ...).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub keep_within: Option<Duration>,
    /// Keep the newest backup of each of the last N days (UTC).
    #[arg(long)]
    pub keep_daily: Option<usize>,
    /// Keep the newest backup of each of the last N weeks (Monday to Sunday, UTC).
    #[arg(long)]
    pub keep_weekly: Option<usize>,
    /// Keep the newest backup of each of the last N months (UTC).
    #[arg(long)]
    pub keep_monthly: Option<usize>,
    /// Inside the backups kept, drop whole segments whose records are all older than this.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub segment_retention: Option<Duration>,
    /// Show what would go and why; delete nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// `find` arguments.
#[derive(Debug, Args)]
pub struct FindArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Topic to find.
    #[arg(long)]
    pub topic: String,
    /// Point in time: epoch milliseconds or RFC 3339 (2026-11-26T03:00:00Z).
    #[arg(long)]
    pub at: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// `verify` arguments.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The restore's own config (mode: restore): its target, mapping and window are verified.
    #[arg(long, short)]
    pub config: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// `backup` arguments.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// YAML config file (mode: backup).
    #[arg(long, short)]
    pub config: PathBuf,
    /// Share the (continuous) backup with every process started with this group id: overrides
    /// backup.group_id.
    #[arg(long)]
    pub group_id: Option<String>,
    /// This worker's static id in the group (e.g. its pod name): overrides backup.group_instance_id.
    #[arg(long)]
    pub group_instance_id: Option<String>,
    /// Output format of the summary.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// `restore` and `three-phase-restore` arguments.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// YAML config file (mode: restore).
    #[arg(long, short)]
    pub config: PathBuf,
    /// Print the restore plan and write nothing (same as restore.dry_run: true).
    #[arg(long)]
    pub dry_run: bool,
    /// Output format of the plan and the report.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Share the restore with every process started with this group id: overrides
    /// restore.group_id.
    #[arg(long)]
    pub group_id: Option<String>,
    /// This worker's static id in the group (e.g. its pod name): overrides restore.group_instance_id.
    #[arg(long)]
    pub group_instance_id: Option<String>,
}

/// Where the backups are: `--path` (a URL or a directory, credentials from the cloud's standard
/// environment) or the `storage:` section of a backup or restore config.
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// Storage root holding backups: s3://BUCKET/PREFIX, az://CONTAINER/PREFIX,
    /// abfss://CONTAINER@ACCOUNT.dfs.core.windows.net/PREFIX, gs://BUCKET/PREFIX, file:///DIR or a
    /// local directory (a config's storage.path, plus storage.prefix if set).
    #[arg(long, required_unless_present = "config", conflicts_with = "config")]
    pub path: Option<String>,
    /// A backup or restore config whose storage section names the store (and its encryption keys).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Keys of encrypted backups.
    #[command(flatten)]
    pub keys: EncryptionArgs,
}

/// The keys that open encrypted backups (each 32 bytes, base64); several may be given (key
/// rotation), each backup opens with the one whose id it names.
#[derive(Debug, Args, Default)]
pub struct EncryptionArgs {
    /// A file holding a key (repeatable).
    #[arg(long = "encryption-key-file", value_name = "FILE")]
    pub key_files: Vec<PathBuf>,
    /// An environment variable holding a key (repeatable).
    #[arg(long = "encryption-key-env", value_name = "VAR")]
    pub key_envs: Vec<String>,
}

/// `list` arguments.
#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// `describe` arguments.
#[derive(Debug, Args)]
pub struct DescribeArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Backup to describe.
    #[arg(long)]
    pub backup_id: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ManifestFormat::Text)]
    pub format: ManifestFormat,
}

/// `validate` arguments.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Backup to validate.
    #[arg(long)]
    pub backup_id: String,
    /// Read every segment and verify checksums, batch CRCs, counts and offsets.
    #[arg(long)]
    pub deep: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// Output formats of `describe`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ManifestFormat {
    /// Aligned text for people.
    Text,
    /// The manifest as JSON.
    Json,
    /// The manifest as YAML.
    Yaml,
}

/// `cluster-info` arguments.
#[derive(Debug, Args)]
pub struct ClusterInfoArgs {
    /// Brokers to bootstrap from, comma-separated host:port (PLAINTEXT).
    #[arg(long, value_delimiter = ',', required_unless_present = "config", conflicts_with = "config")]
    pub bootstrap_servers: Vec<String>,
    /// A backup or restore config: its source (backup) or target (restore) cluster, with that
    /// section's TLS and SASL settings.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Give up on the cluster (reaching it, or retrying a failing call) after this many seconds.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout_secs: u64,
}

impl ClusterInfoArgs {
    /// The bootstrap timeout as a duration.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }
}

/// `offset-reset` subcommands.
#[derive(Debug, Subcommand)]
pub enum OffsetResetCommand {
    /// Show, per group and partition, the source offset and the target offset to commit.
    Plan(OffsetPlanArgs),
    /// Commit the planned offsets on the target (refused for groups with active members).
    Execute(OffsetPlanArgs),
    /// Give the groups of an executed reset back their previous offsets.
    Rollback(RollbackArgs),
}

/// Where the backup is and which target cluster is meant.
#[derive(Debug, Args)]
pub struct BackupTargetArgs {
    /// Storage root holding backups (default: storage.path of --config).
    #[arg(long, required_unless_present = "config")]
    pub path: Option<String>,
    /// Backup whose restores and group snapshots are used (default: backup_id of --config).
    #[arg(long, required_unless_present = "config")]
    pub backup_id: Option<String>,
    /// Target cluster brokers, comma-separated host:port.
    #[arg(long, value_delimiter = ',', conflicts_with = "config")]
    pub bootstrap_servers: Vec<String>,
    /// Restore config (mode: restore) giving the target cluster, the storage and the backup id.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Keys of an encrypted backup.
    #[command(flatten)]
    pub keys: EncryptionArgs,
}

/// `offset-reset plan` and `execute` arguments.
#[derive(Debug, Args)]
pub struct OffsetPlanArgs {
    /// Backup and target.
    #[command(flatten)]
    pub location: BackupTargetArgs,
    /// Groups to reset, comma-separated (globs and ~regex allowed).
    #[arg(long, value_delimiter = ',', required_unless_present = "all_groups", conflicts_with = "all_groups")]
    pub groups: Vec<String>,
    /// Every group of the backup's snapshots (with --config: those its restore.consumer_groups selects).
    #[arg(long)]
    pub all_groups: bool,
    /// skip, exact, header-based, timestamp-based, cluster-scan or manual (default: the config's
    /// restore.consumer_group_strategy, else exact).
    #[arg(long, value_parser = str::parse::<GroupStrategy>)]
    pub strategy: Option<GroupStrategy>,
    /// Target cluster id the restore was recorded for, when no target cluster is given and the
    /// backup was restored into several.
    #[arg(long, conflicts_with_all = ["bootstrap_servers", "config"])]
    pub target_cluster_id: Option<String>,
    /// Output format of the plan.
    #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
    pub format: PlanFormat,
}

/// Output formats of an offset-reset plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlanFormat {
    /// Aligned text for people.
    Text,
    /// JSON for programs.
    Json,
    /// One CSV row per group and partition.
    Csv,
    /// `kafka-consumer-groups.sh --reset-offsets` commands.
    Shell,
}

/// `offset-reset rollback` arguments.
#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// Backup and target.
    #[command(flatten)]
    pub location: BackupTargetArgs,
    /// Reset to undo (default: the latest not rolled back).
    #[arg(long)]
    pub reset_id: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}
