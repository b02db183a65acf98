//! Failures as an operator meets them, end to end through the binary: `process` exit
//! codes and messages for broken files and refusing cameras (real gst-rtsp-server on
//! 127.0.0.1), the daemon's feed states, `/readyz`, the SSE history with `Last-Event-ID`
//! replay, payloads against the health JSON Schema, no Rust `Debug` text, 1,000 open
//! event streams with a responsive DELETE, and the client cap.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

#[path = "../../nv-integration/tests/support/rtsp_server.rs"]
mod rtsp_server;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use nv_test_util::daemon::Daemon;
use serde_json::Value;

const TOKEN: &str = "failures-token-0123456789";

fn tmp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nv-failures-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn clip(dir: &Path) -> PathBuf {
    let path = dir.join("clip.mp4");
    nv_test_util::clip::test_pattern_mp4(&path, 20, 64, 48, "smpte");
    path
}

fn process(args: &[&str]) -> (Output, Duration) {
    let t0 = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_nextvision"))
        .arg("process")
        .args(args)
        .stdout(Stdio::null())
        .output()
        .unwrap();
    (out, t0.elapsed())
}

fn verdict(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    stderr
        .lines()
        .rev()
        .find(|l| l.starts_with("nextvision: "))
        .unwrap_or_else(|| panic!("no verdict line in {stderr}"))
        .to_owned()
}

