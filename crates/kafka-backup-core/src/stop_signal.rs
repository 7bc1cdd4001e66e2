//! The stop signal of a run's partition tasks: raised by the operator's shutdown (SIGINT/SIGTERM)
//! or by the run itself when one partition fails, so the others stop at their next boundary.

use tokio::sync::watch;
use tokio::task::JoinSet;

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

/// Waits for every task of a run, handing each success to `done`; the first failure raises the
/// stop signal through `stop` (the others end at their next boundary) and is returned once all
/// have ended.
pub(crate) async fn join_stopping_on_failure<T: 'static, E: std::fmt::Display + 'static>(
    tasks: &mut JoinSet<Result<T, E>>,
    stop: &watch::Sender<bool>,
    mut done: impl FnMut(T),
) -> Option<E> {
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        match joined.expect("partition tasks do not panic") {
            Ok(outcome) => done(outcome),
            Err(error) => {
                tracing::error!(%error, "a partition failed; stopping the others");
                let _ = stop.send(true);
                first_error.get_or_insert(error);
            }
        }
    }
    first_error
}
