//! The coordinator thread of one batch processor.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use nv_core::clock::SharedClock;
use nv_core::error::{RuntimeError, StageError};
use nv_core::health::HealthEvent;
use nv_core::id::{FeedId, StageId};
use nv_core::time::MonotonicTs;
use nv_frame::FrameEnvelope;
use nv_perception::{BatchEntry, BatchProcessor, StageOutput};
use nv_view::ViewSnapshot;

use super::queue::{FairQueue, Pending};
use super::{load_max, BatchConfig, BatchCounters, BatchMetrics};
use crate::broadcast;
use crate::coalesce::{Coalesced, Coalescers};
use crate::sync::{OneShot, Waiter};

/// Why a submitted item produced no output.
#[derive(Clone, Debug)]
pub(crate) enum BatchFailure {
    /// The processor failed this batch (reported by the coordinator as `BatchError`).
    Processor,
    /// The coordinator stopped before processing the item.
    Stopped,
}

/// Why a submission was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SubmitError {
    QueueFull,
    InFlightExceeded,
    Stopped,
}

pub(crate) type Reply = OneShot<Result<StageOutput, BatchFailure>>;

#[derive(Debug)]
pub(crate) struct Job {
    frame: FrameEnvelope,
    view: ViewSnapshot,
    reply: Reply,
}

/// Why a coordinator stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StopKind {
    RuntimeShutdown,
    Removed,
}

#[derive(Debug)]
struct State {
    queue: FairQueue<Job>,
    in_flight: HashMap<FeedId, u32>,
    stop: Option<StopKind>,
    finished: bool,
}

pub(crate) struct Coordinator {
    pub id: StageId,
    pub config: BatchConfig,
    pub capabilities: Option<nv_perception::StageCapabilities>,
    pub counters: BatchCounters,
    state: Arc<Waiter<State>>,
    health: broadcast::Sender<HealthEvent>,
    clock: SharedClock,
    coalescers: Arc<Coalescers>,
}

