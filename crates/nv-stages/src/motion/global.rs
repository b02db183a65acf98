//! Global motion: the whole picture moving (camera pan or shake) or changing brightness
//! at once (an exposure jump). Background subtraction cannot tell either from objects:
//! every textured cell differs from the background, and the detector would report
//! boxes over most of the frame. So each frame is first compared with a reference frame
//! (the previous one while the camera moves by whole cells, up to a few frames back
//! otherwise, so that a slow pan adds up to a measurable shift):
//!
//! - the frame-to-frame translation is estimated by matching the mean-removed column
//!   and row profiles (integral projections) of the two grids: cheap (`O(cells)` plus
//!   `O(shifts x (w + h))`), insensitive to a brightness offset, and exact for a shifted
//!   image;
//! - the translation counts only when it explains the change: at least
//!   `global_min_changed_fraction` of the cells changed, and aligning by the estimate
//!   leaves at most half of them changed (one object moving over a flat scene also
//!   shifts the profiles, but aligning explains nothing outside it);
//! - the brightness jump is the median frame-to-frame difference (most cells brighter or
//!   darker together).
//!
//! A moving run survives up to `HOLD_FRAMES` frames without a whole-cell shift (a slow
//! pan shows one only every few frames).
//!
//! A run of moving frames is a pan when the camera keeps going one way (net displacement
//! over the last frames close to the path length), and a shake when it goes back and
//! forth (the position stays bounded, so the net displacement is small).

/// What the whole picture did on one frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum GlobalMotion {
    #[default]
    /// The camera is still (objects may move).
    None,
    /// The picture moves, for too few frames to tell a pan from a shake.
    Moving,
    /// The picture moves consistently one way.
    Pan,
    /// The picture moves back and forth.
    Shake,
    /// The brightness of the whole picture jumped (auto exposure, lights).
    ExposureJump,
}

impl GlobalMotion {
    /// The value of the `motion.global` signal.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Moving => "moving",
            Self::Pan => "pan",
            Self::Shake => "shake",
            Self::ExposureJump => "exposure_jump",
        }
    }

    /// Whether the frame's foreground is meaningless (the detector reports no boxes).
    pub fn is_global(self) -> bool {
        self != Self::None
    }
}

/// Frames of a moving run looked at to tell a pan from a shake.
const WINDOW: usize = 4;
/// A run needs this many moving frames before it is called a pan or a shake.
const MIN_RUN: usize = 3;
/// Net displacement over path length at or above which a run is a pan.
const PAN_CONSISTENCY: f32 = 0.7;

/// Thresholds of the estimator (from `MotionConfig`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct GlobalParams {
    /// Largest shift searched, in grid cells.
    pub max_shift_cells: usize,
    pub min_changed_fraction: f32,
    /// A cell changed when it differs by more than this (grey levels).
    pub change_levels: f32,
    pub exposure_jump_levels: f32,
}

/// Per-feed estimator state and buffers (sized once per grid size).
#[derive(Debug, Default, Clone)]
pub(crate) struct GlobalMotionEstimator {
    cols_prev: Vec<f32>,
    cols_cur: Vec<f32>,
    rows_prev: Vec<f32>,
    rows_cur: Vec<f32>,
    /// The grid shifts are measured against: the last frame where a shift was found,
    /// or, while the camera is still, a frame up to `REFERENCE_FRAMES` old. Measuring
    /// against an older frame lets a slow pan (under a cell per frame) add up to a
    /// whole cell.
    reference: Vec<f32>,
    reference_age: u32,
    has_reference: bool,
    /// Frames since the last shift was found, within a moving run.
    since_shift: u32,
    last: GlobalMotion,
    /// Shifts of the current moving run, newest last (at most `WINDOW`).
    run: [(isize, isize); WINDOW],
    run_len: usize,
    /// Last estimated shift in grid cells `(dx, dy)`.
    shift: (isize, isize),
}

/// A still camera's reference frame is renewed after this many frames (when little has
/// changed against it: a slow pan in progress must be allowed to add up), so slow
/// lighting changes do not build up against it.
const REFERENCE_FRAMES: u32 = 4;
/// Frames without a measurable shift that still count as part of a moving run: a pan of
/// a quarter cell per frame shows a whole-cell shift every fourth frame.
const HOLD_FRAMES: u32 = 3;

