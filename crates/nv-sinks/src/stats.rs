//! Per-sink delivery counters, shared by a cloneable handle, with each feed's share.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nv_core::id::FeedId;
use parking_lot::{Condvar, Mutex, RwLock};
use serde::Serialize;

/// One feed's share of a sink's record counters.
#[derive(Debug, Default)]
struct FeedTally {
    received: AtomicU64,
    delivered: AtomicU64,
    failed: AtomicU64,
    dropped_by_buffer: AtomicU64,
}

/// Where a record ended up (or that it arrived).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Fate {
    Received,
    Delivered,
    Failed,
    Dropped,
}

impl Fate {
    fn of(self, c: &Counters) -> &AtomicU64 {
        match self {
            Self::Received => &c.received,
            Self::Delivered => &c.delivered,
            Self::Failed => &c.failed,
            Self::Dropped => &c.dropped_by_buffer,
        }
    }
    fn of_feed(self, t: &FeedTally) -> &AtomicU64 {
        match self {
            Self::Received => &t.received,
            Self::Delivered => &t.delivered,
            Self::Failed => &t.failed,
            Self::Dropped => &t.dropped_by_buffer,
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    received: AtomicU64,
    delivered: AtomicU64,
    failed: AtomicU64,
    dropped_by_buffer: AtomicU64,
    retries: AtomicU64,
    reconnects: AtomicU64,
    buffered: AtomicU64,
    connected: AtomicBool,
    /// Each feed's share (one entry per feed that sent a record; see `forget_feed`).
    feeds: RwLock<HashMap<FeedId, Arc<FeedTally>>>,
    /// Bumped on every change, so waiters can sleep on `changed` instead of polling.
    generation: Mutex<u64>,
    changed: Condvar,
}

/// Counters of one sink. Cloning shares them: the daemon keeps a clone for metrics while
/// the sink updates them from its threads. A sink rebuilt by a `SinkFactory` can be given
/// the same handle so the figures survive the rebuild.
///
/// Every record handed to a sink is counted in `received` and ends up in exactly one of
/// `delivered`, `failed` or `dropped_by_buffer`, or is still `buffered` (held by the sink,
/// including records in flight to the transport). The same four figures are kept per feed
/// ([`SinkStats::feed`]), so a sink shared by several feeds still says whose records it
/// lost.
#[derive(Clone, Debug, Default)]
pub struct SinkStats {
    inner: Arc<Counters>,
}

/// A point-in-time copy of [`SinkStats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SinkStatsSnapshot {
    /// Records handed to the sink.
    pub received: u64,
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

/// One feed's share of a sink's figures (see [`SinkStatsSnapshot`] for their meaning).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FeedSinkSnapshot {
    pub received: u64,
    pub delivered: u64,
    pub failed: u64,
    pub dropped_by_buffer: u64,
}

impl FeedSinkSnapshot {
    /// Records of this feed the sink still holds.
    pub fn held(&self) -> u64 {
        self.received
            .saturating_sub(self.delivered + self.failed + self.dropped_by_buffer)
    }
}

impl SinkStats {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn snapshot(&self) -> SinkStatsSnapshot {
        let c = &self.inner;
        SinkStatsSnapshot {
            received: c.received.load(Ordering::Acquire),
            delivered: c.delivered.load(Ordering::Acquire),
            failed: c.failed.load(Ordering::Acquire),
            dropped_by_buffer: c.dropped_by_buffer.load(Ordering::Acquire),
            retries: c.retries.load(Ordering::Acquire),
            reconnects: c.reconnects.load(Ordering::Acquire),
            buffered: c.buffered.load(Ordering::Acquire),
            connected: c.connected.load(Ordering::Acquire),
        }
    }

    /// This feed's share (zeros for a feed that sent nothing).
    pub fn feed(&self, feed: FeedId) -> FeedSinkSnapshot {
        self.inner
            .feeds
            .read()
            .get(&feed)
            .map_or_else(FeedSinkSnapshot::default, |t| tally_snapshot(t))
    }

    /// Every feed's share, by feed id.
    pub fn feeds(&self) -> Vec<(FeedId, FeedSinkSnapshot)> {
        let mut v: Vec<_> = self
            .inner
            .feeds
            .read()
            .iter()
            .map(|(id, t)| (*id, tally_snapshot(t)))
            .collect();
        v.sort_unstable_by_key(|(id, _)| *id);
        v
    }

    /// Drops a removed feed's share (the sink totals keep its records).
    pub fn forget_feed(&self, feed: FeedId) {
        self.inner.feeds.write().remove(&feed);
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

    fn tally(&self, feed: FeedId) -> Arc<FeedTally> {
        if let Some(t) = self.inner.feeds.read().get(&feed) {
            return Arc::clone(t);
        }
        Arc::clone(self.inner.feeds.write().entry(feed).or_default())
    }

    /// Counts one record of `feed` under `fate`.
    pub(crate) fn count(&self, fate: Fate, feed: FeedId) {
        self.count_each(fate, std::iter::once(feed));
    }

    /// Counts one record per item of `feeds` (the feeds of a batch, in any order) under
    /// `fate`; waiters are woken once.
    pub(crate) fn count_each(&self, fate: Fate, feeds: impl IntoIterator<Item = FeedId>) {
        let mut total = 0u64;
        let mut run: Option<(FeedId, u64)> = None;
        for feed in feeds {
            total += 1;
            match &mut run {
                Some((f, n)) if *f == feed => *n += 1,
                _ => {
                    if let Some((f, n)) = run.replace((feed, 1)) {
                        fate.of_feed(&self.tally(f)).fetch_add(n, Ordering::AcqRel);
                    }
                }
            }
        }
        if let Some((f, n)) = run {
            fate.of_feed(&self.tally(f)).fetch_add(n, Ordering::AcqRel);
        }
        if total > 0 {
            fate.of(&self.inner).fetch_add(total, Ordering::AcqRel);
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

fn tally_snapshot(t: &FeedTally) -> FeedSinkSnapshot {
    FeedSinkSnapshot {
        received: t.received.load(Ordering::Acquire),
        delivered: t.delivered.load(Ordering::Acquire),
        failed: t.failed.load(Ordering::Acquire),
        dropped_by_buffer: t.dropped_by_buffer.load(Ordering::Acquire),
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
                    writer.count(Fate::Delivered, FeedId::new(1));
                }
                writer.count_each(Fate::Dropped, [FeedId::new(1), FeedId::new(2)]);
            })
            .unwrap();
        let (snap, ok) = stats.wait_until(Duration::from_secs(10), |s| {
            s.delivered == 10 && s.dropped_by_buffer == 2
        });
        t.join().unwrap();
        assert!(ok, "{snap:?}");
        let (_, ok) = stats.wait_until(Duration::from_millis(1), |s| s.failed > 0);
        assert!(!ok);
        assert_eq!(stats.feed(FeedId::new(1)).delivered, 10);
        assert_eq!(stats.feed(FeedId::new(2)).dropped_by_buffer, 1);
        assert_eq!(stats.feeds().len(), 2);
    }
}
