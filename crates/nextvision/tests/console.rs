//! Annotated imagery over HTTP (snapshots, MJPEG, event snapshots) and the web console
//! driven in a real headless Chromium through WebDriver (Debian's `chromium` and
//! `chromium-driver`, installed by scripts/setup.sh).
//!
//! Set `NEXTVISION_SCREENSHOTS=DIR` to keep the browser test's screenshots (the ones in
//! docs/console/ come from `NEXTVISION_SCREENSHOTS=$PWD/docs/console`, run from the
//! workspace root: tests run in the crate's directory, so a relative DIR lands there).
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

#[path = "support/browser.rs"]
mod browser;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::time::{Duration, Instant};

use browser::{js, requests, screenshot, until, Driver, DEADLINE};
use fantoccini::Locator;
use nv_test_util::daemon::Daemon;
use serde_json::{json, Value};

const TOKEN: &str = "console-token-0123456789";
const WRONG_TOKEN: &str = "not-the-token-at-all";

fn start(dir: &Path, max_stream_clients: usize) -> Daemon {
    let clip = dir.join("clip.mp4");
    nv_test_util::clip::test_pattern_mp4(&clip, 60, 320, 240, "ball");
    let config = format!(
        r#"
[api]
listen = "127.0.0.1:0"
bearer_token = "{TOKEN}"
max_stream_clients = {max_stream_clients}
stream_max_fps = 10.0

[[sinks]]
name = "records"
kind = "file"
path = "{}"

[[feeds]]
name = "north"
source = "synthetic:320x240@10"
snapshot_fps = 5.0
sinks = ["records"]
[[feeds.stages]]
kind = "blob-detector"
[[feeds.stages]]
kind = "tracker"
[[feeds.stages]]
kind = "zones"
zones = [{{ name = "dock", points = [[0.1, 0.1], [0.5, 0.1], [0.5, 0.6], [0.1, 0.6]] }}]
lines = [{{ name = "gate", from = [0.75, 0.2], to = [0.75, 0.9] }}]

[[feeds]]
name = "south"
source = "synthetic:320x240@10"
snapshot_fps = 5.0
[[feeds.stages]]
kind = "brightness"

[[feeds]]
name = "clip"
source = "{}"
loop = true
real_time = true
snapshot_fps = 5.0
[[feeds.stages]]
kind = "motion-detector"
"#,
        dir.join("records.jsonl").display(),
        clip.display()
    );
    let path = dir.join("nextvision.toml");
    std::fs::write(&path, config).unwrap();
    Daemon::run(Path::new(env!("CARGO_BIN_EXE_nextvision")), &path, &[])
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .into()
}

/// `(status, content type, body)` of an authorised GET.
fn get(url: &str, auth: bool) -> (u16, String, Vec<u8>) {
    let mut r = agent().get(url);
    if auth {
        r = r.header("Authorization", &format!("Bearer {TOKEN}"));
    }
    let mut resp = r.call().unwrap();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let mut body = Vec::new();
    resp.body_mut().as_reader().read_to_end(&mut body).unwrap();
    (resp.status().as_u16(), ct, body)
}

fn feeds(base: &str) -> Vec<Value> {
    let (status, _, body) = get(&format!("{base}/api/v1/feeds"), true);
    assert_eq!(status, 200);
    serde_json::from_slice(&body).unwrap()
}

/// Polls `check` (an observable state, not a timer) until it holds.
fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn decode(jpeg: &[u8]) -> image::RgbImage {
    image::load_from_memory_with_format(jpeg, image::ImageFormat::Jpeg)
        .unwrap()
        .to_rgb8()
}

/// Reads one multipart part: `(headers, body)`.
fn read_part(r: &mut impl BufRead) -> (Vec<String>, Vec<u8>) {
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        assert!(r.read_line(&mut line).unwrap() > 0, "stream ended");
        let line = line.trim_end().to_owned();
        if line.is_empty() && !headers.is_empty() {
            break;
        }
        if !line.is_empty() {
            headers.push(line);
        }
    }
    let len: usize = headers
        .iter()
        .find_map(|h| h.strip_prefix("Content-Length: "))
        .unwrap()
        .parse()
        .unwrap();
    let mut body = vec![0; len];
    r.read_exact(&mut body).unwrap();
    (headers, body)
}

