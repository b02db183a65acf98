//! Reference perception stages for NextVision.
//!
//! Each stage is an ordinary [`nv_perception::Stage`] written against the public API
//! only, so besides being usable as-is they are the worked example of how to write one:
//!
//! - [`MotionDetector`]: background subtraction on the luma plane, producing detections;
//! - [`Tracker`]: Kalman + Hungarian multi-object tracker (ByteTrack/OC-SORT style),
//!   producing tracks;
//! - [`ZoneAnalytics`]: zone enter/exit/dwell and line-crossing events from tracks.
//!
//! - [`model`] (feature `model`): ONNX detectors through tract, per feed or batched;
//! - [`Brightness`], [`BlobDetector`], [`Counter`]: small stages for demos and smoke tests.
//!
//! [`StageConfig`] is the configuration a file writes (serde, one variant per `kind`); it
//! validates without constructing anything and builds the stage once per feed.
//!
//! [`eval`] scores tracks against ground truth with the CLEAR-MOT and identity metrics.

pub mod assign;
mod basic;
pub mod config;
pub mod eval;
pub mod kalman;
mod model_stage;
mod motion;
mod tracker;
mod zones;

pub use basic::{BlobDetector, Brightness, Counter};
pub use config::{feed_class_names, validate_pipeline, StageBuildError, StageConfig, STAGE_KINDS};
pub use motion::{GlobalMotion, MotionConfig, MotionDetector};
pub use tracker::{EpochPolicy, Tracker, TrackerConfig};
pub use zones::{
    Anchor, CrossingDirection, LineSpec, ZoneAnalytics, ZoneConfig, ZoneEditor, ZoneEvent,
    ZoneEventKind, ZoneEvents, ZoneSpec,
};

#[cfg(feature = "model")]
pub mod model;
