//! Threads of a process running 200 feeds on the pool, counted from `/proc` (its own test
//! binary, so no other test's threads are counted).
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use nv_core::source::{PixelFormat, SyntheticSpec};
use nv_runtime::{CameraMode, FeedConfig, Runtime, Scheduler, SourceSpec};
use nv_test_util::{wait_until, CollectingSink, NoOpStage};

fn threads_named(prefix: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter(|t| {
            let comm = t.as_ref().unwrap().path().join("comm");
            std::fs::read_to_string(comm).is_ok_and(|n| n.starts_with(prefix))
        })
        .count()
}

#[test]
fn two_hundred_feeds_run_on_the_pool_threads_only() {
    let rt = Runtime::builder()
        .max_feeds(200)
        .scheduler(Scheduler::Pool { threads: 2 })
        .build()
        .unwrap();
    let feeds: Vec<_> = (0..200)
        .map(|_| {
            // Paced: the synthetic source then shares one timer thread across feeds.
            let spec = SyntheticSpec {
                width: 8,
                height: 8,
                format: PixelFormat::Gray8,
                fps: Some(50.0),
                frame_count: None,
                moving_objects: 1,
                seed: 7,
            };
            let config = FeedConfig::builder()
                .source(SourceSpec::synthetic(spec))
                .camera_mode(CameraMode::Fixed)
                .stage(NoOpStage("s"))
                // May block: delivered by a pool task, not a thread of its own.
                .output_sink(CollectingSink::new())
                .build()
                .unwrap();
            rt.add_feed(config).unwrap()
        })
        .collect();
    wait_until("every feed produced", || {
        feeds.iter().all(|h| h.metrics().frames_processed >= 2)
    });
    assert_eq!(threads_named("nv-feed-"), 0);
    assert_eq!(threads_named("nv-sink-"), 0);
    assert_eq!(threads_named("nv-pool-"), 3, "2 pool threads and the timer");
    assert_eq!(rt.diagnostics().pool_threads, 2);
    let total = std::fs::read_dir("/proc/self/task").unwrap().count();
    let cores = std::thread::available_parallelism().unwrap().get();
    assert!(total <= 4 * cores + 16, "{total} threads");
}
