//! Runs a parsed command: resolves its arguments into core calls and prints the result.

mod backup;
mod cluster_info;
mod inspect;
mod offset_reset;
mod restore;
mod signals;

use kafka_backup_core::offset_reset::GroupStrategy;

use crate::cli::Command;

/// Runs one command to completion.
pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::ClusterInfo(args) => cluster_info::run(args).await,
        Command::Backup(args) => backup::run(args).await,
        Command::List(args) => inspect::list(args).await,
        Command::Describe(args) => inspect::describe(args).await,
        Command::Validate(args) => inspect::validate(args).await,
        Command::Restore(args) => restore::run(args, GroupStrategy::Skip).await,
        Command::OffsetReset(command) => offset_reset::run(command).await,
        Command::ThreePhaseRestore(args) => restore::run(args, GroupStrategy::Exact).await,
    }
}

/// `bytes` in MiB, for summaries.
fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}
