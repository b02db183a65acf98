//! Shared setup for the runtime integration tests.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]
#![allow(
    dead_code,
    unused_imports,
    reason = "each test binary uses a different subset"
)]

use std::time::Duration;

use nv_core::clock::ManualClock;
use nv_core::policy::RestartPolicy;
use nv_runtime::{
    BackpressurePolicy, CameraMode, FeedConfig, FeedConfigBuilder, Runtime, SourceSpec,
};
use nv_test_util::tiny_synthetic;

pub fn runtime() -> Runtime {
    Runtime::builder().health_capacity(4096).build().unwrap()
}

/// A runtime on a manual clock: time moves only when the test advances it.
pub fn manual_runtime() -> (std::sync::Arc<ManualClock>, Runtime) {
    let clock = ManualClock::new();
    let rt = Runtime::builder()
        .clock(clock.clone())
        .health_capacity(4096)
        .build()
        .unwrap();
    (clock, rt)
}

/// A feed of `frames` tiny synthetic frames (None = endless), lossless, no restarts.
pub fn feed(frames: Option<u64>) -> FeedConfigBuilder {
    FeedConfig::builder()
        .source(SourceSpec::synthetic(tiny_synthetic(frames)))
        .camera_mode(CameraMode::Fixed)
        .backpressure(BackpressurePolicy::block(4))
        .restart(RestartPolicy::never())
}

pub use nv_test_util::wait_until;

pub const SHORT: Duration = Duration::from_millis(200);
