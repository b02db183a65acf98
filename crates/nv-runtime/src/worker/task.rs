//! The feed worker as a pool task: the same sessions as the feed thread (`run_sessions`),
//! as a state machine that never waits. Where the thread parks (empty queue, pause,
//! restart delay, a full lossless sink queue, the sink's drain at a session end), the task
//! returns `Idle` and is scheduled again by the queue signal, a control change, the sink,
//! or its timer.

use std::sync::Arc;

use nv_core::health::StopReason;
use nv_core::time::MonotonicTs;

use super::sink::{Delivery, Sent};
use super::{new_worker, AfterSession, Session, SessionEnd, Worker, WorkerParams};
use crate::output::SharedOutput;
use crate::queue::Pop;
use crate::sched::{Poll, Pool, Task, TaskCell, TaskCx, QUANTUM};
use crate::source::SourceStatus;

enum Phase {
    /// Begin a session.
    Start,
    Running(Box<Running>),
    /// The source is stopped; waiting for the sink delivery to drain (until `deadline`).
    Closing {
        session: Box<Session>,
        end: SessionEnd,
        started: MonotonicTs,
        deadline: MonotonicTs,
    },
    RestartWait(MonotonicTs),
    Done,
}

struct Running {
    session: Session,
    started: MonotonicTs,
    next_tick: Option<MonotonicTs>,
    paused: bool,
    /// An output a full lossless sink queue did not take yet, and when to report it.
    pending: Option<(SharedOutput, MonotonicTs)>,
    /// Set at the stop while an output is held: until then the task waits for the sink
    /// to take it.
    stop_flush_until: Option<MonotonicTs>,
    /// A helper turn met a wake-up (a tick the source asked for): the next pool turn ticks.
    tick_due: bool,
    /// A helper turn ended the session (a stage panicked, the sink queue closed); the next
    /// pool turn closes it, since closing stops the source and the helper is the source's
    /// own thread.
    deferred_end: Option<SessionEnd>,
}

struct FeedTask {
    worker: Worker,
    phase: Phase,
}

/// Starts the feed's worker as a task on `pool` and schedules its first turn.
pub(crate) fn spawn_on_pool(p: WorkerParams, pool: &Pool) -> Arc<TaskCell> {
    let shared = Arc::clone(&p.shared);
    let mut worker = new_worker(p);
    worker.pool = Some(pool.clone());
    let task = pool.task(Box::new(FeedTask {
        worker,
        phase: Phase::Start,
    }));
    let signal = task.signal();
    let _unset = shared.task_signal.set(Arc::clone(&signal));
    let _unset = shared.task_helper.set(task.helper());
    // The worker copies its signal from the shared context on its first turn.
    task.schedule();
    task
}

impl Task for FeedTask {
    fn run(&mut self, cx: &TaskCx<'_>) -> Poll {
        if self.worker.task_signal.is_none() {
            self.worker.task_signal = self.worker.shared.task_signal.get().cloned();
        }
        loop {
            let phase = std::mem::replace(&mut self.phase, Phase::Done);
            let (next, poll) = self.step(phase, cx);
            self.phase = next;
            if let Some(poll) = poll {
                if matches!(self.phase, Phase::Done) {
                    return Poll::Done;
                }
                return poll;
            }
        }
    }

    fn help(&mut self, cx: &TaskCx<'_>) -> Poll {
        let phase = std::mem::replace(&mut self.phase, Phase::Done);
        let Phase::Running(mut r) = phase else {
            self.phase = phase;
            return Poll::Yield;
        };
        let poll = self.help_frames(&mut r, cx);
        self.phase = Phase::Running(r);
        poll
    }

    fn on_panic(&mut self) {
        self.worker.shared.finish(StopReason::Fatal {
            detail: "feed worker panicked".into(),
        });
    }
}

