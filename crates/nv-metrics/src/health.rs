//! Counting health events by type and feed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::thread::JoinHandle;

use nv_core::health::HealthEvent;
use nv_io::broadcast::RecvError;
use nv_runtime::HealthSubscription;
use parking_lot::Mutex;

/// Key: (event name, feed id or 0 for runtime-wide events).
type Key = (&'static str, u64);

/// Events seen and occurrences they stand for (coalesced events carry counts).
#[derive(Clone, Debug, Default)]
pub struct HealthCounters {
    inner: Arc<Mutex<Counts>>,
}

#[derive(Debug, Default)]
struct Counts {
    events: BTreeMap<Key, u64>,
    occurrences: BTreeMap<Key, u64>,
    lagged: u64,
}

/// How many underlying occurrences a (possibly coalesced) event stands for.
fn occurrences(e: &HealthEvent) -> u64 {
    match e {
        HealthEvent::StageError { count, .. }
        | HealthEvent::ViewCompensationApplied { count, .. }
        | HealthEvent::BatchError { count, .. } => *count,
        HealthEvent::BackpressureDrop { frames_dropped, .. } => *frames_dropped,
        HealthEvent::FrameLag { frames_lagged, .. } => *frames_lagged,
        HealthEvent::ViewDegraded { frames, .. } => *frames,
        HealthEvent::OutputLagged { messages_lost } => *messages_lost,
        HealthEvent::SinkBackpressure {
            outputs_dropped, ..
        } => *outputs_dropped,
        HealthEvent::TrackAdmissionRejected { rejected_count, .. } => *rejected_count,
        HealthEvent::BatchSubmissionRejected { dropped_count, .. } => *dropped_count,
        HealthEvent::BatchTimeout {
            timed_out_count, ..
        } => *timed_out_count,
        HealthEvent::BatchInFlightExceeded { rejected_count, .. } => *rejected_count,
        _ => 1,
    }
}

impl HealthCounters {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn record(&self, event: &HealthEvent) {
        let key = (
            event.name(),
            event.feed_id().map_or(0, nv_core::FeedId::as_u64),
        );
        let mut c = self.inner.lock();
        *c.events.entry(key).or_insert(0) += 1;
        *c.occurrences.entry(key).or_insert(0) += occurrences(event);
    }

    /// Events this counter missed because its subscription lagged.
    pub fn record_lag(&self, missed: u64) {
        self.inner.lock().lagged += missed;
    }

    /// `(event, feed id, events, occurrences)`, sorted.
    pub fn snapshot(&self) -> (Vec<(&'static str, u64, u64, u64)>, u64) {
        let c = self.inner.lock();
        let rows = c
            .events
            .iter()
            .map(|(k, n)| (k.0, k.1, *n, c.occurrences.get(k).copied().unwrap_or(0)))
            .collect();
        (rows, c.lagged)
    }
}

/// Counts every event of `subscription` on a named thread until the runtime shuts down.
pub fn spawn_health_counter(
    mut subscription: HealthSubscription,
) -> std::io::Result<(HealthCounters, JoinHandle<()>)> {
    let counters = HealthCounters::new();
    let c = counters.clone();
    let handle = std::thread::Builder::new()
        .name("nv-metrics-health".into())
        .spawn(move || loop {
            match subscription.recv() {
                Ok(e) => c.record(&e),
                Err(RecvError::Lagged(n)) => c.record_lag(n),
                Err(RecvError::Closed | RecvError::Timeout) => return,
            }
        })?;
    Ok((counters, handle))
}
