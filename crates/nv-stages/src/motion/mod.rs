//! Motion detector stage: background subtraction on a downscaled grey image.
//!
//! Pipeline per frame: luma plane (read in place for Gray8/NV12/I420; converted into a
//! reused buffer for packed RGB formats) -> area-averaged analysis grid -> optional
//! global illumination compensation -> `|frame - background| > threshold` -> 3x3 opening
//! and closing -> 8-connected components -> detections. The background is a running
//! average: fast where the scene is still (tracks lighting drift), slow where motion is
//! seen (a passing object does not burn into the background).
//!
//! All buffers are sized on the first frame (and again only if the frame size changes),
//! so steady-state processing allocates nothing but the output detection list.
//!
//! Known limits, inherent to background subtraction: objects present while the
//! background is learned become part of it and leave a "ghost" detection where they
//! stood once they move, until the slow foreground rate absorbs it; touching objects
//! merge into one blob (the tracker's merge handling copes with that); a camera move
//! needs a new view epoch, which restarts learning.
//!
//! Global motion (the camera panning or shaking, an exposure jump) changes most of the
//! picture at once; it is recognised frame to frame (see `global.rs`) and reported as
//! the `motion.global` signal instead of boxes over the whole frame. Its limits: a pan
//! under a grid cell per frame (4 px on a 640-wide frame with the 160-px grid) is seen
//! once it adds up to a cell, so its first few frames may show boxes along strong edges,
//! and one slower than a quarter cell per frame is seen only intermittently; a shake
//! under a cell is not seen; and one object covering over a quarter of an otherwise
//! featureless picture, moving rigidly, reads as a pan.

mod config;
mod global;
mod ops;

use nv_core::geometry::BBox;
use nv_core::id::{DetectionId, StageId};
use nv_core::source::PixelFormat;
use nv_frame::convert::convert_into;
use nv_frame::{FrameEnvelope, PlaneView};
use nv_perception::{
    DerivedSignal, Detection, DetectionSet, EventKind, PerceptionEvent, SignalValue, Stage,
    StageCapabilities, StageCategory, StageContext, StageControl, StageError, StageOutput,
};
use nv_view::ViewEpoch;

pub use config::MotionConfig;
pub use global::GlobalMotion;
use global::{GlobalMotionEstimator, GlobalParams};
use ops::{components, median_shift, open_close, Blob, Downscaler};

/// Formats the detector reads without help: grey and the luma plane of YUV directly,
/// packed RGB through a conversion into a reused buffer.
const FORMATS: &[PixelFormat] = &[
    PixelFormat::Gray8,
    PixelFormat::Nv12,
    PixelFormat::I420,
    PixelFormat::Rgb8,
    PixelFormat::Bgr8,
    PixelFormat::Rgba8,
];

/// The motion detector stage. Produces one detection per moving blob, with confidence
/// equal to the fraction of the blob's box that is foreground (solid objects score near
/// 1, sparse noise low).
#[derive(Debug)]
pub struct MotionDetector {
    stage_id: StageId,
    config: MotionConfig,
    /// Frame size the buffers are laid out for.
    frame_size: (usize, usize),
    grid_w: usize,
    grid_h: usize,
    frames_seen: u32,
    foreground_ratio: f32,
    downscaler: Downscaler,
    gray: Vec<u8>,
    current: Vec<f32>,
    /// Previous frame's grid, to tell still foreground (ghosts, parked objects) from
    /// moving foreground.
    previous: Vec<f32>,
    /// Frames each foreground cell has been unchanged.
    still_frames: Vec<u32>,
    background: Vec<f32>,
    mask: Vec<u8>,
    padded: Vec<u8>,
    tmp: Vec<u8>,
    visited: Vec<bool>,
    stack: Vec<usize>,
    blobs: Vec<Blob>,
    hist: Vec<u32>,
    global: GlobalMotionEstimator,
    global_motion: GlobalMotion,
    /// The state the last `camera_motion` event reported (kept across resets, so a
    /// motion cut short by a restart still ends with a `none` event).
    reported_motion: GlobalMotion,
}

