//! The state of a feed as operators see it, and the last error it met.
//!
//! One value per feed, kept by the runtime; the API, diagnostics, metrics (`nv_feed_state`),
//! the CLI summary and the logs all read the same value.

use std::fmt;

use crate::error::FailureKind;
use crate::health::StopReason;
use crate::time::WallTs;

/// Where a feed is in its life.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FeedState {
    /// Added; stages starting, no source session yet.
    Starting,
    /// A source session is open and has not delivered its first frame.
    Connecting,
    /// Frames are flowing.
    Streaming,
    /// Waiting before the next connection attempt (or restart).
    Reconnecting {
        /// 1-based attempt number of the attempt being waited for.
        attempt: u32,
        /// Wall-clock time of that attempt.
        next_try_at: WallTs,
    },
    /// A live source went silent mid-stream (until it reconnects).
    Stalled,
    /// Paused by the user.
    Paused,
    /// Ended because of a failure.
    Failed { kind: FailureKind, cause: String },
    /// Ended normally (removed, shut down, end of a finite source).
    Stopped { reason: StopReason },
}

impl FeedState {
    /// Every state name, in the order of the `nv_feed_state` gauge series.
    pub const NAMES: [&'static str; 8] = [
        "starting",
        "connecting",
        "streaming",
        "reconnecting",
        "stalled",
        "paused",
        "failed",
        "stopped",
    ];

    /// Stable snake_case name.
    pub const fn name(&self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Connecting => "connecting",
            Self::Streaming => "streaming",
            Self::Reconnecting { .. } => "reconnecting",
            Self::Stalled => "stalled",
            Self::Paused => "paused",
            Self::Failed { .. } => "failed",
            Self::Stopped { .. } => "stopped",
        }
    }

    /// Failed or stopped: nothing will change any more.
    pub const fn is_terminal(&self) -> bool {
        matches!(self, Self::Failed { .. } | Self::Stopped { .. })
    }

    /// The terminal state for a stop reason.
    pub fn ended(reason: StopReason) -> Self {
        match reason {
            StopReason::SourceFailed { kind, cause } => Self::Failed { kind, cause },
            StopReason::RestartLimitExceeded { .. } | StopReason::Fatal { .. } => Self::Failed {
                kind: FailureKind::Other,
                cause: reason.to_string(),
            },
            other => Self::Stopped { reason: other },
        }
    }
}

impl fmt::Display for FeedState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Reconnecting { attempt, .. } => write!(f, "reconnecting (attempt {attempt})"),
            Self::Failed { kind, cause } => write!(f, "failed ({kind}): {cause}"),
            Self::Stopped { reason } => write!(f, "stopped ({reason})"),
            other => f.write_str(other.name()),
        }
    }
}

/// The most recent error a feed met, with how often it repeated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LastError {
    pub kind: FailureKind,
    /// The error and its whole cause chain; URL credentials are already redacted.
    pub message: String,
    /// When this kind of error first occurred in the current run of them.
    pub first_at: WallTs,
    pub last_at: WallTs,
    /// Occurrences since `first_at` (a different kind starts a new run).
    pub count: u64,
}

impl LastError {
    /// Records one occurrence: same kind extends the run, another kind starts a new one.
    pub fn record(slot: &mut Option<Self>, kind: FailureKind, message: String, now: WallTs) {
        match slot {
            Some(e) if e.kind == kind => {
                e.message = message;
                e.last_at = now;
                e.count = e.count.saturating_add(1);
            }
            _ => {
                *slot = Some(Self {
                    kind,
                    message,
                    first_at: now,
                    last_at: now,
                    count: 1,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_the_table() {
        let states = [
            FeedState::Starting,
            FeedState::Connecting,
            FeedState::Streaming,
            FeedState::Reconnecting {
                attempt: 1,
                next_try_at: WallTs::UNKNOWN,
            },
            FeedState::Stalled,
            FeedState::Paused,
            FeedState::Failed {
                kind: FailureKind::Other,
                cause: String::new(),
            },
            FeedState::Stopped {
                reason: StopReason::EndOfStream,
            },
        ];
        for (s, n) in states.iter().zip(FeedState::NAMES) {
            assert_eq!(s.name(), n);
        }
    }

    #[test]
    fn last_error_runs_by_kind() {
        let mut slot = None;
        let t = WallTs::from_micros;
        LastError::record(&mut slot, FailureKind::Unauthorized, "a".into(), t(1));
        LastError::record(&mut slot, FailureKind::Unauthorized, "b".into(), t(2));
        let e = slot.clone().unwrap_or_else(|| unreachable!());
        assert_eq!((e.count, e.first_at, e.last_at), (2, t(1), t(2)));
        assert_eq!(e.message, "b");
        LastError::record(&mut slot, FailureKind::Stalled, "c".into(), t(3));
        let e = slot.unwrap_or_else(|| unreachable!());
        assert_eq!(
            (e.kind, e.count, e.first_at),
            (FailureKind::Stalled, 1, t(3))
        );
    }
}
