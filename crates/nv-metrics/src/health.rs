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
    /// Feeds forgotten lately: their late events (the final `feed_stopped` may be counted
    /// after the removal) are ignored. Bounded; the oldest entries fall off.
    forgotten: std::collections::VecDeque<u64>,
}

/// Removed feeds remembered so that their late events are not counted again.
const FORGOTTEN_FEEDS: usize = 1024;

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
        if key.1 != 0 && c.forgotten.contains(&key.1) {
            return;
        }
        *c.events.entry(key).or_insert(0) += 1;
        *c.occurrences.entry(key).or_insert(0) += occurrences(event);
    }

    /// Drops the series of feeds that no longer exist (`live` says which do), so removed
    /// feeds leave `/metrics` and the table stays bounded by the feeds alive. Runtime-wide
    /// rows (feed 0) stay.
    pub fn retain_feeds(&self, live: impl Fn(u64) -> bool) {
        let mut c = self.inner.lock();
        c.events.retain(|k, _| k.1 == 0 || live(k.1));
        c.occurrences.retain(|k, _| k.1 == 0 || live(k.1));
    }

    /// Removes a feed's series now and ignores its events still in flight.
    pub fn forget_feed(&self, feed_id: u64) {
        let mut c = self.inner.lock();
        c.events.retain(|k, _| k.1 != feed_id);
        c.occurrences.retain(|k, _| k.1 != feed_id);
        if c.forgotten.len() == FORGOTTEN_FEEDS {
            c.forgotten.pop_front();
        }
        c.forgotten.push_back(feed_id);
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

#[cfg(test)]
mod tests {
    use super::*;
    use nv_core::health::StopReason;
    use nv_core::FeedId;

    #[test]
    fn removed_feeds_leave_the_table() {
        let c = HealthCounters::new();
        for id in [1, 2] {
            c.record(&HealthEvent::FeedStopped {
                feed_id: FeedId::new(id),
                reason: StopReason::UserRequested,
            });
        }
        c.record(&HealthEvent::OutputLagged { messages_lost: 3 });
        c.retain_feeds(|id| id == 2);
        let (rows, _) = c.snapshot();
        let feeds: Vec<u64> = rows.iter().map(|r| r.1).collect();
        assert_eq!(feeds, vec![2, 0]);
        // A forgotten feed's late event is not counted again.
        c.forget_feed(2);
        c.record(&HealthEvent::FeedStopped {
            feed_id: FeedId::new(2),
            reason: StopReason::UserRequested,
        });
        let (rows, _) = c.snapshot();
        assert_eq!(rows.iter().map(|r| r.1).collect::<Vec<_>>(), vec![0]);
    }
}