#[test]
fn annotated_snapshots_mjpeg_and_event_snapshots_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = start(dir.path(), 2);
    let base = daemon.base().to_owned();

    // Snapshot: a 320x240 JPEG with the zone drawn (its right edge at x = 160, from
    // y = 24 to 144) and the line (x = 240, y = 48 to 216).
    let url = format!("{base}/api/v1/feeds/north/snapshot.jpg");
    wait_for("a snapshot", || get(&url, true).0 == 200);
    let (status, ct, jpeg) = get(&url, true);
    assert_eq!((status, ct.as_str()), (200, "image/jpeg"));
    let img = decode(&jpeg);
    assert_eq!(img.dimensions(), (320, 240));
    let near =
        |p: &image::Rgb<u8>, want: [u8; 3]| p.0.iter().zip(want).all(|(a, b)| a.abs_diff(b) < 70);
    // The synthetic blobs' boxes move over the edges: most samples must show the colour.
    let share = |points: &[(u32, u32)], want: [u8; 3]| {
        let hits = points
            .iter()
            .filter(|(x, y)| near(img.get_pixel(*x, *y), want))
            .count();
        hits as f64 / points.len() as f64
    };
    let mut zone_edge: Vec<(u32, u32)> = (40..=136)
        .step_by(8)
        .flat_map(|y| [(32, y), (160, y)])
        .collect();
    zone_edge.extend((40..=152).step_by(8).map(|x| (x, 144)));
    let zone = share(&zone_edge, [0, 190, 255]);
    assert!(
        zone >= 0.7,
        "zone edge drawn at {:.0}% of its samples",
        zone * 100.0
    );
    let line_points: Vec<(u32, u32)> = (56..=208)
        .step_by(8)
        .filter(|y| !(128..=144).contains(y))
        .map(|y| (240, y))
        .collect();
    let line = share(&line_points, [255, 60, 200]);
    assert!(
        line >= 0.7,
        "line drawn at {:.0}% of its samples",
        line * 100.0
    );
    assert_eq!(get(&url, false).0, 401);

    // A smaller image on request (width rounded up to a multiple of 80, drawn at size).
    let (status, _, small) = get(&format!("{url}?width=150"), true);
    assert_eq!(status, 200);
    assert_eq!(decode(&small).dimensions(), (160, 120));
    let (status, _, full) = get(&format!("{url}?width=5000"), true);
    assert_eq!((status, decode(&full).dimensions()), (200, (320, 240)));

    // Polling with the ETag: 304 without a body while the frame is the same (frames keep
    // coming, so retry until two requests fall between frames).
    let conditional = |etag: &str| {
        let mut r = agent()
            .get(&url)
            .header("Authorization", &format!("Bearer {TOKEN}"))
            .header("If-None-Match", etag)
            .call()
            .unwrap();
        let tag = r
            .headers()
            .get("etag")
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        let body = r.body_mut().read_to_vec().unwrap();
        (r.status().as_u16(), tag, body.len())
    };
    let (status, mut etag, _) = conditional("\"0-0\"");
    assert_eq!(status, 200);
    let mut not_modified = false;
    for _ in 0..50 {
        let (status, tag, len) = conditional(&etag);
        if status == 304 {
            assert_eq!((tag.as_str(), len), (etag.as_str(), 0));
            not_modified = true;
            break;
        }
        assert_eq!(status, 200);
        etag = tag;
    }
    assert!(not_modified, "never a 304 in 50 tries");

    // The overlay route names what is drawn.
    let (_, _, o) = get(&format!("{base}/api/v1/feeds/north/overlay"), true);
    let o: Value = serde_json::from_slice(&o).unwrap();
    assert_eq!(o["zones"][0]["name"], "dock");
    assert_eq!(o["lines"][0]["from"], json!([0.75, 0.2]));

    // A run-time zone edit changes what is drawn.
    let mut put = agent()
        .put(&format!("{base}/api/v1/feeds/north/zones"))
        .header("Authorization", &format!("Bearer {TOKEN}"))
        .header("Content-Type", "application/json")
        .send(
            r#"{"zones":[{"name":"dock","points":[[0.1,0.1],[0.5,0.1],[0.5,0.6],[0.1,0.6]]}],
                "lines":[{"name":"exit","from":[0.2,0.8],"to":[0.9,0.8]}]}"#,
        )
        .unwrap();
    assert_eq!(
        put.status().as_u16(),
        200,
        "{}",
        put.body_mut().read_to_string().unwrap()
    );
    let (_, _, o) = get(&format!("{base}/api/v1/feeds/north/overlay"), true);
    let o: Value = serde_json::from_slice(&o).unwrap();
    assert_eq!(o["lines"][0]["name"], "exit");
    assert_eq!(o["lines"][0]["to"], json!([0.9, 0.8]));

    // MJPEG: parts are JPEGs of the frame size, newer each time (once south has a frame).
    let south = format!("{base}/api/v1/feeds/south/snapshot.jpg");
    wait_for("south's first snapshot", || get(&south, true).0 == 200);
    let mut resp = agent()
        .get(&format!("{base}/api/v1/feeds/south/stream.mjpeg"))
        .header("Authorization", &format!("Bearer {TOKEN}"))
        .call()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        resp.headers().get("content-type").unwrap(),
        "multipart/x-mixed-replace; boundary=nextvision-frame"
    );
    let mut reader = BufReader::new(resp.body_mut().as_reader());
    let mut last_seq = None;
    for _ in 0..3 {
        let (headers, body) = read_part(&mut reader);
        assert!(
            headers.contains(&"--nextvision-frame".to_owned()),
            "{headers:?}"
        );
        assert_eq!(decode(&body).dimensions(), (320, 240));
        let seq: u64 = headers
            .iter()
            .find_map(|h| h.strip_prefix("X-Frame-Seq: "))
            .unwrap()
            .parse()
            .unwrap();
        assert!(last_seq.is_none_or(|l| seq > l), "{seq} after {last_seq:?}");
        last_seq = Some(seq);
    }
    // Two streams allowed (this one and one more): the third gets a JSON 503.
    let second = agent()
        .get(&format!("{base}/api/v1/feeds/north/stream.mjpeg"))
        .header("Authorization", &format!("Bearer {TOKEN}"))
        .call()
        .unwrap();
    assert_eq!(second.status().as_u16(), 200);
    let (status, ct, body) = get(&format!("{base}/api/v1/feeds/clip/stream.mjpeg"), true);
    assert_eq!((status, ct.as_str()), (503, "application/json"));
    let e: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(e["code"], "too_many_stream_clients");
    assert_eq!(
        get(&format!("{base}/api/v1/feeds/clip/stream.mjpeg"), false).0,
        401
    );
    // A closed stream gives its place back.
    drop(reader);
    drop(resp);
    wait_for("a stream slot", || {
        let r = agent()
            .get(&format!("{base}/api/v1/feeds/clip/stream.mjpeg"))
            .header("Authorization", &format!("Bearer {TOKEN}"))
            .call()
            .unwrap();
        r.status().as_u16() == 200
    });
    drop(second);
    let (status, _, _) = get(
        &format!("{base}/api/v1/feeds/clip/stream.mjpeg?fps=-1"),
        true,
    );
    assert_eq!(status, 400, "fps must be positive");

    // A feed without frames (no snapshot_fps) has no stream: 404, no slot taken.
    let mut added = agent()
        .post(&format!("{base}/api/v1/feeds"))
        .header("Authorization", &format!("Bearer {TOKEN}"))
        .header("Content-Type", "application/json")
        .send(r#"{"name":"dark","source":"synthetic:64x48@10","stages":[{"kind":"brightness"}]}"#)
        .unwrap();
    assert_eq!(
        added.status().as_u16(),
        201,
        "{}",
        added.body_mut().read_to_string().unwrap()
    );
    let (status, _, body) = get(&format!("{base}/api/v1/feeds/dark/stream.mjpeg"), true);
    assert_eq!(status, 404);
    let e: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(e["code"], "no_snapshot");

    // Event snapshots: unknown ids are a JSON 404.
    let (status, ct, body) = get(&format!("{base}/api/v1/events/nope/snapshot.jpg"), true);
    assert_eq!((status, ct.as_str()), (404, "application/json"));
    let e: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(e["code"], "snapshot_not_found");

    // North's tracker and zones fire events; each keeps the frame it fired on, served by
    // its event id (from the records file). A burst may skip pictures, so any of the
    // latest events will do.
    let records = dir.path().join("records.jsonl");
    let mut picture = None;
    wait_for("an event snapshot", || {
        let text = std::fs::read_to_string(&records).unwrap_or_default();
        let ids: Vec<String> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .flat_map(|r| r["events"].as_array().cloned().unwrap_or_default())
            .filter_map(|e| e["event_id"].as_str().map(str::to_owned))
            .collect();
        picture = ids.iter().rev().take(20).find_map(|id| {
            let (status, ct, body) = get(&format!("{base}/api/v1/events/{id}/snapshot.jpg"), true);
            (status == 200 && ct == "image/jpeg").then_some(body)
        });
        picture.is_some()
    });
    let img = decode(&picture.unwrap());
    assert_eq!((img.width(), img.height()), (320, 240));

    // The console page needs no token and loads nothing from elsewhere.
    let (status, ct, page) = get(&format!("{base}/"), false);
    assert_eq!((status, ct.as_str()), (200, "text/html; charset=utf-8"));
    assert!(String::from_utf8_lossy(&page).contains("/console/app.js"));
    let (_, ct, _) = get(&format!("{base}/console/app.js"), false);
    assert_eq!(ct, "text/javascript; charset=utf-8");
    let (status, _, sinks) = get(&format!("{base}/api/v1/sinks"), true);
    assert_eq!(status, 200);
    let sinks: Value = serde_json::from_slice(&sinks).unwrap();
    assert_eq!(sinks[0]["name"], "records");
    assert!(sinks[0]["delivered"].is_u64() && sinks[0]["failed"].is_u64());
}

