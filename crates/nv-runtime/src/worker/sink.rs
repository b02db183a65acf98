//! The per-feed sink thread: delivers outputs to the user's `OutputSink` so slow I/O never
//! blocks perception.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use nv_core::error::RuntimeError;
use nv_core::health::{DropReason, HealthEvent};

use crate::coalesce::Coalesced;
use crate::detached::DetachedThreads;
use crate::feed::shared::FeedShared;
use crate::output::{OutputSink, SharedOutput};
use crate::queue::{BoundedQueue, Overflow, Pop, Push};
use crate::sched::{Poll, Pool, Task, TaskCell, TaskCx, QUANTUM};
use crate::sync::OneShot;

/// Where a detached sink thread hands its sink back if it ever finishes.
pub(crate) type LateSink = OneShot<Box<dyn OutputSink>>;

/// Where a session's sink delivery runs.
enum Runner {
    Thread(JoinHandle<()>),
    /// A task on the pool; kept here so the task lives as long as the session needs it.
    Task(Arc<TaskCell>),
}

/// What became of an output handed over without waiting.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Sent {
    /// Queued (or delivered inline), or dropped by the sink overflow policy (counted).
    Taken,
    /// The sink queue is closed: the feed is stopping (counted as `FeedStopping`).
    Closed,
}

/// A running sink thread (or pool task) for one session.
pub(crate) struct SinkWorker {
    feed: Arc<FeedShared>,
    queue: Arc<BoundedQueue<SharedOutput>>,
    returned: OneShot<Box<dyn OutputSink>>,
    thread: Option<Runner>,
    backpressure: Coalesced<()>,
    /// `SinkStalled` reports so far for the output the feed is holding (pool mode).
    stalls: u32,
    next_stall_report: Option<nv_core::time::MonotonicTs>,
    /// The feed stopped while the sink was not taking outputs: the session end does not
    /// wait for it a second time.
    stuck_at_stop: bool,
}

impl SinkWorker {
    pub fn spawn(sink: Box<dyn OutputSink>, feed: &Arc<FeedShared>) -> Result<Self, RuntimeError> {
        let queue = BoundedQueue::new(feed.settings.sink_capacity, feed.clock.clone());
        let returned = OneShot::new(feed.clock.clone());
        let name = format!("nv-sink-{}", feed.id.as_u64());
        let thread = {
            let (queue, returned, feed) = (Arc::clone(&queue), returned.clone(), Arc::clone(feed));
            std::thread::Builder::new()
                .name(name.clone())
                .stack_size(256 * 1024)
                .spawn(move || run(&feed, sink, &queue, &returned))
                .map_err(|e| RuntimeError::ThreadSpawnFailed {
                    name,
                    source: Arc::new(e),
                })?
        };
        Ok(Self::new(feed, queue, returned, Runner::Thread(thread)))
    }

    /// Delivery as a task on `pool`: scheduled when outputs land in its empty queue; the
    /// feed task is scheduled when the sink queue drains (lossless back-pressure without
    /// holding a pool thread) and when the sink is handed back at the session end.
    pub fn spawn_task(sink: Box<dyn OutputSink>, feed: &Arc<FeedShared>, pool: &Pool) -> Self {
        let queue = BoundedQueue::new(feed.settings.sink_capacity, feed.clock.clone());
        let returned = OneShot::new(feed.clock.clone());
        let task = pool.task(Box::new(SinkTask {
            feed: Arc::clone(feed),
            sink: Some(sink),
            queue: Arc::clone(&queue),
            returned: returned.clone(),
        }));
        queue.set_consumer_signal(task.signal());
        if let Some(signal) = feed.task_signal.get() {
            queue.set_producer_signal(Arc::clone(signal));
        }
        Self::new(feed, queue, returned, Runner::Task(task))
    }

