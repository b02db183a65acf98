//! Runs a feed's stages on one frame and assembles the output.

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
use nv_perception::{NullTemporalAccess, PerceptionArtifacts, Stage, StageContext, StageControl};
use nv_view::{ViewEpoch, ViewSnapshot, ViewState};

use crate::broadcast;
use crate::feed::shared::StageCounters;
use crate::metrics::FeedCounters;
use crate::output::{
    AdmissionSummary, FrameInclusion, InclusionState, OutputEnvelope, Provenance, SharedOutput,
    StageProvenance, StageResult, ViewProvenance,
};
use crate::throttle::Throttle;

/// What became of a frame.
pub(crate) enum FrameOutcome {
    Output(SharedOutput),
    /// A stage returned an error; counted and reported, no output.
    Dropped,
    /// A stage panicked; the session must end.
    Panicked(StageId),
}

struct StageSlot {
    stage: Box<dyn Stage>,
    counters: Arc<StageCounters>,
    errors: Throttle,
    last_error: Option<StageError>,
}

/// Per-feed executor. Lives on the feed worker thread for the feed's whole life, so
/// stage objects survive restarts (their `on_start` runs again).
pub(crate) struct Executor {
    feed_id: FeedId,
    stages: Vec<StageSlot>,
    view: ViewSnapshot,
    epoch: ViewEpoch,
    inclusion: InclusionState,
    inclusion_policy: FrameInclusion,
    clock: SharedClock,
    health: broadcast::Sender<HealthEvent>,
    counters: Arc<FeedCounters>,
    frame_lag_threshold: Duration,
    lag: Throttle,
    lag_peak_ms: u64,
    session: u32,
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
    pub feed_id: FeedId,
    pub stages: Vec<(Box<dyn Stage>, Arc<StageCounters>)>,
    pub inclusion: FrameInclusion,
    pub clock: SharedClock,
    pub health: broadcast::Sender<HealthEvent>,
    pub counters: Arc<FeedCounters>,
    pub frame_lag_threshold: Duration,
    pub throttle_window: Duration,
}

impl Executor {
    pub fn new(p: ExecutorParams) -> Self {
        Self {
            feed_id: p.feed_id,
            stages: p
                .stages
                .into_iter()
                .map(|(stage, counters)| StageSlot {
                    stage,
                    counters,
                    errors: Throttle::new(p.throttle_window),
                    last_error: None,
                })
                .collect(),
            view: ViewSnapshot::new(ViewState::fixed_initial()),
            epoch: ViewEpoch::INITIAL,
            inclusion: InclusionState::new(p.inclusion),
            inclusion_policy: p.inclusion,
            clock: p.clock,
            health: p.health,
            counters: p.counters,
            frame_lag_threshold: p.frame_lag_threshold,
            lag: Throttle::new(p.throttle_window),
            lag_peak_ms: 0,
            session: 0,
        }
    }

    /// Runs `on_start` on every stage in order; on failure, stops the ones already started
    /// (rollback) and returns the failing stage.
    pub fn start_stages(&mut self) -> Result<(), (StageId, StageError)> {
        for i in 0..self.stages.len() {
            let id = self.stages[i].stage.id();
            let stage = &mut self.stages[i].stage;
            if let Err(e) = guarded(id, || stage.on_start()) {
                for started in self.stages[..i].iter_mut().rev() {
                    let sid = started.stage.id();
                    if let Err(stop_err) = guarded(sid, || started.stage.on_stop()) {
                        tracing::warn!(feed_id = %self.feed_id, stage_id = %sid, error = %stop_err, "on_stop failed during rollback");
                    }
                }
                return Err((id, e));
            }
        }
        Ok(())
    }

    pub fn stop_stages(&mut self) {
        for slot in &mut self.stages {
            let id = slot.stage.id();
            if let Err(e) = guarded(id, || slot.stage.on_stop()) {
                tracing::warn!(feed_id = %self.feed_id, stage_id = %id, error = %e, "on_stop failed");
            }
        }
    }

    /// New session after a restart: bump the view epoch, reset per-session state and tell
    /// the stages.
    pub fn begin_restart_session(&mut self) {
        self.session += 1;
        self.epoch = self.epoch.next();
        let mut state = ViewState::fixed_initial();
        state.epoch = self.epoch;
        state.version = self.view.version().next();
        self.view = ViewSnapshot::new(state);
        self.inclusion = InclusionState::new(self.inclusion_policy);
        self.counters
            .view_epoch
            .store(self.epoch.as_u64(), Ordering::Relaxed);
        for slot in &mut self.stages {
            let id = slot.stage.id();
            let epoch = self.epoch;
            if let Err(e) = guarded(id, || slot.stage.on_view_epoch_change(epoch)) {
                tracing::warn!(feed_id = %self.feed_id, stage_id = %id, error = %e, "on_view_epoch_change failed");
            }
        }
    }

