//! The model detector as a per-feed [`Stage`] and as a cross-feed [`BatchProcessor`].

use std::sync::Arc;

use nv_core::error::StageError;
use nv_core::geometry::BBox;
use nv_core::id::{DetectionId, StageId};
use nv_core::source::PixelFormat;
use nv_frame::convert::convert_into;
use nv_frame::FrameEnvelope;
use nv_perception::{
    BatchEntry, BatchProcessor, Detection, Stage, StageCapabilities, StageCategory, StageContext,
    StageOutput,
};

use super::config::{BatchMode, ModelDetectorConfig};
use super::decode::{DecodeParams, Decoder, OutputTensor};
use super::engine::ModelSpec;
use super::letterbox::{Letterbox, LetterboxWriter};
use super::runner::Runner;

/// Class name of a detection, attached as detection metadata when the configuration
/// names classes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClassName(pub Arc<str>);

/// Everything both front ends share: the engine, reused buffers, decoder.
#[derive(Debug)]
struct Core {
    id: StageId,
    input: (u32, u32),
    engine: Runner,
    writer: LetterboxWriter,
    /// RGB conversion buffers, one per batch slot, reused across calls.
    rgb: Vec<Vec<u8>>,
    decoder: Decoder,
    names: Vec<Arc<str>>,
    num_classes: Option<usize>,
}

impl Core {
    fn load(id: StageId, cfg: &ModelDetectorConfig, dynamic: bool) -> Result<Self, StageError> {
        cfg.validate().map_err(|e| StageError::other(id, e))?;
        let spec = ModelSpec {
            path: &cfg.model_path,
            format: &cfg.format,
            input: cfg.input_size,
            layout: cfg.input_layout,
            threads: cfg.threads,
        };
        let engine = Runner::load(id, &spec, &cfg.backend, dynamic)?;
        let anchors = cfg
            .ssd_anchors
            .as_ref()
            .map(|a| a.generate())
            .unwrap_or_default();
        let decoder = Decoder::new(
            cfg.decoder,
            DecodeParams {
                input_size: cfg.input_size,
                confidence_threshold: cfg.confidence_threshold,
                nms_iou_threshold: cfg.nms_iou_threshold,
                max_detections: cfg.max_detections,
            },
        )
        .with_anchors(anchors);
        let unavailable = |detail: String| StageError::DependencyUnavailable {
            stage_id: id,
            detail,
        };
        let num_classes = decoder
            .check_shapes(engine.output_shapes())
            .map_err(|e| unavailable(format!("model {}: {e}", cfg.model_path.display())))?;
        if let Some(c) = num_classes {
            if !cfg.class_names.is_empty() && cfg.class_names.len() != c {
                return Err(unavailable(format!(
                    "model {} predicts {c} classes, class_names has {}",
                    cfg.model_path.display(),
                    cfg.class_names.len()
                )));
            }
        }
        Ok(Self {
            id,
            input: cfg.input_size,
            engine,
            writer: LetterboxWriter::with_options(cfg.preprocess, cfg.resize, cfg.input_layout),
            rgb: Vec::new(),
            decoder,
            names: cfg
                .class_names
                .iter()
                .map(|n| Arc::from(n.as_str()))
                .collect(),
            num_classes,
        })
    }

    fn failed(&self, detail: impl Into<String>) -> StageError {
        StageError::processing(self.id, detail)
    }

    /// Detects in every frame, in one inference when the batch is dynamic.
    fn detect(&mut self, frames: &[&FrameEnvelope]) -> Result<Vec<Vec<Detection>>, StageError> {
        if frames.is_empty() {
            return Ok(Vec::new());
        }
        if self.rgb.len() < frames.len() {
            self.rgb.resize_with(frames.len(), Vec::new);
        }
        for (f, buf) in frames.iter().zip(self.rgb.iter_mut()) {
            convert_into(f, PixelFormat::Rgb8, buf)
                .map_err(|e| StageError::processing(self.id, format!("frame to RGB: {e}")))?;
        }
        if self.engine.dynamic_batch() || frames.len() == 1 {
            if let Some(all) = self.run_group(frames, 0)? {
                return Ok(all);
            }
        }
        let mut all = Vec::with_capacity(frames.len());
        for i in 0..frames.len() {
            let one = self
                .run_group(&frames[i..=i], i)?
                .ok_or_else(|| self.failed("single-image inference refused"))?;
            all.extend(one);
        }
        Ok(all)
    }

