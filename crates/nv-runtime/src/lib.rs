//! NextVision runtime: feeds, workers, bounded queues, sinks, provenance, diagnostics.
//!
//! Threads: by default feed workers (source ticks, stages, output) and sink delivery run
//! as tasks on a pool of `nv-pool-{n}` threads sized to the cores ([`Scheduler`]); with
//! `Scheduler::ThreadPerFeed`, or for a feed whose stages may block or that uses a batch
//! point, a feed has its own worker (`nv-feed-{id}`) and a sink thread per session
//! (`nv-sink-{id}`) unless the sink declares that it never blocks
//! (`OutputSink::may_block`), in which case the worker calls it directly. Sources bring
//! their own producer threads; the built-in synthetic source shares one timer thread
//! across all paced feeds. Every
//! queue is bounded, every drop is counted under a [`DropReason`](nv_core::DropReason),
//! and every wait is on a condvar with a deadline read from the injected clock.

pub mod batch;
mod detached;
mod executor;
pub mod feed;
pub(crate) mod inclusion;
mod recycle;
mod runtime;
mod sched;
mod subscription;
mod watchdog;
mod worker;

// The engine's primitives live in `nv-io`; these aliases keep the engine's own paths short.
pub(crate) use nv_io::{broadcast, coalesce, queue, sync, throttle};

/// The output contract (defined in `nv-io`).
pub mod output {
    pub use crate::inclusion::{FrameInclusion, TARGET_FPS_WARMUP_FRAMES};
    pub use nv_io::output::*;
}

/// The source contract (defined in `nv-io`) and the built-in synthetic source.
pub mod source {
    pub use nv_io::source::*;
    pub mod synthetic;
}

pub use batch::{BatchConfig, BatchFairness, BatchHandle, BatchMetrics};
pub use feed::{
    FeedAnalytics, FeedConfig, FeedConfigBuilder, FeedDiagnostics, FeedHandle, QueueTelemetry,
    StageDiagnostics, ZoneCounts,
};
pub use output::{
    FrameInclusion, NullSink, OutputEnvelope, OutputSink, Provenance, SharedOutput, SinkFactory,
    StageProvenance, StageResult, StageTrail, ViewProvenance,
};
pub use runtime::{Runtime, RuntimeBuilder, RuntimeDiagnostics, RuntimeHandle};
pub use sched::Scheduler;
pub use subscription::{HealthSubscription, OutputSubscription};

pub use nv_core::policy::{
    BackpressurePolicy, Overflow, ReconnectPolicy, RestartPolicy, RestartTrigger,
};
pub use nv_core::source::{PixelFormat, SourceSpec, SyntheticSpec};
pub use nv_core::{CameraMode, DropReason, FeedId, HealthEvent, StageId, StopReason};
pub use nv_temporal::RetentionPolicy;
pub use nv_view::{DefaultEpochPolicy, EpochPolicy, ViewSettings, ViewStateProvider};