    fn new(
        feed: &Arc<FeedShared>,
        queue: Arc<BoundedQueue<SharedOutput>>,
        returned: OneShot<Box<dyn OutputSink>>,
        runner: Runner,
    ) -> Self {
        let backpressure = {
            let feed_id = feed.id;
            Coalesced::new(
                &feed.coalescers,
                feed.health_throttle,
                feed.health.clone(),
                feed.clock.clone(),
                move |outputs_dropped, ()| HealthEvent::SinkBackpressure {
                    feed_id,
                    outputs_dropped,
                },
            )
        };
        Self {
            feed: Arc::clone(feed),
            queue,
            returned,
            thread: Some(runner),
            backpressure,
            stalls: 0,
            next_stall_report: None,
            stuck_at_stop: false,
        }
    }

    pub fn queue(&self) -> &Arc<BoundedQueue<SharedOutput>> {
        &self.queue
    }

    /// Hands an output to the sink thread; under `DropNewest` a full queue drops it (for
    /// the sink only) and reports it, throttled.
    pub fn send(&mut self, output: SharedOutput) {
        let feed = &*self.feed;
        let overflow = feed.settings.sink_overflow;
        let stall_report = feed.settings.sink_shutdown_timeout;
        let mut output = output;
        let mut stalls: u32 = 0;
        let result = loop {
            // A blocking (lossless) sink that makes the feed wait is reported every
            // `stall_report` while it lasts. A stop does not cut the wait short: the output
            // was processed and `Block` promises it to the sink, so a stop waits up to
            // `sink_shutdown_timeout` for room before counting it lost.
            let deadline = (overflow == Overflow::Block).then(|| feed.clock.now() + stall_report);
            match self.queue.push_until(output, overflow, deadline) {
                Push::TimedOut(back) if feed.stop_requested() => {
                    self.stuck_at_stop = true;
                    break Push::Closed(back);
                }
                Push::TimedOut(back) => {
                    stalls = stalls.saturating_add(1);
                    let blocked_for = stall_report * stalls;
                    feed.health.send(HealthEvent::SinkStalled {
                        feed_id: feed.id,
                        blocked_for_ms: u64::try_from(blocked_for.as_millis()).unwrap_or(u64::MAX),
                    });
                    output = back;
                }
                other => break other,
            }
        };
        self.account(result);
    }

    /// Pool mode: like [`send`](Self::send) but never waits. Under `Block` with a full
    /// queue the output comes back (the feed task holds it and is scheduled again when the
    /// queue has drained); a hold that lasts is reported as `SinkStalled` every
    /// `sink_shutdown_timeout`, on the timer the caller arms at the returned deadline.
    pub fn try_send(
        &mut self,
        output: SharedOutput,
    ) -> Result<Sent, (SharedOutput, nv_core::time::MonotonicTs)> {
        let feed = &*self.feed;
        let overflow = feed.settings.sink_overflow;
        let result = if overflow == Overflow::Block {
            self.queue.try_push_or_arm(output)
        } else {
            self.queue.push(output, overflow)
        };
        match result {
            Push::TimedOut(back) if overflow == Overflow::Block => {
                let now = feed.clock.now();
                let every = feed.settings.sink_shutdown_timeout;
                let due = *self.next_stall_report.get_or_insert(now + every);
                if now >= due {
                    self.stalls = self.stalls.saturating_add(1);
                    let blocked_for = every * self.stalls;
                    feed.health.send(HealthEvent::SinkStalled {
                        feed_id: feed.id,
                        blocked_for_ms: u64::try_from(blocked_for.as_millis()).unwrap_or(u64::MAX),
                    });
                    self.next_stall_report = Some(due + every);
                }
                let next = self.next_stall_report.unwrap_or(due);
                Err((back, next))
            }
            other => {
                self.stalls = 0;
                self.next_stall_report = None;
                let closed = matches!(other, Push::Closed(_));
                self.account(other);
                Ok(if closed { Sent::Closed } else { Sent::Taken })
            }
        }
    }