    /// One inference over `frames`, whose RGB data sits in `self.rgb[first..]`; `None`
    /// when the model cannot run this batch size in one go.
    fn run_group(
        &mut self,
        frames: &[&FrameEnvelope],
        first: usize,
    ) -> Result<Option<Vec<Vec<Detection>>>, StageError> {
        let (iw, ih) = self.input;
        let per_item = 3 * iw as usize * ih as usize;
        let mut boxes: Vec<Letterbox> = Vec::with_capacity(frames.len());
        let (writer, rgb) = (&mut self.writer, &self.rgb[first..]);
        let outputs = self
            .engine
            .run(frames.len(), |data| {
                for ((f, buf), item) in frames.iter().zip(rgb).zip(data.chunks_exact_mut(per_item))
                {
                    boxes.push(writer.write(buf, (f.width(), f.height()), (iw, ih), item));
                }
                Ok(())
            })
            .map_err(|e| self.failed(e))?;
        let Some(outputs) = outputs else {
            return Ok(None);
        };
        let mut views: Vec<OutputTensor<'_>> = Vec::with_capacity(outputs.len());
        for (shape, t) in &outputs {
            let data = t
                .try_as_plain_ram()
                .and_then(|v| v.as_slice::<f32>())
                .map_err(|e| self.failed(format!("reading model output: {e:#}")))?;
            views.push(OutputTensor::new(shape, data));
        }
        let mut result = Vec::with_capacity(frames.len());
        for (item, lb) in boxes.iter().enumerate() {
            let raw = self
                .decoder
                .decode(&views, item)
                .map_err(|e| StageError::processing(self.id, e))?;
            let mut dets = Vec::with_capacity(raw.len());
            for r in raw {
                let bbox: BBox = lb.box_to_frame(r.bbox);
                if bbox.area() <= 0.0 {
                    continue;
                }
                let id = DetectionId::new(dets.len() as u64);
                let mut b = Detection::builder(id, r.class_id, r.score, bbox);
                if let Some(name) = self.names.get(r.class_id as usize) {
                    b = b.meta(ClassName(name.clone()));
                }
                dets.push(b.build());
            }
            result.push(dets);
        }
        Ok(Some(result))
    }
}

/// Runs an ONNX detector on every frame of a feed (see the module docs).
#[derive(Debug)]
pub struct ModelDetector {
    core: Core,
}

impl ModelDetector {
    /// Stage id used by [`ModelDetector::new`].
    pub const DEFAULT_ID: StageId = StageId("model_detector");

    /// Loads the model now. Errors: the configuration's problems (as
    /// [`StageError::Other`] wrapping a [`ConfigError`](nv_core::error::ConfigError));
    /// missing file, unreadable model, input or output shapes that do not fit the
    /// configuration ([`StageError::DependencyUnavailable`]).
    pub fn new(config: ModelDetectorConfig) -> Result<Self, StageError> {
        Self::with_id(Self::DEFAULT_ID, config)
    }

    pub fn with_id(id: StageId, config: ModelDetectorConfig) -> Result<Self, StageError> {
        Ok(Self {
            core: Core::load(id, &config, false)?,
        })
    }

    /// Detections in one frame, best first, boxes in normalised frame coordinates.
    pub fn detect(&mut self, frame: &FrameEnvelope) -> Result<Vec<Detection>, StageError> {
        Ok(self.core.detect(&[frame])?.pop().unwrap_or_default())
    }

