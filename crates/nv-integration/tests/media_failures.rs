//! Failures an operator can act on, against real files and a real gst-rtsp-server on
//! 127.0.0.1: the feed's state, its last error (kind and cause text), the events, how fast
//! a permanent error gives up, and that refused credentials are retried only at the
//! access-denied rate, never multiplied by the restart policy.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;
#[path = "support/rtsp_server.rs"]
mod rtsp_server;

use std::time::{Duration, Instant};

use common::{
    clip, count, events_until_stopped, feed, run_to_stop_with, runtime, truncated_copy, ClipSpec,
    Container, Events, Recorder,
};
use nv_core::{FailureKind, FeedState};
use nv_runtime::{FeedHandle, HealthEvent, ReconnectPolicy, RestartPolicy, SourceSpec, StopReason};
use nv_test_util::port::RefusedPort;
use rtsp_server::{SilentServer, TestServer, USER};

/// An MP4 with its index first (`faststart`), cut right before the media data: a header
/// and nothing to play.
fn header_only_mp4() -> std::path::PathBuf {
    let full = common::temp_path("faststart.mp4");
    common::run_to_eos(&format!(
        "videotestsrc num-buffers=30 ! video/x-raw,format=I420,width=64,height=64,framerate=30/1 \
         ! x264enc speed-preset=ultrafast ! h264parse ! mp4mux faststart=true ! filesink location={}",
        full.display()
    ));
    let data = std::fs::read(&full).unwrap();
    // Walk the top-level boxes up to `mdat`.
    let mut at = 0usize;
    while at + 8 <= data.len() {
        let size = u32::from_be_bytes(data[at..at + 4].try_into().unwrap()) as usize;
        if &data[at + 4..at + 8] == b"mdat" {
            break;
        }
        at += size.max(8);
    }
    assert!(at > 0 && at < data.len(), "no mdat box found");
    let path = common::temp_path("header-only.mp4");
    std::fs::write(&path, &data[..at]).unwrap();
    path
}

fn stop_of(events: &[HealthEvent]) -> StopReason {
    match events.last() {
        Some(HealthEvent::FeedStopped { reason, .. }) => reason.clone(),
        other => panic!("no FeedStopped at the end: {other:?}"),
    }
}

#[test]
fn broken_files_fail_at_once_with_a_typed_kind_and_no_restart() {
    let good = clip(&ClipSpec::new(30, 64, 64, Container::Mp4));
    let truncated = truncated_copy(&good, "cut.mp4", 0.5);
    let random = common::temp_path("random.mp4");
    // Deterministic noise (xorshift), not a repeated byte: no accidental magic numbers.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let bytes: Vec<u8> = (0..65_536)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect();
    std::fs::write(&random, bytes).unwrap();
    let dir = common::temp_path("a-directory");
    std::fs::create_dir_all(&dir).unwrap();
    let cases = [
        (
            common::temp_path("missing.mp4"),
            FailureKind::FileNotFound,
            "file not found",
        ),
        (
            dir,
            FailureKind::NotAFile,
            "not a regular file (a directory)",
        ),
        (
            truncated,
            FailureKind::NoPlayableStream,
            "no playable stream",
        ),
        (random, FailureKind::NoPlayableStream, "no playable stream"),
        (
            header_only_mp4(),
            FailureKind::NoPlayableStream,
            "no playable stream",
        ),
    ];
    let startup = Duration::from_secs(2);
    for (path, kind, text) in cases {
        let t0 = Instant::now();
        // The daemon's default restart policy: a file error must not be retried anyway.
        let done = run_to_stop_with(SourceSpec::file(&path), |f| {
            f.restart(RestartPolicy::default().with_restart_delay(Duration::ZERO))
                .startup_timeout(startup)
        });
        let took = t0.elapsed();
        let (events, h) = (&done.events, &done.handle);
        assert_eq!(count(events, "feed_restarting"), 0, "{path:?}: {events:?}");
        let StopReason::SourceFailed { kind: got, cause } = stop_of(events) else {
            panic!("{path:?}: {events:?}");
        };
        assert_eq!(got, kind, "{path:?}: {cause}");
        assert!(cause.contains(text), "{path:?}: {cause}");
        assert_eq!(
            h.state(),
            FeedState::Failed {
                kind,
                cause: cause.clone()
            }
        );
        let last = h.last_error().unwrap();
        assert_eq!((last.kind, last.count), (kind, 1), "{path:?}");
        assert_eq!(last.message, cause);
        // Missing and directory are known before any pipeline exists.
        if matches!(kind, FailureKind::FileNotFound | FailureKind::NotAFile) {
            assert!(took < Duration::from_secs(1), "{path:?} took {took:?}");
        }
        assert!(
            took < startup + Duration::from_secs(2),
            "{path:?} took {took:?}"
        );
        assert!(done.seen.is_empty());
    }
}

