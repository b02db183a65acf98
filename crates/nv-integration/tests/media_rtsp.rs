//! RTSP against a real gst-rtsp-server on 127.0.0.1: kill/restart reconnects, a silent
//! server and a mid-stream stall are detected within the configured timeouts, and the
//! credentials in the URL appear in no event, error, status or log line.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;
#[path = "support/rtsp_server.rs"]
mod rtsp_server;

use std::io::Write;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use common::{feed, runtime, Events, Recorder};
use nv_core::error::MediaError;
use nv_runtime::FeedHandle;
use nv_runtime::{HealthEvent, ReconnectPolicy, SourceSpec};
use parking_lot::Mutex;
use rtsp_server::{SilentServer, TestServer, SECRET};

/// Every log line of this test binary.
fn captured_logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf: Arc<Mutex<Vec<u8>>> = Arc::default();
        let writer_buf = Arc::clone(&buf);
        let installed = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || LogWriter(Arc::clone(&writer_buf)))
            .try_init()
            .is_ok();
        assert!(installed, "log capture needs the global subscriber");
        buf
    })
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn reconnect_policy() -> ReconnectPolicy {
    ReconnectPolicy::default()
        .with_delays(Duration::from_millis(100), Duration::from_millis(400))
        .with_jitter_ratio(0.0)
}

#[test]
fn killed_server_is_reconnected_and_frames_continue_without_leaking_credentials() {
    let logs = captured_logs();
    // The OS picks the port; restarts reuse it.
    let mut server = Some(TestServer::start(0, true));
    let port = server.as_ref().unwrap().port;
    let rt = runtime();
    let mut ev = Events::new(rt.health_subscribe());
    let rec = Recorder::default();
    let url = server.as_ref().unwrap().url(true);
    let h = rt
        .add_feed(
            feed(SourceSpec::rtsp(url), &rec)
                .reconnect(reconnect_policy())
                .startup_timeout(Duration::from_secs(5))
                .stall_timeout(Duration::from_secs(3))
                .build()
                .unwrap(),
        )
        .unwrap();
    ev.wait("first connect", |e| e.name() == "source_connected");
    common::wait_frames(&rec, 10);

    for _cycle in 0..2 {
        let mark = ev.all.len();
        server.take().unwrap().kill();
        ev.wait("disconnect", |e| e.name() == "source_disconnected");
        let first_attempt = ev.wait("reconnecting", |e| e.name() == "source_reconnecting");
        // Frames flowed before this outage, so attempts count from 1 again.
        assert!(
            matches!(
                first_attempt,
                HealthEvent::SourceReconnecting { attempt: 1, .. }
            ),
            "{first_attempt:?}"
        );
        // While the server is down, attempts fail and the counter grows.
        ev.wait("second attempt", |e| {
            matches!(e, HealthEvent::SourceReconnecting { attempt: 2, .. })
        });
        let before = rec.seen().len();
        server = Some(TestServer::start(port, true));
        ev.wait("reconnected", |e| e.name() == "source_connected");
        common::wait_frames(&rec, before + 10);
        let d = ev.position(mark, "source_disconnected").unwrap();
        let r = ev.position(mark, "source_reconnecting").unwrap();
        let c = ev.position(mark, "source_connected").unwrap();
        assert!(d < r && r < c, "order {d} {r} {c}: {:?}", &ev.all[mark..]);
    }

    let seen = rec.seen();
    for w in seen.windows(2) {
        assert!(
            w[1].seq > w[0].seq,
            "seq went backwards: {:?} {:?}",
            w[0],
            w[1]
        );
        assert!(
            w[1].ts > w[0].ts,
            "ts went backwards: {:?} {:?}",
            w[0],
            w[1]
        );
    }
    let status = format!("{:?} {:?}", h.decode_status(), h.diagnostics());
    rt.remove_feed(h.id()).unwrap();
    ev.wait("stop", |e| e.name() == "feed_stopped");
    server.take().unwrap().kill();

    // Plain RTSP is reported, with the URL redacted.
    let insecure: Vec<&HealthEvent> = ev
        .all
        .iter()
        .filter(|e| e.name() == "insecure_rtsp_source")
        .collect();
    assert!(!insecure.is_empty());
    for e in &ev.all {
        let text = format!("{e:?}");
        assert!(!text.contains(SECRET), "secret in event: {text}");
        if let HealthEvent::SourceDisconnected { reason, .. } = e {
            assert!(!reason.to_string().contains(SECRET));
        }
    }
    assert!(!status.contains(SECRET), "secret in status: {status}");
    let logs = String::from_utf8_lossy(&logs.lock()).into_owned();
    assert!(logs.contains("reconnecting"), "logs were not captured");
    assert!(!logs.contains(SECRET), "secret in logs");
}

