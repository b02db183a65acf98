//! A feed's state and last error: the one source of truth behind diagnostics, the API,
//! metrics and the lifecycle log lines.
//!
//! Transitions come from the worker (session start, first frame, restart delay, end) and
//! from the source's health events as they pass through the `FrameSink` (reconnecting,
//! stalled). Each transition is logged once here, so every front end reports the same
//! story; bursts of reconnect lines are coalesced with a count.

use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use nv_core::clock::SharedClock;
use nv_core::error::{cause_chain, FailureKind, MediaError};
use nv_core::feed_state::{FeedState, LastError};
use nv_core::health::HealthEvent;
use nv_core::id::FeedId;
use nv_core::time::{MonotonicTs, WallTs};
use parking_lot::Mutex;

/// Reconnect log lines: the first few of a run, then at most one per this interval.
const RECONNECT_LOG_INTERVAL: Duration = Duration::from_secs(60);
const RECONNECT_LOG_FIRST: u32 = 3;

const TAG_STREAMING: u8 = 2;

struct Inner {
    state: FeedState,
    last_error: Option<LastError>,
    decoder: Option<String>,
    /// Reconnect lines not logged since the last one that was.
    suppressed: u64,
    last_reconnect_log: Option<MonotonicTs>,
}

pub(crate) struct FeedStatus {
    feed_id: FeedId,
    name: String,
    source: String,
    clock: SharedClock,
    /// Index of the state's name in `FeedState::NAMES`, for the per-frame fast path.
    tag: AtomicU8,
    inner: Mutex<Inner>,
}

