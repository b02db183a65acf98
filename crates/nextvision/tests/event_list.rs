//! The recent perception events over HTTP: `GET /api/v1/events/recent` (filters, limit
//! bounds, token) and `GET /api/v1/events/stream` (SSE delivering events a feed fires,
//! replay after a sequence number, client cap, closed clients giving their place back),
//! against a daemon whose synthetic feed's tracked boxes enter a zone and cross a line.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nv_test_util::daemon::Daemon;
use serde_json::Value;

const TOKEN: &str = "event-list-token-0123456789";
const DEADLINE: Duration = Duration::from_secs(90);

fn start(dir: &Path) -> Daemon {
    let config = format!(
        r#"
[api]
listen = "127.0.0.1:0"
bearer_token = "{TOKEN}"
recent_events = 50
max_event_stream_clients = 2

[[feeds]]
name = "north"
source = "synthetic:320x240@15"
[[feeds.stages]]
kind = "blob-detector"
[[feeds.stages]]
kind = "tracker"
[[feeds.stages]]
kind = "zones"
anchor = "center"
zones = [{{ name = "dock", points = [[0.0, 0.0], [0.5, 0.0], [0.5, 1.0], [0.0, 1.0]] }}]
lines = [{{ name = "gate", from = [0.5, 1.0], to = [0.5, 0.0] }}]

[[feeds]]
name = "south"
source = "synthetic:160x120@10"
[[feeds.stages]]
kind = "brightness"
"#
    );
    let path = dir.join("nextvision.toml");
    std::fs::write(&path, config).unwrap();
    Daemon::run(Path::new(env!("CARGO_BIN_EXE_nextvision")), &path, &[])
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(DEADLINE))
        .build()
        .into()
}

