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
