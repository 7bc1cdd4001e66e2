//! `kafka-backup`: parses the command line, runs the command, maps the outcome to an exit code.
//! All engine logic lives in `kafka-backup-core`; this crate only parses and prints.

mod cli;
mod commands;

use std::process::ExitCode;

use clap::Parser;
use cli::LogFormat;

/// Keeps glibc's malloc from holding freed multi-megabyte buffers resident. Segment chunks and
/// fetch responses are megabytes each and short-lived; glibc raises its mmap threshold each time
/// such a buffer is freed, after which they come from its heaps, where freed memory stays
/// resident: a 4-partition backup peaked at 160 MiB that way, 92-96 MiB with the threshold fixed
/// at 2 MiB. 1 MiB gave 91 MiB but slowed a 1-partition restore by a third (its ~1 MiB produce
/// frames paid fresh pages each); mimalloc, tried instead, peaked at 175 MiB (docs/performance.md).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn release_large_buffers_to_the_system() {
    // SAFETY: mallopt only sets a tunable of the allocator; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 2 * 1024 * 1024);
    }
}

/// The static (musl) binary allocates with jemalloc: musl's own malloc, one lock over its heap,
/// made restores 10-25 % slower than the glibc binary's (docs/performance.md); jemalloc's are level.
/// Its tuning (`scripts/static-binary.sh`) is compiled in.
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    release_large_buffers_to_the_system();
    let cli = cli::Cli::parse();
    let level = if cli.quiet { "error" } else { cli.log_level.as_str() };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let log = tracing_subscriber::fmt().with_env_filter(filter).with_writer(|| commands::progress::LogWriter);
    match cli.log_format {
        LogFormat::Text => log.init(),
        LogFormat::Json => log.json().flatten_event(true).init(),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let display = commands::Display { quiet: cli.quiet, partitions: cli.progress_partitions };
    match runtime.block_on(commands::run(cli.command, display)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if cli.log_format == LogFormat::Json => {
            tracing::error!(error = %error_chain(&error), "the command failed");
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("error: {}", error_chain(&error));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, each cause added only when the message does not already say it
/// (library errors often include their source in their own message).
fn error_chain(error: &anyhow::Error) -> String {
    let mut message = error.to_string();
    for cause in error.chain().skip(1) {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
    }
    message
}
