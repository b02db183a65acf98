//! The feed worker thread: sessions of source → stages → sink, restarts, and the stop.

mod restart;
pub(crate) mod sink;
mod task;

pub(crate) use task::spawn_on_pool;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;

use nv_core::error::{cause_chain, ErrorKind, FailureKind as Kind, MediaError, RuntimeError};
use nv_core::feed_state::FeedState;
use nv_core::health::{DropReason, HealthEvent, StopReason};
use nv_core::id::StageId;
use nv_core::source::SourceSpec;
use nv_core::time::MonotonicTs;
use nv_frame::FrameEnvelope;

use crate::broadcast;
use crate::detached::DetachedThreads;
use crate::executor::{Executor, FrameOutcome};
use crate::feed::config::FeedConfig;
use crate::feed::shared::FeedShared;
use crate::output::{OutputSink, SharedOutput, SinkFactory};
use crate::queue::{BoundedQueue, Pop, QueueSignal};
use crate::sched::Pool;
use crate::source::{FrameSink, Source, SourceContext, SourceEnd, SourceFactory, SourceStatus};
use crate::sync::OneShot;
use restart::{FailureKind, RestartBudget, RestartDecision};
use sink::Delivery;

/// How a session ended.
#[derive(Debug)]
enum SessionEnd {
    StopRequested,
    EndOfStream,
    /// The source failed; `recorded` when the error is already in the feed's last error
    /// (the source ended through `FrameSink::fail`).
    SourceFailed {
        error: MediaError,
        recorded: bool,
    },
    StagePanic(StageId),
    StageStartFailed(StageId, String),
}

/// What follows a session.
enum AfterSession {
    Stop(StopReason),
    RestartAt(MonotonicTs),
}

/// One session's running parts.
struct Session {
    queue: Arc<BoundedQueue<FrameEnvelope>>,
    frame_sink: FrameSink,
    delivery: Option<Delivery>,
    source: Option<Box<dyn Source>>,
}

pub(crate) struct WorkerParams {
    pub shared: Arc<FeedShared>,
    pub config: FeedConfig,
    pub executor: Executor,
    pub factory: Arc<dyn SourceFactory>,
    pub outputs: broadcast::Sender<SharedOutput>,
    pub detached: DetachedThreads,
    pub source_ctx: SourceContext,
    pub stack_size: usize,
}

pub(crate) struct Worker {
    shared: Arc<FeedShared>,
    spec: SourceSpec,
    executor: Executor,
    factory: Arc<dyn SourceFactory>,
    outputs: broadcast::Sender<SharedOutput>,
    detached: DetachedThreads,
    source_ctx: SourceContext,
    sink: Option<Box<dyn OutputSink>>,
    /// Where a wedged sink thread returns its sink if it ever finishes.
    late_sink: Option<OneShot<Box<dyn OutputSink>>>,
    sink_factory: Option<SinkFactory>,
    budget: RestartBudget,
    /// On the pool: the feed task's signal (frame queue) and the pool (sink tasks).
    task_signal: Option<Arc<dyn QueueSignal>>,
    pool: Option<Pool>,
}

fn new_worker(p: WorkerParams) -> Worker {
    let cfg = p.config;
    Worker {
        shared: p.shared,
        spec: cfg.source,
        executor: p.executor,
        factory: p.factory,
        outputs: p.outputs,
        detached: p.detached,
        source_ctx: p.source_ctx,
        sink: Some(cfg.sink),
        late_sink: None,
        sink_factory: cfg.sink_factory,
        budget: RestartBudget::new(cfg.restart),
        task_signal: None,
        pool: None,
    }
}

pub(crate) fn spawn(p: WorkerParams) -> Result<JoinHandle<()>, RuntimeError> {
    let name = format!("nv-feed-{}", p.shared.id.as_u64());
    let stack_size = p.stack_size;
    let worker = new_worker(p);
    std::thread::Builder::new()
        .name(name.clone())
        .stack_size(stack_size)
        .spawn(move || worker.run())
        .map_err(|e| RuntimeError::ThreadSpawnFailed {
            name,
            source: Arc::new(e),
        })
}

impl Worker {
    fn run(mut self) {
        let reason = self.run_sessions();
        // `is_alive()` is already false for anyone who sees the FeedStopped event.
        self.shared.finish(reason);
    }

    fn run_sessions(&mut self) -> StopReason {
        loop {
            let started = self.mark_session_start();
            let end = self.run_session();
            match self.after_session(end, started) {
                AfterSession::Stop(reason) => return reason,
                AfterSession::RestartAt(resume_at) => {
                    if self.wait_restart_delay(resume_at) {
                        return StopReason::UserRequested;
                    }
                    self.executor.begin_restart_session();
                }
            }
        }
    }

