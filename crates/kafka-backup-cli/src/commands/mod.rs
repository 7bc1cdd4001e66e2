//! Runs a parsed command: resolves its arguments into core calls and prints the result.

mod backup;
mod cluster_info;
mod inspect;
mod restore;
mod signals;

use anyhow::bail;

use crate::cli::Command;

/// Runs one command to completion.
pub async fn run(command: Command) -> anyhow::Result<()> {
    let (name, issue) = match command {
        Command::ClusterInfo(args) => return cluster_info::run(args).await,
        Command::Backup(args) => return backup::run(args).await,
        Command::List(args) => return inspect::list(args).await,
        Command::Describe(args) => return inspect::describe(args).await,
        Command::Validate(args) => return inspect::validate(args).await,
        Command::Restore(args) => return restore::run(args).await,
        Command::OffsetReset(_) => ("offset-reset", 5),
        Command::ThreePhaseRestore(_) => ("three-phase-restore", 5),
    };
    bail!("`kafka-backup {name}` is not implemented yet (tracked in issue #{issue})")
}
