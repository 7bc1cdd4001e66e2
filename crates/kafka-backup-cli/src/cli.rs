//! Command-line syntax: what the user typed, parsed by clap, with no I/O.
//! `commands` turns it into work.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Back up Apache Kafka topics to object storage or a local directory and restore them, with
/// point-in-time recovery and consumer-group offset translation.
#[derive(Debug, Parser)]
#[command(name = "kafka-backup", version, about, long_about = None)]
pub struct Cli {
    /// Log level when RUST_LOG is not set (error, warn, info, debug, trace).
    #[arg(long, global = true, default_value = "warn")]
    pub log_level: String,
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands of the design brief. Those not built yet say so and exit non-zero.
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
    OffsetReset(NotYetArgs),
    /// Restore data, then translate and apply consumer-group offsets.
    ThreePhaseRestore(NotYetArgs),
    /// Show a cluster's id, brokers, topics, partition leaders and offsets.
    ClusterInfo(ClusterInfoArgs),
}

/// Arguments of a command that is not built yet: accepted, so that it can say so.
#[derive(Debug, Args)]
pub struct NotYetArgs {
    /// Arguments of the future command.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    pub args: Vec<String>,
}

/// Output formats of reporting commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned text for people.
    Text,
    /// JSON for programs.
    Json,
}

/// `backup` arguments.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// YAML config file (mode: backup).
    #[arg(long, short)]
    pub config: PathBuf,
}

/// `restore` arguments.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// YAML config file (mode: restore).
    #[arg(long, short)]
    pub config: PathBuf,
    /// Print the plan and write nothing (same as restore.dry_run: true).
    #[arg(long)]
    pub dry_run: bool,
}

/// `list` arguments.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Storage root holding backups: a local directory (storage.path, plus storage.prefix if set).
    #[arg(long)]
    pub path: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// `describe` arguments.
#[derive(Debug, Args)]
pub struct DescribeArgs {
    /// Storage root holding backups.
    #[arg(long)]
    pub path: String,
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
    /// Storage root holding backups.
    #[arg(long)]
    pub path: String,
    /// Backup to validate.
    #[arg(long)]
    pub backup_id: String,
    /// Read every segment and verify checksums, batch CRCs, counts and offsets.
    #[arg(long)]
    pub deep: bool,
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
    /// Brokers to bootstrap from, comma-separated host:port.
    #[arg(long, value_delimiter = ',', required = true)]
    pub bootstrap_servers: Vec<String>,
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
