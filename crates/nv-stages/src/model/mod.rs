//! Model detector: ONNX inference through tract (feature `model`).
//!
//! Frames of any pixel format are converted to RGB (into a reused buffer), letterboxed
//! into the model input (aspect kept, centred, padded, normalised, NCHW f32), run through
//! the model, and decoded by the configured [`DecoderKind`]: YOLO-style dense outputs
//! (`[N, 4 + C, A]`, `[N, A, 4 + C]`, YOLOv5 `[N, A, 5 + C]`) with class-aware NMS,
//! end-to-end `[N, K, 6]`, SSD-style boxes + scores, or a probability map (text
//! detection). Boxes are mapped back through the letterbox to normalised frame
//! coordinates.
//!
//! [`ModelDetector`] is the per-feed [`Stage`](nv_perception::Stage);
//! [`ModelBatchDetector`] the [`BatchProcessor`](nv_perception::BatchProcessor) (one
//! inference per batch when the model's batch dimension is dynamic, else one per frame).
//! Loading errors are [`StageError::DependencyUnavailable`](nv_core::error::StageError)
//! and never panic.

mod config;
mod decode;
mod detector;
mod engine;
mod letterbox;

pub use config::{
    BatchMode, BoxFormat, BoxUnits, ChannelOrder, DecoderKind, ModelDetectorConfig, Preprocess,
    YoloLayout, MAX_INPUT_SIDE,
};
pub use decode::{iou, nms, DecodeParams, Decoder, OutputTensor, RawDetection};
pub use detector::{ClassName, ModelBatchDetector, ModelDetector};
pub use engine::model_loads;
pub use letterbox::{Letterbox, LetterboxWriter};
