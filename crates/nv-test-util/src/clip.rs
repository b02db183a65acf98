//! Test clips with exact ground truth: scripted objects rendered into I420 frames, written
//! raw and encoded to H.264 MP4 by `gst-launch-1.0` (a tool, not a library dependency:
//! only nv-media links GStreamer).

use std::io::Write as _;
use std::path::Path;
use std::process::Command;

/// One object's scripted path: position (top-left, pixels) per frame, `None` while it is
/// out of the scene.
#[derive(Clone, Debug)]
pub struct ScriptedObject {
    pub id: u64,
    pub width: u32,
    pub height: u32,
    /// Luma of the object (background is 40).
    pub luma: u8,
    pub path: Vec<Option<(f32, f32)>>,
}

/// Ground truth of one frame: `(object id, [x, y, w, h] in pixels)`.
pub type FrameTruth = Vec<(u64, [f32; 4])>;

/// A scene of scripted objects.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub width: u32,
    pub height: u32,
    pub frames: usize,
    pub objects: Vec<ScriptedObject>,
    /// Objects drawn later occlude earlier ones; an occluded object stays in the truth
    /// only while at least half of it is visible.
    pub occluders: Vec<ScriptedObject>,
}

fn lerp(a: (f32, f32), b: (f32, f32), t: f32) -> (f32, f32) {
    (a.0 + (b.0 - a.0) * t, a.1 + (b.1 - a.1) * t)
}

impl Scenario {
    /// Objects entering and leaving the 320x240 scene: two crossing paths and a
    /// stop-and-go object. They enter after the first ~12 frames, as objects do for a
    /// fixed camera (a background-model motion detector learns whatever is in view while
    /// it warms up).
    pub fn standard(frames: usize) -> Self {
        let n = frames.max(2);
        let along = |from: (f32, f32), to: (f32, f32)| -> Vec<Option<(f32, f32)>> {
            (0..n)
                .map(|i| Some(lerp(from, to, i as f32 / (n - 1) as f32)))
                .collect()
        };
        // Stop-and-go: moves a third of the time, waits a third, moves again.
        let stop_go: Vec<Option<(f32, f32)>> = (0..n)
            .map(|i| {
                let t = i as f32 / (n - 1) as f32;
                let p = if t < 1.0 / 3.0 {
                    t * 1.5
                } else if t < 2.0 / 3.0 {
                    0.5
                } else {
                    0.5 + (t - 2.0 / 3.0) * 1.5
                };
                Some(lerp((-90.0, 180.0), (390.0, 180.0), p))
            })
            .collect();
        Self {
            width: 320,
            height: 240,
            frames: n,
            objects: vec![
                ScriptedObject {
                    id: 1,
                    width: 28,
                    height: 36,
                    luma: 220,
                    path: along((-80.0, 10.0), (330.0, 150.0)),
                },
                ScriptedObject {
                    id: 2,
                    width: 28,
                    height: 36,
                    luma: 200,
                    path: along((400.0, 10.0), (-35.0, 150.0)),
                },
                ScriptedObject {
                    id: 3,
                    width: 32,
                    height: 28,
                    luma: 235,
                    path: stop_go,
                },
            ],
            occluders: Vec::new(),
        }
    }

    /// The ground truth of frame `i`: objects at least half visible (the usual MOT
    /// convention; a two-pixel sliver at the border is not a detectable object), boxes
    /// clipped to the picture.
    pub fn truth(&self, i: usize) -> FrameTruth {
        self.objects
            .iter()
            .filter_map(|o| {
                let (x, y) = o.path.get(i).copied().flatten()?;
                let (x0, y0) = (x.max(0.0), y.max(0.0));
                let x1 = (x + o.width as f32).min(self.width as f32);
                let y1 = (y + o.height as f32).min(self.height as f32);
                let visible = (x1 - x0).max(0.0) * (y1 - y0).max(0.0);
                (visible >= 0.5 * (o.width * o.height) as f32)
                    .then_some((o.id, [x0, y0, x1 - x0, y1 - y0]))
            })
            .collect()
    }

    /// Boxes of objects that are visible but less than half in the picture: evaluation
    /// ignores hypotheses there (neither match nor false positive), as MOT benchmarks do
    /// for low-visibility objects.
    pub fn ignored(&self, i: usize) -> Vec<[f32; 4]> {
        self.objects
            .iter()
            .filter_map(|o| {
                let (x, y) = o.path.get(i).copied().flatten()?;
                let (x0, y0) = (x.max(0.0), y.max(0.0));
                let x1 = (x + o.width as f32).min(self.width as f32);
                let y1 = (y + o.height as f32).min(self.height as f32);
                let visible = (x1 - x0).max(0.0) * (y1 - y0).max(0.0);
                (visible > 0.0 && visible < 0.5 * (o.width * o.height) as f32).then_some([
                    x0,
                    y0,
                    x1 - x0,
                    y1 - y0,
                ])
            })
            .collect()
    }

