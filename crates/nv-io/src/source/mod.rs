//! The source abstraction: how frames get into a feed.
//!
//! A [`SourceFactory`] builds a [`Source`] per session. The source pushes frames from its
//! own threads through the [`FrameSink`] it is given at start; the feed worker calls
//! [`Source::tick`] whenever the source asks for it (its `next_tick` deadline) or wakes
//! the worker, so reconnect back-off and watchdogs run without polling.

mod frame_sink;

use std::sync::Arc;
use std::time::Duration;

use nv_core::clock::SharedClock;
use nv_core::error::MediaError;
use nv_core::id::FeedId;
use nv_core::policy::ReconnectPolicy;
use nv_core::source::{
    CustomPipelinePolicy, DecodeOutcome, DecodePreference, PixelFormat, SourceSpec,
};
use nv_core::time::MonotonicTs;

pub use frame_sink::{FeedIo, FrameSink, PushOutcome, SourceEnd, SourceObserver};

/// Pixel format a feed wants from its source.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OutputFormat {
    /// Whatever the decoder produces natively (NV12/I420 for most video): no conversion.
    #[default]
    Native,
    /// Convert to this format in the media pipeline.
    Exact(PixelFormat),
}

/// Everything a factory needs to build a source for one session.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SourceContext {
    pub feed_id: FeedId,
    pub spec: SourceSpec,
    pub reconnect: ReconnectPolicy,
    pub decode: DecodePreference,
    pub output_format: OutputFormat,
    /// Frames above this rate are skipped before the queue (counted as sampled out).
    pub max_fps: Option<f64>,
    /// A source that produces no first frame within this time is treated as failed.
    pub startup_timeout: Duration,
    /// A live source silent this long mid-stream is treated as stalled.
    pub stall_timeout: Duration,
    pub custom_pipeline_policy: CustomPipelinePolicy,
    pub clock: SharedClock,
}

impl SourceContext {
    pub fn new(feed_id: FeedId, spec: SourceSpec, clock: SharedClock) -> Self {
        Self {
            feed_id,
            spec,
            reconnect: ReconnectPolicy::default(),
            decode: DecodePreference::Auto,
            output_format: OutputFormat::Native,
            max_fps: None,
            startup_timeout: Duration::from_secs(10),
            stall_timeout: Duration::from_secs(10),
            custom_pipeline_policy: CustomPipelinePolicy::Reject,
            clock,
        }
    }
}

/// Source state reported by [`Source::tick`].
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum SourceStatus {
    Running,
    /// Waiting to reconnect; frames will resume on their own.
    Reconnecting,
    /// The source gave up; the session ends (the feed's restart policy decides what next).
    Stopped,
}

/// Result of a tick: the status plus when the source wants the next tick.
#[derive(Clone, Debug, PartialEq)]
pub struct TickOutcome {
    pub status: SourceStatus,
    /// Clock time of the next tick; `None` = only when woken.
    pub next_tick: Option<MonotonicTs>,
}

impl TickOutcome {
    pub fn running() -> Self {
        Self {
            status: SourceStatus::Running,
            next_tick: None,
        }
    }
}

/// What the decoder is doing, for diagnostics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeStatus {
    pub outcome: DecodeOutcome,
    /// Decoder element name or similar, informational.
    pub detail: String,
}

/// One session of a video source. Lives on the feed worker thread; may spawn its own
/// threads that push through the [`FrameSink`].
pub trait Source: Send {
    /// Starts producing. Fails synchronously only for errors known up front.
    fn start(&mut self, sink: FrameSink) -> Result<(), MediaError>;
    /// Advances the source's state machine (bus messages, reconnect, watchdogs).
    fn tick(&mut self, now: MonotonicTs) -> TickOutcome;
    fn pause(&mut self) -> Result<(), MediaError> {
        Ok(())
    }
    fn resume(&mut self) -> Result<(), MediaError> {
        Ok(())
    }
    /// Stops producing and releases resources; must not block for long (tear down
    /// slow pipelines on a helper thread).
    fn stop(&mut self);
    fn decode_status(&self) -> Option<DecodeStatus> {
        None
    }
}

/// Builds sources for the specs it handles.
pub trait SourceFactory: Send + Sync {
    fn handles(&self, spec: &SourceSpec) -> bool;
    fn create(&self, ctx: &SourceContext) -> Result<Box<dyn Source>, MediaError>;
}

/// Shared factory handle.
pub type SharedSourceFactory = Arc<dyn SourceFactory>;