impl FeedTask {
    /// One transition; `Some(poll)` ends the turn.
    fn step(&mut self, phase: Phase, cx: &TaskCx<'_>) -> (Phase, Option<Poll>) {
        match phase {
            Phase::Start => {
                let started = self.worker.mark_session_start();
                match self.worker.open_session(true) {
                    Err(end) => (self.after(end, started), None),
                    Ok((session, Some(end))) => (self.close(session, end, started), None),
                    Ok((mut session, None)) => {
                        let now = self.worker.shared.clock.now();
                        let next_tick = session.source.as_mut().and_then(|s| s.tick(now).next_tick);
                        let running = Running {
                            session,
                            started,
                            next_tick,
                            paused: false,
                            pending: None,
                            stop_flush_until: None,
                            tick_due: false,
                            deferred_end: None,
                        };
                        (Phase::Running(Box::new(running)), None)
                    }
                }
            }
            Phase::Running(mut r) => match self.run_frames(&mut r, cx) {
                Ok(poll) => (Phase::Running(r), Some(poll)),
                Err(end) => {
                    let Running {
                        session,
                        started,
                        pending,
                        ..
                    } = *r;
                    let mut session = session;
                    if pending.is_some() {
                        // The output the sink never took: lost to the stop, and counted;
                        // the sink had its `sink_shutdown_timeout` already.
                        self.worker
                            .shared
                            .counters
                            .add_drop(nv_core::health::DropReason::FeedStopping, 1);
                        if let Some(Delivery::Thread(w)) = session.delivery.as_mut() {
                            w.mark_stuck_at_stop();
                        }
                    }
                    (self.close(session, end, started), None)
                }
            },
            Phase::Closing {
                mut session,
                end,
                started,
                deadline,
            } => {
                let Some(Delivery::Thread(w)) = session.delivery.as_ref() else {
                    return (self.finish_close(*session, end, started, None), None);
                };
                let sink = w.returned_sink();
                if sink.is_none() && self.worker.shared.clock.now() < deadline {
                    cx.wake_at(deadline);
                    let closing = Phase::Closing {
                        session,
                        end,
                        started,
                        deadline,
                    };
                    return (closing, Some(Poll::Idle));
                }
                let delivery = session.delivery.take();
                (
                    self.finish_close(*session, end, started, delivery.map(|d| (d, sink))),
                    None,
                )
            }
            Phase::RestartWait(resume_at) => {
                if self.worker.shared.stop_requested() {
                    self.worker.shared.finish(StopReason::UserRequested);
                    return (Phase::Done, Some(Poll::Done));
                }
                if self.worker.shared.clock.now() < resume_at {
                    cx.wake_at(resume_at);
                    return (Phase::RestartWait(resume_at), Some(Poll::Idle));
                }
                self.worker.executor.begin_restart_session();
                (Phase::Start, None)
            }
            Phase::Done => (Phase::Done, Some(Poll::Done)),
        }
    }

    /// What follows a session; a stop finishes the feed.
    fn after(&mut self, end: SessionEnd, started: MonotonicTs) -> Phase {
        match self.worker.after_session(end, started) {
            AfterSession::Stop(reason) => {
                self.worker.shared.finish(reason);
                Phase::Done
            }
            AfterSession::RestartAt(at) => Phase::RestartWait(at),
        }
    }

    /// Stops intake and begins the sink's drain.
    fn close(&mut self, mut session: Session, end: SessionEnd, started: MonotonicTs) -> Phase {
        self.worker.close_intake(&mut session);
        let mut timeout = self.worker.shared.settings.sink_shutdown_timeout;
        match session.delivery.as_mut() {
            Some(Delivery::Thread(w)) => {
                w.begin_shutdown();
                timeout = w.drain_timeout(timeout);
            }
            Some(Delivery::Inline(_)) | None => {}
        }
        Phase::Closing {
            session: Box::new(session),
            end,
            started,
            deadline: self.worker.shared.clock.now() + timeout,
        }
    }

    fn finish_close(
        &mut self,
        mut session: Session,
        end: SessionEnd,
        started: MonotonicTs,
        delivery: Option<(Delivery, Option<Box<dyn crate::output::OutputSink>>)>,
    ) -> Phase {
        let delivery = delivery.or_else(|| session.delivery.take().map(|d| (d, None)));
        let timeout = self.worker.shared.settings.sink_shutdown_timeout;
        match delivery {
            Some((Delivery::Thread(w), sink)) => {
                let (sink, late) = w.end_shutdown(sink, timeout, &self.worker.detached);
                match sink {
                    Some(s) => self.worker.sink = Some(s),
                    None => self.worker.late_sink = Some(late),
                }
            }
            Some((inline @ Delivery::Inline(_), _)) => {
                let (sink, _) =
                    inline.shutdown(&self.worker.shared, timeout, &self.worker.detached);
                self.worker.sink = sink;
            }
            None => {}
        }
        self.worker.finish_session();
        self.after(end, started)
    }

