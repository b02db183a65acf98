//! A feed's stages are built once: validating a config with a `model-detector` loads no
//! model, running it loads the model once (counted by nv-stages).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use nv_stages::model::model_loads;

/// The test graphs of nv-stages (needs Python with onnx and numpy, as those tests do).
fn generated_models(dir: &Path) -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../nv-stages/tests/model_fixtures/make_models.py");
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_string());
    let importable = |python: &str| {
        Command::new(python)
            .args(["-c", "import onnx, numpy"])
            .status()
            .is_ok_and(|s| s.success())
    };
    if !importable(&python) {
        // As nv-stages' model tests do; Debian's Python needs the second form (PEP 668).
        let base = ["-m", "pip", "install", "--quiet", "onnx", "numpy"];
        let plain = Command::new(&python).args(base).status();
        if !plain.is_ok_and(|s| s.success()) {
            let _user = Command::new(&python)
                .args(base)
                .args(["--user", "--break-system-packages"])
                .status();
        }
    }
    let out = Command::new(&python)
        .arg(&script)
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "generating ONNX test graphs failed (python3 -m pip install onnx numpy): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir.join("yolov8.onnx")
}

#[test]
fn validate_then_run_loads_the_model_once() {
    let dir = std::env::temp_dir().join(format!("nv-model-once-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let model = generated_models(&dir);
    let path = dir.join("nextvision.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[api]
enabled = false

[[feeds]]
name = "cam"
source = "synthetic:64x64@30"
[[feeds.stages]]
kind = "model-detector"
model_path = "{}"
input_width = 64
input_height = 64
decoder = "yolov8"
[[feeds.stages]]
kind = "tracker"
"#,
            model.display()
        ),
    )
    .unwrap();
    let before = model_loads();
    let config = crate::config::load(&path, crate::config::EnvMode::Resolve).unwrap();
    assert_eq!(model_loads() - before, 0, "validation loaded the model");

    let runtime = crate::assemble::runtime(&config).unwrap();
    let mut outputs = runtime.output_subscribe();
    let sinks = crate::sinks::SinkSet::new(&config);
    let feeds = crate::assemble::add_feeds(
        &runtime,
        &config,
        &sinks,
        &crate::zone_edit::ZoneEditors::default(),
    )
    .unwrap();
    assert_eq!(feeds.len(), 1);
    for _ in 0..3 {
        let out = outputs
            .recv_timeout(Duration::from_secs(30))
            .expect("an output of the model feed");
        assert!(!out.detections.is_empty(), "the test graph always detects");
    }
    runtime.shutdown();
    assert_eq!(
        model_loads() - before,
        1,
        "validate + run loads the model once"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