    fn mark_session_start(&self) -> MonotonicTs {
        let started = self.shared.clock.now();
        self.shared
            .session_started_at
            .store(started.as_nanos(), Ordering::Relaxed);
        started
    }

    /// Decides what follows a session that began at `started`: stop (with the reason)
    /// or restart after the delay (announced here).
    fn after_session(&mut self, end: SessionEnd, started: MonotonicTs) -> AfterSession {
        let status = &self.shared.status;
        let (kind, detail) = match end {
            SessionEnd::StopRequested => return AfterSession::Stop(StopReason::UserRequested),
            SessionEnd::EndOfStream => {
                if matches!(self.spec, SourceSpec::File { .. })
                    && self.shared.counters.frames_received.load(Ordering::Relaxed) == 0
                {
                    let cause = MediaError::NoPlayableStream {
                        detail: "the file ended without a single decodable frame".into(),
                    }
                    .to_string();
                    status.record_error(Kind::NoPlayableStream, cause.clone());
                    return AfterSession::Stop(StopReason::SourceFailed {
                        kind: Kind::NoPlayableStream,
                        cause,
                    });
                }
                self.shared.health.send(HealthEvent::SourceEos {
                    feed_id: self.shared.id,
                });
                return AfterSession::Stop(StopReason::EndOfStream);
            }
            SessionEnd::SourceFailed { error, recorded } => {
                if !recorded {
                    status.record_media_error(&error);
                }
                // A file does not change by reading it again, and a permanent error
                // fails the same way: stop now, with the cause, instead of restarting.
                if error.kind() == ErrorKind::Permanent
                    || matches!(self.spec, SourceSpec::File { .. })
                {
                    return AfterSession::Stop(StopReason::SourceFailed {
                        kind: error.failure_kind(),
                        cause: cause_chain(&error),
                    });
                }
                (
                    FailureKind::Source,
                    format!("source failed: {}", cause_chain(&error)),
                )
            }
            SessionEnd::StagePanic(id) => {
                let detail = format!("stage {id} panicked");
                status.record_error(Kind::StagePanic, detail.clone());
                (FailureKind::StagePanic, detail)
            }
            SessionEnd::StageStartFailed(id, e) => {
                let detail = format!("stage {id} failed to start: {e}");
                status.record_error(Kind::StageStartFailed, detail.clone());
                (FailureKind::StageStartFailed, detail)
            }
        };
        let lifetime = self.shared.clock.now().saturating_duration_since(started);
        match self.budget.on_failure(kind, &detail, lifetime) {
            RestartDecision::Stop(reason) => AfterSession::Stop(reason),
            RestartDecision::Restart { restart_count } => {
                // Anchor the delay before announcing it, so an observer reacting to
                // the event cannot move time underneath the computation.
                let restart_delay = self.shared.settings.restart_delay;
                let resume_at = self.shared.clock.now() + restart_delay;
                self.shared
                    .counters
                    .restarts
                    .store(restart_count, Ordering::Relaxed);
                self.shared.status.set(FeedState::Reconnecting {
                    attempt: restart_count,
                    next_try_at: wall_after(self.shared.clock.wall_now(), restart_delay),
                });
                self.shared.health.send(HealthEvent::FeedRestarting {
                    feed_id: self.shared.id,
                    restart_count,
                    delay_ms: u64::try_from(restart_delay.as_millis()).unwrap_or(u64::MAX),
                });
                AfterSession::RestartAt(resume_at)
            }
        }
    }

    /// Waits out the restart delay; true if a stop was requested meanwhile.
    fn wait_restart_delay(&self, deadline: MonotonicTs) -> bool {
        let control = &self.shared.control;
        let mut c = control.lock();
        control.wait_until(&mut c, Some(deadline), |c| c.stop_requested);
        c.stop_requested
    }

    fn take_sink(&mut self) -> Option<Box<dyn OutputSink>> {
        if let Some(s) = self.sink.take() {
            return Some(s);
        }
        if let Some(s) = self.late_sink.as_ref().and_then(OneShot::take) {
            self.late_sink = None;
            return Some(s);
        }
        self.sink_factory.as_ref().map(|f| f())
    }