    /// Processes up to a quantum of frames, the source's tick and control changes.
    fn run_frames(&mut self, r: &mut Running, cx: &TaskCx<'_>) -> Result<Poll, SessionEnd> {
        if let Some(end) = r.deferred_end.take() {
            return Err(end);
        }
        let shared = Arc::clone(&self.worker.shared);
        let clock = &shared.clock;
        let (stop, paused) = {
            let c = shared.control.lock();
            (c.stop_requested, c.paused)
        };
        if stop {
            return self.flush_at_stop(r, cx);
        }
        let Some(source) = r.session.source.as_mut() else {
            return Err(SessionEnd::StopRequested);
        };
        if paused {
            if !r.paused {
                r.paused = true;
                if let Err(e) = source.pause() {
                    tracing::warn!(feed_id = %shared.id, error = %e, "source pause failed");
                }
            }
            // Resume, stop: the handle schedules the task.
            return Ok(Poll::Idle);
        }
        if r.paused {
            r.paused = false;
            if let Err(e) = source.resume() {
                tracing::warn!(feed_id = %shared.id, error = %e, "source resume failed");
            }
            // The source may have reopened: let it arm its watchdogs now.
            r.next_tick = Some(clock.now());
        }
        if let Some((output, _)) = r.pending.take() {
            if let Some(poll) = self.deliver(r, output, cx)? {
                return Ok(poll);
            }
        }
        let queue = Arc::clone(&r.session.queue);
        let _release = ReleaseProducers(&queue);
        let mut tick_due = queue.take_wake() | std::mem::take(&mut r.tick_due);
        let mut more = false;
        for n in 0..QUANTUM {
            match queue.pop_deferred() {
                Pop::Item(frame, received_at) => {
                    if let Some(poll) = self.frame(r, frame, received_at, cx)? {
                        return Ok(poll);
                    }
                    more = n + 1 == QUANTUM;
                }
                Pop::Woken => tick_due = true,
                Pop::TimedOut => break,
                Pop::Closed => return Err(self.worker.queue_closed_end(&r.session.frame_sink)),
            }
        }
        if tick_due || r.next_tick.is_some_and(|t| clock.now() >= t) {
            let Some(source) = r.session.source.as_mut() else {
                return Err(SessionEnd::StopRequested);
            };
            let outcome = source.tick(clock.now());
            *shared.decode_status.lock() = source.decode_status();
            if outcome.status == SourceStatus::Stopped {
                return Err(self.worker.source_stopped_end(&r.session.frame_sink));
            }
            r.next_tick = outcome.next_tick;
        }
        if more {
            return Ok(Poll::Yield);
        }
        if let Some(t) = r.next_tick {
            cx.wake_at(t);
        }
        Ok(Poll::Idle)
    }

    /// A helper turn, on the thread of a source blocked on the full frame queue: frames
    /// through the stages to the sink delivery, as in [`run_frames`](Self::run_frames).
    /// Everything else (a held output, pause, stop, the source's tick, a session end) is
    /// left to the pool (`Yield`): those call into the source, whose thread this is.
    fn help_frames(&mut self, r: &mut Running, cx: &TaskCx<'_>) -> Poll {
        if r.deferred_end.is_some() || r.pending.is_some() || r.paused {
            return Poll::Yield;
        }
        {
            let c = self.worker.shared.control.lock();
            if c.stop_requested || c.paused {
                return Poll::Yield;
            }
        }
        let queue = Arc::clone(&r.session.queue);
        let _release = ReleaseProducers(&queue);
        for _ in 0..QUANTUM {
            match queue.pop_deferred() {
                Pop::Item(frame, received_at) => match self.frame(r, frame, received_at, cx) {
                    Ok(None) => {}
                    Ok(Some(poll)) => return poll,
                    Err(end) => {
                        r.deferred_end = Some(end);
                        return Poll::Yield;
                    }
                },
                Pop::Woken => {
                    r.tick_due = true;
                    return Poll::Yield;
                }
                Pop::TimedOut => {
                    let tick_due = r
                        .next_tick
                        .is_some_and(|t| self.worker.shared.clock.now() >= t);
                    return if tick_due { Poll::Yield } else { Poll::Idle };
                }
                Pop::Closed => return Poll::Yield,
            }
        }
        Poll::Yield
    }

