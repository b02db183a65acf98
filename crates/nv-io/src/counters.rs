//! Per-feed counters: atomics written on the hot path, read by snapshots.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use nv_core::health::DropReason;
use nv_core::id::FeedId;
use nv_core::metrics::{FeedMetrics, LatencyHistogram};

/// Live counters of one feed. Relaxed ordering: each counter is independent and
/// snapshots are approximately consistent by design.
#[derive(Debug, Default)]
pub struct FeedCounters {
    pub frames_received: AtomicU64,
    pub frames_sampled_out: AtomicU64,
    pub frames_dequeued: AtomicU64,
    pub frames_processed: AtomicU64,
    pub outputs_to_sink: AtomicU64,
    pub restarts: AtomicU32,
    pub tracks_active: AtomicU64,
    pub view_epoch: AtomicU64,
    drops: [AtomicU64; DropReason::ALL.len()],
    /// Source push → output handed to sink/subscribers.
    pub receive_to_output: LatencyHistogram,
    /// Source push → `OutputSink::emit` called.
    pub receive_to_sink: LatencyHistogram,
    /// Time frames waited in the source queue.
    pub queue_hold: LatencyHistogram,
}

impl FeedCounters {
    pub fn add_drop(&self, reason: DropReason, n: u64) {
        self.drops[reason.index()].fetch_add(n, Ordering::Relaxed);
    }

    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.drops[reason.index()].load(Ordering::Relaxed)
    }

    pub fn snapshot(&self, feed_id: FeedId) -> FeedMetrics {
        let mut m = FeedMetrics::default();
        m.feed_id = Some(feed_id);
        m.frames_received = self.frames_received.load(Ordering::Relaxed);
        m.frames_sampled_out = self.frames_sampled_out.load(Ordering::Relaxed);
        m.frames_dequeued = self.frames_dequeued.load(Ordering::Relaxed);
        m.frames_processed = self.frames_processed.load(Ordering::Relaxed);
        m.outputs_to_sink = self.outputs_to_sink.load(Ordering::Relaxed);
        m.restarts = self.restarts.load(Ordering::Relaxed);
        m.tracks_active = self.tracks_active.load(Ordering::Relaxed);
        m.view_epoch = self.view_epoch.load(Ordering::Relaxed);
        for r in DropReason::ALL {
            m.drops[r.index()] = self.dropped(r);
        }
        m
    }
}
