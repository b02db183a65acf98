//! The output contract: one `OutputEnvelope` per processed frame, with full provenance,
//! and the `OutputSink` every sink implements.

use std::sync::Arc;
use std::time::Duration;

use nv_core::id::{FeedId, StageId};
use nv_core::metadata::TypedMetadata;
use nv_core::time::{MonotonicTs, WallTs};
use nv_frame::FrameEnvelope;
use nv_perception::{
    ClassNames, DerivedSignal, DetectionSet, PerceptionEvent, SceneFeature, Track,
};
use nv_view::{
    ContextValidity, EpochDecision, MotionSource, TransitionPhase, ViewEpoch, ViewVersion,
};

/// What a stage did with a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StageResult {
    Ok,
    /// An earlier stage asked to skip the rest of the pipeline for this frame.
    Skipped,
}

/// Timing and result of one stage on one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StageProvenance {
    pub stage_id: StageId,
    /// Runtime clock.
    pub started_at: MonotonicTs,
    pub finished_at: MonotonicTs,
    pub result: StageResult,
}

impl StageProvenance {
    pub fn latency(&self) -> Duration {
        self.finished_at.saturating_duration_since(self.started_at)
    }
}

/// Every stage's [`StageProvenance`] for one frame, in stage order. Reads as a slice. Up
/// to [`StageTrail::INLINE`] stages are held inside the output itself, so a frame's
/// provenance costs no allocation of its own; longer pipelines spill to the heap.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StageTrail(smallvec::SmallVec<[StageProvenance; 8]>);

impl StageTrail {
    /// Stages held without allocating.
    pub const INLINE: usize = 8;

    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, stage: StageProvenance) {
        self.0.push(stage);
    }
}

impl std::ops::Deref for StageTrail {
    type Target = [StageProvenance];
    fn deref(&self) -> &[StageProvenance] {
        &self.0
    }
}

impl From<Vec<StageProvenance>> for StageTrail {
    fn from(stages: Vec<StageProvenance>) -> Self {
        Self(stages.into_iter().collect())
    }
}

impl FromIterator<StageProvenance> for StageTrail {
    fn from_iter<I: IntoIterator<Item = StageProvenance>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

impl<'a> IntoIterator for &'a StageTrail {
    type Item = &'a StageProvenance;
    type IntoIter = std::slice::Iter<'a, StageProvenance>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// The view the output was computed in.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ViewProvenance {
    pub epoch: ViewEpoch,
    pub version: ViewVersion,
    pub validity: ContextValidity,
    pub stability_score: f32,
    pub motion_source: MotionSource,
    pub transition: TransitionPhase,
    /// The epoch policy's decision for this frame; `None` for fixed cameras.
    pub decision: Option<EpochDecision>,
}

/// Why an output says what it says: where the frame came from, how long each step took.
/// Runtime-clock timestamps are nanoseconds since the runtime's clock origin; media time
/// is the frame's own `ts`.
#[derive(Clone, Debug, PartialEq)]
pub struct Provenance {
    pub stages: StageTrail,
    pub view: ViewProvenance,
    /// When the source handed the frame to the feed (runtime clock).
    pub received_at: MonotonicTs,
    /// When the feed worker took it off the queue.
    pub dequeued_at: MonotonicTs,
    /// When the last stage finished.
    pub completed_at: MonotonicTs,
    /// Wall-clock age of the frame when processing completed (`None` if the source gave
    /// no wall time).
    pub frame_age: Option<Duration>,
    /// Restart session that produced this output (0 = first).
    pub session: u32,
    /// The runtime instance that produced this output, random per instance. Feed ids and
    /// sessions start over in every run, so idempotency keys include it: a restarted daemon
    /// or another node of a cluster never repeats a key for a different output.
    pub run_id: u64,
    pub frame_included: bool,
}

impl Provenance {
    pub fn queue_hold(&self) -> Duration {
        self.dequeued_at.saturating_duration_since(self.received_at)
    }
    pub fn pipeline_latency(&self) -> Duration {
        self.completed_at
            .saturating_duration_since(self.dequeued_at)
    }
    pub fn receive_to_complete(&self) -> Duration {
        self.completed_at
            .saturating_duration_since(self.received_at)
    }
}

/// Counts of the temporal admission decision for this frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AdmissionSummary {
    pub admitted: u32,
    pub rejected: u32,
}

