//! Threads (and pool tasks) that did not finish within their bound. They cannot be
//! killed, so they are counted, named in diagnostics, and joined once they finish.

use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::Mutex;

use crate::sched::TaskCell;

enum Held {
    Thread(JoinHandle<()>),
    /// A pool task stuck in a call (it holds a pool thread; the pool starts a spare).
    Task(Arc<TaskCell>),
}

impl Held {
    fn is_finished(&self) -> bool {
        match self {
            Self::Thread(h) => h.is_finished(),
            Self::Task(t) => t.is_done(),
        }
    }
}

#[derive(Clone, Default)]
pub(crate) struct DetachedThreads {
    inner: Arc<Mutex<Vec<(String, Held)>>>,
}

impl std::fmt::Debug for DetachedThreads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DetachedThreads").finish_non_exhaustive()
    }
}

impl DetachedThreads {
    pub fn add(&self, name: String, handle: JoinHandle<()>) {
        self.inner.lock().push((name, Held::Thread(handle)));
    }

    /// A pool task that missed its deadline, under the name its thread would have had.
    pub fn add_task(&self, name: String, task: Arc<TaskCell>) {
        self.inner.lock().push((name, Held::Task(task)));
    }

    /// Joins the finished ones; returns the names still running.
    pub fn reap(&self) -> Vec<String> {
        let mut threads = self.inner.lock();
        let (done, running): (Vec<_>, Vec<_>) =
            threads.drain(..).partition(|(_, h)| h.is_finished());
        for (name, held) in done {
            if let Held::Thread(handle) = held {
                if handle.join().is_err() {
                    tracing::warn!(thread = %name, "detached thread ended with a panic");
                }
            }
        }
        let names = running.iter().map(|(n, _)| n.clone()).collect();
        *threads = running;
        names
    }
}
