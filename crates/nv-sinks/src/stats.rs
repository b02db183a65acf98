//! Per-sink delivery counters, shared by a cloneable handle.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use serde::Serialize;

#[derive(Debug, Default)]
struct Counters {
    delivered: AtomicU64,
    failed: AtomicU64,
    dropped_by_buffer: AtomicU64,
    retries: AtomicU64,
    reconnects: AtomicU64,
    buffered: AtomicU64,
    connected: AtomicBool,
    /// Bumped on every change, so waiters can sleep on `changed` instead of polling.
    generation: Mutex<u64>,
    changed: Condvar,
}

/// Counters of one sink. Cloning shares them: the daemon keeps a clone for metrics while
/// the sink updates them from its threads. A sink rebuilt by a `SinkFactory` can be given
/// the same handle so the figures survive the rebuild.
///
/// Every record handed to a sink ends up in exactly one of `delivered`, `failed` or
/// `dropped_by_buffer`, or is still `buffered` (held by the sink, including records in
/// flight to the transport).
#[derive(Clone, Debug, Default)]
pub struct SinkStats {
    inner: Arc<Counters>,
}

/// A point-in-time copy of [`SinkStats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SinkStatsSnapshot {
    /// Records the transport confirmed (written to the file, acknowledged by the broker or
    /// the webhook, or flushed to the server for transports without acknowledgements).
    pub delivered: u64,
    /// Records given up on (rejected by the endpoint, encode or write errors, unconfirmed
    /// at shutdown).
    pub failed: u64,
    /// Oldest records evicted because the bounded buffer was full.
    pub dropped_by_buffer: u64,
    /// Re-send attempts (a batch or record sent again after a failure).
    pub retries: u64,
    /// Successful connections after the first one.
    pub reconnects: u64,
    /// Records held right now (waiting or in flight).
    pub buffered: u64,
    /// Whether the transport is connected (always `true` for file and stdout sinks once
    /// open).
    pub connected: bool,
}

impl SinkStats {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn snapshot(&self) -> SinkStatsSnapshot {
        let c = &self.inner;
        SinkStatsSnapshot {
            delivered: c.delivered.load(Ordering::Acquire),
            failed: c.failed.load(Ordering::Acquire),
            dropped_by_buffer: c.dropped_by_buffer.load(Ordering::Acquire),
            retries: c.retries.load(Ordering::Acquire),
            reconnects: c.reconnects.load(Ordering::Acquire),
            buffered: c.buffered.load(Ordering::Acquire),
            connected: c.connected.load(Ordering::Acquire),
        }
    }

    pub fn delivered(&self) -> u64 {
        self.inner.delivered.load(Ordering::Acquire)
    }
    pub fn dropped_by_buffer(&self) -> u64 {
        self.inner.dropped_by_buffer.load(Ordering::Acquire)
    }
    pub fn is_connected(&self) -> bool {
        self.inner.connected.load(Ordering::Acquire)
    }

    /// Blocks until `pred` holds for a snapshot or `timeout` passes; returns the last
    /// snapshot and whether `pred` held. Wakes on every counter change, never polls.
    pub fn wait_until(
        &self,
        timeout: Duration,
        mut pred: impl FnMut(&SinkStatsSnapshot) -> bool,
    ) -> (SinkStatsSnapshot, bool) {
        let deadline = Instant::now() + timeout;
        let mut generation = self.inner.generation.lock();
        loop {
            let snap = self.snapshot();
            if pred(&snap) {
                return (snap, true);
            }
            if self
                .inner
                .changed
                .wait_until(&mut generation, deadline)
                .timed_out()
            {
                let snap = self.snapshot();
                let ok = pred(&snap);
                return (snap, ok);
            }
        }
    }

    fn bump(&self) {
        let mut generation = self.inner.generation.lock();
        *generation = generation.wrapping_add(1);
        self.inner.changed.notify_all();
    }

    pub(crate) fn add_delivered(&self, n: u64) {
        if n > 0 {
            self.inner.delivered.fetch_add(n, Ordering::AcqRel);
            self.bump();
        }
    }
    pub(crate) fn add_failed(&self, n: u64) {
        if n > 0 {
            self.inner.failed.fetch_add(n, Ordering::AcqRel);
            self.bump();
        }
    }
    pub(crate) fn add_dropped(&self, n: u64) {
        if n > 0 {
            self.inner.dropped_by_buffer.fetch_add(n, Ordering::AcqRel);
            self.bump();
        }
    }
    pub(crate) fn add_retries(&self, n: u64) {
        if n > 0 {
            self.inner.retries.fetch_add(n, Ordering::AcqRel);
            self.bump();
        }
    }
    pub(crate) fn add_reconnect(&self) {
        self.inner.reconnects.fetch_add(1, Ordering::AcqRel);
        self.bump();
    }
    pub(crate) fn set_buffered(&self, n: usize) {
        let n = u64::try_from(n).unwrap_or(u64::MAX);
        if self.inner.buffered.swap(n, Ordering::AcqRel) != n {
            self.bump();
        }
    }
    pub(crate) fn set_connected(&self, connected: bool) {
        if self.inner.connected.swap(connected, Ordering::AcqRel) != connected {
            self.bump();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_counters_and_waiters_wake() {
        let stats = SinkStats::new();
        let writer = stats.clone();
        let t = std::thread::Builder::new()
            .name("stats-writer".into())
            .spawn(move || {
                for _ in 0..10 {
                    writer.add_delivered(1);
                }
                writer.add_dropped(2);
            })
            .unwrap();
        let (snap, ok) = stats.wait_until(Duration::from_secs(10), |s| {
            s.delivered == 10 && s.dropped_by_buffer == 2
        });
        t.join().unwrap();
        assert!(ok, "{snap:?}");
        let (_, ok) = stats.wait_until(Duration::from_millis(1), |s| s.failed > 0);
        assert!(!ok);
    }
}