impl MotionDetector {
    pub const DEFAULT_ID: StageId = StageId::new("motion");
    /// Name of the per-frame signal holding the fraction of the grid in motion.
    pub const FOREGROUND_SIGNAL: &'static str = "motion.foreground_ratio";
    /// Name of the per-frame categorical signal saying what the whole picture did:
    /// see [`GlobalMotion::as_str`].
    pub const GLOBAL_SIGNAL: &'static str = "motion.global";
    /// Name of the per-frame `[dx, dy]` signal: the camera shift since the previous
    /// frame as a fraction of the frame's width and height (content moved right / down
    /// when positive); zero unless the picture moved.
    pub const GLOBAL_SHIFT_SIGNAL: &'static str = "motion.global_shift";

    pub fn new(config: MotionConfig) -> Result<Self, nv_core::error::ConfigError> {
        config.validate()?;
        Ok(Self {
            stage_id: Self::DEFAULT_ID,
            config,
            frame_size: (0, 0),
            grid_w: 0,
            grid_h: 0,
            frames_seen: 0,
            foreground_ratio: 0.0,
            downscaler: Downscaler::default(),
            gray: Vec::new(),
            current: Vec::new(),
            previous: Vec::new(),
            still_frames: Vec::new(),
            background: Vec::new(),
            mask: Vec::new(),
            padded: Vec::new(),
            tmp: Vec::new(),
            visited: Vec::new(),
            stack: Vec::new(),
            blobs: Vec::new(),
            hist: Vec::new(),
            global: GlobalMotionEstimator::default(),
            global_motion: GlobalMotion::None,
            reported_motion: GlobalMotion::None,
        })
    }

    #[must_use]
    pub fn with_id(mut self, id: StageId) -> Self {
        self.stage_id = id;
        self
    }

    pub fn config(&self) -> &MotionConfig {
        &self.config
    }

    /// Analysis grid size `(width, height)`; `(0, 0)` before the first frame.
    pub fn grid_size(&self) -> (usize, usize) {
        (self.grid_w, self.grid_h)
    }

    /// Fraction of the grid marked as motion on the last frame.
    pub fn foreground_ratio(&self) -> f32 {
        self.foreground_ratio
    }

    /// What the whole picture did on the last frame.
    pub fn global_motion(&self) -> GlobalMotion {
        self.global_motion
    }

    /// The last frame's camera shift as a fraction of the frame `(dx, dy)`.
    pub fn global_shift(&self) -> (f32, f32) {
        let (dx, dy) = self.global.shift_cells();
        (
            dx as f32 / self.grid_w.max(1) as f32,
            dy as f32 / self.grid_h.max(1) as f32,
        )
    }

    /// Forgets the background; the next frames re-learn it (warm-up applies again).
    pub fn reset(&mut self) {
        self.frames_seen = 0;
        self.foreground_ratio = 0.0;
        self.global_motion = GlobalMotion::None;
        self.global.reset();
    }