    fn run_session(&mut self) -> SessionEnd {
        let (mut session, early) = match self.open_session(false) {
            Ok(opened) => opened,
            Err(end) => return end,
        };
        let end = match early {
            Some(end) => end,
            None => {
                let mut source = session.source.take();
                let end = match source.as_mut() {
                    Some(s) => self.process_loop(
                        s.as_mut(),
                        &session.queue,
                        &session.frame_sink,
                        &mut session.delivery,
                    ),
                    None => SessionEnd::StopRequested,
                };
                session.source = source;
                end
            }
        };
        self.close_intake(&mut session);
        if let Some(w) = session.delivery.take() {
            let (sink, late) = w.shutdown(
                &self.shared,
                self.shared.settings.sink_shutdown_timeout,
                &self.detached,
            );
            match sink {
                Some(s) => self.sink = Some(s),
                None => self.late_sink = late,
            }
        }
        self.finish_session();
        end
    }

    /// Starts the stages, the frame queue, the sink delivery and the source. `Err`: the
    /// session ended before anything needed tearing down; `Some` end: it ended while
    /// starting (tear it down).
    fn open_session(&mut self, on_pool: bool) -> Result<(Session, Option<SessionEnd>), SessionEnd> {
        if self.shared.stop_requested() {
            return Err(SessionEnd::StopRequested);
        }
        if let Err((id, e)) = self.executor.start_stages() {
            return Err(SessionEnd::StageStartFailed(id, cause_chain(&e)));
        }
        self.shared.status.set(FeedState::Connecting);
        let queue = BoundedQueue::new(self.shared.settings.queue_depth, self.shared.clock.clone());
        if let Some(signal) = self.task_signal.as_ref() {
            queue.set_consumer_signal(Arc::clone(signal));
        }
        if let Some(helper) = self.shared.task_helper.get() {
            queue.set_consumer_helper(Arc::clone(helper));
        }
        *self.shared.source_queue.lock() = Some(Arc::clone(&queue));
        let frame_sink = FrameSink::new(Arc::clone(&self.shared.io), Arc::clone(&queue));
        // A stop requested before the queue was published must still be seen.
        if self.shared.stop_requested() {
            queue.wake();
        }
        let delivery = match self.take_sink() {
            Some(sink) => {
                let started = if on_pool {
                    Delivery::start_on_pool(sink, &self.shared, self.pool.as_ref())
                } else {
                    Delivery::start(sink, &self.shared)
                };
                match started {
                    Ok(w) => Some(w),
                    Err(e) => {
                        tracing::error!(feed_id = %self.shared.id, error = %e, "could not start sink delivery");
                        None
                    }
                }
            }
            None => None,
        };
        *self.shared.sink_queue.lock() =
            delivery.as_ref().and_then(Delivery::queue).map(Arc::clone);
        let mut session = Session {
            queue,
            frame_sink,
            delivery,
            source: None,
        };
        let early = match self.factory.create(&self.source_ctx) {
            Err(error) => Some(SessionEnd::SourceFailed {
                error,
                recorded: false,
            }),
            Ok(mut s) => {
                let started = s.start(session.frame_sink.clone());
                session.source = Some(s);
                started.err().map(|error| SessionEnd::SourceFailed {
                    error,
                    recorded: false,
                })
            }
        };
        Ok((session, early))
    }

    /// Teardown, first part: stop intake, stop the source, discard what is left. The sink
    /// delivery is ended by the caller (blocking on a thread, polled on the pool).
    fn close_intake(&mut self, session: &mut Session) {
        session.queue.close();
        if let Some(mut s) = session.source.take() {
            // Short sessions may end before any tick refreshed the decoder status.
            *self.shared.decode_status.lock() = s.decode_status();
            s.stop();
        }
        let leftover = session.queue.drain().len() as u64;
        if leftover > 0 {
            self.shared
                .counters
                .add_drop(DropReason::FeedStopping, leftover);
        }
        session.frame_sink.flush_drop_events();
        *self.shared.source_queue.lock() = None;
        *self.shared.sink_queue.lock() = None;
    }

    /// Teardown, last part (after the sink delivery ended).
    fn finish_session(&mut self) {
        self.executor.stop_stages();
        self.executor.flush_events();
    }

