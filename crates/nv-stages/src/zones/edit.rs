//! Run-time edits of a zone stage's zones and lines.
//!
//! An edit is validated whole when it is submitted (every problem reported at once), then
//! waits until the stage's next frame, where it is applied at the frame boundary: every
//! open visit ends with an exit event at that frame, and counting continues with the new
//! geometry. [`ZoneEditor::wait_applied`] lets the submitter know when that happened.

use std::sync::Arc;
use std::time::{Duration, Instant};

use nv_core::error::ConfigError;
use parking_lot::{Condvar, Mutex};

use super::ZoneConfig;

#[derive(Debug)]
struct State {
    /// The configuration in force, or submitted last.
    current: ZoneConfig,
    pending: Option<ZoneConfig>,
    /// Edits submitted / applied so far.
    submitted: u64,
    applied: u64,
}

/// A cloneable handle to one zone stage's geometry (see the module docs).
#[derive(Clone, Debug)]
pub struct ZoneEditor {
    inner: Arc<(Mutex<State>, Condvar)>,
}

impl ZoneEditor {
    pub(crate) fn new(current: ZoneConfig) -> Self {
        Self {
            inner: Arc::new((
                Mutex::new(State {
                    current,
                    pending: None,
                    submitted: 0,
                    applied: 0,
                }),
                Condvar::new(),
            )),
        }
    }

    /// The configuration in force (or the last one submitted, if not applied yet).
    pub fn current(&self) -> ZoneConfig {
        self.inner.0.lock().current.clone()
    }

    /// Validates `config` and queues it for the stage's next frame (replacing an edit
    /// still waiting). Returns the edit's number, for [`wait_applied`](Self::wait_applied).
    pub fn submit(&self, config: ZoneConfig) -> Result<u64, ConfigError> {
        config.validate()?;
        let mut st = self.inner.0.lock();
        st.current = config.clone();
        st.pending = Some(config);
        st.submitted += 1;
        Ok(st.submitted)
    }

    /// Waits until edit `n` (or a later one) is applied; false when `timeout` passed first
    /// (the feed is paused, stopped or between frames).
    pub fn wait_applied(&self, n: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let (lock, cv) = &*self.inner;
        let mut st = lock.lock();
        while st.applied < n {
            if cv.wait_until(&mut st, deadline).timed_out() {
                return st.applied >= n;
            }
        }
        true
    }

    /// The stage takes the waiting edit at a frame boundary.
    pub(crate) fn take_pending(&self) -> Option<ZoneConfig> {
        let (lock, cv) = &*self.inner;
        let mut st = lock.lock();
        let pending = st.pending.take()?;
        st.applied = st.submitted;
        cv.notify_all();
        Some(pending)
    }
}
