//! Metric snapshots and a lock-free latency histogram.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::health::DropReason;
use crate::id::FeedId;
use crate::time::duration_nanos;

/// Sub-buckets per power of two: worst-case relative error 1/8 = 12.5%.
const SUB_BUCKETS: usize = 8;
const SUB_BITS: u32 = 3;
/// Highest tracked power of two (2^43 ns ≈ 2.4 h); larger values land in the last bucket.
const MAX_OCTAVE: u32 = 43;
/// Number of buckets.
pub const HISTOGRAM_BUCKETS: usize = SUB_BUCKETS + (MAX_OCTAVE as usize - 2) * SUB_BUCKETS;

/// Log-linear histogram of nanosecond values. Recording is one relaxed `fetch_add` per
/// bucket plus count/sum/max updates; readers take consistent-enough snapshots.
#[derive(Debug)]
pub struct LatencyHistogram {
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    sum_nanos: AtomicU64,
    max_nanos: AtomicU64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self::new()
    }
}

fn bucket_index(nanos: u64) -> usize {
    if nanos < SUB_BUCKETS as u64 {
        return nanos as usize;
    }
    let octave = (63 - nanos.leading_zeros()).min(MAX_OCTAVE);
    let sub = ((nanos >> (octave - SUB_BITS)) as usize)
        .saturating_sub(SUB_BUCKETS)
        .min(SUB_BUCKETS - 1);
    SUB_BUCKETS + (octave - SUB_BITS) as usize * SUB_BUCKETS + sub
}

/// Exclusive upper bound (in ns) of a bucket.
pub fn bucket_upper_bound_nanos(index: usize) -> u64 {
    if index < SUB_BUCKETS {
        return index as u64 + 1;
    }
    let octave = (index - SUB_BUCKETS) / SUB_BUCKETS + SUB_BITS as usize;
    let sub = (index - SUB_BUCKETS) % SUB_BUCKETS;
    ((SUB_BUCKETS + sub + 1) as u64) << (octave - SUB_BITS as usize)
}

impl LatencyHistogram {
    pub fn new() -> Self {
        Self {
            buckets: (0..HISTOGRAM_BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_nanos: AtomicU64::new(0),
            max_nanos: AtomicU64::new(0),
        }
    }

    pub fn record(&self, value: Duration) {
        self.record_nanos(duration_nanos(value));
    }

    pub fn record_nanos(&self, nanos: u64) {
        self.buckets[bucket_index(nanos)].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.max_nanos.fetch_max(nanos, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            buckets: self
                .buckets
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect(),
            count: self.count.load(Ordering::Relaxed),
            sum_nanos: self.sum_nanos.load(Ordering::Relaxed),
            max_nanos: self.max_nanos.load(Ordering::Relaxed),
        }
    }
}

/// Point-in-time copy of a [`LatencyHistogram`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HistogramSnapshot {
    pub buckets: Vec<u64>,
    pub count: u64,
    pub sum_nanos: u64,
    pub max_nanos: u64,
}

impl HistogramSnapshot {
    /// Upper bound of the bucket holding quantile `q` in [0, 1], capped by the maximum
    /// seen. Zero when empty.
    pub fn quantile(&self, q: f64) -> Duration {
        if self.count == 0 {
            return Duration::ZERO;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Duration::from_nanos(
                    bucket_upper_bound_nanos(i).min(self.max_nanos.max(1)),
                );
            }
        }
        Duration::from_nanos(self.max_nanos)
    }
    pub fn mean(&self) -> Duration {
        Duration::from_nanos(self.sum_nanos.checked_div(self.count).unwrap_or(0))
    }
    /// Adds another snapshot's counts (for aggregating feeds).
    pub fn merge(&mut self, other: &Self) {
        if self.buckets.len() < other.buckets.len() {
            self.buckets.resize(other.buckets.len(), 0);
        }
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *a += b;
        }
        self.count += other.count;
        self.sum_nanos += other.sum_nanos;
        self.max_nanos = self.max_nanos.max(other.max_nanos);
    }
}

/// Counters of one stage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StageMetrics {
    pub frames_processed: u64,
    pub errors: u64,
    pub panics: u64,
}

/// Per-feed counters, as of the snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FeedMetrics {
    pub feed_id: Option<FeedId>,
    /// Frames delivered by the source into the feed's queue (accepted or not).
    pub frames_received: u64,
    /// Frames skipped by the frame-rate cap before the queue (sampling, not drops).
    pub frames_sampled_out: u64,
    /// Frames taken off the queue by the worker.
    pub frames_dequeued: u64,
    /// Frames that ran through every stage and produced an output.
    pub frames_processed: u64,
    /// Drops by reason, indexed by [`DropReason::index`].
    pub drops: [u64; DropReason::ALL.len()],
    pub outputs_to_sink: u64,
    pub restarts: u32,
    pub tracks_active: u64,
    pub view_epoch: u64,
}

impl FeedMetrics {
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.drops[reason.index()]
    }
    /// Frames that entered the feed but produced no output (sink drops excluded).
    pub fn frames_dropped(&self) -> u64 {
        DropReason::ALL
            .iter()
            .filter(|r| **r != DropReason::SinkQueueFull)
            .map(|r| self.dropped(*r))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn quantiles_of_known_distribution() {
        let h = LatencyHistogram::new();
        for us in 1..=100u64 {
            h.record(Duration::from_micros(us));
        }
        let s = h.snapshot();
        assert_eq!(s.count, 100);
        let p50 = s.quantile(0.5).as_nanos() as f64;
        assert!((50_000.0..=50_000.0 * 1.125).contains(&p50), "{p50}");
        assert_eq!(s.quantile(1.0), Duration::from_micros(100));
        assert_eq!(HistogramSnapshot::default().quantile(0.9), Duration::ZERO);
    }

    proptest! {
        #[test]
        fn value_lies_below_its_bucket_bound(v in 0u64..(1u64 << 43)) {
            let i = bucket_index(v);
            prop_assert!(i < HISTOGRAM_BUCKETS);
            prop_assert!(v < bucket_upper_bound_nanos(i));
            if i > 0 {
                prop_assert!(v >= bucket_upper_bound_nanos(i - 1));
            }
        }
    }
}
