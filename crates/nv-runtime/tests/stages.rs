//! Stage execution: order, merge, errors, panics, skip, provenance, restart policy.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{feed, manual_runtime, runtime};
use nv_core::error::StageError;
use nv_core::geometry::BBox;
use nv_core::id::DetectionId;
use nv_core::policy::{RestartPolicy, RestartTrigger};
use nv_perception::{Detection, Stage, StageContext, StageOutput};
use nv_runtime::{
    DropReason, FrameInclusion, HealthEvent, NullSink, StageId, StageResult, StopReason,
};
use nv_test_util::{
    collect_events_until, wait_for_event, CollectingSink, ScriptedStage, StageLog, Step,
};

struct Detector;
impl Stage for Detector {
    fn id(&self) -> StageId {
        StageId::new("detector")
    }
    fn process(&mut self, ctx: &StageContext<'_>) -> Result<StageOutput, StageError> {
        let d = Detection::builder(
            DetectionId::new(ctx.frame.seq()),
            1,
            0.9,
            BBox::new(0.1, 0.1, 0.2, 0.2),
        )
        .build();
        Ok(StageOutput::with_detections(vec![d]))
    }
}

fn stopped(events: &[HealthEvent]) -> Vec<StopReason> {
    events
        .iter()
        .filter_map(|e| {
            if let HealthEvent::FeedStopped { reason, .. } = e {
                Some(reason.clone())
            } else {
                None
            }
        })
        .collect()
}

#[test]
fn stages_run_in_order_and_see_earlier_outputs() {
    let rt = runtime();
    let log = Arc::new(StageLog::default());
    let sink = CollectingSink::new();
    let a = ScriptedStage::new("a").with_log(log.clone());
    let b = ScriptedStage::new("b").with_log(log.clone());
    rt.add_feed(
        feed(Some(3))
            .stage(a)
            .stage(Detector)
            .stage(b)
            .output_sink(sink.clone())
            .lossless()
            .build()
            .unwrap(),
    )
    .unwrap();
    let out = sink.wait_for(3);
    let order = log.order.lock().clone();
    assert_eq!(
        order,
        vec![("a", 0), ("b", 0), ("a", 1), ("b", 1), ("a", 2), ("b", 2)]
    );
    assert_eq!(
        log.get(&log.seen_detections),
        3,
        "b saw the detector's output on every frame"
    );
    assert_eq!(out[0].detections.len(), 1);
    let p = &out[2].provenance;
    assert_eq!(
        p.stages
            .iter()
            .map(|s| s.stage_id.as_str())
            .collect::<Vec<_>>(),
        vec!["a", "detector", "b"]
    );
    assert!(p.received_at <= p.dequeued_at && p.dequeued_at <= p.completed_at);
    assert!(p
        .stages
        .windows(2)
        .all(|w| w[0].finished_at <= w[1].started_at));
    assert!(p.frame_age.is_some(), "synthetic frames carry wall time");
}

#[test]
fn stage_error_drops_only_that_frame_and_is_reported_with_a_count() {
    let rt = runtime();
    let mut health = rt.health_subscribe();
    let sink = CollectingSink::new();
    let failing = ScriptedStage::new("f")
        .then(Step::Ok)
        .then(Step::Err)
        .then(Step::Err);
    let after = ScriptedStage::new("after");
    let after_log = after.log.clone();
    let h = rt
        .add_feed(
            feed(Some(6))
                .stage(failing)
                .stage(after)
                .output_sink(sink.clone())
                .lossless()
                .build()
                .unwrap(),
        )
        .unwrap();
    let events = collect_events_until(&mut health, |e| {
        matches!(e, HealthEvent::FeedStopped { .. })
    });
    let counts: u64 = events
        .iter()
        .map(|e| {
            if let HealthEvent::StageError {
                count, stage_id, ..
            } = e
            {
                assert_eq!(stage_id.as_str(), "f");
                *count
            } else {
                0
            }
        })
        .sum();
    assert_eq!(counts, 2);
    assert!(
        events
            .iter()
            .filter(|e| matches!(e, HealthEvent::StageError { .. }))
            .count()
            <= 2,
        "throttled"
    );
    assert_eq!(
        sink.outputs()
            .iter()
            .map(|o| o.frame_seq)
            .collect::<Vec<_>>(),
        vec![0, 3, 4, 5]
    );
    assert_eq!(
        after_log.get(&after_log.processed),
        4,
        "later stages skipped for failed frames"
    );
    assert_eq!(h.metrics().dropped(DropReason::StageError), 2);
    assert_eq!(h.metrics().frames_processed, 4);
    assert_eq!(stopped(&events), vec![StopReason::EndOfStream]);
}

