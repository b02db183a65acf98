//! The GStreamer source: a state machine over pipeline sessions, driven by `tick`.
//!
//! Running ─(error / live EOS / startup or stall watchdog)→ Waiting(backoff) ─→ Running …
//! Running ─(finite EOS)→ feed ends (posted by the streaming thread after the last frame).
//! Running ─(permanent error, file error, budget spent)→ Ended (`FrameSink::fail`).
//!
//! Old pipelines are always stopped on a helper thread. The reconnect attempt counter
//! resets only when a session delivered its first frame.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;
use parking_lot::Mutex;

use nv_core::error::{ErrorKind, MediaError};
use nv_core::health::HealthEvent;
use nv_core::security::redact_url;
use nv_core::source::{DecodePreference, SourceSpec};
use nv_core::time::MonotonicTs;
use nv_io::source::{DecodeStatus, FrameSink, Source, SourceContext, SourceStatus, TickOutcome};

use crate::bridge::TsNormalizer;
use crate::decode::{HwDecoders, Selection};
use crate::pipeline::{self, Plan};
use crate::session::{teardown, Announce, ErrorClass, SessionError, SessionShared};
use crate::url::{attempt_url, is_plain, split_credentials};
use crate::MediaSettings;

struct Running {
    pipeline: gst::Pipeline,
    shared: Arc<SessionShared>,
    started_at: MonotonicTs,
    connected: bool,
    tls: bool,
    hardware_first: bool,
}

enum State {
    Idle,
    Running(Box<Running>),
    /// Paused by the feed: a live source's pipeline is torn down (servers handle a
    /// paused RTSP session badly) and reopened on resume.
    Paused,
    Waiting {
        until: MonotonicTs,
    },
    /// The sink was ended (failed or finished); nothing more to do.
    Ended,
    Stopped,
}

/// What a look at the running session found.
enum Poll {
    Healthy(Option<MonotonicTs>),
    Failed { error: MediaError, permanent: bool },
    Looped,
}

pub(crate) struct GstSource {
    ctx: SourceContext,
    settings: MediaSettings,
    hw: Arc<HwDecoders>,
    sink: Option<FrameSink>,
    state: State,
    attempt: u32,
    sessions: u32,
    ts: Option<Arc<Mutex<TsNormalizer>>>,
    use_tls: bool,
    /// Why PreferHardware now uses software (a hardware session failed before frames).
    hw_failed: Option<String>,
    rng: u64,
    decode_status: Option<DecodeStatus>,
    insecure_warned: Arc<AtomicBool>,
}

impl GstSource {
    pub fn new(ctx: SourceContext, settings: MediaSettings, hw: Arc<HwDecoders>) -> Self {
        let seed = ctx.clock.now().as_nanos() ^ ctx.feed_id.as_u64().wrapping_mul(0x9E37_79B9);
        Self {
            ctx,
            settings,
            hw,
            sink: None,
            state: State::Idle,
            attempt: 0,
            sessions: 0,
            ts: None,
            use_tls: true,
            hw_failed: None,
            rng: seed | 1,
            decode_status: None,
            insecure_warned: Arc::default(),
        }
    }

