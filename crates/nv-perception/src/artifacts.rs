//! Stage outputs and the per-frame accumulator.

use nv_core::metadata::TypedMetadata;

use crate::detection::DetectionSet;
use crate::event::PerceptionEvent;
use crate::signal::{DerivedSignal, SceneFeature};
use crate::track::Track;

/// What happens after a stage returns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum StageControl {
    #[default]
    Continue,
    /// Skip the remaining stages for this frame but still emit its output (recorded as
    /// `Skipped` in provenance). For cheap gating, e.g. "no motion, skip the detector".
    SkipRemaining,
}

/// What one stage produced for one frame. Every field is optional.
#[derive(Clone, Debug, Default)]
pub struct StageOutput {
    /// Replaces the frame's detections.
    pub detections: Option<DetectionSet>,
    /// Replaces the frame's tracks and marks them authoritative (tracks missing from an
    /// authoritative set are ended).
    pub tracks: Option<Vec<Track>>,
    /// Appended.
    pub signals: Vec<DerivedSignal>,
    /// Appended.
    pub scene_features: Vec<SceneFeature>,
    /// Appended: the discrete events this stage observed on this frame.
    pub events: Vec<PerceptionEvent>,
    /// Merged; last writer wins per type.
    pub artifacts: TypedMetadata,
    pub control: StageControl,
}

impl StageOutput {
    pub fn empty() -> Self {
        Self::default()
    }
    pub fn with_detections(d: impl Into<DetectionSet>) -> Self {
        Self {
            detections: Some(d.into()),
            ..Self::default()
        }
    }
    pub fn with_tracks(t: Vec<Track>) -> Self {
        Self {
            tracks: Some(t),
            ..Self::default()
        }
    }
    pub fn with_signal(s: DerivedSignal) -> Self {
        Self {
            signals: vec![s],
            ..Self::default()
        }
    }
    pub fn with_signals(s: Vec<DerivedSignal>) -> Self {
        Self {
            signals: s,
            ..Self::default()
        }
    }
    pub fn with_scene_features(f: Vec<SceneFeature>) -> Self {
        Self {
            scene_features: f,
            ..Self::default()
        }
    }
    pub fn with_artifact<T: Clone + Send + Sync + 'static>(v: T) -> Self {
        let mut artifacts = TypedMetadata::new();
        artifacts.insert(v);
        Self {
            artifacts,
            ..Self::default()
        }
    }
    /// Emit output for this frame without running later stages.
    pub fn skip_remaining() -> Self {
        Self {
            control: StageControl::SkipRemaining,
            ..Self::default()
        }
    }
    pub fn build() -> StageOutputBuilder {
        StageOutputBuilder {
            out: Self::default(),
        }
    }
}

/// Builder for outputs with several parts.
#[derive(Debug)]
pub struct StageOutputBuilder {
    out: StageOutput,
}

impl StageOutputBuilder {
    pub fn detections(mut self, d: impl Into<DetectionSet>) -> Self {
        self.out.detections = Some(d.into());
        self
    }
    pub fn tracks(mut self, t: Vec<Track>) -> Self {
        self.out.tracks = Some(t);
        self
    }
    pub fn signal(mut self, s: DerivedSignal) -> Self {
        self.out.signals.push(s);
        self
    }
    pub fn scene_feature(mut self, f: SceneFeature) -> Self {
        self.out.scene_features.push(f);
        self
    }
    pub fn event(mut self, e: PerceptionEvent) -> Self {
        self.out.events.push(e);
        self
    }
    pub fn artifact<T: Clone + Send + Sync + 'static>(mut self, v: T) -> Self {
        self.out.artifacts.insert(v);
        self
    }
    pub fn control(mut self, c: StageControl) -> Self {
        self.out.control = c;
        self
    }
    pub fn finish(self) -> StageOutput {
        self.out
    }
}

/// Everything the stages produced so far for the current frame.
#[derive(Clone, Debug, Default)]
pub struct PerceptionArtifacts {
    pub detections: DetectionSet,
    pub tracks: Vec<Track>,
    /// True once any stage returned `Some(tracks)` for this frame.
    pub tracks_authoritative: bool,
    pub signals: Vec<DerivedSignal>,
    pub scene_features: Vec<SceneFeature>,
    /// Every stage's events, in stage order.
    pub events: Vec<PerceptionEvent>,
    pub stage_artifacts: TypedMetadata,
}

impl PerceptionArtifacts {
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies the merge rules and returns the stage's control decision.
    pub fn merge(&mut self, out: StageOutput) -> StageControl {
        if let Some(d) = out.detections {
            self.detections = d;
        }
        if let Some(t) = out.tracks {
            self.tracks = t;
            self.tracks_authoritative = true;
        }
        self.signals.extend(out.signals);
        self.scene_features.extend(out.scene_features);
        self.events.extend(out.events);
        if !out.artifacts.is_empty() {
            self.stage_artifacts.merge(out.artifacts);
        }
        out.control
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detection::Detection;
    use crate::signal::SignalValue;
    use crate::track::{TrackObservation, TrackState};
    use nv_core::geometry::BBox;
    use nv_core::id::{DetectionId, TrackId};
    use nv_core::time::MonotonicTs;

    fn det(id: u64) -> Detection {
        Detection::builder(DetectionId::new(id), 0, 0.9, BBox::new(0.0, 0.0, 0.1, 0.1)).build()
    }

    #[test]
    fn merge_rules() {
        let mut acc = PerceptionArtifacts::new();
        acc.merge(StageOutput::with_detections(vec![det(1), det(2)]));
        acc.merge(StageOutput::with_signal(DerivedSignal::new(
            "a",
            SignalValue::Scalar(1.0),
            MonotonicTs::ZERO,
        )));
        assert_eq!(acc.detections.len(), 2);
        assert!(!acc.tracks_authoritative);
        // `None` detections leave the set alone; `Some` replaces it.
        acc.merge(StageOutput::with_signal(DerivedSignal::new(
            "b",
            SignalValue::Boolean(true),
            MonotonicTs::ZERO,
        )));
        assert_eq!(acc.detections.len(), 2);
        acc.merge(StageOutput::with_detections(vec![det(3)]));
        assert_eq!(acc.detections.detections[0].id, DetectionId::new(3));
        assert_eq!(acc.signals.len(), 2);
        let obs = TrackObservation::new(
            MonotonicTs::ZERO,
            BBox::default(),
            1.0,
            TrackState::Confirmed,
            None,
        );
        acc.merge(StageOutput::with_tracks(vec![Track::new(
            TrackId::new(1),
            0,
            TrackState::Confirmed,
            obs,
        )]));
        assert!(acc.tracks_authoritative);
        acc.merge(StageOutput::with_artifact(1u32));
        let control = acc.merge(
            StageOutput::build()
                .artifact(2u32)
                .control(StageControl::SkipRemaining)
                .finish(),
        );
        assert_eq!(acc.stage_artifacts.get::<u32>(), Some(&2));
        assert_eq!(control, StageControl::SkipRemaining);
    }
}