#[test]
fn process_exit_codes_name_the_cause_for_broken_files() {
    let dir = tmp_dir("process-files");
    let good = clip(&dir);
    let random = dir.join("random.mp4");
    std::fs::write(
        &random,
        (0..40_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let missing = dir.join("missing.mp4");
    let cases: [(&Path, i32, &str); 4] = [
        (&good, 0, "20 frames processed"),
        (
            &missing,
            4,
            "permanent input error (file_not_found): file not found: ",
        ),
        (
            &dir,
            4,
            "permanent input error (not_a_file): not a regular file (a directory)",
        ),
        (
            &random,
            4,
            "permanent input error (no_playable_stream): no playable stream",
        ),
    ];
    for (path, code, text) in cases {
        let (out, took) = process(&[path.to_str().unwrap(), "--startup-timeout-secs", "3"]);
        let v = verdict(&out);
        assert_eq!(out.status.code(), Some(code), "{path:?}: {v}");
        assert!(v.contains(text), "{path:?}: {v}");
        assert!(took < Duration::from_secs(20), "{path:?} took {took:?}");
    }
    // A malformed URL is a permanent input error too.
    let (out, _) = process(&["rtsp://"]);
    assert_eq!(out.status.code(), Some(4), "{}", verdict(&out));
}

#[test]
fn process_gives_up_on_cameras_with_the_right_code() {
    let server = rtsp_server::TestServer::start(0, true);
    let silent = rtsp_server::SilentServer::start();
    let refused_port = nv_test_util::port::RefusedPort::new();
    let refused = refused_port.port();
    let wrong_password = server.url_with(rtsp_server::USER, "not-it-77", "/x");
    let wrong_path = server.url_with(rtsp_server::USER, rtsp_server::SECRET, "/missing");
    let cases = [
        (
            wrong_password.clone(),
            4,
            "permanent input error: unauthorized: ",
        ),
        (wrong_path, 4, "permanent input error: stream not found: "),
        (
            format!("rtsp://127.0.0.1:{refused}/x"),
            3,
            "no frames: connection failed: ",
        ),
        (
            format!("rtsp://127.0.0.1:{}/x", silent.port),
            3,
            "no frames: no frame for ",
        ),
    ];
    for (url, code, text) in cases {
        let (out, took) = process(&[&url, "--startup-timeout-secs", "1.5"]);
        let v = verdict(&out);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{url}: {stderr}");
        assert!(v.contains(text), "{url}: {v}");
        assert!(
            !stderr.contains("not-it-77"),
            "credentials leaked: {stderr}"
        );
        // Gives up after the startup timeout, not after a reconnect budget.
        assert!(took < Duration::from_secs(15), "{url} took {took:?}");
        if code == 3 {
            assert!(
                took >= Duration::from_millis(1500),
                "{url} gave up after {took:?}"
            );
        }
    }
    // The camera itself works: frames to the time limit is a success.
    let (out, _) = process(&[
        &server.url(true),
        "--max-seconds",
        "2",
        "--startup-timeout-secs",
        "10",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    server.kill();
}

#[test]
fn process_interrupted_exits_130() {
    let dir = tmp_dir("process-int");
    let out = dir.join("out.jsonl");
    let mut child = Command::new(env!("CARGO_BIN_EXE_nextvision"))
        .args(["process", "synthetic:64x48@30", "--out"])
        .arg(&out)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Records in the output file say frames are flowing (the progress line is printed only
    // on a terminal). No event crosses the process boundary for that: poll the file.
    let mut stderr = child.stderr.take().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::read_to_string(&out).map_or(0, |t| t.lines().count()) < 3 {
        assert!(Instant::now() < deadline, "no output written");
        assert!(child.try_wait().unwrap().is_none(), "process ended early");
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{rest}");
    assert!(rest.contains("nextvision: interrupted after "), "{rest}");
}

fn start_daemon(dir: &Path, extra_api: &str, feeds: &str) -> Daemon {
    // Port 0: the OS picks the API port and the daemon says which.
    let config = format!(
        "[api]\nlisten = \"127.0.0.1:0\"\nbearer_token = \"{TOKEN}\"\n{extra_api}\n{feeds}"
    );
    let path = dir.join("nextvision.toml");
    std::fs::write(&path, config).unwrap();
    Daemon::run(
        Path::new(env!("CARGO_BIN_EXE_nextvision")),
        &path,
        &["--keep-running"],
    )
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

fn call(method: &str, url: &str, body: Option<&str>) -> (u16, String) {
    let a = agent();
    let auth = format!("Bearer {TOKEN}");
    let mut resp = match method {
        "GET" => a.get(url).header("Authorization", &auth).call(),
        "DELETE" => a.delete(url).header("Authorization", &auth).call(),
        _ => a
            .post(url)
            .header("Authorization", &auth)
            .header("Content-Type", "application/json")
            .send(body.unwrap_or("")),
    }
    .unwrap();
    let status = resp.status().as_u16();
    let mut text = String::new();
    resp.body_mut()
        .as_reader()
        .read_to_string(&mut text)
        .unwrap();
    (status, text)
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// Opens an SSE stream with a raw request; returns the stream after the header.
fn open_events(port: u16, last_event_id: Option<u64>) -> (u16, BufReader<TcpStream>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let extra = last_event_id.map_or_else(String::new, |id| format!("Last-Event-ID: {id}\r\n"));
    write!(
        s,
        "GET /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n{extra}\r\n"
    )
    .unwrap();
    let mut r = BufReader::new(s);
    let mut status_line = String::new();
    r.read_line(&mut status_line).unwrap();
    let status: u16 = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    loop {
        let mut l = String::new();
        r.read_line(&mut l).unwrap();
        if l == "\r\n" {
            break;
        }
    }
    (status, r)
}

/// Reads SSE events (`id`, data JSON) until `done` says stop. Chunked framing lines are
/// skipped: they are neither `id:` nor `data:`.
fn read_events(
    r: &mut BufReader<TcpStream>,
    mut done: impl FnMut(&[(Option<u64>, Value)]) -> bool,
) -> Vec<(Option<u64>, Value)> {
    let mut out = Vec::new();
    let mut id = None;
    while !done(&out) {
        let mut l = String::new();
        assert!(r.read_line(&mut l).unwrap() > 0, "stream ended");
        if let Some(v) = l.strip_prefix("id: ") {
            id = Some(v.trim().parse().unwrap());
        } else if let Some(d) = l.strip_prefix("data: ") {
            out.push((id.take(), json(d.trim())));
        }
    }
    out
}

/// Fragments of Rust `Debug` output that must never reach a payload.
fn debug_patterns(text: &str) -> Vec<&'static str> {
    const PATTERNS: [&str; 8] = [
        " { ", "Some(", "None", "Custom {", "kind: ", "Arc(", "Error {", "Os {",
    ];
    PATTERNS.into_iter().filter(|p| text.contains(p)).collect()
}

#[test]
fn late_sse_client_gets_missed_failures_by_replay_and_readyz_reflects_them() {
    let dir = tmp_dir("sse");
    let d = start_daemon(
        &dir,
        "",
        "[[feeds]]\nname = \"ok\"\nsource = \"synthetic:64x48@10\"\n[[feeds.stages]]\nkind = \"blob-detector\"\n[[feeds.stages]]\nkind = \"counter\"\n",
    );
    let b = d.base();
    assert_eq!(call("GET", &format!("{b}/readyz"), None).0, 200);
    // Three failures happen before anyone listens.
    let mut ids = Vec::new();
    for i in 0..3 {
        let body = format!(
            r#"{{"name":"broken{i}","source":"{}/missing-{i}.mp4","stages":[{{"kind":"blob-detector"}},{{"kind":"counter"}}]}}"#,
            dir.display()
        );
        let (status, text) = call("POST", &format!("{b}/api/v1/feeds"), Some(&body));
        assert_eq!(status, 201, "{text}");
        ids.push(json(&text)["id"].as_u64().unwrap());
    }
    // The feeds' own JSON says failed, with the kind and the cause.
    for id in &ids {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let v = json(&call("GET", &format!("{b}/api/v1/feeds/{id}"), None).1);
            if v["state"]["name"] == "failed" {
                assert_eq!(v["state"]["kind"], "file_not_found", "{v}");
                assert_eq!(v["last_error"]["kind"], "file_not_found", "{v}");
                assert_eq!(v["last_error"]["count"], 1, "{v}");
                assert!(
                    v["last_error"]["message"]
                        .as_str()
                        .unwrap()
                        .starts_with("file not found: "),
                    "{v}"
                );
                break;
            }
            assert!(Instant::now() < deadline, "feed {id} never failed: {v}");
            std::thread::yield_now();
        }
    }
    let (status, text) = call("GET", &format!("{b}/readyz"), None);
    assert_eq!(status, 503, "{text}");
    let v = json(&text);
    assert_eq!(v["code"], "feeds_failed");
    assert_eq!(v["details"].as_array().unwrap().len(), 3, "{v}");

    // A late subscriber receives them by replay.
    let (status, mut r) = open_events(d.port(), None);
    assert_eq!(status, 200);
    let stopped = |evs: &[(Option<u64>, Value)]| {
        evs.iter()
            .filter(|(_, v)| {
                v["event"] == "feed_stopped" && v["data"]["reason"]["code"] == "source_failed"
            })
            .count()
    };
    let replayed = read_events(&mut r, |evs| stopped(evs) == 3);
    let schema: Value = serde_json::from_str(nv_sinks::HEALTH_SCHEMA_V1).unwrap();
    let validator = jsonschema::draft202012::new(&schema).unwrap();
    let mut last_id = 0;
    for (id, v) in &replayed {
        let errors: Vec<String> = validator.iter_errors(v).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{v}: {errors:?}");
        assert!(
            debug_patterns(&v.to_string()).is_empty(),
            "Debug text in {v}"
        );
        let id = id.expect("every record has an id");
        assert_eq!(v["id"], id);
        assert!(id > last_id, "ids increase");
        last_id = id;
    }
    let failures: Vec<&Value> = replayed
        .iter()
        .map(|(_, v)| v)
        .filter(|v| v["event"] == "feed_stopped")
        .collect();
    // The three feeds fail concurrently: their records may come in any order.
    let mut stopped_ids: Vec<u64> = failures
        .iter()
        .map(|f| f["feed_id"].as_u64().unwrap())
        .collect();
    stopped_ids.sort_unstable();
    assert_eq!(stopped_ids, ids, "one feed_stopped per failed feed");
    for f in &failures {
        assert_eq!(f["severity"], "error");
        assert_eq!(f["data"]["reason"]["kind"], "file_not_found");
        assert!(
            f["message"].as_str().unwrap().contains("file not found"),
            "{f}"
        );
    }
    for name in ["feed_added", "feed_stopped"] {
        assert!(
            replayed.iter().any(|(_, v)| v["event"] == name),
            "{name} missing"
        );
    }
    // Reconnecting with Last-Event-ID replays only what came after it.
    let first_failure = replayed
        .iter()
        .find(|(_, v)| v["event"] == "feed_stopped")
        .unwrap()
        .0
        .unwrap();
    let (_, mut r2) = open_events(d.port(), Some(first_failure));
    let again = read_events(&mut r2, |evs| stopped(evs) == 2);
    assert!(again.iter().all(|(id, _)| id.unwrap() > first_failure));
    // Pause and resume are events too, and live events follow the replay.
    for action in ["pause", "resume"] {
        let (status, text) = call("POST", &format!("{b}/api/v1/feeds/1/{action}"), Some(""));
        assert_eq!(status, 204, "{text}");
    }
    let live = read_events(&mut r, |evs| {
        evs.iter().any(|(_, v)| v["event"] == "feed_resumed")
    });
    assert!(live.iter().any(|(_, v)| v["event"] == "feed_paused"));
    for (_, v) in &live {
        assert!(validator.iter_errors(v).next().is_none(), "{v}");
        assert!(
            debug_patterns(&v.to_string()).is_empty(),
            "Debug text in {v}"
        );
    }
    // Removing the failed feeds makes the daemon ready again.
    for id in &ids {
        assert_eq!(
            call("DELETE", &format!("{b}/api/v1/feeds/{id}"), None).0,
            204
        );
    }
    assert_eq!(call("GET", &format!("{b}/readyz"), None).0, 200);
    // Every API payload is free of Debug text too.
    for path in ["/api/v1/feeds", "/api/v1/diagnostics", "/api/v1/feeds/1"] {
        let text = call("GET", &format!("{b}{path}"), None).1;
        assert!(debug_patterns(&text).is_empty(), "{path}: {text}");
    }
}

#[test]
fn a_thousand_event_streams_leave_control_routes_responsive_and_the_cap_answers_503() {
    let dir = tmp_dir("sse-many");
    let d = start_daemon(
        &dir,
        "max_event_clients = 1000",
        "[[feeds]]\nname = \"a\"\nsource = \"synthetic:64x48@10\"\n[[feeds.stages]]\nkind = \"blob-detector\"\n[[feeds.stages]]\nkind = \"counter\"\n\
         [[feeds]]\nname = \"b\"\nsource = \"synthetic:64x48@10\"\n[[feeds.stages]]\nkind = \"blob-detector\"\n[[feeds.stages]]\nkind = \"counter\"\n",
    );
    let mut streams = Vec::with_capacity(1000);
    for _ in 0..1000 {
        let (status, r) = open_events(d.port(), None);
        assert_eq!(status, 200);
        streams.push(r);
    }
    // The 1,001st client is refused with a JSON body.
    let (status, text) = call("GET", &format!("{}/api/v1/events", d.base()), None);
    assert_eq!(status, 503, "{text}");
    assert_eq!(json(&text)["code"], "too_many_event_clients");
    let t0 = Instant::now();
    let (status, _) = call("DELETE", &format!("{}/api/v1/feeds/2", d.base()), None);
    let took = t0.elapsed();
    assert_eq!(status, 204);
    assert!(
        took < Duration::from_secs(1),
        "DELETE took {took:?} with 1,000 streams open"
    );
    eprintln!("DELETE with 1,000 open event streams: {took:?}");
    // Every stream sees the removal.
    for r in streams.iter_mut().step_by(97) {
        read_events(r, |evs| {
            evs.iter().any(|(_, v)| v["event"] == "feed_removed")
        });
    }
    // Closing streams frees their slots.
    drop(streams);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, _) = open_events(d.port(), None);
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "slots never freed");
        std::thread::yield_now();
    }
}

#[test]
fn run_with_only_finite_files_exits_when_they_end() {
    let dir = tmp_dir("run-finite");
    let clip = clip(&dir);
    let path = dir.join("finite.toml");
    std::fs::write(
        &path,
        format!(
            "[api]\nlisten = \"127.0.0.1:0\"\n[[feeds]]\nname = \"f\"\nsource = \"{}\"\n[[feeds.stages]]\nkind = \"blob-detector\"\n[[feeds.stages]]\nkind = \"counter\"\n",
            clip.display()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_nextvision"))
        .arg("run")
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("every feed has ended"), "{stderr}");
    // Lifecycle lines at the default level, without colour codes in a file.
    assert!(stderr.contains("feed starting"), "{stderr}");
    assert!(stderr.contains("stopped"), "{stderr}");
    assert!(
        !stderr.contains('\u{1b}'),
        "ANSI codes in redirected logs: {stderr}"
    );
    // JSON log lines on request.
    let out = Command::new(env!("CARGO_BIN_EXE_nextvision"))
        .args(["--log-format", "json", "run"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let json_lines: Vec<Value> = stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(json)
        .collect();
    assert!(
        json_lines
            .iter()
            .any(|v| v["message"] == "streaming" && v["decoder"].is_string()),
        "{stderr}"
    );
}
