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

/// What went wrong, in words an operator can act on. Stable snake_case names (`as_str`)
/// appear in the API, health records, metrics and logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum FailureKind {
    /// A file source's path does not exist.
    FileNotFound,
    /// A file source's path is a directory or something else that is not a regular file.
    NotAFile,
    /// The input has no stream that can be demuxed into video (garbage, header only,
    /// truncated before the first frame, ended without a single frame).
    NoPlayableStream,
    /// No decoder or plugin for the stream's codec.
    UnsupportedCodec,
    /// The server refused the credentials (RTSP/HTTP 401 or 403).
    Unauthorized,
    /// The server has no stream at that path (RTSP/HTTP 404).
    StreamNotFound,
    /// The source description itself is unusable (malformed URL, refused by policy).
    InvalidSource,
    /// Could not connect, or the connection broke (refused, reset, unreachable).
    ConnectionFailed,
    /// No frame within the startup timeout.
    StartupTimeout,
    /// A live source went silent mid-stream for longer than the stall timeout.
    Stalled,
    /// A live source reached end of stream.
    EndOfStream,
    /// Demux or decode failed mid-stream.
    DecodeError,
    /// A stage panicked.
    StagePanic,
    /// A stage's `on_start` failed.
    StageStartFailed,
    /// Anything else.
    Other,
}

impl FailureKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::FileNotFound => "file_not_found",
            Self::NotAFile => "not_a_file",
            Self::NoPlayableStream => "no_playable_stream",
            Self::UnsupportedCodec => "unsupported_codec",
            Self::Unauthorized => "unauthorized",
            Self::StreamNotFound => "stream_not_found",
            Self::InvalidSource => "invalid_source",
            Self::ConnectionFailed => "connection_failed",
            Self::StartupTimeout => "startup_timeout",
            Self::Stalled => "stalled",
            Self::EndOfStream => "end_of_stream",
            Self::DecodeError => "decode_error",
            Self::StagePanic => "stage_panic",
            Self::StageStartFailed => "stage_start_failed",
            Self::Other => "other",
        }
    }

    /// Permanent failures fail the same way when retried at once.
    pub const fn error_kind(self) -> ErrorKind {
        match self {
            Self::FileNotFound
            | Self::NotAFile
            | Self::NoPlayableStream
            | Self::UnsupportedCodec
            | Self::Unauthorized
            | Self::StreamNotFound
            | Self::InvalidSource => ErrorKind::Permanent,
            Self::ConnectionFailed
            | Self::StartupTimeout
            | Self::Stalled
            | Self::EndOfStream
            | Self::DecodeError
            | Self::StagePanic
            | Self::StageStartFailed
            | Self::Other => ErrorKind::Transient,
        }
    }

    /// The server refused access (credentials or path): a camera may be fixed by its
    /// operator, so live sources retry these, but only at the slow access back-off.
    pub const fn is_access_denied(self) -> bool {
        matches!(self, Self::Unauthorized | Self::StreamNotFound)
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
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
    /// A file source whose path does not exist.
    #[error("file not found: {path}")]
    FileNotFound { path: String },
    /// A file source whose path is not a regular file.
    #[error("not a regular file ({what}): {path}")]
    NotAFile { path: String, what: &'static str },
    /// The input holds no stream that can be played.
    #[error("no playable stream: {detail}")]
    NoPlayableStream { detail: String },
    /// The server refused the credentials (401/403).
    #[error("unauthorized: {detail} ({redacted_url})")]
    Unauthorized {
        redacted_url: String,
        detail: String,
    },
    /// The server has nothing at this path (404).
    #[error("stream not found: {detail} ({redacted_url})")]
    StreamNotFound {
        redacted_url: String,
        detail: String,
    },
    /// The source's reconnect budget is spent; the cause is the last failure.
    #[error("gave up after {attempts} reconnect attempts")]
    GaveUp {
        attempts: u32,
        #[source]
        last: Arc<MediaError>,
    },
}

impl MediaError {
    pub fn kind(&self) -> ErrorKind {
        self.failure_kind().error_kind()
    }

    /// The operator-facing class of this error (typed, never parsed from text).
    pub fn failure_kind(&self) -> FailureKind {
        match self {
            Self::ConnectionFailed { .. } | Self::Io { .. } => FailureKind::ConnectionFailed,
            Self::DecodeFailed { .. } => FailureKind::DecodeError,
            Self::Eos => FailureKind::EndOfStream,
            Self::Timeout { phase, .. } if *phase == "stall" => FailureKind::Stalled,
            Self::Timeout { .. } => FailureKind::StartupTimeout,
            Self::Unsupported { .. } => FailureKind::UnsupportedCodec,
            Self::InsecureRtspRejected { .. }
            | Self::CustomPipelineRejected
            | Self::NoFactory { .. } => FailureKind::InvalidSource,
            Self::FileNotFound { .. } => FailureKind::FileNotFound,
            Self::NotAFile { .. } => FailureKind::NotAFile,
            Self::NoPlayableStream { .. } => FailureKind::NoPlayableStream,
            Self::Unauthorized { .. } => FailureKind::Unauthorized,
            Self::StreamNotFound { .. } => FailureKind::StreamNotFound,
            Self::GaveUp { last, .. } => last.failure_kind(),
        }
    }
}

/// `err` and every cause below it, joined with ": " (each level's own message once).
pub fn cause_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut next = err.source();
    while let Some(cause) = next {
        let part = cause.to_string();
        // thiserror's `{source}` in a message already includes the cause.
        if !text.ends_with(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        next = cause.source();
    }
    text
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
    #[error("batch processor {processor_id} did not start within {} s", timeout.as_secs_f64())]
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
