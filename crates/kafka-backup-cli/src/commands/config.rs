//! `kafka-backup config check --config FILE`: checks a config without connecting (for people's own
//! CI too) and says what it asks for, or why it is not valid (exit 1).

use anyhow::Context;
use kafka_backup_core::config::check_config_file;

use crate::cli::{ConfigCheckArgs, Format};

/// Runs `config check`.
pub fn check(args: ConfigCheckArgs) -> anyhow::Result<()> {
    let checked = check_config_file(&args.config).with_context(|| format!("{} is not valid", args.config.display()))?;
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&checked)?),
        Format::Text => {
            let encrypted = if checked.encrypted { ", encrypted" } else { "" };
            println!(
                "OK: {} is a valid {} config: backup {} in {}{encrypted}, cluster {} ({})",
                args.config.display(),
                checked.mode,
                checked.backup_id,
                checked.storage,
                checked.bootstrap_servers.join(","),
                checked.security_protocol
            );
        }
    }
    Ok(())
}
