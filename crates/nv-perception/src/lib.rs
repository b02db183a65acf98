//! The stage model: what users implement ([`Stage`]) and the data stages exchange.

mod artifacts;
mod batch;
mod class;
mod detection;
mod event;
mod pipeline;
mod signal;
mod stage;
mod temporal;
mod track;

pub use artifacts::{PerceptionArtifacts, StageControl, StageOutput, StageOutputBuilder};
pub use batch::{BatchEntry, BatchProcessor};
pub use class::{class_label, ClassNames};
pub use detection::{Detection, DetectionBuilder, DetectionSet};
pub use event::{CrossingDirection, EventKind, EventObject, PerceptionEvent};
pub use pipeline::{
    validate_capabilities, validate_stages, StagePipeline, ValidationMode, ValidationWarning,
};
pub use signal::{DerivedSignal, SceneFeature, SceneFeatureValue, SignalValue};
pub use stage::{Stage, StageCapabilities, StageCategory, StageContext};
pub use temporal::{NullTemporalAccess, TemporalAccess};
pub use track::{Track, TrackObservation, TrackState};

pub use nv_core::error::StageError;
pub use nv_core::id::{DetectionId, FeedId, StageId, TrackId};
pub use nv_core::metadata::TypedMetadata;
pub use nv_core::metrics::StageMetrics;
pub use nv_frame::FrameEnvelope;
pub use nv_view::{ViewEpoch, ViewSnapshot};
