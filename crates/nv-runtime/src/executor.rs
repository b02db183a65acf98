//! Runs a feed's pipeline (stages and an optional batch point) on one frame and assembles
//! the output.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use nv_core::clock::SharedClock;
use nv_core::error::StageError;
use nv_core::health::{DropReason, HealthEvent};
use nv_core::id::{FeedId, StageId};
use nv_core::time::MonotonicTs;
use nv_frame::FrameEnvelope;
use nv_perception::{PerceptionArtifacts, Stage, StageContext, StageControl, StageOutput};
use nv_temporal::TemporalStore;
use nv_view::{
    MotionPollContext, MotionReport, ViewEpoch, ViewStateProvider, ViewTracker, ViewUpdate,
};

use crate::batch::{BatchFailure, BatchHandle, SubmitError};
use crate::broadcast;
use crate::coalesce::{Coalesced, Coalescers};
use crate::feed::config::PipelineStep;
use crate::feed::shared::StageCounters;
use crate::inclusion::InclusionState;
use crate::output::{
    AdmissionSummary, FrameInclusion, OutputEnvelope, Provenance, SharedOutput, StageProvenance,
    StageResult, StageTrail, ViewProvenance,
};
use nv_io::FeedCounters;

/// What became of a frame.
pub(crate) enum FrameOutcome {
    Output(SharedOutput),
    /// A stage error or batch failure; counted and reported, no output.
    Dropped,
    /// A stage panicked; the session must end.
    Panicked(StageId),
}

/// Feed-side state of the batch point: coalesced events per failure kind.
struct BatchPoint {
    handle: BatchHandle,
    budget: Duration,
    rejected: Coalesced<()>,
    in_flight: Coalesced<()>,
    timed_out: Coalesced<()>,
    /// Unexpected coordinator loss is reported once per session.
    loss_reported: bool,
}

enum SlotKind {
    Stage(Box<dyn Stage>),
    Batch(Box<BatchPoint>),
}

struct StageSlot {
    id: StageId,
    kind: SlotKind,
    counters: Arc<StageCounters>,
    /// The latest error since the previous event rides along.
    errors: Coalesced<Option<StageError>>,
}

/// How one step failed.
enum StepFailure {
    /// Report as `StageError` (throttled per stage).
    Error(StageError),
    /// Already reported by the batch machinery.
    Dropped,
    Panicked,
}

/// Per-feed executor. Lives on the feed worker thread for the feed's whole life, so
/// stage objects survive restarts (their `on_start` runs again).
pub(crate) struct Executor {
    feed_id: FeedId,
    /// Carried in every output (sinks address feeds by name).
    feed_name: Arc<str>,
    class_names: Option<Arc<nv_perception::ClassNames>>,
    analytics: Arc<crate::feed::analytics::AnalyticsCounters>,
    stages: Vec<StageSlot>,
    view: ViewTracker,
    provider: Option<Arc<dyn ViewStateProvider>>,
    temporal: TemporalStore,
    /// The latest degraded view since the previous event rides along.
    degraded: Coalesced<Option<nv_view::ViewSnapshot>>,
    /// Carries the latest epoch.
    compensated: Coalesced<u64>,
    admission: Coalesced<()>,
    inclusion: InclusionState,
    /// Delivered outputs whose allocations the next outputs reuse.
    recycler: crate::recycle::OutputRecycler,
    inclusion_policy: FrameInclusion,
    clock: SharedClock,
    health: broadcast::Sender<HealthEvent>,
    counters: Arc<FeedCounters>,
    frame_lag_threshold: Duration,
    /// Carries the peak frame age (ms) since the previous event.
    lag: Coalesced<u64>,
    session: u32,
    run_id: u64,
    busy: Arc<crate::feed::shared::StageBusy>,
}

/// Calls a lifecycle hook, turning panics into errors.
fn guarded(
    stage_id: StageId,
    f: impl FnOnce() -> Result<(), StageError>,
) -> Result<(), StageError> {
    std::panic::catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| {
        Err(StageError::processing(
            stage_id,
            "panicked in lifecycle hook",
        ))
    })
}

pub(crate) struct ExecutorParams {
    /// The feed's context: id, clock, health sender, counters, coalescing window.
    pub feed: Arc<crate::feed::shared::FeedShared>,
    pub steps: Vec<(PipelineStep, Arc<StageCounters>)>,
    pub batch_latency_budget: Option<Duration>,
    pub view: ViewTracker,
    pub provider: Option<Arc<dyn ViewStateProvider>>,
    pub temporal: TemporalStore,
    pub inclusion: FrameInclusion,
    pub frame_lag_threshold: Duration,
}

