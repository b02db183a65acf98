//! Whether a pool thread that ran out of work spins before it parks.
//!
//! Waking a parked thread is a futex call plus, on a virtual machine, an inter-processor
//! interrupt: several microseconds on each side, more than a frame's whole trip through
//! no-op stages. A thread that spins a little when its queue runs dry catches the next
//! push of a saturating source without anyone paying for a wake-up (`ref1`: 3x the
//! frames/s; BENCHMARKS.md). Spinning only pays when work follows at once, though: a pool
//! thread serving paced feeds that spins between their frames never sleeps, so the
//! kernel's scheduler stops favouring it on wake-up and, next to CPU-bound processes,
//! preempts it for whole time slices (d2000 beside two busy loops: p50 0.5-1 ms instead of
//! 5 us). So a thread spins only while its own work has kept it busy for a fifth of the
//! last few milliseconds.

use std::time::{Duration, Instant};

/// How long a thread spins, watching for a new task, before it parks.
pub(super) const SPIN: Duration = Duration::from_micros(50);

/// How often the busy share is re-evaluated.
const WINDOW: Duration = Duration::from_millis(5);

/// Spin while busy for at least 1 / `BUSY_SHARE_DIVISOR` of the window.
const BUSY_SHARE_DIVISOR: u32 = 5;

/// One pool thread's recent busy share, in time spent running task turns.
#[derive(Debug)]
pub(super) struct Duty {
    window_start: Instant,
    busy: Duration,
    spin: bool,
}

impl Duty {
    pub fn new() -> Self {
        Self {
            window_start: Instant::now(),
            busy: Duration::ZERO,
            spin: false,
        }
    }

    pub fn add_busy(&mut self, turn: Duration) {
        self.busy += turn;
    }

    /// Whether to spin now; re-evaluated once per window.
    pub fn should_spin(&mut self) -> bool {
        let elapsed = self.window_start.elapsed();
        if elapsed >= WINDOW {
            self.spin = self.busy * BUSY_SHARE_DIVISOR >= elapsed;
            self.busy = Duration::ZERO;
            self.window_start = Instant::now();
        }
        self.spin
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window_of(busy: Duration) -> Duty {
        Duty {
            window_start: Instant::now() - WINDOW,
            busy,
            spin: false,
        }
    }

    #[test]
    fn spins_only_after_a_busy_window() {
        let mut d = Duty::new();
        assert!(
            !d.should_spin(),
            "a new thread parks until it has been busy"
        );
        // A busy share of at least a fifth of the window turns spinning on ...
        let mut d = window_of(WINDOW);
        assert!(d.should_spin());
        // ... and it stays on until the window is re-evaluated.
        assert!(d.should_spin());
        // A mostly idle window turns it off.
        let mut d = window_of(WINDOW / 50);
        d.spin = true;
        assert!(!d.should_spin());
    }
}
