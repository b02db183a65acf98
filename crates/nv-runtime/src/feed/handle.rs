//! `FeedHandle`: control and observe one feed from any thread.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use nv_core::error::RuntimeError;
use nv_core::feed_state::{FeedState, LastError};
use nv_core::health::{HealthEvent, StopReason};
use nv_core::id::{FeedId, StageId};
use nv_core::metrics::{FeedMetrics, HistogramSnapshot, StageMetrics};
use nv_core::time::MonotonicTs;

use super::shared::FeedShared;
use crate::source::DecodeStatus;

/// Current queue depths and capacities.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueTelemetry {
    pub source_depth: usize,
    pub source_capacity: usize,
    pub sink_depth: usize,
    pub sink_capacity: usize,
}

/// One stage's counters and latency distribution.
#[derive(Clone, Debug)]
pub struct StageDiagnostics {
    pub stage_id: StageId,
    pub metrics: StageMetrics,
    pub latency: HistogramSnapshot,
}

/// Everything known about a feed at one moment (fields are read independently).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct FeedDiagnostics {
    pub feed_id: FeedId,
    pub name: String,
    /// Redacted source description.
    pub source: String,
    pub alive: bool,
    pub paused: bool,
    pub uptime: Duration,
    pub session_uptime: Duration,
    pub metrics: FeedMetrics,
    pub queues: QueueTelemetry,
    pub decode: Option<DecodeStatus>,
    pub stages: Vec<StageDiagnostics>,
    pub receive_to_output: HistogramSnapshot,
    pub receive_to_sink: HistogramSnapshot,
    pub queue_hold: HistogramSnapshot,
    pub stop_reason: Option<StopReason>,
    /// Where the feed is in its life (the same value everywhere).
    pub state: FeedState,
    /// The most recent error, with its cause chain, times and repeat count.
    pub last_error: Option<LastError>,
    /// Events by kind, zone occupancy and line crossings.
    pub analytics: super::analytics::FeedAnalytics,
    /// Names of the feed's class ids, when its stages know any.
    pub class_names: Option<Arc<nv_perception::ClassNames>>,
}

/// A cloneable handle to one feed.
#[derive(Clone, Debug)]
pub struct FeedHandle {
    pub(crate) shared: Arc<FeedShared>,
}

impl FeedHandle {
    pub fn id(&self) -> FeedId {
        self.shared.id
    }

    pub fn name(&self) -> &str {
        &self.shared.name
    }

    pub fn is_paused(&self) -> bool {
        self.shared.control.lock().paused
    }

    /// False once the feed's worker has exited (end of stream, restart budget spent,
    /// removed).
    pub fn is_alive(&self) -> bool {
        !self.shared.is_finished()
    }

    pub fn stop_reason(&self) -> Option<StopReason> {
        self.shared.stop_reason.lock().clone()
    }

    /// The feed's current state.
    pub fn state(&self) -> FeedState {
        self.shared.status.state()
    }

    /// The most recent error the feed met (kept after recovery, for diagnosis).
    pub fn last_error(&self) -> Option<LastError> {
        self.shared.status.last_error()
    }

    pub fn metrics(&self) -> FeedMetrics {
        self.shared.counters.snapshot(self.shared.id)
    }

    pub fn queue_telemetry(&self) -> QueueTelemetry {
        QueueTelemetry {
            source_depth: self
                .shared
                .source_queue
                .lock()
                .as_ref()
                .map_or(0, |q| q.len()),
            source_capacity: self.shared.settings.queue_depth,
            sink_depth: self
                .shared
                .sink_queue
                .lock()
                .as_ref()
                .map_or(0, |q| q.len()),
            sink_capacity: self.shared.settings.sink_capacity,
        }
    }

    /// Time since the feed was added.
    pub fn uptime(&self) -> Duration {
        self.shared
            .clock
            .now()
            .saturating_duration_since(self.shared.created_at)
    }

    /// Time since the current session (re)started.
    pub fn session_uptime(&self) -> Duration {
        let started =
            MonotonicTs::from_nanos(self.shared.session_started_at.load(Ordering::Relaxed));
        self.shared.clock.now().saturating_duration_since(started)
    }

    pub fn decode_status(&self) -> Option<DecodeStatus> {
        self.shared.decode_status.lock().clone()
    }

    /// Reports a change of the feed's configuration made while it runs (a `FeedConfigChanged`
    /// health event; `detail` says what changed, for a person).
    pub fn report_config_changed(&self, detail: String) {
        self.shared.health.send(HealthEvent::FeedConfigChanged {
            feed_id: self.shared.id,
            detail,
        });
    }

    /// Stops processing until [`resume`](Self::resume); queued frames stay queued.
    pub fn pause(&self) -> Result<(), RuntimeError> {
        let feed_id = self.shared.id;
        let mut c = self.shared.control.lock();
        if c.finished {
            return Err(RuntimeError::FeedNotRunning { feed_id });
        }
        if c.paused {
            return Err(RuntimeError::AlreadyPaused { feed_id });
        }
        c.paused = true;
        self.shared.status.pause();
        drop(c);
        self.shared.health.send(HealthEvent::FeedPaused { feed_id });
        self.shared.control.notify_all();
        if let Some(q) = self.shared.source_queue.lock().as_ref() {
            q.wake();
        }
        self.shared.kick();
        Ok(())
    }

    pub fn resume(&self) -> Result<(), RuntimeError> {
        let feed_id = self.shared.id;
        let mut c = self.shared.control.lock();
        if c.finished {
            return Err(RuntimeError::FeedNotRunning { feed_id });
        }
        if !c.paused {
            return Err(RuntimeError::NotPaused { feed_id });
        }
        c.paused = false;
        self.shared.status.resume();
        drop(c);
        self.shared
            .health
            .send(HealthEvent::FeedResumed { feed_id });
        self.shared.control.notify_all();
        self.shared.kick();
        Ok(())
    }

    pub fn diagnostics(&self) -> FeedDiagnostics {
        let s = &self.shared;
        FeedDiagnostics {
            feed_id: s.id,
            name: s.name.clone(),
            source: s.source_redacted.clone(),
            alive: self.is_alive(),
            paused: self.is_paused(),
            uptime: self.uptime(),
            session_uptime: self.session_uptime(),
            metrics: self.metrics(),
            queues: self.queue_telemetry(),
            decode: self.decode_status(),
            stages: s
                .stages
                .iter()
                .map(|(id, c)| StageDiagnostics {
                    stage_id: *id,
                    metrics: c.snapshot(),
                    latency: c.latency.snapshot(),
                })
                .collect(),
            receive_to_output: s.counters.receive_to_output.snapshot(),
            receive_to_sink: s.counters.receive_to_sink.snapshot(),
            queue_hold: s.counters.queue_hold.snapshot(),
            stop_reason: self.stop_reason(),
            state: self.state(),
            last_error: self.last_error(),
            analytics: s.analytics.snapshot(),
            class_names: s.class_names.clone(),
        }
    }
}
