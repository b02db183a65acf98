//! Shared by the browser tests: chromedriver on a port the OS picks, a headless Chromium
//! session, page-side polling under a deadline, screenshots, the browser's request log.
#![allow(dead_code, reason = "each test binary uses part of these helpers")]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::Client;
use serde_json::{json, Value};

/// How long any one awaited state may take (the machine may be busy).
pub const DEADLINE: Duration = Duration::from_secs(60);

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .into()
}

/// chromedriver on a port the OS picks; killed on drop.
pub struct Driver {
    child: Child,
    pub url: String,
}

impl Driver {
    pub fn start() -> Self {
        let mut child = Command::new("chromedriver")
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run chromedriver ({e}): scripts/setup.sh installs chromium-driver")
            });
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let port = loop {
            let line = lines.next().expect("chromedriver exited").unwrap();
            if let Some(rest) = line.split_once("started successfully on port ") {
                break rest.1.trim_end_matches('.').to_owned();
            }
        };
        // Keep draining its output so it never blocks on a full pipe.
        std::thread::Builder::new()
            .name("chromedriver-log".into())
            .spawn(move || lines.for_each(drop))
            .unwrap();
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _killed = self.child.kill();
        let _reaped = self.child.wait();
    }
}

pub async fn browser(driver: &Driver) -> Client {
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1280,900"],
        },
        // Every request the browser makes, with its URL and headers.
        "goog:loggingPrefs": { "performance": "ALL" },
    });
    let Value::Object(caps) = caps else {
        unreachable!()
    };
    fantoccini::ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .unwrap()
}

/// Waits for the login form and submits `token` from the keyboard (Enter).
pub async fn enter_token(c: &Client, token: &str) {
    let input = c
        .wait()
        .at_most(DEADLINE)
        .for_element(fantoccini::Locator::Css("#token"))
        .await
        .unwrap();
    input.send_keys(token).await.unwrap();
    input.send_keys("\u{E007}").await.unwrap();
}

/// Evaluates a JS expression in the page.
pub async fn js(c: &Client, expr: &str) -> Value {
    c.execute(&format!("return ({expr});"), vec![])
        .await
        .unwrap()
}

/// Polls a JS condition in the page until it is true.
pub async fn until(c: &Client, what: &str, expr: &str) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if js(c, expr).await == json!(true) {
            return;
        }
        if Instant::now() >= deadline {
            // What the page showed, for the failure message.
            let shown = js(c, "document.querySelector('main')?.innerText ?? ''").await;
            panic!(
                "timed out waiting for {what} ({expr}); the page shows:\n{}",
                shown.as_str().unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn screenshot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"));
    if let Some(dir) = std::env::var_os("NEXTVISION_SCREENSHOTS") {
        let dir = PathBuf::from(dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), png).unwrap();
    }
}

/// `(url, authorization header)` of every request in the browser's performance log
/// since the last call.
pub async fn requests(c: &Client, driver: &Driver) -> Vec<(String, Option<String>)> {
    let sid = c.session_id().await.unwrap().unwrap();
    let mut resp = agent()
        .post(&format!("{}/session/{sid}/se/log", driver.url))
        .header("Content-Type", "application/json")
        .send(r#"{"type":"performance"}"#)
        .unwrap();
    let log: Value = serde_json::from_reader(resp.body_mut().as_reader()).unwrap();
    let mut out = Vec::new();
    for entry in log["value"].as_array().unwrap() {
        let msg: Value = serde_json::from_str(entry["message"].as_str().unwrap()).unwrap();
        if msg["message"]["method"] == "Network.requestWillBeSent" {
            let req = &msg["message"]["params"]["request"];
            let auth = req["headers"]
                .as_object()
                .and_then(|h| {
                    h.iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
                })
                .and_then(|(_, v)| v.as_str())
                .map(str::to_owned);
            out.push((req["url"].as_str().unwrap().to_owned(), auth));
        }
    }
    out
}