    fn process_loop(
        &mut self,
        source: &mut dyn Source,
        queue: &BoundedQueue<FrameEnvelope>,
        frame_sink: &FrameSink,
        sink: &mut Option<Delivery>,
    ) -> SessionEnd {
        let clock = self.shared.clock.clone();
        let mut next_tick: Option<MonotonicTs> = source.tick(clock.now()).next_tick;
        loop {
            {
                let control = &self.shared.control;
                let c = control.lock();
                if c.stop_requested {
                    return SessionEnd::StopRequested;
                }
                if c.paused {
                    drop(c);
                    if let Err(e) = source.pause() {
                        tracing::warn!(feed_id = %self.shared.id, error = %e, "source pause failed");
                    }
                    let mut c = control.lock();
                    control.wait_until(&mut c, None, |c| !c.paused || c.stop_requested);
                    drop(c);
                    if let Err(e) = source.resume() {
                        tracing::warn!(feed_id = %self.shared.id, error = %e, "source resume failed");
                    }
                    // The source may have reopened: let it arm its watchdogs now.
                    next_tick = Some(clock.now());
                    continue;
                }
            }
            let tick_due = match queue.pop(next_tick) {
                Pop::Item(frame, received_at) => {
                    if let Some(end) = self.handle_frame(frame, received_at, sink) {
                        return end;
                    }
                    next_tick.is_some_and(|t| clock.now() >= t)
                }
                Pop::Woken | Pop::TimedOut => true,
                Pop::Closed => return self.queue_closed_end(frame_sink),
            };
            if tick_due {
                let outcome = source.tick(clock.now());
                *self.shared.decode_status.lock() = source.decode_status();
                if outcome.status == SourceStatus::Stopped {
                    return self.source_stopped_end(frame_sink);
                }
                next_tick = outcome.next_tick;
            }
        }
    }

    fn handle_frame(
        &mut self,
        frame: FrameEnvelope,
        received_at: MonotonicTs,
        sink: &mut Option<Delivery>,
    ) -> Option<SessionEnd> {
        match self.run_frame(frame, received_at) {
            Ok(Some(output)) => {
                match sink {
                    Some(w) => w.send(&self.shared, output),
                    None => self.shared.counters.add_drop(DropReason::SinkQueueFull, 1),
                }
                None
            }
            Ok(None) => None,
            Err(end) => Some(end),
        }
    }

    /// Runs the stages on one frame; the output (already published to subscribers) is
    /// the caller's to deliver to the sink.
    fn run_frame(
        &mut self,
        frame: FrameEnvelope,
        received_at: MonotonicTs,
    ) -> Result<Option<SharedOutput>, SessionEnd> {
        let counters = &self.shared.counters;
        counters.frames_dequeued.fetch_add(1, Ordering::Relaxed);
        self.shared.status.on_frame();
        let dequeued_at = self.shared.clock.now();
        counters
            .queue_hold
            .record(dequeued_at.saturating_duration_since(received_at));
        match self.executor.process(frame, received_at, dequeued_at) {
            FrameOutcome::Output(output) => {
                counters.frames_processed.fetch_add(1, Ordering::Relaxed);
                counters.receive_to_output.record(
                    output
                        .provenance
                        .completed_at
                        .saturating_duration_since(received_at),
                );
                if self.outputs.has_subscribers() {
                    self.outputs.send(Arc::clone(&output));
                }
                Ok(Some(output))
            }
            FrameOutcome::Dropped => Ok(None),
            FrameOutcome::Panicked(id) => Err(SessionEnd::StagePanic(id)),
        }
    }

    /// What a stopped source's session end is (the source reported `Stopped` on a tick).
    fn source_stopped_end(&self, frame_sink: &FrameSink) -> SessionEnd {
        match frame_sink.end_reason() {
            Some(SourceEnd::Failed(error)) => SessionEnd::SourceFailed {
                error,
                recorded: true,
            },
            _ => SessionEnd::SourceFailed {
                error: MediaError::ConnectionFailed {
                    redacted_url: self.spec.redacted(),
                    detail: "source stopped (reconnect budget exhausted)".into(),
                },
                recorded: false,
            },
        }
    }

    /// What a closed frame queue's session end is.
    fn queue_closed_end(&self, frame_sink: &FrameSink) -> SessionEnd {
        match frame_sink.end_reason() {
            Some(SourceEnd::EndOfStream) if self.spec.ends_at_eos() => SessionEnd::EndOfStream,
            Some(SourceEnd::EndOfStream) => SessionEnd::SourceFailed {
                error: MediaError::Eos,
                recorded: false,
            },
            Some(SourceEnd::Failed(error)) => SessionEnd::SourceFailed {
                error,
                recorded: true,
            },
            None => SessionEnd::StopRequested,
        }
    }
}

fn wall_after(now: nv_core::time::WallTs, d: std::time::Duration) -> nv_core::time::WallTs {
    if !now.is_known() {
        return now;
    }
    let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    nv_core::time::WallTs::from_micros(now.as_micros().saturating_add(micros))
}
