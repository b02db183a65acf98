//! One timer thread per runtime that reports stages stuck inside a call (`StageStalled`)
//! and emits coalesced health events whose window has passed.
//! A stuck stage cannot be interrupted; this makes it visible long before anyone tries to
//! stop the feed (which is then bounded by the join timeout).

use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use nv_core::clock::SharedClock;

use crate::coalesce::Coalescers;
use crate::feed::shared::FeedShared;
use crate::sync::{Ticker, Waiter};

/// How often the watchdog looks; stalls are reported within this of their timeout.
const CHECK_PERIOD: Duration = Duration::from_millis(250);

/// The feeds the watchdog looks at (weak: it never keeps a feed alive).
pub(crate) type Watched = Arc<parking_lot::Mutex<Vec<Weak<FeedShared>>>>;

#[derive(Debug)]
pub(crate) struct Watchdog {
    stop: Arc<Waiter<bool>>,
    thread: Option<JoinHandle<()>>,
}

impl Watchdog {
    pub fn spawn(
        clock: SharedClock,
        watched: Watched,
        coalescers: Arc<Coalescers>,
        pool: Option<crate::sched::Pool>,
    ) -> std::io::Result<Self> {
        let stop = Waiter::new(false, clock.clone());
        let s = Arc::clone(&stop);
        let mut ticker = Ticker::new(&clock, CHECK_PERIOD);
        let thread = std::thread::Builder::new()
            .name("nv-watchdog".into())
            .stack_size(64 * 1024)
            .spawn(move || loop {
                let Some(now) = ticker.wait(&s) else {
                    return;
                };
                coalescers.poll(now);
                let mut feeds = watched.lock();
                feeds.retain(|w| w.strong_count() > 0);
                for feed in feeds.iter().filter_map(Weak::upgrade) {
                    feed.check_stall(now);
                }
                drop(feeds);
                if let Some(pool) = pool.as_ref() {
                    pool.check(now);
                }
            })?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }

    pub fn stop(&mut self) {
        *self.stop.lock() = true;
        self.stop.notify_all();
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!("watchdog thread panicked");
            }
        }
    }
}