fn fast_reconnect() -> ReconnectPolicy {
    ReconnectPolicy::default()
        .with_delays(Duration::from_millis(50), Duration::from_millis(100))
        .with_jitter_ratio(0.0)
}

fn live_feed(url: String, reconnect: ReconnectPolicy) -> nv_runtime::FeedConfig {
    let rec = Recorder::default();
    feed(SourceSpec::rtsp(url), &rec)
        .restart(RestartPolicy::default().with_restart_delay(Duration::ZERO))
        .reconnect(reconnect)
        .startup_timeout(Duration::from_millis(500))
        .build()
        .unwrap()
}

fn wait_state(h: &FeedHandle, name: &str) -> FeedState {
    let deadline = Instant::now() + common::T;
    loop {
        let s = h.state();
        if s.name() == name {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "state stayed {s:?}, wanted {name}"
        );
        std::thread::yield_now();
    }
}

#[test]
fn wrong_password_is_retried_only_at_the_access_denied_rate() {
    let server = TestServer::start(0, true);
    let rt = runtime();
    let mut ev = Events::new(rt.health_subscribe());
    let access_delay = Duration::from_millis(700);
    let h = rt
        .add_feed(live_feed(
            server.url_with(USER, "wrong-Pw9", "/x"),
            fast_reconnect().with_access_denied_delay(access_delay),
        ))
        .unwrap();
    for n in 1..=3 {
        let e = ev.wait("access denied", |e| e.name() == "source_access_denied");
        let HealthEvent::SourceAccessDenied {
            error, retry_in_ms, ..
        } = e
        else {
            unreachable!()
        };
        assert_eq!(error.failure_kind(), FailureKind::Unauthorized, "{error}");
        assert_eq!(retry_in_ms, 700);
        ev.wait("reconnecting", |e| e.name() == "source_reconnecting");
        let FeedState::Reconnecting {
            attempt,
            next_try_at,
        } = h.state()
        else {
            panic!("{:?}", h.state())
        };
        assert_eq!(attempt, n);
        let wait = next_try_at.checked_duration_since(nv_core::WallTs::now());
        assert!(
            next_try_at.is_known() && wait.is_none_or(|w| w <= access_delay),
            "{wait:?}"
        );
    }
    rt.remove_feed(h.id()).unwrap();
    let last = h.last_error().unwrap();
    assert_eq!(last.kind, FailureKind::Unauthorized);
    assert!(last.count >= 3);
    assert!(
        last.message.starts_with("unauthorized: "),
        "{}",
        last.message
    );
    assert!(!last.message.contains("wrong-Pw9"), "{}", last.message);
    // The server's own record: never two attempts closer than the access delay.
    let connects = server.connects.lock().clone();
    assert!(connects.len() >= 3, "{}", connects.len());
    for w in connects.windows(2) {
        let gap = w[1].duration_since(w[0]);
        assert!(gap >= access_delay, "attempts {gap:?} apart");
    }
    assert_eq!(ev.count("feed_restarting"), 0);
    server.kill();
}

#[test]
fn access_denied_budget_is_not_multiplied_by_the_restart_policy() {
    let server = TestServer::start(0, true);
    let rt = runtime();
    let mut health = rt.health_subscribe();
    let h = rt
        .add_feed(live_feed(
            server.url_with(USER, "nope-Pw1", "/x"),
            fast_reconnect()
                .with_max_attempts(Some(2))
                .with_access_denied_delay(Duration::from_millis(150)),
        ))
        .unwrap();
    let events = events_until_stopped(&mut health, h.id());
    assert_eq!(count(&events, "feed_restarting"), 0, "{events:?}");
    assert_eq!(count(&events, "source_access_denied"), 2);
    let StopReason::SourceFailed { kind, cause } = stop_of(&events) else {
        panic!("{events:?}");
    };
    assert_eq!(kind, FailureKind::Unauthorized);
    assert!(
        cause.starts_with("gave up after 2 reconnect attempts: unauthorized: "),
        "{cause}"
    );
    assert!(!cause.contains("nope-Pw1"));
    // One first attempt and two retries, as the server counted them.
    assert_eq!(server.connects.lock().len(), 3);
    assert_eq!(h.state().name(), "failed");
    server.kill();
}

