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
    PATH.get_or_init(|| {
        let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("nv-model-cache");
        let model = cache.join("ch_PP-OCRv4_det_infer.onnx");
        if model.is_file() {
            return model;
        }
        std::fs::create_dir_all(&cache).expect("create model cache dir");
        let wheels = cache.join("wheels");
        if let Err(e) = run(Command::new(python())
            .args(["-m", "pip", "download", "--quiet", "--no-deps", "-d"])
            .arg(&wheels)
            .arg(RAPIDOCR_WHEEL))
        {
            panic!("downloading {RAPIDOCR_WHEEL} from PyPI failed (network needed once): {e}");
        }
        // Extract with Python's zipfile (no unzip binary needed); rename makes it atomic.
        let script = format!(
            "import glob, os, sys, zipfile\n\
             whl = sorted(glob.glob(os.path.join(sys.argv[1], 'rapidocr_onnxruntime-*.whl')))[-1]\n\
             tmp = sys.argv[2] + '.part'\n\
             open(tmp, 'wb').write(zipfile.ZipFile(whl).read('{PPOCR_MEMBER}'))\n\
             os.replace(tmp, sys.argv[2])\n"
        );
        if let Err(e) = run(Command::new(python())
            .args(["-c", &script])
            .arg(&wheels)
            .arg(&model))
        {
            panic!("extracting {PPOCR_MEMBER} from the wheel failed: {e}");
        }
        model
    })
    .clone()
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
