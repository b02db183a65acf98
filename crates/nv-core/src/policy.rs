//! Operational policies: backpressure, restart, reconnect.

use std::time::Duration;

/// What the source→worker frame queue does when full.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BackpressurePolicy {
    /// Evict the oldest queued frame (live video: freshest frame wins).
    DropOldest { queue_depth: usize },
    /// Reject the incoming frame.
    DropNewest { queue_depth: usize },
    /// Block the producer until space frees up (offline processing; never drops).
    Block { queue_depth: usize },
}

impl BackpressurePolicy {
    pub const fn queue_depth(self) -> usize {
        match self {
            Self::DropOldest { queue_depth }
            | Self::DropNewest { queue_depth }
            | Self::Block { queue_depth } => queue_depth,
        }
    }
    pub const fn is_lossless(self) -> bool {
        matches!(self, Self::Block { .. })
    }
}

impl Default for BackpressurePolicy {
    fn default() -> Self {
        Self::DropOldest { queue_depth: 4 }
    }
}

/// Which failures restart a feed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RestartTrigger {
    /// Source-side exits only (source create/start failure, source gave up).
    SourceFailure,
    /// Source failures plus stage panics and stage start failures.
    #[default]
    SourceOrStagePanic,
    Never,
}

/// Feed-level restart budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RestartPolicy {
    /// Restarts allowed within `restart_window`; 0 disables restarts.
    pub max_restarts: u32,
    /// A session that lived at least this long resets the budget.
    pub restart_window: Duration,
    /// Wait between sessions (interruptible by shutdown).
    pub restart_delay: Duration,
    pub restart_on: RestartTrigger,
}

impl RestartPolicy {
    pub const fn never() -> Self {
        Self {
            max_restarts: 0,
            restart_window: Duration::from_secs(300),
            restart_delay: Duration::ZERO,
            restart_on: RestartTrigger::Never,
        }
    }
    pub const fn with_max_restarts(mut self, n: u32) -> Self {
        self.max_restarts = n;
        self
    }
    pub const fn with_restart_window(mut self, d: Duration) -> Self {
        self.restart_window = d;
        self
    }
    pub const fn with_restart_delay(mut self, d: Duration) -> Self {
        self.restart_delay = d;
        self
    }
    pub const fn with_restart_on(mut self, t: RestartTrigger) -> Self {
        self.restart_on = t;
        self
    }
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            max_restarts: 5,
            restart_window: Duration::from_secs(300),
            restart_delay: Duration::from_secs(2),
            restart_on: RestartTrigger::SourceOrStagePanic,
        }
    }
}

/// Backoff curve for reconnect attempts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BackoffKind {
    #[default]
    Exponential,
    Linear,
}

/// Source-level reconnect behaviour (executed by the media layer).
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct ReconnectPolicy {
    /// `None` retries forever.
    pub max_attempts: Option<u32>,
    pub base_delay: Duration,
    pub max_delay: Duration,
    pub backoff: BackoffKind,
    /// Fraction of the delay randomised away (0 = none, 0.2 = up to -20%), so cameras
    /// behind one switch do not reconnect in lockstep.
    pub jitter_ratio: f64,
    /// Delay before retrying after the server refused access (401/403, 404): long, so a
    /// camera does not lock the account and a wrong path does not flood its log.
    pub access_denied_delay: Duration,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        Self {
            max_attempts: None,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
            backoff: BackoffKind::Exponential,
            jitter_ratio: 0.1,
            access_denied_delay: Duration::from_secs(300),
        }
    }
}

impl ReconnectPolicy {
    pub const fn with_max_attempts(mut self, n: Option<u32>) -> Self {
        self.max_attempts = n;
        self
    }
    pub const fn with_delays(mut self, base: Duration, max: Duration) -> Self {
        self.base_delay = base;
        self.max_delay = max;
        self
    }
    pub const fn with_backoff(mut self, kind: BackoffKind) -> Self {
        self.backoff = kind;
        self
    }
    pub const fn with_jitter_ratio(mut self, ratio: f64) -> Self {
        self.jitter_ratio = ratio;
        self
    }
    pub const fn with_access_denied_delay(mut self, delay: Duration) -> Self {
        self.access_denied_delay = delay;
        self
    }

    /// Delay before attempt `attempt` (0-based). `unit_random` in [0, 1) supplies jitter.
    pub fn delay_for_attempt(&self, attempt: u32, unit_random: f64) -> Duration {
        let base = self.base_delay.as_secs_f64();
        let raw = match self.backoff {
            BackoffKind::Exponential => base * 2f64.powi(attempt.min(62) as i32),
            BackoffKind::Linear => base * f64::from(attempt.saturating_add(1)),
        };
        let capped = raw.min(self.max_delay.as_secs_f64());
        let jitter = self.jitter_ratio.clamp(0.0, 1.0) * unit_random.clamp(0.0, 1.0);
        // Saturating: a delay that does not fit a Duration is the configured maximum.
        Duration::try_from_secs_f64((capped * (1.0 - jitter)).max(0.0)).unwrap_or(self.max_delay)
    }

    /// True while `attempts_made` is within budget.
    pub fn allows_attempt(&self, attempts_made: u32) -> bool {
        self.max_attempts.is_none_or(|max| attempts_made < max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn backoff_curves() {
        let p = ReconnectPolicy::default().with_jitter_ratio(0.0);
        assert_eq!(p.delay_for_attempt(0, 0.5), Duration::from_secs(1));
        assert_eq!(p.delay_for_attempt(3, 0.5), Duration::from_secs(8));
        assert_eq!(p.delay_for_attempt(10, 0.5), Duration::from_secs(30));
        let lin = p.with_backoff(BackoffKind::Linear);
        assert_eq!(lin.delay_for_attempt(2, 0.0), Duration::from_secs(3));
        assert!(p.allows_attempt(1_000_000));
        assert!(!p.with_max_attempts(Some(2)).allows_attempt(2));
    }

    proptest! {
        #[test]
        fn delay_never_exceeds_cap(attempt in 0u32..10_000, r in 0.0f64..1.0, jitter in 0.0f64..1.0) {
            let p = ReconnectPolicy::default().with_jitter_ratio(jitter);
            let d = p.delay_for_attempt(attempt, r);
            prop_assert!(d <= p.max_delay);
        }
    }
}