/// What every coalesced event of one feed shares.
struct EventSlots {
    registry: Arc<Coalescers>,
    window: Duration,
    health: broadcast::Sender<HealthEvent>,
    clock: SharedClock,
}

impl EventSlots {
    fn make<D: Default + Send + 'static>(
        &self,
        build: impl Fn(u64, D) -> HealthEvent + Send + Sync + 'static,
    ) -> Coalesced<D> {
        Coalesced::new(
            &self.registry,
            self.window,
            self.health.clone(),
            self.clock.clone(),
            build,
        )
    }
}

impl Executor {
    pub fn new(p: ExecutorParams) -> Self {
        let feed_id = p.feed.id;
        let ev = EventSlots {
            registry: Arc::clone(&p.feed.coalescers),
            window: p.feed.health_throttle,
            health: p.feed.health.clone(),
            clock: p.feed.clock.clone(),
        };
        let stages = p
            .steps
            .into_iter()
            .map(|(step, counters)| {
                let id = step.id();
                let kind = match step {
                    PipelineStep::Stage(s) => SlotKind::Stage(s),
                    PipelineStep::Batch(handle) => SlotKind::Batch(Box::new(BatchPoint {
                        budget: p
                            .batch_latency_budget
                            .unwrap_or(handle.config().max_latency),
                        handle,
                        rejected: ev.make(move |dropped_count, ()| {
                            HealthEvent::BatchSubmissionRejected {
                                feed_id,
                                processor_id: id,
                                dropped_count,
                            }
                        }),
                        in_flight: ev.make(move |rejected_count, ()| {
                            HealthEvent::BatchInFlightExceeded {
                                feed_id,
                                processor_id: id,
                                rejected_count,
                            }
                        }),
                        timed_out: ev.make(move |timed_out_count, ()| HealthEvent::BatchTimeout {
                            feed_id,
                            processor_id: id,
                            timed_out_count,
                        }),
                        loss_reported: false,
                    })),
                };
                StageSlot {
                    id,
                    kind,
                    counters,
                    errors: ev.make(move |count, error: Option<StageError>| {
                        HealthEvent::StageError {
                            feed_id,
                            stage_id: id,
                            // Every counted error stored itself first: never the fallback.
                            error: error
                                .unwrap_or_else(|| StageError::processing(id, "stage error")),
                            count,
                        }
                    }),
                }
            })
            .collect();
        Self {
            feed_id: p.feed.id,
            feed_name: Arc::from(p.feed.name.as_str()),
            class_names: p.feed.class_names.clone(),
            analytics: Arc::clone(&p.feed.analytics),
            stages,
            view: p.view,
            provider: p.provider,
            temporal: p.temporal,
            degraded: ev.make(move |frames, view: Option<nv_view::ViewSnapshot>| {
                HealthEvent::ViewDegraded {
                    feed_id,
                    stability_score: view.as_ref().map_or(0.0, |v| v.stability_score()),
                    reason: view.as_ref().map(view_reason).unwrap_or_default(),
                    frames,
                }
            }),
            compensated: ev.make(move |count, epoch| HealthEvent::ViewCompensationApplied {
                feed_id,
                epoch,
                count,
            }),
            admission: ev.make(
                move |rejected_count, ()| HealthEvent::TrackAdmissionRejected {
                    feed_id,
                    rejected_count,
                },
            ),
            inclusion: InclusionState::new(p.inclusion),
            recycler: crate::recycle::OutputRecycler::default(),
            inclusion_policy: p.inclusion,
            clock: p.feed.clock.clone(),
            health: p.feed.health.clone(),
            counters: Arc::clone(&p.feed.counters),
            frame_lag_threshold: p.frame_lag_threshold,
            lag: ev.make(move |frames_lagged, frame_age_ms| HealthEvent::FrameLag {
                feed_id,
                frame_age_ms,
                frames_lagged,
            }),
            session: 0,
            run_id: p.feed.settings.run_id,
            busy: Arc::clone(&p.feed.busy),
        }
    }

