//! Generated tracking scenes with exact ground truth, for comparing trackers on identical
//! detections: crossings, full occlusions, entries and exits at every edge, missed
//! detections, false positives, camera jitter, crowds.
//!
//! Objects move on straight lines (with mild turns) across a `width` x `height` frame.
//! Ground truth holds every object whose box is at least `MIN_VISIBLE` inside the frame,
//! occluded or not, clipped to the frame. Detections are made from the ground truth:
//! clipped boxes with per-edge pixel noise, dropped when the object is behind an occluder
//! or by the scene's miss rate, plus false positives. Everything is deterministic per seed.

use nv_core::geometry::BBox;

use super::MotRecord;

/// Fraction of an object's box that must lie inside the frame for it to be ground truth.
const MIN_VISIBLE: f32 = 0.25;

/// The seeds the benchmark runs every scene with (results are reported for each, so
/// that no setting is tuned to one random draw).
pub const SUITE_SEEDS: [u64; 2] = [7, 1009];

/// What a scene stresses.
#[derive(Clone, Debug, PartialEq)]
pub struct SceneSpec {
    pub name: &'static str,
    pub frames: u32,
    pub width: u32,
    pub height: u32,
    /// Objects over the whole scene (entries are spread over time when `staggered`).
    pub objects: u32,
    pub staggered: bool,
    /// Objects start and end outside the frame (entries and exits at every edge).
    pub through_edges: bool,
    /// Paths cross the frame centre (many crossings).
    pub crossing: bool,
    /// Vertical occluder bands (fraction of the width each), objects behind them are
    /// not detected.
    pub occluders: Vec<(f32, f32)>,
    pub miss_rate: f32,
    /// False positives per frame (mean).
    pub false_positives_per_frame: f32,
    /// Detection edge noise std in pixels.
    pub box_noise_px: f32,
    /// Whole-picture shake std in pixels (camera jitter), applied to truth and detections.
    pub camera_jitter_px: f32,
    pub seed: u64,
}

impl SceneSpec {
    fn base(name: &'static str) -> Self {
        Self {
            name,
            frames: 600,
            width: 1280,
            height: 720,
            objects: 12,
            staggered: false,
            through_edges: false,
            crossing: false,
            occluders: Vec::new(),
            miss_rate: 0.0,
            false_positives_per_frame: 0.0,
            box_noise_px: 2.0,
            camera_jitter_px: 0.0,
            seed: 7,
        }
    }

    /// The suite with its first seed.
    pub fn suite() -> Vec<Self> {
        Self::suite_seeded(SUITE_SEEDS[0])
    }

    /// The suite: one scene per stress, then all of them at once with 100 objects, all
    /// generated from `seed`.
    pub fn suite_seeded(seed: u64) -> Vec<Self> {
        let mut scenes = vec![
            Self {
                crossing: true,
                ..Self::base("crossings")
            },
            Self {
                occluders: vec![(0.3, 0.06), (0.65, 0.08)],
                ..Self::base("full_occlusions")
            },
            Self {
                objects: 40,
                staggered: true,
                through_edges: true,
                ..Self::base("edges")
            },
            Self {
                miss_rate: 0.1,
                ..Self::base("missed_10pct")
            },
            Self {
                miss_rate: 0.3,
                ..Self::base("missed_30pct")
            },
            Self {
                false_positives_per_frame: 2.0,
                ..Self::base("false_positives")
            },
            Self {
                camera_jitter_px: 6.0,
                ..Self::base("camera_jitter")
            },
            Self {
                objects: 100,
                frames: 1000,
                staggered: true,
                through_edges: true,
                crossing: true,
                miss_rate: 0.1,
                false_positives_per_frame: 1.0,
                occluders: vec![(0.5, 0.05)],
                ..Self::base("crowd_100")
            },
        ];
        for s in &mut scenes {
            s.seed = seed;
        }
        scenes
    }
}

/// A generated scene: per frame (index 0 = frame 1) ground truth and detections, both
/// normalised.
#[derive(Clone, Debug)]
pub struct Scene {
    pub spec: SceneSpec,
    /// `(object id, box)` per frame.
    pub truth: Vec<Vec<(u64, BBox)>>,
    /// `(box, confidence)` per frame.
    pub detections: Vec<Vec<(BBox, f32)>>,
}