#[test]
fn pending_stage_errors_leave_on_their_deadline_while_the_feed_runs() {
    // Time stands still until the test moves it: three errors fall in one window, the
    // first is reported at once and the other two wait for the window to pass. The feed
    // then sits in a blocked stage, so only the runtime's own deadline can report them.
    let (clock, rt) = manual_runtime();
    let mut health = rt.health_subscribe();
    let gate = nv_test_util::BlockingStage::new("gate");
    let _unblock = gate.release_on_drop();
    let failing = ScriptedStage::new("f")
        .then(Step::Err)
        .then(Step::Err)
        .then(Step::Err);
    let h = rt
        .add_feed(
            feed(Some(4))
                .stage(failing)
                .stage(gate.clone())
                .output_sink(NullSink)
                .build()
                .unwrap(),
        )
        .unwrap();
    gate.wait_entered();
    let first = wait_for_event(&mut health, |e| matches!(e, HealthEvent::StageError { .. }));
    assert!(
        matches!(first, HealthEvent::StageError { count: 1, .. }),
        "{first:?}"
    );
    clock.advance(Duration::from_secs(2));
    let rest = wait_for_event(&mut health, |e| matches!(e, HealthEvent::StageError { .. }));
    assert!(
        matches!(rest, HealthEvent::StageError { count: 2, .. }),
        "{rest:?}"
    );
    assert!(h.is_alive(), "reported before the session ended");
    gate.release();
    let events = collect_events_until(&mut health, |e| {
        matches!(e, HealthEvent::FeedStopped { .. })
    });
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, HealthEvent::StageError { .. })),
        "nothing left to flush: {events:?}"
    );
    assert_eq!(h.metrics().dropped(DropReason::StageError), 3);
}

#[test]
fn skip_remaining_still_emits_output_and_records_skips() {
    let rt = runtime();
    let sink = CollectingSink::new();
    let gate = ScriptedStage::new("gate").then(Step::Skip);
    let later = ScriptedStage::new("later");
    rt.add_feed(
        feed(Some(2))
            .stage(gate)
            .stage(later)
            .output_sink(sink.clone())
            .lossless()
            .build()
            .unwrap(),
    )
    .unwrap();
    let out = sink.wait_for(2);
    assert_eq!(out[0].provenance.stages[1].result, StageResult::Skipped);
    assert_eq!(out[1].provenance.stages[1].result, StageResult::Ok);
}

#[test]
fn panics_restart_until_the_budget_is_spent() {
    let rt = runtime();
    let mut health = rt.health_subscribe();
    let restart = RestartPolicy::default()
        .with_max_restarts(2)
        .with_restart_delay(Duration::ZERO);
    let h = rt
        .add_feed(
            feed(None)
                .restart(restart)
                .stage(ScriptedStage::new("p").always(Step::Panic))
                .output_sink(NullSink)
                .build()
                .unwrap(),
        )
        .unwrap();
    let events = collect_events_until(&mut health, |e| {
        matches!(e, HealthEvent::FeedStopped { .. })
    });
    let restarts: Vec<u32> = events
        .iter()
        .filter_map(|e| {
            if let HealthEvent::FeedRestarting { restart_count, .. } = e {
                Some(*restart_count)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(restarts, vec![1, 2]);
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, HealthEvent::StagePanic { .. }))
            .count(),
        3
    );
    assert_eq!(
        stopped(&events),
        vec![StopReason::RestartLimitExceeded {
            restart_count: 2,
            cause: "stage p panicked".into()
        }]
    );
    assert_eq!(h.metrics().restarts, 2);
    // The cause is kept: state, last error and the stop reason all name it.
    assert_eq!(h.state().name(), "failed");
    let last = h.last_error().unwrap();
    assert_eq!(last.kind, nv_core::FailureKind::StagePanic);
    assert_eq!(last.count, 3);
    assert_eq!(last.message, "stage p panicked");
}

#[test]
fn panic_is_fatal_when_only_source_failures_restart() {
    let rt = runtime();
    let mut health = rt.health_subscribe();
    let restart = RestartPolicy::default()
        .with_restart_on(RestartTrigger::SourceFailure)
        .with_restart_delay(Duration::ZERO);
    rt.add_feed(
        feed(None)
            .restart(restart)
            .stage(ScriptedStage::new("p").always(Step::Panic))
            .output_sink(NullSink)
            .build()
            .unwrap(),
    )
    .unwrap();
    let events = collect_events_until(&mut health, |e| {
        matches!(e, HealthEvent::FeedStopped { .. })
    });
    assert!(matches!(
        stopped(&events).as_slice(),
        [StopReason::Fatal { .. }]
    ));
    assert!(!events
        .iter()
        .any(|e| matches!(e, HealthEvent::FeedRestarting { .. })));
}

