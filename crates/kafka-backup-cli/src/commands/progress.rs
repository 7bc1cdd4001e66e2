//! The live progress line of backup and restore on a terminal: records done of the total known at
//! the start, bytes, rate and time left, redrawn from the engine's counters; log lines printed
//! meanwhile go above it; with `--progress-partitions`, a line per partition under it. Nothing is
//! drawn unless stdout and stderr are terminals, or with `--quiet`.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};
use kafka_backup_core::metrics::metrics;

/// The bar being drawn, for the log writer.
static ACTIVE: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// A progress display; dropping it stops it, its last state left on screen.
pub struct Progress {
    bar: ProgressBar,
    updater: tokio::task::JoinHandle<()>,
    partitions: bool,
}

/// Starts drawing the progress of `what` (`backup`, `restore`), unless quiet or not on a terminal.
pub fn start(what: &'static str, display: super::Display) -> Option<Progress> {
    if display.quiet || !std::io::stdout().is_terminal() || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(5));
    // The message is the bytes done, then (with partitions) one line per partition.
    let style = ProgressStyle::with_template(
        "{prefix} [{elapsed_precise}] [{bar:30}] {human_pos}/{human_len} records ({per_sec}, ETA {eta}), {msg}",
    )
    .expect("a valid template")
    .progress_chars("=> ");
    let partitions = display.partitions;
    bar.set_style(style);
    bar.set_prefix(what);
    *ACTIVE.lock().expect("progress lock") = Some(bar.clone());
    let shown = bar.clone();
    let updater = tokio::spawn(async move {
        loop {
            refresh(&shown, partitions);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    Some(Progress { bar, updater, partitions })
}

/// Shows the engine's counters.
fn refresh(bar: &ProgressBar, partitions: bool) {
    let (done, total, bytes) = metrics().progress.read();
    if total > 0 {
        bar.set_length(total.max(done));
    } else {
        bar.unset_length();
    }
    bar.set_position(done);
    let mut message = format!("{}", HumanBytes(bytes));
    if partitions {
        for (partition, records, lag) in metrics().partition_progress() {
            let lag = lag.map_or(String::new(), |lag| format!(", lag {lag}"));
            message.push_str(&format!("\n  {partition}: {records} records{lag}"));
        }
    }
    bar.set_message(message);
}

impl Drop for Progress {
    /// Leaves the final state on screen, above the summary.
    fn drop(&mut self) {
        self.updater.abort();
        refresh(&self.bar, self.partitions);
        self.bar.finish();
        *ACTIVE.lock().expect("progress lock") = None;
    }
}

/// Where log lines go: stderr, above the progress bar when one is drawn.
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let active = ACTIVE.lock().expect("progress lock").clone();
        match active {
            Some(bar) => bar.suspend(|| std::io::stderr().write_all(buf)).map(|()| buf.len()),
            None => std::io::stderr().write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}
