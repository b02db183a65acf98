//! Restart policy bookkeeping, kept free of threads so it can be tested exhaustively.

use std::time::Duration;

use nv_core::health::StopReason;
use nv_core::policy::{RestartPolicy, RestartTrigger};

/// What ended a session, as far as the restart policy cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FailureKind {
    /// Source could not be created/started, or gave up (reconnect budget spent).
    Source,
    StagePanic,
    StageStartFailed,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RestartDecision {
    /// Restart; carries the cumulative restart count.
    Restart {
        restart_count: u32,
    },
    Stop(StopReason),
}

#[derive(Debug)]
pub(crate) struct RestartBudget {
    policy: RestartPolicy,
    in_window: u32,
    total: u32,
}

impl RestartBudget {
    pub fn new(policy: RestartPolicy) -> Self {
        Self {
            policy,
            in_window: 0,
            total: 0,
        }
    }

    #[cfg(test)]
    pub fn total(&self) -> u32 {
        self.total
    }

    /// Decides after a failed session that lived `session_lifetime`.
    pub fn on_failure(
        &mut self,
        kind: FailureKind,
        detail: &str,
        session_lifetime: Duration,
    ) -> RestartDecision {
        let p = &self.policy;
        let covered = match p.restart_on {
            RestartTrigger::Never => false,
            RestartTrigger::SourceFailure => kind == FailureKind::Source,
            _ => true,
        };
        if !covered || p.max_restarts == 0 {
            return RestartDecision::Stop(StopReason::Fatal {
                detail: detail.to_owned(),
            });
        }
        // A session that ran for a whole window proves the feed healthy again.
        if session_lifetime >= p.restart_window {
            self.in_window = 0;
        }
        if self.in_window >= p.max_restarts {
            return RestartDecision::Stop(StopReason::RestartLimitExceeded {
                restart_count: self.total,
                cause: detail.to_owned(),
            });
        }
        self.in_window += 1;
        self.total += 1;
        RestartDecision::Restart {
            restart_count: self.total,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHORT: Duration = Duration::from_secs(1);

    fn policy(max: u32, on: RestartTrigger) -> RestartPolicy {
        RestartPolicy::default()
            .with_max_restarts(max)
            .with_restart_on(on)
            .with_restart_window(Duration::from_secs(60))
    }

    #[test]
    fn budget_exhausts_then_reports_limit() {
        let mut b = RestartBudget::new(policy(2, RestartTrigger::SourceOrStagePanic));
        assert_eq!(
            b.on_failure(FailureKind::Source, "x", SHORT),
            RestartDecision::Restart { restart_count: 1 }
        );
        assert_eq!(
            b.on_failure(FailureKind::StagePanic, "x", SHORT),
            RestartDecision::Restart { restart_count: 2 }
        );
        assert_eq!(
            b.on_failure(FailureKind::Source, "x", SHORT),
            RestartDecision::Stop(StopReason::RestartLimitExceeded {
                restart_count: 2,
                cause: "x".into()
            })
        );
    }

    #[test]
    fn long_session_resets_window_but_total_is_cumulative() {
        let mut b = RestartBudget::new(policy(1, RestartTrigger::SourceOrStagePanic));
        assert_eq!(
            b.on_failure(FailureKind::Source, "x", SHORT),
            RestartDecision::Restart { restart_count: 1 }
        );
        assert_eq!(
            b.on_failure(FailureKind::Source, "x", Duration::from_secs(60)),
            RestartDecision::Restart { restart_count: 2 }
        );
        assert_eq!(b.total(), 2);
    }

    #[test]
    fn triggers_filter_failures() {
        let mut b = RestartBudget::new(policy(5, RestartTrigger::SourceFailure));
        assert!(matches!(
            b.on_failure(FailureKind::StagePanic, "boom", SHORT),
            RestartDecision::Stop(StopReason::Fatal { .. })
        ));
        assert!(matches!(
            b.on_failure(FailureKind::Source, "gone", SHORT),
            RestartDecision::Restart { .. }
        ));
        let mut never = RestartBudget::new(policy(5, RestartTrigger::Never));
        assert!(matches!(
            never.on_failure(FailureKind::Source, "gone", SHORT),
            RestartDecision::Stop(_)
        ));
        let mut zero = RestartBudget::new(policy(0, RestartTrigger::SourceOrStagePanic));
        assert!(matches!(
            zero.on_failure(FailureKind::Source, "gone", Duration::from_secs(3600)),
            RestartDecision::Stop(_)
        ));
    }
}
