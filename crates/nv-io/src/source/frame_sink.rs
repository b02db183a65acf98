//! The producer-side handle a source pushes frames through.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use nv_core::clock::SharedClock;
use nv_core::error::MediaError;
use nv_core::health::{DropReason, HealthEvent};
use nv_core::id::FeedId;
use nv_core::time::MonotonicTs;
use nv_frame::FrameEnvelope;
use parking_lot::Mutex;

use crate::broadcast;
use crate::coalesce::{Coalesced, Coalescers};
use crate::counters::FeedCounters;
use crate::queue::{BoundedQueue, Overflow, Push};

/// How a session's source ended.
#[derive(Clone, Debug)]
pub enum SourceEnd {
    EndOfStream,
    Failed(MediaError),
}

/// Result of [`FrameSink::push`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushOutcome {
    Accepted,
    /// Accepted; the oldest queued frame was evicted.
    AcceptedEvictedOldest,
    /// Rejected (queue full under DropNewest).
    Rejected,
    /// The session is over; stop producing.
    Closed,
    /// Skipped by the feed's frame-rate cap (sampling, not a drop).
    SampledOut,
}

/// A feed's side of its sources, built once per feed and shared by every session's
/// [`FrameSink`]: the ids, policy, counters, clock and health stream a producer needs, and
/// the state that outlives sessions (frame seq and media time continue across reconnects
/// and restarts).
pub struct FeedIo {
    pub feed_id: FeedId,
    /// What the feed's frame queue does when full.
    pub overflow: Overflow,
    pub counters: Arc<FeedCounters>,
    pub health: broadcast::Sender<HealthEvent>,
    pub clock: SharedClock,
    /// Next frame seq; monotonic for the feed's lifetime.
    pub next_seq: AtomicU64,
    /// Highest media timestamp handed out (nanos).
    pub last_ts: AtomicU64,
    /// Window of the coalesced `BackpressureDrop` events.
    pub throttle_window: Duration,
    /// Where the coalesced `BackpressureDrop` events register to leave on their deadline.
    pub coalescers: Arc<Coalescers>,
    /// Frame-rate cap (`None` = every frame).
    pub max_fps: Option<f64>,
    /// The feed's state keeper: hears source events and recovered failures.
    pub observer: Arc<dyn SourceObserver>,
}

impl std::fmt::Debug for FeedIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedIo")
            .field("feed_id", &self.feed_id)
            .field("overflow", &self.overflow)
            .field("max_fps", &self.max_fps)
            .finish_non_exhaustive()
    }
}

/// What a feed keeps of its source besides frames: the engine's state and last-error
/// record implements it, so a source's reconnects, stalls and failures move the feed's
/// state without the source knowing about the engine.
pub trait SourceObserver: Send + Sync {
    /// A health event the source publishes, seen before it goes on the runtime stream.
    fn observe(&self, event: &HealthEvent);
    /// A failure: recovered from by the source (it retries) or ending the session.
    fn record_media_error(&self, err: &MediaError);
}

struct SinkShared {
    io: Arc<FeedIo>,
    queue: Arc<BoundedQueue<FrameEnvelope>>,
    end: Mutex<Option<SourceEnd>>,
    /// Coalesced `BackpressureDrop`; carries the latest drop reason.
    drops: Coalesced<Option<DropReason>>,
    /// Frame-rate cap as a minimum media-time spacing (0 = no cap).
    min_interval_nanos: u64,
    /// Media time of the last frame let through the cap (`u64::MAX` = none yet).
    last_accepted_ts: AtomicU64,
}

/// Cloneable handle for a source's producer threads.
#[derive(Clone)]
pub struct FrameSink {
    inner: Arc<SinkShared>,
}

impl std::fmt::Debug for FrameSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameSink")
            .field("feed_id", &self.inner.io.feed_id)
            .finish_non_exhaustive()
    }
}

impl FrameSink {
    /// Opens a session's sink over the session's frame queue (the engine does this once
    /// per session).
    pub fn new(io: Arc<FeedIo>, queue: Arc<BoundedQueue<FrameEnvelope>>) -> Self {
        let min_interval_nanos = io.max_fps.map_or(0, |fps| (0.95e9 / fps) as u64);
        let drops = {
            let feed_id = io.feed_id;
            let usual = match io.overflow {
                Overflow::DropNewest => DropReason::QueueFullRejectedNewest,
                _ => DropReason::QueueFullEvictedOldest,
            };
            Coalesced::new(
                &io.coalescers,
                io.throttle_window,
                io.health.clone(),
                io.clock.clone(),
                move |frames_dropped, reason: Option<DropReason>| HealthEvent::BackpressureDrop {
                    feed_id,
                    reason: reason.unwrap_or(usual),
                    frames_dropped,
                },
            )
        };
        Self {
            inner: Arc::new(SinkShared {
                io,
                queue,
                end: Mutex::new(None),
                drops,
                min_interval_nanos,
                last_accepted_ts: AtomicU64::new(u64::MAX),
            }),
        }
    }

