//! Typed health events. One runtime-wide stream; filter by `feed_id()`.
//!
//! Every event that can fire per frame is throttled by its emitter: the first occurrence
//! is sent at once, then at most one event per throttle window carrying the count
//! accumulated since the previous event, and the remainder is flushed when the condition
//! ends or the feed stops. Counts are therefore exact when summed.

use std::fmt;

use crate::error::{FailureKind, MediaError, StageError};
use crate::id::{FeedId, StageId};
use crate::source::{DecodeOutcome, DecodePreference};

/// Why a frame or output was dropped. Every drop is counted under exactly one reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum DropReason {
    /// Source queue full under `DropOldest`: the oldest queued frame was evicted.
    QueueFullEvictedOldest,
    /// Source queue full under `DropNewest`: the incoming frame was rejected.
    QueueFullRejectedNewest,
    /// A stage returned an error; the frame produced no output.
    StageError,
    /// A stage panicked; the frame produced no output.
    StagePanic,
    /// The batch coordinator rejected or timed out the frame.
    Batch,
    /// Queued frames discarded because the feed stopped or restarted.
    FeedStopping,
    /// Sink queue full: the output was not delivered to the sink.
    SinkQueueFull,
}

impl DropReason {
    pub const ALL: [Self; 7] = [
        Self::QueueFullEvictedOldest,
        Self::QueueFullRejectedNewest,
        Self::StageError,
        Self::StagePanic,
        Self::Batch,
        Self::FeedStopping,
        Self::SinkQueueFull,
    ];
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::QueueFullEvictedOldest => "queue_full_evicted_oldest",
            Self::QueueFullRejectedNewest => "queue_full_rejected_newest",
            Self::StageError => "stage_error",
            Self::StagePanic => "stage_panic",
            Self::Batch => "batch",
            Self::FeedStopping => "feed_stopping",
            Self::SinkQueueFull => "sink_queue_full",
        }
    }
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a feed stopped for good.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StopReason {
    /// `remove_feed` or runtime shutdown.
    UserRequested,
    /// A finite source (file, bounded synthetic) ended.
    EndOfStream,
    /// The restart budget ran out; `cause` is the failure that ended the last session.
    RestartLimitExceeded { restart_count: u32, cause: String },
    /// The source failed in a way retrying cannot fix (missing file, no playable
    /// stream, refused credentials after the reconnect budget, ...).
    SourceFailed { kind: FailureKind, cause: String },
    /// A failure that the restart policy does not cover.
    Fatal { detail: String },
}

impl StopReason {
    /// Stable snake_case code.
    pub const fn code(&self) -> &'static str {
        match self {
            Self::UserRequested => "user_requested",
            Self::EndOfStream => "end_of_stream",
            Self::RestartLimitExceeded { .. } => "restart_limit_exceeded",
            Self::SourceFailed { .. } => "source_failed",
            Self::Fatal { .. } => "fatal",
        }
    }

    /// True when the feed ended because something failed (not asked to, not finished).
    pub const fn is_failure(&self) -> bool {
        !matches!(self, Self::UserRequested | Self::EndOfStream)
    }

    /// The failure behind the stop, if any.
    pub fn cause(&self) -> Option<&str> {
        match self {
            Self::UserRequested | Self::EndOfStream => None,
            Self::RestartLimitExceeded { cause, .. } | Self::SourceFailed { cause, .. } => {
                Some(cause)
            }
            Self::Fatal { detail } => Some(detail),
        }
    }
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UserRequested => f.write_str("user requested"),
            Self::EndOfStream => f.write_str("end of stream"),
            Self::RestartLimitExceeded {
                restart_count,
                cause,
            } => {
                write!(
                    f,
                    "restart limit exceeded after {restart_count} restarts; last failure: {cause}"
                )
            }
            Self::SourceFailed { kind, cause } => write!(f, "source failed ({kind}): {cause}"),
            Self::Fatal { detail } => write!(f, "fatal: {detail}"),
        }
    }
}