    /// Class count, when the model's output shape tells it.
    pub fn num_classes(&self) -> Option<usize> {
        self.core.num_classes
    }

    /// What runs the model: backend, threads, and for ONNX Runtime the library and the
    /// execution providers that started (and those that did not, when falling back).
    /// Times every operator of the following inferences (tract backend; for benchmarks).
    pub fn set_profiling(&mut self, on: bool) {
        self.core.engine.set_profiling(on);
    }

    /// Whether tract inferences keep one run state across calls (default) or build a fresh
    /// one per call, as earlier releases did (for benchmarks comparing the two).
    pub fn set_reuse_state(&mut self, on: bool) {
        self.core.engine.set_reuse_state(on);
    }

    /// Total time and evaluations per operator kind since profiling started.
    pub fn profile(&self) -> Vec<(String, std::time::Duration, u32)> {
        self.core
            .engine
            .profile()
            .map(|p| p.iter().map(|(k, (d, n))| (k.clone(), *d, *n)).collect())
            .unwrap_or_default()
    }

    pub fn backend_description(&self) -> String {
        self.core.engine.description()
    }
}

impl Stage for ModelDetector {
    fn id(&self) -> StageId {
        self.core.id
    }

    fn process(&mut self, ctx: &StageContext<'_>) -> Result<StageOutput, StageError> {
        Ok(StageOutput::with_detections(self.detect(ctx.frame)?))
    }

    fn category(&self) -> StageCategory {
        StageCategory::FrameAnalysis
    }

    fn capabilities(&self) -> Option<StageCapabilities> {
        Some(StageCapabilities::new().produces_detections())
    }
}

/// The model detector as a [`BatchProcessor`]: one inference over the whole batch when
/// the model's batch dimension is dynamic, else one per frame.
#[derive(Debug)]
pub struct ModelBatchDetector {
    core: Core,
}

impl ModelBatchDetector {
    /// Processor id used by [`ModelBatchDetector::new`].
    pub const DEFAULT_ID: StageId = StageId("model_batch_detector");

    /// Loads the model now; errors as [`ModelDetector::new`].
    pub fn new(config: ModelDetectorConfig) -> Result<Self, StageError> {
        Self::with_id(Self::DEFAULT_ID, config)
    }

    pub fn with_id(id: StageId, config: ModelDetectorConfig) -> Result<Self, StageError> {
        Ok(Self {
            core: Core::load(id, &config, config.batch_mode == BatchMode::OneInference)?,
        })
    }

    /// Whether a batch runs as one inference (batch mode
    /// [`OneInference`](BatchMode::OneInference) and a dynamic batch dimension).
    pub fn batches_in_one_run(&self) -> bool {
        self.core.engine.dynamic_batch()
    }

    /// Detections for each frame, in order.
    pub fn detect_batch(
        &mut self,
        frames: &[FrameEnvelope],
    ) -> Result<Vec<Vec<Detection>>, StageError> {
        let refs: Vec<&FrameEnvelope> = frames.iter().collect();
        self.core.detect(&refs)
    }

    /// Class count, when the model's output shape tells it.
    pub fn num_classes(&self) -> Option<usize> {
        self.core.num_classes
    }
}

impl BatchProcessor for ModelBatchDetector {
    fn id(&self) -> StageId {
        self.core.id
    }

    fn process(&mut self, entries: &mut [BatchEntry]) -> Result<(), StageError> {
        let frames: Vec<&FrameEnvelope> = entries.iter().map(|e| &e.frame).collect();
        let results = self.core.detect(&frames)?;
        for (entry, dets) in entries.iter_mut().zip(results) {
            entry.output = Some(StageOutput::with_detections(dets));
        }
        Ok(())
    }

    fn category(&self) -> StageCategory {
        StageCategory::FrameAnalysis
    }

    fn capabilities(&self) -> Option<StageCapabilities> {
        Some(StageCapabilities::new().produces_detections())
    }
}