    /// Runs the detector on one frame. This is what [`Stage::process`] calls; public so
    /// it can be driven without a pipeline.
    pub fn detect(&mut self, frame: &FrameEnvelope) -> Result<DetectionSet, StageError> {
        let (w, h) = (frame.width() as usize, frame.height() as usize);
        if (w, h) != self.frame_size {
            self.resize(w, h);
        }
        let fail = |e: &dyn std::fmt::Display| StageError::processing(self.stage_id, e.to_string());
        // Luma straight from the frame where the format has it; otherwise convert.
        let plane = match frame.luma_plane().map_err(|e| fail(&e))? {
            Some(p) => p,
            None => {
                convert_into(frame, PixelFormat::Gray8, &mut self.gray).map_err(|e| fail(&e))?;
                PlaneView {
                    data: &self.gray,
                    stride: w,
                    row_bytes: w,
                    rows: h,
                }
            }
        };
        self.downscaler.run(&plane, &mut self.current);

        let warming = self.frames_seen < self.config.warmup_frames;
        if self.frames_seen == 0 {
            self.background.copy_from_slice(&self.current);
            self.previous.copy_from_slice(&self.current);
        }
        self.frames_seen = self.frames_seen.saturating_add(1);
        if warming {
            // Cumulative average while warming up: converges faster than the running
            // average would from a single first frame.
            let rate = (1.0 / self.frames_seen as f32).max(self.config.learning_rate);
            for (b, c) in self.background.iter_mut().zip(&self.current) {
                *b += (c - *b) * rate;
            }
            self.previous.copy_from_slice(&self.current);
            self.foreground_ratio = 0.0;
            self.global_motion = GlobalMotion::None;
            return Ok(DetectionSet::empty());
        }

        self.global_motion = if self.config.detect_global_motion {
            let params = GlobalParams {
                max_shift_cells: self.config.global_max_shift_grid_px as usize,
                min_changed_fraction: self.config.global_min_changed_fraction,
                change_levels: f32::from(self.config.diff_threshold_levels) * 0.5,
                exposure_jump_levels: f32::from(self.config.exposure_jump_levels),
            };
            self.global.classify(
                &self.previous,
                &self.current,
                self.grid_w,
                self.grid_h,
                &params,
                &mut self.hist,
            )
        } else {
            GlobalMotion::None
        };
        if self.global_motion.is_global() {
            // The old background is of another picture: restart it from this one, so
            // detection resumes on the first still frame instead of reporting the
            // whole frame until the background catches up.
            self.background.copy_from_slice(&self.current);
            self.previous.copy_from_slice(&self.current);
            self.still_frames.fill(0);
            self.foreground_ratio = 0.0;
            return Ok(DetectionSet::empty());
        }

        self.segment();
        self.update_background();
        Ok(self.detections())
    }

    fn resize(&mut self, w: usize, h: usize) {
        let grid_w = (self.config.grid_width_px as usize).min(w).max(1);
        let grid_h = ((h * grid_w + w / 2) / w.max(1)).max(1).min(h.max(1));
        let n = grid_w * grid_h;
        self.frame_size = (w, h);
        self.grid_w = grid_w;
        self.grid_h = grid_h;
        self.downscaler.configure(w, h, grid_w, grid_h);
        for buf in [&mut self.current, &mut self.background, &mut self.previous] {
            buf.clear();
            buf.resize(n, 0.0);
        }
        self.still_frames.clear();
        self.still_frames.resize(n, 0);
        self.global.configure(grid_w, grid_h);
        self.mask.clear();
        self.mask.resize(n, 0);
        self.reset();
    }

    /// Fills `mask` with the foreground of the current grid.
    fn segment(&mut self) {
        let shift = if self.config.compensate_global_illumination {
            median_shift(&self.current, &self.background, &mut self.hist)
        } else {
            0.0
        };
        let threshold = f32::from(self.config.diff_threshold_levels);
        for ((m, c), b) in self
            .mask
            .iter_mut()
            .zip(&self.current)
            .zip(&self.background)
        {
            *m = u8::from((c - b - shift).abs() > threshold);
        }
        if self.config.morphology {
            let (w, h) = (self.grid_w, self.grid_h);
            open_close(&mut self.mask, w, h, &mut self.padded, &mut self.tmp);
        }
        let fg = self.mask.iter().filter(|&&m| m != 0).count();
        self.foreground_ratio = fg as f32 / self.mask.len().max(1) as f32;
    }

    fn update_background(&mut self) {
        let (still, moving) = (
            self.config.learning_rate,
            self.config.foreground_learning_rate,
        );
        let absorb_after = self.config.static_absorb_frames;
        // A cell counts as unchanged when it moved less than half the motion threshold.
        let unchanged = f32::from(self.config.diff_threshold_levels) * 0.5;
        let cells = self
            .background
            .iter_mut()
            .zip(&self.current)
            .zip(&self.mask)
            .zip(self.previous.iter_mut().zip(self.still_frames.iter_mut()));
        for (((b, c), m), (prev, age)) in cells {
            *age = if *m != 0 && (c - *prev).abs() < unchanged {
                age.saturating_add(1)
            } else {
                0
            };
            let absorb = absorb_after > 0 && *age >= absorb_after;
            let rate = if *m == 0 || absorb { still } else { moving };
            *b += (c - *b) * rate;
            *prev = *c;
        }
    }

