//! Test helpers: stages with scripted behaviour, collecting sinks, and event waits that
//! synchronise on what the runtime reports instead of sleeping.

pub mod broker;
pub mod clip;
pub mod daemon;
pub mod port;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nv_core::error::StageError;
use nv_core::health::HealthEvent;
use nv_core::id::StageId;
use nv_core::source::{PixelFormat, SyntheticSpec};
use nv_io::broadcast::RecvError;
use nv_io::{HealthSubscription, OutputSink, SharedOutput};
use nv_perception::{Stage, StageContext, StageOutput};
use parking_lot::{Condvar, Mutex};

/// Upper bound for any wait in a test. Tests synchronise on events; this only turns a
/// bug (an event that never comes) into a failure instead of a hang.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(20);

/// A synthetic spec for tests: tiny grey frames, unpaced, `frames` long (None = endless).
pub fn tiny_synthetic(frames: Option<u64>) -> SyntheticSpec {
    SyntheticSpec {
        width: 8,
        height: 8,
        format: PixelFormat::Gray8,
        fps: None,
        frame_count: frames,
        moving_objects: 1,
        seed: 7,
    }
}

/// Waits for the first health event matching `pred`, returning it.
pub fn wait_for_event(
    health: &mut HealthSubscription,
    mut pred: impl FnMut(&HealthEvent) -> bool,
) -> HealthEvent {
    let deadline = Instant::now() + TEST_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match health.recv_timeout(left) {
            Ok(e) if pred(&e) => return e,
            Ok(_) => {}
            Err(RecvError::Lagged(n)) => {
                panic!("health subscription lagged by {n}; raise health_capacity")
            }
            Err(e) => panic!("no matching health event before timeout: {e:?}"),
        }
    }
}

/// Collects every health event until one matches `stop`, returning all of them.
pub fn collect_events_until(
    health: &mut HealthSubscription,
    mut stop: impl FnMut(&HealthEvent) -> bool,
) -> Vec<HealthEvent> {
    let mut all = Vec::new();
    let deadline = Instant::now() + TEST_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match health.recv_timeout(left) {
            Ok(e) => {
                let done = stop(&e);
                all.push(e);
                if done {
                    return all;
                }
            }
            Err(e) => panic!("stream ended before the stop event: {e:?}; got {all:?}"),
        }
    }
}

#[derive(Default)]
struct Collected {
    outputs: Vec<SharedOutput>,
    flushes: u64,
}

/// A sink that keeps every output and lets tests wait for a count.
#[derive(Clone, Default)]
pub struct CollectingSink {
    inner: Arc<(Mutex<Collected>, Condvar)>,
}

impl std::fmt::Debug for CollectingSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CollectingSink")
            .field("len", &self.len())
            .finish()
    }
}

impl CollectingSink {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn len(&self) -> usize {
        self.inner.0.lock().outputs.len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn outputs(&self) -> Vec<SharedOutput> {
        self.inner.0.lock().outputs.clone()
    }
    pub fn flushes(&self) -> u64 {
        self.inner.0.lock().flushes
    }
    /// Waits until at least `n` outputs arrived; panics after [`TEST_TIMEOUT`].
    pub fn wait_for(&self, n: usize) -> Vec<SharedOutput> {
        let (lock, cond) = &*self.inner;
        let deadline = Instant::now() + TEST_TIMEOUT;
        let mut c = lock.lock();
        while c.outputs.len() < n {
            assert!(
                !cond.wait_until(&mut c, deadline).timed_out(),
                "only {} of {n} outputs arrived",
                c.outputs.len()
            );
        }
        c.outputs.clone()
    }
}

impl OutputSink for CollectingSink {
    fn emit(&mut self, output: SharedOutput) {
        let (lock, cond) = &*self.inner;
        lock.lock().outputs.push(output);
        cond.notify_all();
    }
    fn flush(&mut self) {
        self.inner.0.lock().flushes += 1;
    }
}

/// A sink that blocks in `emit` until released: models a wedged network sink.
#[derive(Clone, Default)]
pub struct GateSink {
    inner: Arc<(Mutex<GateState>, Condvar)>,
}

#[derive(Default)]
struct GateState {
    open: bool,
    entered: u64,
    emitted: u64,
}

impl std::fmt::Debug for GateSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GateSink").finish_non_exhaustive()
    }
}

