//! Cross-feed batching: one coordinator thread per batch processor forms batches from the
//! frames of many feeds, by size or latency, in a fair order.

mod coordinator;
mod queue;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use nv_core::error::{ConfigError, ConfigProblem};
use nv_core::id::StageId;
use nv_core::metrics::{HistogramSnapshot, LatencyHistogram};

pub(crate) use coordinator::{spawn_coordinator, BatchFailure, Coordinator, StopKind, SubmitError};
pub use queue::BatchFairness;

/// How a batch point forms and bounds batches.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct BatchConfig {
    /// Dispatch as soon as this many items are queued.
    pub max_batch_size: usize,
    /// Dispatch at most this long after the oldest queued item arrived.
    pub max_latency: Duration,
    /// Bound of the submission queue; default max(64, 4 x max_batch_size).
    pub queue_capacity: Option<usize>,
    /// A feed waits `max_latency + response_timeout` for its result, then drops the frame.
    pub response_timeout: Duration,
    /// Items of one feed that may be queued or processing at once (orphans after timeouts
    /// count), so a slow processor cannot make a feed stack work.
    pub max_in_flight_per_feed: u32,
    /// Bound on the processor's `on_start` (model load, warm-up).
    pub startup_timeout: Duration,
    pub fairness: BatchFairness,
}

impl BatchConfig {
    pub fn new(max_batch_size: usize, max_latency: Duration) -> Self {
        Self {
            max_batch_size,
            max_latency,
            ..Self::default()
        }
    }
    pub fn with_queue_capacity(mut self, n: usize) -> Self {
        self.queue_capacity = Some(n);
        self
    }
    pub fn with_response_timeout(mut self, d: Duration) -> Self {
        self.response_timeout = d;
        self
    }
    pub fn with_max_in_flight_per_feed(mut self, n: u32) -> Self {
        self.max_in_flight_per_feed = n;
        self
    }
    pub fn with_startup_timeout(mut self, d: Duration) -> Self {
        self.startup_timeout = d;
        self
    }
    pub fn with_fairness(mut self, f: BatchFairness) -> Self {
        self.fairness = f;
        self
    }
    pub fn effective_queue_capacity(&self) -> usize {
        self.queue_capacity
            .unwrap_or_else(|| (self.max_batch_size * 4).max(64))
    }

    /// Checks every field; reports all problems.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut p = Vec::new();
        if self.max_batch_size == 0 {
            p.push(ConfigProblem::invalid(
                "batch.max_batch_size",
                0,
                "must be at least 1",
            ));
        }
        if self.max_latency.is_zero() {
            p.push(ConfigProblem::invalid(
                "batch.max_latency",
                "0s",
                "must be positive",
            ));
        }
        if let Some(c) = self.queue_capacity {
            if c < self.max_batch_size {
                p.push(ConfigProblem::invalid(
                    "batch.queue_capacity",
                    c,
                    format!("must be at least max_batch_size ({})", self.max_batch_size),
                ));
            }
        }
        if self.response_timeout.is_zero() {
            p.push(ConfigProblem::invalid(
                "batch.response_timeout",
                "0s",
                "must be positive",
            ));
        }
        if self.max_in_flight_per_feed == 0 {
            p.push(ConfigProblem::invalid(
                "batch.max_in_flight_per_feed",
                0,
                "must be at least 1",
            ));
        }
        if self.startup_timeout.is_zero() {
            p.push(ConfigProblem::invalid(
                "batch.startup_timeout",
                "0s",
                "must be positive",
            ));
        }
        ConfigError::check(p)
    }
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            max_batch_size: 4,
            max_latency: Duration::from_millis(50),
            queue_capacity: None,
            response_timeout: Duration::from_secs(5),
            max_in_flight_per_feed: 1,
            startup_timeout: Duration::from_secs(30),
            fairness: BatchFairness::RoundRobin,
        }
    }
}

/// Live counters of one coordinator.
#[derive(Debug, Default)]
pub(crate) struct BatchCounters {
    pub batches_dispatched: AtomicU64,
    pub items_submitted: AtomicU64,
    pub items_processed: AtomicU64,
    pub items_failed: AtomicU64,
    pub items_rejected: AtomicU64,
    pub items_in_flight_rejected: AtomicU64,
    pub items_timed_out: AtomicU64,
    pub consecutive_errors: AtomicU64,
    pub max_batch_size_seen: AtomicU64,
    pub processing: LatencyHistogram,
    pub formation: LatencyHistogram,
}

/// Snapshot of a coordinator's counters.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct BatchMetrics {
    pub processor_id: StageId,
    pub configured_max_batch_size: usize,
    pub batches_dispatched: u64,
    pub items_submitted: u64,
    pub items_processed: u64,
    pub items_failed: u64,
    /// Refused because the submission queue was full.
    pub items_rejected: u64,
    /// Refused because the feed had `max_in_flight_per_feed` items outstanding.
    pub items_in_flight_rejected: u64,
    pub items_timed_out: u64,
    pub consecutive_errors: u64,
    pub max_batch_size_seen: u64,
    pub pending_items: usize,
    /// Time in `BatchProcessor::process` per batch.
    pub processing: HistogramSnapshot,
    /// Time from the oldest item's arrival to dispatch.
    pub formation: HistogramSnapshot,
}

impl BatchMetrics {
    pub fn avg_batch_size(&self) -> f64 {
        if self.batches_dispatched == 0 {
            0.0
        } else {
            (self.items_processed + self.items_failed) as f64 / self.batches_dispatched as f64
        }
    }
    pub fn avg_fill_ratio(&self) -> f64 {
        self.avg_batch_size() / self.configured_max_batch_size.max(1) as f64
    }
}

/// A handle to a running batch coordinator; give it to feeds with
/// [`FeedConfigBuilder::batch`](crate::FeedConfigBuilder::batch).
#[derive(Clone)]
pub struct BatchHandle {
    pub(crate) coordinator: Arc<Coordinator>,
}

impl std::fmt::Debug for BatchHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchHandle")
            .field("processor_id", &self.processor_id())
            .finish()
    }
}

impl BatchHandle {
    pub fn processor_id(&self) -> StageId {
        self.coordinator.id
    }
    pub fn config(&self) -> &BatchConfig {
        &self.coordinator.config
    }
    pub fn metrics(&self) -> BatchMetrics {
        self.coordinator.metrics()
    }
    pub fn is_running(&self) -> bool {
        !self.coordinator.is_stopped()
    }
    pub(crate) fn counters(&self) -> &BatchCounters {
        &self.coordinator.counters
    }
}

pub(crate) fn load_max(a: &AtomicU64, v: u64) {
    a.fetch_max(v, Ordering::Relaxed);
}