    /// Runs `on_start` on every stage in order; on failure, stops the ones already started
    /// (rollback) and returns the failing stage.
    pub fn start_stages(&mut self) -> Result<(), (StageId, StageError)> {
        for i in 0..self.stages.len() {
            let slot = &mut self.stages[i];
            let (id, SlotKind::Stage(stage)) = (slot.id, &mut slot.kind) else {
                continue;
            };
            if let Err(e) = guarded(id, || stage.on_start()) {
                for started in self.stages[..i].iter_mut().rev() {
                    if let SlotKind::Stage(s) = &mut started.kind {
                        if let Err(stop_err) = guarded(started.id, || s.on_stop()) {
                            tracing::warn!(feed_id = %self.feed_id, stage_id = %started.id, error = %stop_err, "on_stop failed during rollback");
                        }
                    }
                }
                return Err((id, e));
            }
        }
        for slot in &mut self.stages {
            if let SlotKind::Batch(b) = &mut slot.kind {
                b.loss_reported = false;
            }
        }
        Ok(())
    }

    pub fn stop_stages(&mut self) {
        for slot in &mut self.stages {
            if let SlotKind::Stage(stage) = &mut slot.kind {
                if let Err(e) = guarded(slot.id, || stage.on_stop()) {
                    tracing::warn!(feed_id = %self.feed_id, stage_id = %slot.id, error = %e, "on_stop failed");
                }
            }
        }
    }

    /// New session after a restart: bump the view epoch, reset per-session state and tell
    /// the stages.
    pub fn begin_restart_session(&mut self) {
        self.session += 1;
        let update = self.view.restart();
        let epoch = update.snapshot.epoch();
        // Trajectories end at the restart boundary; the new session starts from nothing.
        self.temporal.clear_for_restart();
        self.temporal.set_view_epoch(epoch);
        self.counters.tracks_active.store(0, Ordering::Relaxed);
        self.inclusion = InclusionState::new(self.inclusion_policy);
        self.counters
            .view_epoch
            .store(epoch.as_u64(), Ordering::Relaxed);
        self.notify_epoch(epoch);
    }

    /// Tells every stage about a new view epoch (before the epoch's first frame).
    fn notify_epoch(&mut self, epoch: ViewEpoch) {
        for slot in &mut self.stages {
            if let SlotKind::Stage(stage) = &mut slot.kind {
                if let Err(e) = guarded(slot.id, || stage.on_view_epoch_change(epoch)) {
                    tracing::warn!(feed_id = %self.feed_id, stage_id = %slot.id, error = %e, "on_view_epoch_change failed");
                }
            }
        }
    }

    /// Emits the remaining coalesced counts now (session end), so they precede the
    /// session's last events; pending counts otherwise leave on their own deadline.
    pub fn flush_events(&mut self) {
        for slot in &self.stages {
            slot.errors.flush();
            if let SlotKind::Batch(b) = &slot.kind {
                b.rejected.flush();
                b.in_flight.flush();
                b.timed_out.flush();
            }
        }
        self.lag.flush();
        self.degraded.flush();
        self.compensated.flush();
        self.admission.flush();
    }

    /// Polls the view provider (observed cameras) and applies the epoch decision before
    /// any stage sees the frame.
    fn update_view(&mut self, frame: &FrameEnvelope, now: MonotonicTs) -> Option<ViewUpdate> {
        let provider = self.provider.as_ref()?;
        let ctx = MotionPollContext {
            ts: frame.ts(),
            frame,
            previous_view: self.view.snapshot(),
        };
        let report = std::panic::catch_unwind(AssertUnwindSafe(|| provider.poll(&ctx)))
            .unwrap_or_else(|_| {
                tracing::warn!(feed_id = %self.feed_id, "view provider panicked; frame treated as without motion data");
                MotionReport::default()
            });
        let update = self.view.update(&report, frame.ts());
        let feed_id = self.feed_id;
        let snapshot = &update.snapshot;
        if let Some(epoch) = update.epoch_changed {
            self.temporal.set_view_epoch(epoch);
            self.counters
                .view_epoch
                .store(epoch.as_u64(), Ordering::Relaxed);
            let reason = update.decision.map_or_else(String::new, |d| d.to_string());
            self.health.send(HealthEvent::ViewEpochChanged {
                feed_id,
                epoch: epoch.as_u64(),
                reason,
            });
            self.notify_epoch(epoch);
        }
        if update.degraded.is_some() {
            self.degraded
                .record_at(1, now, |v| *v = Some(snapshot.clone()));
        }
        if let Some(transform) = update.compensation {
            self.temporal
                .apply_compensation(&transform, snapshot.epoch());
            let epoch = snapshot.epoch().as_u64();
            self.compensated.record_at(1, now, |e| *e = epoch);
        }
        Some(update)
    }

