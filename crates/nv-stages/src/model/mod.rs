//! Model detector: ONNX models and TensorFlow frozen graphs through tract (feature
//! `model`), in pure Rust.
//!
//! Frames of any pixel format are converted to RGB (into a reused buffer), fitted into the
//! model input ([`ResizeMode`]: letterboxed, or stretched as TF-OD SSDs were trained),
//! normalised into NCHW or NHWC f32, run through the model, and decoded by the configured
//! [`DecoderKind`]: YOLO-style dense outputs (`[N, 4 + C, A]`, `[N, A, 4 + C]`, YOLOv5
//! `[N, A, 5 + C]`) with class-aware NMS, end-to-end `[N, K, 6]`, SSD-style boxes +
//! scores, a raw SSD head decoded against generated anchors (TensorFlow Object Detection
//! API exports, see [`ModelDetectorConfig::tf_object_detection_ssd`]), or a probability
//! map (text detection). Boxes are mapped back to normalised frame coordinates.
//!
//! [`ModelDetector`] is the per-feed [`Stage`](nv_perception::Stage);
//! [`ModelBatchDetector`] the [`BatchProcessor`](nv_perception::BatchProcessor) (one
//! inference per batch when the model's batch dimension is dynamic, else one per frame).
//! Loading errors are [`StageError::DependencyUnavailable`](nv_core::error::StageError)
//! and never panic.

mod anchors;
mod catalog;
mod config;
mod decode;
mod detector;
#[cfg(target_arch = "x86_64")]
mod dw_kernel;
mod engine;
mod letterbox;
#[cfg(feature = "ort")]
mod ort_engine;
mod runner;
mod tf_fold;
mod tf_graph;
mod tract_fold;

pub use anchors::{Anchor, SsdAnchorGenerator, MAX_ANCHORS};
pub use catalog::{catalog_preset, PERSON_CLASS_ID};
pub use config::{
    Backend, BatchMode, BoxFormat, BoxUnits, ChannelOrder, DecoderKind, ExecutionProvider,
    InputLayout, ModelDetectorConfig, ModelFormat, OrtOptions, Preprocess, ResizeMode,
    ScoreActivation, TfGraphCut, YoloLayout, MAX_INFERENCE_THREADS, MAX_INPUT_SIDE,
};
pub use decode::{iou, nms, DecodeParams, Decoder, OutputTensor, RawDetection};
pub use detector::{ClassName, ModelBatchDetector, ModelDetector};
pub use engine::{model_loads, set_tract_rewrites};
pub use letterbox::{Letterbox, LetterboxWriter};
#[cfg(feature = "ort")]
pub use ort_engine::{
    cached_onnxruntime_library, onnxruntime_library, OrtError, ONNXRUNTIME_VERSION,
};