impl std::fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coordinator")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Coordinator {
    /// Queues a frame without blocking. `budget` (the feed's latency budget) orders work
    /// under [`BatchFairness::Deadline`](super::BatchFairness::Deadline).
    pub fn submit(
        &self,
        feed: FeedId,
        frame: FrameEnvelope,
        view: ViewSnapshot,
        budget: Duration,
    ) -> Result<Reply, SubmitError> {
        let now = self.clock.now();
        let mut st = self.state.lock();
        if st.stop.is_some() {
            return Err(SubmitError::Stopped);
        }
        let in_flight = st.in_flight.get(&feed).copied().unwrap_or(0);
        if in_flight >= self.config.max_in_flight_per_feed {
            self.counters
                .items_in_flight_rejected
                .fetch_add(1, Ordering::Relaxed);
            return Err(SubmitError::InFlightExceeded);
        }
        let reply = Reply::new(self.clock.clone());
        let job = Job {
            frame,
            view,
            reply: reply.clone(),
        };
        if st.queue.push(feed, job, now, now + budget).is_err() {
            self.counters.items_rejected.fetch_add(1, Ordering::Relaxed);
            return Err(SubmitError::QueueFull);
        }
        *st.in_flight.entry(feed).or_insert(0) += 1;
        self.counters
            .items_submitted
            .fetch_add(1, Ordering::Relaxed);
        drop(st);
        self.state.notify_all();
        Ok(reply)
    }

    pub fn stop(&self, kind: StopKind) {
        let mut st = self.state.lock();
        st.stop.get_or_insert(kind);
        drop(st);
        self.state.notify_all();
    }

    pub fn stop_kind(&self) -> Option<StopKind> {
        self.state.lock().stop
    }

    pub fn is_stopped(&self) -> bool {
        self.state.lock().stop.is_some()
    }

    /// Waits until the coordinator thread finished (drained and ran `on_stop`).
    pub fn wait_finished(&self, deadline: MonotonicTs) -> bool {
        let mut st = self.state.lock();
        self.state
            .wait_until(&mut st, Some(deadline), |s| s.finished);
        st.finished
    }

    pub fn metrics(&self) -> BatchMetrics {
        let c = &self.counters;
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        BatchMetrics {
            processor_id: self.id,
            configured_max_batch_size: self.config.max_batch_size,
            batches_dispatched: load(&c.batches_dispatched),
            items_submitted: load(&c.items_submitted),
            items_processed: load(&c.items_processed),
            items_failed: load(&c.items_failed),
            items_rejected: load(&c.items_rejected),
            items_in_flight_rejected: load(&c.items_in_flight_rejected),
            items_timed_out: load(&c.items_timed_out),
            consecutive_errors: load(&c.consecutive_errors),
            max_batch_size_seen: load(&c.max_batch_size_seen),
            pending_items: self.state.lock().queue.len(),
            processing: c.processing.snapshot(),
            formation: c.formation.snapshot(),
        }
    }

    /// Blocks until a batch is due (size or latency) or the coordinator is stopping.
    fn next_batch(&self) -> Option<Vec<Pending<Job>>> {
        let max = self.config.max_batch_size;
        let mut st = self.state.lock();
        loop {
            if st.stop.is_some() {
                return None;
            }
            let Some(oldest) = st.queue.oldest_submitted_at() else {
                self.state
                    .wait_until(&mut st, None, |s| !s.queue.is_empty() || s.stop.is_some());
                continue;
            };
            let due = oldest + self.config.max_latency;
            let now = self.clock.now();
            if st.queue.len() >= max || now >= due {
                self.counters
                    .formation
                    .record(now.saturating_duration_since(oldest));
                return Some(st.queue.take_batch(max));
            }
            self.state.wait_until(&mut st, Some(due), |s| {
                s.queue.len() >= max || s.stop.is_some()
            });
        }
    }

    fn release(&self, batch: &[Pending<Job>]) {
        let mut st = self.state.lock();
        for p in batch {
            if let Some(n) = st.in_flight.get_mut(&p.feed) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    st.in_flight.remove(&p.feed);
                }
            }
        }
    }
}

fn guarded(id: StageId, f: impl FnOnce() -> Result<(), StageError>) -> Result<(), StageError> {
    std::panic::catch_unwind(AssertUnwindSafe(f))
        .unwrap_or_else(|_| Err(StageError::processing(id, "batch processor panicked")))
}

/// Why a coordinator did not start, plus its thread if it is stuck in `on_start` (to be
/// detached by the caller).
pub(crate) type StartFailure = (RuntimeError, Option<JoinHandle<()>>);

/// Starts a coordinator and waits (bounded by `startup_timeout`) for the processor's
/// `on_start`. On failure or timeout the thread is told to stop and returned for detaching.
pub(crate) fn spawn_coordinator(
    mut processor: Box<dyn BatchProcessor>,
    config: BatchConfig,
    health: broadcast::Sender<HealthEvent>,
    clock: SharedClock,
    coalescers: Arc<Coalescers>,
) -> Result<(Arc<Coordinator>, JoinHandle<()>), StartFailure> {
    let id = processor.id();
    let coordinator = Arc::new(Coordinator {
        id,
        config,
        capabilities: processor.capabilities(),
        counters: BatchCounters::default(),
        state: Waiter::new(
            State {
                queue: FairQueue::new(config.effective_queue_capacity(), config.fairness),
                in_flight: HashMap::new(),
                stop: None,
                finished: false,
            },
            clock.clone(),
        ),
        health,
        clock: clock.clone(),
        coalescers,
    });
    let started: OneShot<Result<(), StageError>> = OneShot::new(clock.clone());
    let name = format!("nv-batch-{id}");
    let thread = {
        let (c, started) = (Arc::clone(&coordinator), started.clone());
        std::thread::Builder::new()
            .name(name.clone())
            .spawn(move || {
                let result = guarded(c.id, || processor.on_start());
                let ok = result.is_ok();
                started.put(result);
                if ok {
                    run(&c, processor.as_mut());
                } else {
                    let mut st = c.state.lock();
                    st.finished = true;
                    drop(st);
                    c.state.notify_all();
                }
            })
            .map_err(|e| {
                (
                    RuntimeError::ThreadSpawnFailed {
                        name,
                        source: Arc::new(e),
                    },
                    None,
                )
            })?
    };
    match started.take_until(clock.now() + config.startup_timeout) {
        Some(Ok(())) => Ok((coordinator, thread)),
        Some(Err(source)) => {
            let _joined = thread.join();
            Err((
                RuntimeError::BatchStartFailed {
                    processor_id: id,
                    source,
                },
                None,
            ))
        }
        None => {
            coordinator.stop(StopKind::Removed);
            Err((
                RuntimeError::BatchStartTimedOut {
                    processor_id: id,
                    timeout: config.startup_timeout,
                },
                Some(thread),
            ))
        }
    }
}