    fn run_batch(
        &self,
        b: &mut BatchPoint,
        frame: &FrameEnvelope,
        view: &nv_view::ViewSnapshot,
        started_at: MonotonicTs,
    ) -> Result<StageOutput, StepFailure> {
        let feed_id = self.feed_id;
        let coordinator = &b.handle.coordinator;
        let reply = match coordinator.submit(feed_id, frame.clone(), view.clone(), b.budget) {
            Ok(reply) => reply,
            Err(SubmitError::QueueFull) => {
                b.rejected.record_at(1, started_at, |()| {});
                return Err(StepFailure::Dropped);
            }
            Err(SubmitError::InFlightExceeded) => {
                b.in_flight.record_at(1, started_at, |()| {});
                return Err(StepFailure::Dropped);
            }
            Err(SubmitError::Stopped) => return Err(self.coordinator_lost(b)),
        };
        let config = b.handle.config();
        let deadline = started_at + config.max_latency + config.response_timeout;
        match reply.take_until(deadline) {
            Some(Ok(output)) => Ok(output),
            // The coordinator already reported the failed batch (once, not per feed).
            Some(Err(BatchFailure::Processor)) => Err(StepFailure::Dropped),
            Some(Err(BatchFailure::Stopped)) => Err(self.coordinator_lost(b)),
            None => {
                b.handle
                    .counters()
                    .items_timed_out
                    .fetch_add(1, Ordering::Relaxed);
                b.timed_out.record(1, |()| {});
                Err(StepFailure::Dropped)
            }
        }
    }

    /// The coordinator went away while this feed still uses it: silent during runtime
    /// shutdown, one `StageError` per session otherwise.
    fn coordinator_lost(&self, b: &mut BatchPoint) -> StepFailure {
        let expected =
            b.handle.coordinator.stop_kind() == Some(crate::batch::StopKind::RuntimeShutdown);
        if expected || b.loss_reported {
            return StepFailure::Dropped;
        }
        b.loss_reported = true;
        StepFailure::Error(StageError::DependencyUnavailable {
            stage_id: b.handle.processor_id(),
            detail: "batch coordinator stopped".into(),
        })
    }

    pub fn process(
        &mut self,
        frame: FrameEnvelope,
        received_at: MonotonicTs,
        dequeued_at: MonotonicTs,
    ) -> FrameOutcome {
        let decision = self
            .update_view(&frame, dequeued_at)
            .and_then(|u| u.decision);
        let view = self.view.snapshot().clone();
        let temporal = self.temporal.snapshot();
        let mut artifacts = PerceptionArtifacts::new();
        let mut stage_prov = StageTrail::new();
        let mut skipping = false;
        let mut now = dequeued_at;
        let mut stages = std::mem::take(&mut self.stages);
        let mut outcome = None;
        for (index, slot) in stages.iter_mut().enumerate() {
            let stage_id = slot.id;
            if skipping {
                stage_prov.push(StageProvenance {
                    stage_id,
                    started_at: now,
                    finished_at: now,
                    result: StageResult::Skipped,
                });
                continue;
            }
            let started_at = now;
            self.busy.enter(index, started_at);
            let result = match &mut slot.kind {
                SlotKind::Stage(stage) => {
                    let ctx = StageContext::new(
                        self.feed_id,
                        &frame,
                        &artifacts,
                        &view,
                        &temporal,
                        slot.counters.snapshot(),
                        dequeued_at,
                    );
                    match std::panic::catch_unwind(AssertUnwindSafe(|| stage.process(&ctx))) {
                        Ok(Ok(out)) => Ok(out),
                        Ok(Err(e)) => Err(StepFailure::Error(e)),
                        Err(_panic) => Err(StepFailure::Panicked),
                    }
                }
                SlotKind::Batch(b) => self.run_batch(b, &frame, &view, started_at),
            };
            self.busy.leave();
            now = self.clock.now();
            slot.counters
                .latency
                .record(now.saturating_duration_since(started_at));
            match result {
                Ok(out) => {
                    slot.counters.processed.fetch_add(1, Ordering::Relaxed);
                    skipping = artifacts.merge(out) == StageControl::SkipRemaining;
                    stage_prov.push(StageProvenance {
                        stage_id,
                        started_at,
                        finished_at: now,
                        result: StageResult::Ok,
                    });
                }
                Err(StepFailure::Error(error)) => {
                    slot.counters.errors.fetch_add(1, Ordering::Relaxed);
                    self.counters.add_drop(DropReason::StageError, 1);
                    slot.errors.record_at(1, now, |e| *e = Some(error));
                    outcome = Some(FrameOutcome::Dropped);
                    break;
                }
                Err(StepFailure::Dropped) => {
                    slot.counters.errors.fetch_add(1, Ordering::Relaxed);
                    self.counters.add_drop(DropReason::Batch, 1);
                    outcome = Some(FrameOutcome::Dropped);
                    break;
                }
                Err(StepFailure::Panicked) => {
                    slot.counters.panics.fetch_add(1, Ordering::Relaxed);
                    self.counters.add_drop(DropReason::StagePanic, 1);
                    self.health.send(HealthEvent::StagePanic {
                        feed_id: self.feed_id,
                        stage_id,
                    });
                    outcome = Some(FrameOutcome::Panicked(stage_id));
                    break;
                }
            }
        }
        self.stages = stages;
        if let Some(o) = outcome {
            return o;
        }
        let admission = self.commit_tracks(&artifacts, frame.ts(), now);
        let view_prov = ViewProvenance {
            epoch: view.epoch(),
            version: view.version(),
            validity: view.validity(),
            stability_score: view.stability_score(),
            motion_source: view.motion_source(),
            transition: view.transition(),
            decision,
        };
        let times = [received_at, dequeued_at, now];
        FrameOutcome::Output(self.finish(frame, artifacts, stage_prov, view_prov, admission, times))
    }