    /// Emits the remaining coalesced counts (stage errors, frame lag).
    pub fn flush_events(&mut self) {
        for slot in &mut self.stages {
            if let (Some(count), Some(error)) = (slot.errors.flush(), slot.last_error.clone()) {
                self.health.send(HealthEvent::StageError {
                    feed_id: self.feed_id,
                    stage_id: slot.stage.id(),
                    error,
                    count,
                });
            }
        }
        if let Some(frames_lagged) = self.lag.flush() {
            self.health.send(HealthEvent::FrameLag {
                feed_id: self.feed_id,
                frame_age_ms: self.lag_peak_ms,
                frames_lagged,
            });
            self.lag_peak_ms = 0;
        }
    }

    pub fn process(
        &mut self,
        frame: FrameEnvelope,
        received_at: MonotonicTs,
        dequeued_at: MonotonicTs,
    ) -> FrameOutcome {
        let mut artifacts = PerceptionArtifacts::new();
        let mut stage_prov = Vec::with_capacity(self.stages.len());
        let temporal = NullTemporalAccess { epoch: self.epoch };
        let mut skipping = false;
        let mut now = dequeued_at;
        for slot in &mut self.stages {
            let stage_id = slot.stage.id();
            if skipping {
                stage_prov.push(StageProvenance {
                    stage_id,
                    started_at: now,
                    finished_at: now,
                    result: StageResult::Skipped,
                });
                continue;
            }
            let ctx = StageContext::new(
                self.feed_id,
                &frame,
                &artifacts,
                &self.view,
                &temporal,
                slot.counters.snapshot(),
                dequeued_at,
            );
            let started_at = now;
            let stage = &mut slot.stage;
            let result = std::panic::catch_unwind(AssertUnwindSafe(|| stage.process(&ctx)));
            now = self.clock.now();
            slot.counters
                .latency
                .record(now.saturating_duration_since(started_at));
            match result {
                Ok(Ok(out)) => {
                    slot.counters.processed.fetch_add(1, Ordering::Relaxed);
                    skipping = artifacts.merge(out) == StageControl::SkipRemaining;
                    stage_prov.push(StageProvenance {
                        stage_id,
                        started_at,
                        finished_at: now,
                        result: StageResult::Ok,
                    });
                }
                Ok(Err(error)) => {
                    slot.counters.errors.fetch_add(1, Ordering::Relaxed);
                    self.counters.add_drop(DropReason::StageError, 1);
                    if let Some(count) = slot.errors.record(1, now) {
                        self.health.send(HealthEvent::StageError {
                            feed_id: self.feed_id,
                            stage_id,
                            error,
                            count,
                        });
                        slot.last_error = None;
                    } else {
                        slot.last_error = Some(error);
                    }
                    return FrameOutcome::Dropped;
                }
                Err(_panic) => {
                    slot.counters.panics.fetch_add(1, Ordering::Relaxed);
                    self.counters.add_drop(DropReason::StagePanic, 1);
                    self.health.send(HealthEvent::StagePanic {
                        feed_id: self.feed_id,
                        stage_id,
                    });
                    return FrameOutcome::Panicked(stage_id);
                }
            }
        }
        let completed_at = now;
        let frame_age = self
            .clock
            .wall_now()
            .checked_duration_since(frame.wall_ts());
        if let Some(age) = frame_age.filter(|a| *a >= self.frame_lag_threshold) {
            let age_ms = u64::try_from(age.as_millis()).unwrap_or(u64::MAX);
            self.lag_peak_ms = self.lag_peak_ms.max(age_ms);
            if let Some(frames_lagged) = self.lag.record(1, completed_at) {
                self.health.send(HealthEvent::FrameLag {
                    feed_id: self.feed_id,
                    frame_age_ms: self.lag_peak_ms,
                    frames_lagged,
                });
                self.lag_peak_ms = 0;
            }
        }
        let frame_included = self.inclusion.include(frame.ts());
        let view = self.view.as_view_state();
        let output = OutputEnvelope {
            feed_id: self.feed_id,
            frame_seq: frame.seq(),
            ts: frame.ts(),
            wall_ts: frame.wall_ts(),
            detections: artifacts.detections,
            tracks: artifacts.tracks,
            signals: artifacts.signals,
            scene_features: artifacts.scene_features,
            metadata: artifacts.stage_artifacts,
            provenance: Provenance {
                stages: stage_prov,
                view: ViewProvenance {
                    epoch: view.epoch,
                    version: view.version,
                    validity: view.validity,
                    stability_score: view.stability_score,
                },
                received_at,
                dequeued_at,
                completed_at,
                frame_age,
                session: self.session,
                frame_included,
            },
            frame: frame_included.then_some(frame),
            admission: AdmissionSummary::default(),
        };
        FrameOutcome::Output(Arc::new(output))
    }
}
