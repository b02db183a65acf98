//! Runtime-wide subscriptions to health events and outputs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use nv_core::clock::SharedClock;
use nv_core::health::HealthEvent;

use crate::broadcast::{self, RecvError};
use crate::coalesce::{Coalesced, Coalescers};
use crate::output::SharedOutput;

pub use nv_io::HealthSubscription;

/// Shared accounting of outputs lost by lagging subscribers.
#[derive(Debug)]
pub(crate) struct LagState {
    lagged: Coalesced<()>,
    total: AtomicU64,
}

impl LagState {
    pub fn new(
        coalescers: &Coalescers,
        health: broadcast::Sender<HealthEvent>,
        clock: SharedClock,
        window: Duration,
    ) -> Self {
        Self {
            lagged: Coalesced::new(coalescers, window, health, clock, |messages_lost, ()| {
                HealthEvent::OutputLagged { messages_lost }
            }),
            total: AtomicU64::new(0),
        }
    }

    fn record(&self, lost: u64) {
        self.total.fetch_add(lost, Ordering::Relaxed);
        self.lagged.record(lost, |()| {});
    }

    pub fn flush(&self) {
        self.lagged.flush();
    }

    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }
}

/// Outputs of every feed. Lag is absorbed: lost outputs are counted, reported as
/// `OutputLagged` (throttled) and receiving continues with the oldest retained output.
#[derive(Debug)]
pub struct OutputSubscription {
    rx: broadcast::Receiver<SharedOutput>,
    lag: Arc<LagState>,
    lost: u64,
}

impl OutputSubscription {
    pub(crate) fn new(rx: broadcast::Receiver<SharedOutput>, lag: Arc<LagState>) -> Self {
        Self { rx, lag, lost: 0 }
    }

    /// Outputs this subscriber missed because it fell behind.
    pub fn lost(&self) -> u64 {
        self.lost
    }

    /// Next output, waiting up to `timeout`. `None` on timeout or once the runtime shut
    /// down and everything was read.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Option<SharedOutput> {
        loop {
            match self.rx.recv_timeout(timeout) {
                Ok(o) => return Some(o),
                Err(RecvError::Lagged(n)) => {
                    self.lost += n;
                    self.lag.record(n);
                }
                Err(RecvError::Closed | RecvError::Timeout) => return None,
            }
        }
    }

    /// Next output, waiting as long as it takes; `None` once the runtime shut down and
    /// everything was read.
    pub fn recv(&mut self) -> Option<SharedOutput> {
        loop {
            match self.rx.recv() {
                Ok(o) => return Some(o),
                Err(RecvError::Lagged(n)) => {
                    self.lost += n;
                    self.lag.record(n);
                }
                Err(_) => return None,
            }
        }
    }

    /// Next output if one is available now.
    pub fn try_recv(&mut self) -> Option<SharedOutput> {
        loop {
            match self.rx.try_recv() {
                Ok(o) => return Some(o),
                Err(RecvError::Lagged(n)) => {
                    self.lost += n;
                    self.lag.record(n);
                }
                Err(_) => return None,
            }
        }
    }
}