impl GlobalMotionEstimator {
    pub fn configure(&mut self, grid_w: usize, grid_h: usize) {
        for (buf, n) in [
            (&mut self.cols_prev, grid_w),
            (&mut self.cols_cur, grid_w),
            (&mut self.rows_prev, grid_h),
            (&mut self.rows_cur, grid_h),
            (&mut self.reference, grid_w * grid_h),
        ] {
            buf.clear();
            buf.resize(n, 0.0);
        }
        self.reset();
    }

    pub fn reset(&mut self) {
        self.run_len = 0;
        self.shift = (0, 0);
        self.has_reference = false;
        self.since_shift = 0;
        self.last = GlobalMotion::None;
    }

    /// Last frame's shift in whole grid cells `(dx, dy)` since the frame it was measured
    /// against (the previous one unless the camera moves by less than a cell per frame):
    /// content moved right / down when positive. Zero unless a shift was found.
    pub fn shift_cells(&self) -> (isize, isize) {
        self.shift
    }

    /// Classifies the change from `prev` to `cur` (both `w x h` grids). `hist` is
    /// scratch for the median.
    pub fn classify(
        &mut self,
        prev: &[f32],
        cur: &[f32],
        w: usize,
        h: usize,
        p: &GlobalParams,
        hist: &mut Vec<u32>,
    ) -> GlobalMotion {
        self.last = self.classify_inner(prev, cur, w, h, p, hist);
        self.last
    }

    fn classify_inner(
        &mut self,
        prev: &[f32],
        cur: &[f32],
        w: usize,
        h: usize,
        p: &GlobalParams,
        hist: &mut Vec<u32>,
    ) -> GlobalMotion {
        self.shift = (0, 0);
        if !self.has_reference {
            self.reference.copy_from_slice(prev);
            self.reference_age = 0;
            self.has_reference = true;
        }
        let reference = &self.reference;
        // Brightness change against the reference, removed before counting changes.
        let offset = super::ops::median_shift(cur, reference, hist);
        let changed = changed_fraction(reference, cur, w, h, (0, 0), offset, p.change_levels);
        let mut moved = None;
        if changed >= p.min_changed_fraction {
            projections(reference, w, &mut self.cols_prev, &mut self.rows_prev);
            projections(cur, w, &mut self.cols_cur, &mut self.rows_cur);
            let dx = profile_shift(&self.cols_prev, &self.cols_cur, p.max_shift_cells);
            let dy = profile_shift(&self.rows_prev, &self.rows_cur, p.max_shift_cells);
            if (dx, dy) != (0, 0) {
                let aligned =
                    changed_fraction(reference, cur, w, h, (dx, dy), offset, p.change_levels);
                if aligned <= 0.5 * changed {
                    moved = Some((dx, dy));
                }
            }
        }
        if let Some(d) = moved {
            self.reference.copy_from_slice(cur);
            self.reference_age = 0;
            self.since_shift = 0;
            self.shift = d;
            if self.run_len == WINDOW {
                self.run.copy_within(1.., 0);
                self.run_len -= 1;
            }
            self.run[self.run_len] = d;
            self.run_len += 1;
            if self.run_len < MIN_RUN {
                return GlobalMotion::Moving;
            }
            let run = &self.run[..self.run_len];
            let (nx, ny) = run
                .iter()
                .fold((0, 0), |(x, y), &(dx, dy)| (x + dx, y + dy));
            let len = |x: isize, y: isize| (x as f32).hypot(y as f32);
            let path: f32 = run.iter().map(|&(dx, dy)| len(dx, dy)).sum();
            return if len(nx, ny) >= PAN_CONSISTENCY * path {
                GlobalMotion::Pan
            } else {
                GlobalMotion::Shake
            };
        }
        // Exposure is a frame-to-frame jump (against the previous frame, not the
        // reference, which a slow drift would also move).
        let jump = super::ops::median_shift(cur, prev, hist);
        if jump.abs() >= p.exposure_jump_levels {
            self.run_len = 0;
            self.reference.copy_from_slice(cur);
            self.reference_age = 0;
            return GlobalMotion::ExposureJump;
        }
        if self.run_len > 0 && self.since_shift < HOLD_FRAMES {
            // Within a run: the camera may be moving by less than a cell per frame.
            self.since_shift += 1;
            return self.last;
        }
        self.run_len = 0;
        self.reference_age = self.reference_age.saturating_add(1);
        if self.reference_age >= REFERENCE_FRAMES && changed < p.min_changed_fraction {
            self.reference.copy_from_slice(cur);
            self.reference_age = 0;
        }
        GlobalMotion::None
    }
}