    /// Commits the frame's tracks to the temporal store (authoritative sets end missing
    /// tracks first), then applies retention.
    fn commit_tracks(
        &mut self,
        artifacts: &PerceptionArtifacts,
        ts: MonotonicTs,
        now: MonotonicTs,
    ) -> AdmissionSummary {
        if artifacts.tracks.is_empty()
            && !artifacts.tracks_authoritative
            && self.temporal.is_empty()
        {
            return AdmissionSummary::default();
        }
        let epoch = self.view.snapshot().epoch();
        let summary = self.temporal.commit_frame(
            &artifacts.tracks,
            artifacts.tracks_authoritative,
            ts,
            epoch,
        );
        self.temporal.enforce_retention(ts);
        let active = self.temporal.track_count() as u64;
        self.counters.tracks_active.store(active, Ordering::Relaxed);
        let rejected = u32::try_from(summary.rejected).unwrap_or(u32::MAX);
        if rejected > 0 {
            self.admission.record_at(u64::from(rejected), now, |()| {});
        }
        AdmissionSummary {
            admitted: u32::try_from(summary.admitted).unwrap_or(u32::MAX),
            rejected,
        }
    }

    fn finish(
        &mut self,
        frame: FrameEnvelope,
        artifacts: PerceptionArtifacts,
        stages: StageTrail,
        view: ViewProvenance,
        admission: AdmissionSummary,
        [received_at, dequeued_at, completed_at]: [MonotonicTs; 3],
    ) -> SharedOutput {
        let frame_age = self
            .clock
            .wall_now()
            .checked_duration_since(frame.wall_ts());
        if let Some(age) = frame_age.filter(|a| *a >= self.frame_lag_threshold) {
            let age_ms = u64::try_from(age.as_millis()).unwrap_or(u64::MAX);
            self.lag
                .record_at(1, completed_at, |peak| *peak = (*peak).max(age_ms));
        }
        // Outputs with events always carry their frame (a zero-copy reference), so an
        // event's picture can be kept (the daemon's event snapshots).
        let frame_included = self.inclusion.include(frame.ts()) || !artifacts.events.is_empty();
        let provenance = Provenance {
            stages,
            view,
            received_at,
            dequeued_at,
            completed_at,
            frame_age,
            session: self.session,
            run_id: self.run_id,
            frame_included,
        };
        let mut out = OutputEnvelope::new(
            self.feed_id,
            frame.seq(),
            frame.ts(),
            frame.wall_ts(),
            provenance,
        );
        out.detections = artifacts.detections;
        out.tracks = artifacts.tracks;
        out.signals = artifacts.signals;
        out.scene_features = artifacts.scene_features;
        self.analytics.record(&artifacts.events);
        out.events = artifacts.events;
        out.feed_name = Some(Arc::clone(&self.feed_name));
        out.class_names.clone_from(&self.class_names);
        out.metadata = artifacts.stage_artifacts;
        out.frame = frame_included.then_some(frame);
        out.admission = admission;
        self.recycler.share(out)
    }
}

fn view_reason(view: &nv_view::ViewSnapshot) -> String {
    match view.validity() {
        nv_view::ContextValidity::Degraded { reason } => reason.as_str().to_owned(),
        nv_view::ContextValidity::Valid => "valid".to_owned(),
        _ => "invalid".to_owned(),
    }
}
