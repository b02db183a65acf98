//! What flows into and out of a NextVision feed, and the primitives that carry it.
//!
//! This crate sits below the engine (`nv-runtime`) and beside its edges: media backends
//! (`nv-media`) implement the [`source`] contract, output sinks (`nv-sinks`) implement
//! [`OutputSink`], and observers (`nv-metrics`, the daemon) read the [`broadcast`] streams.
//! None of them needs the engine itself.
//!
//! - [`output`]: `OutputEnvelope` with its provenance, `SharedOutput`, `OutputSink`.
//! - [`source`]: `Source`, `SourceFactory`, `SourceContext`, and `FrameSink`, the only way
//!   frames enter a feed.
//! - [`queue`], [`sync`], [`broadcast`], [`throttle`]: the bounded queue, clock-aware
//!   condvar waits, the lossy multi-subscriber ring and the event coalescer. Every wait
//!   reads its deadline from the injected [`Clock`](nv_core::clock::Clock).
//! - [`counters`]: the per-feed counters a source and the engine both write.

pub mod broadcast;
pub mod coalesce;
pub mod counters;
pub mod output;
pub mod queue;
pub mod source;
pub mod sync;
pub mod throttle;

pub use counters::FeedCounters;
pub use output::{
    AdmissionSummary, HealthOutput, NullSink, OutputEnvelope, OutputSink, Provenance, SharedOutput,
    SinkFactory, StageProvenance, StageResult, StageTrail, ViewProvenance,
};
pub use source::{
    FrameSink, PushOutcome, Source, SourceContext, SourceEnd, SourceFactory, SourceObserver,
};

/// Health events of every feed; filter with [`HealthEvent::feed_id`]. A subscriber that
/// falls more than the health capacity behind gets [`RecvError::Lagged(n)`].
///
/// [`HealthEvent::feed_id`]: nv_core::health::HealthEvent::feed_id
/// [`RecvError::Lagged(n)`]: broadcast::RecvError::Lagged
pub type HealthSubscription = broadcast::Receiver<nv_core::health::HealthEvent>;
