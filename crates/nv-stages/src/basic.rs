//! Small stages for demos and smoke tests: mean brightness, bright-blob detection and a
//! detection counter. They read the luma plane directly, so NV12/I420 feeds need no
//! conversion.

use nv_core::error::StageError;
use nv_core::geometry::BBox;
use nv_core::id::DetectionId;
use nv_perception::{
    DerivedSignal, Detection, SceneFeature, SceneFeatureValue, SignalValue, Stage,
    StageCapabilities, StageContext, StageId, StageOutput,
};

/// Mean luma of the frame as a scene feature; reads the Y plane directly (no conversion).
#[derive(Clone, Copy, Debug, Default)]
pub struct Brightness;

impl Stage for Brightness {
    fn id(&self) -> StageId {
        StageId::new("brightness")
    }
    fn process(&mut self, ctx: &StageContext<'_>) -> Result<StageOutput, StageError> {
        let luma = ctx
            .frame
            .luma_plane()
            .map_err(|e| StageError::other(self.id(), e))?;
        let Some(y) = luma else {
            return Ok(StageOutput::empty());
        };
        let mut sum = 0u64;
        for row in (0..y.rows).step_by(4) {
            sum += y
                .row(row)
                .iter()
                .step_by(4)
                .map(|v| u64::from(*v))
                .sum::<u64>();
        }
        let samples = (y.rows.div_ceil(4) * y.row_bytes.div_ceil(4)).max(1) as f64;
        Ok(StageOutput::with_scene_features(vec![SceneFeature {
            name: "mean_luma".into(),
            value: SceneFeatureValue::Scalar(sum as f64 / samples),
            confidence: None,
            ts: ctx.frame.ts(),
        }]))
    }
}

/// Bright blobs on a coarse grid, joined into boxes by connected components.
#[derive(Debug)]
pub struct BlobDetector {
    cells: Vec<bool>,
    labels: Vec<u32>,
    threshold: u8,
}

impl BlobDetector {
    pub fn new(threshold: u8) -> Self {
        Self {
            cells: Vec::new(),
            labels: Vec::new(),
            threshold,
        }
    }
}

const CELL: usize = 8;

impl Stage for BlobDetector {
    fn id(&self) -> StageId {
        StageId::new("blob-detector")
    }
    fn capabilities(&self) -> Option<StageCapabilities> {
        Some(StageCapabilities::new().produces_detections())
    }
    fn process(&mut self, ctx: &StageContext<'_>) -> Result<StageOutput, StageError> {
        let luma = ctx
            .frame
            .luma_plane()
            .map_err(|e| StageError::other(self.id(), e))?;
        let Some(y) = luma else {
            return Ok(StageOutput::empty());
        };
        let (gw, gh) = (y.row_bytes / CELL, y.rows / CELL);
        self.cells.clear();
        for gy in 0..gh {
            let row = y.row(gy * CELL + CELL / 2);
            self.cells
                .extend((0..gw).map(|gx| row[gx * CELL + CELL / 2] > self.threshold));
        }
        self.labels.clear();
        self.labels.resize(gw * gh, 0);
        let mut detections = Vec::new();
        let mut stack = Vec::new();
        for start in 0..gw * gh {
            if !self.cells[start] || self.labels[start] != 0 {
                continue;
            }
            let label = detections.len() as u32 + 1;
            let (mut x0, mut y0, mut x1, mut y1) = (gw, gh, 0, 0);
            stack.push(start);
            self.labels[start] = label;
            while let Some(i) = stack.pop() {
                let (cx, cy) = (i % gw, i / gw);
                (x0, y0, x1, y1) = (x0.min(cx), y0.min(cy), x1.max(cx), y1.max(cy));
                let neighbours = [
                    (cx > 0).then(|| i - 1),
                    (cx + 1 < gw).then(|| i + 1),
                    (cy > 0).then(|| i - gw),
                    (cy + 1 < gh).then(|| i + gw),
                ];
                for n in neighbours.into_iter().flatten() {
                    if self.cells[n] && self.labels[n] == 0 {
                        self.labels[n] = label;
                        stack.push(n);
                    }
                }
            }
            let bbox = BBox::new(
                x0 as f32 / gw as f32,
                y0 as f32 / gh as f32,
                (x1 + 1) as f32 / gw as f32,
                (y1 + 1) as f32 / gh as f32,
            );
            detections
                .push(Detection::builder(DetectionId::new(u64::from(label)), 0, 1.0, bbox).build());
        }
        Ok(StageOutput::with_detections(detections))
    }
}

/// Publishes the detection count as a signal.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counter;

impl Stage for Counter {
    fn id(&self) -> StageId {
        StageId::new("counter")
    }
    fn capabilities(&self) -> Option<StageCapabilities> {
        Some(
            StageCapabilities::new()
                .consumes_detections()
                .produces_signals(),
        )
    }
    fn process(&mut self, ctx: &StageContext<'_>) -> Result<StageOutput, StageError> {
        let n = ctx.artifacts.detections.len() as f64;
        Ok(StageOutput::with_signal(DerivedSignal::new(
            "objects",
            SignalValue::Scalar(n),
            ctx.frame.ts(),
        )))
    }
}
