//! Configuration of the model detector.

use std::path::PathBuf;

use nv_core::error::{ConfigError, ConfigProblem};

/// Largest accepted model input side, in pixels.
pub const MAX_INPUT_SIDE: u32 = 8192;

/// Units of box coordinates in a model's output.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BoxUnits {
    /// Pixels of the model input (after letterboxing), as YOLO exports produce.
    #[default]
    InputPixels,
    /// Fractions of the model input size, in [0, 1].
    Normalized,
}

/// Order of the four box values in a model output.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BoxFormat {
    /// `x1, y1, x2, y2`.
    #[default]
    Xyxy,
    /// `y1, x1, y2, x2` (TensorFlow object detection API).
    Yxyx,
    /// `cx, cy, w, h`.
    Cxcywh,
}

/// Where the per-anchor attributes lie in a YOLO-style output.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum YoloLayout {
    /// `[N, attrs, A]`: YOLOv8/v11 exports (attributes first, anchors last).
    #[default]
    AttributesFirst,
    /// `[N, A, attrs]`: transposed exports and YOLOv5.
    AnchorsFirst,
    /// Picks from the output shape: the smaller of the two trailing dimensions holds the
    /// attributes (anchors number in the thousands, attributes in the tens).
    Auto,
}

/// How the raw model output becomes detections.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum DecoderKind {
    /// YOLO-style dense output: per anchor `cx, cy, w, h`, an objectness score when
    /// `objectness` is set (YOLOv5: `[N, A, 5 + C]`, score = objectness x class score),
    /// then `C` class scores (YOLOv8/v11: `[N, 4 + C, A]`). Class-aware NMS follows.
    Yolo {
        layout: YoloLayout,
        objectness: bool,
        units: BoxUnits,
    },
    /// End-to-end output `[N, K, 6]` of `x1, y1, x2, y2, score, class` (NMS done in the
    /// graph: YOLOv10, YOLO with embedded NMS, RT-DETR style exports).
    EndToEnd { units: BoxUnits },
    /// SSD-style: a boxes tensor `[N, A, 4]` and a scores tensor `[N, A, C]` (already
    /// softmaxed or sigmoided), given by output index. `background_class` is skipped;
    /// class ids stay the score column index (so `class_names` lists the background too).
    /// Class-aware NMS follows.
    Ssd {
        boxes_output: usize,
        scores_output: usize,
        box_format: BoxFormat,
        units: BoxUnits,
        background_class: Option<u32>,
    },
    /// Dense probability map `[N, 1, H, W]` (or `[N, H, W]`), e.g. a DB text detector such
    /// as PP-OCR det: pixels above `threshold` are grouped into 8-connected components;
    /// each component of at least `min_area` map pixels becomes a box (class 0) scored by
    /// its mean probability, grown by `unclip_ratio` (DB "unclip": each side moves out by
    /// `area * ratio / perimeter`; 0 keeps the component's extent).
    SegmentationMap {
        threshold: f32,
        min_area: u32,
        unclip_ratio: f32,
    },
}

impl DecoderKind {
    /// YOLOv8/v11 default export: `[N, 4 + C, A]`, pixel boxes, no objectness.
    pub const fn yolov8() -> Self {
        Self::Yolo {
            layout: YoloLayout::AttributesFirst,
            objectness: false,
            units: BoxUnits::InputPixels,
        }
    }
    /// YOLOv5 default export: `[N, A, 5 + C]`, pixel boxes, with objectness.
    pub const fn yolov5() -> Self {
        Self::Yolo {
            layout: YoloLayout::AnchorsFirst,
            objectness: true,
            units: BoxUnits::InputPixels,
        }
    }
    /// PP-OCR DB text detection defaults (binarisation 0.3, unclip 1.5).
    pub const fn text_detection() -> Self {
        Self::SegmentationMap {
            threshold: 0.3,
            min_area: 4,
            unclip_ratio: 1.5,
        }
    }
    pub(crate) fn uses_nms(&self) -> bool {
        matches!(self, Self::Yolo { .. } | Self::Ssd { .. })
    }
}

/// Channel order the model expects.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ChannelOrder {
    #[default]
    Rgb,
    Bgr,
}

/// Letterbox and normalisation settings. Each input value is `(v / 255 - mean) / std`
/// per channel (in model channel order); the default maps pixels to [0, 1].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Preprocess {
    /// Grey level of the letterbox padding (YOLO uses 114).
    pub pad_value: u8,
    pub mean: [f32; 3],
    pub std: [f32; 3],
    pub channel_order: ChannelOrder,
}

impl Default for Preprocess {
    fn default() -> Self {
        Self {
            pad_value: 114,
            mean: [0.0; 3],
            std: [1.0; 3],
            channel_order: ChannelOrder::Rgb,
        }
    }
}

