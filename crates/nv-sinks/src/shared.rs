//! One sink instance per declared sink, shared by every feed that names it.
//!
//! Each feed's records reach a sink on that feed's own sink thread. When several feeds
//! name one declared sink, they must reach the *same* instance: two file sinks on one
//! path rename each other's files when they rotate, and N broker sinks open N
//! connections. A [`SharedSink`] owns the one instance behind a mutex; every feed gets a
//! [`SharedSinkHandle`] (an `OutputSink`) that hands its records to it. `emit` of every
//! sink here is short (a write, or a push into a bounded buffer), so feeds wait on each
//! other only as long as one record takes.

use std::fmt;
use std::sync::Arc;

use nv_io::{HealthOutput, OutputSink, SharedOutput, SinkFactory};
use parking_lot::Mutex;

use crate::config::SinkConfig;
use crate::error::SinkError;
use crate::stats::SinkStats;

struct Inner {
    name: String,
    /// Whether the instance takes health records (asked once, at construction).
    health: bool,
    sink: Mutex<Box<dyn OutputSink>>,
    stats: SinkStats,
}

/// A declared sink, built once. Cloning shares the instance. The instance is dropped
/// (network sinks drain within their flush timeout, then disconnect; file sinks close)
/// when the last clone and the last handle are gone.
#[derive(Clone)]
pub struct SharedSink {
    inner: Arc<Inner>,
}

impl fmt::Debug for SharedSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedSink")
            .field("name", &self.inner.name)
            .field("stats", &self.inner.stats.snapshot())
            .finish_non_exhaustive()
    }
}

impl SharedSink {
    /// Shares `sink`, whose counters are `stats`.
    pub fn new(name: impl Into<String>, sink: Box<dyn OutputSink>, stats: SinkStats) -> Self {
        Self {
            inner: Arc::new(Inner {
                name: name.into(),
                health: sink.selects_health(),
                sink: Mutex::new(sink),
                stats,
            }),
        }
    }

    /// Builds the sink `config` describes (network sinks connect in the background).
    pub fn build(name: impl Into<String>, config: &SinkConfig) -> Result<Self, SinkError> {
        let stats = SinkStats::new();
        let sink = config.build_with_stats(stats.clone())?;
        Ok(Self::new(name, sink, stats))
    }

    /// The name the sink was declared under.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The instance's counters, with each feed's share.
    pub fn stats(&self) -> &SinkStats {
        &self.inner.stats
    }

    /// Whether the instance takes health records (`records` has `health`).
    pub fn selects_health(&self) -> bool {
        self.inner.health
    }

    /// Hands one health record to the instance (the daemon's health thread calls this;
    /// like a feed's `emit` it is a short write or a push into a bounded buffer).
    pub fn emit_health(&self, health: &HealthOutput) {
        if self.inner.health {
            self.inner.sink.lock().emit_health(health);
        }
    }

    /// Counts `n` health records that never reached the instance (the daemon's health
    /// thread fell behind the runtime's bounded health stream) as received and dropped,
    /// under feed 0 (no feed has that id), so the loss shows in the sink's figures.
    pub fn count_missed_health(&self, n: u64) {
        let feeds = || {
            std::iter::repeat_n(
                nv_core::id::FeedId::new(0),
                usize::try_from(n).unwrap_or(usize::MAX),
            )
        };
        self.inner
            .stats
            .count_each(crate::stats::Fate::Received, feeds());
        self.inner
            .stats
            .count_each(crate::stats::Fate::Dropped, feeds());
    }

    /// An `OutputSink` for one feed.
    pub fn handle(&self) -> SharedSinkHandle {
        SharedSinkHandle {
            inner: Arc::clone(&self.inner),
        }
    }

    /// A factory for `FeedConfigBuilder::sink_factory`: a feed whose handle was lost (its
    /// sink thread wedged or panicked) gets a new handle to the same instance.
    pub fn factory(&self) -> SinkFactory {
        let shared = self.clone();
        Box::new(move || Box::new(shared.handle()))
    }
}

/// One feed's way into a [`SharedSink`].
pub struct SharedSinkHandle {
    inner: Arc<Inner>,
}

impl fmt::Debug for SharedSinkHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedSinkHandle")
            .field("sink", &self.inner.name)
            .finish_non_exhaustive()
    }
}

impl OutputSink for SharedSinkHandle {
    fn emit(&mut self, output: SharedOutput) {
        self.inner.sink.lock().emit(output);
    }

    /// One feed's session ended. Draining the shared instance now would hold back every
    /// other feed's records for up to the flush timeout, so only the last user flushes;
    /// otherwise the instance drains when it is dropped.
    fn flush(&mut self) {
        if Arc::strong_count(&self.inner) == 1 {
            self.inner.sink.lock().flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FileSinkConfig;
    use crate::records::Records;

    /// Health records the daemon's thread missed are counted, under feed 0, as received and
    /// dropped, so the sink's figures show the loss; a sink without `health` gets none.
    #[test]
    fn missed_health_records_are_counted_as_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = FileSinkConfig::new(dir.path().join("h.jsonl"));
        config.records = Records::HEALTH;
        let stats = SinkStats::new();
        let shared = SharedSink::new(
            "ops",
            SinkConfig::File(config)
                .build_with_stats(stats.clone())
                .unwrap(),
            stats.clone(),
        );
        assert!(shared.selects_health());
        shared.count_missed_health(3);
        let s = stats.snapshot();
        assert_eq!((s.received, s.dropped_by_buffer, s.delivered), (3, 3, 0));
        assert_eq!(stats.feed(nv_core::id::FeedId::new(0)).dropped_by_buffer, 3);
        let frames = SharedSink::build(
            "frames",
            &SinkConfig::File(FileSinkConfig::new(dir.path().join("f.jsonl"))),
        )
        .unwrap();
        assert!(!frames.selects_health());
    }
}
