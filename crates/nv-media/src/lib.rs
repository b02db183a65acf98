//! GStreamer media ingest for NextVision: the only crate that links GStreamer.
//!
//! [`GstSourceFactory`] implements the source contract of `nv-io` (`SourceFactory`, which
//! the runtime drives) for RTSP, files, HTTP(S)/HLS URIs, V4L2 devices, `videotestsrc`
//! patterns and trusted custom fragments. Each source runs
//! `source → decodebin → [videoconvert] → appsink`; decoded buffers become frames without
//! copying (the mapped buffer lives as long as the frame). Conversion happens
//! only when the feed asks for a format the decoder does not produce.
//!
//! Threads: GStreamer's streaming threads push frames into the feed's queue; the feed
//! worker drives the reconnect state machine through `Source::tick`; pipelines are torn
//! down on short-lived `nv-gst-teardown-{feed}` threads.

mod bridge;
mod decode;
mod factory;
mod pipeline;
mod session;
mod source;
mod url;

use std::time::Duration;

pub use factory::{hardware_decoder_names, init, GstSourceFactory};

/// Tunables of the media layer (the per-feed ones live in the feed config).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct MediaSettings {
    /// RTSP jitter-buffer latency.
    pub rtsp_latency: Duration,
    /// A forward PTS jump larger than this is reported as a discontinuity.
    pub pts_jump_threshold: Duration,
    /// Consecutive frames the bridge may fail to map before the session is failed.
    pub bridge_failure_limit: u32,
}

impl Default for MediaSettings {
    fn default() -> Self {
        Self {
            rtsp_latency: Duration::from_millis(200),
            pts_jump_threshold: Duration::from_secs(5),
            bridge_failure_limit: 30,
        }
    }
}

impl MediaSettings {
    pub const fn with_rtsp_latency(mut self, d: Duration) -> Self {
        self.rtsp_latency = d;
        self
    }
    pub const fn with_pts_jump_threshold(mut self, d: Duration) -> Self {
        self.pts_jump_threshold = d;
        self
    }
    pub const fn with_bridge_failure_limit(mut self, n: u32) -> Self {
        self.bridge_failure_limit = n;
        self
    }
}
