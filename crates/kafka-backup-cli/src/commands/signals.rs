//! SIGINT/SIGTERM handling shared by the long-running commands: the first signal asks the
//! engine to stop cleanly (flush, commit) instead of killing the process mid-write.

use tokio::sync::watch;

/// A receiver that turns true on the first SIGINT or SIGTERM; `notice` is printed then.
pub fn stop_requested(notice: &'static str) -> watch::Receiver<bool> {
    let (sender, receiver) = watch::channel(false);
    tokio::spawn(async move {
        let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(_) => return,
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
        eprintln!("{notice}");
        let _ = sender.send(true);
    });
    receiver
}