/// Everything the runtime says about one frame.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct OutputEnvelope {
    pub feed_id: FeedId,
    /// The feed's configured name, when it has one (outputs of named feeds carry it so
    /// sinks can address feeds by name).
    pub feed_name: Option<Arc<str>>,
    /// Names of the class ids the feed's stages produce, when any are known (sinks,
    /// metrics and snapshots label classes by name with it).
    pub class_names: Option<Arc<ClassNames>>,
    pub frame_seq: u64,
    /// Media timestamp of the frame.
    pub ts: MonotonicTs,
    pub wall_ts: WallTs,
    pub detections: DetectionSet,
    pub tracks: Vec<Track>,
    pub signals: Vec<DerivedSignal>,
    pub scene_features: Vec<SceneFeature>,
    /// Every stage's events for this frame, in stage order (each produced once).
    pub events: Vec<PerceptionEvent>,
    /// Merged typed artifacts of every stage.
    pub metadata: TypedMetadata,
    pub provenance: Provenance,
    /// The frame itself, when the feed's frame-inclusion policy selected it.
    pub frame: Option<FrameEnvelope>,
    pub admission: AdmissionSummary,
    /// The fencing token of the cluster lease the output was produced under (the lease's
    /// first revision), stamped by a cluster node's output path; `None` outside a cluster.
    pub fence: Option<u64>,
}

impl OutputEnvelope {
    /// An output with no artifacts and no frame; the engine (or a test) fills in the
    /// public fields it has.
    pub fn new(
        feed_id: FeedId,
        frame_seq: u64,
        ts: MonotonicTs,
        wall_ts: WallTs,
        provenance: Provenance,
    ) -> Self {
        Self {
            feed_id,
            feed_name: None,
            class_names: None,
            frame_seq,
            ts,
            wall_ts,
            detections: DetectionSet::default(),
            tracks: Vec::new(),
            signals: Vec::new(),
            scene_features: Vec::new(),
            events: Vec::new(),
            metadata: TypedMetadata::default(),
            provenance,
            frame: None,
            admission: AdmissionSummary::default(),
            fence: None,
        }
    }
}

/// Outputs are shared, never copied: the sink and every subscriber get the same `Arc`.
pub type SharedOutput = Arc<OutputEnvelope>;

/// Receives a feed's outputs, by default on the feed's dedicated sink thread. May block
/// (network, disk) without slowing perception: the sink queue absorbs, blocks the feed
/// (`Block`) or drops, as the feed is configured.
pub trait OutputSink: Send + 'static {
    fn emit(&mut self, output: SharedOutput);
    /// Called once when the sink thread drains and exits (session end).
    fn flush(&mut self) {}
    /// Whether `emit` may block or take long. A sink that answers `false` promises that
    /// `emit` returns at once (a counter, a send into a bounded buffer that drops when
    /// full): the feed worker then calls it directly after the stages, with no sink queue
    /// and no thread hand-off per output. A sink that breaks the promise holds the feed
    /// worker (and, past the runtime's join timeout, the feed's stop). Default `true`.
    fn may_block(&self) -> bool {
        true
    }
    /// Whether this sink takes health records (the `health` record kind). The daemon
    /// hands them to such sinks through [`emit_health`](Self::emit_health). Default `false`.
    fn selects_health(&self) -> bool {
        false
    }
    /// Delivers one health record. Called on the daemon's health thread, never on a feed's:
    /// like `emit` it must return at once (a short write, or a push into the sink's bounded
    /// buffer). Default: ignores it.
    fn emit_health(&mut self, _health: &HealthOutput) {}
}

/// One health event encoded for the sinks that select the `health` record kind.
#[derive(Clone, Debug)]
pub struct HealthOutput {
    /// The feed the event concerns; `None` for runtime-wide events.
    pub feed_id: Option<FeedId>,
    /// That feed's configured name, when known.
    pub feed_name: Option<Arc<str>>,
    /// The event's stable snake_case name (`feed_stopped`, ...).
    pub event: &'static str,
    /// Key unique per health record, also across runs (transports deduplicate on it).
    pub key: String,
    /// The record (health schema), compact JSON, no trailing newline.
    pub json: Arc<[u8]>,
}

impl<F: FnMut(SharedOutput) + Send + 'static> OutputSink for F {
    fn emit(&mut self, output: SharedOutput) {
        self(output);
    }
}

/// Rebuilds a sink that was lost (its thread wedged past the shutdown timeout or panicked
/// while shutting down).
pub type SinkFactory = Box<dyn Fn() -> Box<dyn OutputSink> + Send + Sync>;

/// Discards everything (a feed whose outputs are only consumed through subscriptions).
#[derive(Clone, Copy, Debug, Default)]
pub struct NullSink;

impl OutputSink for NullSink {
    fn emit(&mut self, _output: SharedOutput) {}
    fn may_block(&self) -> bool {
        false
    }
}