/// Camera passwords with every reserved character, written unencoded in the URL, reach
/// the camera intact (the server accepts only that password) and show nowhere.
#[test]
fn reserved_characters_in_the_password_reach_the_camera_and_show_nowhere() {
    let logs = captured_logs();
    let password = "Pl4nt@d/S3cr:t#9x7?";
    let server = TestServer::start_with(0, Some(("viewer", password)));
    let port = server.port;
    let rt = runtime();
    let mut ev = Events::new(rt.health_subscribe());
    let rec = Recorder::default();
    let url = format!("rtsp://viewer:{password}@127.0.0.1:{port}/x");
    let h = rt
        .add_feed(
            feed(SourceSpec::rtsp(url), &rec)
                .reconnect(reconnect_policy())
                .startup_timeout(Duration::from_secs(5))
                .build()
                .unwrap(),
        )
        .unwrap();
    ev.wait("connect", |e| e.name() == "source_connected");
    common::wait_frames(&rec, 5);
    let shown = format!("{:?} {:?}", h.diagnostics(), h.decode_status());
    assert!(
        shown.contains(&format!("rtsp://***@127.0.0.1:{port}/x")),
        "{shown}"
    );
    rt.remove_feed(h.id()).unwrap();
    ev.wait("stop", |e| e.name() == "feed_stopped");
    server.kill();
    for e in &ev.all {
        let text = format!("{e:?}");
        assert!(!text.contains("S3cr"), "password in event: {text}");
    }
    assert!(!shown.contains("S3cr"), "password in diagnostics: {shown}");
    let logs = String::from_utf8_lossy(&logs.lock()).into_owned();
    assert!(!logs.contains("S3cr"), "password in logs");
}

fn timeout_phase(e: &HealthEvent) -> Option<&'static str> {
    match e {
        HealthEvent::SourceDisconnected {
            reason: MediaError::Timeout { phase, .. },
            ..
        } => Some(phase),
        _ => None,
    }
}

fn stop(rt: &nv_runtime::Runtime, h: &FeedHandle, ev: &mut Events) {
    rt.remove_feed(h.id()).unwrap();
    ev.wait("stop", |e| e.name() == "feed_stopped");
}

#[test]
fn server_that_accepts_but_never_sends_is_detected_at_startup() {
    let silent = SilentServer::start();
    let rt = runtime();
    let mut ev = Events::new(rt.health_subscribe());
    let rec = Recorder::default();
    let startup = Duration::from_millis(800);
    let started = Instant::now();
    let h = rt
        .add_feed(
            feed(
                SourceSpec::rtsp(format!("rtsp://127.0.0.1:{}/x", silent.port)),
                &rec,
            )
            .reconnect(reconnect_policy())
            .startup_timeout(startup)
            .build()
            .unwrap(),
        )
        .unwrap();
    let e = ev.wait("startup timeout", |e| e.name() == "source_disconnected");
    let waited = started.elapsed();
    assert_eq!(timeout_phase(&e), Some("startup"), "{e:?}");
    assert!(waited >= startup, "{waited:?}");
    // Detected at the configured timeout; the slack only absorbs a loaded machine.
    assert!(waited < startup + Duration::from_millis(1500), "{waited:?}");
    ev.wait("reconnecting", |e| e.name() == "source_reconnecting");
    // The next attempt times out too, and the back-off grows.
    ev.wait("second attempt", |e| {
        matches!(e, HealthEvent::SourceReconnecting { attempt: 2, .. })
    });
    stop(&rt, &h, &mut ev);
    assert_eq!(ev.position(0, "source_connected"), None);
    assert!(rec.seen().is_empty());
}

