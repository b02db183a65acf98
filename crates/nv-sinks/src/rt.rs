//! A private single-threaded tokio runtime on a named thread, for the async broker
//! clients. The sink thread never enters it: it hands records over through shared state
//! and a `Notify`.

use std::future::Future;
use std::thread::JoinHandle;

use crate::error::SinkError;

/// Builds a current-thread runtime here (so failures surface at build time) and runs
/// `task` on it on a new thread named `name`.
pub(crate) fn spawn<F, Fut>(name: &str, task: F) -> Result<JoinHandle<()>, SinkError>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| SinkError::Spawn {
            what: format!("{name} runtime"),
            source,
        })?;
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || runtime.block_on(task()))
        .map_err(|source| SinkError::Spawn {
            what: format!("{name} thread"),
            source,
        })
}

/// A current-thread runtime kept running on its own named thread, so that blocking
/// threads can run futures on it with [`IoRuntime::block_on`] while the runtime thread
/// drives the client's connection, timers and callbacks. Dropping it stops the thread.
pub(crate) struct IoRuntime {
    handle: tokio::runtime::Handle,
    stop: std::sync::Arc<tokio::sync::Notify>,
    thread: Option<JoinHandle<()>>,
}

impl IoRuntime {
    pub fn start(name: &str) -> Result<Self, SinkError> {
        let stop = std::sync::Arc::new(tokio::sync::Notify::new());
        let (handle_tx, handle_rx) = std::sync::mpsc::sync_channel(1);
        let stopped = std::sync::Arc::clone(&stop);
        let thread = spawn(name, move || async move {
            // The send fails only if `start` stopped waiting, which it never does.
            if handle_tx.send(tokio::runtime::Handle::current()).is_ok() {
                stopped.notified().await;
            }
        })?;
        let handle = handle_rx.recv().map_err(|_| SinkError::Spawn {
            what: format!("{name} runtime"),
            source: std::io::Error::other("runtime thread ended at start"),
        })?;
        Ok(Self {
            handle,
            stop,
            thread: Some(thread),
        })
    }

    /// A handle for threads that run futures themselves.
    pub fn handle(&self) -> tokio::runtime::Handle {
        self.handle.clone()
    }

    /// Runs `future` on this thread; the runtime thread drives its I/O and timers.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.handle.block_on(future)
    }
}

impl Drop for IoRuntime {
    fn drop(&mut self) {
        self.stop.notify_one();
        join(self.thread.take());
    }
}

/// Joins a sink's thread, logging (not propagating) a panic there.
pub(crate) fn join(thread: Option<JoinHandle<()>>) {
    if let Some(t) = thread {
        let name = t.thread().name().unwrap_or("sink").to_owned();
        if t.join().is_err() {
            tracing::warn!(thread = %name, "sink thread panicked");
        }
    }
}
