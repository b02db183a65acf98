//! Turns sink counters into health events: once a second, each sink that gave up on or
//! evicted records since the last look is reported as `SinkDeliveryLoss` with the deltas.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use nv_core::health::HealthEvent;
use nv_core::id::FeedId;
use nv_runtime::sync::Waiter;
use nv_runtime::RuntimeHandle;
use nv_sinks::SinkStats;
use parking_lot::Mutex;

const PERIOD: Duration = Duration::from_secs(1);

struct Watched {
    feed_id: FeedId,
    sink: String,
    stats: SinkStats,
    failed: u64,
    dropped: u64,
}

/// Background reporter; stops when dropped.
pub struct SinkMonitor {
    watched: Arc<Mutex<Vec<Watched>>>,
    stop: Arc<Waiter<bool>>,
    thread: Option<JoinHandle<()>>,
}

impl SinkMonitor {
    pub fn start(runtime: RuntimeHandle) -> std::io::Result<Self> {
        let watched: Arc<Mutex<Vec<Watched>>> = Arc::default();
        let stop = Waiter::new(false, runtime.clock().clone());
        let (w, s) = (Arc::clone(&watched), Arc::clone(&stop));
        let thread = std::thread::Builder::new()
            .name("nv-sink-monitor".into())
            .spawn(move || loop {
                {
                    let deadline = runtime.clock().now() + PERIOD;
                    let mut stopped = s.lock();
                    s.wait_until(&mut stopped, Some(deadline), |stop| *stop);
                    if *stopped {
                        return;
                    }
                }
                for entry in w.lock().iter_mut() {
                    let snap = entry.stats.snapshot();
                    let (failed, dropped) = (
                        snap.failed - entry.failed.min(snap.failed),
                        snap.dropped_by_buffer - entry.dropped.min(snap.dropped_by_buffer),
                    );
                    if failed + dropped > 0 {
                        entry.failed = snap.failed;
                        entry.dropped = snap.dropped_by_buffer;
                        runtime.publish_health(HealthEvent::SinkDeliveryLoss {
                            feed_id: entry.feed_id,
                            sink: entry.sink.clone(),
                            failed,
                            dropped,
                        });
                    }
                }
            })?;
        Ok(Self {
            watched,
            stop,
            thread: Some(thread),
        })
    }

    pub fn watch(&self, feed_id: FeedId, sinks: Vec<(String, SinkStats)>) {
        let mut w = self.watched.lock();
        for (sink, stats) in sinks {
            w.push(Watched {
                feed_id,
                sink,
                stats,
                failed: 0,
                dropped: 0,
            });
        }
    }
}

impl SinkMonitor {
    /// Stops watching a removed feed's sinks (the list stays bounded by the feeds alive).
    pub fn unwatch(&self, feed_id: FeedId) {
        self.watched.lock().retain(|w| w.feed_id != feed_id);
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