    /// One frame through the stages to the sink delivery (a pool turn's or a helper's).
    /// `Ok(Some(Idle))`: a full lossless sink queue holds the output; `Err`: the session
    /// ends (a stage panicked, the stop closed the sink queue).
    fn frame(
        &mut self,
        r: &mut Running,
        frame: nv_frame::FrameEnvelope,
        received_at: MonotonicTs,
        cx: &TaskCx<'_>,
    ) -> Result<Option<Poll>, SessionEnd> {
        let Some(output) = self.worker.run_frame(frame, received_at)? else {
            return Ok(None);
        };
        let took = output.provenance.pipeline_latency();
        let held = self.deliver(r, output, cx)?;
        if held.is_none() && took >= SLOW_FRAME {
            // The source decodes its next frames while the stages run, instead of waiting
            // for the end of a long turn.
            r.session.queue.release_producers();
        }
        Ok(held)
    }

    /// The stop: an output the sink queue had no room for is still handed over (`Block`
    /// promised it to the sink), waiting up to `sink_shutdown_timeout` without holding a
    /// pool thread; the session then ends. What is still held at the deadline is counted
    /// lost by the caller.
    fn flush_at_stop(&mut self, r: &mut Running, cx: &TaskCx<'_>) -> Result<Poll, SessionEnd> {
        let Some((output, report_at)) = r.pending.take() else {
            return Err(SessionEnd::StopRequested);
        };
        let shared = Arc::clone(&self.worker.shared);
        let now = shared.clock.now();
        let until = *r
            .stop_flush_until
            .get_or_insert(now + shared.settings.sink_shutdown_timeout);
        if now >= until {
            r.pending = Some((output, report_at));
            return Err(SessionEnd::StopRequested);
        }
        match self.deliver(r, output, cx)? {
            Some(poll) => {
                cx.wake_at(until);
                Ok(poll)
            }
            None => Err(SessionEnd::StopRequested),
        }
    }

    /// Hands an output to the sink delivery. `Err`: the feed is stopping (the sink queue
    /// was closed by the stop); `Ok(Some(Idle))` when a full lossless queue keeps the
    /// output (the queue's producer signal or the stall-report timer reschedules).
    fn deliver(
        &mut self,
        r: &mut Running,
        output: SharedOutput,
        cx: &TaskCx<'_>,
    ) -> Result<Option<Poll>, SessionEnd> {
        let shared = &self.worker.shared;
        match r.session.delivery.as_mut() {
            Some(d) => match d.try_send(shared, output) {
                Ok(Sent::Taken) => Ok(None),
                // Like the feed thread, which sees the stop at its next frame: process no
                // more frames only to count their outputs as lost.
                Ok(Sent::Closed) => Err(SessionEnd::StopRequested),
                Err((back, report_at)) => {
                    cx.wake_at(report_at);
                    r.pending = Some((back, report_at));
                    Ok(Some(Poll::Idle))
                }
            },
            None => {
                shared
                    .counters
                    .add_drop(nv_core::health::DropReason::SinkQueueFull, 1);
                Ok(None)
            }
        }
    }
}

/// A frame whose stages took this long wakes a source waiting for room at once rather
/// than at the end of the turn: next to such a frame the wake-up costs nothing, and the
/// source overlaps its decoding with the stages (a model) instead of idling a whole turn.
const SLOW_FRAME: std::time::Duration = std::time::Duration::from_micros(100);

/// Wakes the source blocked on the frame queue once per task turn, when the turn ends
/// (however it ends), instead of at every pop that crosses the queue's mark.
struct ReleaseProducers<'a>(&'a nv_io::queue::BoundedQueue<nv_frame::FrameEnvelope>);

impl Drop for ReleaseProducers<'_> {
    fn drop(&mut self) {
        self.0.release_producers();
    }
}
