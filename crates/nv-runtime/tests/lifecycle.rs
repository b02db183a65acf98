//! Registry, ids, admission checks, pause/resume, stop events.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use common::{feed, runtime};
use nv_core::error::{MediaError, NvError, RuntimeError};
use nv_core::source::{CustomPipelinePolicy, RtspSecurityPolicy, RtspTransport};
use nv_runtime::{FeedId, HealthEvent, NullSink, Runtime, SourceSpec, StopReason};
use nv_test_util::{collect_events_until, wait_for_event, CollectingSink, NoOpStage};

#[test]
fn feed_ids_start_at_one_and_are_never_reused() {
    let rt = runtime();
    let a = rt
        .add_feed(
            feed(None)
                .stage(NoOpStage("s"))
                .output_sink(NullSink)
                .build()
                .unwrap(),
        )
        .unwrap();
    let b = rt
        .add_feed(
            feed(None)
                .stage(NoOpStage("s"))
                .output_sink(NullSink)
                .build()
                .unwrap(),
        )
        .unwrap();
    assert_eq!((a.id(), b.id()), (FeedId::new(1), FeedId::new(2)));
    rt.remove_feed(a.id()).unwrap();
    let c = rt
        .add_feed(
            feed(None)
                .stage(NoOpStage("s"))
                .output_sink(NullSink)
                .build()
                .unwrap(),
        )
        .unwrap();
    assert_eq!(c.id(), FeedId::new(3));
    assert!(matches!(
        rt.remove_feed(a.id()),
        Err(RuntimeError::FeedNotFound { .. })
    ));
}

#[test]
fn add_feed_refuses_policy_violations_and_limits() {
    let rt = Runtime::builder().max_feeds(1).build().unwrap();
    let custom = feed(None).source(SourceSpec::Custom {
        pipeline_fragment: "videotestsrc".into(),
    });
    let err = rt
        .add_feed(
            custom
                .stage(NoOpStage("s"))
                .output_sink(NullSink)
                .build()
                .unwrap(),
        )
        .unwrap_err();
    assert!(matches!(
        err,
        NvError::Media(MediaError::CustomPipelineRejected)
    ));

    let insecure = SourceSpec::Rtsp {
        url: "rtsp://user:secret@127.0.0.1/x".into(),
        transport: RtspTransport::Tcp,
        security: RtspSecurityPolicy::RequireTls,
    };
    let err = rt
        .add_feed(
            feed(None)
                .source(insecure)
                .stage(NoOpStage("s"))
                .output_sink(NullSink)
                .build()
                .unwrap(),
        )
        .unwrap_err();
    assert!(matches!(
        err,
        NvError::Media(MediaError::InsecureRtspRejected { .. })
    ));
    assert!(
        !err.to_string().contains("secret"),
        "credentials leaked: {err}"
    );

    // No media factory registered: a typed error, not a panic.
    let rtsp = feed(None).source(SourceSpec::rtsp("rtsp://127.0.0.1/x"));
    let err = rt
        .add_feed(
            rtsp.stage(NoOpStage("s"))
                .output_sink(NullSink)
                .build()
                .unwrap(),
        )
        .unwrap_err();
    assert!(matches!(
        err,
        NvError::Media(MediaError::NoFactory { kind: "rtsp" })
    ));

    rt.add_feed(
        feed(None)
            .stage(NoOpStage("s"))
            .output_sink(NullSink)
            .build()
            .unwrap(),
    )
    .unwrap();
    let err = rt
        .add_feed(
            feed(None)
                .stage(NoOpStage("s"))
                .output_sink(NullSink)
                .build()
                .unwrap(),
        )
        .unwrap_err();
    assert!(matches!(
        err,
        NvError::Runtime(RuntimeError::FeedLimitExceeded { max: 1 })
    ));

    let trusted = Runtime::builder()
        .custom_pipeline_policy(CustomPipelinePolicy::AllowTrusted)
        .build()
        .unwrap();
    let custom = feed(None).source(SourceSpec::Custom {
        pipeline_fragment: "videotestsrc".into(),
    });
    let err = trusted
        .add_feed(
            custom
                .stage(NoOpStage("s"))
                .output_sink(NullSink)
                .build()
                .unwrap(),
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            NvError::Media(MediaError::NoFactory { kind: "custom" })
        ),
        "{err}"
    );
}

