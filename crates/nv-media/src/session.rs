//! One GStreamer pipeline instance: its streaming-thread callbacks, its bus, its teardown.
//!
//! Everything the streaming threads learn (first frame, errors, end of stream) lands in
//! [`SessionShared`] and wakes the feed worker; the source's state machine reads it on the
//! worker thread in `tick`. The one exception is the end of a finite stream: the appsink's
//! EOS callback runs on the streaming thread after the last sample was pushed, so it ends
//! the feed right there and nothing can overtake the last frame.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use parking_lot::Mutex;

use nv_core::error::MediaError;
use nv_core::health::HealthEvent;
use nv_core::security::sanitize_error_string;
use nv_core::source::{DecodeOutcome, DecodePreference};
use nv_core::time::MonotonicTs;
use nv_io::source::{DecodeStatus, FrameSink, PushOutcome};

use crate::bridge::{Bridge, TsNormalizer};
use crate::decode::DecoderInfo;

/// Coarse class of a pipeline error, from GStreamer's error domain and code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ErrorClass {
    /// Network/device/file access: retrying may help.
    Resource,
    /// No decoder or plugin for the stream: retrying will not help.
    Unsupported,
    /// The input's type could not be recognised: nothing playable in it.
    NoStream,
    /// The server refused the credentials (401/403).
    Auth,
    /// The server has nothing at that path (404).
    NotFound,
    /// Demux/decode trouble.
    Stream,
}

/// A pipeline error, already sanitised.
#[derive(Clone, Debug)]
pub(crate) struct SessionError {
    pub class: ErrorClass,
    pub message: String,
}

#[derive(Debug, Default)]
pub(crate) struct SessionEvents {
    pub error: Option<SessionError>,
    pub eos: bool,
    pub clock_lost: bool,
}

/// What to announce once frames flow.
#[derive(Clone, Debug)]
pub(crate) struct Announce {
    pub preference: DecodePreference,
    /// Redacted URL when the session runs plain RTSP.
    pub insecure_url: Option<String>,
    /// Shared by every session of one source, so the warning is logged once.
    pub insecure_warned: Arc<AtomicBool>,
}

/// State shared between a session's streaming threads and the feed worker.
pub(crate) struct SessionShared {
    pub sink: FrameSink,
    pub ts: Arc<Mutex<TsNormalizer>>,
    /// End of stream ends the feed (non-looping file, finite source).
    pub eos_ends_feed: bool,
    pub announce: Announce,
    pub bridge_failure_limit: u32,
    pub retired: AtomicBool,
    pub first_frame: AtomicBool,
    pub last_frame_at: AtomicU64,
    /// A push is in progress (possibly blocked by backpressure): not a stall.
    pub pushing: AtomicBool,
    pub events: Mutex<SessionEvents>,
    pub decoder: Mutex<Option<DecoderInfo>>,
    pub fallback: Arc<Mutex<Option<String>>>,
    pub decode_status: Mutex<Option<DecodeStatus>>,
}

impl SessionShared {
    pub fn new(
        sink: FrameSink,
        ts: Arc<Mutex<TsNormalizer>>,
        eos_ends_feed: bool,
        announce: Announce,
        bridge_failure_limit: u32,
    ) -> Arc<Self> {
        let now = sink.clock().now().as_nanos();
        Arc::new(Self {
            sink,
            ts,
            eos_ends_feed,
            announce,
            bridge_failure_limit,
            retired: AtomicBool::new(false),
            first_frame: AtomicBool::new(false),
            last_frame_at: AtomicU64::new(now),
            pushing: AtomicBool::new(false),
            events: Mutex::new(SessionEvents::default()),
            decoder: Mutex::new(None),
            fallback: Arc::new(Mutex::new(None)),
            decode_status: Mutex::new(None),
        })
    }

    fn is_retired(&self) -> bool {
        self.retired.load(Ordering::Acquire)
    }

    /// Records the first error of the session and wakes the worker.
    pub fn record_error(&self, class: ErrorClass, raw: &str) {
        let message = sanitize_error_string(raw);
        {
            let mut ev = self.events.lock();
            if ev.error.is_none() {
                ev.error = Some(SessionError { class, message });
            }
        }
        self.sink.wake();
    }

    pub fn last_frame_at(&self) -> MonotonicTs {
        MonotonicTs::from_nanos(self.last_frame_at.load(Ordering::Acquire))
    }

    fn touch(&self) {
        self.last_frame_at
            .store(self.sink.clock().now().as_nanos(), Ordering::Release);
    }

