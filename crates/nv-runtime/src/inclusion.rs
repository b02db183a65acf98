//! Which outputs carry their frame: the policy and the per-feed state that applies it.

use nv_core::time::MonotonicTs;

/// Which outputs carry the frame's pixels.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[non_exhaustive]
pub enum FrameInclusion {
    #[default]
    Never,
    Always,
    /// Every n-th output (the n-th, 2n-th, ...).
    Sampled {
        interval: u32,
    },
    /// About `target` frames per second, with the interval derived from the source's own
    /// timestamps (not the wall clock, which processing stalls distort). Until enough
    /// frames were seen, `fallback_interval` applies.
    TargetFps {
        target: f64,
        fallback_interval: u32,
    },
}

impl FrameInclusion {
    /// `0` = never, `1` = always.
    pub fn sampled(interval: u32) -> Self {
        match interval {
            0 => Self::Never,
            1 => Self::Always,
            n => Self::Sampled { interval: n },
        }
    }
    pub fn target_fps(target: f64, fallback_interval: u32) -> Self {
        if target.is_finite() && target > 0.0 {
            Self::TargetFps {
                target,
                fallback_interval: fallback_interval.max(1),
            }
        } else {
            Self::Never
        }
    }
}

/// Frames observed before `TargetFps` locks its interval.
pub const TARGET_FPS_WARMUP_FRAMES: usize = 30;

/// Per-feed state that applies a [`FrameInclusion`].
#[derive(Debug, Clone)]
pub(crate) struct InclusionState {
    policy: FrameInclusion,
    counter: u64,
    resolved: Option<u32>,
    first_ts: Option<MonotonicTs>,
    last_ts: MonotonicTs,
    seen: usize,
}

impl InclusionState {
    pub fn new(policy: FrameInclusion) -> Self {
        Self {
            policy,
            counter: 0,
            resolved: None,
            first_ts: None,
            last_ts: MonotonicTs::ZERO,
            seen: 0,
        }
    }

    /// Decides for the next output, given the frame's media timestamp.
    pub fn include(&mut self, ts: MonotonicTs) -> bool {
        let interval = match self.policy {
            FrameInclusion::Never => return false,
            FrameInclusion::Always => return true,
            FrameInclusion::Sampled { interval } => interval.max(1),
            FrameInclusion::TargetFps {
                target,
                fallback_interval,
            } => self.target_interval(target, fallback_interval, ts),
        };
        self.counter += 1;
        self.counter % u64::from(interval) == 0
    }

    fn target_interval(&mut self, target: f64, fallback: u32, ts: MonotonicTs) -> u32 {
        if let Some(i) = self.resolved {
            return i;
        }
        let first = *self.first_ts.get_or_insert(ts);
        self.last_ts = self.last_ts.max(ts);
        self.seen += 1;
        if self.seen >= TARGET_FPS_WARMUP_FRAMES {
            let span = self.last_ts.saturating_duration_since(first).as_secs_f64();
            if span > 0.0 {
                let source_fps = (self.seen - 1) as f64 / span;
                let interval = (source_fps / target).round().max(1.0);
                let resolved = if interval >= f64::from(u32::MAX) {
                    u32::MAX
                } else {
                    interval as u32
                };
                self.resolved = Some(resolved);
                return resolved;
            }
        }
        fallback.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampled_includes_every_nth() {
        let mut s = InclusionState::new(FrameInclusion::sampled(3));
        let picks: Vec<bool> = (0..7)
            .map(|i| s.include(MonotonicTs::from_nanos(i)))
            .collect();
        assert_eq!(picks, vec![false, false, true, false, false, true, false]);
        assert_eq!(FrameInclusion::sampled(0), FrameInclusion::Never);
        assert_eq!(FrameInclusion::sampled(1), FrameInclusion::Always);
        assert_eq!(FrameInclusion::target_fps(0.0, 5), FrameInclusion::Never);
    }

    #[test]
    fn target_fps_resolves_from_source_timestamps() {
        // 30 fps source (33.3 ms PTS spacing), target 5 fps => every 6th frame.
        let mut s = InclusionState::new(FrameInclusion::target_fps(5.0, 2));
        let ts = |i: u64| MonotonicTs::from_nanos(i * 33_333_333);
        for i in 0..(TARGET_FPS_WARMUP_FRAMES as u64 - 1) {
            s.include(ts(i));
        }
        assert_eq!(s.resolved, None);
        s.include(ts(TARGET_FPS_WARMUP_FRAMES as u64 - 1));
        assert_eq!(s.resolved, Some(6));
    }
}