fn tag_of(state: &FeedState) -> u8 {
    let name = state.name();
    FeedState::NAMES
        .iter()
        .position(|n| *n == name)
        .and_then(|i| u8::try_from(i).ok())
        .unwrap_or(u8::MAX)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl FeedStatus {
    pub fn new(feed_id: FeedId, name: String, source: String, clock: SharedClock) -> Self {
        tracing::info!(feed_id = %feed_id, feed = %name, source = %source, "feed starting");
        Self {
            feed_id,
            name,
            source,
            clock,
            tag: AtomicU8::new(tag_of(&FeedState::Starting)),
            inner: Mutex::new(Inner {
                state: FeedState::Starting,
                last_error: None,
                decoder: None,
                suppressed: 0,
                last_reconnect_log: None,
            }),
        }
    }

    pub fn state(&self) -> FeedState {
        self.inner.lock().state.clone()
    }

    pub fn last_error(&self) -> Option<LastError> {
        self.inner.lock().last_error.clone()
    }

    /// A frame arrived: streaming, unless already (one relaxed load on the hot path).
    ///
    /// Not while reconnecting: a frame queued before the connection dropped says nothing
    /// about the new one; the source's `SourceConnected` moves the state back.
    pub fn on_frame(&self) {
        if self.tag.load(Ordering::Relaxed) != TAG_STREAMING {
            let mut inner = self.inner.lock();
            if inner.state.is_terminal()
                || matches!(
                    inner.state,
                    FeedState::Paused | FeedState::Reconnecting { .. }
                )
            {
                return;
            }
            self.apply(&mut inner, FeedState::Streaming);
        }
    }

    /// Moves to `new` unless the feed is paused or ended (only `resume` leaves a pause,
    /// nothing leaves an end).
    pub fn set(&self, new: FeedState) {
        let mut inner = self.inner.lock();
        if inner.state.is_terminal() {
            return;
        }
        if inner.state == FeedState::Paused && !new.is_terminal() {
            return;
        }
        self.apply(&mut inner, new);
    }

    pub fn pause(&self) {
        let mut inner = self.inner.lock();
        if !inner.state.is_terminal() {
            self.apply(&mut inner, FeedState::Paused);
        }
    }

    pub fn resume(&self) {
        let mut inner = self.inner.lock();
        if inner.state == FeedState::Paused {
            self.apply(&mut inner, FeedState::Connecting);
        }
    }

    /// Records an error in the feed's last error (kind, full cause chain, times, count).
    pub fn record_error(&self, kind: FailureKind, message: String) {
        let now = self.clock.wall_now();
        LastError::record(&mut self.inner.lock().last_error, kind, message, now);
    }

    pub fn record_media_error(&self, err: &MediaError) {
        self.record_error(err.failure_kind(), cause_chain(err));
    }

    /// Source events that move the state, as they are published.
    pub fn observe(&self, event: &HealthEvent) {
        match event {
            HealthEvent::SourceConnected { .. } => self.set(FeedState::Streaming),
            HealthEvent::SourceReconnecting {
                attempt, delay_ms, ..
            } => {
                let next_try_at = wall_after(self.clock.wall_now(), *delay_ms);
                self.set(FeedState::Reconnecting {
                    attempt: *attempt,
                    next_try_at,
                });
            }
            HealthEvent::SourceStalled { .. } => self.set(FeedState::Stalled),
            HealthEvent::DecodeDecision { detail, .. } => {
                self.inner.lock().decoder = Some(detail.clone());
            }
            _ => {}
        }
    }

    fn apply(&self, inner: &mut Inner, new: FeedState) {
        if inner.state == new {
            return;
        }
        let previous = std::mem::replace(&mut inner.state, new);
        self.tag.store(tag_of(&inner.state), Ordering::Relaxed);
        self.log(inner, &previous);
    }

    fn log(&self, inner: &mut Inner, previous: &FeedState) {
        let (id, feed) = (self.feed_id, self.name.as_str());
        let cause = inner.last_error.as_ref().map_or("", |e| e.message.as_str());
        match &inner.state {
            FeedState::Connecting if !matches!(previous, FeedState::Reconnecting { .. }) => {
                tracing::info!(feed_id = %id, feed, source = %self.source, "connecting");
            }
            FeedState::Streaming => {
                let decoder = inner.decoder.as_deref().unwrap_or("none");
                let suppressed = std::mem::take(&mut inner.suppressed);
                inner.last_reconnect_log = None;
                if suppressed > 0 {
                    tracing::info!(feed_id = %id, feed, decoder, reconnect_lines_suppressed = suppressed, "streaming");
                } else {
                    tracing::info!(feed_id = %id, feed, decoder, "streaming");
                }
            }
            FeedState::Reconnecting {
                attempt,
                next_try_at,
            } => {
                let now = self.clock.now();
                let due = *attempt <= RECONNECT_LOG_FIRST
                    || inner
                        .last_reconnect_log
                        .is_none_or(|t| now.saturating_duration_since(t) >= RECONNECT_LOG_INTERVAL);
                if due {
                    inner.last_reconnect_log = Some(now);
                    let next_try_in_ms = next_try_at
                        .checked_duration_since(self.clock.wall_now())
                        .map_or(0, millis);
                    let suppressed = std::mem::take(&mut inner.suppressed);
                    tracing::info!(feed_id = %id, feed, attempt, next_try_in_ms, cause, suppressed, "reconnecting");
                } else {
                    inner.suppressed += 1;
                }
            }
            FeedState::Stalled => {
                tracing::warn!(feed_id = %id, feed, "stalled: no frame within the stall timeout")
            }
            FeedState::Paused => tracing::info!(feed_id = %id, feed, "paused"),
            FeedState::Failed { kind, cause } => {
                tracing::error!(feed_id = %id, feed, kind = kind.as_str(), cause = %cause, "failed");
            }
            FeedState::Stopped { reason } => {
                tracing::info!(feed_id = %id, feed, reason = %reason, "stopped");
            }
            _ => {}
        }
    }
}

fn wall_after(now: WallTs, delay_ms: u64) -> WallTs {
    if !now.is_known() {
        return now;
    }
    WallTs::from_micros(
        now.as_micros()
            .saturating_add(delay_ms.saturating_mul(1_000)),
    )
}

impl nv_io::SourceObserver for FeedStatus {
    fn observe(&self, event: &HealthEvent) {
        FeedStatus::observe(self, event);
    }
    fn record_media_error(&self, err: &MediaError) {
        FeedStatus::record_media_error(self, err);
    }
}