    /// Health events and decode status for the session's first frame.
    fn announce_first_frame(&self) {
        let feed_id = self.sink.feed_id();
        let decoder = self.decoder.lock().clone();
        let fallback = self.fallback.lock().clone();
        let (outcome, detail) = match &decoder {
            Some(d) => (d.outcome(), d.name.clone()),
            None => (DecodeOutcome::Unknown, "raw video (no decoder)".to_owned()),
        };
        *self.decode_status.lock() = Some(DecodeStatus {
            outcome,
            detail: detail.clone(),
        });
        self.sink.health(HealthEvent::SourceConnected { feed_id });
        self.sink.health(HealthEvent::DecodeDecision {
            feed_id,
            outcome,
            preference: self.announce.preference,
            fallback_active: fallback.is_some(),
            fallback_reason: fallback,
            detail,
        });
        if let Some(url) = &self.announce.insecure_url {
            self.sink.health(HealthEvent::InsecureRtspSource {
                feed_id,
                redacted_url: url.clone(),
            });
            // Once per source, not once per reconnect.
            if !self.announce.insecure_warned.swap(true, Ordering::Relaxed) {
                tracing::warn!(feed_id = %feed_id, url = %url, "RTSP source connected without TLS");
            }
        }
    }
}

/// Streaming-thread state of one session's appsink.
struct SampleHandler {
    shared: Arc<SessionShared>,
    bridge: Bridge,
    consecutive_failures: u32,
    total_failures: u64,
}

impl SampleHandler {
    fn on_sample(
        &mut self,
        appsink: &gst_app::AppSink,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let sample = appsink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
        let shared = &self.shared;
        if shared.is_retired() || shared.sink.is_closed() {
            return Err(gst::FlowError::Flushing);
        }
        shared.touch();
        let mapped = match self.bridge.map(&sample) {
            Ok(m) => m,
            Err(e) => {
                self.on_bridge_failure(&e.0);
                return Ok(gst::FlowSuccess::Ok);
            }
        };
        self.consecutive_failures = 0;
        let (ts, disc) = shared.ts.lock().map(mapped.pts, mapped.nominal_interval);
        let sink = &shared.sink;
        if let Some(d) = disc {
            sink.health(HealthEvent::PtsDiscontinuity {
                feed_id: sink.feed_id(),
                previous_pts_nanos: d.previous_pts,
                new_pts_nanos: d.new_pts,
            });
        }
        let frame = match mapped.into_frame(
            sink.feed_id(),
            sink.next_seq(),
            MonotonicTs::from_nanos(ts),
            sink.clock().wall_now(),
        ) {
            Ok(f) => f,
            Err(e) => {
                self.on_bridge_failure(&e.0);
                return Ok(gst::FlowSuccess::Ok);
            }
        };
        let first = !shared.first_frame.load(Ordering::Acquire);
        if first {
            shared.announce_first_frame();
        }
        shared.pushing.store(true, Ordering::Release);
        let outcome = sink.push(frame);
        shared.pushing.store(false, Ordering::Release);
        shared.touch();
        if first {
            shared.first_frame.store(true, Ordering::Release);
            sink.wake();
        }
        match outcome {
            PushOutcome::Closed => Err(gst::FlowError::Flushing),
            _ => Ok(gst::FlowSuccess::Ok),
        }
    }

    fn on_bridge_failure(&mut self, detail: &str) {
        self.consecutive_failures += 1;
        self.total_failures += 1;
        let n = self.total_failures;
        if n <= 3 || n % 100 == 0 {
            tracing::warn!(
                feed_id = %self.shared.sink.feed_id(),
                failures = n,
                detail = %sanitize_error_string(detail),
                "dropping a frame the bridge could not map"
            );
        }
        if self.consecutive_failures == self.shared.bridge_failure_limit {
            self.shared.record_error(
                ErrorClass::Stream,
                &format!(
                    "{} consecutive frames could not be mapped: {detail}",
                    self.consecutive_failures
                ),
            );
        }
    }
}

fn on_eos(shared: &SessionShared) {
    if shared.is_retired() {
        return;
    }
    if shared.eos_ends_feed {
        // Runs after the last sample's push returned (same streaming thread), so the
        // queue is closed behind the last frame.
        let error = shared.events.lock().error.clone();
        match error {
            Some(e) => shared.sink.fail(match e.class {
                ErrorClass::NoStream => MediaError::NoPlayableStream { detail: e.message },
                ErrorClass::Unsupported => MediaError::Unsupported { detail: e.message },
                _ => MediaError::DecodeFailed { detail: e.message },
            }),
            None => shared.sink.end_of_stream(),
        }
    } else {
        shared.events.lock().eos = true;
        shared.sink.wake();
    }
}