fn run(c: &Coordinator, processor: &mut dyn BatchProcessor) {
    let processor_id = c.id;
    // The latest failure (and its batch size) rides along with the count.
    let errors: Coalesced<Option<(StageError, u32)>> = Coalesced::new(
        &c.coalescers,
        Duration::from_secs(1),
        c.health.clone(),
        c.clock.clone(),
        move |count, last: Option<(StageError, u32)>| {
            // Every counted failure stored itself first: never the fallback.
            let (error, batch_size) =
                last.unwrap_or_else(|| (StageError::processing(processor_id, "batch failed"), 0));
            HealthEvent::BatchError {
                processor_id,
                batch_size,
                error,
                count,
            }
        },
    );
    while let Some(batch) = c.next_batch() {
        let mut entries: Vec<BatchEntry> = batch
            .iter()
            .map(|p| BatchEntry::new(p.feed, p.item.frame.clone(), p.item.view.clone()))
            .collect();
        let started = c.clock.now();
        let result = guarded(c.id, || processor.process(&mut entries));
        let finished = c.clock.now();
        c.counters
            .processing
            .record(finished.saturating_duration_since(started));
        let n = batch.len() as u64;
        c.counters
            .batches_dispatched
            .fetch_add(1, Ordering::Relaxed);
        load_max(&c.counters.max_batch_size_seen, n);
        // In-flight slots are released before replies go out, so a feed that resubmits at
        // once is not refused for its own finished item.
        c.release(&batch);
        match result {
            Ok(()) => {
                c.counters.consecutive_errors.store(0, Ordering::Relaxed);
                c.counters.items_processed.fetch_add(n, Ordering::Relaxed);
                for (p, e) in batch.into_iter().zip(entries.iter_mut()) {
                    p.item.reply.put(Ok(e.output.take().unwrap_or_default()));
                }
            }
            Err(error) => {
                c.counters
                    .consecutive_errors
                    .fetch_add(1, Ordering::Relaxed);
                c.counters.items_failed.fetch_add(n, Ordering::Relaxed);
                let batch_size = u32::try_from(n).unwrap_or(u32::MAX);
                errors.record_at(1, finished, |last| *last = Some((error, batch_size)));
                for p in batch {
                    p.item.reply.put(Err(BatchFailure::Processor));
                }
            }
        }
    }
    errors.flush();
    // Unblock every feed still waiting before the processor is stopped.
    let leftovers = {
        let mut st = c.state.lock();
        st.in_flight.clear();
        st.queue.drain()
    };
    for p in leftovers {
        p.item.reply.put(Err(BatchFailure::Stopped));
    }
    if let Err(e) = guarded(c.id, || processor.on_stop()) {
        tracing::warn!(processor_id = %c.id, error = %e, "batch processor on_stop failed");
    }
    c.state.lock().finished = true;
    c.state.notify_all();
}
