//! The daemon end to end: `nextvision run` with a real config, driven over HTTP.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::time::{Duration, Instant};

use nv_test_util::daemon::Daemon;

use serde_json::Value;

const TOKEN: &str = "test-token-0123456789abcdef";

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

fn start(dir: &Path) -> Daemon {
    // Port 0: the OS picks the port when the daemon binds, and the daemon says which.
    let port = 0;
    let config = format!(
        r#"
[api]
listen = "127.0.0.1:{port}"
bearer_token = "{TOKEN}"

[[sinks]]
name = "discard"
kind = "null"

[[feeds]]
name = "alpha"
source = "synthetic:160x120@20"
snapshot_fps = 5.0
sinks = ["discard"]
[[feeds.stages]]
kind = "blob-detector"
[[feeds.stages]]
kind = "counter"

[[feeds]]
name = "beta"
source = "synthetic:160x120@20"
[[feeds.stages]]
kind = "brightness"
"#
    );
    let path = dir.join("nextvision.toml");
    std::fs::write(&path, config).unwrap();
    Daemon::run(Path::new(env!("CARGO_BIN_EXE_nextvision")), &path, &[])
}

fn call(method: &str, url: &str, auth: bool, body: Option<&str>) -> (u16, String) {
    let a = agent();
    let mut resp = match (method, body) {
        ("GET", _) => {
            let r = a.get(url);
            if auth {
                r.header("Authorization", &format!("Bearer {TOKEN}")).call()
            } else {
                r.call()
            }
        }
        ("DELETE", _) => a
            .delete(url)
            .header("Authorization", &format!("Bearer {TOKEN}"))
            .call(),
        (_, b) => a
            .post(url)
            .header("Authorization", &format!("Bearer {TOKEN}"))
            .header("Content-Type", "application/json")
            .send(b.unwrap_or("")),
    }
    .unwrap();
    let status = resp.status().as_u16();
    let mut bytes = Vec::new();
    resp.body_mut().as_reader().read_to_end(&mut bytes).unwrap();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

/// Announces a body over the API's limit and sends none of it: the daemon must answer 413
/// at once (a client library would fail writing the body the server refuses to read).
fn oversized_post(base: &str) -> (u16, String) {
    use std::io::Write as _;
    let addr = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "POST /api/v1/feeds HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: 3000000\r\n\r\n{{"
    )
    .unwrap();
    let mut reader = BufReader::new(s);
    let mut status_line = String::new();
    reader.read_line(&mut status_line).unwrap();
    let status: u16 = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let mut length = 0;
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).unwrap();
        if h.trim().is_empty() {
            break;
        }
        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::yield_now();
    }
}