#[test]
fn stream_that_stops_mid_way_is_detected_and_recovered() {
    let server = TestServer::start(0, false);
    let rt = runtime();
    let mut ev = Events::new(rt.health_subscribe());
    let rec = Recorder::default();
    let stall = Duration::from_millis(1000);
    let h = rt
        .add_feed(
            feed(SourceSpec::rtsp(server.url(false)), &rec)
                .reconnect(reconnect_policy())
                .startup_timeout(Duration::from_secs(5))
                .stall_timeout(stall)
                .build()
                .unwrap(),
        )
        .unwrap();
    ev.wait("connect", |e| e.name() == "source_connected");
    common::wait_frames(&rec, 10);
    let frozen_at = Instant::now();
    server.freeze();
    let e = ev.wait("stall", |e| e.name() == "source_stalled");
    let detected = frozen_at.elapsed();
    match e {
        HealthEvent::SourceStalled { silent_for_ms, .. } => assert!(silent_for_ms >= 1000),
        other => panic!("{other:?}"),
    }
    // Frames already in flight (jitter buffer) arrive after the freeze; allow for them.
    assert!(
        detected < stall + Duration::from_millis(2000),
        "{detected:?}"
    );
    let e = ev.wait("disconnect", |e| e.name() == "source_disconnected");
    assert_eq!(timeout_phase(&e), Some("stall"));
    ev.wait("reconnecting", |e| e.name() == "source_reconnecting");
    let before = rec.seen().len();
    // The new session gets a fresh, unfrozen stream.
    ev.wait("reconnected", |e| e.name() == "source_connected");
    common::wait_frames(&rec, before + 10);
    stop(&rt, &h, &mut ev);
    let seen = rec.seen();
    for w in seen.windows(2) {
        assert!(w[1].seq > w[0].seq && w[1].ts > w[0].ts);
    }
    server.kill();
}

#[test]
fn prefer_tls_falls_back_to_plain_rtsp_and_says_so() {
    let server = TestServer::start(0, false);
    let rt = runtime();
    let mut ev = Events::new(rt.health_subscribe());
    let rec = Recorder::default();
    let spec = SourceSpec::Rtsp {
        url: server.url(false),
        transport: nv_core::source::RtspTransport::Tcp,
        security: nv_core::source::RtspSecurityPolicy::PreferTls,
    };
    let h = rt
        .add_feed(
            feed(spec, &rec)
                .reconnect(reconnect_policy())
                .startup_timeout(Duration::from_millis(1500))
                .build()
                .unwrap(),
        )
        .unwrap();
    ev.wait("connect", |e| e.name() == "source_connected");
    let insecure = ev.wait("insecure", |e| e.name() == "insecure_rtsp_source");
    common::wait_frames(&rec, 5);
    stop(&rt, &h, &mut ev);
    let first_disconnect = ev.position(0, "source_disconnected").unwrap();
    let connected = ev.position(0, "source_connected").unwrap();
    assert!(
        first_disconnect < connected,
        "the TLS attempt fails first: {:?}",
        ev.all
    );
    assert!(
        matches!(&insecure, HealthEvent::InsecureRtspSource { redacted_url, .. } if redacted_url.starts_with("rtsp://")),
        "{insecure:?}"
    );
    server.kill();
}

#[test]
fn spent_reconnect_budget_hands_the_failure_to_the_feed() {
    let silent = SilentServer::start();
    let rt = runtime();
    let mut ev = Events::new(rt.health_subscribe());
    let rec = Recorder::default();
    let h = rt
        .add_feed(
            feed(
                SourceSpec::rtsp(format!("rtsp://127.0.0.1:{}/x", silent.port)),
                &rec,
            )
            .reconnect(reconnect_policy().with_max_attempts(Some(2)))
            .startup_timeout(Duration::from_millis(300))
            .build()
            .unwrap(),
        )
        .unwrap();
    let stopped = ev.wait("feed stop", |e| e.name() == "feed_stopped");
    assert!(
        matches!(&stopped, HealthEvent::FeedStopped { reason: nv_runtime::StopReason::Fatal { detail }, .. } if detail.contains("gave up after 2 reconnect attempts: no frame for")),
        "{stopped:?}"
    );
    let attempts: Vec<u32> = ev
        .all
        .iter()
        .filter_map(|e| match e {
            HealthEvent::SourceReconnecting { attempt, .. } => Some(*attempt),
            _ => None,
        })
        .collect();
    assert_eq!(attempts, vec![1, 2]);
    // Three sessions (the first and two reconnects) each timed out at startup.
    let disconnects = ev.all.iter().filter_map(timeout_phase).collect::<Vec<_>>();
    assert_eq!(disconnects, vec!["startup"; 3]);
    assert!(rec.seen().is_empty());
    rt.remove_feed(h.id()).unwrap();
}
