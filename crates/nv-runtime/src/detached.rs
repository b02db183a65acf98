//! Threads that did not finish within their bound. They cannot be killed, so they are
//! counted, named in diagnostics, and joined once they finish.

use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::Mutex;

/// A named thread handle.
type Named = (String, JoinHandle<()>);

#[derive(Clone, Debug, Default)]
pub(crate) struct DetachedThreads {
    inner: Arc<Mutex<Vec<Named>>>,
}

impl DetachedThreads {
    pub fn add(&self, name: String, handle: JoinHandle<()>) {
        self.inner.lock().push((name, handle));
    }

    /// Joins the finished ones; returns the names still running.
    pub fn reap(&self) -> Vec<String> {
        let mut threads = self.inner.lock();
        let (done, running): (Vec<_>, Vec<_>) =
            threads.drain(..).partition(|(_, h)| h.is_finished());
        for (name, handle) in done {
            if handle.join().is_err() {
                tracing::warn!(thread = %name, "detached thread ended with a panic");
            }
        }
        let names = running.iter().map(|(n, _)| n.clone()).collect();
        *threads = running;
        names
    }
}
