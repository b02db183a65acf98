//! Zone and line analytics against exact ground truth: a clip rendered with objects that
//! cross a counting line and dwell in a zone, encoded with GStreamer and decoded through
//! a real feed, run (1) through a scripted detection stage that reports the ground truth
//! boxes (detector-free geometry) and (2) through the motion detector, both followed by the
//! tracker and the zone stage. The events (kind, track, direction, frame) are asserted
//! exactly, validated against the JSON Schema, and the counters are read back from the
//! runtime, the Prometheus text, the daemon's API and its `/metrics`.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use nv_core::error::StageError;
use nv_core::geometry::{BBox, Point2, Polygon};
use nv_perception::{
    CrossingDirection, Detection, DetectionId, Stage, StageContext, StageId, StageOutput,
};
use nv_runtime::{CameraMode, FeedConfig, Runtime, SourceSpec};
use nv_sinks::{EventRecord, EVENT_SCHEMA_V1};
use nv_stages::{Anchor, LineSpec, Tracker, TrackerConfig, ZoneAnalytics, ZoneConfig, ZoneSpec};
use nv_test_util::clip::{Scenario, ScriptedObject};
use nv_test_util::daemon::Daemon;
use nv_test_util::CollectingSink;
use serde_json::Value;

const FRAMES: usize = 160;
const DWELL_SECS: f64 = 0.95;

/// 320x240 at 30 fps. Object 1 walks right along the top and crosses the vertical line
/// `gate` (x = 160) between frames 46 and 47; object 2 walks left, crosses the line
/// between frames 55 and 56, enters the zone `bench` (x 16..112, y 120..228) at frame
/// 68, rests there from frame 80 to 125 and leaves it at frame 137; object 3 rises into
/// the zone from the bottom edge at frame 112 and stays to the end. With min_hits 2 a
/// track is confirmed on its second frame; a 0.95 s dwell threshold is 29 frames.
fn scenario() -> Scenario {
    let path = |f: &dyn Fn(usize) -> Option<(f32, f32)>| (0..FRAMES).map(f).collect::<Vec<_>>();
    let obj1 = path(&|f| {
        (15..100)
            .contains(&f)
            .then(|| (22.0 + 4.0 * (f - 15) as f32, 40.0))
    });
    let obj2 = path(&|f| {
        let x = match f {
            0..=19 => return None,
            20..=80 => 290.0 - 4.0 * (f - 20) as f32,
            81..=125 => 50.0,
            126..=147 => 50.0 - 4.0 * (f - 125) as f32,
            _ => return None,
        };
        Some((x, 150.0))
    });
    let obj3 = path(&|f| (f >= 100).then(|| (40.0, (250.0 - 3.0 * (f - 100) as f32).max(180.0))));
    let object = |id, luma, path| ScriptedObject {
        id,
        width: 24,
        height: 24,
        luma,
        path,
    };
    Scenario {
        width: 320,
        height: 240,
        frames: FRAMES,
        objects: vec![
            object(1, 220, obj1),
            object(2, 200, obj2),
            object(3, 235, obj3),
        ],
        occluders: Vec::new(),
    }
}

/// The line runs bottom to top, so "left to right" is left to right on screen.
fn zones() -> ZoneConfig {
    ZoneConfig {
        zones: vec![ZoneSpec {
            name: "bench".into(),
            polygon: Polygon::new(vec![
                Point2::new(0.05, 0.5),
                Point2::new(0.35, 0.5),
                Point2::new(0.35, 0.95),
                Point2::new(0.05, 0.95),
            ]),
        }],
        lines: vec![LineSpec {
            name: "gate".into(),
            start: Point2::new(0.5, 1.0),
            end: Point2::new(0.5, 0.0),
        }],
        anchor: Anchor::Center,
        dwell_threshold: Some(Duration::from_secs_f64(DWELL_SECS)),
        ..ZoneConfig::default()
    }
}

/// Reports the scenario's ground-truth boxes of the frame as detections (class 0).
#[derive(Debug)]
struct TruthDetector(Arc<Scenario>);

impl Stage for TruthDetector {
    fn id(&self) -> StageId {
        StageId::new("truth")
    }
    fn process(&mut self, ctx: &StageContext<'_>) -> Result<StageOutput, StageError> {
        let (w, h) = (self.0.width as f32, self.0.height as f32);
        let seq = usize::try_from(ctx.frame.seq()).unwrap();
        let dets: Vec<Detection> = self
            .0
            .truth(seq)
            .into_iter()
            .map(|(id, [x, y, bw, bh])| {
                let b = BBox::from_xywh(x / w, y / h, bw / w, bh / h);
                Detection::builder(DetectionId::new(id), 0, 0.9, b).build()
            })
            .collect();
        Ok(StageOutput::with_detections(dets))
    }
}

