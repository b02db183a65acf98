//! Operational policies: backpressure, restart, reconnect.

use std::time::Duration;

/// What a full bounded queue does with a new item: the one backpressure vocabulary of
/// NextVision, for the source queue, the sink queue, config files and API bodies (serde
/// names `drop_oldest`, `drop_newest`, `block`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Overflow {
    /// Evict the oldest queued item (live video: freshest frame wins).
    DropOldest,
    /// Reject the incoming item.
    DropNewest,
    /// Block the producer until space frees up (offline processing; never drops).
    Block,
}

impl Overflow {
    pub const fn is_lossless(self) -> bool {
        matches!(self, Self::Block)
    }
}

/// The source→worker frame queue: what it does when full, and how deep it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct BackpressurePolicy {
    pub overflow: Overflow,
    pub queue_depth: usize,
}

impl BackpressurePolicy {
    pub const fn new(overflow: Overflow, queue_depth: usize) -> Self {
        Self {
            overflow,
            queue_depth,
        }
    }
    /// Evict the oldest queued frame.
    pub const fn drop_oldest(queue_depth: usize) -> Self {
        Self::new(Overflow::DropOldest, queue_depth)
    }
    /// Reject the incoming frame.
    pub const fn drop_newest(queue_depth: usize) -> Self {
        Self::new(Overflow::DropNewest, queue_depth)
    }
    /// Block the source until the feed catches up (never drops).
    pub const fn block(queue_depth: usize) -> Self {
        Self::new(Overflow::Block, queue_depth)
    }
    pub const fn queue_depth(self) -> usize {
        self.queue_depth
    }
    pub const fn is_lossless(self) -> bool {
        self.overflow.is_lossless()
    }
}

impl Default for BackpressurePolicy {
    fn default() -> Self {
        Self::drop_oldest(4)
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

/// A backoff in progress: a curve (kind, first delay, cap) and the attempts made so far.
/// The one backoff of the code base: sinks retrying their endpoint step it without jitter,
/// and [`ReconnectPolicy::delay_for_attempt`] adds jitter on top of the same curve.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    kind: BackoffKind,
    initial: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    /// Exponential: `initial` (at least 1 ms), doubling up to `max` (at least `initial`).
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self::with_kind(BackoffKind::Exponential, initial, max)
    }

    pub fn with_kind(kind: BackoffKind, initial: Duration, max: Duration) -> Self {
        let initial = initial.max(Duration::from_millis(1));
        Self {
            kind,
            initial,
            max: max.max(initial),
            attempt: 0,
        }
    }

    /// The delay before attempt `attempt` (0-based) on this curve, capped; integer
    /// arithmetic, so delays are exact.
    pub fn delay(&self, attempt: u32) -> Duration {
        let raw = match self.kind {
            BackoffKind::Exponential => self.initial.checked_mul(1 << attempt.min(31)),
            BackoffKind::Linear => self.initial.checked_mul(attempt.saturating_add(1)),
        };
        raw.map_or(self.max, |d| d.min(self.max))
    }

    /// The delay to wait now; the next one grows along the curve.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.delay(self.attempt);
        self.attempt = self.attempt.saturating_add(1);
        d
    }

    /// Back to the first delay (after a success).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// Delays handed out since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }
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
        // The curve never goes below 1 ms; a zero base delay means "retry at once".
        if self.base_delay.is_zero() {
            return Duration::ZERO;
        }
        let capped = Backoff::with_kind(self.backoff, self.base_delay, self.max_delay)
            .delay(attempt)
            .min(self.max_delay);
        let jitter = self.jitter_ratio.clamp(0.0, 1.0) * unit_random.clamp(0.0, 1.0);
        if jitter <= 0.0 {
            return capped;
        }
        // Saturating: a delay that does not fit a Duration is the curve's own value.
        Duration::try_from_secs_f64((capped.as_secs_f64() * (1.0 - jitter)).max(0.0))
            .unwrap_or(capped)
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
    fn overflow_keeps_its_config_names() {
        for (name, overflow) in [
            ("drop_oldest", Overflow::DropOldest),
            ("drop_newest", Overflow::DropNewest),
            ("block", Overflow::Block),
        ] {
            let text = format!("\"{name}\"");
            assert_eq!(serde_json::from_str::<Overflow>(&text).ok(), Some(overflow));
            assert_eq!(serde_json::to_string(&overflow).ok(), Some(text));
        }
        assert!(serde_json::from_str::<Overflow>("\"drop_all\"").is_err());
        assert!(BackpressurePolicy::block(3).is_lossless());
        assert_eq!(
            BackpressurePolicy::default(),
            BackpressurePolicy::drop_oldest(4)
        );
    }

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

    #[test]
    fn backoff_doubles_up_to_max_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
        let ms: Vec<u128> = (0..4).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(ms, vec![100, 200, 350, 350]);
        assert_eq!(b.attempts(), 4);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(100));
        let lin = Backoff::with_kind(BackoffKind::Linear, Duration::from_secs(1), Duration::MAX);
        assert_eq!(lin.delay(2), Duration::from_secs(3));
        // Far attempts saturate at the cap instead of overflowing.
        let big = Backoff::new(Duration::from_secs(1), Duration::MAX);
        assert_eq!(big.delay(u32::MAX), Duration::from_secs(1 << 31));
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