#[test]
fn feeds_are_managed_over_http_while_others_keep_running() {
    let dir = std::env::temp_dir().join(format!("nv-api-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let d = start(&dir);
    let b = d.base();

    assert_eq!(call("GET", &format!("{b}/healthz"), false, None).0, 200);
    assert_eq!(call("GET", &format!("{b}/readyz"), false, None).0, 200);
    let (status, text) = call("GET", &format!("{b}/api/v1/feeds"), false, None);
    assert_eq!(status, 401, "{text}");
    assert_eq!(json(&text)["code"], "unauthorized");

    let feeds = json(&call("GET", &format!("{b}/api/v1/feeds"), true, None).1);
    assert_eq!(feeds.as_array().unwrap().len(), 2);
    let beta_id = feeds
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "beta")
        .unwrap()["id"]
        .as_u64()
        .unwrap();

    // Add a feed at runtime.
    let (status, text) = call(
        "POST",
        &format!("{b}/api/v1/feeds"),
        true,
        Some(r#"{"name":"gamma","source":"synthetic:64x48@10","stages":[{"kind":"brightness"}]}"#),
    );
    assert_eq!(status, 201, "{text}");
    let gamma = json(&text)["id"].as_u64().unwrap();

    // A bad request is refused with every problem listed, and credentials never echo.
    let (status, text) = call(
        "POST",
        &format!("{b}/api/v1/feeds"),
        true,
        Some(
            r#"{"name":"bad","source":"ftp://admin:hunter2@cam/x","queue_depth":0,"stages":[{"kind":"nope"}]}"#,
        ),
    );
    assert_eq!(status, 400, "{text}");
    let err = json(&text);
    assert_eq!(err["code"], "invalid_config");
    assert!(err["details"].as_array().unwrap().len() >= 2, "{text}");
    assert!(!text.contains("hunter2"), "{text}");
    let (status, text) = call(
        "POST",
        &format!("{b}/api/v1/feeds"),
        true,
        Some("{not json"),
    );
    assert_eq!(
        (status, json(&text)["code"].as_str().unwrap()),
        (400, "invalid_json")
    );

    // A camera with credentials: accepted (it will keep reconnecting to a closed port), and
    // the password appears in no response.
    let (status, text) = call(
        "POST",
        &format!("{b}/api/v1/feeds"),
        true,
        Some(
            r#"{"name":"cam","source":"rtsp://admin:hunter2@127.0.0.1:9/stream","stages":[{"kind":"brightness"}],"startup_timeout_secs":0.5}"#,
        ),
    );
    assert_eq!(status, 201, "{text}");
    let cam = json(&text)["id"].as_u64().unwrap();
    assert!(text.contains("rtsp://***@127.0.0.1:9/stream"), "{text}");
    for path in [
        "/api/v1/feeds",
        "/api/v1/diagnostics",
        "/metrics",
        &format!("/api/v1/feeds/{cam}"),
    ] {
        let (_, body) = call("GET", &format!("{b}{path}"), true, None);
        assert!(
            !body.contains("hunter2"),
            "{path} leaked credentials: {body}"
        );
    }

    // Pause / resume with typed conflicts.
    assert_eq!(
        call(
            "POST",
            &format!("{b}/api/v1/feeds/{gamma}/pause"),
            true,
            None
        )
        .0,
        204
    );
    let (status, text) = call(
        "POST",
        &format!("{b}/api/v1/feeds/{gamma}/pause"),
        true,
        None,
    );
    assert_eq!(
        (status, json(&text)["code"].as_str().unwrap()),
        (409, "already_paused")
    );
    assert_eq!(
        call(
            "POST",
            &format!("{b}/api/v1/feeds/{gamma}/resume"),
            true,
            None
        )
        .0,
        204
    );
    let (status, text) = call(
        "POST",
        &format!("{b}/api/v1/feeds/{gamma}/resume"),
        true,
        None,
    );
    assert_eq!(
        (status, json(&text)["code"].as_str().unwrap()),
        (409, "not_paused")
    );

    // The other feeds kept processing throughout.
    let processed = |id: u64| {
        json(&call("GET", &format!("{b}/api/v1/feeds/{id}"), true, None).1)["metrics"]
            ["frames_processed"]
            .as_u64()
            .unwrap()
    };
    let before = processed(beta_id);
    wait_for("beta keeps processing", || processed(beta_id) > before + 5);

    // Snapshot of the feed with frame inclusion.
    wait_for("a snapshot", || {
        call(
            "GET",
            &format!("{b}/api/v1/feeds/1/snapshot.jpg"),
            true,
            None,
        )
        .0 == 200
    });
    let jpeg = agent()
        .get(&format!("{b}/api/v1/feeds/1/snapshot.jpg"))
        .header("Authorization", &format!("Bearer {TOKEN}"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_vec()
        .unwrap();
    assert_eq!(&jpeg[..2], &[0xFF, 0xD8], "a JPEG");

    // Remove, then it is gone.
    assert_eq!(
        call("DELETE", &format!("{b}/api/v1/feeds/{gamma}"), true, None).0,
        204
    );
    let (status, text) = call("GET", &format!("{b}/api/v1/feeds/{gamma}"), true, None);
    assert_eq!(
        (status, json(&text)["code"].as_str().unwrap()),
        (404, "feed_not_found")
    );
    let (status, text) = call("GET", &format!("{b}/api/v1/feeds/abc"), true, None);
    assert_eq!(
        (status, json(&text)["code"].as_str().unwrap()),
        (404, "feed_not_found")
    );

    // The API JSON carries every metric of the table, in its scope's object.
    let diag = json(&call("GET", &format!("{b}/api/v1/diagnostics"), true, None).1);
    let feed = &diag["feeds"][0];
    for def in nv_metrics::METRICS {
        let scope = match def.scope() {
            nv_metrics::Scope::Runtime => &diag["metrics"],
            nv_metrics::Scope::Feed => &feed["metrics"],
            nv_metrics::Scope::Stage => &feed["stages"][0]["metrics"],
            // No batch coordinator in this config.
            nv_metrics::Scope::Batch => continue,
            nv_metrics::Scope::Health => &diag["health"],
            nv_metrics::Scope::Process => &diag["process"],
            nv_metrics::Scope::Build => &diag["build"],
        };
        // `process_max_fds` is absent where the limit is "unlimited".
        if def.name != "process_max_fds" {
            assert!(!scope[def.json_key()].is_null(), "{} in {diag}", def.name);
        }
    }

    // Metrics parse with a real Prometheus parser.
    let (status, text) = call("GET", &format!("{b}/metrics"), true, None);
    assert_eq!(status, 200);
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
    assert!(scrape
        .samples
        .iter()
        .any(|s| s.metric == "nv_feed_frames_processed_total"
            && s.labels.get("feed") == Some("beta")));
    assert!(scrape
        .samples
        .iter()
        .any(|s| s.metric == "nv_stage_latency_seconds"));

    // Graceful stop on SIGTERM.
    d.stop();
}

#[test]
fn health_events_stream_as_sse() {
    let dir = std::env::temp_dir().join(format!("nv-api-sse-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let d = start(&dir);
    let b = d.base();
    let a = agent();
    let mut resp = a
        .get(&format!("{b}/api/v1/events"))
        .header("Authorization", &format!("Bearer {TOKEN}"))
        .call()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let mut reader = BufReader::new(resp.body_mut().as_reader());
    // A camera with credentials on a closed port: its disconnect events must not carry the
    // password.
    let (status, text) = call(
        "POST",
        &format!("{b}/api/v1/feeds"),
        true,
        Some(
            r#"{"name":"cam","source":"rtsp://admin:Pl4nt@d/hunter2:t#9x7?@127.0.0.1:9/stream","stages":[{"kind":"brightness"}]}"#,
        ),
    );
    assert_eq!(status, 201, "{text}");
    let mut line = String::new();
    let mut saw_disconnect = false;
    let mut saw_stop = false;
    let base = b.to_owned();
    let mut remover = None;
    while !(saw_disconnect && saw_stop) {
        line.clear();
        assert!(reader.read_line(&mut line).unwrap() > 0, "stream ended");
        assert!(
            !line.contains("hunter2") && !line.contains("Pl4nt"),
            "credentials in an event: {line}"
        );
        let Some(data) = line.strip_prefix("data: ") else {
            continue;
        };
        let v = json(data.trim());
        if v["event"] == "source_disconnected" && !saw_disconnect {
            saw_disconnect = true;
            assert!(
                v["message"].as_str().unwrap().contains("***@127.0.0.1:9"),
                "{v}"
            );
            // Now remove another feed: its feed_stopped must show up on the stream too.
            let base = base.clone();
            remover = Some(
                std::thread::Builder::new()
                    .name("remover".into())
                    .spawn(move || call("DELETE", &format!("{base}/api/v1/feeds/2"), true, None).0)
                    .unwrap(),
            );
        }
        if v["event"] == "feed_stopped" {
            assert_eq!(v["feed_id"], 2);
            saw_stop = true;
        }
    }
    let remover = remover.unwrap();
    assert_eq!(remover.join().unwrap(), 204);
}

/// Hostile requests: each is refused with a JSON `{code, message}` body and the daemon keeps
/// serving. Feeds are addressable by name; names follow the documented rules and are unique.
#[test]
fn hostile_requests_get_json_errors_and_the_daemon_stays_up() {
    let dir = std::env::temp_dir().join(format!("nv-api-hostile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let d = start(&dir);
    let b = d.base();
    let post = |body: &str| call("POST", &format!("{b}/api/v1/feeds"), true, Some(body));
    let feed = |extra: &str| {
        format!(
            r#"{{"name":"big","source":"synthetic:64x48@10","stages":[{{"kind":"brightness"}}]{extra}}}"#
        )
    };
    // Capacities far beyond the documented maxima: 400 naming key, value and limit.
    for (extra, key) in [
        (r#","queue_depth":1000000000000"#, "queue_depth"),
        (
            r#","sink_queue_capacity":1000000000000"#,
            "sink_queue_capacity",
        ),
        (r#","queue_depth":9223372036854775807"#, "queue_depth"),
        (r#","max_fps":1e300"#, "max_fps"),
        (r#","snapshot_fps":1e999"#, "out of range"),
        (r#","snapshot_fps":1e300"#, "snapshot_fps"),
        (r#","restart":{"delay_secs":-1}"#, "restart.delay_secs"),
        (
            r#","reconnect":{"max_delay_ms":18446744073709551615}"#,
            "feed",
        ),
        (r#","queue_depth":-1"#, "queue_depth"),
    ] {
        let (status, text) = post(&feed(extra));
        assert_eq!(status, 400, "{extra}: {text}");
        let v = json(&text);
        assert!(v["code"].is_string() && v["message"].is_string(), "{text}");
        assert!(text.contains(key), "{extra}: {text}");
    }
    let (status, text) = post(&feed(r#","queue_depth":1000000000000"#));
    assert_eq!(status, 400);
    assert!(
        text.contains("`1000000000000` is out of range: must be within 1..=4096"),
        "{text}"
    );

    // Names: empty, NUL, newline, very long, all digits, duplicate: all refused.
    let long = "n".repeat(100_000);
    for name in ["", r"a\u0000b", r"a\nb", long.as_str(), "12345", "alpha"] {
        let body = format!(
            r#"{{"name":"{name}","source":"synthetic:64x48@10","stages":[{{"kind":"brightness"}}]}}"#
        );
        let (status, text) = post(&body);
        assert_eq!(status, 400, "{}: {text}", name.len());
        assert_eq!(json(&text)["code"], "invalid_config", "{text}");
        assert!(text.len() < 4096, "the error does not echo a huge name");
    }

    // A feed by name wherever an id is accepted.
    let (status, text) = call("GET", &format!("{b}/api/v1/feeds/beta"), true, None);
    assert_eq!(status, 200, "{text}");
    assert_eq!(json(&text)["name"], "beta");
    assert_eq!(
        call("POST", &format!("{b}/api/v1/feeds/beta/pause"), true, None).0,
        204
    );
    assert_eq!(
        call("POST", &format!("{b}/api/v1/feeds/beta/resume"), true, None).0,
        204
    );

    // Every error status carries the JSON body: 404 route, 405 method, 413 body, 401.
    let a = agent();
    let mut checks = vec![call("GET", &format!("{b}/nope"), true, None)];
    let resp = a
        .put(&format!("{b}/api/v1/feeds"))
        .header("Authorization", &format!("Bearer {TOKEN}"))
        .send("{}")
        .unwrap();
    let status = resp.status().as_u16();
    checks.push((status, resp.into_body().read_to_string().unwrap()));
    checks.push(oversized_post(b));
    checks.push(call("GET", &format!("{b}/api/v1/feeds"), false, None));
    let codes: Vec<u16> = checks.iter().map(|c| c.0).collect();
    assert_eq!(codes, vec![404, 405, 413, 401]);
    for (status, text) in &checks {
        let v = json(text);
        assert!(
            v["code"].is_string() && v["message"].is_string(),
            "{status}: {text}"
        );
    }

    // Credentials with every reserved character unencoded: accepted, never shown.
    for (i, pw) in ["Pl4nted/S3cret-9x7", "Pl4nt@d/S3cr:t#9x7", "S3cr?x#y@z:w/v"]
        .iter()
        .enumerate()
    {
        let name = format!("cam{i}");
        let body = format!(
            r#"{{"name":"{name}","source":"rtsp://viewer:{pw}@127.0.0.1:9/stream","stages":[{{"kind":"brightness"}}]}}"#
        );
        let (status, text) = post(&body);
        assert_eq!(status, 201, "{text}");
        assert!(text.contains("rtsp://***@127.0.0.1:9/stream"), "{text}");
        for path in [
            "/api/v1/feeds".to_owned(),
            "/api/v1/diagnostics".to_owned(),
            "/metrics".to_owned(),
            format!("/api/v1/feeds/{name}"),
        ] {
            let (_, body) = call("GET", &format!("{b}{path}"), true, None);
            assert!(!body.contains("S3cr"), "{path} leaked credentials: {body}");
        }
    }
    // A removed feed's series leave /metrics (its final feed_stopped included).
    let (_, text) = call("GET", &format!("{b}/api/v1/feeds/cam0"), true, None);
    let cam0 = json(&text)["id"].as_u64().unwrap();
    assert_eq!(
        call("DELETE", &format!("{b}/api/v1/feeds/cam0"), true, None).0,
        204
    );
    let (_, metrics) = call("GET", &format!("{b}/metrics"), true, None);
    assert!(
        !metrics.contains("feed=\"cam0\"") && !metrics.contains(&format!("feed_id=\"{cam0}\"")),
        "series of the removed feed remain:\n{metrics}"
    );
    assert!(metrics.contains("feed=\"cam1\""), "{metrics}");

    // URLs without a host are refused.
    for src in ["rtsp://:@", "rtsp://@/x", "rtsp://viewer:pw@/test"] {
        let body =
            format!(r#"{{"name":"nohost","source":"{src}","stages":[{{"kind":"brightness"}}]}}"#);
        let (status, text) = post(&body);
        assert_eq!(status, 400, "{src}: {text}");
        assert!(text.contains("has no host"), "{text}");
    }

    // Still alive and serving.
    assert_eq!(call("GET", &format!("{b}/healthz"), false, None).0, 200);
    let mut d = d;
    assert!(d.is_running(), "the daemon exited");
}