    /// How the feed's queue treats a full queue (a producer under `Block` may be held).
    pub fn overflow(&self) -> Overflow {
        self.inner.io.overflow
    }

    /// Frames this feed has received over its whole life (all sessions).
    pub fn frames_received(&self) -> u64 {
        self.inner
            .io
            .counters
            .frames_received
            .load(Ordering::Relaxed)
    }

    /// How the session ended, once a producer called [`end`](Self::end).
    pub fn end_reason(&self) -> Option<SourceEnd> {
        self.inner.end.lock().clone()
    }

    pub fn feed_id(&self) -> FeedId {
        self.inner.io.feed_id
    }

    pub fn clock(&self) -> &SharedClock {
        &self.inner.io.clock
    }

    /// Next frame sequence number for this feed (monotonic for the feed's lifetime).
    pub fn next_seq(&self) -> u64 {
        self.inner.io.next_seq.fetch_add(1, Ordering::Relaxed)
    }

    /// The highest media timestamp handed out so far on this feed (across sessions), so a
    /// reconnected source can continue time instead of restarting it.
    pub fn last_ts(&self) -> MonotonicTs {
        MonotonicTs::from_nanos(self.inner.io.last_ts.load(Ordering::Relaxed))
    }

    /// Delivers a frame. Counts it, applies the feed's backpressure policy (blocking the
    /// caller under `Block`), and reports drops. While blocked, the caller's thread may
    /// run the feed's stages (a feed on the pool scheduler: see the queue's
    /// [`QueueHelper`](crate::queue::QueueHelper)); never the source's own `tick`,
    /// `pause` or `stop`.
    pub fn push(&self, frame: FrameEnvelope) -> PushOutcome {
        let inner = &self.inner;
        inner
            .io
            .counters
            .frames_received
            .fetch_add(1, Ordering::Relaxed);
        if inner.min_interval_nanos > 0 {
            let ts = frame.ts().as_nanos();
            let last = inner.last_accepted_ts.load(Ordering::Relaxed);
            // A timestamp going backwards (stream reset) restarts the cadence.
            if last != u64::MAX && ts >= last && ts - last < inner.min_interval_nanos {
                self.record_sampled_out();
                return PushOutcome::SampledOut;
            }
            inner.last_accepted_ts.store(ts, Ordering::Relaxed);
        }
        inner
            .io
            .last_ts
            .fetch_max(frame.ts().as_nanos(), Ordering::Relaxed);
        match inner.queue.push(frame, inner.io.overflow) {
            Push::Accepted => PushOutcome::Accepted,
            Push::Evicted(_old) => {
                self.record_drop(DropReason::QueueFullEvictedOldest);
                PushOutcome::AcceptedEvictedOldest
            }
            Push::Rejected(_new) | Push::TimedOut(_new) => {
                self.record_drop(DropReason::QueueFullRejectedNewest);
                PushOutcome::Rejected
            }
            Push::Closed(_frame) => {
                inner.io.counters.add_drop(DropReason::FeedStopping, 1);
                PushOutcome::Closed
            }
        }
    }

    fn record_drop(&self, reason: DropReason) {
        let inner = &self.inner;
        inner.io.counters.add_drop(reason, 1);
        inner.drops.record(1, |r| *r = Some(reason));
    }

    /// Emits the backpressure drops not yet reported (session end).
    pub fn flush_drop_events(&self) {
        self.inner.drops.flush();
    }

    /// Counts a frame skipped by a frame-rate cap (sampling, not a drop).
    pub fn record_sampled_out(&self) {
        self.inner
            .io
            .counters
            .frames_sampled_out
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Publishes a health event on the runtime's stream (source events also move the
    /// feed's state: reconnecting, stalled, connected).
    pub fn health(&self, event: HealthEvent) {
        self.inner.io.observer.observe(&event);
        self.inner.io.health.send(event);
    }

    /// Records a failure the source recovers from by itself (it retries) in the feed's
    /// last error. A failure that ends the session is recorded by [`fail`](Self::fail).
    pub fn record_error(&self, err: &MediaError) {
        self.inner.io.observer.record_media_error(err);
    }

    /// Ends the session: frames already queued are still processed first.
    pub fn end(&self, end: SourceEnd) {
        let mut slot = self.inner.end.lock();
        if slot.is_none() {
            *slot = Some(end);
        }
        drop(slot);
        self.inner.queue.close();
    }

    pub fn end_of_stream(&self) {
        self.end(SourceEnd::EndOfStream);
    }

    /// Ends the session with a failure, recorded in the feed's last error (a
    /// [`MediaError::GaveUp`] counts as the occurrence of its cause).
    pub fn fail(&self, err: MediaError) {
        if self.inner.end.lock().is_none() {
            self.inner.io.observer.record_media_error(&err);
        }
        self.end(SourceEnd::Failed(err));
    }

    /// Asks the feed worker to call `tick` soon (a bus message arrived, say).
    pub fn wake(&self) {
        self.inner.queue.wake();
    }

    /// True once the session is over; producers should stop.
    pub fn is_closed(&self) -> bool {
        self.inner.queue.is_closed()
    }
}
