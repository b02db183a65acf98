//! Test clip renderer: rectangles moving along scripted piecewise-linear paths over a
//! textured, noisy, slowly brightening background, with exact ground truth.

use nv_core::geometry::BBox;
use nv_core::id::FeedId;
use nv_core::source::PixelFormat;
use nv_core::time::MonotonicTs;
use nv_frame::FrameEnvelope;

/// One object: size and grey level, and `(frame, x, y)` keyframes of its top-left
/// corner in pixels. It exists from its first keyframe on and stays at its last one.
#[derive(Clone, Debug)]
pub struct Object {
    pub id: u64,
    pub w_px: u32,
    pub h_px: u32,
    pub value: u8,
    pub keys: Vec<(u32, f32, f32)>,
}

impl Object {
    /// Top-left corner at `frame`, `None` before the object appears.
    pub fn position(&self, frame: u32) -> Option<(f32, f32)> {
        let first = self.keys.first()?;
        if frame < first.0 {
            return None;
        }
        for pair in self.keys.windows(2) {
            let ((f0, x0, y0), (f1, x1, y1)) = (pair[0], pair[1]);
            if frame <= f1 {
                let t = (frame - f0) as f32 / (f1 - f0).max(1) as f32;
                return Some((x0 + (x1 - x0) * t, y0 + (y1 - y0) * t));
            }
        }
        self.keys.last().map(|&(_, x, y)| (x, y))
    }
}

#[derive(Clone, Debug)]
pub struct Scene {
    pub width: u32,
    pub height: u32,
    pub background: f32,
    /// Grey levels added per frame (lighting drift).
    pub drift_per_frame: f32,
    /// Peak amplitude of per-pixel sensor noise.
    pub noise: u8,
    /// Drawn in order: later objects occlude earlier ones.
    pub objects: Vec<Object>,
}

/// Integer pixel rectangle of an object, clipped to the frame: `(x0, y0, x1, y1)`.
fn pixel_rect(scene: &Scene, o: &Object, frame: u32) -> Option<(u32, u32, u32, u32)> {
    let (x, y) = o.position(frame)?;
    let (x0, y0) = (x.round() as i64, y.round() as i64);
    let (x1, y1) = (x0 + i64::from(o.w_px), y0 + i64::from(o.h_px));
    let clip = |v: i64, max: u32| v.clamp(0, i64::from(max)) as u32;
    let r = (
        clip(x0, scene.width),
        clip(y0, scene.height),
        clip(x1, scene.width),
        clip(y1, scene.height),
    );
    (r.2 > r.0 && r.3 > r.1).then_some(r)
}

impl Scene {
    /// Exact boxes of every object present at `frame` (occluded ones included, as in
    /// the MOT benchmarks), normalised.
    pub fn truth(&self, frame: u32) -> Vec<(u64, BBox)> {
        let (w, h) = (self.width as f32, self.height as f32);
        self.objects
            .iter()
            .filter_map(|o| {
                let (x0, y0, x1, y1) = pixel_rect(self, o, frame)?;
                Some((
                    o.id,
                    BBox::new(x0 as f32 / w, y0 as f32 / h, x1 as f32 / w, y1 as f32 / h),
                ))
            })
            .collect()
    }

    /// The luma plane of `frame`.
    pub fn render_luma(&self, frame: u32) -> Vec<u8> {
        let (w, h) = (self.width as usize, self.height as usize);
        let level = self.background + self.drift_per_frame * frame as f32;
        let mut rng = 0x2545_F491_4F6C_DD1Du64 ^ u64::from(frame).wrapping_mul(0x9E37_79B9);
        let amp = i32::from(self.noise);
        let mut img = vec![0u8; w * h];
        for (y, row) in img.chunks_exact_mut(w).enumerate() {
            for (x, p) in row.iter_mut().enumerate() {
                let texture = ((x * 7 + y * 13) % 11) as f32 - 5.0;
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let noise = if amp > 0 {
                    (rng % (2 * amp as u64 + 1)) as i32 - amp
                } else {
                    0
                };
                *p = (level + texture + noise as f32).clamp(0.0, 255.0) as u8;
            }
        }
        for o in &self.objects {
            if let Some((x0, y0, x1, y1)) = pixel_rect(self, o, frame) {
                for row in img
                    .chunks_exact_mut(w)
                    .skip(y0 as usize)
                    .take((y1 - y0) as usize)
                {
                    row[x0 as usize..x1 as usize].fill(o.value);
                }
            }
        }
        img
    }

    /// `frame` as an NV12 frame (neutral chroma), 30 fps timestamps.
    pub fn render_nv12(&self, frame: u32) -> FrameEnvelope {
        let mut data = self.render_luma(frame);
        let chroma = (self.width as usize).div_ceil(2) * 2 * (self.height as usize).div_ceil(2);
        data.resize(data.len() + chroma, 128);
        FrameEnvelope::new_owned(
            FeedId::new(1),
            u64::from(frame),
            MonotonicTs::from_nanos(u64::from(frame) * 33_333_333),
            self.width,
            self.height,
            PixelFormat::Nv12,
            data,
        )
        .expect("buffer sized for NV12")
    }
}