#[test]
fn failed_on_start_rolls_back_started_stages() {
    let rt = runtime();
    let mut health = rt.health_subscribe();
    let first = ScriptedStage::new("first");
    let first_log = first.log.clone();
    let second = ScriptedStage::new("second").failing_starts(1);
    let restart = RestartPolicy::default()
        .with_max_restarts(1)
        .with_restart_delay(Duration::ZERO);
    let sink = CollectingSink::new();
    rt.add_feed(
        feed(Some(2))
            .restart(restart)
            .stage(first)
            .stage(second)
            .output_sink(sink.clone())
            .lossless()
            .build()
            .unwrap(),
    )
    .unwrap();
    let events = collect_events_until(&mut health, |e| {
        matches!(e, HealthEvent::FeedStopped { .. })
    });
    assert_eq!(stopped(&events), vec![StopReason::EndOfStream]);
    // Session 0: first started then rolled back; session 1 ran normally.
    assert_eq!(first_log.get(&first_log.starts), 2);
    assert_eq!(first_log.get(&first_log.stops), 2);
    assert_eq!(sink.len(), 2);
}

#[test]
fn restart_delay_follows_the_injected_clock_and_stop_during_delay_reports_once() {
    let (clock, rt) = manual_runtime();
    let mut health = rt.health_subscribe();
    let restart = RestartPolicy::default()
        .with_max_restarts(5)
        .with_restart_delay(Duration::from_secs(30));
    let stage = ScriptedStage::new("p").then(Step::Panic);
    let log = stage.log.clone();
    let h = rt
        .add_feed(
            feed(None)
                .restart(restart)
                .stage(stage)
                .output_sink(NullSink)
                .build()
                .unwrap(),
        )
        .unwrap();
    let ev = wait_for_event(&mut health, |e| {
        matches!(e, HealthEvent::FeedRestarting { .. })
    });
    assert!(matches!(
        ev,
        HealthEvent::FeedRestarting {
            restart_count: 1,
            delay_ms: 30_000,
            ..
        }
    ));
    // Time does not move: the second session cannot start.
    clock.advance(Duration::from_secs(29));
    assert_eq!(log.get(&log.starts), 1);
    clock.advance(Duration::from_secs(1));
    common::wait_until("second session started", || log.get(&log.starts) == 2);
    // Now panic again (script exhausted => Ok), so remove the feed while it runs.
    rt.remove_feed(h.id()).unwrap();
    let events = collect_events_until(&mut health, |e| {
        matches!(e, HealthEvent::FeedStopped { .. })
    });
    assert_eq!(stopped(&events), vec![StopReason::UserRequested]);
}

#[test]
fn removing_a_feed_during_restart_delay_emits_feed_stopped() {
    let (_clock, rt) = manual_runtime();
    let mut health = rt.health_subscribe();
    let restart = RestartPolicy::default().with_restart_delay(Duration::from_secs(3600));
    let h = rt
        .add_feed(
            feed(None)
                .restart(restart)
                .stage(ScriptedStage::new("p").then(Step::Panic))
                .output_sink(NullSink)
                .build()
                .unwrap(),
        )
        .unwrap();
    wait_for_event(&mut health, |e| {
        matches!(e, HealthEvent::FeedRestarting { .. })
    });
    rt.remove_feed(h.id()).unwrap();
    let ev = wait_for_event(&mut health, |e| {
        matches!(e, HealthEvent::FeedStopped { .. })
    });
    assert!(matches!(
        ev,
        HealthEvent::FeedStopped {
            reason: StopReason::UserRequested,
            ..
        }
    ));
}

#[test]
fn sampled_frame_inclusion_attaches_every_nth_frame() {
    let rt = runtime();
    let sink = CollectingSink::new();
    rt.add_feed(
        feed(Some(9))
            .stage(ScriptedStage::new("s"))
            .frame_inclusion(FrameInclusion::sampled(3))
            .output_sink(sink.clone())
            .lossless()
            .build()
            .unwrap(),
    )
    .unwrap();
    let out = sink.wait_for(9);
    let included: Vec<u64> = out
        .iter()
        .filter(|o| o.frame.is_some())
        .map(|o| o.frame_seq)
        .collect();
    assert_eq!(included, vec![2, 5, 8]);
    assert!(out
        .iter()
        .all(|o| o.provenance.frame_included == o.frame.is_some()));
}

#[test]
fn frame_rate_cap_samples_before_the_queue() {
    let rt = runtime();
    let sink = CollectingSink::new();
    // Unpaced synthetic frames are stamped at 30 fps media time; cap to 10 fps.
    let h = rt
        .add_feed(
            feed(Some(30))
                .max_fps(10.0)
                .stage(ScriptedStage::new("s"))
                .output_sink(sink.clone())
                .lossless()
                .build()
                .unwrap(),
        )
        .unwrap();
    common::wait_until("feed finished", || !h.is_alive());
    assert_eq!(sink.len(), 10);
    let m = h.metrics();
    assert_eq!(m.frames_sampled_out, 20);
    assert_eq!(m.frames_dropped(), 0, "sampling is not dropping");
}