/// Installs the appsink callbacks.
pub(crate) fn attach_appsink(appsink: &gst_app::AppSink, shared: &Arc<SessionShared>) {
    let mut handler = SampleHandler {
        shared: Arc::clone(shared),
        bridge: Bridge::default(),
        consecutive_failures: 0,
        total_failures: 0,
    };
    let eos_shared = Arc::clone(shared);
    appsink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |s| handler.on_sample(s))
            .eos(move |_| on_eos(&eos_shared))
            .build(),
    );
}

fn classify(err: &gst::glib::Error, debug: &str) -> ErrorClass {
    if let Some(e) = err.kind::<gst::CoreError>() {
        return match e {
            gst::CoreError::MissingPlugin => ErrorClass::Unsupported,
            _ => ErrorClass::Stream,
        };
    }
    if let Some(e) = err.kind::<gst::StreamError>() {
        return match e {
            gst::StreamError::CodecNotFound => ErrorClass::Unsupported,
            gst::StreamError::TypeNotFound | gst::StreamError::WrongType => ErrorClass::NoStream,
            _ => ErrorClass::Stream,
        };
    }
    if let Some(e) = err.kind::<gst::ResourceError>() {
        return match e {
            gst::ResourceError::NotAuthorized => ErrorClass::Auth,
            gst::ResourceError::NotFound => ErrorClass::NotFound,
            // rtspsrc has no error code for 403: it reports "Unhandled error" with the
            // status in the debug text, the only place the distinction exists.
            gst::ResourceError::Read if debug.contains("error response: 403") => ErrorClass::Auth,
            _ => ErrorClass::Resource,
        };
    }
    ErrorClass::Stream
}

/// Handles bus messages synchronously on the posting thread and drops them, so the bus
/// never accumulates messages nobody reads.
pub(crate) fn attach_bus(pipeline: &gst::Pipeline, shared: &Arc<SessionShared>) {
    let Some(bus) = pipeline.bus() else {
        return;
    };
    let shared = Arc::clone(shared);
    bus.set_sync_handler(move |_, msg| {
        if shared.is_retired() {
            return gst::BusSyncReply::Drop;
        }
        match msg.view() {
            gst::MessageView::Error(e) => {
                let debug = e.debug().map(|d| d.to_string()).unwrap_or_default();
                let raw = format!("{} ({debug})", e.error());
                tracing::debug!(feed_id = %shared.sink.feed_id(), error = %sanitize_error_string(&raw), "pipeline error");
                shared.record_error(classify(&e.error(), &debug), &raw);
            }
            gst::MessageView::Warning(w) => {
                let raw = format!(
                    "{} ({})",
                    w.error(),
                    w.debug().map(|d| d.to_string()).unwrap_or_default()
                );
                tracing::warn!(feed_id = %shared.sink.feed_id(), warning = %sanitize_error_string(&raw), "pipeline warning");
            }
            gst::MessageView::ClockLost(_) => {
                shared.events.lock().clock_lost = true;
                shared.sink.wake();
            }
            _ => {}
        }
        gst::BusSyncReply::Drop
    });
}

/// Stops a pipeline on a helper thread: `set_state(Null)` can block for a long time on a
/// dead network connection, and the feed worker must not.
pub(crate) fn teardown(pipeline: gst::Pipeline, shared: &SessionShared) {
    shared.retired.store(true, Ordering::Release);
    let name = format!("nv-gst-teardown-{}", shared.sink.feed_id().as_u64());
    let slot = Arc::new(Mutex::new(Some(pipeline)));
    let thread_slot = Arc::clone(&slot);
    let spawned = std::thread::Builder::new()
        .name(name)
        .stack_size(256 * 1024)
        .spawn(move || {
            if let Some(p) = thread_slot.lock().take() {
                stop_now(&p);
            }
        });
    if spawned.is_err() {
        tracing::warn!("could not spawn a teardown thread; stopping the pipeline inline");
        if let Some(p) = slot.lock().take() {
            stop_now(&p);
        }
    }
}

fn stop_now(p: &gst::Pipeline) {
    if p.set_state(gst::State::Null).is_err() {
        tracing::debug!("pipeline did not stop cleanly");
    }
}
