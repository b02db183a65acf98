//! NextVision runtime: feeds, workers, bounded queues, sinks, provenance, diagnostics.
//!
//! Threads per feed: one worker (`nv-feed-{id}`: source ticks, stages, output) and one
//! sink thread per session (`nv-sink-{id}`). Sources bring their own producer threads;
//! the built-in synthetic source shares one timer thread across all paced feeds. Every
//! queue is bounded, every drop is counted under a [`DropReason`](nv_core::DropReason),
//! and every wait is on a condvar with a deadline read from the injected clock.

pub mod batch;
pub mod broadcast;
mod detached;
mod executor;
pub mod feed;
pub mod metrics;
pub mod output;
pub mod queue;
mod runtime;
pub mod source;
mod subscription;
pub mod sync;
pub mod throttle;
mod watchdog;
mod worker;

pub use batch::{BatchConfig, BatchFairness, BatchHandle, BatchMetrics};
pub use feed::{
    FeedConfig, FeedConfigBuilder, FeedDiagnostics, FeedHandle, QueueTelemetry, SinkOverflow,
};
pub use output::{
    FrameInclusion, NullSink, OutputEnvelope, OutputSink, Provenance, SharedOutput, SinkFactory,
    StageProvenance, StageResult, ViewProvenance,
};
pub use runtime::{Runtime, RuntimeBuilder, RuntimeDiagnostics, RuntimeHandle};
pub use subscription::{HealthSubscription, OutputSubscription};

pub use nv_core::policy::{BackpressurePolicy, ReconnectPolicy, RestartPolicy, RestartTrigger};
pub use nv_core::source::{PixelFormat, SourceSpec, SyntheticSpec};
pub use nv_core::{CameraMode, DropReason, FeedId, HealthEvent, StageId, StopReason};
pub use nv_temporal::RetentionPolicy;
pub use nv_view::{DefaultEpochPolicy, EpochPolicy, ViewSettings, ViewStateProvider};
