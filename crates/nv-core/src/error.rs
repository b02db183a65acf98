//! Error types. Causes are kept as `#[source]`; messages put URLs and paths last and
//! never contain credentials.

use std::fmt;
use std::sync::Arc;

use crate::id::{FeedId, StageId};

/// Coarse class used by restart and health decisions instead of matching on strings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// May succeed if retried (network, device busy, stalled stream).
    Transient,
    /// Will fail again the same way (bad config, unsupported format, policy refusal).
    Permanent,
}

/// Errors from video ingest. `Clone` because health events carry them.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MediaError {
    #[error("connection failed: {detail} ({redacted_url})")]
    ConnectionFailed {
        redacted_url: String,
        detail: String,
    },
    #[error("decode failed: {detail}")]
    DecodeFailed { detail: String },
    #[error("end of stream")]
    Eos,
    #[error("no frame for {waited_ms} ms ({phase})")]
    Timeout { waited_ms: u64, phase: &'static str },
    #[error("unsupported: {detail}")]
    Unsupported { detail: String },
    #[error("plain rtsp refused by RequireTls ({redacted_url})")]
    InsecureRtspRejected { redacted_url: String },
    #[error("custom pipelines are refused unless the runtime allows trusted pipelines")]
    CustomPipelineRejected,
    #[error("no source factory handles {kind} sources")]
    NoFactory { kind: &'static str },
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: Arc<std::io::Error>,
    },
}

impl MediaError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::ConnectionFailed { .. }
            | Self::Timeout { .. }
            | Self::DecodeFailed { .. }
            | Self::Eos
            | Self::Io { .. } => ErrorKind::Transient,
            Self::Unsupported { .. }
            | Self::InsecureRtspRejected { .. }
            | Self::CustomPipelineRejected
            | Self::NoFactory { .. } => ErrorKind::Permanent,
        }
    }
}

/// A shareable boxed error, so `StageError` can keep a user error's cause and still be
/// `Clone` for health events.
#[derive(Clone)]
pub struct SharedError(pub Arc<dyn std::error::Error + Send + Sync>);

impl fmt::Debug for SharedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}
impl fmt::Display for SharedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.0, f)
    }
}
impl std::error::Error for SharedError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// Errors returned by stages and batch processors.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StageError {
    #[error("stage {stage_id}: processing failed: {detail}")]
    ProcessingFailed { stage_id: StageId, detail: String },
    #[error("stage {stage_id}: resource exhausted")]
    ResourceExhausted { stage_id: StageId },
    #[error("stage {stage_id}: dependency unavailable: {detail}")]
    DependencyUnavailable { stage_id: StageId, detail: String },
    #[error("stage {stage_id}: {source}")]
    Other {
        stage_id: StageId,
        #[source]
        source: SharedError,
    },
}

impl StageError {
    pub fn processing(stage_id: StageId, detail: impl Into<String>) -> Self {
        Self::ProcessingFailed {
            stage_id,
            detail: detail.into(),
        }
    }
    /// Wraps any error, keeping it as the cause.
    pub fn other(stage_id: StageId, err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Other {
            stage_id,
            source: SharedError(Arc::new(err)),
        }
    }
    pub fn stage_id(&self) -> StageId {
        match self {
            Self::ProcessingFailed { stage_id, .. }
            | Self::ResourceExhausted { stage_id }
            | Self::DependencyUnavailable { stage_id, .. }
            | Self::Other { stage_id, .. } => *stage_id,
        }
    }
}

/// One problem found while validating configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigProblem {
    /// Dotted path of the offending field (`backpressure.queue_depth`).
    pub field: String,
    /// The offending value, already redacted; `None` for missing fields.
    pub value: Option<String>,
    pub reason: String,
}

impl ConfigProblem {
    pub fn missing(field: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            value: None,
            reason: "is required".into(),
        }
    }
    pub fn invalid(
        field: impl Into<String>,
        value: impl fmt::Display,
        reason: impl Into<String>,
    ) -> Self {
        Self {
            field: field.into(),
            value: Some(value.to_string()),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(v) => write!(f, "{} = {v}: {}", self.field, self.reason),
            None => write!(f, "{}: {}", self.field, self.reason),
        }
    }
}

/// Configuration rejected; lists every problem found, not just the first.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: {}", join_problems(.problems))]
pub struct ConfigError {
    pub problems: Vec<ConfigProblem>,
}

fn join_problems(problems: &[ConfigProblem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl ConfigError {
    pub fn single(problem: ConfigProblem) -> Self {
        Self {
            problems: vec![problem],
        }
    }
    /// `Ok` when `problems` is empty.
    pub fn check(problems: Vec<ConfigProblem>) -> Result<(), Self> {
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Self { problems })
        }
    }
}

/// Errors from runtime and feed control operations.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    #[error("{feed_id} not found")]
    FeedNotFound { feed_id: FeedId },
    #[error("{feed_id} is already paused")]
    AlreadyPaused { feed_id: FeedId },
    #[error("{feed_id} is not paused")]
    NotPaused { feed_id: FeedId },
    #[error("{feed_id} has stopped")]
    FeedNotRunning { feed_id: FeedId },
    #[error("runtime is shutting down")]
    ShutdownInProgress,
    #[error("feed limit reached ({max} feeds)")]
    FeedLimitExceeded { max: usize },
    #[error("batch processor {processor_id} failed to start")]
    BatchStartFailed {
        processor_id: StageId,
        #[source]
        source: StageError,
    },
    #[error("batch processor {processor_id} did not start within {timeout:?}")]
    BatchStartTimedOut {
        processor_id: StageId,
        timeout: std::time::Duration,
    },
    #[error("batch processor {processor_id} already exists")]
    DuplicateBatchProcessor { processor_id: StageId },
    #[error("batch processor {processor_id} not found")]
    BatchNotFound { processor_id: StageId },
    #[error("could not spawn thread {name}")]
    ThreadSpawnFailed {
        name: String,
        #[source]
        source: Arc<std::io::Error>,
    },
}

/// Any NextVision error.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NvError {
    #[error(transparent)]
    Media(#[from] MediaError),
    #[error(transparent)]
    Stage(#[from] StageError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Config(#[from] ConfigError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn config_error_lists_every_problem() {
        let err = ConfigError::check(vec![
            ConfigProblem::missing("source"),
            ConfigProblem::invalid("backpressure.queue_depth", 0, "must be at least 1"),
        ])
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("source: is required"), "{text}");
        assert!(
            text.contains("backpressure.queue_depth = 0: must be at least 1"),
            "{text}"
        );
        assert!(ConfigError::check(vec![]).is_ok());
    }

    #[test]
    fn stage_error_keeps_source() {
        let io = std::io::Error::other("disk gone");
        let err = StageError::other(StageId::new("writer"), io);
        assert_eq!(err.stage_id(), StageId::new("writer"));
        assert!(err.source().is_some());
        let nv: NvError = err.into();
        assert!(nv.to_string().contains("disk gone"));
    }

    #[test]
    fn media_error_kinds() {
        assert_eq!(
            MediaError::CustomPipelineRejected.kind(),
            ErrorKind::Permanent
        );
        assert_eq!(
            MediaError::Timeout {
                waited_ms: 5,
                phase: "startup"
            }
            .kind(),
            ErrorKind::Transient
        );
    }
}