    fn detections(&mut self) -> DetectionSet {
        self.blobs.clear();
        let (w, h) = (self.grid_w, self.grid_h);
        components(
            &self.mask,
            w,
            h,
            self.config.min_area_grid_px as usize,
            &mut self.visited,
            &mut self.stack,
            &mut self.blobs,
        );
        // Largest first, so the cap keeps the most significant blobs.
        self.blobs
            .sort_unstable_by_key(|b| std::cmp::Reverse(b.area));
        self.blobs.truncate(self.config.max_detections);
        let (gw, gh) = (w as f32, h as f32);
        let detections = self
            .blobs
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let box_area = (b.x1 - b.x0 + 1) * (b.y1 - b.y0 + 1);
                let fill = b.area as f32 / box_area as f32;
                let bbox = BBox::new(
                    b.x0 as f32 / gw,
                    b.y0 as f32 / gh,
                    (b.x1 + 1) as f32 / gw,
                    (b.y1 + 1) as f32 / gh,
                );
                Detection::builder(DetectionId::new(i as u64), self.config.class_id, fill, bbox)
                    .build()
            })
            .collect::<Vec<_>>();
        detections.into()
    }
}

impl Stage for MotionDetector {
    fn id(&self) -> StageId {
        self.stage_id
    }

    fn process(&mut self, ctx: &StageContext<'_>) -> Result<StageOutput, StageError> {
        let detections = self.detect(ctx.frame)?;
        // A moving camera is not a still scene: later stages still run.
        let still = detections.is_empty() && !self.global_motion.is_global();
        let ts = ctx.frame.ts();
        let signal = DerivedSignal::new(
            Self::FOREGROUND_SIGNAL,
            SignalValue::Scalar(f64::from(self.foreground_ratio)),
            ts,
        );
        let (dx, dy) = self.global_shift();
        let global = DerivedSignal::new(
            Self::GLOBAL_SIGNAL,
            SignalValue::Categorical(self.global_motion.as_str().into()),
            ts,
        );
        let shift = DerivedSignal::new(
            Self::GLOBAL_SHIFT_SIGNAL,
            SignalValue::Vector(vec![f64::from(dx), f64::from(dy)]),
            ts,
        );
        let control = if still && self.config.skip_remaining_when_still {
            StageControl::SkipRemaining
        } else {
            StageControl::Continue
        };
        let mut out = StageOutput::build()
            .detections(detections)
            .signal(signal)
            .signal(global)
            .signal(shift)
            .control(control)
            .finish();
        if self.global_motion != self.reported_motion {
            // One event per change of what the whole picture does, not one per frame.
            self.reported_motion = self.global_motion;
            out.events.push(PerceptionEvent::new(
                ts,
                EventKind::CameraMotion {
                    motion: self.global_motion.as_str().into(),
                },
                None,
            ));
        }
        Ok(out)
    }

    fn on_start(&mut self) -> Result<(), StageError> {
        self.reset();
        Ok(())
    }

    fn on_view_epoch_change(&mut self, _new_epoch: ViewEpoch) -> Result<(), StageError> {
        // The camera moved: the old background is of another view.
        self.reset();
        Ok(())
    }

    fn category(&self) -> StageCategory {
        StageCategory::FrameAnalysis
    }

    fn capabilities(&self) -> Option<StageCapabilities> {
        Some(
            StageCapabilities::new()
                .produces_detections()
                .produces_signals(),
        )
    }

    fn accepted_formats(&self) -> Option<&'static [PixelFormat]> {
        Some(FORMATS)
    }
}

#[cfg(test)]
mod tests;