    fn next_random(&mut self) -> f64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng >> 11) as f64 / (1u64 << 53) as f64
    }

    fn is_file(&self) -> bool {
        matches!(self.ctx.spec, SourceSpec::File { .. })
    }

    /// The typed error for a pipeline error; `connected` = frames had flowed.
    fn media_error(&self, e: &SessionError, connected: bool) -> MediaError {
        let detail = e.message.clone();
        let redacted_url = self.ctx.spec.redacted();
        match e.class {
            ErrorClass::Unsupported => MediaError::Unsupported { detail },
            ErrorClass::NoStream => MediaError::NoPlayableStream { detail },
            ErrorClass::Auth => MediaError::Unauthorized {
                redacted_url,
                detail,
            },
            ErrorClass::NotFound if self.is_file() => {
                MediaError::FileNotFound { path: redacted_url }
            }
            ErrorClass::NotFound => MediaError::StreamNotFound {
                redacted_url,
                detail,
            },
            ErrorClass::Resource => MediaError::ConnectionFailed {
                redacted_url,
                detail,
            },
            // A file that fails to demux before its first frame has nothing playable.
            ErrorClass::Stream if self.is_file() && !connected => {
                MediaError::NoPlayableStream { detail }
            }
            ErrorClass::Stream => MediaError::DecodeFailed { detail },
        }
    }

    fn open_session(&mut self, now: MonotonicTs) -> Result<Running, MediaError> {
        let sink = self.sink.clone().ok_or_else(|| MediaError::Unsupported {
            detail: "source used before start".into(),
        })?;
        let jump = self.settings.pts_jump_threshold.as_nanos() as u64;
        let ts = Arc::clone(self.ts.get_or_insert_with(|| {
            Arc::new(Mutex::new(TsNormalizer::new(
                sink.last_ts().as_nanos(),
                jump,
            )))
        }));
        ts.lock().rebase();
        let selection = Selection::for_preference(self.ctx.decode, self.hw_failed.is_some());
        let (rtsp, insecure_url, tls) = match &self.ctx.spec {
            SourceSpec::Rtsp { url, security, .. } => {
                let url = attempt_url(url, *security, self.use_tls);
                let plain = is_plain(&url);
                (
                    Some(split_credentials(&url)),
                    plain.then(|| redact_url(&url)),
                    !plain,
                )
            }
            _ => (None, None, false),
        };
        let shared = SessionShared::new(
            sink,
            ts,
            self.ctx.spec.ends_at_eos(),
            Announce {
                preference: self.ctx.decode,
                insecure_url,
                insecure_warned: Arc::clone(&self.insecure_warned),
            },
            self.settings.bridge_failure_limit,
        );
        if selection == Selection::SoftwareOnly {
            if let Some(reason) = &self.hw_failed {
                *shared.fallback.lock() = Some(reason.clone());
            }
        }
        let plan = Plan {
            feed_id: self.ctx.feed_id,
            session_index: self.sessions,
            spec: &self.ctx.spec,
            output_format: self.ctx.output_format,
            selection,
            hw: Arc::clone(&self.hw),
            rtsp,
            rtsp_latency: self.settings.rtsp_latency,
            rtsp_tcp_timeout: self.ctx.startup_timeout.max(Duration::from_secs(1)),
        };
        let pipeline = pipeline::build(&plan, &shared)?;
        self.sessions += 1;
        if pipeline.set_state(gst::State::Playing).is_err() {
            let err = shared.events.lock().error.take();
            teardown(pipeline, &shared);
            return Err(match err {
                Some(e) => self.media_error(&e, false),
                None => MediaError::ConnectionFailed {
                    redacted_url: self.ctx.spec.redacted(),
                    detail: "pipeline refused to start".into(),
                },
            });
        }
        tracing::debug!(feed_id = %self.ctx.feed_id, source = %self.ctx.spec, session = self.sessions, "media session started");
        Ok(Running {
            pipeline,
            shared,
            started_at: now,
            connected: false,
            tls,
            hardware_first: selection == Selection::HardwareFirst,
        })
    }

    fn poll_running(&mut self, now: MonotonicTs) -> Poll {
        let State::Running(r) = &mut self.state else {
            return Poll::Healthy(None);
        };
        if !r.connected && r.shared.first_frame.load(Ordering::Acquire) {
            r.connected = true;
            self.attempt = 0;
            self.decode_status = r.shared.decode_status.lock().clone();
            if self.ctx.decode == DecodePreference::RequireHardware {
                let decoder = r.shared.decoder.lock().clone();
                if let Some(d) = decoder.filter(|d| !d.hardware) {
                    return Poll::Failed {
                        error: MediaError::Unsupported {
                            detail: format!(
                                "hardware decoding required but {} is software",
                                d.name
                            ),
                        },
                        permanent: true,
                    };
                }
            }
        }
        let (error, eos, clock_lost) = {
            let mut ev = r.shared.events.lock();
            (
                ev.error.take(),
                std::mem::take(&mut ev.eos),
                std::mem::take(&mut ev.clock_lost),
            )
        };
        if clock_lost {
            // A new clock is selected by going through PAUSED.
            let ok = r.pipeline.set_state(gst::State::Paused).is_ok()
                && r.pipeline.set_state(gst::State::Playing).is_ok();
            if !ok {
                tracing::warn!(feed_id = %self.ctx.feed_id, "could not recover from a lost clock");
            }
        }
        if let Some(e) = error {
            let connected = r.connected;
            let error = self.media_error(&e, connected);
            let permanent = error.kind() == ErrorKind::Permanent;
            return Poll::Failed { error, permanent };
        }
        if eos {
            let looping = matches!(self.ctx.spec, SourceSpec::File { looping: true, .. });
            return if looping {
                Poll::Looped
            } else {
                Poll::Failed {
                    error: MediaError::Eos,
                    permanent: false,
                }
            };
        }
        let State::Running(r) = &self.state else {
            return Poll::Healthy(None);
        };
        if !r.connected {
            let deadline = r.started_at + self.ctx.startup_timeout;
            if now >= deadline {
                let waited_ms = millis(now.saturating_duration_since(r.started_at));
                // decodebin can swallow a demuxer's error while plugging it; for a file
                // the silence means there is nothing to play.
                let error = if self.is_file() {
                    MediaError::NoPlayableStream {
                        detail: format!("no frame decoded within {waited_ms} ms"),
                    }
                } else {
                    MediaError::Timeout {
                        waited_ms,
                        phase: "startup",
                    }
                };
                let permanent = error.kind() == ErrorKind::Permanent;
                return Poll::Failed { error, permanent };
            }
            return Poll::Healthy(Some(deadline));
        }
        if !self.ctx.spec.is_live() {
            return Poll::Healthy(None);
        }
        let stall = self.ctx.stall_timeout;
        if r.shared.pushing.load(Ordering::Acquire) {
            return Poll::Healthy(Some(now + stall));
        }
        let last = r.shared.last_frame_at();
        let silent = now.saturating_duration_since(last);
        if silent >= stall {
            if let Some(sink) = &self.sink {
                sink.health(HealthEvent::SourceStalled {
                    feed_id: self.ctx.feed_id,
                    silent_for_ms: millis(silent),
                });
            }
            return Poll::Failed {
                error: MediaError::Timeout {
                    waited_ms: millis(silent),
                    phase: "stall",
                },
                permanent: false,
            };
        }
        Poll::Healthy(Some(last + stall))
    }

    /// Restarts a looping file: seek to the start, or rebuild the pipeline if that fails.
    fn restart_loop(&mut self, now: MonotonicTs) -> TickOutcome {
        if let State::Running(r) = &self.state {
            r.shared.ts.lock().rebase();
            let seeked = r
                .pipeline
                .seek_simple(
                    gst::SeekFlags::FLUSH | gst::SeekFlags::KEY_UNIT,
                    gst::ClockTime::ZERO,
                )
                .is_ok();
            if seeked {
                return TickOutcome::running();
            }
        }
        tracing::debug!(feed_id = %self.ctx.feed_id, "seek to start failed; rebuilding the pipeline");
        if let State::Running(r) = std::mem::replace(&mut self.state, State::Idle) {
            teardown(r.pipeline, &r.shared);
        }
        match self.open_session(now) {
            Ok(r) => {
                let deadline = r.started_at + self.ctx.startup_timeout;
                self.state = State::Running(Box::new(r));
                running_until(Some(deadline))
            }
            Err(e) => self.end_with(e),
        }
    }

    fn end_with(&mut self, error: MediaError) -> TickOutcome {
        tracing::warn!(feed_id = %self.ctx.feed_id, source = %self.ctx.spec, error = %error, "media source gave up");
        if let State::Running(r) = std::mem::replace(&mut self.state, State::Ended) {
            teardown(r.pipeline, &r.shared);
        }
        if let Some(sink) = &self.sink {
            sink.fail(error);
        }
        TickOutcome::running()
    }

    /// A session failed: report, tear down, and either retry after a back-off or give up.
    fn on_failure(&mut self, now: MonotonicTs, error: MediaError, permanent: bool) -> TickOutcome {
        if let State::Running(r) = std::mem::replace(&mut self.state, State::Idle) {
            if let Some(sink) = &self.sink {
                sink.health(HealthEvent::SourceDisconnected {
                    feed_id: self.ctx.feed_id,
                    reason: error.clone(),
                });
            }
            if !r.connected {
                if r.tls
                    && matches!(
                        self.ctx.spec,
                        SourceSpec::Rtsp {
                            security: nv_core::source::RtspSecurityPolicy::PreferTls,
                            ..
                        }
                    )
                {
                    tracing::warn!(feed_id = %self.ctx.feed_id, "TLS session failed; falling back to plain RTSP");
                    self.use_tls = false;
                }
                let hw_decoder = r.shared.decoder.lock().clone().filter(|d| d.hardware);
                if let Some(d) = hw_decoder.filter(|_| r.hardware_first) {
                    self.hw_failed = Some(format!(
                        "hardware decoder {} failed before the first frame",
                        d.name
                    ));
                }
            }
            teardown(r.pipeline, &r.shared);
        }
        let retry_access = error.failure_kind().is_access_denied() && self.ctx.spec.is_live();
        if self.is_file() || ((permanent || error.kind() == ErrorKind::Permanent) && !retry_access)
        {
            return self.end_with(error);
        }
        self.schedule_retry(now, error)
    }

    /// Waits before the next attempt: the reconnect back-off, or the long access-denied
    /// delay when the server refused credentials or path (never the fast loop; the
    /// attempts count toward `max_attempts` all the same).
    fn schedule_retry(&mut self, now: MonotonicTs, error: MediaError) -> TickOutcome {
        let access_denied = error.failure_kind().is_access_denied();
        if error.kind() == ErrorKind::Permanent && !(access_denied && self.ctx.spec.is_live()) {
            return self.end_with(error);
        }
        if !self.ctx.reconnect.allows_attempt(self.attempt) {
            let attempts = self.attempt;
            return self.end_with(MediaError::GaveUp {
                attempts,
                last: Arc::new(error),
            });
        }
        let delay = if access_denied {
            self.ctx.reconnect.access_denied_delay
        } else {
            let r = self.next_random();
            self.ctx.reconnect.delay_for_attempt(self.attempt, r)
        };
        self.attempt += 1;
        tracing::debug!(feed_id = %self.ctx.feed_id, source = %self.ctx.spec, attempt = self.attempt, delay_ms = millis(delay), reason = %error, "reconnecting");
        if let Some(sink) = &self.sink {
            sink.record_error(&error);
            if access_denied {
                sink.health(HealthEvent::SourceAccessDenied {
                    feed_id: self.ctx.feed_id,
                    error: error.clone(),
                    retry_in_ms: millis(delay),
                });
            }
            sink.health(HealthEvent::SourceReconnecting {
                feed_id: self.ctx.feed_id,
                attempt: self.attempt,
                delay_ms: millis(delay),
            });
        }
        let until = now + delay;
        self.state = State::Waiting { until };
        TickOutcome {
            status: SourceStatus::Reconnecting,
            next_tick: Some(until),
        }
    }

    fn reconnect(&mut self, now: MonotonicTs) -> TickOutcome {
        match self.open_session(now) {
            Ok(r) => {
                let deadline = r.started_at + self.ctx.startup_timeout;
                self.state = State::Running(Box::new(r));
                running_until(Some(deadline))
            }
            Err(e) => self.schedule_retry(now, e),
        }
    }

    /// Reopens a live source after a pause, at once.
    fn reopen_after_pause(&mut self, now: MonotonicTs) {
        match self.open_session(now) {
            Ok(r) => self.state = State::Running(Box::new(r)),
            Err(e) => {
                self.state = State::Idle;
                // Retry on the next tick through the normal back-off.
                let outcome = self.schedule_retry(now, e);
                if let Some(sink) = &self.sink {
                    if outcome.next_tick.is_some() {
                        sink.wake();
                    }
                }
            }
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn running_until(next_tick: Option<MonotonicTs>) -> TickOutcome {
    TickOutcome {
        status: SourceStatus::Running,
        next_tick,
    }
}

impl Source for GstSource {
    fn start(&mut self, sink: FrameSink) -> Result<(), MediaError> {
        self.sink = Some(sink);
        let now = self.ctx.clock.now();
        let r = self.open_session(now)?;
        self.state = State::Running(Box::new(r));
        Ok(())
    }

    fn tick(&mut self, now: MonotonicTs) -> TickOutcome {
        match &self.state {
            State::Running(_) => match self.poll_running(now) {
                Poll::Healthy(next) => running_until(next),
                Poll::Looped => self.restart_loop(now),
                Poll::Failed { error, permanent } => self.on_failure(now, error, permanent),
            },
            State::Waiting { until } if now >= *until => self.reconnect(now),
            State::Waiting { until } => TickOutcome {
                status: SourceStatus::Reconnecting,
                next_tick: Some(*until),
            },
            State::Idle | State::Ended | State::Paused => TickOutcome::running(),
            State::Stopped => TickOutcome {
                status: SourceStatus::Stopped,
                next_tick: None,
            },
        }
    }

    fn pause(&mut self) -> Result<(), MediaError> {
        // A paused RTSP session often delivers nothing after PLAY again (observed with
        // gst-rtsp-server), and holding a connection for a paused feed buys nothing:
        // live sources disconnect and reconnect on resume.
        if self.ctx.spec.is_live() {
            match std::mem::replace(&mut self.state, State::Paused) {
                State::Running(r) => teardown(r.pipeline, &r.shared),
                State::Waiting { .. } | State::Paused | State::Idle => {}
                other => self.state = other,
            }
            return Ok(());
        }
        if let State::Running(r) = &self.state {
            r.pipeline
                .set_state(gst::State::Paused)
                .map_err(|_| MediaError::DecodeFailed {
                    detail: "pipeline refused to pause".into(),
                })?;
        }
        Ok(())
    }

    fn resume(&mut self) -> Result<(), MediaError> {
        let now = self.ctx.clock.now();
        if matches!(self.state, State::Paused) {
            self.reopen_after_pause(now);
            return Ok(());
        }
        if let State::Running(r) = &mut self.state {
            // Time spent paused is not silence.
            r.started_at = now;
            r.shared
                .last_frame_at
                .store(now.as_nanos(), Ordering::Release);
            r.pipeline
                .set_state(gst::State::Playing)
                .map_err(|_| MediaError::DecodeFailed {
                    detail: "pipeline refused to resume".into(),
                })?;
        }
        Ok(())
    }

    fn stop(&mut self) {
        if let State::Running(r) = std::mem::replace(&mut self.state, State::Stopped) {
            teardown(r.pipeline, &r.shared);
        }
    }

    fn decode_status(&self) -> Option<DecodeStatus> {
        match &self.state {
            State::Running(r) => r
                .shared
                .decode_status
                .lock()
                .clone()
                .or_else(|| self.decode_status.clone()),
            _ => self.decode_status.clone(),
        }
    }
}

impl Drop for GstSource {
    fn drop(&mut self) {
        self.stop();
    }
}