    /// Frame `i` as tightly packed I420.
    pub fn render_i420(&self, i: usize) -> Vec<u8> {
        let (w, h) = (self.width as usize, self.height as usize);
        let mut buf = vec![40u8; w * h];
        for o in self.objects.iter().chain(&self.occluders) {
            let Some((x, y)) = o.path.get(i).copied().flatten() else {
                continue;
            };
            let (x0, y0) = (x.max(0.0) as usize, y.max(0.0) as usize);
            let x1 = ((x + o.width as f32) as usize).min(w);
            let y1 = ((y + o.height as f32) as usize).min(h);
            for row in y0..y1 {
                buf[row * w + x0.min(x1)..row * w + x1].fill(o.luma);
            }
        }
        buf.resize(w * h + 2 * (w.div_ceil(2) * h.div_ceil(2)), 128);
        buf
    }

    /// Writes all frames as raw I420 to `path`.
    pub fn write_raw(&self, path: &Path) -> std::io::Result<()> {
        let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
        for i in 0..self.frames {
            f.write_all(&self.render_i420(i))?;
        }
        f.flush()
    }

    /// Encodes the scenario to an H.264 MP4 at 30 fps with `gst-launch-1.0`.
    pub fn encode_mp4(&self, dir: &Path, name: &str) -> std::io::Result<std::path::PathBuf> {
        let raw = dir.join(format!("{name}.i420"));
        let mp4 = dir.join(format!("{name}.mp4"));
        self.write_raw(&raw)?;
        encode_i420_mp4(&raw, self.width, self.height, &mp4)?;
        Ok(mp4)
    }
}

/// Encodes a raw I420 file (`width` x `height`, 30 fps) as an H.264 MP4 at `mp4` with
/// `gst-launch-1.0`: the encoding every generated test clip uses.
pub fn encode_i420_mp4(raw: &Path, width: u32, height: u32, mp4: &Path) -> std::io::Result<()> {
    let status = Command::new("gst-launch-1.0")
        .arg("-q")
        .arg("filesrc")
        .arg(format!("location={}", raw.display()))
        .arg("!")
        .arg("rawvideoparse")
        .arg(format!("width={width}"))
        .arg(format!("height={height}"))
        .arg("format=i420")
        .arg("framerate=30/1")
        .args([
            "!",
            "x264enc",
            "speed-preset=fast",
            "key-int-max=30",
            "!",
            "video/x-h264,profile=main",
            "!",
            "h264parse",
            "!",
            "mp4mux",
            "!",
            "filesink",
        ])
        .arg(format!("location={}", mp4.display()))
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "gst-launch-1.0 failed: {status}"
        )))
    }
}

/// Encodes `frames` frames of the `videotestsrc` `pattern` as an H.264 MP4 at `path` with the
/// `gst-launch-1.0` tool, in camera-like 8-bit 4:2:0 (without the I420 caps x264enc picks
/// 4:4:4). For tests of the binary, which cannot link GStreamer themselves.
pub fn test_pattern_mp4(path: &Path, frames: u32, width: u32, height: u32, pattern: &str) {
    let status = Command::new("gst-launch-1.0")
        .args([
            "-q",
            "videotestsrc",
            &format!("num-buffers={frames}"),
            &format!("pattern={pattern}"),
            "!",
            &format!("video/x-raw,format=I420,width={width},height={height},framerate=30/1"),
            "!",
            "x264enc",
            "!",
            "h264parse",
            "!",
            "mp4mux",
            "!",
            "filesink",
            &format!("location={}", path.display()),
        ])
        .status();
    match status {
        Ok(s) if s.success() => {}
        other => panic!(
            "gst-launch-1.0 could not write {}: {other:?}",
            path.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truth_matches_rendering() {
        let s = Scenario::standard(150);
        let frame = s.render_i420(40);
        for (id, [x, y, w, h]) in s.truth(40) {
            let (cx, cy) = ((x + w / 2.0) as usize, (y + h / 2.0) as usize);
            assert_ne!(
                frame[cy * 320 + cx],
                40,
                "object {id} drawn at its truth box"
            );
        }
        assert_eq!(frame.len(), 320 * 240 * 3 / 2);
        assert_eq!(s.truth(0).len(), 0, "objects start outside the picture");
        assert_eq!(s.truth(40).len(), 3);
    }
}
