//! The source contract: factory and start failures go through the restart policy, tick
//! deadlines drive the source without polling, failures end sessions.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::feed;
use nv_core::clock::ManualClock;
use nv_core::error::MediaError;
use nv_core::policy::{RestartPolicy, RestartTrigger};
use nv_core::source::{PixelFormat, SourceSpec};
use nv_core::time::MonotonicTs;
use nv_frame::FrameEnvelope;
use nv_runtime::source::{
    FrameSink, Source, SourceContext, SourceFactory, SourceStatus, TickOutcome,
};
use nv_runtime::{HealthEvent, Runtime, StopReason};
use nv_test_util::{collect_events_until, CollectingSink, NoOpStage};

/// What the scripted source does.
#[derive(Clone, Copy)]
enum Mode {
    FailCreate,
    FailStart,
    /// `start` fails with a permanent error (no decoder).
    FailStartPermanent,
    /// Pushes one frame per tick, asking for the next tick `period` later; fails after
    /// `frames` frames.
    Ticking {
        period: Duration,
        frames: u32,
    },
}

struct Factory {
    mode: Mode,
    creates: Arc<AtomicU32>,
}

impl SourceFactory for Factory {
    fn handles(&self, spec: &SourceSpec) -> bool {
        matches!(spec, SourceSpec::TestPattern { .. })
    }
    fn create(&self, ctx: &SourceContext) -> Result<Box<dyn Source>, MediaError> {
        self.creates.fetch_add(1, Ordering::SeqCst);
        match self.mode {
            Mode::FailCreate => Err(MediaError::ConnectionFailed {
                redacted_url: "test://x".into(),
                detail: "refused".into(),
            }),
            mode => Ok(Box::new(Scripted {
                mode,
                sink: None,
                pushed: 0,
                clock: ctx.clock.clone(),
            })),
        }
    }
}

struct Scripted {
    mode: Mode,
    sink: Option<FrameSink>,
    pushed: u32,
    clock: nv_core::clock::SharedClock,
}

impl Source for Scripted {
    fn start(&mut self, sink: FrameSink) -> Result<(), MediaError> {
        if matches!(self.mode, Mode::FailStart) {
            return Err(MediaError::ConnectionFailed {
                redacted_url: "test://x".into(),
                detail: "device busy".into(),
            });
        }
        if matches!(self.mode, Mode::FailStartPermanent) {
            return Err(MediaError::Unsupported {
                detail: "no decoder".into(),
            });
        }
        self.sink = Some(sink);
        Ok(())
    }
    fn tick(&mut self, now: MonotonicTs) -> TickOutcome {
        let Mode::Ticking { period, frames } = self.mode else {
            return TickOutcome::running();
        };
        let Some(sink) = &self.sink else {
            return TickOutcome::running();
        };
        if self.pushed == frames {
            sink.fail(MediaError::Timeout {
                waited_ms: 0,
                phase: "scripted",
            });
            return TickOutcome {
                status: SourceStatus::Stopped,
                next_tick: None,
            };
        }
        let frame = FrameEnvelope::new_owned(
            sink.feed_id(),
            sink.next_seq(),
            now,
            2,
            2,
            PixelFormat::Gray8,
            vec![0; 4],
        )
        .unwrap();
        sink.push(frame);
        self.pushed += 1;
        TickOutcome {
            status: SourceStatus::Running,
            next_tick: Some(self.clock.now() + period),
        }
    }
    fn stop(&mut self) {}
}

fn spec() -> SourceSpec {
    SourceSpec::TestPattern {
        pattern: "scripted".into(),
        width: 2,
        height: 2,
        fps: 1,
        frame_count: None,
    }
}

fn restarts(events: &[HealthEvent]) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, HealthEvent::FeedRestarting { .. }))
        .count()
}

#[test]
fn create_and_start_failures_use_the_restart_policy() {
    for mode in [Mode::FailCreate, Mode::FailStart] {
        let creates = Arc::new(AtomicU32::new(0));
        let rt = Runtime::builder()
            .source_factory(Arc::new(Factory {
                mode,
                creates: creates.clone(),
            }))
            .build()
            .unwrap();
        let mut health = rt.health_subscribe();
        let restart = RestartPolicy::default()
            .with_max_restarts(3)
            .with_restart_delay(Duration::ZERO);
        rt.add_feed(
            feed(None)
                .source(spec())
                .restart(restart)
                .stage(NoOpStage("s"))
                .output_sink(CollectingSink::new())
                .build()
                .unwrap(),
        )
        .unwrap();
        let events = collect_events_until(&mut health, |e| {
            matches!(e, HealthEvent::FeedStopped { .. })
        });
        assert_eq!(restarts(&events), 3);
        assert_eq!(
            creates.load(Ordering::SeqCst),
            4,
            "one session plus three restarts"
        );
        assert!(matches!(
            events.last(),
            Some(HealthEvent::FeedStopped {
                reason: StopReason::RestartLimitExceeded {
                    restart_count: 3,
                    ..
                },
                ..
            })
        ));
    }
}

