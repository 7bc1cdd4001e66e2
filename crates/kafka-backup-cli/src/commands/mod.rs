//! Runs a parsed command: resolves its arguments into core calls and prints the result.

mod cluster_info;

use anyhow::bail;

use crate::cli::Command;

/// Runs one command to completion.
pub async fn run(command: Command) -> anyhow::Result<()> {
    let (name, issue) = match command {
        Command::ClusterInfo(args) => return cluster_info::run(args).await,
        Command::Backup(_) => ("backup", 3),
        Command::List(_) => ("list", 3),
        Command::Describe(_) => ("describe", 3),
        Command::Validate(_) => ("validate", 3),
        Command::Restore(_) => ("restore", 4),
        Command::OffsetReset(_) => ("offset-reset", 5),
        Command::ThreePhaseRestore(_) => ("three-phase-restore", 5),
    };
    bail!("`kafka-backup {name}` is not implemented yet (tracked in issue #{issue})")
}
