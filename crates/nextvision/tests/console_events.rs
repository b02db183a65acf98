//! The console's zone/line editor and event list in a real headless Chromium: draw a
//! counting line on a still frame with pointer actions (shown larger than the frame, so
//! the page must map display to frame pixels), see a server validation problem next to
//! the form, apply the line, and watch crossings appear: counted on the feed page, listed
//! live (SSE through fetch) on the event list with their pictures, both equal to the
//! API's analytics once the feed is paused.
//!
//! The feed is the built-in synthetic source (boxes bouncing across the whole frame, so
//! they cross its middle over and over), a blob detector and the tracker. Set
//! `NEXTVISION_SCREENSHOTS=docs/console` (from the workspace root) to keep the
//! screenshots.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

#[path = "support/browser.rs"]
mod browser;

use std::path::Path;
use std::time::{Duration, Instant};

use browser::{js, requests, screenshot, until, Driver, DEADLINE};
use fantoccini::actions::{InputSource, MouseActions, PointerAction, MOUSE_BUTTON_LEFT};
use fantoccini::{Client, Locator};
use nv_test_util::daemon::Daemon;
use serde_json::{json, Value};

const TOKEN: &str = "console-events-token-0123456789";

fn start(dir: &Path) -> Daemon {
    let config = format!(
        r#"
[api]
listen = "127.0.0.1:0"
bearer_token = "{TOKEN}"

[[feeds]]
name = "yard"
source = "synthetic:320x240@10"
snapshot_fps = 5.0
[[feeds.stages]]
kind = "blob-detector"
[[feeds.stages]]
kind = "tracker"
[[feeds.stages]]
kind = "zones"
anchor = "center"
"#
    );
    let path = dir.join("nextvision.toml");
    std::fs::write(&path, config).unwrap();
    Daemon::run(Path::new(env!("CARGO_BIN_EXE_nextvision")), &path, &[])
}

