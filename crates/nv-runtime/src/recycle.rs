//! Reuses the allocations of delivered outputs, so a steady feed allocates no output per
//! frame: each output is one `Arc` shared by the sink and every subscriber, and once all
//! of them have let go of an older one, the next frame's output is written into it.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::output::{OutputEnvelope, SharedOutput};

/// Outputs a feed keeps for reuse, at most: enough for a sink that lags a quantum of
/// frames behind the stages; a sink further behind costs an allocation per frame again.
pub(crate) const KEPT_MAX: usize = 32;

/// The feed's recently shared outputs, oldest first.
#[derive(Default)]
pub(crate) struct OutputRecycler {
    kept: VecDeque<SharedOutput>,
}

impl OutputRecycler {
    /// Shares `out` in the allocation of the oldest kept output if nobody holds that one
    /// any more, else in a new one.
    pub fn share(&mut self, out: OutputEnvelope) -> SharedOutput {
        let shared = match self.kept.pop_front() {
            Some(mut oldest) => match Arc::get_mut(&mut oldest) {
                Some(slot) => {
                    // Drops the old output's contents here, on the feed's thread.
                    *slot = out;
                    oldest
                }
                None => {
                    self.kept.push_front(oldest);
                    Arc::new(out)
                }
            },
            None => Arc::new(out),
        };
        // After a burst, delivered outputs pile up at the front; keep one spare, so what
        // is kept follows the sink's lag back down, one output per frame.
        if self.kept.len() >= 2 && self.kept.iter().take(2).all(|o| Arc::strong_count(o) == 1) {
            self.kept.pop_front();
        }
        // An output that carries its frame is not kept: the frame (a decoder's buffer,
        // say) is released as soon as the sink and subscribers are done with it.
        if shared.frame.is_none() {
            if self.kept.len() >= KEPT_MAX {
                self.kept.pop_front();
            }
            self.kept.push_back(Arc::clone(&shared));
        }
        shared
    }

    #[cfg(test)]
    fn kept(&self) -> usize {
        self.kept.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::Provenance;
    use nv_core::id::FeedId;
    use nv_core::time::{MonotonicTs, WallTs};

    fn output(seq: u64) -> OutputEnvelope {
        let provenance = Provenance {
            stages: crate::output::StageTrail::new(),
            view: crate::output::ViewProvenance {
                epoch: nv_view::ViewEpoch::INITIAL,
                version: nv_view::ViewVersion::INITIAL,
                validity: nv_view::ContextValidity::Valid,
                stability_score: 1.0,
                motion_source: nv_view::MotionSource::None,
                transition: nv_view::TransitionPhase::Settled,
                decision: None,
            },
            received_at: MonotonicTs::ZERO,
            dequeued_at: MonotonicTs::ZERO,
            completed_at: MonotonicTs::ZERO,
            frame_age: None,
            session: 0,
            run_id: 1,
            frame_included: false,
        };
        OutputEnvelope::new(
            FeedId::new(1),
            seq,
            MonotonicTs::ZERO,
            WallTs::UNKNOWN,
            provenance,
        )
    }

    #[test]
    fn a_delivered_output_is_reused_and_a_held_one_is_not() {
        let mut r = OutputRecycler::default();
        let first = r.share(output(0));
        let addr = Arc::as_ptr(&first);
        // Still held (a sink has it): the next output needs its own allocation.
        let second = r.share(output(1));
        assert_ne!(Arc::as_ptr(&second), addr);
        drop(first);
        // Released: the third output is written where the first was.
        let third = r.share(output(2));
        assert_eq!(Arc::as_ptr(&third), addr);
        assert_eq!(third.frame_seq, 2);
        assert_eq!(r.kept(), 2);
        drop((second, third));
    }

    #[test]
    fn what_is_kept_is_bounded_and_shrinks_after_a_burst() {
        let mut r = OutputRecycler::default();
        // A sink that holds everything: the kept outputs stop at the cap.
        let held: Vec<_> = (0..100).map(|i| r.share(output(i))).collect();
        assert_eq!(r.kept(), KEPT_MAX);
        drop(held);
        // The sink caught up and now keeps nothing in flight: one output reused and one
        // released per frame, down to the spare and the output just shared.
        for i in 0..KEPT_MAX as u64 {
            drop(r.share(output(100 + i)));
        }
        assert!(r.kept() <= 2, "{}", r.kept());
    }
}