    fn account(&mut self, result: Push<SharedOutput>) {
        let counters = &self.feed.counters;
        match result {
            Push::Accepted => {
                counters.outputs_to_sink.fetch_add(1, Ordering::Relaxed);
            }
            Push::Closed(_) => counters.add_drop(DropReason::FeedStopping, 1),
            Push::Evicted(_) | Push::Rejected(_) | Push::TimedOut(_) => {
                if matches!(result, Push::Evicted(_)) {
                    // Under `DropOldest` the new output went in and a queued one was lost.
                    counters.outputs_to_sink.fetch_add(1, Ordering::Relaxed);
                }
                counters.add_drop(DropReason::SinkQueueFull, 1);
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
        self.begin_shutdown();
        let deadline = self.feed.clock.now() + self.drain_timeout(timeout);
        let sink = self.returned.take_until(deadline);
        self.end_shutdown(sink, timeout, detached)
    }

    /// How long the session end waits for the sink: `timeout`, or nothing when the feed
    /// already waited that long at its stop for a sink that took nothing.
    pub fn drain_timeout(&self, timeout: Duration) -> Duration {
        if self.stuck_at_stop {
            Duration::ZERO
        } else {
            timeout
        }
    }

    /// Pool mode: the feed task gave up on its held output at the stop.
    pub fn mark_stuck_at_stop(&mut self) {
        self.stuck_at_stop = true;
    }

    /// Closes the queue: the delivery drains what is queued, then hands the sink back.
    pub fn begin_shutdown(&mut self) {
        self.backpressure.flush();
        self.queue.close();
    }

    /// The sink, if the delivery has handed it back (pool mode polls this).
    pub fn returned_sink(&self) -> Option<Box<dyn OutputSink>> {
        self.returned.take()
    }

    /// Completes a shutdown begun with [`begin_shutdown`](Self::begin_shutdown): `sink`
    /// is what came back in time; without it the delivery is wedged, detached and
    /// reported.
    pub fn end_shutdown(
        mut self,
        sink: Option<Box<dyn OutputSink>>,
        timeout: Duration,
        detached: &DetachedThreads,
    ) -> (Option<Box<dyn OutputSink>>, LateSink) {
        let name = format!("nv-sink-{}", self.feed.id.as_u64());
        match (&sink, self.thread.take()) {
            (Some(_), Some(Runner::Thread(t))) => {
                if t.join().is_err() {
                    tracing::error!(feed_id = %self.feed.id, "sink thread panicked after returning its sink");
                }
            }
            (Some(_), Some(Runner::Task(_))) | (_, None) => {}
            (None, Some(runner)) => {
                tracing::warn!(feed_id = %self.feed.id, timeout_ms = timeout.as_millis(), "sink did not drain in time; detaching it");
                self.feed.health.send(HealthEvent::SinkTimeout {
                    feed_id: self.feed.id,
                });
                match runner {
                    Runner::Thread(t) => detached.add(name, t),
                    Runner::Task(task) => detached.add_task(name, task),
                }
            }
        }
        (sink, self.returned.clone())
    }
}

/// How a session's outputs reach the user's sink.
pub(crate) enum Delivery {
    /// On the feed's sink thread, through the sink queue.
    Thread(SinkWorker),
    /// On the feed worker, right after the stages: the sink declared that `emit` never
    /// blocks (`OutputSink::may_block` is false), so a hand-off would only add cost.
    Inline(Box<dyn OutputSink>),
}

impl Delivery {
    pub fn start(sink: Box<dyn OutputSink>, feed: &Arc<FeedShared>) -> Result<Self, RuntimeError> {
        if sink.may_block() {
            SinkWorker::spawn(sink, feed).map(Self::Thread)
        } else {
            Ok(Self::Inline(sink))
        }
    }

    /// Pool mode: a sink that may block is delivered to by a pool task.
    pub fn start_on_pool(
        sink: Box<dyn OutputSink>,
        feed: &Arc<FeedShared>,
        pool: Option<&Pool>,
    ) -> Result<Self, RuntimeError> {
        match pool {
            Some(pool) if sink.may_block() => {
                Ok(Self::Thread(SinkWorker::spawn_task(sink, feed, pool)))
            }
            _ => Self::start(sink, feed),
        }
    }

    /// Pool mode: see [`SinkWorker::try_send`]; an inline sink always takes the output.
    pub fn try_send(
        &mut self,
        feed: &FeedShared,
        output: SharedOutput,
    ) -> Result<Sent, (SharedOutput, nv_core::time::MonotonicTs)> {
        match self {
            Self::Thread(w) => w.try_send(output),
            Self::Inline(_) => {
                self.send(feed, output);
                Ok(Sent::Taken)
            }
        }
    }

    /// The sink queue, if outputs go through one.
    pub fn queue(&self) -> Option<&Arc<BoundedQueue<SharedOutput>>> {
        match self {
            Self::Thread(w) => Some(w.queue()),
            Self::Inline(_) => None,
        }
    }

    pub fn send(&mut self, feed: &FeedShared, output: SharedOutput) {
        match self {
            Self::Thread(w) => w.send(output),
            Self::Inline(sink) => {
                feed.counters
                    .outputs_to_sink
                    .fetch_add(1, Ordering::Relaxed);
                deliver(feed, sink, output);
            }
        }
    }

    /// Ends the session's delivery; see [`SinkWorker::shutdown`]. An inline sink is
    /// flushed and handed back at once.
    pub fn shutdown(
        self,
        feed: &FeedShared,
        timeout: Duration,
        detached: &DetachedThreads,
    ) -> (Option<Box<dyn OutputSink>>, Option<LateSink>) {
        match self {
            Self::Thread(w) => {
                let (sink, late) = w.shutdown(timeout, detached);
                (sink, Some(late))
            }
            Self::Inline(mut sink) => {
                flush(feed, &mut sink);
                (Some(sink), None)
            }
        }
    }
}

/// Hands one output to the sink; a panic loses that output only and is reported.
fn deliver(feed: &FeedShared, sink: &mut Box<dyn OutputSink>, output: SharedOutput) {
    feed.counters.receive_to_sink.record(
        feed.clock
            .now()
            .saturating_duration_since(output.provenance.received_at),
    );
    if std::panic::catch_unwind(AssertUnwindSafe(move || sink.emit(output))).is_err() {
        let feed_id = feed.id;
        tracing::error!(%feed_id, "OutputSink::emit panicked; output dropped");
        feed.health.send(HealthEvent::SinkPanic { feed_id });
    }
}

fn flush(feed: &FeedShared, sink: &mut Box<dyn OutputSink>) {
    if std::panic::catch_unwind(AssertUnwindSafe(move || sink.flush())).is_err() {
        feed.health
            .send(HealthEvent::SinkPanic { feed_id: feed.id });
    }
}

fn run(
    feed: &FeedShared,
    mut sink: Box<dyn OutputSink>,
    queue: &BoundedQueue<SharedOutput>,
    returned: &OneShot<Box<dyn OutputSink>>,
) {
    loop {
        match queue.pop(None) {
            Pop::Item(output, _) => deliver(feed, &mut sink, output),
            Pop::Closed => break,
            Pop::Woken | Pop::TimedOut => {}
        }
    }
    flush(feed, &mut sink);
    returned.put(sink);
}

/// Sink delivery as a pool task: up to a quantum of outputs per turn, in order.
struct SinkTask {
    feed: Arc<FeedShared>,
    sink: Option<Box<dyn OutputSink>>,
    queue: Arc<BoundedQueue<SharedOutput>>,
    returned: OneShot<Box<dyn OutputSink>>,
}

impl Task for SinkTask {
    fn run(&mut self, _cx: &TaskCx<'_>) -> Poll {
        let Some(sink) = self.sink.as_mut() else {
            return Poll::Done;
        };
        for _ in 0..QUANTUM {
            match self.queue.pop(Some(nv_core::time::MonotonicTs::ZERO)) {
                Pop::Item(output, _) => deliver(&self.feed, sink, output),
                Pop::Woken => {}
                Pop::TimedOut => return Poll::Idle,
                Pop::Closed => {
                    flush(&self.feed, sink);
                    if let Some(sink) = self.sink.take() {
                        self.returned.put(sink);
                    }
                    // The feed task polls for the returned sink.
                    self.feed.kick();
                    return Poll::Done;
                }
            }
        }
        Poll::Yield
    }

    fn may_block(&self) -> bool {
        true
    }

    fn on_panic(&mut self) {
        self.feed.kick();
    }
}