/// How [`ModelBatchDetector`](super::ModelBatchDetector) runs a batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BatchMode {
    /// One inference over the whole batch when the model's batch dimension is dynamic
    /// (a plan per batch size, built on first use), else one per frame. For accelerated
    /// backends; slower than `PerItem` on tract's CPU backend.
    OneInference,
    /// One inference per frame (the default). On tract's CPU backend this measured faster for PP-OCR
    /// (8 single runs 0.75 s, one batch of 8 2.9 s; see the `model` bench).
    #[default]
    PerItem,
}

/// Configuration of [`ModelDetector`](super::ModelDetector) and
/// [`ModelBatchDetector`](super::ModelBatchDetector).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ModelDetectorConfig {
    /// ONNX file.
    pub model_path: PathBuf,
    /// Model input `(width, height)` in pixels; frames are letterboxed into it.
    pub input_size: (u32, u32),
    pub decoder: DecoderKind,
    /// Detections scoring below this are dropped (before NMS).
    pub confidence_threshold: f32,
    /// Same-class boxes overlapping a better one by more than this IoU are suppressed.
    pub nms_iou_threshold: f32,
    /// Names by class index; attached to detections as [`ClassName`](super::ClassName).
    /// Empty: no names. When not empty its length must match the model's class count.
    pub class_names: Vec<String>,
    /// At most this many detections per frame (best first).
    pub max_detections: usize,
    pub preprocess: Preprocess,
    /// Used by the batch processor only.
    pub batch_mode: BatchMode,
}

impl ModelDetectorConfig {
    /// A configuration with the usual defaults: confidence 0.25, NMS IoU 0.45, at most
    /// 300 detections, YOLO letterbox (pad 114, pixels in [0, 1], RGB).
    pub fn new(
        model_path: impl Into<PathBuf>,
        input_size: (u32, u32),
        decoder: DecoderKind,
    ) -> Self {
        Self {
            model_path: model_path.into(),
            input_size,
            decoder,
            confidence_threshold: 0.25,
            nms_iou_threshold: 0.45,
            class_names: Vec::new(),
            max_detections: 300,
            preprocess: Preprocess::default(),
            batch_mode: BatchMode::PerItem,
        }
    }

    /// Checks every field, listing all problems found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        if self.model_path.as_os_str().is_empty() {
            problems.push(ConfigProblem::missing("model_path"));
        }
        let (w, h) = self.input_size;
        for (name, v) in [("input_size.width", w), ("input_size.height", h)] {
            if v == 0 || v > MAX_INPUT_SIDE {
                problems.push(ConfigProblem::invalid(
                    name,
                    v,
                    format!("must be in 1..={MAX_INPUT_SIDE}"),
                ));
            }
        }
        let unit = |v: f32| v.is_finite() && (0.0..=1.0).contains(&v);
        if !unit(self.confidence_threshold) {
            problems.push(ConfigProblem::invalid(
                "confidence_threshold",
                self.confidence_threshold,
                "must be in [0, 1]",
            ));
        }
        if !(self.nms_iou_threshold.is_finite()
            && self.nms_iou_threshold > 0.0
            && self.nms_iou_threshold <= 1.0)
        {
            problems.push(ConfigProblem::invalid(
                "nms_iou_threshold",
                self.nms_iou_threshold,
                "must be in (0, 1]",
            ));
        }
        if self.max_detections == 0 {
            problems.push(ConfigProblem::invalid(
                "max_detections",
                0,
                "must be at least 1",
            ));
        }
        for (i, name) in self.class_names.iter().enumerate() {
            if name.trim().is_empty() {
                problems.push(ConfigProblem::invalid(
                    format!("class_names[{i}]"),
                    format!("{name:?}"),
                    "must not be blank",
                ));
            }
        }
        match self.decoder {
            DecoderKind::Ssd {
                boxes_output,
                scores_output,
                ..
            } if boxes_output == scores_output => {
                problems.push(ConfigProblem::invalid(
                    "decoder.scores_output",
                    scores_output,
                    "must differ from decoder.boxes_output",
                ));
            }
            DecoderKind::SegmentationMap {
                threshold,
                unclip_ratio,
                ..
            } => {
                if !(threshold.is_finite() && threshold > 0.0 && threshold < 1.0) {
                    problems.push(ConfigProblem::invalid(
                        "decoder.threshold",
                        threshold,
                        "must be in (0, 1)",
                    ));
                }
                if !(unclip_ratio.is_finite() && (0.0..=10.0).contains(&unclip_ratio)) {
                    problems.push(ConfigProblem::invalid(
                        "decoder.unclip_ratio",
                        unclip_ratio,
                        "must be in [0, 10]",
                    ));
                }
            }
            _ => {}
        }
        let p = &self.preprocess;
        for c in 0..3 {
            if !(p.std[c].is_finite() && p.std[c] > 0.0) {
                problems.push(ConfigProblem::invalid(
                    format!("preprocess.std[{c}]"),
                    p.std[c],
                    "must be finite and positive",
                ));
            }
            if !p.mean[c].is_finite() {
                problems.push(ConfigProblem::invalid(
                    format!("preprocess.mean[{c}]"),
                    p.mean[c],
                    "must be finite",
                ));
            }
        }
        ConfigError::check(problems)
    }
}