/// The `frameSeq` of a tile's image (the newest frame it shows).
fn tile_seq(feed: &str) -> String {
    format!("Number((document.querySelector('li.tile[data-feed=\"{feed}\"] img') || {{dataset: {{}}}}).dataset.frameSeq || -1)")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_in_headless_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = start(dir.path(), 8);
    let base = daemon.base().to_owned();
    let driver = Driver::start();
    let c = browser::browser(&driver).await;
    c.goto(&format!("{base}/")).await.unwrap();

    // The daemon wants a token: a wrong one is refused, the right one logs in.
    browser::enter_token(&c, WRONG_TOKEN).await;
    until(
        &c,
        "the refusal",
        "document.querySelector('.login [role=alert]')?.textContent.includes('refused') === true",
    )
    .await;
    let input = c.find(Locator::Css("#token")).await.unwrap();
    input.send_keys(TOKEN).await.unwrap();
    c.find(Locator::Css(".login button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();

    // The grid: three tiles, and both synthetic feeds' images keep changing.
    until(
        &c,
        "three tiles",
        "document.querySelectorAll('li.tile').length === 3",
    )
    .await;
    for feed in ["north", "south", "clip"] {
        until(&c, "a frame", &format!("{} >= 0", tile_seq(feed))).await;
    }
    for feed in ["north", "south"] {
        let first = js(&c, &tile_seq(feed)).await;
        until(
            &c,
            "a newer frame",
            &format!("{} > {first}", tile_seq(feed)),
        )
        .await;
    }
    until(
        &c,
        "fps figures",
        "[...document.querySelectorAll('[data-stat=fps]')].every(e => e.textContent !== '–')",
    )
    .await;
    screenshot(&c, "grid.png").await;

    // Pause from the page (mouse), observed in the API.
    let south = |what: &str| format!("li.tile[data-feed=\"south\"] button[data-action=\"{what}\"]");
    c.find(Locator::Css(&south("pause")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for("south paused", || {
        feeds(&base)
            .iter()
            .any(|f| f["name"] == "south" && f["paused"] == true)
    });
    until(
        &c,
        "the paused badge",
        "document.querySelector('li.tile[data-feed=\"south\"] .badge').textContent === 'paused'",
    )
    .await;
    // Resume with the keyboard: focus the button and press Enter.
    let resume = c
        .wait()
        .at_most(DEADLINE)
        .for_element(Locator::Css(&south("resume")))
        .await
        .unwrap();
    resume.send_keys("\u{E007}").await.unwrap();
    wait_for("south resumed", || {
        feeds(&base)
            .iter()
            .any(|f| f["name"] == "south" && f["paused"] == false)
    });

    // Remove (confirmed in the dialog), observed in the API and on the page.
    c.find(Locator::Css(
        "li.tile[data-feed=\"clip\"] button[data-action=\"remove\"]",
    ))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    c.accept_alert().await.unwrap();
    wait_for("clip removed", || {
        feeds(&base).iter().all(|f| f["name"] != "clip")
    });
    until(
        &c,
        "two tiles",
        "document.querySelectorAll('li.tile').length === 2",
    )
    .await;

    // Add through the form; the server's validation problems are shown, then a good one.
    c.find(Locator::Css(".bar button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let form = c
        .wait()
        .at_most(DEADLINE)
        .for_element(Locator::Css("form.add"))
        .await
        .unwrap();
    form.find(Locator::Css("input[name=name]"))
        .await
        .unwrap()
        .send_keys("east")
        .await
        .unwrap();
    form.find(Locator::Css("input[name=source]"))
        .await
        .unwrap()
        .send_keys("ftp://nowhere/x")
        .await
        .unwrap();
    form.find(Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until(
        &c,
        "the server's problems",
        "document.querySelectorAll('.problems li').length > 0",
    )
    .await;
    let source = form.find(Locator::Css("input[name=source]")).await.unwrap();
    source.clear().await.unwrap();
    source.send_keys("synthetic:320x240@10").await.unwrap();
    form.find(Locator::Css("input[value=brightness]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    form.find(Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for("east added", || {
        feeds(&base).iter().any(|f| f["name"] == "east")
    });
    until(
        &c,
        "three tiles again",
        "document.querySelectorAll('li.tile').length === 3",
    )
    .await;

    // The feed page: live MJPEG read through fetch, stages, zones and lines.
    c.goto(&format!("{base}/#/feed/north")).await.unwrap();
    until(
        &c,
        "the live view",
        "(document.querySelector('.view img')?.src || '').startsWith('blob:')",
    )
    .await;
    until(
        &c,
        "the stages table",
        "[...document.querySelectorAll('td')].some(t => t.textContent === 'tracker')",
    )
    .await;
    until(
        &c,
        "the zone row",
        "[...document.querySelectorAll('td')].some(t => t.textContent === 'dock')",
    )
    .await;
    screenshot(&c, "feed.png").await;

    c.goto(&format!("{base}/#/system")).await.unwrap();
    until(
        &c,
        "the runtime table",
        "[...document.querySelectorAll('td')].some(t => t.textContent === 'uptime')",
    )
    .await;
    screenshot(&c, "system.png").await;

    // A phone-sized viewport: no sideways scrolling on the grid.
    c.set_window_size(390, 844).await.unwrap();
    c.goto(&format!("{base}/#/")).await.unwrap();
    until(
        &c,
        "tiles on a phone",
        "document.querySelectorAll('li.tile').length === 3",
    )
    .await;
    until(
        &c,
        "no horizontal overflow",
        "document.documentElement.scrollWidth <= window.innerWidth",
    )
    .await;
    screenshot(&c, "phone.png").await;

    // No request the browser made carried the token in its URL (the browser's own
    // network log); API calls carried it in the Authorization header.
    let seen = requests(&c, &driver).await;
    assert!(
        seen.iter().any(|(u, _)| u.contains("/stream.mjpeg")),
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .filter(|(u, _)| u.contains("/snapshot.jpg"))
            .count()
            > 3
    );
    for (url, auth) in &seen {
        assert!(!url.contains(TOKEN), "token in a URL: {url}");
        if let Some(a) = auth {
            // The refused token was tried first; nothing else is ever sent.
            let sent = a.strip_prefix("Bearer ").unwrap();
            assert!(sent == TOKEN || sent == WRONG_TOKEN, "{a}");
        }
    }
    assert!(seen
        .iter()
        .any(|(u, a)| u.ends_with("/api/v1/feeds") && a.is_some()));
    let urls = js(
        &c,
        "[location.href, ...performance.getEntriesByType('resource').map(e => e.name)]",
    )
    .await;
    for u in urls.as_array().unwrap() {
        assert!(!u.as_str().unwrap().contains(TOKEN), "token in a URL: {u}");
    }
    assert_eq!(
        js(&c, "sessionStorage.getItem('nextvision.token')").await,
        json!(TOKEN)
    );
    assert_eq!(js(&c, "localStorage.length").await, json!(0));
    c.close().await.unwrap();
}