/// A directory removed when the test ends (the clip's raw frames are 18 MB).
fn tmp_dir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("nv-analytics-{name}-"))
        .tempdir()
        .unwrap()
}

/// `(kind, track, zone or line, direction, frame)` of each event, in order.
type Summary = Vec<(String, Option<u64>, Option<String>, Option<String>, u64)>;

fn summary(events: &[EventRecord]) -> Summary {
    events
        .iter()
        .map(|e| {
            (
                e.kind.clone(),
                e.track_id,
                e.zone.clone().or_else(|| e.line.clone()),
                e.direction.clone(),
                e.frame_seq,
            )
        })
        .collect()
}

fn ev(kind: &str, track: u64, place: Option<&str>, dir: Option<&str>, frame: u64) -> Summary {
    vec![(
        kind.to_owned(),
        Some(track),
        place.map(str::to_owned),
        dir.map(str::to_owned),
        frame,
    )]
}

fn validate(events: &[Value]) {
    let schema: Value = serde_json::from_str(EVENT_SCHEMA_V1).unwrap();
    let validator = jsonschema::draft202012::new(&schema).unwrap();
    for e in events {
        let errors: Vec<String> = validator.iter_errors(e).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{errors:?}\n{e:#}");
    }
}

#[test]
fn scripted_geometry_gives_the_exact_events_and_counters() {
    let dir = tmp_dir("scripted");
    let scenario = Arc::new(scenario());
    let clip = scenario.encode_mp4(dir.path(), "analytics").unwrap();
    let rt = Runtime::builder()
        .source_factory(Arc::new(nv_media::GstSourceFactory::new()))
        .build()
        .unwrap();
    let sink = CollectingSink::new();
    let feed = rt
        .add_feed(
            FeedConfig::builder()
                .name("yard".into())
                .class_names(Arc::new({
                    let mut names = nv_perception::ClassNames::new();
                    names.insert(0, "person").unwrap();
                    names
                }))
                .source(SourceSpec::file(&clip))
                .camera_mode(CameraMode::Fixed)
                .stage(TruthDetector(Arc::clone(&scenario)))
                .stage(Tracker::new(TrackerConfig::default()).unwrap())
                .stage(ZoneAnalytics::new(zones()).unwrap())
                .output_sink(sink.clone())
                .lossless()
                .build()
                .unwrap(),
        )
        .unwrap();
    let outputs = sink.wait_for(FRAMES);
    let events: Vec<EventRecord> = outputs.iter().flat_map(|o| EventRecord::all(o)).collect();
    let json: Vec<Value> = events
        .iter()
        .map(|e| serde_json::from_slice(&e.to_json().unwrap()).unwrap())
        .collect();
    validate(&json);
    let got = summary(&events);
    let want: Summary = [
        ev("object_appeared", 1, None, None, 16),
        ev("object_appeared", 2, None, None, 21),
        ev("line_crossed", 1, Some("gate"), Some("left_to_right"), 47),
        ev("line_crossed", 2, Some("gate"), Some("right_to_left"), 56),
        ev("zone_enter", 2, Some("bench"), None, 68),
        ev("object_lost", 1, None, None, 88),
        ev("zone_dwell", 2, Some("bench"), None, 97),
        ev("object_appeared", 3, None, None, 109),
        ev("zone_enter", 3, Some("bench"), None, 112),
        ev("zone_exit", 2, Some("bench"), None, 137),
        ev("zone_dwell", 3, Some("bench"), None, 141),
        ev("object_lost", 2, None, None, 143),
    ]
    .concat();
    assert_eq!(got, want, "{got:?}");
    // Dwell is measured on media time: 29, 69 and 29 frames at 30 fps.
    let dwell: Vec<_> = events.iter().filter_map(|e| e.dwell_millis).collect();
    assert_eq!(dwell, [966, 2300, 966]);
    assert!(events.iter().all(|e| e.feed.as_deref() == Some("yard")));
    // Class names, with the id kept.
    assert!(events
        .iter()
        .all(|e| e.class.as_deref() == Some("person") && e.class_id == Some(0)));

    nv_test_util::wait_until("feed finished", || !feed.is_alive());
    let diag = feed.diagnostics();
    let a = &diag.analytics;
    assert_eq!(a.line_crossings("gate", CrossingDirection::LeftToRight), 1);
    assert_eq!(a.line_crossings("gate", CrossingDirection::RightToLeft), 1);
    assert_eq!(a.zone_occupancy("bench"), 1);
    assert_eq!(a.events["object_appeared"], 3);
    assert_eq!(a.events["object_lost"], 2);
    // The same figures in the Prometheus text the daemon serves.
    let runtime = rt.diagnostics();
    let text = nv_metrics::render(&nv_metrics::Snapshot::new(
        &runtime,
        &nv_metrics::HealthCounters::default(),
    ));
    for line in [
        r#"nv_feed_line_crossings_total{feed_id="1",feed="yard",line="gate",direction="left_to_right",class="person",class_id="0"} 1"#,
        r#"nv_feed_line_crossings_total{feed_id="1",feed="yard",line="gate",direction="right_to_left",class="person",class_id="0"} 1"#,
        r#"nv_feed_zone_occupancy{feed_id="1",feed="yard",zone="bench",class="person",class_id="0"} 1"#,
        r#"nv_feed_zone_entries_total{feed_id="1",feed="yard",zone="bench",class="person",class_id="0"} 2"#,
        r#"nv_feed_events_total{feed_id="1",feed="yard",kind="zone_dwell"} 2"#,
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
    }
    rt.shutdown();
}

fn get(url: &str) -> String {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    agent
        .get(url)
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap()
}

/// The daemon: motion detector, tracker and zones from the config file; events in the
/// JSONL file sink; counters over the API and `/metrics`.
#[test]
fn motion_tracker_zones_in_the_daemon() {
    let dir = tmp_dir("daemon");
    let scenario = scenario();
    let clip = scenario.encode_mp4(dir.path(), "analytics").unwrap();
    let out = dir.path().join("out.jsonl");
    let config = format!(
        r#"
[api]
listen = "127.0.0.1:0"

[[sinks]]
name = "file"
kind = "file"
path = "{out}"

[[feeds]]
name = "yard"
source = "{clip}"
sinks = ["file"]
[[feeds.stages]]
kind = "motion-detector"
[[feeds.stages]]
kind = "tracker"
[[feeds.stages]]
kind = "zones"
zones = [{{ name = "bench", points = [[0.05, 0.5], [0.35, 0.5], [0.35, 0.95], [0.05, 0.95]] }}]
lines = [{{ name = "gate", from = [0.5, 1.0], to = [0.5, 0.0] }}]
anchor = "center"
dwell_threshold_secs = {DWELL_SECS}

# Keeps the daemon up after the clip ends.
[[feeds]]
name = "idle"
source = "synthetic:64x48@5"
[[feeds.stages]]
kind = "brightness"
"#,
        out = out.display(),
        clip = clip.display(),
    );
    let path = dir.path().join("nextvision.toml");
    std::fs::write(&path, config).unwrap();
    let d = Daemon::run(Path::new(env!("CARGO_BIN_EXE_nextvision")), &path, &[]);
    let base = d.base().to_owned();
    nv_test_util::wait_until("clip feed stopped", || {
        let feed: Value = serde_json::from_str(&get(&format!("{base}/api/v1/feeds/yard"))).unwrap();
        feed["state"]["name"] == "stopped" && feed["metrics"]["frames_processed"] == FRAMES
    });
    let records: Vec<Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let json: Vec<Value> = records
        .iter()
        .flat_map(|r| r["events"].as_array().unwrap().clone())
        .collect();
    validate(&json);
    let events: Vec<EventRecord> = json
        .iter()
        .map(|e| serde_json::from_value(e.clone()).unwrap())
        .collect();
    let got = summary(&events);
    // The motion detector's blobs are not the truth boxes, yet the zone and line events are
    // the same (and no camera_motion: the camera is fixed).
    let shape: Vec<_> = got
        .iter()
        .filter(|e| e.0 != "object_appeared" && e.0 != "object_lost")
        .map(|(k, t, p, dir, _)| (k.clone(), *t, p.clone(), dir.clone()))
        .collect();
    assert_eq!(
        shape,
        [
            ("line_crossed", 1, "gate", Some("left_to_right")),
            ("line_crossed", 2, "gate", Some("right_to_left")),
            ("zone_enter", 2, "bench", None),
            ("zone_dwell", 2, "bench", None),
            ("zone_enter", 3, "bench", None),
            ("zone_exit", 2, "bench", None),
            ("zone_dwell", 3, "bench", None),
        ]
        .map(|(k, t, p, d)| (
            k.to_owned(),
            Some(t),
            Some(p.to_owned()),
            d.map(str::to_owned)
        )),
        "{got:?}"
    );
    let frames: Vec<u64> = got
        .iter()
        .filter(|e| e.0 != "object_appeared" && e.0 != "object_lost")
        .map(|e| e.4)
        .collect();
    // The blobs' centres follow the objects closely enough that every zone and line event
    // lands on the ground-truth frame; only when tracks start and end differs (a blob shows
    // up while an object is less than half in view, and lingers as it leaves).
    assert_eq!(frames, [47, 56, 68, 97, 112, 137, 141], "{got:?}");

    let analytics: Value =
        serde_json::from_str(&get(&format!("{base}/api/v1/feeds/yard/analytics"))).unwrap();
    assert_eq!(analytics["feed"], "yard");
    let lines = analytics["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 2, "{analytics:#}");
    for l in lines {
        assert_eq!(
            (l["line"].as_str(), l["crossings"].as_u64()),
            (Some("gate"), Some(1))
        );
    }
    assert_eq!(analytics["zones"][0]["zone"], "bench");
    // The motion detector's class, by name, with its id.
    assert_eq!(analytics["zones"][0]["class"], "motion");
    assert_eq!(analytics["zones"][0]["class_id"], 0);
    assert_eq!(analytics["zones"][0]["occupancy"], 1);
    assert_eq!(analytics["zones"][0]["entries"], 2);
    assert_eq!(analytics["events"]["zone_dwell"], 2);
    let metrics = get(&format!("{base}/metrics"));
    for line in [
        r#"nv_feed_line_crossings_total{feed_id="1",feed="yard",line="gate",direction="left_to_right",class="motion",class_id="0"} 1"#,
        r#"nv_feed_zone_occupancy{feed_id="1",feed="yard",zone="bench",class="motion",class_id="0"} 1"#,
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "{line} missing:\n{metrics}"
        );
    }
    d.stop();
}

/// `process --config FILE --feed NAME --events-only`: the configured zones and lines on a
/// file; event lines only; the summary counts detections, tracks and events by kind, zone
/// and line.
#[test]
fn process_with_a_config_prints_events_and_the_summary() {
    let dir = tmp_dir("process");
    let clip = scenario().encode_mp4(dir.path(), "analytics").unwrap();
    let config = format!(
        r#"
[[feeds]]
name = "yard"
source = "{clip}"
[[feeds.stages]]
kind = "motion-detector"
[[feeds.stages]]
kind = "tracker"
[[feeds.stages]]
kind = "zones"
zones = [{{ name = "bench", points = [[0.05, 0.5], [0.35, 0.5], [0.35, 0.95], [0.05, 0.95]] }}]
lines = [{{ name = "gate", from = [0.5, 1.0], to = [0.5, 0.0] }}]
anchor = "center"
dwell_threshold_secs = {DWELL_SECS}

[[feeds]]
name = "other"
source = "synthetic:64x48@5"
[[feeds.stages]]
kind = "brightness"
"#,
        clip = clip.display(),
    );
    let path = dir.path().join("nextvision.toml");
    std::fs::write(&path, config).unwrap();
    let out = dir.path().join("events.jsonl");
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_nextvision"))
        .arg("process")
        .arg("--config")
        .arg(&path)
        .args(["--feed", "yard", "--events-only", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    let lines: Vec<Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    validate(&lines);
    let events: Vec<EventRecord> = lines
        .iter()
        .map(|l| serde_json::from_value(l.clone()).unwrap())
        .collect();
    let spatial: Vec<_> = summary(&events)
        .into_iter()
        .filter(|e| e.0 != "object_appeared" && e.0 != "object_lost")
        .map(|e| (e.0, e.1, e.4))
        .collect();
    assert_eq!(
        spatial,
        [
            ("line_crossed", 1, 47),
            ("line_crossed", 2, 56),
            ("zone_enter", 2, 68),
            ("zone_dwell", 2, 97),
            ("zone_enter", 3, 112),
            ("zone_exit", 2, 137),
            ("zone_dwell", 3, 141),
        ]
        .map(|(k, t, f)| (k.to_owned(), Some(t), f)),
    );
    assert!(events.iter().all(|e| e.feed.as_deref() == Some("yard")));
    // The motion detector's class, by name, with the id kept.
    assert!(events
        .iter()
        .all(|e| e.class.as_deref() == Some("motion") && e.class_id == Some(0)));
    for expected in [
        "tracks: 3  events: 12",
        "events by kind: line_crossed 2, object_appeared 3, object_lost 2, zone_dwell 2, zone_enter 2, zone_exit 1",
        "zone bench: 2 entered, 1 exited, 2 dwelled, 1 inside at the end",
        "line gate: 1 left_to_right, 1 right_to_left",
    ] {
        assert!(stderr.contains(expected), "`{expected}` missing:\n{stderr}");
    }
}

fn send(method: &str, url: &str, body: &str) -> (u16, Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .http_status_as_error(false)
        .build()
        .into();
    let mut resp = match method {
        "PUT" => agent
            .put(url)
            .header("Content-Type", "application/json")
            .send(body)
            .unwrap(),
        _ => agent.get(url).call().unwrap(),
    };
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap();
    (status, serde_json::from_str(&text).unwrap())
}

/// Zones and lines replaced through the API while the feed runs: validated whole, applied
/// at a frame boundary, recorded as a `feed_config_changed` health event.
#[test]
fn zones_are_edited_at_run_time_through_the_api() {
    let dir = tmp_dir("edit");
    let config = r#"
[api]
listen = "127.0.0.1:0"

[[feeds]]
name = "cam"
source = "synthetic:160x120@30"
[[feeds.stages]]
kind = "blob-detector"
[[feeds.stages]]
kind = "tracker"
[[feeds.stages]]
kind = "zones"
zones = [{ name = "door", points = [[0.0, 0.0], [0.5, 0.0], [0.5, 0.5]] }]
"#;
    let path = dir.path().join("nextvision.toml");
    std::fs::write(&path, config).unwrap();
    let d = Daemon::run(Path::new(env!("CARGO_BIN_EXE_nextvision")), &path, &[]);
    let url = format!("{}/api/v1/feeds/cam/zones", d.base());
    let (status, current) = send("GET", &url, "");
    assert_eq!(status, 200);
    assert_eq!(current["zones"][0]["name"], "door");
    assert_eq!(current["lines"], serde_json::json!([]));

    // Every problem at once, by field; nothing changes.
    let bad = r#"{"zones": [{"name": "a", "points": [[0.0, 0.0], [1.5, 0.0], [0.5, 0.5]]},
                             {"name": "a", "points": [[0.0, 0.0], [0.2, 0.0], [0.2, 0.2]]}],
                  "lines": [{"name": "l", "from": [0.5, 0.5], "to": [0.5, 0.5]}]}"#;
    let (status, err) = send("PUT", &url, bad);
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["code"], "invalid_config");
    let details = err["details"].to_string();
    for field in ["zones[0].points[1]", "zones[1].name", "lines[0]"] {
        assert!(details.contains(field), "{field} missing: {details}");
    }
    let (status, err) = send("PUT", &url, r#"{"zones": [], "colour": "red"}"#);
    assert_eq!(status, 400, "{err}");
    assert!(err["details"].to_string().contains("colour"), "{err}");
    assert_eq!(send("GET", &url, "").1["zones"][0]["name"], "door");

    let good = r#"{"zones": [{"name": "bench", "points": [[0.1, 0.5], [0.4, 0.5], [0.4, 0.9], [0.1, 0.9]]}],
                   "lines": [{"name": "gate", "from": [0.5, 1.0], "to": [0.5, 0.0]}],
                   "anchor": "center", "dwell_threshold_secs": 2.0}"#;
    let (status, applied) = send("PUT", &url, good);
    assert_eq!(status, 200, "{applied}");
    assert_eq!(applied["applied"], true, "{applied}");
    assert_eq!(applied["edit"], 1);
    let (_, now) = send("GET", &url, "");
    assert_eq!(now["zones"][0]["name"], "bench");
    assert_eq!(now["lines"][0]["name"], "gate");
    assert_eq!(now["anchor"], "center");
    assert_eq!(now["dwell_threshold_secs"], 2.0);
    // Recorded as a health event (counted in /metrics by the daemon's health counter,
    // which runs on its own thread: wait for it).
    nv_test_util::wait_until("feed_config_changed counted", || {
        get(&format!("{}/metrics", d.base()))
            .lines()
            .any(|l| l == r#"nv_health_events_total{event="feed_config_changed",feed_id="1"} 1"#)
    });
    // A feed without a zones stage says so.
    let (status, err) = send("GET", &format!("{}/api/v1/feeds/nope/zones", d.base()), "");
    assert_eq!(
        (status, err["code"].as_str()),
        (404, Some("feed_not_found"))
    );
    d.stop();
}
