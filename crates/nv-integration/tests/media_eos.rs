//! End of file is never missed: many consecutive runs of a short clip, each ending with
//! exactly one SourceEos and one FeedStopped(EndOfStream) after every frame.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use common::{clip, count, events_until_stopped, feed, runtime, ClipSpec, Container, Recorder};
use nv_runtime::{HealthEvent, SourceSpec, StopReason};

const RUNS: usize = 200;

#[test]
fn two_hundred_short_runs_each_end_with_exactly_one_eos() {
    let path = clip(&ClipSpec::new(10, 64, 64, Container::Mp4));
    let rt = runtime();
    let mut health = rt.health_subscribe();
    for run in 0..RUNS {
        let rec = Recorder::default();
        let h = rt
            .add_feed(feed(SourceSpec::file(&path), &rec).build().unwrap())
            .unwrap();
        let events = events_until_stopped(&mut health, h.id());
        assert_eq!(count(&events, "source_eos"), 1, "run {run}: {events:?}");
        assert_eq!(count(&events, "feed_stopped"), 1, "run {run}: {events:?}");
        assert!(
            matches!(
                events.last(),
                Some(HealthEvent::FeedStopped {
                    reason: StopReason::EndOfStream,
                    ..
                })
            ),
            "run {run}: {events:?}"
        );
        let seen = rec.seen();
        assert_eq!(seen.len(), 10, "run {run}");
        common::assert_contiguous(&seen, 0);
        rt.remove_feed(h.id()).unwrap();
    }
}
