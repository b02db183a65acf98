//! Turns sink counters into health events: once a second, each (feed, sink) whose records
//! the sink gave up on or evicted since the last look is reported as `SinkDeliveryLoss`
//! with the deltas. A sink shared by several feeds keeps each feed's share apart, so the
//! event names the feed whose records were lost.

use std::collections::HashMap;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use nv_core::health::HealthEvent;
use nv_core::id::FeedId;
use nv_io::sync::{Ticker, Waiter};
use nv_runtime::RuntimeHandle;

use crate::sinks::SinkSet;

const PERIOD: Duration = Duration::from_secs(1);

/// Failed and dropped figures already reported, by (sink, feed).
type Reported = HashMap<(String, FeedId), (u64, u64)>;

/// Background reporter; stops when dropped.
pub struct SinkMonitor {
    stop: Arc<Waiter<bool>>,
    thread: Option<JoinHandle<()>>,
}

impl SinkMonitor {
    pub fn start(runtime: RuntimeHandle, sinks: Arc<SinkSet>) -> std::io::Result<Self> {
        let stop = Waiter::new(false, runtime.clock().clone());
        let s = Arc::clone(&stop);
        let mut reported = Reported::new();
        let mut ticker = Ticker::new(runtime.clock(), PERIOD);
        let thread = std::thread::Builder::new()
            .name("nv-sink-monitor".into())
            .spawn(move || loop {
                if ticker.wait(&s).is_none() {
                    return;
                }
                for sink in sinks.built() {
                    for (feed_id, snap) in sink.stats().feeds() {
                        let seen = reported
                            .entry((sink.name().to_owned(), feed_id))
                            .or_default();
                        let failed = snap.failed.saturating_sub(seen.0);
                        let dropped = snap.dropped_by_buffer.saturating_sub(seen.1);
                        if failed + dropped > 0 {
                            *seen = (snap.failed, snap.dropped_by_buffer);
                            runtime.publish_health(HealthEvent::SinkDeliveryLoss {
                                feed_id,
                                sink: sink.name().to_owned(),
                                failed,
                                dropped,
                            });
                        }
                    }
                }
            })?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for SinkMonitor {
    fn drop(&mut self) {
        *self.stop.lock() = true;
        self.stop.notify_all();
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::warn!("sink monitor thread panicked");
            }
        }
    }
}
