//! Health records of every event validate against the shipped JSON Schema and carry no
//! Rust `Debug` text.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::sync::Arc;

use nv_core::error::{FailureKind, MediaError, StageError};
use nv_core::health::{DropReason, HealthEvent, StopReason};
use nv_core::id::{FeedId, StageId};
use nv_core::source::{DecodeOutcome, DecodePreference};
use nv_core::time::WallTs;
use nv_sinks::{health_record, HEALTH_SCHEMA_V1};
use serde_json::Value;

fn every_event() -> Vec<HealthEvent> {
    let feed_id = FeedId::new(7);
    let stage_id = StageId::new("detector");
    let refused = MediaError::ConnectionFailed {
        redacted_url: "rtsp://***@10.0.0.5/live".into(),
        detail: "Could not connect: Connection refused".into(),
    };
    let denied = MediaError::GaveUp {
        attempts: 3,
        last: Arc::new(MediaError::Unauthorized {
            redacted_url: "rtsp://***@10.0.0.5/live".into(),
            detail: "Unauthorized".into(),
        }),
    };
    let io = MediaError::Io {
        context: "opening /data/x.mp4".into(),
        source: Arc::new(std::io::Error::from(std::io::ErrorKind::PermissionDenied)),
    };
    let stage_err = StageError::other(stage_id, std::io::Error::other("disk full"));
    vec![
        HealthEvent::SourceConnected { feed_id },
        HealthEvent::SourceDisconnected {
            feed_id,
            reason: refused.clone(),
        },
        HealthEvent::SourceDisconnected {
            feed_id,
            reason: io,
        },
        HealthEvent::SourceReconnecting {
            feed_id,
            attempt: 2,
            delay_ms: 500,
        },
        HealthEvent::SourceStalled {
            feed_id,
            silent_for_ms: 10_000,
        },
        HealthEvent::SourceEos { feed_id },
        HealthEvent::InsecureRtspSource {
            feed_id,
            redacted_url: "rtsp://***@cam/x".into(),
        },
        HealthEvent::DecodeDecision {
            feed_id,
            outcome: DecodeOutcome::Software,
            preference: DecodePreference::Auto,
            fallback_active: false,
            fallback_reason: None,
            detail: "avdec_h264".into(),
        },
        HealthEvent::PtsDiscontinuity {
            feed_id,
            previous_pts_nanos: 1,
            new_pts_nanos: 9,
        },
        HealthEvent::StageError {
            feed_id,
            stage_id,
            error: stage_err.clone(),
            count: 4,
        },
        HealthEvent::StagePanic { feed_id, stage_id },
        HealthEvent::StageStalled {
            feed_id,
            stage_id,
            running_for_ms: 12_000,
        },
        HealthEvent::FeedRestarting {
            feed_id,
            restart_count: 1,
            delay_ms: 2_000,
        },
        HealthEvent::FeedStopped {
            feed_id,
            reason: StopReason::SourceFailed {
                kind: FailureKind::Unauthorized,
                cause: denied.to_string(),
            },
        },
        HealthEvent::FeedStopped {
            feed_id,
            reason: StopReason::RestartLimitExceeded {
                restart_count: 5,
                cause: "source failed: end of stream".into(),
            },
        },
        HealthEvent::FeedStopped {
            feed_id,
            reason: StopReason::EndOfStream,
        },
        HealthEvent::BackpressureDrop {
            feed_id,
            reason: DropReason::QueueFullEvictedOldest,
            frames_dropped: 3,
        },
        HealthEvent::FrameLag {
            feed_id,
            frame_age_ms: 900,
            frames_lagged: 2,
        },
        HealthEvent::ViewEpochChanged {
            feed_id,
            epoch: 2,
            reason: "camera moved".into(),
        },
        HealthEvent::ViewDegraded {
            feed_id,
            stability_score: 0.25,
            reason: "shaking".into(),
            frames: 10,
        },
        HealthEvent::ViewCompensationApplied {
            feed_id,
            epoch: 2,
            count: 3,
        },
        HealthEvent::OutputLagged { messages_lost: 5 },
        HealthEvent::SinkPanic { feed_id },
        HealthEvent::SinkTimeout { feed_id },
        HealthEvent::SinkDeliveryLoss {
            feed_id,
            sink: "hook".into(),
            failed: 1,
            dropped: 2,
        },
        HealthEvent::SinkStalled {
            feed_id,
            blocked_for_ms: 3_000,
        },
        HealthEvent::SinkBackpressure {
            feed_id,
            outputs_dropped: 4,
        },
        HealthEvent::TrackAdmissionRejected {
            feed_id,
            rejected_count: 1,
        },
        HealthEvent::BatchError {
            processor_id: stage_id,
            batch_size: 8,
            error: stage_err,
            count: 1,
        },
        HealthEvent::BatchSubmissionRejected {
            feed_id,
            processor_id: stage_id,
            dropped_count: 1,
        },
        HealthEvent::BatchTimeout {
            feed_id,
            processor_id: stage_id,
            timed_out_count: 1,
        },
        HealthEvent::BatchInFlightExceeded {
            feed_id,
            processor_id: stage_id,
            rejected_count: 1,
        },
        HealthEvent::ResidencyDowngrade {
            feed_id,
            requested: "device".into(),
            effective: "host".into(),
        },
        HealthEvent::SourceAccessDenied {
            feed_id,
            error: denied,
            retry_in_ms: 300_000,
        },
        HealthEvent::FeedAdded {
            feed_id,
            name: "gate".into(),
        },
        HealthEvent::FeedRemoved { feed_id },
        HealthEvent::FeedPaused { feed_id },
        HealthEvent::FeedResumed { feed_id },
        HealthEvent::FeedConfigChanged {
            feed_id,
            detail: "max_fps 5".into(),
        },
    ]
}