/// Column means into `cols`, row means into `rows`.
fn projections(grid: &[f32], w: usize, cols: &mut [f32], rows: &mut [f32]) {
    cols.fill(0.0);
    for (row, r) in grid.chunks_exact(w).zip(rows.iter_mut()) {
        let mut sum = 0.0;
        for (c, v) in cols.iter_mut().zip(row) {
            *c += v;
            sum += v;
        }
        *r = sum / w as f32;
    }
    let h = rows.len().max(1) as f32;
    for c in cols.iter_mut() {
        *c /= h;
    }
}

/// The whole-cell shift `s` that best maps `prev[i]` onto `cur[i + s]`, by mean
/// absolute difference of the mean-removed overlapping parts (so a brightness offset
/// does not matter). Shifts leaving less than half the profile to compare are not tried.
fn profile_shift(prev: &[f32], cur: &[f32], max_shift: usize) -> isize {
    let n = prev.len().min(cur.len());
    let m = max_shift.min(n / 2) as isize;
    let cost = |s: isize| -> f32 {
        let (p0, c0) = if s >= 0 {
            (0, s.unsigned_abs())
        } else {
            (s.unsigned_abs(), 0)
        };
        let len = n - s.unsigned_abs();
        let (p, c) = (&prev[p0..p0 + len], &cur[c0..c0 + len]);
        let mean_p = p.iter().sum::<f32>() / len as f32;
        let mean_c = c.iter().sum::<f32>() / len as f32;
        p.iter()
            .zip(c)
            .map(|(a, b)| ((b - mean_c) - (a - mean_p)).abs())
            .sum::<f32>()
            / len as f32
    };
    let (mut best, mut best_cost) = (0isize, cost(0));
    for s in 1..=m {
        for s in [-s, s] {
            // Strictly better only: ties (a flat profile) keep the smaller shift.
            let c = cost(s);
            if c < best_cost * 0.999 - 1e-4 {
                (best, best_cost) = (s, c);
            }
        }
    }
    best
}

/// Fraction of the cells of `cur` (where `prev` shifted by `shift` overlaps it) that
/// differ from the shifted `prev` by more than `levels` after removing `offset`.
fn changed_fraction(
    prev: &[f32],
    cur: &[f32],
    w: usize,
    h: usize,
    shift: (isize, isize),
    offset: f32,
    levels: f32,
) -> f32 {
    let (dx, dy) = shift;
    let (mut changed, mut total) = (0usize, 0usize);
    for y in 0..h {
        let py = y as isize - dy;
        if py < 0 || py >= h as isize {
            continue;
        }
        let (cur_row, prev_row) = (&cur[y * w..(y + 1) * w], &prev[py as usize * w..][..w]);
        for (x, c) in cur_row.iter().enumerate() {
            let px = x as isize - dx;
            if px < 0 || px >= w as isize {
                continue;
            }
            total += 1;
            if (c - prev_row[px as usize] - offset).abs() > levels {
                changed += 1;
            }
        }
    }
    changed as f32 / total.max(1) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A profile with structure at every scale, shifted by whole cells.
    fn profile(n: usize, shift: isize) -> Vec<f32> {
        (0..n as isize)
            .map(|i| {
                let x = (i - shift) as f32;
                100.0 + 40.0 * (x * 0.37).sin() + 25.0 * (x * 0.11).cos() + 10.0 * (x * 1.3).sin()
            })
            .collect()
    }

    #[test]
    fn profile_shift_finds_whole_shifts_and_ignores_offsets() {
        for s in -6..=6 {
            let prev = profile(160, 0);
            let cur: Vec<f32> = profile(160, s).iter().map(|v| v + 30.0).collect();
            assert_eq!(profile_shift(&prev, &cur, 8), s);
        }
        // Flat profiles: no motion.
        assert_eq!(profile_shift(&[50.0; 100], &[80.0; 100], 8), 0);
    }
}
