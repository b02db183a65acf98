//! Ordered stage lists and their validation.

use std::collections::HashSet;

use nv_core::id::StageId;

use crate::stage::{Stage, StageCapabilities};

/// How capability problems found at feed construction are treated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ValidationMode {
    Off,
    /// Log the warnings and continue.
    #[default]
    Warn,
    /// Refuse the feed.
    Error,
}

/// A problem with stage ordering.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ValidationWarning {
    /// The stage consumes something no earlier stage produces.
    UnsatisfiedDependency {
        stage_id: StageId,
        missing: &'static str,
    },
    DuplicateStageId {
        stage_id: StageId,
    },
}

impl std::fmt::Display for ValidationWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::UnsatisfiedDependency { stage_id, missing } => {
                write!(
                    f,
                    "stage {stage_id} consumes {missing} but no earlier stage produces them"
                )
            }
            Self::DuplicateStageId { stage_id } => write!(f, "stage id {stage_id} is used twice"),
        }
    }
}

/// Checks ordering: every consumed input has an earlier producer, ids are unique. Stages
/// without declared capabilities are not checked for dependencies.
pub fn validate_stages(stages: &[Box<dyn Stage>]) -> Vec<ValidationWarning> {
    validate_capabilities(stages.iter().map(|s| (s.id(), s.capabilities())))
}

/// The same checks over `(id, capabilities)` pairs, so pipelines that mix stages and a
/// batch point can be validated too.
pub fn validate_capabilities(
    steps: impl IntoIterator<Item = (StageId, Option<StageCapabilities>)>,
) -> Vec<ValidationWarning> {
    let mut warnings = Vec::new();
    let mut seen = HashSet::new();
    let (mut detections, mut tracks) = (false, false);
    for (id, caps) in steps {
        if !seen.insert(id) {
            warnings.push(ValidationWarning::DuplicateStageId { stage_id: id });
        }
        if let Some(caps) = caps {
            if caps.consumes_detections && !detections {
                warnings.push(ValidationWarning::UnsatisfiedDependency {
                    stage_id: id,
                    missing: "detections",
                });
            }
            if caps.consumes_tracks && !tracks {
                warnings.push(ValidationWarning::UnsatisfiedDependency {
                    stage_id: id,
                    missing: "tracks",
                });
            }
            detections |= caps.produces_detections;
            tracks |= caps.produces_tracks;
        }
    }
    warnings
}

/// An ordered list of stages.
#[derive(Default)]
pub struct StagePipeline {
    stages: Vec<Box<dyn Stage>>,
}

impl std::fmt::Debug for StagePipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.stage_ids()).finish()
    }
}

impl StagePipeline {
    pub fn new() -> Self {
        Self::default()
    }
    #[must_use]
    pub fn stage(mut self, stage: impl Stage) -> Self {
        self.stages.push(Box::new(stage));
        self
    }
    #[must_use]
    pub fn boxed_stage(mut self, stage: Box<dyn Stage>) -> Self {
        self.stages.push(stage);
        self
    }
    pub fn len(&self) -> usize {
        self.stages.len()
    }
    pub fn is_empty(&self) -> bool {
        self.stages.is_empty()
    }
    pub fn stage_ids(&self) -> Vec<StageId> {
        self.stages.iter().map(|s| s.id()).collect()
    }
    pub fn validate(&self) -> Vec<ValidationWarning> {
        validate_stages(&self.stages)
    }
    pub fn into_stages(self) -> Vec<Box<dyn Stage>> {
        self.stages
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifacts::StageOutput;
    use crate::stage::{StageCapabilities, StageContext};
    use nv_core::error::StageError;

    struct S(&'static str, Option<StageCapabilities>);
    impl Stage for S {
        fn id(&self) -> StageId {
            StageId::new(self.0)
        }
        fn process(&mut self, _: &StageContext<'_>) -> Result<StageOutput, StageError> {
            Ok(StageOutput::empty())
        }
        fn capabilities(&self) -> Option<StageCapabilities> {
            self.1
        }
    }

    #[test]
    fn detects_missing_producers_and_duplicates() {
        let tracker = StageCapabilities::new()
            .consumes_detections()
            .produces_tracks();
        let detector = StageCapabilities::new().produces_detections();
        let bad = StagePipeline::new()
            .stage(S("tracker", Some(tracker)))
            .stage(S("detector", Some(detector)));
        assert_eq!(
            bad.validate(),
            vec![ValidationWarning::UnsatisfiedDependency {
                stage_id: StageId::new("tracker"),
                missing: "detections"
            }]
        );
        let good = StagePipeline::new()
            .stage(S("detector", Some(detector)))
            .stage(S("tracker", Some(tracker)));
        assert!(good.validate().is_empty());
        let dup = StagePipeline::new().stage(S("a", None)).stage(S("a", None));
        assert_eq!(
            dup.validate(),
            vec![ValidationWarning::DuplicateStageId {
                stage_id: StageId::new("a")
            }]
        );
        assert_eq!(dup.len(), 2);
    }
}