/// Fragments of Rust `Debug` output: struct/enum braces, tuple variants, `Some(`, quotes
/// around field values, `Arc`/`Custom` wrappers.
pub fn debug_patterns(text: &str) -> Vec<&'static str> {
    const PATTERNS: [&str; 9] = [
        " { ", "Some(", "None", "Custom {", "kind: ", "Arc(", ": \\\"", "Error {", "Os {",
    ];
    PATTERNS.into_iter().filter(|p| text.contains(p)).collect()
}

#[test]
fn every_event_is_a_valid_record_without_debug_text() {
    let schema: Value = serde_json::from_str(HEALTH_SCHEMA_V1).unwrap();
    let validator = jsonschema::draft202012::new(&schema).unwrap();
    let events = every_event();
    let mut names = std::collections::BTreeSet::new();
    for (i, e) in events.iter().enumerate() {
        let record = health_record(
            e,
            Some(i as u64),
            WallTs::from_micros(1_700_000_000_000_000),
        );
        let errors: Vec<String> = validator
            .iter_errors(&record)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{}: {errors:#?}\n{record:#}", e.name());
        let text = record.to_string();
        assert!(debug_patterns(&text).is_empty(), "{}: {text}", e.name());
        assert_eq!(record["event"], e.name());
        names.insert(e.name());
    }
    assert_eq!(names.len(), 36, "one case per event kind");
    // Causes are kept: the chain of an I/O error and of a give-up reach the record.
    let io = health_record(&events[2], None, WallTs::UNKNOWN);
    assert_eq!(
        io["data"]["error"]["message"],
        "opening /data/x.mp4: permission denied"
    );
    assert_eq!(io["data"]["error"]["kind"], "connection_failed");
    let denied = health_record(&events[33], None, WallTs::UNKNOWN);
    assert_eq!(denied["data"]["error"]["kind"], "unauthorized");
    assert_eq!(
        denied["data"]["error"]["message"],
        "gave up after 3 reconnect attempts: unauthorized: Unauthorized (rtsp://***@10.0.0.5/live)"
    );
    assert_eq!(denied["severity"], "error");
    // The schema is strict.
    let mut bad = health_record(&events[0], Some(1), WallTs::UNKNOWN);
    bad["surprise"] = Value::Bool(true);
    bad["event"] = Value::String("made_up".into());
    assert_eq!(validator.iter_errors(&bad).count(), 2);
}
