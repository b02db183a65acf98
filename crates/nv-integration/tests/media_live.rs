//! Live sources without a network: a paced test pattern.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use std::time::{Duration, Instant};

use common::{feed, runtime, wait_frames, Recorder};
use nv_runtime::{HealthEvent, SourceSpec};
use nv_test_util::wait_for_event;

#[test]
fn paused_live_feed_is_not_reported_stalled() {
    let rt = runtime();
    let mut health = rt.health_subscribe();
    let rec = Recorder::default();
    let spec = SourceSpec::TestPattern {
        pattern: "ball".into(),
        width: 32,
        height: 32,
        fps: 30,
        frame_count: None,
    };
    let stall = Duration::from_millis(400);
    let h = rt
        .add_feed(feed(spec, &rec).stall_timeout(stall).build().unwrap())
        .unwrap();
    wait_for_event(&mut health, |e| e.name() == "source_connected");
    wait_frames(&rec, 5);
    h.pause().unwrap();
    // Paused for three stall timeouts: the health stream must stay quiet about it.
    let quiet_until = Instant::now() + stall * 3;
    while let Some(left) = quiet_until.checked_duration_since(Instant::now()) {
        if let Ok(e) = health.recv_timeout(left) {
            assert!(
                !matches!(
                    e,
                    HealthEvent::SourceStalled { .. } | HealthEvent::SourceDisconnected { .. }
                ),
                "{e:?}"
            );
        }
    }
    let before = rec.seen().len();
    h.resume().unwrap();
    wait_frames(&rec, before + 10);
    rt.remove_feed(h.id()).unwrap();
    let events = common::events_until_stopped(&mut health, h.id());
    assert_eq!(common::count(&events, "source_stalled"), 0, "{events:?}");
    assert_eq!(
        common::count(&events, "source_disconnected"),
        0,
        "{events:?}"
    );
    let seen = rec.seen();
    common::assert_contiguous(&seen, 0);
}