/// A health event. New variants may be added in minor releases.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum HealthEvent {
    /// Frames are flowing from a (re)connected source.
    SourceConnected {
        feed_id: FeedId,
    },
    SourceDisconnected {
        feed_id: FeedId,
        reason: MediaError,
    },
    SourceReconnecting {
        feed_id: FeedId,
        attempt: u32,
        delay_ms: u64,
    },
    /// A live source stopped delivering frames mid-stream.
    SourceStalled {
        feed_id: FeedId,
        silent_for_ms: u64,
    },
    SourceEos {
        feed_id: FeedId,
    },
    InsecureRtspSource {
        feed_id: FeedId,
        redacted_url: String,
    },
    DecodeDecision {
        feed_id: FeedId,
        outcome: DecodeOutcome,
        preference: DecodePreference,
        fallback_active: bool,
        fallback_reason: Option<String>,
        detail: String,
    },
    /// Source timestamps jumped or went backwards; media time stays monotonic.
    PtsDiscontinuity {
        feed_id: FeedId,
        previous_pts_nanos: u64,
        new_pts_nanos: u64,
    },
    /// `count` errors from this stage since the previous event; `error` is the latest.
    StageError {
        feed_id: FeedId,
        stage_id: StageId,
        error: StageError,
        count: u64,
    },
    StagePanic {
        feed_id: FeedId,
        stage_id: StageId,
    },
    /// A stage has been inside one `process` call longer than the feed's stall timeout
    /// (reported once per call).
    StageStalled {
        feed_id: FeedId,
        stage_id: StageId,
        running_for_ms: u64,
    },
    FeedRestarting {
        feed_id: FeedId,
        restart_count: u32,
        delay_ms: u64,
    },
    FeedStopped {
        feed_id: FeedId,
        reason: StopReason,
    },
    BackpressureDrop {
        feed_id: FeedId,
        reason: DropReason,
        frames_dropped: u64,
    },
    /// Frames processed this late (wall clock); carries the peak age in the window.
    FrameLag {
        feed_id: FeedId,
        frame_age_ms: u64,
        frames_lagged: u64,
    },
    ViewEpochChanged {
        feed_id: FeedId,
        epoch: u64,
        reason: String,
    },
    ViewDegraded {
        feed_id: FeedId,
        stability_score: f32,
        reason: String,
        frames: u64,
    },
    ViewCompensationApplied {
        feed_id: FeedId,
        epoch: u64,
        count: u64,
    },
    /// Runtime-wide output subscribers fell behind; `messages_lost` since the last event.
    OutputLagged {
        messages_lost: u64,
    },
    SinkPanic {
        feed_id: FeedId,
    },
    /// The sink did not finish within its shutdown timeout and was detached.
    SinkTimeout {
        feed_id: FeedId,
    },
    /// An output sink gave up on (`failed`) or evicted from its bounded buffer (`dropped`)
    /// this many records since the previous report (at most one report per second).
    SinkDeliveryLoss {
        feed_id: FeedId,
        sink: String,
        failed: u64,
        dropped: u64,
    },
    /// A blocking (lossless) sink has held the feed this long; repeated while it lasts.
    SinkStalled {
        feed_id: FeedId,
        blocked_for_ms: u64,
    },
    SinkBackpressure {
        feed_id: FeedId,
        outputs_dropped: u64,
    },
    TrackAdmissionRejected {
        feed_id: FeedId,
        rejected_count: u64,
    },
    BatchError {
        processor_id: StageId,
        batch_size: u32,
        error: StageError,
        count: u64,
    },
    BatchSubmissionRejected {
        feed_id: FeedId,
        processor_id: StageId,
        dropped_count: u64,
    },
    BatchTimeout {
        feed_id: FeedId,
        processor_id: StageId,
        timed_out_count: u64,
    },
    BatchInFlightExceeded {
        feed_id: FeedId,
        processor_id: StageId,
        rejected_count: u64,
    },
    ResidencyDowngrade {
        feed_id: FeedId,
        requested: String,
        effective: String,
    },
    /// The server refused access (credentials or path). The source retries only after
    /// the slow access back-off (`retry_in_ms`), never in the fast reconnect loop.
    SourceAccessDenied {
        feed_id: FeedId,
        error: MediaError,
        retry_in_ms: u64,
    },
    /// A feed was added to the runtime.
    FeedAdded {
        feed_id: FeedId,
        name: String,
    },
    /// A feed was removed (its `FeedStopped` follows or preceded it).
    FeedRemoved {
        feed_id: FeedId,
    },
    FeedPaused {
        feed_id: FeedId,
    },
    FeedResumed {
        feed_id: FeedId,
    },
    /// A feed's configuration changed at runtime; `detail` says what.
    FeedConfigChanged {
        feed_id: FeedId,
        detail: String,
    },
}