impl GateSink {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn open(&self) {
        self.inner.0.lock().open = true;
        self.inner.1.notify_all();
    }
    pub fn emitted(&self) -> u64 {
        self.inner.0.lock().emitted
    }
    /// Waits until some `emit` call is blocked on the gate.
    pub fn wait_entered(&self) {
        let (lock, cond) = &*self.inner;
        let deadline = Instant::now() + TEST_TIMEOUT;
        let mut g = lock.lock();
        while g.entered == 0 {
            assert!(
                !cond.wait_until(&mut g, deadline).timed_out(),
                "sink never entered emit"
            );
        }
    }
}

impl OutputSink for GateSink {
    fn emit(&mut self, _output: SharedOutput) {
        let (lock, cond) = &*self.inner;
        let mut g = lock.lock();
        g.entered += 1;
        cond.notify_all();
        while !g.open {
            cond.wait(&mut g);
        }
        g.emitted += 1;
    }
}

/// What a [`ScriptedStage`] does on a given call.
#[derive(Clone, Debug)]
pub enum Step {
    Ok,
    Err,
    Panic,
    Skip,
}

/// A stage driven by a script (then a default), recording how it was called.
pub struct ScriptedStage {
    id: &'static str,
    script: VecDeque<Step>,
    default: Step,
    pub log: Arc<StageLog>,
    start_fails: u32,
}

/// Call counts of a [`ScriptedStage`], shared with the test.
#[derive(Debug, Default)]
pub struct StageLog {
    pub processed: AtomicU64,
    pub starts: AtomicU64,
    pub stops: AtomicU64,
    pub epoch_changes: AtomicU64,
    pub seen_detections: AtomicU64,
    pub order: Mutex<Vec<(&'static str, u64)>>,
}

impl StageLog {
    pub fn get(&self, c: &AtomicU64) -> u64 {
        c.load(Ordering::SeqCst)
    }
}

impl std::fmt::Debug for ScriptedStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScriptedStage")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl ScriptedStage {
    pub fn new(id: &'static str) -> Self {
        Self {
            id,
            script: VecDeque::new(),
            default: Step::Ok,
            log: Arc::new(StageLog::default()),
            start_fails: 0,
        }
    }
    #[must_use]
    pub fn then(mut self, step: Step) -> Self {
        self.script.push_back(step);
        self
    }
    #[must_use]
    pub fn always(mut self, step: Step) -> Self {
        self.default = step;
        self
    }
    /// The first `n` calls to `on_start` fail.
    #[must_use]
    pub fn failing_starts(mut self, n: u32) -> Self {
        self.start_fails = n;
        self
    }
    /// Shares an order log with other stages (records `(stage, frame seq)`).
    #[must_use]
    pub fn with_log(mut self, log: Arc<StageLog>) -> Self {
        self.log = log;
        self
    }
}