impl Scene {
    /// Ground truth as MOTChallenge records (1-based frames).
    pub fn truth_records(&self) -> Vec<MotRecord> {
        let mut out = Vec::new();
        for (f, objs) in self.truth.iter().enumerate() {
            for &(id, bbox) in objs {
                out.push(MotRecord {
                    frame: f as u64 + 1,
                    id,
                    bbox,
                    confidence: 1.0,
                });
            }
        }
        out
    }

    /// Detections as records with id 0 (detection files conventionally write -1).
    pub fn detection_records(&self) -> Vec<MotRecord> {
        let mut out = Vec::new();
        for (f, dets) in self.detections.iter().enumerate() {
            for &(bbox, confidence) in dets {
                out.push(MotRecord {
                    frame: f as u64 + 1,
                    id: 0,
                    bbox,
                    confidence,
                });
            }
        }
        out
    }
}

/// SplitMix64: small, seedable, good enough for scene noise.
#[derive(Clone, Debug)]
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
    fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.unit()
    }
    /// Standard normal (Box-Muller).
    fn normal(&mut self) -> f32 {
        let u1 = self.unit().max(1e-7);
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f32::consts::PI * u2).cos()
    }
}

/// One object's path, in pixels.
#[derive(Clone, Debug)]
struct Path {
    start: u32,
    end: u32,
    x: f32,
    y: f32,
    vx: f32,
    vy: f32,
    /// Turn: velocity rotates by this many radians per frame.
    turn: f32,
    w: f32,
    h: f32,
}

fn make_path(spec: &SceneSpec, rng: &mut Rng, index: u32) -> Path {
    let (fw, fh) = (spec.width as f32, spec.height as f32);
    let h = rng.range(0.12, 0.3) * fh;
    let w = h * rng.range(0.35, 0.5);
    let speed = rng.range(2.0, 6.0);
    let start = if spec.staggered {
        (index as f32 / spec.objects.max(1) as f32 * spec.frames as f32 * 0.8) as u32
    } else {
        0
    };
    let (x, y, angle) = if spec.through_edges {
        // Start just outside a random edge, head across the frame.
        let edge = (rng.next_u64() % 4) as u32;
        let (x, y) = match edge {
            0 => (-w, rng.range(0.0, fh - h)),
            1 => (fw, rng.range(0.0, fh - h)),
            2 => (rng.range(0.0, fw - w), -h),
            _ => (rng.range(0.0, fw - w), fh),
        };
        let (tx, ty) = (rng.range(0.2, 0.8) * fw, rng.range(0.2, 0.8) * fh);
        (x, y, (ty - y - h / 2.0).atan2(tx - x - w / 2.0))
    } else if spec.crossing {
        // Spread on a circle, heading through the middle: every path crosses others.
        let a = index as f32 / spec.objects.max(1) as f32 * std::f32::consts::TAU;
        let (cx, cy) = (fw / 2.0, fh / 2.0);
        let r = 0.38 * fh;
        let (x, y) = (cx + r * a.cos() - w / 2.0, cy + r * a.sin() - h / 2.0);
        (x, y, a + std::f32::consts::PI + rng.range(-0.3, 0.3))
    } else {
        (
            rng.range(0.05, 0.9) * (fw - w),
            rng.range(0.05, 0.9) * (fh - h),
            rng.range(0.0, std::f32::consts::TAU),
        )
    };
    let speed = if spec.crossing && !spec.through_edges {
        speed * 0.4
    } else {
        speed
    };
    Path {
        start,
        end: spec.frames,
        x,
        y,
        vx: speed * angle.cos(),
        vy: speed * angle.sin(),
        turn: rng.range(-0.004, 0.004),
        w,
        h,
    }
}

