//! Configuration of the model detector.

use std::path::PathBuf;

use nv_core::error::{ConfigError, ConfigProblem};

use super::anchors::SsdAnchorGenerator;

/// Largest accepted model input side, in pixels.
pub const MAX_INPUT_SIDE: u32 = 8192;

/// Most threads one inference may use ([`ModelDetectorConfig::threads`]).
pub const MAX_INFERENCE_THREADS: usize = 64;

/// The inference engine that runs a model.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Backend {
    /// tract, pure Rust: ONNX models and cut TensorFlow graphs. Always available.
    #[default]
    Tract,
    /// ONNX Runtime, loaded from a shared library at run time (cargo feature `ort`; ONNX
    /// models only).
    OnnxRuntime(OrtOptions),
}

impl Backend {
    /// The name a config file uses.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Tract => "tract",
            Self::OnnxRuntime(_) => "onnxruntime",
        }
    }
}

/// ONNX Runtime settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrtOptions {
    /// Providers in order of preference. With [`ExecutionProvider::Cpu`] in the list
    /// (last), a provider that cannot start (no GPU, no CUDA libraries) is skipped and
    /// the model runs on what remains; without it, every listed provider is required and
    /// one that cannot start fails the load with its cause.
    pub execution_providers: Vec<ExecutionProvider>,
    /// `libonnxruntime.so` to load; `None`: `ORT_DYLIB_PATH`, else the copy that
    /// `scripts/fetch-onnxruntime.sh` put in the cache directory.
    pub library_path: Option<PathBuf>,
}

impl Default for OrtOptions {
    fn default() -> Self {
        Self {
            execution_providers: vec![ExecutionProvider::Cpu],
            library_path: None,
        }
    }
}

/// An ONNX Runtime execution provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExecutionProvider {
    Cpu,
    Cuda { device_id: u32 },
    TensorRt { device_id: u32 },
}

impl ExecutionProvider {
    /// The name a config file uses.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Cuda { .. } => "cuda",
            Self::TensorRt { .. } => "tensorrt",
        }
    }
}

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
    /// Raw SSD head: box encodings `[N, A, 4]` relative to anchors (TF Object Detection
    /// API `(ty, tx, th, tw)`, each divided by its `scale_factors` entry) and class scores
    /// `[N, A, C]` before `activation`. The anchors come from
    /// [`ModelDetectorConfig::ssd_anchors`]. `background_class` is skipped; every other
    /// class scoring above the threshold is a candidate (an anchor may yield several
    /// classes, as in TF's multiclass NMS); class ids are score column indices. Boxes are
    /// clipped to the input, then class-aware NMS follows.
    AnchorSsd {
        boxes_output: usize,
        scores_output: usize,
        scale_factors: [f32; 4],
        activation: ScoreActivation,
        background_class: Option<u32>,
    },
}

impl DecoderKind {
    /// The decoder's name in messages (its family, without the layout details).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Yolo { .. } => "yolo",
            Self::EndToEnd { .. } => "end-to-end",
            Self::Ssd { .. } => "ssd",
            Self::SegmentationMap { .. } => "segmentation-map",
            Self::AnchorSsd { .. } => "tf-ssd",
        }
    }
}

/// How raw class scores become probabilities.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ScoreActivation {
    /// Independent logistic per class (TF-OD `score_converter: SIGMOID`).
    #[default]
    Sigmoid,
    /// Softmax across the classes of an anchor (TF-OD `SOFTMAX`).
    Softmax,
    /// Scores are already probabilities.
    Identity,
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
    /// TF Object Detection API SSD head (cut before post-processing): outputs 0 and 1
    /// are box encodings and class logits, scale factors 10, 10, 5, 5, sigmoid scores,
    /// class 0 is the background.
    pub const fn tf_object_detection_ssd() -> Self {
        Self::AnchorSsd {
            boxes_output: 0,
            scores_output: 1,
            scale_factors: [10.0, 10.0, 5.0, 5.0],
            activation: ScoreActivation::Sigmoid,
            background_class: Some(0),
        }
    }
    pub(crate) fn uses_nms(&self) -> bool {
        matches!(
            self,
            Self::Yolo { .. } | Self::Ssd { .. } | Self::AnchorSsd { .. }
        )
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

/// How a frame is fitted into the model input.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ResizeMode {
    /// Aspect ratio kept, centred, padded with `Preprocess::pad_value` (YOLO training).
    #[default]
    Letterbox,
    /// Both axes scaled independently to fill the input (TF Object Detection API
    /// `fixed_shape_resizer`): the way SSD models were trained, and what their scores
    /// assume.
    Stretch,
}

/// Memory layout of the model's image input.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum InputLayout {
    /// `[N, 3, H, W]` (ONNX exports).
    #[default]
    Nchw,
    /// `[N, H, W, 3]` (TensorFlow).
    Nhwc,
}

/// Where a TensorFlow frozen graph is cut: the tensor fed with the preprocessed image and
/// the tensors read back. Everything outside the cut (image decoding, resizing,
/// post-processing loops tract cannot run) is dropped before the graph is loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TfGraphCut {
    /// Node whose output becomes the image input (replaced by a placeholder).
    pub input: String,
    /// Output tensors, `node` or `node:port`, in decoder output order.
    pub outputs: Vec<String>,
}

impl TfGraphCut {
    /// The raw head of a TF Object Detection API SSD export: fed after the
    /// `Preprocessor` scaling, read before `Postprocessor` (box encodings `Squeeze`,
    /// class logits `concat_1`).
    pub fn tf_object_detection_ssd() -> Self {
        Self {
            input: "Preprocessor/sub".into(),
            outputs: vec!["Squeeze".into(), "concat_1".into()],
        }
    }
}

