//! The per-feed context shared by a feed's worker and sink threads, its handle and the
//! runtime.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use nv_core::clock::SharedClock;
use nv_core::health::{HealthEvent, StopReason};
use nv_core::id::{FeedId, StageId};
use nv_core::metrics::LatencyHistogram;
use nv_core::time::MonotonicTs;
use nv_frame::FrameEnvelope;
use parking_lot::Mutex;

use super::status::FeedStatus;
use crate::broadcast;
use crate::output::SharedOutput;
use crate::queue::BoundedQueue;
use crate::queue::Overflow;
use crate::source::{DecodeStatus, FeedIo};
use crate::sync::Waiter;
use nv_io::FeedCounters;

/// Control-plane flags, guarded together so a single condvar serves pause, stop and the
/// restart delay.
#[derive(Debug, Default)]
pub(crate) struct Control {
    pub paused: bool,
    pub stop_requested: bool,
    pub finished: bool,
}

/// Which stage the worker is inside right now, for the stall watchdog. Two relaxed
/// stores per stage call; the watchdog reads them once a second.
#[derive(Debug, Default)]
pub(crate) struct StageBusy {
    /// Clock nanos when the current stage call began; 0 when idle.
    pub since_nanos: AtomicU64,
    pub index: AtomicU64,
    /// `since_nanos` of the call already reported, so each stall is reported once.
    pub reported_nanos: AtomicU64,
}

impl StageBusy {
    pub fn enter(&self, index: usize, now: MonotonicTs) {
        self.index.store(index as u64, Ordering::Relaxed);
        self.since_nanos
            .store(now.as_nanos().max(1), Ordering::Release);
    }
    pub fn leave(&self) {
        self.since_nanos.store(0, Ordering::Release);
    }
}

/// Counters of one stage.
#[derive(Debug, Default)]
pub(crate) struct StageCounters {
    pub processed: AtomicU64,
    pub errors: AtomicU64,
    pub panics: AtomicU64,
    pub latency: LatencyHistogram,
}

impl StageCounters {
    pub fn snapshot(&self) -> nv_core::metrics::StageMetrics {
        nv_core::metrics::StageMetrics {
            frames_processed: self.processed.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            panics: self.panics.load(Ordering::Relaxed),
        }
    }
}

/// Queue and sink settings taken from the feed's config once.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FeedSettings {
    /// Frame queue depth (its overflow is in [`FeedIo::overflow`]).
    pub queue_depth: usize,
    pub sink_capacity: usize,
    pub sink_overflow: Overflow,
    /// How long a session end waits for the sink to drain; also how often a blocking sink
    /// that holds the feed is reported (`SinkStalled`).
    pub sink_shutdown_timeout: Duration,
    pub stage_stall_timeout: Duration,
    pub restart_delay: Duration,
    /// The runtime instance's id, stamped on every output.
    pub run_id: u64,
}

/// The per-feed context: everything a feed's worker, sink, handle, executor and the
/// watchdog share, built once in `add_feed` (the config's fields are read there and
/// nowhere else). `io` is the part the feed's sources see.
pub(crate) struct FeedShared {
    pub id: FeedId,
    pub name: String,
    pub class_names: Option<Arc<nv_perception::ClassNames>>,
    pub source_redacted: String,
    pub clock: SharedClock,
    pub health: broadcast::Sender<HealthEvent>,
    pub counters: Arc<FeedCounters>,
    pub control: Arc<Waiter<Control>>,
    pub stages: Vec<(StageId, Arc<StageCounters>)>,
    pub source_queue: Mutex<Option<Arc<BoundedQueue<FrameEnvelope>>>>,
    pub sink_queue: Mutex<Option<Arc<BoundedQueue<SharedOutput>>>>,
    pub settings: FeedSettings,
    /// The sources' side: counters, clock, health stream, frame seq and media time.
    pub io: Arc<FeedIo>,
    pub created_at: MonotonicTs,
    pub session_started_at: AtomicU64,
    pub decode_status: Mutex<Option<DecodeStatus>>,
    pub stop_reason: Mutex<Option<StopReason>>,
    /// Set by whoever emits the feed's one `FeedStopped` event.
    pub stopped_emitted: AtomicBool,
    pub busy: Arc<StageBusy>,
    /// State and last error (one source of truth).
    pub status: Arc<FeedStatus>,
    /// Window of the feed's coalesced health events.
    pub health_throttle: Duration,
    /// Where the feed's coalesced events register to be flushed on their deadline.
    pub coalescers: Arc<crate::coalesce::Coalescers>,
    /// Counted from the feed's events (written by the worker).
    pub analytics: Arc<super::analytics::AnalyticsCounters>,
    /// Schedules the feed's task when the feed runs on the pool (control changes, sink
    /// drained or handed back); unset for a feed on its own thread.
    pub task_signal: std::sync::OnceLock<Arc<dyn crate::queue::QueueSignal>>,
    /// Runs the feed's task on a source thread blocked on the full frame queue (pool only).
    pub task_helper: std::sync::OnceLock<Arc<dyn crate::queue::QueueHelper>>,
}