#[test]
fn add_after_shutdown_is_refused() {
    let rt = runtime();
    let handle = rt.handle();
    rt.shutdown();
    let err = handle
        .add_feed(
            feed(None)
                .stage(NoOpStage("s"))
                .output_sink(NullSink)
                .build()
                .unwrap(),
        )
        .unwrap_err();
    assert!(matches!(
        err,
        NvError::Runtime(RuntimeError::ShutdownInProgress)
    ));
}

#[test]
fn finished_feed_stays_registered_until_removed() {
    let rt = runtime();
    let mut health = rt.health_subscribe();
    let sink = CollectingSink::new();
    let h = rt
        .add_feed(
            feed(Some(5))
                .stage(NoOpStage("s"))
                .output_sink(sink.clone())
                .lossless()
                .build()
                .unwrap(),
        )
        .unwrap();
    let events = collect_events_until(&mut health, |e| {
        matches!(e, HealthEvent::FeedStopped { .. })
    });
    assert!(matches!(
        events.last(),
        Some(HealthEvent::FeedStopped {
            reason: StopReason::EndOfStream,
            ..
        })
    ));
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, HealthEvent::SourceEos { .. }))
            .count(),
        1
    );
    assert_eq!(sink.len(), 5);
    // Alive turns false right after FeedStopped; the feed still counts toward the limit.
    common::wait_until("worker finished", || !h.is_alive());
    assert_eq!(rt.feed_count(), 1);
    assert!(!rt.diagnostics().feeds[0].alive);
    assert_eq!(h.stop_reason(), Some(StopReason::EndOfStream));
    assert!(matches!(
        h.pause(),
        Err(RuntimeError::FeedNotRunning { .. })
    ));
    rt.remove_feed(h.id()).unwrap();
    assert_eq!(rt.feed_count(), 0);
    rt.shutdown();
    assert!(
        matches!(health.try_recv(), Ok(HealthEvent::FeedRemoved { feed_id }) if feed_id == h.id()),
        "removal is announced"
    );
    assert!(
        health.try_recv().is_err(),
        "no second FeedStopped after remove/shutdown"
    );
}

#[test]
fn pause_resume_and_shutdown_wakes_paused_feed() {
    let rt = runtime();
    let mut health = rt.health_subscribe();
    let h = rt
        .add_feed(
            feed(None)
                .stage(NoOpStage("s"))
                .output_sink(NullSink)
                .build()
                .unwrap(),
        )
        .unwrap();
    h.pause().unwrap();
    assert!(matches!(h.pause(), Err(RuntimeError::AlreadyPaused { .. })));
    assert!(h.is_paused());
    h.resume().unwrap();
    assert!(matches!(h.resume(), Err(RuntimeError::NotPaused { .. })));
    h.pause().unwrap();
    let processed_when_paused = h.metrics().frames_processed;
    rt.shutdown();
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
    // At most the frame in flight when the pause landed was processed afterwards.
    assert!(h.metrics().frames_processed <= processed_when_paused + 1);
}

#[test]
fn shutdown_stops_every_feed_exactly_once() {
    let rt = runtime();
    let mut health = rt.health_subscribe();
    let handles: Vec<_> = (0..8)
        .map(|_| {
            rt.add_feed(
                feed(None)
                    .stage(NoOpStage("s"))
                    .output_sink(NullSink)
                    .build()
                    .unwrap(),
            )
            .unwrap()
        })
        .collect();
    rt.shutdown();
    let mut stopped = Vec::new();
    while let Ok(e) = health.recv_timeout(nv_test_util::TEST_TIMEOUT) {
        if let HealthEvent::FeedStopped { feed_id, reason } = e {
            assert_eq!(reason, StopReason::UserRequested);
            stopped.push(feed_id);
        }
    }
    stopped.sort();
    assert_eq!(stopped, handles.iter().map(|h| h.id()).collect::<Vec<_>>());
    assert!(handles.iter().all(|h| !h.is_alive()));
}
