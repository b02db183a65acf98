//! The per-feed sink thread: delivers outputs to the user's `OutputSink` so slow I/O never
//! blocks perception.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use nv_core::clock::SharedClock;
use nv_core::error::RuntimeError;
use nv_core::health::{DropReason, HealthEvent};
use nv_core::id::FeedId;

use crate::broadcast;
use crate::coalesce::Coalesced;
use crate::detached::DetachedThreads;
use crate::output::{OutputSink, SharedOutput};
use crate::queue::{BoundedQueue, Overflow, Pop, Push};
use crate::sync::OneShot;
use nv_io::FeedCounters;

/// Where a detached sink thread hands its sink back if it ever finishes.
pub(crate) type LateSink = OneShot<Box<dyn OutputSink>>;

/// A running sink thread for one session.
pub(crate) struct SinkWorker {
    feed_id: FeedId,
    queue: Arc<BoundedQueue<SharedOutput>>,
    overflow: Overflow,
    returned: OneShot<Box<dyn OutputSink>>,
    thread: Option<JoinHandle<()>>,
    backpressure: Coalesced<()>,
    stall_report: Duration,
    health: broadcast::Sender<HealthEvent>,
    counters: Arc<FeedCounters>,
    clock: SharedClock,
}

#[derive(Clone)]
pub(crate) struct SinkParams {
    /// The feed's context: id, clock, health sender, counters, coalescing window.
    pub feed: Arc<crate::feed::shared::FeedShared>,
    pub capacity: usize,
    pub overflow: Overflow,
    /// A blocking sink that holds the feed this long is reported (`SinkStalled`).
    pub stall_report: Duration,
}

impl SinkWorker {
    pub fn spawn(sink: Box<dyn OutputSink>, p: SinkParams) -> Result<Self, RuntimeError> {
        let queue = BoundedQueue::new(p.capacity, p.feed.clock.clone());
        let returned = OneShot::new(p.feed.clock.clone());
        let name = format!("nv-sink-{}", p.feed.id.as_u64());
        let thread = {
            let (queue, returned, health, counters, clock) = (
                Arc::clone(&queue),
                returned.clone(),
                p.feed.health.clone(),
                Arc::clone(&p.feed.counters),
                p.feed.clock.clone(),
            );
            let feed_id = p.feed.id;
            std::thread::Builder::new()
                .name(name.clone())
                .stack_size(256 * 1024)
                .spawn(move || run(feed_id, sink, &queue, &returned, &health, &counters, &clock))
                .map_err(|e| RuntimeError::ThreadSpawnFailed {
                    name,
                    source: Arc::new(e),
                })?
        };
        Ok(Self {
            feed_id: p.feed.id,
            queue,
            overflow: p.overflow,
            returned,
            thread: Some(thread),
            backpressure: {
                let feed_id = p.feed.id;
                Coalesced::new(
                    &p.feed.coalescers,
                    p.feed.health_throttle,
                    p.feed.health.clone(),
                    p.feed.clock.clone(),
                    move |outputs_dropped, ()| HealthEvent::SinkBackpressure {
                        feed_id,
                        outputs_dropped,
                    },
                )
            },
            stall_report: p.stall_report,
            health: p.feed.health.clone(),
            counters: Arc::clone(&p.feed.counters),
            clock: p.feed.clock.clone(),
        })
    }

    pub fn queue(&self) -> &Arc<BoundedQueue<SharedOutput>> {
        &self.queue
    }

    /// Hands an output to the sink thread; under `DropNewest` a full queue drops it (for
    /// the sink only) and reports it, throttled.
    pub fn send(&mut self, output: SharedOutput) {
        let mut output = output;
        let mut stalls: u32 = 0;
        let result = loop {
            // A blocking (lossless) sink that makes the feed wait is reported every
            // `stall_report` while it lasts; stopping the feed closes the queue and ends it.
            let deadline =
                (self.overflow == Overflow::Block).then(|| self.clock.now() + self.stall_report);
            match self.queue.push_until(output, self.overflow, deadline) {
                Push::TimedOut(back) => {
                    stalls = stalls.saturating_add(1);
                    let blocked_for = self.stall_report * stalls;
                    self.health.send(HealthEvent::SinkStalled {
                        feed_id: self.feed_id,
                        blocked_for_ms: u64::try_from(blocked_for.as_millis()).unwrap_or(u64::MAX),
                    });
                    output = back;
                }
                other => break other,
            }
        };
        match result {
            Push::Accepted => {
                self.counters
                    .outputs_to_sink
                    .fetch_add(1, Ordering::Relaxed);
            }
            Push::Closed(_) => self.counters.add_drop(DropReason::FeedStopping, 1),
            Push::Evicted(_) | Push::Rejected(_) | Push::TimedOut(_) => {
                if matches!(result, Push::Evicted(_)) {
                    // Under `DropOldest` the new output went in and a queued one was lost.
                    self.counters
                        .outputs_to_sink
                        .fetch_add(1, Ordering::Relaxed);
                }
                self.counters.add_drop(DropReason::SinkQueueFull, 1);
                self.backpressure.record(1, |()| {});
            }
        }
    }

    /// Ends the session's sink thread: queued outputs are still delivered, bounded by
    /// `timeout`. Returns the sink for reuse, or `None` if the thread is wedged (it is then
    /// detached and reported with `SinkTimeout`; if it finishes later, the sink lands in
    /// `late_return` for the next session).
    pub fn shutdown(
        mut self,
        timeout: Duration,
        detached: &DetachedThreads,
    ) -> (Option<Box<dyn OutputSink>>, LateSink) {
        self.backpressure.flush();
        self.queue.close();
        let deadline = self.clock.now() + timeout;
        let sink = self.returned.take_until(deadline);
        let thread = self.thread.take();
        match (&sink, thread) {
            (Some(_), Some(t)) => {
                if t.join().is_err() {
                    tracing::error!(feed_id = %self.feed_id, "sink thread panicked after returning its sink");
                }
            }
            (None, Some(t)) => {
                tracing::warn!(feed_id = %self.feed_id, timeout_ms = timeout.as_millis(), "sink did not drain in time; detaching its thread");
                self.health.send(HealthEvent::SinkTimeout {
                    feed_id: self.feed_id,
                });
                detached.add(format!("nv-sink-{}", self.feed_id.as_u64()), t);
            }
            (_, None) => {}
        }
        (sink, self.returned.clone())
    }
}

fn run(
    feed_id: FeedId,
    mut sink: Box<dyn OutputSink>,
    queue: &BoundedQueue<SharedOutput>,
    returned: &OneShot<Box<dyn OutputSink>>,
    health: &broadcast::Sender<HealthEvent>,
    counters: &FeedCounters,
    clock: &SharedClock,
) {
    loop {
        match queue.pop(None) {
            Pop::Item(output, _) => {
                counters.receive_to_sink.record(
                    clock
                        .now()
                        .saturating_duration_since(output.provenance.received_at),
                );
                let sink_ref = &mut sink;
                if std::panic::catch_unwind(AssertUnwindSafe(move || sink_ref.emit(output)))
                    .is_err()
                {
                    tracing::error!(%feed_id, "OutputSink::emit panicked; output dropped");
                    health.send(HealthEvent::SinkPanic { feed_id });
                }
            }
            Pop::Closed => break,
            Pop::Woken | Pop::TimedOut => {}
        }
    }
    let sink_ref = &mut sink;
    if std::panic::catch_unwind(AssertUnwindSafe(move || sink_ref.flush())).is_err() {
        health.send(HealthEvent::SinkPanic { feed_id });
    }
    returned.put(sink);
}