#[test]
fn tick_deadlines_follow_the_clock_and_source_failure_restarts() {
    let clock = ManualClock::new();
    let creates = Arc::new(AtomicU32::new(0));
    let period = Duration::from_secs(5);
    let rt = Runtime::builder()
        .clock(clock.clone())
        .health_capacity(4096)
        .source_factory(Arc::new(Factory {
            mode: Mode::Ticking { period, frames: 3 },
            creates: creates.clone(),
        }))
        .build()
        .unwrap();
    let mut health = rt.health_subscribe();
    let sink = CollectingSink::new();
    let restart = RestartPolicy::default()
        .with_max_restarts(1)
        .with_restart_delay(Duration::ZERO)
        .with_restart_on(RestartTrigger::SourceFailure);
    rt.add_feed(
        feed(None)
            .source(spec())
            .restart(restart)
            .stage(NoOpStage("s"))
            .output_sink(sink.clone())
            .build()
            .unwrap(),
    )
    .unwrap();
    // The first tick happens at session start; every further frame needs the clock to
    // reach the source's deadline.
    sink.wait_for(1);
    for n in 2..=3 {
        clock.advance(period);
        sink.wait_for(n);
    }
    clock.advance(period);
    // The source failed after 3 frames: one restart, a fresh session, same again.
    nv_test_util::wait_until("restarted session's first frame", || sink.len() == 4);
    for n in 5..=6 {
        clock.advance(period);
        sink.wait_for(n);
    }
    clock.advance(period);
    let events = collect_events_until(&mut health, |e| {
        matches!(e, HealthEvent::FeedStopped { .. })
    });
    assert_eq!(restarts(&events), 1);
    assert!(matches!(
        events.last(),
        Some(HealthEvent::FeedStopped {
            reason: StopReason::RestartLimitExceeded { .. },
            ..
        })
    ));
    let seqs: Vec<u64> = sink.outputs().iter().map(|o| o.frame_seq).collect();
    assert_eq!(
        seqs,
        vec![0, 1, 2, 3, 4, 5],
        "seq continues across the restart"
    );
    assert_eq!(creates.load(Ordering::SeqCst), 2);
}

#[test]
fn permanent_failure_stops_at_once_with_its_cause_and_no_restart() {
    let creates = Arc::new(AtomicU32::new(0));
    let rt = Runtime::builder()
        .source_factory(Arc::new(Factory {
            mode: Mode::FailStartPermanent,
            creates: creates.clone(),
        }))
        .build()
        .unwrap();
    let mut health = rt.health_subscribe();
    let h = rt
        .add_feed(
            feed(None)
                .source(spec())
                .restart(RestartPolicy::default().with_max_restarts(5))
                .stage(NoOpStage("s"))
                .output_sink(CollectingSink::new())
                .build()
                .unwrap(),
        )
        .unwrap();
    let events = collect_events_until(&mut health, |e| {
        matches!(e, HealthEvent::FeedStopped { .. })
    });
    assert_eq!(restarts(&events), 0);
    assert_eq!(creates.load(Ordering::SeqCst), 1);
    let expected = StopReason::SourceFailed {
        kind: nv_core::FailureKind::UnsupportedCodec,
        cause: "unsupported: no decoder".into(),
    };
    assert!(
        matches!(events.last(), Some(HealthEvent::FeedStopped { reason, .. }) if *reason == expected),
        "{events:?}"
    );
    assert_eq!(h.stop_reason(), Some(expected));
    assert_eq!(
        h.state(),
        nv_core::FeedState::Failed {
            kind: nv_core::FailureKind::UnsupportedCodec,
            cause: "unsupported: no decoder".into()
        }
    );
    let last = h.last_error().unwrap();
    assert_eq!(last.kind, nv_core::FailureKind::UnsupportedCodec);
    assert_eq!(last.count, 1);
    assert!(last.first_at.is_known());
}

#[test]
fn state_follows_sessions_restart_delay_and_failure_with_the_cause() {
    let clock = ManualClock::new();
    let creates = Arc::new(AtomicU32::new(0));
    let period = Duration::from_secs(5);
    let rt = Runtime::builder()
        .clock(clock.clone())
        .health_capacity(4096)
        .source_factory(Arc::new(Factory {
            mode: Mode::Ticking { period, frames: 1 },
            creates: creates.clone(),
        }))
        .build()
        .unwrap();
    let mut health = rt.health_subscribe();
    let sink = CollectingSink::new();
    let delay = Duration::from_secs(30);
    let restart = RestartPolicy::default()
        .with_max_restarts(1)
        .with_restart_delay(delay)
        .with_restart_on(RestartTrigger::SourceFailure);
    let h = rt
        .add_feed(
            feed(None)
                .source(spec())
                .restart(restart)
                .stage(NoOpStage("s"))
                .output_sink(sink.clone())
                .build()
                .unwrap(),
        )
        .unwrap();
    sink.wait_for(1);
    assert_eq!(h.state().name(), "streaming");
    assert!(h.last_error().is_none());
    clock.advance(period);
    // The source fails on its next tick: the feed waits out the restart delay.
    collect_events_until(&mut health, |e| {
        matches!(e, HealthEvent::FeedRestarting { .. })
    });
    let state = h.state();
    let nv_core::FeedState::Reconnecting {
        attempt,
        next_try_at,
    } = state
    else {
        panic!("{state:?}");
    };
    assert_eq!(attempt, 1);
    let now = nv_core::Clock::wall_now(&*clock);
    assert_eq!(
        next_try_at.checked_duration_since(now),
        Some(delay),
        "next try is one restart delay away"
    );
    let last = h.last_error().unwrap();
    assert_eq!(last.kind, nv_core::FailureKind::StartupTimeout);
    assert_eq!(last.message, "no frame for 0 ms (scripted)");
    clock.advance(delay);
    sink.wait_for(2);
    clock.advance(period);
    let events = collect_events_until(&mut health, |e| {
        matches!(e, HealthEvent::FeedStopped { .. })
    });
    let Some(HealthEvent::FeedStopped { reason, .. }) = events.last() else {
        panic!("{events:?}");
    };
    assert_eq!(
        reason.to_string(),
        "restart limit exceeded after 1 restarts; last failure: source failed: no frame for 0 ms (scripted)"
    );
    assert_eq!(h.state().name(), "failed");
    assert_eq!(h.last_error().unwrap().count, 2);
}
