//! Global motion on real video: a textured scene filmed by a camera that pans, shakes and
//! jumps in exposure, encoded to H.264 by GStreamer at test time, decoded by `process` with
//! the motion detector. The `motion.global` signal says what the camera did, and the
//! detector reports no boxes over the moving picture (nor once it is still again).
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::io::Write as _;
use std::path::Path;
use std::process::Command;

const W: usize = 320;
const H: usize = 240;
const WORLD_W: usize = 640;
const WORLD_H: usize = 360;
const FRAMES: usize = 150;

/// Scripted segments (frame ranges, end exclusive).
const PAN: (usize, usize) = (40, 60);
const SHAKE: (usize, usize) = (90, 110);
const EXPOSURE_AT: usize = 130;

/// Smooth value noise over 24-px cells plus finer 6-px detail: texture at every scale the
/// motion grid (2 px per cell here) and the encoder keep.
fn world() -> Vec<u8> {
    let mut state = 0x2545_f491_u32;
    let mut rand = move || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        state
    };
    let lattice = |cell: usize, rand: &mut dyn FnMut() -> u32| {
        let (cw, ch) = (WORLD_W / cell + 2, WORLD_H / cell + 2);
        let v: Vec<f32> = (0..cw * ch).map(|_| (rand() % 256) as f32).collect();
        move |x: usize, y: usize| {
            let (fx, fy) = (x as f32 / cell as f32, y as f32 / cell as f32);
            let (x0, y0) = (fx as usize, fy as usize);
            let (tx, ty) = (fx - x0 as f32, fy - y0 as f32);
            let at = |x: usize, y: usize| v[y * cw + x];
            let top = at(x0, y0) * (1.0 - tx) + at(x0 + 1, y0) * tx;
            let bottom = at(x0, y0 + 1) * (1.0 - tx) + at(x0 + 1, y0 + 1) * tx;
            top * (1.0 - ty) + bottom * ty
        }
    };
    let coarse = lattice(24, &mut rand);
    let fine = lattice(6, &mut rand);
    let mut img = vec![0u8; WORLD_W * WORLD_H];
    for y in 0..WORLD_H {
        for x in 0..WORLD_W {
            let v = 30.0 + 0.55 * coarse(x, y) + 0.25 * fine(x, y);
            img[y * WORLD_W + x] = v.clamp(0.0, 255.0) as u8;
        }
    }
    img
}

/// Camera position (top-left in the world) and exposure offset of frame `i`.
fn camera(i: usize) -> (usize, usize, i32) {
    let (x0, y0) = (100, 60);
    let pan_px = 4;
    let panned = i.clamp(PAN.0, PAN.1) - PAN.0;
    let mut x = x0 + panned * pan_px;
    let mut y = y0;
    if (SHAKE.0..SHAKE.1).contains(&i) {
        // Back and forth by 4 px (2 motion-grid cells) on both axes, as a hand-held camera.
        let d = (i - SHAKE.0) % 2 * 4;
        x += d;
        y += d;
    }
    let exposure = if i >= EXPOSURE_AT { 40 } else { 0 };
    (x, y, exposure)
}

fn write_clip(dir: &Path) -> std::path::PathBuf {
    let world = world();
    let raw = dir.join("camera.i420");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&raw).unwrap());
    let mut frame = vec![128u8; W * H * 3 / 2];
    for i in 0..FRAMES {
        let (cx, cy, exposure) = camera(i);
        for y in 0..H {
            let src = &world[(cy + y) * WORLD_W + cx..][..W];
            for (d, s) in frame[y * W..(y + 1) * W].iter_mut().zip(src) {
                *d = (i32::from(*s) + exposure).clamp(0, 255) as u8;
            }
        }
        f.write_all(&frame).unwrap();
    }
    f.flush().unwrap();
    drop(f);
    let mp4 = dir.join("camera.mp4");
    let (w, h) = (u32::try_from(W).unwrap(), u32::try_from(H).unwrap());
    nv_test_util::clip::encode_i420_mp4(&raw, w, h, &mp4).unwrap();
    mp4
}

#[test]
fn pan_shake_and_exposure_jump_are_reported_as_global_motion_not_boxes() {
    let dir = tempfile::tempdir().unwrap();
    let clip = write_clip(dir.path());
    let out = dir.path().join("out.jsonl");
    let run = Command::new(env!("CARGO_BIN_EXE_nextvision"))
        .arg("process")
        .arg(&clip)
        .args(["--stage", "motion-detector", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), FRAMES, "{stderr}");
    let global: Vec<String> = lines
        .iter()
        .map(|l| {
            l["signals"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["name"] == "motion.global")
                .map(|s| s["value"]["value"].as_str().unwrap().to_string())
                .unwrap_or_else(|| panic!("no motion.global signal: {l}"))
        })
        .collect();
    let boxes: Vec<usize> = lines
        .iter()
        .map(|l| l["detections"].as_array().unwrap().len())
        .collect();
    let show = |r: std::ops::Range<usize>| -> String {
        r.map(|i| format!("{i}:{}/{}", global[i], boxes[i]))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let count = |r: std::ops::Range<usize>, what: &str| r.filter(|&i| global[i] == what).count();

    // The pan: after the first frames of the run ("moving"), a pan; never a shake.
    let pan = PAN.0 + 1..PAN.1;
    assert!(
        count(pan.clone(), "pan") >= pan.len() - 3,
        "pan: {}",
        show(pan.clone())
    );
    assert_eq!(count(pan.clone(), "shake"), 0, "pan: {}", show(pan.clone()));
    // The shake: a shake, never a pan.
    let shake = SHAKE.0 + 1..SHAKE.1;
    assert!(
        count(shake.clone(), "shake") >= shake.len() - 4,
        "shake: {}",
        show(shake.clone())
    );
    assert_eq!(
        count(shake.clone(), "pan"),
        0,
        "shake: {}",
        show(shake.clone())
    );
    // The exposure jump: one frame says so.
    let jump = EXPOSURE_AT - 1..EXPOSURE_AT + 2;
    assert_eq!(
        count(jump.clone(), "exposure_jump"),
        1,
        "exposure: {}",
        show(jump)
    );
    // No boxes while the picture moves, nor over the still scene once the camera stops
    // (the background restarts from the new picture). The first frames after a run may
    // still be held as part of it.
    for i in 0..FRAMES {
        if global[i] != "none" {
            assert_eq!(boxes[i], 0, "frame {i} ({}) has boxes", global[i]);
        }
    }
    for still in [
        8..PAN.0,
        PAN.1 + 4..SHAKE.0,
        SHAKE.1 + 4..EXPOSURE_AT,
        EXPOSURE_AT + 4..FRAMES,
    ] {
        assert_eq!(
            count(still.clone(), "none"),
            still.len(),
            "still: {}",
            show(still.clone())
        );
        assert!(
            still.clone().all(|i| boxes[i] == 0),
            "still: {}",
            show(still.clone())
        );
    }
}