#[test]
fn wrong_path_refused_port_and_silent_server_each_report_their_kind() {
    let server = TestServer::start(0, false);
    let silent = SilentServer::start();
    let refused = RefusedPort::new();
    let refused_port = refused.port();
    let cases = [
        (
            format!("rtsp://127.0.0.1:{}/nope", server.port),
            FailureKind::StreamNotFound,
            "stream not found: ",
        ),
        (
            format!("rtsp://127.0.0.1:{refused_port}/x"),
            FailureKind::ConnectionFailed,
            "connection failed: ",
        ),
        (
            format!("rtsp://127.0.0.1:{}/x", silent.port),
            FailureKind::StartupTimeout,
            "no frame for ",
        ),
    ];
    for (url, kind, text) in cases {
        let rt = runtime();
        let mut ev = Events::new(rt.health_subscribe());
        let h = rt
            .add_feed(live_feed(url.clone(), fast_reconnect()))
            .unwrap();
        ev.wait("reconnecting", |e| e.name() == "source_reconnecting");
        let state = h.state();
        assert!(
            matches!(state, FeedState::Reconnecting { attempt: 1.., next_try_at } if next_try_at.is_known())
                || state.name() == "connecting",
            "{url}: {state:?}"
        );
        let last = h.last_error().unwrap();
        assert_eq!(last.kind, kind, "{url}: {}", last.message);
        assert!(last.message.starts_with(text), "{url}: {}", last.message);
        let access = ev.count("source_access_denied");
        assert_eq!(
            access,
            usize::from(kind == FailureKind::StreamNotFound),
            "{url}"
        );
        assert_eq!(ev.count("feed_restarting"), 0);
        rt.remove_feed(h.id()).unwrap();
        assert_eq!(h.state().name(), "stopped");
    }
    server.kill();
}

#[test]
fn killed_server_moves_the_feed_to_reconnecting_and_back_to_streaming() {
    // The OS picks the port; the restart below reuses it.
    let server = TestServer::start(0, false);
    let port = server.port;
    let rt = runtime();
    let mut ev = Events::new(rt.health_subscribe());
    let h = rt
        .add_feed(live_feed(server.url(false), fast_reconnect()))
        .unwrap();
    ev.wait("connected", |e| e.name() == "source_connected");
    wait_state(&h, "streaming");
    server.kill();
    ev.wait("reconnecting", |e| e.name() == "source_reconnecting");
    assert_ne!(h.state().name(), "streaming");
    assert!(h.last_error().is_some());
    let _server = TestServer::start(port, false);
    ev.wait("reconnected", |e| e.name() == "source_connected");
    wait_state(&h, "streaming");
    rt.remove_feed(h.id()).unwrap();
}

/// Records the wall-clock arrival time of every frame it sees.
#[derive(Clone, Default)]
struct Arrivals(std::sync::Arc<parking_lot::Mutex<Vec<nv_core::WallTs>>>);

impl nv_perception::Stage for Arrivals {
    fn id(&self) -> nv_core::StageId {
        nv_core::StageId::new("arrivals")
    }
    fn process(
        &mut self,
        ctx: &nv_perception::StageContext<'_>,
    ) -> Result<nv_perception::StageOutput, nv_core::StageError> {
        self.0.lock().push(ctx.frame.wall_ts());
        Ok(nv_perception::StageOutput::empty())
    }
}

#[test]
fn paused_rtsp_feed_yields_frames_within_a_second_of_every_resume() {
    let server = TestServer::start(0, true);
    let rt = runtime();
    let arrivals = Arrivals::default();
    let h = rt
        .add_feed(
            nv_runtime::FeedConfig::builder()
                .source(SourceSpec::rtsp(server.url(true)))
                .camera_mode(nv_runtime::CameraMode::Fixed)
                .reconnect(fast_reconnect())
                .startup_timeout(Duration::from_secs(5))
                .stage(arrivals.clone())
                .output_sink(nv_runtime::NullSink)
                .build()
                .unwrap(),
        )
        .unwrap();
    wait_state(&h, "streaming");
    let mut worst = Duration::ZERO;
    for cycle in 0..10 {
        h.pause().unwrap();
        assert_eq!(h.state(), FeedState::Paused);
        let resumed_at = nv_core::WallTs::now();
        h.resume().unwrap();
        let t0 = Instant::now();
        // A frame captured after the resume (not one queued before the pause).
        let deadline = t0 + common::T;
        while !arrivals.0.lock().iter().any(|w| *w >= resumed_at) {
            assert!(
                Instant::now() < deadline,
                "cycle {cycle}: no frame after resume"
            );
            std::thread::yield_now();
        }
        let took = t0.elapsed();
        worst = worst.max(took);
        assert!(
            took < Duration::from_secs(1),
            "cycle {cycle}: first frame after {took:?}"
        );
        wait_state(&h, "streaming");
    }
    eprintln!("worst resume-to-frame: {worst:?}");
    rt.remove_feed(h.id()).unwrap();
    server.kill();
}
