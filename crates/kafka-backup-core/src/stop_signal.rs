//! The stop signal of a run's partition tasks: raised by the operator's shutdown (SIGINT/SIGTERM)
//! or by the run itself when one partition fails, so the others stop at their next boundary.

use tokio::sync::watch;

/// A stop signal that follows `shutdown` and can also be raised through the returned sender.
pub(crate) fn stop_on_shutdown(mut shutdown: watch::Receiver<bool>) -> (watch::Sender<bool>, watch::Receiver<bool>) {
    let (sender, stop) = watch::channel(false);
    let forward = sender.clone();
    tokio::spawn(async move {
        while !*shutdown.borrow() {
            if shutdown.changed().await.is_err() {
                return;
            }
        }
        let _ = forward.send(true);
    });
    (sender, stop)
}