/// Generates the scene.
pub fn generate(spec: &SceneSpec) -> Scene {
    let mut rng = Rng(spec.seed ^ 0x5EED);
    let mut paths: Vec<Path> = (0..spec.objects)
        .map(|i| make_path(spec, &mut rng, i))
        .collect();
    let (fw, fh) = (spec.width as f32, spec.height as f32);
    let mut truth = Vec::with_capacity(spec.frames as usize);
    let mut detections = Vec::with_capacity(spec.frames as usize);
    for f in 0..spec.frames {
        let (jx, jy) = if spec.camera_jitter_px > 0.0 {
            (
                rng.normal() * spec.camera_jitter_px,
                rng.normal() * spec.camera_jitter_px,
            )
        } else {
            (0.0, 0.0)
        };
        let mut gt = Vec::new();
        let mut dets = Vec::new();
        for (i, p) in paths.iter_mut().enumerate() {
            if f < p.start || f >= p.end {
                continue;
            }
            let (x, y) = (p.x + jx, p.y + jy);
            let full = BBox::new(x / fw, y / fh, (x + p.w) / fw, (y + p.h) / fh);
            let visible = full.clamped();
            // Advance for the next frame (bounce off the walls unless passing through).
            p.x += p.vx;
            p.y += p.vy;
            let (c, s) = (p.turn.cos(), p.turn.sin());
            (p.vx, p.vy) = (p.vx * c - p.vy * s, p.vx * s + p.vy * c);
            if !spec.through_edges {
                if p.x < 0.0 || p.x + p.w > fw {
                    p.vx = -p.vx;
                }
                if p.y < 0.0 || p.y + p.h > fh {
                    p.vy = -p.vy;
                }
            }
            if visible.area() < MIN_VISIBLE * full.area() {
                continue;
            }
            gt.push((i as u64 + 1, visible));
            let cx = visible.center().x;
            let hidden = spec
                .occluders
                .iter()
                .any(|&(at, width)| (cx - at).abs() < width / 2.0);
            if hidden || rng.unit() < spec.miss_rate {
                continue;
            }
            let n = |rng: &mut Rng, scale: f32| rng.normal() * spec.box_noise_px / scale;
            let noisy = BBox::new(
                visible.x_min + n(&mut rng, fw),
                visible.y_min + n(&mut rng, fh),
                visible.x_max + n(&mut rng, fw),
                visible.y_max + n(&mut rng, fh),
            )
            .clamped();
            if noisy.area() > 0.0 {
                dets.push((noisy, rng.range(0.55, 0.95)));
            }
        }
        // False positives: Poisson-ish count, random small boxes, mostly low confidence.
        let mut budget = spec.false_positives_per_frame;
        while budget > 0.0 {
            if rng.unit() < budget.min(1.0) {
                let (w, h) = (rng.range(0.02, 0.08), rng.range(0.05, 0.15));
                let (x, y) = (rng.range(0.0, 1.0 - w), rng.range(0.0, 1.0 - h));
                dets.push((BBox::new(x, y, x + w, y + h), rng.range(0.15, 0.7)));
            }
            budget -= 1.0;
        }
        truth.push(gt);
        detections.push(dets);
    }
    Scene {
        spec: spec.clone(),
        truth,
        detections,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenes_are_deterministic_and_truth_is_inside_the_frame() {
        for spec in SceneSpec::suite() {
            let a = generate(&spec);
            let b = generate(&spec);
            assert_eq!(a.truth, b.truth, "{}", spec.name);
            assert_eq!(a.detections, b.detections, "{}", spec.name);
            assert_eq!(a.truth.len(), spec.frames as usize);
            let boxes = a.truth.iter().flatten().count();
            assert!(boxes > spec.frames as usize, "{}: {boxes}", spec.name);
            for (_, b) in a.truth.iter().flatten() {
                assert!(b.x_min >= 0.0 && b.y_min >= 0.0 && b.x_max <= 1.0 && b.y_max <= 1.0);
                assert!(b.area() > 0.0);
            }
        }
    }

    #[test]
    fn each_suite_seed_draws_different_scenes() {
        let [a, b] = SUITE_SEEDS.map(SceneSpec::suite_seeded);
        assert_eq!(a.len(), b.len());
        for (a, b) in a.iter().zip(&b) {
            assert_eq!(
                (a.name, a.seed, b.seed),
                (b.name, SUITE_SEEDS[0], SUITE_SEEDS[1])
            );
            assert_ne!(generate(a).detections, generate(b).detections, "{}", a.name);
        }
        assert_eq!(SceneSpec::suite(), SceneSpec::suite_seeded(SUITE_SEEDS[0]));
    }

    #[test]
    fn edge_scene_enters_and_leaves_through_all_four_edges() {
        let spec = SceneSpec::suite()
            .into_iter()
            .find(|s| s.name == "edges")
            .expect("edges scene");
        let scene = generate(&spec);
        let mut first: std::collections::HashMap<u64, BBox> = Default::default();
        for (id, b) in scene.truth.iter().flatten() {
            first.entry(*id).or_insert(*b);
        }
        let touching = |pick: fn(&BBox) -> bool| first.values().filter(|b| pick(b)).count();
        assert!(touching(|b| b.x_min <= 0.0) > 0);
        assert!(touching(|b| b.x_max >= 1.0) > 0);
        assert!(touching(|b| b.y_min <= 0.0) > 0);
        assert!(touching(|b| b.y_max >= 1.0) > 0);
    }
}