impl HealthEvent {
    /// The feed this event concerns; `None` for runtime- or batch-wide events.
    pub fn feed_id(&self) -> Option<FeedId> {
        match self {
            Self::OutputLagged { .. } | Self::BatchError { .. } => None,
            Self::SourceConnected { feed_id }
            | Self::SourceDisconnected { feed_id, .. }
            | Self::SourceReconnecting { feed_id, .. }
            | Self::SourceStalled { feed_id, .. }
            | Self::SourceEos { feed_id }
            | Self::InsecureRtspSource { feed_id, .. }
            | Self::DecodeDecision { feed_id, .. }
            | Self::PtsDiscontinuity { feed_id, .. }
            | Self::StageError { feed_id, .. }
            | Self::StagePanic { feed_id, .. }
            | Self::StageStalled { feed_id, .. }
            | Self::FeedRestarting { feed_id, .. }
            | Self::FeedStopped { feed_id, .. }
            | Self::BackpressureDrop { feed_id, .. }
            | Self::FrameLag { feed_id, .. }
            | Self::ViewEpochChanged { feed_id, .. }
            | Self::ViewDegraded { feed_id, .. }
            | Self::ViewCompensationApplied { feed_id, .. }
            | Self::SinkPanic { feed_id }
            | Self::SinkTimeout { feed_id }
            | Self::SinkStalled { feed_id, .. }
            | Self::SinkDeliveryLoss { feed_id, .. }
            | Self::SinkBackpressure { feed_id, .. }
            | Self::TrackAdmissionRejected { feed_id, .. }
            | Self::BatchSubmissionRejected { feed_id, .. }
            | Self::BatchTimeout { feed_id, .. }
            | Self::BatchInFlightExceeded { feed_id, .. }
            | Self::ResidencyDowngrade { feed_id, .. }
            | Self::SourceAccessDenied { feed_id, .. }
            | Self::FeedAdded { feed_id, .. }
            | Self::FeedRemoved { feed_id }
            | Self::FeedPaused { feed_id }
            | Self::FeedResumed { feed_id }
            | Self::FeedConfigChanged { feed_id, .. } => Some(*feed_id),
        }
    }

    /// Stable snake_case name, used as a metrics label and in JSON.
    pub fn name(&self) -> &'static str {
        match self {
            Self::SourceConnected { .. } => "source_connected",
            Self::SourceDisconnected { .. } => "source_disconnected",
            Self::SourceReconnecting { .. } => "source_reconnecting",
            Self::SourceStalled { .. } => "source_stalled",
            Self::SourceEos { .. } => "source_eos",
            Self::InsecureRtspSource { .. } => "insecure_rtsp_source",
            Self::DecodeDecision { .. } => "decode_decision",
            Self::PtsDiscontinuity { .. } => "pts_discontinuity",
            Self::StageError { .. } => "stage_error",
            Self::StagePanic { .. } => "stage_panic",
            Self::StageStalled { .. } => "stage_stalled",
            Self::FeedRestarting { .. } => "feed_restarting",
            Self::FeedStopped { .. } => "feed_stopped",
            Self::BackpressureDrop { .. } => "backpressure_drop",
            Self::FrameLag { .. } => "frame_lag",
            Self::ViewEpochChanged { .. } => "view_epoch_changed",
            Self::ViewDegraded { .. } => "view_degraded",
            Self::ViewCompensationApplied { .. } => "view_compensation_applied",
            Self::OutputLagged { .. } => "output_lagged",
            Self::SinkPanic { .. } => "sink_panic",
            Self::SinkTimeout { .. } => "sink_timeout",
            Self::SinkStalled { .. } => "sink_stalled",
            Self::SinkDeliveryLoss { .. } => "sink_delivery_loss",
            Self::SinkBackpressure { .. } => "sink_backpressure",
            Self::TrackAdmissionRejected { .. } => "track_admission_rejected",
            Self::BatchError { .. } => "batch_error",
            Self::BatchSubmissionRejected { .. } => "batch_submission_rejected",
            Self::BatchTimeout { .. } => "batch_timeout",
            Self::BatchInFlightExceeded { .. } => "batch_in_flight_exceeded",
            Self::ResidencyDowngrade { .. } => "residency_downgrade",
            Self::SourceAccessDenied { .. } => "source_access_denied",
            Self::FeedAdded { .. } => "feed_added",
            Self::FeedRemoved { .. } => "feed_removed",
            Self::FeedPaused { .. } => "feed_paused",
            Self::FeedResumed { .. } => "feed_resumed",
            Self::FeedConfigChanged { .. } => "feed_config_changed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_send_sync_clone() {
        fn assert_traits<T: Send + Sync + Clone + 'static>() {}
        assert_traits::<HealthEvent>();
        let e = HealthEvent::SinkPanic {
            feed_id: FeedId::new(3),
        };
        assert_eq!(e.feed_id(), Some(FeedId::new(3)));
        assert_eq!(e.name(), "sink_panic");
        assert_eq!(
            HealthEvent::OutputLagged { messages_lost: 1 }.feed_id(),
            None
        );
    }

    #[test]
    fn drop_reason_indices_are_dense() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
    }
}