impl Stage for ScriptedStage {
    fn id(&self) -> StageId {
        StageId::new(self.id)
    }
    fn process(&mut self, ctx: &StageContext<'_>) -> Result<StageOutput, StageError> {
        self.log.processed.fetch_add(1, Ordering::SeqCst);
        self.log
            .seen_detections
            .fetch_add(ctx.artifacts.detections.len() as u64, Ordering::SeqCst);
        self.log.order.lock().push((self.id, ctx.frame.seq()));
        match self
            .script
            .pop_front()
            .unwrap_or_else(|| self.default.clone())
        {
            Step::Ok => Ok(StageOutput::empty()),
            Step::Err => Err(StageError::processing(self.id(), "scripted failure")),
            Step::Panic => panic!("scripted panic in {}", self.id),
            Step::Skip => Ok(StageOutput::skip_remaining()),
        }
    }
    fn on_start(&mut self) -> Result<(), StageError> {
        self.log.starts.fetch_add(1, Ordering::SeqCst);
        if self.start_fails > 0 {
            self.start_fails -= 1;
            return Err(StageError::processing(self.id(), "scripted start failure"));
        }
        Ok(())
    }
    fn on_stop(&mut self) -> Result<(), StageError> {
        self.log.stops.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    fn on_view_epoch_change(&mut self, _e: nv_view_epoch::ViewEpoch) -> Result<(), StageError> {
        self.log.epoch_changes.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

mod nv_view_epoch {
    pub use nv_perception::ViewEpoch;
}

/// A stage that does nothing (benchmarks, plumbing tests).
#[derive(Debug, Clone, Copy)]
pub struct NoOpStage(pub &'static str);

impl Stage for NoOpStage {
    fn id(&self) -> StageId {
        StageId::new(self.0)
    }
    fn process(&mut self, _ctx: &StageContext<'_>) -> Result<StageOutput, StageError> {
        Ok(StageOutput::empty())
    }
}

/// Every frame, a new track (id = frame seq + 1, class 3) enters zone `door` and crosses
/// line `gate` right to left: a feed of `n` frames counts `n` of each.
#[derive(Debug, Clone, Copy)]
pub struct EventStage(pub &'static str);

impl Stage for EventStage {
    fn id(&self) -> StageId {
        StageId::new(self.0)
    }
    fn process(&mut self, ctx: &StageContext<'_>) -> Result<StageOutput, StageError> {
        use nv_perception::{CrossingDirection, EventKind, EventObject, PerceptionEvent};
        let ts = ctx.frame.ts();
        let object = Some(EventObject {
            track_id: nv_core::id::TrackId::new(ctx.frame.seq() + 1),
            class_id: 3,
            confidence: 0.8,
            bbox: nv_core::geometry::BBox::new(0.1, 0.1, 0.2, 0.2),
        });
        let mut out = StageOutput::empty();
        out.events = vec![
            PerceptionEvent::new(
                ts,
                EventKind::ZoneEnter {
                    zone: "door".into(),
                },
                object,
            ),
            PerceptionEvent::new(
                ts,
                EventKind::LineCrossed {
                    line: "gate".into(),
                    direction: CrossingDirection::RightToLeft,
                },
                object,
            ),
        ];
        Ok(out)
    }
}

/// Waits for a condition on state that has no event of its own (counters, liveness),
/// yielding between checks; panics after [`TEST_TIMEOUT`].
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + TEST_TIMEOUT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::yield_now();
    }
}

/// A stage that blocks inside `process` until released: a stuck driver call, a slow
/// model. Every clone shares the gate.
#[derive(Clone)]
pub struct BlockingStage {
    id: &'static str,
    gate: Arc<(Mutex<(bool, bool)>, Condvar)>,
}

impl std::fmt::Debug for BlockingStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockingStage")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl BlockingStage {
    pub fn new(id: &'static str) -> Self {
        Self {
            id,
            gate: Arc::default(),
        }
    }
    /// Waits until some `process` call is blocked on the gate; panics after [`TEST_TIMEOUT`].
    pub fn wait_entered(&self) {
        let (lock, cond) = &*self.gate;
        let deadline = Instant::now() + TEST_TIMEOUT;
        let mut g = lock.lock();
        while !g.0 {
            assert!(
                !cond.wait_until(&mut g, deadline).timed_out(),
                "stage {} never entered",
                self.id
            );
        }
    }
    /// Lets every current and future call through.
    pub fn release(&self) {
        self.gate.0.lock().1 = true;
        self.gate.1.notify_all();
    }
    /// Releases the gate when the guard drops, so a failed assertion unwinds through the
    /// runtime's drop instead of leaving its worker blocked here. Declare it after the
    /// runtime: locals drop in reverse order.
    #[must_use = "the gate is released when the guard drops"]
    pub fn release_on_drop(&self) -> ReleaseGuard {
        ReleaseGuard(self.clone())
    }
}

/// See [`BlockingStage::release_on_drop`].
#[derive(Debug)]
pub struct ReleaseGuard(BlockingStage);

impl Drop for ReleaseGuard {
    fn drop(&mut self) {
        self.0.release();
    }
}

impl Stage for BlockingStage {
    fn id(&self) -> StageId {
        StageId::new(self.id)
    }
    fn process(&mut self, _ctx: &StageContext<'_>) -> Result<StageOutput, StageError> {
        let (lock, cond) = &*self.gate;
        let mut g = lock.lock();
        g.0 = true;
        cond.notify_all();
        while !g.1 {
            cond.wait(&mut g);
        }
        Ok(StageOutput::empty())
    }
}