fn call(method: &str, url: &str) -> (u16, Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .into();
    let auth = format!("Bearer {TOKEN}");
    let mut resp = match method {
        "POST" => agent
            .post(url)
            .header("Authorization", &auth)
            .send_empty()
            .unwrap(),
        _ => agent
            .get(url)
            .header("Authorization", &auth)
            .call()
            .unwrap(),
    };
    let text = resp.body_mut().read_to_string().unwrap();
    (
        resp.status().as_u16(),
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

/// `(left_to_right, right_to_left)` crossings of `line` in the feed's analytics.
fn api_crossings(base: &str, line: &str) -> (u64, u64) {
    let (status, a) = call("GET", &format!("{base}/api/v1/feeds/yard/analytics"));
    assert_eq!(status, 200, "{a}");
    let mut n = (0, 0);
    for l in a["lines"].as_array().unwrap() {
        if l["line"] == line {
            let c = l["crossings"].as_u64().unwrap();
            match l["direction"].as_str().unwrap() {
                "left_to_right" => n.0 += c,
                _ => n.1 += c,
            }
        }
    }
    n
}

/// The count cell of `line` in the feed page's zones table ("" while absent).
fn page_count(line: &str) -> String {
    format!(
        "([...document.querySelectorAll('tr')].find(r => r.cells[0]?.textContent === '{line}')?.cells[2].textContent || '')"
    )
}

/// The text of the editor's points field of the first line.
async fn line_points(c: &Client) -> Vec<(f64, f64)> {
    let text = js(
        c,
        "document.querySelector('li[data-shape=line] input[data-field=points]').value",
    )
    .await;
    text.as_str()
        .unwrap()
        .split_whitespace()
        .map(|p| {
            let (x, y) = p.split_once(',').unwrap();
            (x.parse().unwrap(), y.parse().unwrap())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draw_a_line_on_a_snapshot_and_see_crossings_counted_and_listed_live() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = start(dir.path());
    let base = daemon.base().to_owned();
    let driver = Driver::start();
    let c = browser::browser(&driver).await;
    c.goto(&format!("{base}/#/feed/yard")).await.unwrap();
    browser::enter_token(&c, TOKEN).await;

    // The editor shows a still frame (320x240) larger than it is.
    c.wait()
        .at_most(DEADLINE)
        .for_element(Locator::Css("button[data-action=edit-zones]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until(
        &c,
        "the editor's frame",
        "document.querySelector('.edit-stage[data-frame-size=\"320x240\"] canvas') !== null",
    )
    .await;
    let shown = js(
        &c,
        "(() => { const r = document.querySelector('.edit-stage canvas').getBoundingClientRect(); return [r.width, r.height]; })()",
    )
    .await;
    let (w, h) = (shown[0].as_f64().unwrap(), shown[1].as_f64().unwrap());
    assert!(w > 400.0, "shown {w}x{h}: no larger than the frame");

    // Draw a vertical line through the middle, from 10% to 90% of the height: two clicks
    // on the canvas (offsets from its centre, in CSS pixels).
    c.find(Locator::Css("button[data-action=draw-line]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let canvas = c.find(Locator::Css(".edit-stage canvas")).await.unwrap();
    let dy = (h * 0.4).round() as i64;
    let click_at = |y: i64| {
        [
            PointerAction::MoveToElement {
                element: canvas.clone(),
                duration: None,
                x: 0,
                y,
            },
            PointerAction::Down {
                button: MOUSE_BUTTON_LEFT,
            },
            PointerAction::Up {
                button: MOUSE_BUTTON_LEFT,
            },
        ]
    };
    let mut mouse = MouseActions::new("mouse".into());
    for a in click_at(-dy).into_iter().chain(click_at(dy)) {
        mouse = mouse.then(a);
    }
    c.perform_actions(mouse).await.unwrap();
    // In frame pixels: (160, 24) to (160, 216), give or take the pointer's rounding.
    let drawn = line_points(&c).await;
    assert_eq!(drawn.len(), 2, "{drawn:?}");
    let scale = 320.0 / w;
    for ((x, y), (wx, wy)) in drawn.iter().zip([(160.0, 24.0), (160.0, 216.0)]) {
        assert!(
            (x - wx).abs() <= 1.0 + scale && (y - wy).abs() <= 1.0 + scale,
            "drew {drawn:?} (shown {w}x{h})"
        );
    }
    let name = js(
        &c,
        "document.querySelector('li[data-shape=line] input[data-field=name]').value",
    )
    .await;
    assert_eq!(name, json!("line-1"));

    // Dragging the line's lower end a quarter of the shown width to the right moves it
    // to about x = 240 in the frame.
    let dx = (w * 0.25).round() as i64;
    let mut mouse = MouseActions::new("mouse".into());
    for a in [
        PointerAction::MoveToElement {
            element: canvas.clone(),
            duration: None,
            x: 0,
            y: dy,
        },
        PointerAction::Down {
            button: MOUSE_BUTTON_LEFT,
        },
        PointerAction::MoveToElement {
            element: canvas.clone(),
            duration: Some(Duration::from_millis(100)),
            x: dx,
            y: dy,
        },
        PointerAction::Up {
            button: MOUSE_BUTTON_LEFT,
        },
    ] {
        mouse = mouse.then(a);
    }
    c.perform_actions(mouse).await.unwrap();
    let moved = line_points(&c).await;
    assert_eq!(moved[0], drawn[0], "the other end stays");
    assert!(
        (moved[1].0 - 240.0).abs() <= 1.0 + scale && (moved[1].1 - drawn[1].1).abs() <= 1.0 + scale,
        "dragged to {moved:?}"
    );

    // The keyboard way to add and delete: Enter on "Add zone" adds a default rectangle
    // (the middle of the frame) and puts the focus on its points; Enter on its Delete
    // removes it.
    c.find(Locator::Css("button[data-action=add-zone]"))
        .await
        .unwrap()
        .send_keys("\u{E007}")
        .await
        .unwrap();
    let focused = js(
        &c,
        "[document.activeElement.dataset.field, document.activeElement.value, document.activeElement.closest('li').dataset.shape]",
    )
    .await;
    assert_eq!(
        focused,
        json!(["points", "96,72 224,72 224,168 96,168", "zone"])
    );
    c.find(Locator::Css("li[data-shape=zone] button.danger"))
        .await
        .unwrap()
        .send_keys("\u{E007}")
        .await
        .unwrap();
    assert_eq!(
        js(
            &c,
            "[document.querySelectorAll('ul.shapes li').length, document.activeElement.dataset.action]"
        )
        .await,
        json!([1, "draw-line"])
    );

    // A zone drawn with the mouse: three corners, then Finish zone.
    c.find(Locator::Css("button[data-action=draw-zone]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let mut mouse = MouseActions::new("mouse".into());
    for (x, y) in [(-dx, -dy), (dx, -dy), (dx, 0)] {
        for a in [
            PointerAction::MoveToElement {
                element: canvas.clone(),
                duration: None,
                x,
                y,
            },
            PointerAction::Down {
                button: MOUSE_BUTTON_LEFT,
            },
            PointerAction::Up {
                button: MOUSE_BUTTON_LEFT,
            },
        ] {
            mouse = mouse.then(a);
        }
    }
    c.perform_actions(mouse).await.unwrap();
    c.find(Locator::Css("button[data-action=finish-zone]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let zone = js(
        &c,
        "document.querySelector('li[data-shape=zone] input[data-field=points]')?.value",
    )
    .await;
    let corners: Vec<&str> = zone.as_str().unwrap().split_whitespace().collect();
    assert_eq!(corners.len(), 3, "{zone}");
    c.find(Locator::Css("li[data-shape=zone] button.danger"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();

    // Typed points (the keyboard way): one outside the frame is refused by the server,
    // and its problem is shown next to the form.
    let points = c
        .find(Locator::Css("li[data-shape=line] input[data-field=points]"))
        .await
        .unwrap();
    let good = format!(
        "{},{} {},{}",
        drawn[0].0, drawn[0].1, drawn[1].0, drawn[1].1
    );
    points.clear().await.unwrap();
    points.send_keys("400,24 160,216").await.unwrap();
    let apply = c
        .find(Locator::Css("button[data-action=apply-zones]"))
        .await
        .unwrap();
    apply.click().await.unwrap();
    until(
        &c,
        "the server's problem",
        "[...document.querySelectorAll('.problems li')].some(l => l.textContent.includes('lines[0].from'))",
    )
    .await;
    assert_eq!(
        call("GET", &format!("{base}/api/v1/feeds/yard/zones")).1["lines"],
        json!([]),
        "a refused edit changes nothing"
    );
    points.clear().await.unwrap();
    points.send_keys(&good).await.unwrap();
    apply.click().await.unwrap();
    until(
        &c,
        "the edit applied",
        "document.querySelectorAll('.problems li').length === 0 && /^(Applied|Accepted)/.test(document.querySelector('[data-slot=hint]').textContent)",
    )
    .await;
    screenshot(&c, "editor.png").await;
    let (_, zones) = call("GET", &format!("{base}/api/v1/feeds/yard/zones"));
    let line = &zones["lines"][0];
    assert_eq!(line["name"], "line-1");
    let at = |v: &Value| (v[0].as_f64().unwrap(), v[1].as_f64().unwrap());
    let (fx, fy) = at(&line["from"]);
    let (tx, ty) = at(&line["to"]);
    assert!((fx - 0.5).abs() < 0.02 && (fy - 0.1).abs() < 0.02, "{line}");
    assert!((tx - 0.5).abs() < 0.02 && (ty - 0.9).abs() < 0.02, "{line}");

    // Crossings counted on the feed page while the feed runs.
    until(
        &c,
        "a crossing count on the page",
        &format!(
            "/^[0-9]+ L→R · [0-9]+ R→L$/.test({0}) && {0} !== '0 L→R · 0 R→L'",
            page_count("line-1")
        ),
    )
    .await;

    // The event list, filtered to the line's crossings: new ones arrive live, with
    // their pictures.
    c.goto(&format!("{base}/#/events?feed=yard&kind=line_crossed"))
        .await
        .unwrap();
    until(
        &c,
        "the live stream",
        "document.querySelector('[data-slot=live]')?.textContent === 'live'",
    )
    .await;
    until(
        &c,
        "a crossing arriving live",
        "document.querySelector('li.event[data-kind=line_crossed][data-live]') !== null",
    )
    .await;
    until(
        &c,
        "an event picture",
        "[...document.querySelectorAll('li.event .thumb img')].some(i => i.src.startsWith('blob:') && i.complete && i.naturalWidth === 320)",
    )
    .await;

    // Paused, the counts stop moving: the list holds exactly the API's crossings, and
    // the feed page shows the same numbers.
    let (status, _) = call("POST", &format!("{base}/api/v1/feeds/yard/pause"));
    assert_eq!(status, 204);
    let deadline = Instant::now() + DEADLINE;
    let (lr, rl) = loop {
        let (lr, rl) = api_crossings(&base, "line-1");
        let rows = js(
            &c,
            "document.querySelectorAll('li.event[data-kind=line_crossed]').length",
        )
        .await;
        if lr + rl > 0 && rows == json!(lr + rl) && api_crossings(&base, "line-1") == (lr, rl) {
            break (lr, rl);
        }
        assert!(
            Instant::now() < deadline,
            "the list shows {rows} crossings, the API counts {lr} + {rl}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let texts = js(
        &c,
        "[...document.querySelectorAll('li.event')].map(e => e.textContent)",
    )
    .await;
    for t in texts.as_array().unwrap() {
        assert!(t.as_str().unwrap().contains("line-1"), "{t}");
    }
    // All of the feed's events (the screenshot): every picture on screen shown or said
    // to be gone (pictures load once their row is on screen; the feed is paused).
    c.goto(&format!("{base}/#/events?feed=yard")).await.unwrap();
    until(
        &c,
        "the feed's events",
        "document.querySelectorAll('li.event').length > 5",
    )
    .await;
    until(
        &c,
        "every picture on screen settled",
        "[...document.querySelectorAll('li.event .thumb img')].filter(i => i.getBoundingClientRect().top < innerHeight).every(i => i.src.startsWith('blob:') && i.complete)",
    )
    .await;
    screenshot(&c, "events.png").await;
    c.goto(&format!("{base}/#/feed/yard")).await.unwrap();
    until(
        &c,
        "the page's count equal to the API's",
        &format!("{} === '{lr} L→R · {rl} R→L'", page_count("line-1")),
    )
    .await;

    // At phone width the event list and the editor fit without sideways scrolling.
    c.set_window_size(390, 844).await.unwrap();
    c.goto(&format!("{base}/#/events?feed=yard&kind=line_crossed"))
        .await
        .unwrap();
    until(
        &c,
        "the list on a phone",
        "document.querySelectorAll('li.event').length > 0 && document.documentElement.scrollWidth <= window.innerWidth",
    )
    .await;
    c.goto(&format!("{base}/#/feed/yard")).await.unwrap();
    c.wait()
        .at_most(DEADLINE)
        .for_element(Locator::Css("button[data-action=edit-zones]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until(
        &c,
        "the editor on a phone",
        "document.querySelector('.edit-stage canvas') !== null && document.documentElement.scrollWidth <= window.innerWidth",
    )
    .await;

    // No request carried the token in its URL.
    for (url, _) in requests(&c, &driver).await {
        assert!(!url.contains(TOKEN), "token in a URL: {url}");
    }
    c.close().await.unwrap();
    daemon.stop();
}
