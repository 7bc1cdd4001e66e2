//! `kafka-backup config check --config FILE`: checks a config without connecting (for people's own
//! CI too) and says what it asks for, or why it is not valid (exit 1); `config migrate --from oso
//! FILE`: rewrites another tool's config as ours and names what it leaves behind.

use std::io::Write;

use anyhow::{bail, Context};
use kafka_backup_core::config::{check_config_file, from_oso};

use crate::cli::{ConfigCheckArgs, ConfigMigrateArgs, Format, MigrateFrom};

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

/// Runs `config migrate`: the migrated config on stdout (or in `--output`, written whole or not at
/// all), each key left behind on stderr.
pub fn migrate(args: ConfigMigrateArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.file).with_context(|| format!("cannot read {}", args.file.display()))?;
    let migration = match args.from {
        MigrateFrom::Oso => from_oso(&text),
    }
    .with_context(|| format!("{} is not an osodevops/kafka-backup config", args.file.display()))?;
    match &args.output {
        None => print!("{}", migration.yaml),
        Some(output) => {
            if output.exists() {
                bail!("{} exists; give another --output (it is never overwritten)", output.display());
            }
            let staged = output.with_extension("yaml.partial");
            let mut file =
                std::fs::File::create(&staged).with_context(|| format!("cannot create {}", staged.display()))?;
            file.write_all(migration.yaml.as_bytes())?;
            file.sync_all()?;
            std::fs::rename(&staged, output).with_context(|| format!("cannot write {}", output.display()))?;
        }
    }
    for left in &migration.not_carried {
        eprintln!("not carried over: {}: {}", left.key, left.reason);
    }
    let written = args.output.as_ref().map_or("stdout".to_string(), |o| o.display().to_string());
    eprintln!(
        "migrated {} to {written}; {} key(s) not carried over (listed at its top). Check it with `kafka-backup config check --config FILE`",
        args.file.display(),
        migration.not_carried.len()
    );
    Ok(())
}