impl std::fmt::Debug for FeedShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedShared")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl FeedShared {
    /// Asks the worker to stop and wakes it wherever it waits.
    pub fn request_stop(&self) {
        self.control.lock().stop_requested = true;
        self.control.notify_all();
        if let Some(q) = self.source_queue.lock().as_ref() {
            q.wake();
        }
        // The sink queue stays open: a worker holding a processed output under `Block`
        // hands it over first (bounded by `sink_shutdown_timeout`), then closes it.
        self.kick();
    }

    /// Schedules the feed's pool task, if it has one, to look at its state again.
    pub fn kick(&self) {
        if let Some(s) = self.task_signal.get() {
            s.signal();
        }
    }

    pub fn stop_requested(&self) -> bool {
        self.control.lock().stop_requested
    }

    /// Emits `FeedStopped` unless it was already emitted for this feed.
    pub fn emit_stopped(&self, reason: StopReason) {
        if self.stopped_emitted.swap(true, Ordering::SeqCst) {
            return;
        }
        *self.stop_reason.lock() = Some(reason.clone());
        self.status
            .set(nv_core::feed_state::FeedState::ended(reason.clone()));
        self.health.send(HealthEvent::FeedStopped {
            feed_id: self.id,
            reason,
        });
    }

    /// Marks the worker finished, then emits `FeedStopped` (unless the runtime already
    /// did, after a join timeout), so observers of the event see a stopped feed.
    pub fn finish(&self, reason: StopReason) {
        let first = !self.stopped_emitted.swap(true, Ordering::SeqCst);
        if first {
            *self.stop_reason.lock() = Some(reason.clone());
            self.status
                .set(nv_core::feed_state::FeedState::ended(reason.clone()));
        }
        self.control.lock().finished = true;
        self.control.notify_all();
        if first {
            self.health.send(HealthEvent::FeedStopped {
                feed_id: self.id,
                reason,
            });
        }
    }

    /// Reports the current stage call if it has run past the stall timeout (once per call).
    pub fn check_stall(&self, now: MonotonicTs) {
        let since = self.busy.since_nanos.load(Ordering::Acquire);
        if since == 0 || self.busy.reported_nanos.load(Ordering::Relaxed) == since {
            return;
        }
        let running = now.saturating_duration_since(MonotonicTs::from_nanos(since));
        if running < self.settings.stage_stall_timeout {
            return;
        }
        self.busy.reported_nanos.store(since, Ordering::Relaxed);
        let index = usize::try_from(self.busy.index.load(Ordering::Relaxed)).unwrap_or(usize::MAX);
        if let Some((stage_id, _)) = self.stages.get(index) {
            let running_for_ms = u64::try_from(running.as_millis()).unwrap_or(u64::MAX);
            tracing::warn!(feed_id = %self.id, stage_id = %stage_id, running_for_ms, "stage stalled");
            self.health.send(HealthEvent::StageStalled {
                feed_id: self.id,
                stage_id: *stage_id,
                running_for_ms,
            });
        }
    }

    pub fn is_finished(&self) -> bool {
        self.control.lock().finished
    }
}
