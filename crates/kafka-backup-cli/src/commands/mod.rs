//! Runs a parsed command: resolves its arguments into core calls and prints the result.

mod backup;
mod cluster_info;
mod config;
mod inspect;
mod offset_reset;
pub mod progress;
mod prune;
mod restore;
mod signals;
mod verify;

use anyhow::{anyhow, Context};
use kafka_backup_core::offset_reset::GroupStrategy;
use kafka_backup_core::storage::EncryptionKey;

use clap::CommandFactory;

use crate::cli::{Cli, Command, ConfigCommand, EncryptionArgs};

/// What a terminal shows while a command runs.
#[derive(Debug, Clone, Copy)]
pub struct Display {
    /// Nothing animated.
    pub quiet: bool,
    /// One progress line per partition too.
    pub partitions: bool,
}

/// Runs one command to completion, showing progress as `display` says.
pub async fn run(command: Command, display: Display) -> anyhow::Result<()> {
    match command {
        Command::ClusterInfo(args) => cluster_info::run(args).await,
        Command::Backup(args) => backup::run(args, display).await,
        Command::List(args) => inspect::list(args).await,
        Command::Describe(args) => inspect::describe(args).await,
        Command::Validate(args) => inspect::validate(args).await,
        Command::Restore(args) => restore::run(args, GroupStrategy::Skip, display).await,
        Command::OffsetReset(command) => offset_reset::run(command).await,
        Command::ThreePhaseRestore(args) => restore::run(args, GroupStrategy::Exact, display).await,
        Command::Verify(args) => verify::run(args).await,
        Command::Find(args) => inspect::find(args).await,
        Command::Prune(args) => prune::run(args).await,
        Command::Config(ConfigCommand::Check(args)) => config::check(args),
        Command::Config(ConfigCommand::Migrate(args)) => config::migrate(args),
        Command::Completions(args) => {
            clap_complete::generate(args.shell, &mut Cli::command(), "kafka-backup", &mut std::io::stdout());
            Ok(())
        }
        Command::Man => Ok(clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?),
    }
}

/// Serves `/metrics`, `/health` and `/ready` when the config turns the endpoint on.
async fn serve_metrics(listen: Option<std::net::SocketAddr>) -> anyhow::Result<()> {
    let Some(address) = listen else { return Ok(()) };
    let bound = kafka_backup_core::metrics::server::serve(address)
        .await
        .with_context(|| format!("cannot serve metrics on {address} (metrics.listen)"))?;
    tracing::info!("metrics on http://{bound}/metrics, liveness on /health, readiness on /ready");
    Ok(())
}

/// `bytes` in MiB, for summaries.
fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

impl EncryptionArgs {
    /// The keys the flags name, in order.
    fn given(&self) -> anyhow::Result<Vec<EncryptionKey>> {
        let files = self.key_files.iter().map(|file| EncryptionKey::from_file(file, None));
        let variables = self.key_envs.iter().map(|variable| EncryptionKey::from_env(variable, None));
        files.chain(variables).collect::<Result<Vec<_>, _>>().map_err(|error| anyhow!(error))
    }
}