/// Model file format.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ModelFormat {
    #[default]
    Onnx,
    /// A frozen TensorFlow `GraphDef` (`.pb`), cut as described.
    TensorFlow(TfGraphCut),
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
    /// Model file (ONNX, or TensorFlow as `format` says).
    pub model_path: PathBuf,
    pub format: ModelFormat,
    /// Model input `(width, height)` in pixels; frames are fitted into it by `resize`.
    pub input_size: (u32, u32),
    pub resize: ResizeMode,
    pub input_layout: InputLayout,
    pub decoder: DecoderKind,
    /// Anchors of [`DecoderKind::AnchorSsd`] (required by it, unused otherwise).
    pub ssd_anchors: Option<SsdAnchorGenerator>,
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
    /// The engine that runs the model (default tract).
    pub backend: Backend,
    /// Threads one inference may use (default 1: a feed's inference stays on its worker
    /// thread). tract splits matrix products and convolutions over a pool of this size;
    /// ONNX Runtime uses it as its intra-op thread count.
    pub threads: usize,
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
            format: ModelFormat::Onnx,
            input_size,
            resize: ResizeMode::Letterbox,
            input_layout: InputLayout::Nchw,
            decoder,
            ssd_anchors: None,
            confidence_threshold: 0.25,
            nms_iou_threshold: 0.45,
            class_names: Vec::new(),
            max_detections: 300,
            preprocess: Preprocess::default(),
            batch_mode: BatchMode::PerItem,
            backend: Backend::Tract,
            threads: 1,
        }
    }

    /// A TensorFlow Object Detection API SSD export (MobileNet V1/V2, SSDLite) with a
    /// square input of `input_side` pixels: frozen graph cut at its raw head, default
    /// anchors, stretched input scaled to [-1, 1], sigmoid scores, NMS IoU 0.6 as TF-OD's
    /// configs, confidence 0.3.
    pub fn tf_object_detection_ssd(model_path: impl Into<PathBuf>, input_side: u32) -> Self {
        let mut c = Self::new(
            model_path,
            (input_side, input_side),
            DecoderKind::tf_object_detection_ssd(),
        );
        c.format = ModelFormat::TensorFlow(TfGraphCut::tf_object_detection_ssd());
        c.resize = ResizeMode::Stretch;
        c.input_layout = InputLayout::Nhwc;
        c.ssd_anchors = Some(SsdAnchorGenerator::mobilenet_ssd(input_side));
        c.confidence_threshold = 0.3;
        c.nms_iou_threshold = 0.6;
        c.max_detections = 100;
        c.preprocess = Preprocess {
            pad_value: 128,
            mean: [0.5; 3],
            std: [0.5; 3],
            channel_order: ChannelOrder::Rgb,
        };
        c
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
            DecoderKind::AnchorSsd {
                boxes_output,
                scores_output,
                scale_factors,
                ..
            } => {
                if boxes_output == scores_output {
                    problems.push(ConfigProblem::invalid(
                        "decoder.scores_output",
                        scores_output,
                        "must differ from decoder.boxes_output",
                    ));
                }
                for (i, f) in scale_factors.iter().enumerate() {
                    if !(f.is_finite() && *f > 0.0) {
                        problems.push(ConfigProblem::invalid(
                            format!("decoder.scale_factors[{i}]"),
                            f,
                            "must be finite and positive",
                        ));
                    }
                }
                match &self.ssd_anchors {
                    None => problems.push(ConfigProblem::missing("ssd_anchors")),
                    Some(a) => problems.extend(a.problems("ssd_anchors")),
                }
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
        if let ModelFormat::TensorFlow(cut) = &self.format {
            if cut.input.trim().is_empty() {
                problems.push(ConfigProblem::missing("format.input"));
            }
            if cut.outputs.is_empty() {
                problems.push(ConfigProblem::missing("format.outputs"));
            }
            for (i, o) in cut.outputs.iter().enumerate() {
                if o.trim().is_empty() {
                    problems.push(ConfigProblem::invalid(
                        format!("format.outputs[{i}]"),
                        format!("\"{o}\""),
                        "must not be blank",
                    ));
                }
            }
        }
        if self.threads == 0 || self.threads > MAX_INFERENCE_THREADS {
            problems.push(ConfigProblem::invalid(
                "threads",
                self.threads,
                format!("must be in 1..={MAX_INFERENCE_THREADS}"),
            ));
        }
        if let Backend::OnnxRuntime(o) = &self.backend {
            problems.extend(o.problems(&self.format));
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

impl OrtOptions {
    fn problems(&self, format: &ModelFormat) -> Vec<ConfigProblem> {
        let mut problems = Vec::new();
        if let ModelFormat::TensorFlow(_) = format {
            problems.push(ConfigProblem::invalid(
                "backend",
                "onnxruntime",
                "runs ONNX models only; this model is a TensorFlow graph (use backend \
                 \"tract\", or convert the model to ONNX)",
            ));
        }
        let eps = &self.execution_providers;
        if eps.is_empty() {
            problems.push(ConfigProblem::invalid(
                "execution_providers",
                "[]",
                "must name at least one provider (cpu, cuda, tensorrt)",
            ));
        }
        for (i, ep) in eps.iter().enumerate() {
            if eps[..i].iter().any(|e| e.name() == ep.name()) {
                problems.push(ConfigProblem::invalid(
                    format!("execution_providers[{i}]"),
                    ep.name(),
                    "is listed twice",
                ));
            }
            if *ep == ExecutionProvider::Cpu && i + 1 != eps.len() {
                problems.push(ConfigProblem::invalid(
                    format!("execution_providers[{i}]"),
                    "cpu",
                    "must be last: it is the fallback for the providers before it",
                ));
            }
        }
        problems
    }
}