/// `(status, JSON body)` of a GET, with or without the token.
fn get(url: &str, auth: bool) -> (u16, Value) {
    let mut r = agent().get(url);
    if auth {
        r = r.header("Authorization", &format!("Bearer {TOKEN}"));
    }
    let mut resp = r.call().unwrap();
    let text = resp.body_mut().read_to_string().unwrap();
    (
        resp.status().as_u16(),
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

fn recent(base: &str, query: &str) -> Value {
    let (status, v) = get(&format!("{base}/api/v1/events/recent?{query}"), true);
    assert_eq!(status, 200, "{v}");
    v
}

fn events(v: &Value) -> &Vec<Value> {
    v["events"].as_array().unwrap()
}

/// Polls an observable state until it holds.
fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// An open SSE stream read line by line.
struct Stream {
    lines: std::io::Lines<BufReader<Box<dyn std::io::Read + Send + Sync + 'static>>>,
}

impl Stream {
    fn open(url: &str) -> Result<Self, (u16, Value)> {
        let resp = agent()
            .get(url)
            .header("Authorization", &format!("Bearer {TOKEN}"))
            .call()
            .unwrap();
        let status = resp.status().as_u16();
        if status != 200 {
            let text = resp.into_body().read_to_string().unwrap();
            return Err((status, serde_json::from_str(&text).unwrap_or(Value::Null)));
        }
        let reader: Box<dyn std::io::Read + Send + Sync> = Box::new(resp.into_body().into_reader());
        Ok(Self {
            lines: BufReader::new(reader).lines(),
        })
    }

    /// The next message's `(id, data)` (keep-alive comments skipped).
    fn next(&mut self) -> (Option<u64>, Value) {
        let mut id = None;
        loop {
            let line = self.lines.next().expect("stream ended").unwrap();
            if let Some(v) = line.strip_prefix("id:") {
                id = Some(v.trim().parse().unwrap());
            } else if let Some(v) = line.strip_prefix("data:") {
                return (id, serde_json::from_str(v.trim()).unwrap());
            }
        }
    }
}

#[test]
fn recent_events_filters_limits_and_stream() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = start(dir.path());
    let base = daemon.base().to_owned();

    // Both routes want the token.
    assert_eq!(get(&format!("{base}/api/v1/events/recent"), false).0, 401);
    assert_eq!(get(&format!("{base}/api/v1/events/stream"), false).0, 401);

    // A stream opened before any event: it gets north's first events as they happen.
    let mut live = Stream::open(&format!("{base}/api/v1/events/stream?feed=north")).unwrap();
    let (first_seq, first) = live.next();
    assert_eq!(first["record"], "event");
    assert_eq!(first["feed"], "north");
    let first_seq = first_seq.unwrap();
    // The same event is in the list, under the same id.
    let all = recent(&base, "limit=50");
    assert!(
        events(&all)
            .iter()
            .any(|e| e["event_id"] == first["event_id"]),
        "{all}"
    );

    // Enough events to look at: at least one crossing of the line and one zone entry.
    wait_for("a crossing and a zone entry", || {
        let v = recent(&base, "limit=50");
        let kinds: Vec<&str> = events(&v)
            .iter()
            .filter_map(|e| e["kind"].as_str())
            .collect();
        kinds.contains(&"line_crossed") && kinds.contains(&"zone_enter")
    });

    // Newest first, at most `limit`; the ring keeps at most `recent_events` (50).
    let v = recent(&base, "limit=2");
    assert_eq!(events(&v).len(), 2);
    let frame = |e: &Value| e["frame_seq"].as_u64().unwrap();
    assert!(frame(&events(&v)[0]) >= frame(&events(&v)[1]));
    assert_eq!(v["capacity"], 50);
    assert!(v["kept"].as_u64().unwrap() <= 50);
    assert!(v["last_seq"].as_u64().unwrap() >= first_seq);
    let v = recent(&base, "");
    assert!(events(&v).len() <= 50);

    // Filters: by kind, by zone or line name, by feed name or id.
    let v = recent(&base, "kind=line_crossed&limit=50");
    assert!(!events(&v).is_empty());
    for e in events(&v) {
        assert_eq!(
            (&e["kind"], &e["line"]),
            (&"line_crossed".into(), &"gate".into())
        );
        assert!(e["direction"] == "left_to_right" || e["direction"] == "right_to_left");
    }
    let v = recent(&base, "zone=dock&limit=50");
    assert!(!events(&v).is_empty());
    for e in events(&v) {
        assert_eq!(e["zone"], "dock", "{e}");
    }
    let v = recent(&base, "zone=gate&kind=zone_enter");
    assert_eq!(events(&v).len(), 0, "a line has no zone entries");
    let north_id = events(&recent(&base, "feed=north&limit=1"))[0]["feed_id"]
        .as_u64()
        .unwrap();
    let v = recent(&base, &format!("feed={north_id}&limit=50"));
    assert!(!events(&v).is_empty());
    assert!(events(&v).iter().all(|e| e["feed"] == "north"));
    assert_eq!(events(&recent(&base, "feed=south&limit=50")).len(), 0);
    assert_eq!(events(&recent(&base, "feed=nowhere")).len(), 0);

    // Bad limits are refused, naming the field and the value.
    for (query, needle) in [
        ("limit=0", "limit: `0`"),
        ("limit=51", "limit: `51`"),
        ("limit=ten", "limit: `ten`"),
    ] {
        let (status, e) = get(&format!("{base}/api/v1/events/recent?{query}"), true);
        assert_eq!((status, &e["code"]), (400, &"invalid_query".into()), "{e}");
        assert!(e["message"].as_str().unwrap().contains(needle), "{e}");
    }
    let (status, e) = get(&format!("{base}/api/v1/events/stream?after=-1"), true);
    assert_eq!((status, &e["code"]), (400, &"invalid_query".into()), "{e}");

    // Replay: a stream resumed after a kept event first gets exactly the ones after it.
    let v = recent(&base, "limit=3");
    let last = v["last_seq"].as_u64().unwrap();
    let mut resumed =
        Stream::open(&format!("{base}/api/v1/events/stream?after={}", last - 2)).unwrap();
    let (a, ea) = resumed.next();
    let (b, eb) = resumed.next();
    assert_eq!((a, b), (Some(last - 1), Some(last)));
    // `recent` lists newest first: the replay is the same two events, oldest first.
    assert_eq!(ea["event_id"], events(&v)[1]["event_id"]);
    assert_eq!(eb["event_id"], events(&v)[0]["event_id"]);

    // A closed client gives its place back (noticed when the next event is written to
    // it), and is not counted as slow.
    drop(live);
    wait_for("the closed stream's place", || {
        recent(&base, "")["stream_clients"] == 1
    });
    // Two streams open, the cap: a third is refused.
    let _second = Stream::open(&format!("{base}/api/v1/events/stream?feed=south")).unwrap();
    assert_eq!(recent(&base, "")["stream_clients"], 2);
    let (status, e) = Stream::open(&format!("{base}/api/v1/events/stream"))
        .err()
        .unwrap();
    assert_eq!(
        (status, &e["code"]),
        (503, &"too_many_event_clients".into())
    );
    drop(resumed);
    wait_for("the second closed stream's place", || {
        recent(&base, "")["stream_clients"] == 1
    });
    let mut crossings =
        Stream::open(&format!("{base}/api/v1/events/stream?kind=line_crossed")).unwrap();
    let (_, crossing) = crossings.next();
    assert_eq!(
        (&crossing["kind"], &crossing["line"]),
        (&"line_crossed".into(), &"gate".into())
    );
    assert_eq!(recent(&base, "")["stream_clients_dropped_slow"], 0);
    daemon.stop();
}

/// A stream client that stops reading: once its buffer (256 events) and the sockets'
/// buffers are full it is dropped and counted, the feed keeps running, another client
/// keeps receiving, and the slow client, reading again, finds every buffered event in
/// order, then the `dropped` message, then the end of the stream.
#[test]
fn a_stream_client_that_stops_reading_is_dropped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    // A fast feed (500 fps, about 170 events/s): the slow client's buffers fill within
    // seconds, while the reading client keeps up even on a loaded machine (an unpaced feed
    // outran it too, and then both were dropped).
    let config = format!(
        r#"
[api]
listen = "127.0.0.1:0"
bearer_token = "{TOKEN}"

[[feeds]]
name = "fast"
source = "synthetic:160x120@500"
[[feeds.stages]]
kind = "blob-detector"
[[feeds.stages]]
kind = "tracker"
[[feeds.stages]]
kind = "zones"
anchor = "center"
zones = [{{ name = "left", points = [[0.0, 0.0], [0.5, 0.0], [0.5, 1.0], [0.0, 1.0]] }}]
lines = [{{ name = "middle", from = [0.5, 1.0], to = [0.5, 0.0] }}]
"#
    );
    let path = dir.path().join("nextvision.toml");
    std::fs::write(&path, config).unwrap();
    let daemon = Daemon::run(Path::new(env!("CARGO_BIN_EXE_nextvision")), &path, &[]);
    let base = daemon.base().to_owned();

    // The slow client: a small receive buffer, reads the response head, then nothing.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    let addr: std::net::SocketAddr = base.trim_start_matches("http://").parse().unwrap();
    let stream = rt.block_on(async {
        let s = tokio::net::TcpSocket::new_v4().unwrap();
        s.set_recv_buffer_size(4096).unwrap();
        s.connect(addr).await.unwrap()
    });
    let stream = stream.into_std().unwrap();
    stream.set_nonblocking(false).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    use std::io::Write as _;
    (&stream)
        .write_all(
            format!(
                "GET /api/v1/events/stream?feed=fast HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
            )
            .as_bytes(),
        )
        .unwrap();
    let mut slow = BufReader::new(&stream);
    let mut line = String::new();
    slow.read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 200"), "{line}");

    // A reading client alongside it, drained by a thread of its own as events come, so
    // only the slow client falls behind.
    let reading = Stream::open(&format!("{base}/api/v1/events/stream?feed=fast")).unwrap();
    assert_eq!(recent(&base, "")["stream_clients"], 2);
    let received = Arc::new(AtomicU64::new(0));
    let reader = {
        let received = Arc::clone(&received);
        std::thread::Builder::new()
            .name("reading-client".into())
            .spawn(move || {
                let mut lines = reading.lines;
                while let Some(Ok(line)) = lines.next() {
                    if line.starts_with("data:") {
                        received.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
            .unwrap()
    };
    let frames = || {
        let (_, f) = get(&format!("{base}/api/v1/feeds/fast"), true);
        f["metrics"]["frames_processed"].as_u64().unwrap()
    };
    wait_for("the slow client dropped", || {
        recent(&base, "")["stream_clients_dropped_slow"] == 1
    });
    // Dropped, it keeps its place until its connection ends.
    let v = recent(&base, "");
    assert_eq!(v["stream_clients"], 2, "{v}");
    // Perception went on, and the other client still gets new events.
    let before = frames();
    wait_for("more frames", || frames() > before);
    let seen = received.load(Ordering::Relaxed);
    wait_for("the reading client to receive more", || {
        received.load(Ordering::Relaxed) > seen
    });

    // Reading again: consecutive events (the 256 buffered and what the sockets held),
    // then the notice, then the end (chunked body's last chunk).
    let mut ids = Vec::new();
    let mut notice = false;
    loop {
        line.clear();
        if slow.read_line(&mut line).unwrap() == 0 || line.trim() == "0" {
            break;
        }
        if let Some(id) = line.strip_prefix("id:") {
            ids.push(id.trim().parse::<u64>().unwrap());
        }
        if line.trim() == "event: dropped" || line.trim() == "event:dropped" {
            notice = true;
        }
        if notice && line.contains("too_slow") {
            break;
        }
    }
    assert!(notice, "no `dropped` message after {} events", ids.len());
    assert!(ids.len() >= 256, "{} events before the notice", ids.len());
    assert!(
        ids.windows(2).all(|w| w[1] == w[0] + 1),
        "events skipped before the drop"
    );
    assert_eq!(recent(&base, "")["stream_clients_dropped_slow"], 1);
    // The stream ended: its place is free.
    wait_for("the slow client's place", || {
        recent(&base, "")["stream_clients"] == 1
    });
    daemon.stop();
    reader.join().unwrap();
}
